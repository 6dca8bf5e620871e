//! `/v1/acl/...`: bootstrap, tokens and policies, in Nomad's paths and JSON shapes
//! (PascalCase). Every route but bootstrap and `token/self` needs a management token
//! ([`super::rules`]).
//!
//! A token is written with its secret index in one transaction; bootstrap compares the
//! bootstrap marker's absence in the same transaction, so two concurrent bootstraps cannot
//! both succeed.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use nomos_api::acl::{
    parse_policy, validate_name, AclPolicy, AclToken, TokenType, MAX_DESCRIPTION_BYTES,
    MAX_NAME_BYTES, MAX_TOKEN_POLICIES,
};
use nomos_store::{keys, Compare, CompareOp, Txn, TxnOp};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{secret_hash, Caller, TOKEN_NOT_FOUND};
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::{kv, AppState};

/// The `/v1/acl` routes, to nest under `/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/acl/bootstrap", post(bootstrap))
        .route("/acl/tokens", get(list_tokens).post(create_token))
        .route("/acl/token", post(create_token))
        .route("/acl/token/self", get(token_self))
        .route(
            "/acl/token/{accessor}",
            get(get_token).post(update_token).delete(delete_token),
        )
        .route("/acl/policies", get(list_policies))
        .route(
            "/acl/policy/{name}",
            get(get_policy).post(put_policy).delete(delete_policy),
        )
}

/// A token to create or update: Nomad's `ACLToken` request fields.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct TokenRequest {
    pub name: String,
    #[serde(rename = "Type")]
    pub token_type: Option<TokenType>,
    pub policies: Vec<String>,
    pub global: bool,
}

fn check_token_request(req: &TokenRequest, token_type: TokenType) -> Result<(), ServerError> {
    let bad = |m: String| Err(ServerError::BadRequest(m));
    if req.name.len() > MAX_NAME_BYTES {
        return bad(format!(
            "token name is {} bytes, over the limit of {MAX_NAME_BYTES}",
            req.name.len()
        ));
    }
    if req.policies.len() > MAX_TOKEN_POLICIES {
        return bad(format!(
            "a token may name at most {MAX_TOKEN_POLICIES} policies, found {}",
            req.policies.len()
        ));
    }
    for p in &req.policies {
        validate_name("policy", p).map_err(ServerError::BadRequest)?;
    }
    match token_type {
        TokenType::Client if req.policies.is_empty() => bad("client token missing policies".into()),
        TokenType::Management if !req.policies.is_empty() => {
            bad("management token cannot be associated with policies".into())
        }
        _ => Ok(()),
    }
}

/// Writes a new token and its secret index; with `bootstrap`, only if bootstrap was never done.
async fn write_new_token(
    st: &AppState,
    mut token: AclToken,
    bootstrap: bool,
) -> Result<AclToken, ServerError> {
    let key = keys::acl_token(&token.accessor_id);
    let index = keys::acl_secret(&secret_hash(&token.secret_id));
    let mut compares = vec![
        Compare::mod_revision(key.clone(), CompareOp::Equal, 0),
        Compare::mod_revision(index.clone(), CompareOp::Equal, 0),
    ];
    let mut ops = Vec::new();
    if bootstrap {
        compares.push(Compare::mod_revision(
            keys::ACL_BOOTSTRAP,
            CompareOp::Equal,
            0,
        ));
        ops.push(TxnOp::put(
            keys::ACL_BOOTSTRAP,
            token.accessor_id.clone().into_bytes(),
        ));
    }
    let rev = next_revision(st).await?;
    token.create_index = rev;
    token.modify_index = rev;
    let json = serde_json::to_vec(&token).expect("a token serialises");
    ops.push(TxnOp::put(key, json));
    ops.push(TxnOp::put(
        index,
        serde_json::to_vec(&token.accessor_id).expect("a string serialises"),
    ));
    let resp = st
        .store
        .txn(Txn::new().when(compares).and_then(ops))
        .await?;
    if !resp.succeeded {
        return Err(if bootstrap {
            ServerError::BadRequest("ACL bootstrap already done".into())
        } else {
            ServerError::Conflict("token accessor or secret already exists; retry".into())
        });
    }
    Ok(token)
}

