//! The node-lifecycle loop's decisions: from the presence of a node's heartbeat key, decide the
//! node's status and what happens to its allocations while it is away and when it returns.
//!
//! The agent keeps `/nomos/heartbeats/<node>` attached to a lease; the key vanishing is a missed
//! heartbeat. Rules:
//! - heartbeat gone: the node is `disconnected` at once and its running allocations `unknown`;
//!   nothing is replaced. After the group's `disconnect.lost_after` (cluster default 5 minutes)
//!   an allocation becomes `lost`, which lets the jobs controller replace it. The node is `down`
//!   after [`LifecycleConfig::down_after_ms`].
//! - heartbeat back before `lost_after`: every `unknown` allocation gets its previous status back;
//!   nothing moved, nothing restarts.
//! - heartbeat back after `lost_after`: per `disconnect.reconcile`; `keep_original` (the default,
//!   also used for `best_score` and `longest_running`) stops the replacements and keeps the
//!   originals (and lets an original the jobs controller stopped while it was lost run again);
//!   `keep_replacement` stops the originals that have a replacement.
//!
//! The loop's own record of a node (status, since when, which allocations it marked) lives at
//! `/nomos/nodestatus/<node>` ([`NodeLifecycle`]), so a restarted leader carries on where the
//! last one stopped. [`decide`] is pure; [`run`] applies its plan.

pub mod heartbeat;
pub mod run;

#[cfg(test)]
mod tests;

use nomos_api::{ClientStatus, DesiredStatus, Disconnect, NodeStatus};

pub use heartbeat::{lease_timing, HeartbeatConfig, LeaseTiming};

pub use nomos_store::keys::{node_status as node_status_key, NODE_STATUS_PREFIX};

pub use nomos_api::{AllocMark, NodeLifecycle};

/// How long after giving a returning node's lost allocations their status back the loop settles
/// originals and replacements (readers that watch statuses and allocations separately catch up
/// in between).
pub const RECONCILE_SETTLE_MS: i64 = 500;

/// Cluster-wide settings of the lifecycle loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleConfig {
    /// `lost_after` for groups that do not set one (Nomos' default: 5 minutes).
    pub default_lost_after_ms: i64,
    /// A node missing its heartbeat this long is `down`.
    pub down_after_ms: i64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            default_lost_after_ms: 300_000,
            down_after_ms: 300_000,
        }
    }
}

/// How to settle an original and its replacement when a lost node returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconcile {
    KeepOriginal,
    KeepReplacement,
}

impl Reconcile {
    /// `keep_original` (default), `keep_replacement`; `best_score` and `longest_running` keep the
    /// original too (it has run longest and was placed first).
    pub fn parse(s: &str) -> Self {
        match s {
            "keep_replacement" => Reconcile::KeepReplacement,
            _ => Reconcile::KeepOriginal,
        }
    }
}

/// One allocation placed on the node, with what the lifecycle decision needs about it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeAlloc {
    /// The allocation and what its agent reports (its fields and methods read through).
    pub observed: ObservedAlloc,
    /// The group's `disconnect` block, if any.
    pub disconnect: Option<Disconnect>,
    /// The group's `max_client_disconnect` (Nomad's older name for `lost_after`).
    pub max_client_disconnect_ns: Option<u64>,
    /// Allocations elsewhere that replace this one (their `previous_alloc` is its id).
    pub replacements: Vec<ObservedAlloc>,
}

pub use crate::observed::{ObservedAlloc, Stop};

impl std::ops::Deref for NodeAlloc {
    type Target = ObservedAlloc;

    fn deref(&self) -> &ObservedAlloc {
        &self.observed
    }
}

impl NodeAlloc {
    /// `lost_after` of this allocation's group, in ms.
    pub fn lost_after_ms(&self, config: &LifecycleConfig) -> i64 {
        let from_block = self
            .disconnect
            .as_ref()
            .map(|d| d.lost_after_ns)
            .filter(|n| *n > 0);
        match from_block.or(self.max_client_disconnect_ns) {
            Some(ns) => (ns / 1_000_000) as i64,
            None => config.default_lost_after_ms,
        }
    }

    /// The status the agent's task states say: running when every task runs, else pending.
    fn reported_status(&self) -> ClientStatus {
        let running = self.status.as_ref().is_some_and(|s| {
            !s.task_states.is_empty()
                && s.task_states
                    .values()
                    .all(|t| t.state == nomos_api::TaskRunState::Running)
        });
        if running {
            ClientStatus::Running
        } else {
            ClientStatus::Pending
        }
    }

