//! The evaluation a job write creates, until the evaluations change lands: every write of a
//! job (register, deregister, revert, scale, periodic force) calls [`create`] and answers with
//! the ID it returns as `EvalID`.

use crate::error::ServerError;
use crate::AppState;

/// Writes a pending evaluation for `job_id` and returns its ID.
///
/// For now this returns a fresh UUID-shaped ID and writes nothing: the merge with the
/// evaluations branch replaces this file with `crate::nomad::evals::create`, which has this
/// exact signature.
pub async fn create(
    _st: &AppState,
    _namespace: &str,
    _job_id: &str,
    _triggered_by: &str,
    _job_modify_index: i64,
) -> Result<String, ServerError> {
    Ok(uuid::Uuid::new_v4().to_string())
}
