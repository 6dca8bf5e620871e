//! The node-lifecycle loop's executor: for every registered node, decide from its heartbeat key
//! and apply: the node's record at `/nomos/nodestatus/<node>`, client statuses on its allocations
//! (only while its agent is away, or to undo such a write; each compares on the status key's
//! revision so a fresh report from the agent always wins), and stops / resumes of allocations.

use std::collections::HashMap;

use async_trait::async_trait;
use nomos_api::{AllocStatus, Allocation, DesiredStatus, NodeStatus};
use nomos_store::{keys, Compare, TxnOp};

use super::{decide, node_status_key, NodeAlloc, NodeLifecycle, NodePlan, ObservedAlloc};
use crate::loops::ctx::{Ctx, Loop, LoopName, PassOutcome};
use crate::loops::metrics::StatusLabel;
use crate::loops::view::{Part, Rev, View};
use crate::write::{alloc_update, encode, put, set_desired, unchanged};
use crate::ControllerError;

/// The node-lifecycle loop: a node's status from its heartbeat, and what that means for its allocations.
pub struct NodesLoop;

#[async_trait]
impl Loop for NodesLoop {
    fn name(&self) -> LoopName {
        LoopName::Nodes
    }

    fn reads(&self) -> &'static [Part] {
        &[
            Part::Specs,
            Part::Versions,
            Part::Allocs,
            Part::AllocStatus,
            Part::Nodes,
            Part::Heartbeats,
            Part::NodeLifecycle,
        ]
    }

    fn wakes_on(&self) -> &'static [Part] {
        &[
            Part::Allocs,
            Part::AllocStatus,
            Part::Nodes,
            Part::Heartbeats,
        ]
    }

    async fn pass(&self, ctx: &Ctx, view: &View, now: i64) -> Result<PassOutcome, ControllerError> {
        pass(ctx, view, now).await
    }
}

