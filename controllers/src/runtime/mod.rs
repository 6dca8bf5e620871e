//! The reconcile runtime, kube-runtime style, on tokio:
//!
//! ```text
//! store ──list+watch──▶ reflector ──▶ sink (indexed cache) ──keys──▶ work queue ──▶ runner ──▶ reconcile
//!                                                                       ▲  backoff / requeue ──┘
//! election: each controller runs only while it holds its lease under /nomos/election/<name>
//! ```
//!
//! - [`reflector`]: list at a revision, watch from the next one, re-list on compaction or error;
//!   exposes the revision it reflects and a readiness gate.
//! - [`queue`]: a de-duplicating work queue with exponential backoff, jitter and requeue-after;
//!   a key is never handed out twice at once.
//! - [`runner`]: workers that pull keys and run reconciles, mapping results to requeues.
//! - [`election`]: leader election on a store lease.
//! - [`metrics`]: Prometheus metrics per controller.

pub mod election;
pub mod metrics;
pub mod queue;
pub mod reflector;
pub mod runner;
