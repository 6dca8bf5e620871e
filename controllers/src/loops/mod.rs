//! Runs the system, periodic, drain, node-lifecycle and gc loops: each is an independent,
//! leader-elected loop (on `/nomos/election/<loop>`, through [`crate::runtime::election`]) that
//! re-reads what it needs ([`view::View`]), calls its pure decision and applies the plan with a
//! thin executor whose writes are fenced by the leader's lease and compare on the revisions they
//! read.
//!
//! ```text
//! store ──watch (prefixes)──▶ wake ──▶ View::read (one revision) ──▶ decide (pure) ──▶ fenced txns
//!                 ▲ timer from the decision (next tick, lost_after, deadline), resync
//! ```
//!
//! Entry point: [`run_loops`], started by `nctl dev` / `nctl server` beside [`crate::run`].

pub mod metrics;
pub mod view;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{select_all, StreamExt};
use nomos_store::{Compare, KeySelector, Store, Txn, TxnOp, WatchOptions};
use prometheus_client::registry::Registry;

use crate::runtime::election::{self, ElectionConfig, Leadership};
use crate::ControllerError;
pub use metrics::LoopMetrics;
use view::Part;

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
}

impl LoopName {
    pub const ALL: [LoopName; 5] = [
        LoopName::System,
        LoopName::Periodic,
        LoopName::Drain,
        LoopName::Nodes,
        LoopName::Gc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LoopName::System => "system",
            LoopName::Periodic => "periodic",
            LoopName::Drain => "drain",
            LoopName::Nodes => "nodes",
            LoopName::Gc => "gc",
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

    /// Runs `ops` if `compares` hold and this process still leads. `Ok(false)` means a compare
    /// failed (someone wrote first: the next pass re-reads); losing leadership is an error.
    pub async fn commit(
        &self,
        mut compares: Vec<Compare>,
        ops: Vec<TxnOp>,
    ) -> Result<bool, ControllerError> {
        let fence: Vec<Compare> = self.leadership.iter().map(Leadership::fence).collect();
        compares.extend(fence.iter().cloned());
        let resp = self
            .store
            .txn(Txn::new().when(compares).and_then(ops))
            .await
            .map_err(ControllerError::store("txn"))?;
        if resp.succeeded {
            return Ok(true);
        }
        if !fence.is_empty() {
            let still = self
                .store
                .txn(Txn::new().when(fence))
                .await
                .map_err(ControllerError::store("txn"))?;
            if !still.succeeded {
                return Err(ControllerError::LostLeadership(self.name.as_str().into()));
            }
        }
        self.metrics.conflict(self.name);
        Ok(false)
    }
}

/// Registers the loops' metrics in `registry`, then returns the future that runs every enabled
/// loop (each leader-elected) until `shutdown` resolves.
pub fn run_loops(
    config: LoopsConfig,
    store: Arc<dyn Store>,
    registry: &mut Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = Result<(), ControllerError>> + Send + 'static {
    let metrics = LoopMetrics::register(registry);
    async move {
        if config.election_ttl_secs < 1 {
            return Err(ControllerError::Config(format!(
                "election_ttl_secs must be at least 1, found {}",
                config.election_ttl_secs
            )));
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut set = tokio::task::JoinSet::new();
        for name in config.enabled.clone() {
            let ctx = Ctx {
                store: store.clone(),
                leadership: None,
                config: config.clone(),
                metrics: metrics.clone(),
                name,
            };
            let mut stop = rx.clone();
            set.spawn(async move {
                let stop_fut = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                run_one(ctx, stop_fut).await
            });
        }
        shutdown.await;
        let _ = tx.send(true);
        let mut result = Ok(());
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Err(e)) => result = Err(e),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                _ => {}
            }
        }
        result
    }
}

/// Runs one loop under its leader election until `shutdown`.
pub async fn run_one(
    ctx: Ctx,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ControllerError> {
    let name = ctx.name;
    let election = ElectionConfig {
        name: name.as_str().into(),
        identity: ctx.config.identity.clone(),
        ttl_secs: ctx.config.election_ttl_secs,
    };
    let store = ctx.store.clone();
    let metrics = ctx.metrics.clone();
    election::run_elected(
        store,
        election,
        None,
        move |leadership| {
            let mut ctx = ctx.clone();
            ctx.leadership = Some(leadership);
            let metrics = metrics.clone();
            async move {
                metrics.set_leader(name, true);
                let r = drive(ctx, std::future::pending::<()>()).await;
                metrics.set_leader(name, false);
                r
            }
        },
        shutdown,
    )
    .await
}

fn parts_of(name: LoopName) -> &'static [Part] {
    match name {
        LoopName::System => &[
            Part::Specs,
            Part::Versions,
            Part::JobStatus,
            Part::Allocs,
            Part::AllocStatus,
            Part::Nodes,
            Part::NodeSpecs,
            Part::Heartbeats,
        ],
        LoopName::Periodic => &[Part::Specs, Part::Versions, Part::JobStatus],
        LoopName::Drain => &[
            Part::Versions,
            Part::JobStatus,
            Part::Allocs,
            Part::AllocStatus,
            Part::Nodes,
            Part::NodeSpecs,
            Part::Heartbeats,
            Part::DrainStatus,
        ],
        LoopName::Nodes => &[
            Part::Specs,
            Part::Versions,
            Part::Allocs,
            Part::AllocStatus,
            Part::Nodes,
            Part::Heartbeats,
            Part::NodeLifecycle,
        ],
        LoopName::Gc => &[
            Part::Specs,
            Part::Versions,
            Part::JobStatus,
            Part::Allocs,
            Part::AllocStatus,
        ],
    }
}