pub async fn pass(ctx: &Ctx, view: &View, now: i64) -> Result<PassOutcome, ControllerError> {
    let mut outcome = PassOutcome::default();
    let by_prev = view.replacements_by_previous();
    let mut counts = [0i64; 4];
    let by_node = view.allocs_by_node();
    for name in view.nodes.keys() {
        let on_node = by_node
            .get(name.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let allocs = node_allocs(view, on_node, &by_prev);
        let previous = view.lifecycle.get(name);
        let heartbeat = view.heartbeats.contains(name);
        let plan = decide(
            name,
            heartbeat,
            previous.map(|p| &p.value),
            &allocs,
            now,
            &ctx.config.lifecycle,
        );
        counts[status_index(plan.record.status)] += 1;
        let changes = changes_of(view, name, &plan, previous, heartbeat, now)?;
        // One transaction per node (chunked when huge): statuses, stops, resumes and the record
        // land together, so the jobs controller never sees half of a reconnect (an original
        // running again beside its replacement, or neither of them).
        let mut all_ok = true;
        for chunk in changes.chunks(60) {
            if !all_ok {
                break;
            }
            let (compares, ops): (Vec<Compare>, Vec<TxnOp>) = chunk.iter().cloned().unzip();
            all_ok = ctx.commit(compares, ops).await?;
        }
        if !all_ok {
            outcome.wake_at_ms = Some(now + 200);
        }
        if let Some(w) = plan.wake_at_ms {
            outcome.wake_at_ms = Some(outcome.wake_at_ms.map_or(w, |x| x.min(w)));
        }
    }
    for status in [
        NodeStatus::Initializing,
        NodeStatus::Ready,
        NodeStatus::Disconnected,
        NodeStatus::Down,
    ] {
        let label = StatusLabel {
            status: format!("{status:?}").to_lowercase(),
        };
        ctx.metrics
            .nodes
            .get_or_create(&label)
            .set(counts[status_index(status)]);
    }
    Ok(outcome)
}

/// A node's allocations, with what the lifecycle decision needs about each.
fn node_allocs(
    view: &View,
    on_node: &[&Rev<Allocation>],
    by_prev: &HashMap<&str, Vec<ObservedAlloc>>,
) -> Vec<NodeAlloc> {
    on_node
        .iter()
        .map(|a| {
            let group = view
                .job_of(&a.value)
                .and_then(|j| j.groups.iter().find(|g| g.name == a.value.task_group));
            NodeAlloc {
                observed: view.observe(&a.value),
                disconnect: group.and_then(|g| g.disconnect.clone()),
                max_client_disconnect_ns: group.and_then(|g| g.max_client_disconnect_ns),
                replacements: by_prev
                    .get(a.value.id.as_str())
                    .cloned()
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// The writes of one node's plan, in the order they must land: client statuses, stops and
/// resumes, and the node's record.
fn changes_of(
    view: &View,
    name: &str,
    plan: &NodePlan,
    previous: Option<&Rev<NodeLifecycle>>,
    heartbeat: bool,
    now: i64,
) -> Result<Vec<(Compare, TxnOp)>, ControllerError> {
    let mut changes: Vec<(Compare, TxnOp)> = Vec::new();
    for s in &plan.set_status {
        let k = keys::alloc_status(name, &s.alloc_id);
        let cur = view.alloc_status.get(&s.alloc_id);
        let mut st = cur.map(|c| c.value.clone()).unwrap_or_else(|| AllocStatus {
            alloc_id: s.alloc_id.clone(),
            ..Default::default()
        });
        st.client_status = s.status;
        st.client_description = s.description.clone();
        st.modified_at_ms = now;
        let value = encode(&k, &st, "allocation status")?;
        changes.push((
            unchanged(&k, cur.map(|c| c.mod_revision).unwrap_or(0)),
            put(&k, value),
        ));
    }
    let resume_reason = "node reconnected; disconnect.reconcile keeps the original";
    let desired = plan
        .stop
        .iter()
        .map(|s| (s.alloc_id.as_str(), DesiredStatus::Stop, s.reason.as_str()))
        .chain(
            plan.resume
                .iter()
                .map(|id| (id.as_str(), DesiredStatus::Run, resume_reason)),
        );
    for (id, want, reason) in desired {
        if let Some(change) = desired_change(view, id, want, reason, now)? {
            changes.push(change);
        }
    }
    if previous.map(|p| &p.value) != Some(&plan.record) {
        let k = node_status_key(name);
        let value = encode(&k, &plan.record, "node lifecycle")?;
        let record = (
            unchanged(&k, previous.map(|p| p.mod_revision).unwrap_or(0)),
            put(&k, value),
        );
        // When changes need several transactions, the record must never lose a mark whose
        // status landed: marking (node away) writes the record first, with what each
        // allocation's status was; restoring (node back) writes it last, so a restore cut
        // short is retried from the marks.
        if heartbeat {
            changes.push(record);
        } else {
            changes.insert(0, record);
        }
        if previous.map(|p| p.value.status) != Some(plan.record.status) {
            tracing::info!(node = %name, status = ?plan.record.status, "node status changed");
        }
    }
    Ok(changes)
}

fn status_index(s: NodeStatus) -> usize {
    match s {
        NodeStatus::Initializing => 0,
        NodeStatus::Ready => 1,
        NodeStatus::Disconnected => 2,
        NodeStatus::Down => 3,
    }
}

/// The write that sets an allocation's desired status, if it changes anything.
fn desired_change(
    view: &View,
    id: &str,
    desired: DesiredStatus,
    reason: &str,
    now: i64,
) -> Result<Option<(Compare, TxnOp)>, ControllerError> {
    let Some(cur) = view.allocs.get(id) else {
        return Ok(None);
    };
    if cur.value.desired_status == desired {
        return Ok(None);
    }
    let a = set_desired(&cur.value, desired, reason, now);
    Ok(Some(alloc_update(&a, cur.mod_revision)?))
}
