//! The controllers' shared words for allocations: one read as a controller sees it, the
//! allocation with what its agent reported ([`ObservedAlloc`]), and a request to stop one
//! ([`Stop`]). Every decision (the jobs reconcile, the system, drain, node-lifecycle and gc
//! loops) reads and writes these.

use nomos_api::{AllocStatus, Allocation, ClientStatus, DesiredStatus};

/// An allocation with what its agent reported (`None` until it did).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedAlloc {
    pub alloc: Allocation,
    pub status: Option<AllocStatus>,
}

impl ObservedAlloc {
    /// What the agent reported; `pending` until it did.
    pub fn client_status(&self) -> ClientStatus {
        self.status
            .as_ref()
            .map(|s| s.client_status)
            .unwrap_or_default()
    }

    /// Finished on its node: complete, failed or lost.
    pub fn is_terminal(&self) -> bool {
        self.client_status().is_terminal()
    }

    /// Desired to run and not finished (a pending allocation counts: it will run).
    pub fn is_live(&self) -> bool {
        self.alloc.desired_status == DesiredStatus::Run && !self.is_terminal()
    }
}

/// An allocation to set to `desired_status: stop`, and why (its `desired_description`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub alloc_id: String,
    pub node: String,
    pub reason: String,
}

impl Stop {
    pub fn of(alloc: &Allocation, reason: impl Into<String>) -> Self {
        Stop {
            alloc_id: alloc.id.clone(),
            node: alloc.node.clone(),
            reason: reason.into(),
        }
    }
}
