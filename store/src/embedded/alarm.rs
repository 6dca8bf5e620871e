//! Alarms of the embedded store, as etcd's: when a commit fails because the disk is full, the
//! writer rolls its in-memory state back to what is on disk, answers the batch's callers with
//! etcd's `database space exceeded`, and raises NOSPACE. While an alarm is up, writes are refused
//! at once (nothing is applied), reads, read-only transactions, watches and lease keep-alives
//! (kept in memory only) still work, and the writer sleeps between probes instead of spinning.
//! A probe write the size of the failed batch runs every [`PROBE_INTERVAL`]; once it commits,
//! the alarm clears by itself. `etcdctl alarm disarm` clears it at once (the next write tells).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::persist::Db;
use super::state::Effects;
use super::{now_ms, reply_fn, EmbeddedStore, Request, Shared};
use crate::{StoreError, Txn, TxnOp};

/// How often the writer retries a write while an alarm raised by the disk is up.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// etcd's alarm types (the values of its `AlarmType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmKind {
    /// The database could not grow: writes are refused until space is freed.
    NoSpace,
}

/// Why writes are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A commit failed for lack of space; `bytes` is about what the failed batch needed.
    DiskFull { bytes: usize },
    /// A commit failed for another reason (an I/O error).
    WriteFailed(String),
    /// Raised by an operator (`Maintenance.Alarm` ACTIVATE); only a DEACTIVATE clears it.
    Operator,
}

impl Cause {
    /// The error a refused write gets.
    pub fn error(&self) -> StoreError {
        match self {
            Cause::DiskFull { .. } | Cause::Operator => StoreError::NoSpace,
            Cause::WriteFailed(m) => StoreError::Backend(m.clone()),
        }
    }

    /// The cause a failed commit raises.
    pub fn of_commit_error(e: &StoreError, bytes: usize) -> Cause {
        match e {
            StoreError::NoSpace => Cause::DiskFull { bytes },
            other => Cause::WriteFailed(other.to_string()),
        }
    }

    fn probed(&self) -> bool {
        !matches!(self, Cause::Operator)
    }
}

/// The probes of the writer thread while an alarm raised by the disk is up.
pub(crate) struct Prober {
    last: Instant,
}

impl Prober {
    pub fn new() -> Self {
        Prober {
            last: Instant::now(),
        }
    }

    /// How long the writer may sleep while writes are refused: until the next probe, or a
    /// whole interval when there is nothing to probe (requests wake it up anyway); `None`
    /// when writes are accepted. Never zero for an overdue lease: leases wait too.
    pub fn wait(&self, shared: &Shared) -> Option<Duration> {
        let guard = shared.lock();
        if guard.failed.is_some() {
            return Some(PROBE_INTERVAL);
        }
        match &guard.alarm {
            Some(cause) if cause.probed() => {
                Some(PROBE_INTERVAL.saturating_sub(self.last.elapsed()))
            }
            Some(_) => Some(PROBE_INTERVAL),
            None => None,
        }
    }

    /// Probes when one is due; a probe that commits clears the alarm.
    pub fn probe_if_due(&mut self, shared: &Shared, db: &mut Option<Db>) {
        let bytes = match &shared.lock().alarm {
            Some(Cause::DiskFull { bytes }) => *bytes,
            Some(Cause::WriteFailed(_)) => 0,
            _ => return,
        };
        if self.last.elapsed() < PROBE_INTERVAL {
            return;
        }
        self.last = Instant::now();
        let Some(db) = db.as_mut() else { return };
        match db.probe(bytes) {
            Ok(()) => {
                let mut guard = shared.lock();
                if guard.alarm.as_ref().is_some_and(Cause::probed) {
                    tracing::info!(
                        "embedded store: a probe write committed; writes accepted again"
                    );
                    guard.alarm = None;
                }
            }
            Err(e) => tracing::debug!(error = %e, "embedded store: probe write failed"),
        }
    }

    /// Restarts the interval (after an alarm was raised).
    pub fn reset(&mut self) {
        self.last = Instant::now();
    }
}

/// Whether a transaction writes (in any branch): such a transaction is refused under an alarm.
fn writes(txn: &Txn) -> bool {
    txn.success.iter().chain(&txn.failure).any(|op| match op {
        TxnOp::Range(..) => false,
        TxnOp::Put { .. } | TxnOp::Delete(..) => true,
        TxnOp::Txn(inner) => writes(inner),
    })
}

/// Answers a batch while an alarm is up; returns whether it asked the writer to stop.
pub(crate) fn answer_under_alarm(shared: &Shared, requests: Vec<Request>, cause: &Cause) -> bool {
    let mut shutdown = false;
    let mut guard = shared.lock();
    let visible = shared.visible.load(Ordering::Acquire);
    for r in requests {
        let mut fx = Effects::default();
        match r {
            Request::Txn(txn, reply) if !writes(&txn) => {
                let res = super::apply_txn(&shared.log, &mut guard.state, &txn, visible, &mut fx);
                reply_fn(reply, res)(None);
            }
            // Kept in memory only: a restart before the disk has room forgets the renewal.
            Request::LeaseKeepAlive(id, reply) => {
                let res = guard.state.lease_keep_alive(id, now_ms(), &mut fx);
                reply_fn(reply, res)(None);
            }
            Request::Shutdown => shutdown = true,
            other => super::fail_with(other, || cause.error()),
        }
    }
    shutdown
}

impl EmbeddedStore {
    /// The alarms up now (`etcdctl alarm list`).
    pub fn alarms(&self) -> Vec<AlarmKind> {
        match self.shared.lock().alarm {
            Some(Cause::DiskFull { .. } | Cause::Operator) => vec![AlarmKind::NoSpace],
            _ => Vec::new(),
        }
    }

    /// Raises an alarm by hand, as etcd's `Maintenance.Alarm` ACTIVATE: writes are refused
    /// until it is deactivated.
    pub fn activate_alarm(&self, kind: AlarmKind) {
        let AlarmKind::NoSpace = kind;
        let mut guard = self.shared.lock();
        if guard.alarm.is_none() {
            tracing::warn!("embedded store: NOSPACE alarm raised by an operator");
        }
        guard.alarm = Some(Cause::Operator);
    }

    /// Clears an alarm (`etcdctl alarm disarm`): writes are tried again at once, and a write
    /// that still cannot be persisted raises the alarm again.
    pub fn deactivate_alarm(&self, kind: AlarmKind) {
        let AlarmKind::NoSpace = kind;
        let mut guard = self.shared.lock();
        if guard.alarm.take().is_some() {
            tracing::info!("embedded store: alarm disarmed; writes accepted again");
        }
    }

    /// The store's ID, from its identity file (`None` for a store in memory).
    pub fn store_id(&self) -> Option<&str> {
        self.shared.store_id.as_deref()
    }
}
