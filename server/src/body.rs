//! Request body extraction: the body limit answers 413, malformed JSON answers 400 with the line
//! and column where it broke, and an empty body counts as `{}` for endpoints whose fields are all
//! optional.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ServerError;

/// A JSON body decoded with positioned errors.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ServerError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        decode(&bytes).map(JsonBody)
    }
}

/// The body's bytes, with the limit reported as a JSON 413.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ServerError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ServerError::TooLarge
                } else {
                    ServerError::BadRequest(format!(
                        "cannot read request body: {}",
                        rejection.body_text()
                    ))
                }
            })
    }
}

/// Decodes JSON, treating an empty body as `{}`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ServerError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| malformed(&e))
}

/// "malformed JSON at line L column C: ..." for syntax errors, "invalid request at line L column C"
/// for well-formed JSON of the wrong shape.
pub fn malformed(e: &serde_json::Error) -> ServerError {
    let what = if e.is_syntax() || e.is_eof() {
        "malformed JSON"
    } else {
        "invalid request body"
    };
    ServerError::BadRequest(format!(
        "{what} at line {} column {}: {e}",
        e.line(),
        e.column()
    ))
}
