//! Nomad's heartbeat settings as leases: the types and rule live in [`nomos_api::heartbeat`]
//! (agents use them too); re-exported here beside the node-lifecycle loop that watches the
//! leases.

pub use nomos_api::heartbeat::{lease_timing, HeartbeatConfig, LeaseTiming};
