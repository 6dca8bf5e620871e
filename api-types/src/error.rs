//! The crate's error type, for callers that want one `Result` instead of diagnostics.

use crate::diag::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A job file or stored spec did not parse or validate; not retryable without a new spec.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    /// An exec websocket frame or command that is not what [`crate::exec`] expects.
    #[error("{0}")]
    BadFrame(String),
}

impl From<Vec<Diagnostic>> for ApiError {
    fn from(d: Vec<Diagnostic>) -> Self {
        ApiError::Invalid(d)
    }
}
