//! What a loop is and what its pass gets: the [`Loop`] trait each loop implements in its own
//! module, its [`Ctx`] (store, fence, clock, metrics), the settings ([`LoopsConfig`]) and the
//! loops' names. The driver that runs them is in the parent module.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nomos_store::{Compare, Store, TxnOp};

use super::metrics::LoopMetrics;
use super::view::{Part, View};
use crate::runtime::election::Leadership;
use crate::write::Fence;
use crate::ControllerError;

/// A loop: what its pass reads, what wakes it, and the pass itself (decide over the view,
/// then write the decision with the context's fenced commits). Registered in
/// [`super::driver`].
#[async_trait]
pub trait Loop: Sync {
    fn name(&self) -> LoopName;
    /// The prefixes its view reads, at one revision.
    fn reads(&self) -> &'static [Part];
    /// The prefixes whose changes wake it (none: it runs on its own timer and the resync).
    fn wakes_on(&self) -> &'static [Part];
    /// One pass over a fresh view; returns when to look again.
    async fn pass(&self, ctx: &Ctx, view: &View, now: i64) -> Result<PassOutcome, ControllerError>;
}

/// Clock in Unix milliseconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Settings of the loops one server process runs.
#[derive(Clone)]
pub struct LoopsConfig {
    /// Who this process is (written into election keys).
    pub identity: String,
    /// Lease TTL of each loop's leader election.
    pub election_ttl_secs: i64,
    /// Every loop looks again at least this often even without events.
    pub resync: Duration,
    /// Passes woken by store events are at least this far apart, so a burst of agent reports
    /// costs one pass.
    pub min_pass_interval: Duration,
    pub periodic: crate::periodic::PeriodicConfig,
    pub lifecycle: crate::nodes::LifecycleConfig,
    pub heartbeat: crate::nodes::HeartbeatConfig,
    pub gc: crate::gc::GcConfig,
    pub scheduler: crate::scheduler::SchedulerConfig,
    /// Which loops to run (all by default).
    pub enabled: Vec<LoopName>,
    pub clock: Clock,
}

impl Default for LoopsConfig {
    fn default() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "nomos".into());
        LoopsConfig {
            identity: format!("{host}-{}", std::process::id()),
            election_ttl_secs: 15,
            resync: Duration::from_secs(30),
            min_pass_interval: Duration::from_millis(250),
            periodic: Default::default(),
            lifecycle: Default::default(),
            heartbeat: Default::default(),
            gc: Default::default(),
            scheduler: Default::default(),
            enabled: LoopName::ALL.to_vec(),
            clock: Arc::new(crate::jobs::now_ms),
        }
    }
}

impl LoopsConfig {
    /// The loops' settings for a server configured with `config` (identity, election TTL,
    /// scheduler algorithm, gc, lifecycle and periodic settings; the rest at its defaults).
    pub fn from_controllers(config: &crate::ControllersConfig) -> Self {
        LoopsConfig {
            identity: config.identity.clone(),
            election_ttl_secs: config.election_ttl_secs,
            scheduler: crate::scheduler::SchedulerConfig {
                algorithm: config.scheduler_algorithm,
            },
            gc: config.gc.clone(),
            lifecycle: config.lifecycle.clone(),
            periodic: config.periodic.clone(),
            ..Default::default()
        }
    }
}

/// The loops, named as their election keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoopName {
    System,
    Periodic,
    Drain,
    Nodes,
    Gc,
    Services,
}

impl LoopName {
    pub const ALL: [LoopName; 6] = [
        LoopName::System,
        LoopName::Periodic,
        LoopName::Drain,
        LoopName::Nodes,
        LoopName::Gc,
        LoopName::Services,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LoopName::System => "system",
            LoopName::Periodic => "periodic",
            LoopName::Drain => "drain",
            LoopName::Nodes => "nodes",
            LoopName::Gc => "gc",
            LoopName::Services => "services",
        }
    }
}

/// What one pass of a loop asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PassOutcome {
    /// Unix ms at which to look again (sooner than the resync), if any.
    pub wake_at_ms: Option<i64>,
}

/// Everything a pass needs: the store, the leader's fence, the clock, metrics.
#[derive(Clone)]
pub struct Ctx {
    pub store: Arc<dyn Store>,
    pub leadership: Option<Leadership>,
    pub config: LoopsConfig,
    pub metrics: LoopMetrics,
    pub name: LoopName,
}

impl Ctx {
    pub fn now(&self) -> i64 {
        (self.config.clock)()
    }

    /// This loop's writes, fenced by its leadership.
    pub fn fence(&self) -> Fence<'_> {
        Fence {
            store: &*self.store,
            leadership: self.leadership.as_ref(),
            controller: self.name.as_str(),
        }
    }

    /// Runs `ops` if `compares` hold and this process still leads (see [`Fence::commit`]); a
    /// lost compare is counted as a conflict.
    pub async fn commit(
        &self,
        compares: Vec<Compare>,
        ops: Vec<TxnOp>,
    ) -> Result<bool, ControllerError> {
        let ok = self.fence().commit(compares, ops).await?;
        if !ok {
            self.metrics.conflict(self.name.as_str());
        }
        Ok(ok)
    }
}
