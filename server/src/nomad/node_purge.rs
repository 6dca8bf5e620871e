//! `POST|PUT /v1/node/{id}/purge`: forgets a node, as Nomad's purge does. Its registration,
//! spec (eligibility, drain), lifecycle record and drain report are deleted, and each of its
//! allocations still desired to run and not finished becomes `lost` ("node <name> purged", the
//! client status the node-lifecycle loop gives allocations of a node that stays away) and
//! desired `stop`, in the same transaction: the jobs controller places a replacement for each
//! wherever it fits, as for any stopped allocation its job still wants, and the collector
//! deletes them (finished and stopped). Stopping them here, rather than leaving the lost
//! originals desired to run as a disconnected node's are, is what forgetting the node means:
//! it will not come back to them. The allocations go in batches of [`ALLOCS_PER_TXN`] (the store
//! takes at most 128 operations in a transaction), each compared with the allocations as read;
//! the node's keys go last, in a transaction of their own compared with the node as read. A
//! purge cut short (a crash, a lost connection, a node that changed meanwhile: 409) leaves the
//! node known with some of its allocations stopped, and running it again finishes the work:
//! an allocation already stopped is left as it is.
//!
//! The heartbeat lease is revoked: an agent still running finds it gone at its next renewal
//! and registers the node again (Nomad's behaviour: a purged node that is alive rejoins); it
//! stops the allocations it finds stopped.
//!
//! Answers Nomad's `NodeEvalUpdateResponse` (`EvalIDs`: a pending evaluation per job with
//! allocations on the node, `node-update`; `EvalCreateIndex`; `NodeModifyIndex`, the purge's
//! revision; `Index`).

use std::collections::HashMap;

use axum::extract::{Path, State};
use nomos_api::eval::triggers;
use nomos_api::{AllocStatus, Allocation, ClientStatus, DesiredStatus};
use nomos_controllers::write::set_desired;
use nomos_store::{keys, Compare, CompareOp, KeySelector, RangeOptions, StoreError, Txn, TxnOp};

use super::evals::{evaluate_node_jobs, NodeEvaluateResponse};
use super::query::QueryOptions;
use super::respond::Answer;
use crate::error::ServerError;
use crate::kv::{self, Entry};
use crate::reads::get_node;
use crate::AppState;

/// Allocations per transaction (two operations each; the store allows 128).
const ALLOCS_PER_TXN: usize = 50;

/// The writes that make one allocation lost and stopped, compared with the allocation as read
/// (the status is the agent's report: a purge overrides it, as the node is gone).
#[derive(Clone)]
struct AllocChange {
    compare: Compare,
    ops: [TxnOp; 2],
}

/// The changes to write: for each allocation desired to run whose agent reported no end, its
/// status `lost` and its desired status `stop`.
fn lost_and_stopped(
    node: &str,
    allocs: &[Entry<Allocation>],
    statuses: &HashMap<String, Entry<AllocStatus>>,
    now_ms: i64,
) -> Result<Vec<AllocChange>, ServerError> {
    let why = format!("node {node} purged");
    let mut out = Vec::new();
    for entry in allocs {
        let a = &entry.value;
        let current = statuses.get(&a.id);
        let finished = current.is_some_and(|s| s.value.client_status.is_terminal());
        if a.desired_status != DesiredStatus::Run || finished {
            continue;
        }
        let mut status = current
            .map(|s| s.value.clone())
            .unwrap_or_else(|| AllocStatus {
                alloc_id: a.id.clone(),
                ..Default::default()
            });
        status.client_status = ClientStatus::Lost;
        status.client_description = why.clone();
        status.modified_at_ms = now_ms;
        let stopped = set_desired(
            a,
            DesiredStatus::Stop,
            &format!("{why}; allocation lost"),
            now_ms,
        );
        let encode =
            |v: serde_json::Result<Vec<u8>>| v.map_err(|e| ServerError::Internal(e.to_string()));
        let status_key = keys::alloc_status(node, &a.id);
        let alloc_key = keys::alloc(node, &a.id);
        out.push(AllocChange {
            compare: Compare::mod_revision(
                alloc_key.as_str(),
                CompareOp::Equal,
                entry.mod_revision,
            ),
            ops: [
                TxnOp::put(status_key.as_str(), encode(serde_json::to_vec(&status))?),
                TxnOp::put(alloc_key.as_str(), encode(serde_json::to_vec(&stopped))?),
            ],
        });
    }
    Ok(out)
}

fn unzip(changes: &[AllocChange]) -> (Vec<Compare>, Vec<TxnOp>) {
    let compares = changes.iter().map(|c| c.compare.clone()).collect();
    let ops = changes.iter().flat_map(|c| c.ops.clone()).collect();
    (compares, ops)
}

/// Writes one batch of changes in one transaction. When one of them was written meanwhile
/// (the controller stopped it, say), the others go one by one and what changed is left as it
/// now is. Safe to run again: a stopped allocation is not changed a second time.
async fn stop_batch(st: &AppState, batch: &[AllocChange]) -> Result<(), ServerError> {
    let (compares, ops) = unzip(batch);
    let txn = Txn::new().when(compares).and_then(ops);
    if st.store.txn(txn).await?.succeeded {
        return Ok(());
    }
    for change in batch {
        let (compares, ops) = unzip(std::slice::from_ref(change));
        st.store
            .txn(Txn::new().when(compares).and_then(ops))
            .await?;
    }
    Ok(())
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
    let changes = lost_and_stopped(&n, &allocs, &statuses, nomos_api::now_ms())?;
    for batch in changes.chunks(ALLOCS_PER_TXN) {
        stop_batch(&st, batch).await?;
    }
    let compares = vec![Compare::mod_revision(
        keys::node(&n),
        CompareOp::Equal,
        node.modify_index,
    )];
    let ops = [
        keys::node(&n),
        keys::node_spec(&n),
        keys::node_status(&n),
        keys::drain_status(&n),
        keys::heartbeat(&n),
        keys::usage(&n),
    ]
    .into_iter()
    .map(TxnOp::delete)
    .collect();
    let node_modify_index = kv::commit(store, compares, ops, || {
        format!("node {n:?} changed while it was being purged; retry")
    })
    .await?;
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
