//! Resource usage as Nomad's client API reports it, asked of the node's agent (which samples
//! its drivers and `/proc` when asked; see the agent's `stats` module):
//! - `GET /v1/client/allocation/{alloc}/stats`: `AllocResourceUsage` (`ResourceUsage` with
//!   `MemoryStats` and `CpuStats`, `Tasks` by name, `Timestamp`);
//! - `GET /v1/client/stats?node_id=`: `HostStats` (`Memory`, `CPU`, `DiskStats`, `Uptime`,
//!   `Timestamp`) of the node named (by ID, name or unique prefix); without `node_id`, of
//!   the only node there is.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::query::QueryOptions;
use crate::allocs::{agent_url, find_alloc};
use crate::error::ServerError;
use crate::reads::{all_nodes, get_node};
use crate::AppState;

/// `GET /v1/client/allocation/{alloc}/stats`.
pub async fn alloc_stats(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ServerError> {
    let view = find_alloc(&st, &id).await?;
    let node = get_node(&st, &view.allocation.node).await?;
    let agent = agent_url(&node.node, "its allocations' resource usage cannot be read")?;
    let url = format!("{agent}/v1/client/allocation/{}/stats", view.allocation.id);
    forward(&st, &url).await
}

/// `GET /v1/client/stats`.
pub async fn host_stats(
    State(st): State<AppState>,
    q: QueryOptions,
) -> Result<Response, ServerError> {
    let node = match q.param("node_id").filter(|n| !n.is_empty()) {
        Some(n) => get_node(&st, n).await?,
        None => {
            let mut all = all_nodes(&st).await?;
            if all.len() != 1 {
                return Err(ServerError::BadRequest(format!(
                    "{} nodes are registered; name one with node_id",
                    all.len()
                )));
            }
            all.remove(0)
        }
    };
    let agent = agent_url(&node.node, "its resource usage cannot be read")?;
    forward(&st, &format!("{agent}/v1/client/stats")).await
}

/// The agent's JSON answer as it is; its 404 (an allocation it does not run) is the client's.
async fn forward(st: &AppState, url: &str) -> Result<Response, ServerError> {
    let resp = st
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| ServerError::Agent(format!("{url}: {e}")))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| ServerError::Agent(format!("{url}: {e}")))?;
    if status.as_u16() == 404 || status.as_u16() == 409 {
        return Err(ServerError::NotFound(format!(
            "{} (the allocation runs no task on its node)",
            String::from_utf8_lossy(&body)
        )));
    }
    if !status.is_success() {
        return Err(ServerError::Agent(format!("{url} answered {status}")));
    }
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response())
}