    fn reconcile(&self) -> Reconcile {
        Reconcile::parse(
            self.disconnect
                .as_ref()
                .map(|d| d.reconcile.as_str())
                .unwrap_or(""),
        )
    }
}

/// A client status to write on an allocation (the agent's key; written only while the agent is
/// away, or to undo such a write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetClientStatus {
    pub alloc_id: String,
    pub status: ClientStatus,
    pub description: String,
}

/// What one evaluation of a node decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodePlan {
    /// The record to store (unchanged when nothing happened).
    pub record: NodeLifecycle,
    /// Client statuses to write on the node's allocations.
    pub set_status: Vec<SetClientStatus>,
    pub stop: Vec<Stop>,
    /// Originals kept by `keep_original` that were stopped while lost: desired `run` again.
    pub resume: Vec<String>,
    /// When to evaluate again if nothing changes before.
    pub wake_at_ms: Option<i64>,
}

/// One evaluation of `node` at `now_ms`: `heartbeat` says whether its heartbeat key exists.
pub fn decide(
    node: &str,
    heartbeat: bool,
    previous: Option<&NodeLifecycle>,
    allocs: &[NodeAlloc],
    now_ms: i64,
    config: &LifecycleConfig,
) -> NodePlan {
    let prev = previous.cloned().unwrap_or_default();
    if heartbeat {
        reconnected(node, prev, allocs, now_ms)
    } else {
        disconnected(node, prev, allocs, now_ms, config)
    }
}

fn reconnected(node: &str, prev: NodeLifecycle, allocs: &[NodeAlloc], now_ms: i64) -> NodePlan {
    let mut plan = NodePlan::default();
    let mut record = prev.clone();
    if prev.status != NodeStatus::Ready {
        record.status = NodeStatus::Ready;
        record.since_ms = now_ms;
    }
    record.disconnected_at_ms = None;
    record.marks.clear();
    for (id, mark) in &prev.marks {
        let Some(a) = allocs.iter().find(|a| &a.alloc.id == id) else {
            continue;
        };
        let current = a.client_status();
        if current == mark.marked && !mark.restored {
            // First give the allocation its status back; settle originals and replacements on a
            // later pass, so no reader ever sees a `lost` allocation without its replacement.
            plan.set_status.push(SetClientStatus {
                alloc_id: id.clone(),
                status: mark.previous,
                description: format!("node {node} reconnected"),
            });
            if mark.marked == ClientStatus::Lost {
                record.marks.insert(
                    id.clone(),
                    AllocMark {
                        restored: true,
                        ..mark.clone()
                    },
                );
                plan.wake_at_ms = Some(now_ms + RECONCILE_SETTLE_MS);
            }
            continue;
        }
        // The agent reporting a terminal state for the original settles it: keep the replacements.
        if mark.marked == ClientStatus::Lost && !current.is_terminal() {
            let live: Vec<&ObservedAlloc> = a.replacements.iter().filter(|r| r.is_live()).collect();
            // A replacement of a newer job version is an update, not a stand-in: the jobs
            // controller stopped (or will stop) the original for it, so the original never
            // comes back over it.
            let updated = live
                .iter()
                .any(|r| r.alloc.job_version > a.alloc.job_version);
            let strategy = if updated {
                Reconcile::KeepReplacement
            } else {
                a.reconcile()
            };
            match strategy {
                Reconcile::KeepReplacement if !live.is_empty() => {
                    if a.alloc.desired_status != DesiredStatus::Run {
                        continue; // already stopped
                    }
                    plan.stop.push(Stop::of(
                        &a.alloc,
                        "node reconnected; disconnect.reconcile keeps the replacement",
                    ));
                }
                _ => {
                    // Only in exchange for a live replacement: an original stopped for any other
                    // reason (the job stopped or scaled down while it was away) stays stopped.
                    if a.alloc.desired_status != DesiredStatus::Run && !live.is_empty() {
                        plan.resume.push(id.clone());
                    }
                    for r in live {
                        plan.stop.push(Stop::of(
                            &r.alloc,
                            format!("node {node} reconnected; disconnect.reconcile keeps the original {id}"),
                        ));
                    }
                }
            }
        }
    }
    plan.record = record;
    plan
}

