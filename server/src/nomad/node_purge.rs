//! `POST|PUT /v1/node/{id}/purge`: forgets a node, as Nomad's purge does. Its registration,
//! spec (eligibility, drain), lifecycle record and drain report are deleted, and each of its
//! allocations still desired to run and not finished is marked `lost` ("node <name> purged"),
//! as the node-lifecycle loop marks them when a node stays away past `lost_after`. The jobs
//! controller then sees them on a node that is gone (`down`) and does what it does for a lost
//! node: stops them and places their successors elsewhere; the collector deletes them once
//! stopped. The first transaction deletes the node keys with the first marks, so the
//! controller never sees a `lost` allocation on a node that is still there.
//!
//! The heartbeat lease is revoked: an agent still running finds it gone at its next renewal
//! and registers the node again (Nomad's behaviour: a purged node that is alive rejoins).
//!
//! Answers Nomad's `NodeEvalUpdateResponse` (`EvalIDs`: a pending evaluation per job with
//! allocations on the node, `node-update`; `EvalCreateIndex`; `NodeModifyIndex`, the purge's
//! revision; `Index`).

use std::collections::HashMap;

use axum::extract::{Path, State};
use nomos_api::eval::triggers;
use nomos_api::{AllocStatus, Allocation, ClientStatus, DesiredStatus};
use nomos_store::{keys, Compare, CompareOp, KeySelector, RangeOptions, StoreError, Txn, TxnOp};

use super::evals::{evaluate_node_jobs, NodeEvaluateResponse};
use super::query::QueryOptions;
use super::respond::Answer;
use crate::error::ServerError;
use crate::kv::{self, Entry};
use crate::reads::get_node;
use crate::AppState;

/// Status marks per transaction (the store allows 128 operations).
const MARKS_PER_TXN: usize = 100;

/// The `lost` marks to write: `(compare on the status key, its new value)` for each
/// allocation desired to run whose agent reported no end.
fn lost_marks(
    node: &str,
    allocs: &[Entry<Allocation>],
    statuses: &HashMap<String, Entry<AllocStatus>>,
    now_ms: i64,
) -> Result<Vec<(Compare, TxnOp)>, ServerError> {
    let mut out = Vec::new();
    for a in allocs.iter().map(|e| &e.value) {
        let current = statuses.get(&a.id);
        let finished = current.is_some_and(|s| s.value.client_status.is_terminal());
        if a.desired_status != DesiredStatus::Run || finished {
            continue;
        }
        let key = keys::alloc_status(node, &a.id);
        let mut status = current
            .map(|s| s.value.clone())
            .unwrap_or_else(|| AllocStatus {
                alloc_id: a.id.clone(),
                ..Default::default()
            });
        status.client_status = ClientStatus::Lost;
        status.client_description = format!("node {node} purged");
        status.modified_at_ms = now_ms;
        let value =
            serde_json::to_vec(&status).map_err(|e| ServerError::Internal(e.to_string()))?;
        let rev = current.map_or(0, |s| s.mod_revision);
        out.push((
            Compare::mod_revision(key.as_str(), CompareOp::Equal, rev),
            TxnOp::put(key.as_str(), value),
        ));
    }
    Ok(out)
}

/// `POST|PUT /v1/node/{id}/purge`.
pub async fn purge(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Answer<NodeEvaluateResponse>, ServerError> {
    let node = get_node(&st, &name).await?;
    let n = node.node.name.clone();
    let store = st.store.as_ref();
    let allocs: Vec<Entry<Allocation>> =
        kv::list_json(store, &keys::allocs_prefix(Some(&n))).await?;
    let statuses: HashMap<String, Entry<AllocStatus>> =
        kv::list_json::<AllocStatus>(store, &keys::alloc_status_prefix(Some(&n)))
            .await?
            .into_iter()
            .filter_map(|e| {
                let id = e.key.rsplit('/').next()?.to_string();
                Some((id, e))
            })
            .collect();
    let heartbeat = store
        .range(
            KeySelector::key(keys::heartbeat(&n)),
            RangeOptions::default(),
        )
        .await?;
    let lease = heartbeat.kvs.first().map_or(0, |kv| kv.lease);
    let marks = lost_marks(&n, &allocs, &statuses, nomos_api::now_ms())?;
    let mut chunks = marks.chunks(MARKS_PER_TXN);
    let (mut compares, mut ops): (Vec<Compare>, Vec<TxnOp>) =
        chunks.next().unwrap_or_default().iter().cloned().unzip();
    compares.push(Compare::mod_revision(
        keys::node(&n),
        CompareOp::Equal,
        node.modify_index,
    ));
    for key in [
        keys::node(&n),
        keys::node_spec(&n),
        keys::node_status(&n),
        keys::drain_status(&n),
        keys::heartbeat(&n),
    ] {
        ops.push(TxnOp::delete(key));
    }
    let resp = st
        .store
        .txn(Txn::new().when(compares).and_then(ops))
        .await?;
    if !resp.succeeded {
        return Err(ServerError::Conflict(format!(
            "node {n:?} or an allocation's status on it changed while it was being purged; retry"
        )));
    }
    let node_modify_index = resp.revision;
    for chunk in chunks {
        // A status the agent rewrote meanwhile is its news: the controller reads it.
        let (compares, ops): (Vec<Compare>, Vec<TxnOp>) = chunk.iter().cloned().unzip();
        st.store
            .txn(Txn::new().when(compares).and_then(ops))
            .await?;
    }
    if lease != 0 {
        match st.store.lease_revoke(lease).await {
            Ok(()) | Err(StoreError::LeaseNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (ids, eval_index) = evaluate_node_jobs(
        &st,
        &node.node,
        node_modify_index,
        triggers::NODE_UPDATE,
        true,
    )
    .await?;
    let index = eval_index.max(node_modify_index);
    let resp = NodeEvaluateResponse {
        eval_ids: (!ids.is_empty()).then_some(ids),
        eval_create_index: eval_index,
        node_modify_index,
        index,
    };
    Ok(Answer::new(resp, index, &QueryOptions::default()))
}
