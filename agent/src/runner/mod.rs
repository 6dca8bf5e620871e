//! Allocation and task runners: one supervisor per allocation, one loop per task.
//!
//! A task loop starts its task (or re-attaches to it from the persisted handle), waits for it
//! to exit or to be told to stop, and applies the restart policy. Every change goes through
//! [`AllocShared::update`], which recomputes the allocation's status, persists the record and
//! queues a report for the store. The supervisor rotates logs, re-evaluates health on a tick
//! and stops the other tasks when one fails for good.
//!
//! Dropping (aborting) a runner leaves its tasks running: that is how the agent shuts down.
//!
//! Layout:
//! - `shared`: what every runner shares ([`Ctx`], [`LiveAllocs`]) and an allocation's record
//!   with the means to change it ([`AllocShared`]).
//! - `status`: the allocation's client status and health, recomputed from its record
//!   ([`refresh_status`]).
//! - `alloc`: the allocation supervisor ([`AllocRunner`]).
//! - `task`: the task loop: start or re-attach, follow, restart, kill.
//! - `prepare`: the task's directories, environment, templates ([`prepare_task`]) and
//!   artifacts before a start.
//! - `rerender` and `template_timing`: a running task's templates rendered again as what they
//!   read changes (`wait`, `splay` and `change_mode`).

mod alloc;
mod prepare;
mod rerender;
mod shared;
mod status;
mod task;
mod template_timing;

pub use alloc::AllocRunner;
pub use prepare::prepare_task;
pub use shared::{AllocShared, Ctx, Drivers, ExecRefusal, LiveAllocs, RestartRefusal};
pub use status::refresh_status;