/// The revision the next write will likely get (Nomad's `CreateIndex`, informational only).
async fn next_revision(st: &AppState) -> Result<i64, ServerError> {
    Ok(st.store.status().await?.revision + 1)
}

fn new_token(name: String, token_type: TokenType, policies: Vec<String>, global: bool) -> AclToken {
    AclToken {
        accessor_id: uuid::Uuid::new_v4().to_string(),
        secret_id: uuid::Uuid::new_v4().to_string(),
        name,
        token_type,
        policies,
        global,
        create_time: jiff::Timestamp::now().to_string(),
        create_index: 0,
        modify_index: 0,
    }
}

/// `POST /v1/acl/bootstrap`: the first management token, once.
pub async fn bootstrap(State(st): State<AppState>) -> Result<Json<AclToken>, ServerError> {
    let token = new_token(
        "Bootstrap Token".into(),
        TokenType::Management,
        vec![],
        true,
    );
    Ok(Json(write_new_token(&st, token, true).await?))
}

/// `POST /v1/acl/token` (and `/v1/acl/tokens`): a new token; its secret is answered once here.
pub async fn create_token(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<TokenRequest>,
) -> Result<Json<AclToken>, ServerError> {
    let token_type = req.token_type.unwrap_or(TokenType::Client);
    check_token_request(&req, token_type)?;
    let token = new_token(req.name, token_type, req.policies, req.global);
    Ok(Json(write_new_token(&st, token, false).await?))
}

async fn find_token(st: &AppState, accessor: &str) -> Result<kv::Entry<AclToken>, ServerError> {
    if accessor.len() > MAX_NAME_BYTES {
        return Err(ServerError::NotFound(TOKEN_NOT_FOUND.into()));
    }
    let mut found = kv::get_json::<AclToken>(st.store.as_ref(), &keys::acl_token(accessor))
        .await?
        .ok_or_else(|| ServerError::NotFound(TOKEN_NOT_FOUND.into()))?;
    found.value.modify_index = found.mod_revision;
    Ok(found)
}

/// `POST /v1/acl/token/{accessor}`: a new name or set of policies (the type and secret stay).
pub async fn update_token(
    State(st): State<AppState>,
    Path(accessor): Path<String>,
    JsonBody(req): JsonBody<TokenRequest>,
) -> Result<Json<AclToken>, ServerError> {
    let found = find_token(&st, &accessor).await?;
    let mut token = found.value;
    if req.token_type.is_some_and(|t| t != token.token_type) {
        return Err(ServerError::BadRequest(
            "cannot change a token's type".into(),
        ));
    }
    check_token_request(&req, token.token_type)?;
    token.name = req.name;
    token.policies = req.policies;
    let key = keys::acl_token(&accessor);
    token.modify_index = kv::put_if(st.store.as_ref(), &key, &token, found.mod_revision).await?;
    Ok(Json(token))
}

/// `GET /v1/acl/token/{accessor}`.
pub async fn get_token(
    State(st): State<AppState>,
    Path(accessor): Path<String>,
) -> Result<Json<AclToken>, ServerError> {
    Ok(Json(find_token(&st, &accessor).await?.value))
}

/// `GET /v1/acl/token/self`: the caller's own token.
pub async fn token_self(
    Extension(caller): Extension<Caller>,
) -> Result<Json<AclToken>, ServerError> {
    caller
        .token
        .map(Json)
        .ok_or_else(|| ServerError::Forbidden(TOKEN_NOT_FOUND.into()))
}

/// `DELETE /v1/acl/token/{accessor}`: the token and its secret index, together.
pub async fn delete_token(
    State(st): State<AppState>,
    Path(accessor): Path<String>,
) -> Result<Json<serde_json::Value>, ServerError> {
    let found = find_token(&st, &accessor).await?;
    let key = keys::acl_token(&accessor);
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            found.mod_revision,
        )])
        .and_then([
            TxnOp::delete(key),
            TxnOp::delete(keys::acl_secret(&secret_hash(&found.value.secret_id))),
        ]);
    if !st.store.txn(txn).await?.succeeded {
        return Err(ServerError::Conflict(
            "the token changed while deleting it; retry".into(),
        ));
    }
    Ok(Json(serde_json::Value::Null))
}

