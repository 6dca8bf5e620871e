//! The keyring's HTTP routes, in Nomad's paths and shapes: `/v1/operator/keyring/rotate`
//! (PUT or POST, operator write), `/v1/operator/keyring/keys` (operator read),
//! `/v1/operator/keyring/key/{key_id}` (DELETE, operator write), and the public
//! `/.well-known/jwks.json` that verifies workload identities.

use axum::extract::{Path, State};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::KeyMeta;
use crate::error::ServerError;
use crate::AppState;

/// The `/operator/keyring` routes, to nest under `/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/operator/keyring/rotate", put(rotate).post(rotate))
        .route("/operator/keyring/keys", get(list))
        .route("/operator/keyring/key/{key_id}", delete(remove))
}

/// The public routes at the root (`/.well-known/...`).
pub fn well_known_routes() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// The answer to a rotation.
#[derive(Debug, Serialize, Deserialize)]
pub struct RotateView {
    #[serde(rename = "Key")]
    pub key: KeyMeta,
    /// How many sealed values were re-encrypted with the new key.
    #[serde(rename = "Reencrypted")]
    pub reencrypted: usize,
}

async fn rotate(State(st): State<AppState>) -> Result<Json<RotateView>, ServerError> {
    let key = st.keyring.rotate().await?;
    let reencrypted = crate::vars::reencrypt_all(&st).await?;
    Ok(Json(RotateView { key, reencrypted }))
}

async fn list(State(st): State<AppState>) -> Result<Json<Vec<KeyMeta>>, ServerError> {
    Ok(Json(st.keyring.list().await?))
}

async fn remove(
    State(st): State<AppState>,
    Path(key_id): Path<String>,
) -> Result<Json<serde_json::Value>, ServerError> {
    st.keyring.remove(&key_id).await?;
    Ok(Json(serde_json::json!({})))
}

async fn jwks(State(st): State<AppState>) -> Result<Json<serde_json::Value>, ServerError> {
    st.keyring.start().await?;
    Ok(Json(st.keyring.jwks()))
}
