//! The services loop's executor: on any change to allocations, their statuses, nodes,
//! deployments or the catalogue itself, works out the catalogue over a fresh view
//! ([`super::catalogue`]) and writes what differs. Each write compares on the revision its key
//! was read at, in transactions of [`WRITES_PER_TXN`]; a write that lost its compare is left to
//! the next pass, which the change that beat it wakes.

use async_trait::async_trait;
use nomos_store::keys;

use super::{catalogue, changes, Changes};
use crate::loops::ctx::{Ctx, Loop, LoopName, PassOutcome};
use crate::loops::view::{Part, View};
use crate::write::{delete, encode, put, unchanged};
use crate::ControllerError;

/// Registrations written per transaction.
pub const WRITES_PER_TXN: usize = 64;

/// Keeps `/nomos/services/` in step with what runs.
pub struct ServicesLoop;

#[async_trait]
impl Loop for ServicesLoop {
    fn name(&self) -> LoopName {
        LoopName::Services
    }

    fn reads(&self) -> &'static [Part] {
        &[
            Part::Versions,
            Part::Allocs,
            Part::AllocStatus,
            Part::Nodes,
            Part::Deployments,
            Part::Services,
        ]
    }

    fn wakes_on(&self) -> &'static [Part] {
        &[
            Part::Allocs,
            Part::AllocStatus,
            Part::Nodes,
            Part::Deployments,
            Part::Services,
        ]
    }

    async fn pass(
        &self,
        ctx: &Ctx,
        view: &View,
        _now: i64,
    ) -> Result<PassOutcome, ControllerError> {
        let c = changes(catalogue(view), &view.services);
        if !c.is_empty() {
            let written = apply(ctx, &c).await?;
            tracing::debug!(
                registered = c.puts.len(),
                deregistered = c.deletes.len(),
                written,
                "service catalogue updated"
            );
        }
        Ok(PassOutcome::default())
    }
}

/// Writes the changes; returns how many landed.
pub async fn apply(ctx: &Ctx, c: &Changes) -> Result<usize, ControllerError> {
    let mut writes = Vec::with_capacity(c.puts.len() + c.deletes.len());
    for (key, rev) in &c.deletes {
        writes.push((unchanged(key, *rev), delete(key)));
    }
    for (key, reg, rev) in &c.puts {
        let value = encode(key, reg, "service registration")?;
        writes.push((unchanged(key, *rev), put(key, value)));
    }
    let mut landed = 0;
    for chunk in writes.chunks(WRITES_PER_TXN) {
        let (compares, mut ops): (Vec<_>, Vec<_>) = chunk.iter().cloned().unzip();
        // The catalogue's index moves with every change (blocking queries wait on it).
        ops.push(put(keys::SERVICES_INDEX, Vec::new()));
        if ctx.commit(compares, ops).await? {
            landed += chunk.len();
        }
    }
    Ok(landed)
}
