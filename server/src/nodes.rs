//! Node handlers: list and get (the agent's registration joined with the user's node spec,
//! liveness from `/nomos/heartbeats/`, `down` from the node-lifecycle record and the drain
//! report), eligibility and drain (written to `/nomos/nodespec/<node>`,
//! the key users own; the drain loop acts on it).

use axum::extract::{Path, State};
use axum::Json;
use nomos_api::{DrainSpec, NodeSpec};
use nomos_store::keys;

use crate::body::JsonBody;
use crate::error::ServerError;
use crate::kv;
use crate::reads::{all_nodes, get_node};
use crate::views::{DrainRequest, EligibilityRequest, NodeView};
use crate::AppState;

/// `GET /v1/nodes`.
pub async fn list(State(st): State<AppState>) -> Result<Json<Vec<NodeView>>, ServerError> {
    Ok(Json(all_nodes(&st).await?))
}

/// `GET /v1/node/{name}`.
pub async fn get(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<NodeView>, ServerError> {
    Ok(Json(get_node(&st, &name).await?))
}

/// Reads, changes and writes a node's spec with a compare on its mod_revision (retrying once on
/// a concurrent change).
async fn update_spec(
    st: &AppState,
    name: &str,
    change: impl Fn(&mut NodeSpec),
) -> Result<NodeView, ServerError> {
    let node = get_node(st, name).await?;
    let key = keys::node_spec(&node.node.name);
    for _ in 0..3 {
        let (mut spec, rev) = match kv::get_json::<NodeSpec>(st.store.as_ref(), &key).await? {
            Some(e) => (e.value, e.mod_revision),
            None => (NodeSpec::default(), 0),
        };
        change(&mut spec);
        match kv::put_if(st.store.as_ref(), &key, &spec, rev).await {
            Ok(_) => return get_node(st, &node.node.name).await,
            Err(ServerError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ServerError::Conflict(format!(
        "{key} keeps changing; try again"
    )))
}

/// `POST /v1/node/{name}/eligibility` `{ "eligible": bool }`.
pub async fn eligibility(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<EligibilityRequest>,
) -> Result<Json<NodeView>, ServerError> {
    Ok(Json(
        update_spec(&st, &name, |s| s.eligible = Some(req.eligible)).await?,
    ))
}

/// The longest drain deadline accepted: a year.
pub const MAX_DRAIN_DEADLINE_SECS: u64 = 365 * 24 * 3600;

/// When a drain started at `now` stops what is left (0: never); 400 past a year.
fn drain_deadline(now: i64, deadline_secs: u64) -> Result<i64, ServerError> {
    if deadline_secs > MAX_DRAIN_DEADLINE_SECS {
        return Err(ServerError::BadRequest(format!(
            "deadline_secs is {deadline_secs}: at most {MAX_DRAIN_DEADLINE_SECS} (a year)"
        )));
    }
    // At most a year of milliseconds: no overflow.
    Ok(match deadline_secs {
        0 => 0,
        secs => now + secs as i64 * 1000,
    })
}

/// `POST /v1/node/{name}/drain` `{ "enable": true, "deadline_secs": N, "ignore_system_jobs": b }`:
/// starts a drain (marking the node ineligible) or, with `enable: false`, cancels it and makes
/// the node eligible again (unless `keep_ineligible`), as Nomad's `node drain -disable` does.
pub async fn drain(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<DrainRequest>,
) -> Result<Json<NodeView>, ServerError> {
    let now = nomos_api::now_ms();
    let deadline_ms = drain_deadline(now, req.deadline_secs)?;
    let view = update_spec(&st, &name, |s| {
        if req.enable {
            s.eligible = Some(false);
            s.drain = Some(DrainSpec {
                deadline_ms,
                ignore_system_jobs: req.ignore_system_jobs,
                started_at_ms: now,
            });
        } else {
            s.drain = None;
            if !req.keep_ineligible {
                s.eligible = Some(true);
            }
        }
    })
    .await?;
    Ok(Json(view))
}
