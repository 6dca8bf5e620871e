//! What allocations hold on their nodes, for the web UI's charts: the controllers' own cluster
//! snapshot over one read of the store, so usage follows the placement engine's single rule
//! (an allocation holds what its group asks for in the version it runs, reserved cores
//! included; see `AllocUsage::of`).

use nomos_controllers::loops::view::{Part, View};
use nomos_controllers::scheduler::ClusterSnapshot;

use crate::error::ServerError;
use crate::AppState;

/// The prefixes the snapshot is built from.
const PARTS: [Part; 6] = [
    Part::Versions,
    Part::Allocs,
    Part::AllocStatus,
    Part::Nodes,
    Part::NodeSpecs,
    Part::Heartbeats,
];

/// The scheduler's snapshot of the cluster now.
pub async fn snapshot(st: &AppState) -> Result<ClusterSnapshot, ServerError> {
    Ok(View::read(st.store.as_ref(), &PARTS).await?.snapshot())
}
