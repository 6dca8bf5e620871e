//! The simulated clock: Unix milliseconds that move only when the harness advances them. The
//! controllers read it through their injected `clock`; nothing in a run reads the wall clock for
//! a decision.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// 2026-01-01T00:00:00Z, where every run starts.
pub const EPOCH_MS: i64 = 1_767_225_600_000;

#[derive(Debug, Clone)]
pub struct SimClock {
    ms: Arc<AtomicI64>,
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock {
            ms: Arc::new(AtomicI64::new(EPOCH_MS)),
        }
    }
}

impl SimClock {
    pub fn now(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }

    pub fn advance(&self, ms: i64) {
        self.ms.fetch_add(ms.max(0), Ordering::SeqCst);
    }

    /// Milliseconds since the run started.
    pub fn elapsed(&self) -> i64 {
        self.now() - EPOCH_MS
    }

    /// The clock as the controllers take it.
    pub fn source(&self) -> Arc<dyn Fn() -> i64 + Send + Sync> {
        let ms = self.ms.clone();
        Arc::new(move || ms.load(Ordering::SeqCst))
    }
}
