//! Memory limits of the embedded store's watches: the shared replay budget (bytes of history
//! copied into responses that consumers have not yet come back for) and each watcher's live
//! queue (batches published by the writer and not yet taken).
//!
//! Replay is counted from the moment a watcher copies events out of the history until its
//! consumer polls it again (it has taken that response on) or drops it. A watcher that finds
//! the budget spent waits for a release; it never blocks the writer.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

/// What the watches of one embedded store may hold in memory (documented in
/// `docs/configuration.md`, "Store watch limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchLimits {
    /// Most bytes of history in one catch-up response. Responses end at a revision boundary;
    /// one revision larger than this is sent alone.
    pub replay_chunk_bytes: usize,
    /// Most bytes of catch-up responses outstanding across all watchers of the store; a
    /// watcher that would go past it waits until others' consumers take theirs.
    pub replay_budget_bytes: usize,
    /// Most bytes of live events queued for one watcher whose consumer does not keep up. Past
    /// it the watcher is moved to catch-up and later served from the history (or told
    /// `compacted` if the history moved past it), as etcd does with slow watchers.
    pub live_queue_bytes: usize,
}

/// 256 KiB per catch-up response.
pub const DEFAULT_REPLAY_CHUNK_BYTES: usize = 256 * 1024;
/// 64 MiB of catch-up responses outstanding, all watchers together.
pub const DEFAULT_REPLAY_BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// 4 MiB of live events queued per watcher.
pub const DEFAULT_LIVE_QUEUE_BYTES: usize = 4 * 1024 * 1024;

impl Default for WatchLimits {
    fn default() -> Self {
        WatchLimits {
            replay_chunk_bytes: DEFAULT_REPLAY_CHUNK_BYTES,
            replay_budget_bytes: DEFAULT_REPLAY_BUDGET_BYTES,
            live_queue_bytes: DEFAULT_LIVE_QUEUE_BYTES,
        }
    }
}

/// A snapshot of the replay budget, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    /// Bytes of catch-up responses outstanding now.
    pub buffered_bytes: usize,
    /// The most ever outstanding at once.
    pub peak_bytes: usize,
    /// The configured budget ([`WatchLimits::replay_budget_bytes`]).
    pub budget_bytes: usize,
}

#[derive(Default)]
struct BudgetState {
    used: usize,
    peak: usize,
    waiting: Vec<Waker>,
}

impl BudgetState {
    fn wait(&mut self, waker: &Waker) {
        if !self.waiting.iter().any(|w| w.will_wake(waker)) {
            self.waiting.push(waker.clone());
        }
    }
}

/// The replay budget shared by every watcher of one store.
pub(crate) struct ReplayBudget {
    total: usize,
    state: Mutex<BudgetState>,
}

impl ReplayBudget {
    pub fn new(total: usize) -> Arc<Self> {
        Arc::new(ReplayBudget {
            total: total.max(1),
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BudgetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes that can be reserved now; when none, `waker` is woken on the next release.
    pub fn available(&self, waker: &Waker) -> usize {
        let mut state = self.lock();
        let left = self.total - state.used;
        if left == 0 {
            state.wait(waker);
        }
        left
    }

    /// Reserves `bytes` (clamped to the whole budget: a single revision larger than the budget
    /// counts as all of it); `None`, with `waker` registered, when they do not fit now.
    pub fn reserve(self: &Arc<Self>, bytes: usize, waker: &Waker) -> Option<Permit> {
        let bytes = bytes.min(self.total);
        let mut state = self.lock();
        if state.used + bytes > self.total {
            state.wait(waker);
            return None;
        }
        state.used += bytes;
        state.peak = state.peak.max(state.used);
        Some(Permit {
            budget: self.clone(),
            bytes,
        })
    }

    pub fn stats(&self) -> ReplayStats {
        let state = self.lock();
        ReplayStats {
            buffered_bytes: state.used,
            peak_bytes: state.peak,
            budget_bytes: self.total,
        }
    }
}

/// Bytes of the replay budget held by one outstanding response; released on drop.
pub(crate) struct Permit {
    budget: Arc<ReplayBudget>,
    bytes: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.budget.lock();
            state.used -= self.bytes;
            std::mem::take(&mut state.waiting)
        };
        for waker in waiting {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_exceed_the_budget_and_releases_wake_waiters() {
        let budget = ReplayBudget::new(100);
        let waker = futures::task::noop_waker();
        let a = budget.reserve(60, &waker).expect("fits");
        assert!(budget.reserve(50, &waker).is_none());
        let b = budget.reserve(40, &waker).expect("fits exactly");
        assert_eq!(budget.available(&waker), 0);
        drop(a);
        assert_eq!(budget.stats().buffered_bytes, 40);
        drop(b);
        let stats = budget.stats();
        assert_eq!((stats.buffered_bytes, stats.peak_bytes), (0, 100));
    }

    #[test]
    fn a_reservation_larger_than_the_budget_counts_as_all_of_it() {
        let budget = ReplayBudget::new(10);
        let waker = futures::task::noop_waker();
        let whole = budget.reserve(1000, &waker).expect("clamped");
        assert_eq!(budget.stats().buffered_bytes, 10);
        drop(whole);
        assert_eq!(budget.stats().buffered_bytes, 0);
    }
}
