//! nomos-sim: a deterministic simulation of the Nomos control plane, after FoundationDB's
//! simulation testing and TigerBeetle's VOPR.
//!
//! The real controllers (the jobs controller and the system, periodic, drain, node-lifecycle and
//! gc loops) run against the real embedded store in one process, inside simulated servers that
//! campaign for leadership; simulated agents stand in for nodes and processes; a simulated clock
//! is the only time any decision sees; one seed fixes every choice, so a failure replays exactly.
//! After every action the invariants are checked.
//!
//! Layout:
//! - [`rng`], [`clock`]: the seeded randomness and the simulated clock.
//! - [`spec`]: the jobs a run uses; each version carries its tasks' [`spec::Behavior`].
//! - [`agents`]: simulated agents playing behaviours and reporting with the real agent's rules.
//! - [`faults`]: the [`faults::FaultyStore`] between a server and the store (crash points,
//!   conflicts, compacted watches).
//! - [`cluster`]: servers, nodes, users; every action, each followed by the checks.
//! - [`observe`], [`invariants`]: one consistent read of the store, and the named invariants.
//! - [`scenario`]: random runs of a seed ([`scenario::run_blocking`]) and the settle phase.
//! - [`trace`]: the story of a run, printed for a failing seed.
//!
//! ```text
//! seed ─▶ SimRng ─▶ scenario step: clock += dt; user / node / fault; agents; servers
//!                                              │ each action
//!                                              ▼
//!                                   Snapshot::read ─▶ Checker (invariants) ─▶ trace
//! ```

pub mod agents;
pub mod clock;
pub mod cluster;
pub mod faults;
pub mod invariants;
pub mod observe;
pub mod rng;
pub mod scenario;
pub mod spec;
pub mod trace;

pub use scenario::{run_blocking, RunConfig, RunReport};
