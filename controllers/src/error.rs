//! The crate's one error enum. Retryable: [`ControllerError::Store`] when the store says so,
//! [`ControllerError::CommitConflict`] (re-read and recompute). The rest end the controller.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ControllerError {
    #[error("store operation `{op}` failed: {source}")]
    Store {
        op: &'static str,
        #[source]
        source: nomos_store::StoreError,
    },
    #[error(
        "commit conflicted with a concurrent writer on nodes {nodes:?}; retried {attempts} times"
    )]
    CommitConflict { nodes: Vec<String>, attempts: u32 },
    #[error("value at `{key}` is not valid JSON for {what}: {message}")]
    Decode {
        key: String,
        what: &'static str,
        message: String,
    },
    #[error("lost leadership of `{0}`")]
    LostLeadership(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl ControllerError {
    pub fn store(op: &'static str) -> impl FnOnce(nomos_store::StoreError) -> Self {
        move |source| ControllerError::Store { op, source }
    }

    /// Whether retrying the same step later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ControllerError::Store { source, .. } => source.is_retryable(),
            ControllerError::CommitConflict { .. } => true,
            _ => false,
        }
    }
}
