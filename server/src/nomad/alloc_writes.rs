//! Allocation writes in Nomad's shapes: `POST|PUT /v1/allocation/{id}/stop` (answers
//! `{"EvalID", "Index"}`), and the client calls `POST|PUT /v1/client/allocation/{id}/restart`
//! (`{"TaskName", "AllTasks"}`) and `/v1/client/allocation/{id}/signal` (`{"Signal",
//! "Task"}`), which the server checks and forwards to the allocation's agent (answering `{}`).
//!
//! Nomos restarts only running tasks: `AllTasks` restarts every running task, as no task name
//! does. A signal is a POSIX name (`SIGHUP`, `HUP`) or number.

use axum::extract::{Path, State};
use axum::Json;
use nomos_api::eval::triggers;
use nomos_api::DesiredStatus;
use nomos_controllers::write::set_desired;
use nomos_store::keys;
use serde::{Deserialize, Serialize};

use super::allocs::find_row;
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::kv;
use crate::reads::{alloc_rows, AllocRow};
use crate::AppState;

/// The answer to a stop (Nomad's `AllocStopResponse`): `EvalID` is the pending evaluation
/// (`alloc-stop`) the jobs controller completes when it replaces the allocation; empty when
/// the allocation was stopped already.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AllocStopResponse {
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub index: i64,
}

/// `POST|PUT /v1/client/allocation/{id}/restart`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct RestartRequest {
    pub task_name: String,
    pub all_tasks: bool,
}

/// `POST|PUT /v1/client/allocation/{id}/signal`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct SignalRequest {
    pub signal: String,
    /// Empty: every running task.
    pub task: String,
}

/// `POST|PUT /v1/allocation/{id}/stop`: marks the allocation `stop`; the agent stops its tasks
/// and the jobs controller places a replacement if the job still wants one.
pub async fn stop(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AllocStopResponse>, ServerError> {
    let rows = alloc_rows(&st).await?;
    let row = find_row(&rows, &id)?;
    let a = &row.alloc;
    let mut index = row.alloc_modify_index;
    let mut eval_id = String::new();
    if a.desired_status != DesiredStatus::Stop {
        let stopped = set_desired(
            a,
            DesiredStatus::Stop,
            "stopped by user",
            nomos_api::now_ms(),
        );
        let key = keys::alloc(&a.node, &a.id);
        index = kv::put_if(st.store.as_ref(), &key, &stopped, row.alloc_modify_index).await?;
        let new = super::evals::NewEval {
            namespace: a.namespace.clone(),
            job_id: a.job_id.clone(),
            triggered_by: triggers::ALLOC_STOP.into(),
            ..Default::default()
        };
        eval_id = super::evals::create_after_write(&st, new).await?.0;
    }
    Ok(Json(AllocStopResponse { eval_id, index }))
}

/// `POST|PUT /v1/client/allocation/{id}/restart`.
pub async fn restart(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RestartRequest>,
) -> Result<Json<serde_json::Value>, ServerError> {
    if req.all_tasks && !req.task_name.is_empty() {
        return Err(ServerError::BadRequest(
            "TaskName and AllTasks cannot both be given".into(),
        ));
    }
    let rows = alloc_rows(&st).await?;
    let row = find_row(&rows, &id)?;
    check_task(&st, row, &req.task_name).await?;
    let body = serde_json::json!({ "TaskName": req.task_name });
    forward(&st, row, "restart", &body).await
}

/// `POST|PUT /v1/client/allocation/{id}/signal`.
pub async fn signal(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<SignalRequest>,
) -> Result<Json<serde_json::Value>, ServerError> {
    check_signal(&req.signal)?;
    let rows = alloc_rows(&st).await?;
    let row = find_row(&rows, &id)?;
    check_task(&st, row, &req.task).await?;
    let body = serde_json::json!({ "Signal": req.signal, "Task": req.task });
    forward(&st, row, "signal", &body).await
}

/// The signals a task can be sent, without their `SIG`.
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
    "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
];

/// A signal by name (`SIGHUP`, `hup`) or number (1 to 64).
pub fn check_signal(signal: &str) -> Result<(), ServerError> {
    let upper = signal.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let known = SIGNALS.contains(&name) || name.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n));
    if known {
        Ok(())
    } else {
        Err(ServerError::BadRequest(format!(
            "Signal: {signal:?} is not a signal (expected a name such as SIGHUP, or a number)"
        )))
    }
}

/// A named task must be one of the allocation's (as its agent reports them, or its group
/// declares them).
async fn check_task(st: &AppState, row: &AllocRow, task: &str) -> Result<(), ServerError> {
    if task.is_empty() {
        return Ok(());
    }
    let a = &row.alloc;
    let mut tasks: Vec<String> = row
        .status
        .as_ref()
        .map(|s| s.task_states.keys().cloned().collect())
        .unwrap_or_default();
    let stored = keys::job_version(&a.namespace, &a.job_id, a.job_version);
    if let Some(e) = kv::get_json::<serde_json::Value>(st.store.as_ref(), &stored).await? {
        if let Some(job) = crate::specs::version_job(&e.value) {
            if let Some(g) = job.groups.iter().find(|g| g.name == a.task_group) {
                tasks.extend(g.tasks.iter().map(|t| t.name.clone()));
            }
        }
    }
    if tasks.iter().any(|t| t == task) {
        return Ok(());
    }
    tasks.sort();
    tasks.dedup();
    Err(ServerError::NotFound(format!(
        "allocation {} has no task {task:?} (tasks: {})",
        a.id,
        tasks.join(", ")
    )))
}

/// Sends `body` to `POST {agent}/v1/client/allocation/{id}/{action}`; the agent's 4xx answers
/// come back as the same kind of error.
async fn forward(
    st: &AppState,
    row: &AllocRow,
    action: &str,
    body: &serde_json::Value,
) -> Result<Json<serde_json::Value>, ServerError> {
    let node = crate::reads::get_node(st, &row.alloc.node).await?;
    let consequence = format!("its tasks cannot be sent a {action}");
    let url = format!(
        "{}/v1/client/allocation/{}/{action}",
        crate::allocs::agent_url(&node.node, &consequence)?,
        row.alloc.id
    );
    let resp = st
        .http
        .post(&url)
        .json(body)
        .send()
        .await
        .map_err(|e| ServerError::Agent(format!("{url}: {e}")))?;
    let code = resp.status();
    if code.is_success() {
        return Ok(Json(serde_json::json!({})));
    }
    let text = resp.text().await.unwrap_or_default();
    Err(match code.as_u16() {
        400 => ServerError::BadRequest(text),
        404 => ServerError::NotFound(text),
        409 => ServerError::Conflict(text),
        _ => ServerError::Agent(format!("{url} answered {code}: {text}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_names_or_numbers() {
        for ok in ["SIGHUP", "hup", "SIGUSR1", "9", "64", " TERM "] {
            assert!(check_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["", "SIGNOPE", "0", "65", "-1", "SIG"] {
            assert!(check_signal(bad).is_err(), "{bad}");
        }
    }
}