fn disconnected(
    node: &str,
    prev: NodeLifecycle,
    allocs: &[NodeAlloc],
    now_ms: i64,
    config: &LifecycleConfig,
) -> NodePlan {
    let mut plan = NodePlan::default();
    let mut record = prev.clone();
    let since = match (prev.status, prev.disconnected_at_ms) {
        (NodeStatus::Disconnected | NodeStatus::Down, Some(t)) => t,
        _ => {
            record.status = NodeStatus::Disconnected;
            record.since_ms = now_ms;
            now_ms
        }
    };
    record.disconnected_at_ms = Some(since);
    let down_at = since + config.down_after_ms;
    let mut wake: Option<i64> = None;
    if now_ms >= down_at {
        if record.status != NodeStatus::Down {
            record.status = NodeStatus::Down;
            record.since_ms = now_ms;
        }
    } else {
        wake = Some(down_at);
    }
    // Forget marks of allocations that no longer exist.
    record
        .marks
        .retain(|id, _| allocs.iter().any(|a| &a.alloc.id == id));
    for a in allocs {
        let id = &a.alloc.id;
        let lost_at = since + a.lost_after_ms(config);
        match record.marks.get(id).cloned() {
            None => {
                let current = a.client_status();
                if a.alloc.desired_status != DesiredStatus::Run || current.is_terminal() {
                    continue;
                }
                // An `unknown` or `lost` without a mark is an earlier mark whose record was
                // never written: what to give back comes from the task states, never the mark.
                let current = match current {
                    ClientStatus::Unknown | ClientStatus::Lost => a.reported_status(),
                    other => other,
                };
                let (marked, lost) = if now_ms >= lost_at {
                    (ClientStatus::Lost, Some(now_ms))
                } else {
                    (ClientStatus::Unknown, None)
                };
                record.marks.insert(
                    id.clone(),
                    AllocMark {
                        previous: current,
                        marked,
                        lost_at_ms: lost,
                        restored: false,
                    },
                );
                plan.set_status
                    .push(describe(node, id, marked, since, lost_at));
                if lost.is_none() {
                    wake = min_opt(wake, lost_at);
                }
            }
            Some(mark) if mark.marked == ClientStatus::Unknown => {
                if now_ms >= lost_at {
                    record.marks.insert(
                        id.clone(),
                        AllocMark {
                            marked: ClientStatus::Lost,
                            lost_at_ms: Some(now_ms),
                            ..mark
                        },
                    );
                    plan.set_status
                        .push(describe(node, id, ClientStatus::Lost, since, lost_at));
                } else {
                    wake = min_opt(wake, lost_at);
                    // The agent's write (or anyone's) replaced the mark: put it back.
                    let current = a.client_status();
                    if current != ClientStatus::Unknown && !current.is_terminal() {
                        record.marks.insert(
                            id.clone(),
                            AllocMark {
                                previous: current,
                                ..mark
                            },
                        );
                        plan.set_status.push(describe(
                            node,
                            id,
                            ClientStatus::Unknown,
                            since,
                            lost_at,
                        ));
                    }
                }
            }
            Some(mark) => {
                // Lost and still away: anyone's later write (a restore before a new disconnect)
                // is marked again.
                let current = a.client_status();
                if current != ClientStatus::Lost && !current.is_terminal() {
                    record.marks.insert(
                        id.clone(),
                        AllocMark {
                            restored: false,
                            ..mark
                        },
                    );
                    plan.set_status
                        .push(describe(node, id, ClientStatus::Lost, since, lost_at));
                }
            }
        }
    }
    plan.record = record;
    plan.wake_at_ms = wake;
    plan
}

fn describe(
    node: &str,
    id: &str,
    status: ClientStatus,
    since: i64,
    lost_at: i64,
) -> SetClientStatus {
    let description = match status {
        ClientStatus::Lost => format!("node {node} missed its heartbeat for {}s (lost_after)", (lost_at - since) / 1000),
        _ => format!("node {node} missed its heartbeat; unknown until it returns or lost_after passes at {lost_at}"),
    };
    SetClientStatus {
        alloc_id: id.to_string(),
        status,
        description,
    }
}

fn min_opt(a: Option<i64>, b: i64) -> Option<i64> {
    Some(a.map_or(b, |a| a.min(b)))
}