/// Every value under `prefix`, each passed through `shown` with its `mod_revision`.
async fn list_shown<T: DeserializeOwned>(
    st: &AppState,
    prefix: &str,
    shown: fn(T, i64) -> T,
) -> Result<Json<Vec<T>>, ServerError> {
    let all = kv::list_json::<T>(st.store.as_ref(), prefix).await?;
    Ok(Json(
        all.into_iter()
            .map(|e| shown(e.value, e.mod_revision))
            .collect(),
    ))
}

/// `GET /v1/acl/tokens`: every token, without secrets.
pub async fn list_tokens(State(st): State<AppState>) -> Result<Json<Vec<AclToken>>, ServerError> {
    list_shown(&st, keys::ACL_TOKENS_PREFIX, |mut t: AclToken, rev| {
        t.modify_index = rev;
        t.secret_id.clear();
        t
    })
    .await
}

/// `GET /v1/acl/policies`: every policy, without rules.
pub async fn list_policies(
    State(st): State<AppState>,
) -> Result<Json<Vec<AclPolicy>>, ServerError> {
    list_shown(&st, keys::ACL_POLICIES_PREFIX, |mut p: AclPolicy, rev| {
        p.modify_index = rev;
        p.rules.clear();
        p
    })
    .await
}

async fn find_policy(st: &AppState, name: &str) -> Result<kv::Entry<AclPolicy>, ServerError> {
    validate_name("policy", name).map_err(ServerError::BadRequest)?;
    let mut found = kv::get_json::<AclPolicy>(st.store.as_ref(), &keys::acl_policy(name))
        .await?
        .ok_or_else(|| ServerError::NotFound(format!("ACL policy {name:?} not found")))?;
    found.value.modify_index = found.mod_revision;
    Ok(found)
}

/// `GET /v1/acl/policy/{name}`.
pub async fn get_policy(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AclPolicy>, ServerError> {
    Ok(Json(find_policy(&st, &name).await?.value))
}

/// `POST /v1/acl/policy/{name}`: create or replace; rules that do not parse answer 400 with
/// their diagnostics.
pub async fn put_policy(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(mut req): JsonBody<AclPolicy>,
) -> Result<Json<serde_json::Value>, ServerError> {
    validate_name("policy", &name).map_err(ServerError::BadRequest)?;
    if !req.name.is_empty() && req.name != name {
        return Err(ServerError::BadRequest(format!(
            "policy name {:?} in the body differs from {name:?} in the path",
            req.name
        )));
    }
    if req.description.len() > MAX_DESCRIPTION_BYTES {
        return Err(ServerError::BadRequest(format!(
            "description is over the limit of {MAX_DESCRIPTION_BYTES} bytes"
        )));
    }
    if let Err(diags) = parse_policy(&name, &req.rules) {
        return Err(ServerError::InvalidJob {
            message: diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            diagnostics: crate::jobfile::views(&diags),
        });
    }
    let key = keys::acl_policy(&name);
    let existing = kv::get_json::<AclPolicy>(st.store.as_ref(), &key).await?;
    let expected = existing.as_ref().map_or(0, |e| e.mod_revision);
    req.name = name;
    req.create_index = match existing {
        Some(e) => e.value.create_index,
        None => next_revision(&st).await?,
    };
    kv::put_if(st.store.as_ref(), &key, &req, expected).await?;
    Ok(Json(serde_json::Value::Null))
}

/// `DELETE /v1/acl/policy/{name}`.
pub async fn delete_policy(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ServerError> {
    let found = find_policy(&st, &name).await?;
    kv::delete_if(st.store.as_ref(), &found.key, found.mod_revision).await?;
    Ok(Json(serde_json::Value::Null))
}
