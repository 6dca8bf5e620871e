//! The server's error enum and how each variant renders as an HTTP response: a status code and
//! a plain-text body, as Nomad answers errors (a job file's errors are one positioned
//! diagnostic per line, `FILE:LINE:COL: message`).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use nomos_store::StoreError;
use thiserror::Error;

use crate::views::DiagnosticView;

/// Everything a request (or serving itself) can fail with.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The job file or body did not validate; carries every positioned diagnostic.
    #[error("{message}")]
    InvalidJob {
        message: String,
        diagnostics: Vec<DiagnosticView>,
    },
    /// The body was not what the endpoint takes (malformed JSON, wrong shape).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// An ID prefix matched more than one object.
    #[error("{0}")]
    Ambiguous(String),
    /// A check-index or an optimistic write lost a race.
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than the server accepts")]
    TooLarge,
    /// A browser request from another site, or to a Host this server does not answer to
    /// ([`crate::guard`]).
    #[error("{0}")]
    Forbidden(String),
    /// A write whose body is not declared as JSON ([`crate::guard`]).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A value in the store could not be decoded.
    #[error("stored value at {key} is not valid: {message}")]
    Corrupt { key: String, message: String },
    #[error("store request failed: {0}")]
    Store(#[from] StoreError),
    /// A controller operation run on request (a forced gc) failed.
    #[error("{0}")]
    Internal(String),
    /// A budget is spent (open event streams): the client retries later.
    #[error("{0}")]
    Busy(String),
    /// Talking to an agent (logs, restart) failed.
    #[error("agent request failed: {0}")]
    Agent(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("serving HTTP failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The TLS certificate, key or CA of `tls { ... }` could not be used.
    #[error("TLS: {0}")]
    Tls(#[from] nomos_tls::TlsError),
    /// The keyring's key file (the key that wraps the root keys) could not be read, created
    /// or used; not retryable until the file is fixed.
    #[error("keyring key file {path}: {message}")]
    KeyringKeyFile { path: String, message: String },
    /// A root key in the store could not be unwrapped with this server's key file: the
    /// servers do not share one (or the stored key was altered). The server refuses to start.
    #[error("the keyring key from {kek} cannot unwrap root key {key_id} stored at {key}: every server on one store needs the same keyring key file")]
    KeyringUnwrap {
        kek: String,
        key_id: String,
        key: String,
    },
    /// Sealed data could not be opened: unknown key, altered ciphertext, nonce or associated
    /// data. Not retryable.
    #[error("decrypt failed: {0}")]
    Decrypt(String),
    /// A workload identity token was refused (signature, key, algorithm, time or audience).
    #[error("invalid workload identity: {0}")]
    InvalidIdentity(String),
    /// The operating system's random source or a crypto primitive failed.
    #[error("crypto: {0}")]
    Crypto(String),
}

impl From<nomos_controllers::ControllerError> for ServerError {
    /// A controller decision run for a request (a plan) failed: a store failure keeps its
    /// status (503 while the store is unavailable), anything else is internal.
    fn from(e: nomos_controllers::ControllerError) -> Self {
        match e {
            nomos_controllers::ControllerError::Store { source, .. } => ServerError::Store(source),
            nomos_controllers::ControllerError::Decode { key, message, .. } => {
                ServerError::Corrupt { key, message }
            }
            other => ServerError::Internal(other.to_string()),
        }
    }
}

impl ServerError {
    pub fn status(&self) -> StatusCode {
        match self {
            ServerError::InvalidJob { .. } | ServerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServerError::NotFound(_) => StatusCode::NOT_FOUND,
            ServerError::Ambiguous(_) => StatusCode::CONFLICT,
            ServerError::Conflict(_) => StatusCode::CONFLICT,
            ServerError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ServerError::Forbidden(_) | ServerError::InvalidIdentity(_) => StatusCode::FORBIDDEN,
            ServerError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServerError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            // The store's disk is full (NOSPACE): reads still work, writes wait for room.
            ServerError::Store(StoreError::NoSpace) => StatusCode::SERVICE_UNAVAILABLE,
            ServerError::Store(StoreError::Compacted { .. }) => StatusCode::GONE,
            // A job file that parses but stores as more than the store takes in one request.
            ServerError::Store(StoreError::RequestTooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            ServerError::Agent(_) => StatusCode::BAD_GATEWAY,
            ServerError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ServerError {
    /// The plain-text body of the answer: the message, or for a job file every diagnostic on
    /// its own line (warnings too, so one answer tells the whole story).
    pub fn body_text(&self) -> String {
        match self {
            ServerError::InvalidJob {
                message,
                diagnostics,
            } => {
                let mut lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
                if !diagnostics.iter().any(|d| d.severity == "error") {
                    lines.insert(0, message.clone());
                }
                lines.join("\n")
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.body_text(),
        )
            .into_response()
    }
}

/// The fallback for unknown paths: a 404 that names the path rather than an empty body.
pub async fn not_found(uri: axum::http::Uri) -> ServerError {
    ServerError::NotFound(format!("no such endpoint: {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_a_client_caused_are_4xx_and_outages_5xx() {
        let cases = [
            (
                StoreError::RequestTooLarge {
                    len: 2_500_000,
                    limit: 1_572_864,
                },
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                StoreError::Unavailable("no leader".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (StoreError::NoSpace, StatusCode::SERVICE_UNAVAILABLE),
        ];
        for (error, status) in cases {
            assert_eq!(ServerError::Store(error).status(), status);
        }
    }
}