/// Which prefixes wake a loop.
pub fn triggers_of(name: LoopName) -> &'static [Part] {
    match name {
        LoopName::System => &[
            Part::Specs,
            Part::Versions,
            Part::Allocs,
            Part::AllocStatus,
            Part::Nodes,
            Part::NodeSpecs,
            Part::Heartbeats,
        ],
        LoopName::Periodic => &[Part::Specs, Part::Versions, Part::JobStatus],
        LoopName::Drain => &[
            Part::Allocs,
            Part::AllocStatus,
            Part::NodeSpecs,
            Part::JobStatus,
        ],
        LoopName::Nodes => &[
            Part::Allocs,
            Part::AllocStatus,
            Part::Nodes,
            Part::Heartbeats,
        ],
        LoopName::Gc => &[],
    }
}

/// One pass of the named loop over a fresh view.
pub async fn pass(ctx: &Ctx) -> Result<PassOutcome, ControllerError> {
    let view = view::View::read(&*ctx.store, parts_of(ctx.name)).await?;
    let now = ctx.now();
    let outcome = match ctx.name {
        LoopName::System => crate::system::run::pass(ctx, &view, now).await,
        LoopName::Periodic => crate::periodic::run::pass(ctx, &view, now).await,
        LoopName::Drain => crate::drain::run::pass(ctx, &view, now).await,
        LoopName::Nodes => crate::nodes::run::pass(ctx, &view, now).await,
        LoopName::Gc => crate::gc::run::pass(ctx, &view, now, &ctx.config.gc).await,
    };
    ctx.metrics.pass(ctx.name, outcome.is_ok());
    outcome
}

/// Runs passes until `shutdown`: after each pass, waits for a change on the loop's prefixes, the
/// time the pass asked for, or the resync period.
pub async fn drive(
    ctx: Ctx,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ControllerError> {
    tokio::pin!(shutdown);
    let mut watches = open_watches(&ctx).await;
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = tokio::time::Instant::now();
        let wait = match pass(&ctx).await {
            Ok(o) => {
                backoff = Duration::from_millis(100);
                let until = o
                    .wake_at_ms
                    .map(|t| Duration::from_millis((t - ctx.now()).max(0) as u64));
                until
                    .map_or(ctx.config.resync, |d| d.min(ctx.config.resync))
                    .max(Duration::from_millis(20))
            }
            Err(e @ ControllerError::LostLeadership(_)) => return Err(e),
            Err(e) if e.is_retryable() || matches!(e, ControllerError::Decode { .. }) => {
                tracing::warn!(controller = ctx.name.as_str(), error = %e, "pass failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(5));
                backoff
            }
            Err(e) => return Err(e),
        };
        let has_triggers = !triggers_of(ctx.name).is_empty();
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
            ev = watches.next(), if has_triggers => {
                if let Some(Ok(_)) = ev {
                    // Let a burst of writes land, then look once.
                    let since = started.elapsed();
                    let pause = ctx.config.min_pass_interval.saturating_sub(since).max(Duration::from_millis(20));
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(pause) => {}
                    }
                    while let Some(Some(Ok(_))) = futures::FutureExt::now_or_never(watches.next()) {}
                } else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    watches = open_watches(&ctx).await;
                }
            }
        }
    }
}

type Watches = futures::stream::SelectAll<nomos_store::WatchStream>;

async fn open_watches(ctx: &Ctx) -> Watches {
    let mut streams = Vec::new();
    for part in triggers_of(ctx.name) {
        match ctx
            .store
            .watch(
                KeySelector::prefix(part.prefix().as_bytes().to_vec()),
                WatchOptions::default(),
            )
            .await
        {
            Ok(s) => streams.push(s),
            Err(e) => {
                tracing::warn!(controller = ctx.name.as_str(), error = %e, "watch failed; relying on resync")
            }
        }
    }
    select_all(streams)
}

/// Serializes a value for the store.
pub(crate) fn to_json<T: serde::Serialize>(
    key: &str,
    value: &T,
    what: &'static str,
) -> Result<Vec<u8>, ControllerError> {
    serde_json::to_vec(value).map_err(|e| ControllerError::Decode {
        key: key.to_string(),
        what,
        message: e.to_string(),
    })
}

/// A put of `value` at `key`.
pub(crate) fn put(key: &str, value: Vec<u8>) -> TxnOp {
    TxnOp::put(key.as_bytes().to_vec(), value)
}

/// `key` still has the mod revision it was read with (0: still absent).
pub(crate) fn unchanged(key: &str, mod_revision: i64) -> Compare {
    if mod_revision == 0 {
        Compare::new(
            key.as_bytes().to_vec(),
            nomos_store::CompareOp::Equal,
            nomos_store::CompareTarget::CreateRevision(0),
        )
    } else {
        Compare::mod_revision(
            key.as_bytes().to_vec(),
            nomos_store::CompareOp::Equal,
            mod_revision,
        )
    }
}

/// Nothing under the node's allocation prefix changed after `revision` (the jobs controller's
/// per-node guard), so placements computed at `revision` cannot over-commit the node.
pub(crate) fn node_guard(node: &str, revision: i64) -> Compare {
    let prefix = nomos_store::keys::allocs_prefix(Some(node));
    Compare {
        key: prefix.as_bytes().to_vec(),
        range_end: Some(nomos_store::prefix_end(prefix.as_bytes())),
        op: nomos_store::CompareOp::Less,
        target: nomos_store::CompareTarget::ModRevision(revision + 1),
    }
}
