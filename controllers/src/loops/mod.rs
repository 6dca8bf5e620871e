//! Runs the system, periodic, drain, node-lifecycle, gc and services loops: each is an independent,
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
//!
//! Each loop lives in its own module: the pure decision in `<loop>/mod.rs`, the [`Loop`] that
//! reads, decides and writes in `<loop>/run.rs`. Adding one means writing that module, a
//! [`LoopName`] and a line in [`driver`].

pub mod ctx;
pub mod metrics;
pub mod view;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{select_all, StreamExt};
use nomos_store::{KeySelector, Store, WatchOptions};
use prometheus_client::registry::Registry;

use crate::runtime::election::{self, ElectionConfig};
use crate::ControllerError;
pub use ctx::{Clock, Ctx, Loop, LoopName, LoopsConfig, PassOutcome};
pub use metrics::LoopMetrics;
use view::Part;

/// The loop of each name.
pub fn driver(name: LoopName) -> &'static dyn Loop {
    match name {
        LoopName::System => &crate::system::run::SystemLoop,
        LoopName::Periodic => &crate::periodic::run::PeriodicLoop,
        LoopName::Drain => &crate::drain::run::DrainLoop,
        LoopName::Nodes => &crate::nodes::run::NodesLoop,
        LoopName::Gc => &crate::gc::run::GcLoop,
        LoopName::Services => &crate::services::run::ServicesLoop,
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
                metrics.set_leader(name.as_str(), true);
                let r = drive(ctx, std::future::pending::<()>()).await;
                metrics.set_leader(name.as_str(), false);
                r
            }
        },
        shutdown,
    )
    .await
}

/// Which prefixes wake a loop.
pub fn triggers_of(name: LoopName) -> &'static [Part] {
    driver(name).wakes_on()
}

/// One pass of the named loop over a fresh view.
pub async fn pass(ctx: &Ctx) -> Result<PassOutcome, ControllerError> {
    pass_of(driver(ctx.name), ctx).await
}

async fn pass_of(l: &dyn Loop, ctx: &Ctx) -> Result<PassOutcome, ControllerError> {
    let outcome = match view::View::read(&*ctx.store, l.reads()).await {
        Ok(view) => l.pass(ctx, &view, ctx.now()).await,
        Err(e) => Err(e),
    };
    ctx.metrics.pass(ctx.name.as_str(), outcome.is_ok());
    outcome
}

/// Runs passes until `shutdown`: after each pass, waits for a change on the loop's prefixes, the
/// time the pass asked for, or the resync period.
pub async fn drive(
    ctx: Ctx,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ControllerError> {
    drive_loop(driver(ctx.name), ctx, shutdown).await
}

/// [`drive`] for a given loop.
async fn drive_loop(
    l: &dyn Loop,
    ctx: Ctx,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ControllerError> {
    tokio::pin!(shutdown);
    let mut watches = open_watches(&ctx, l.wakes_on()).await;
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = tokio::time::Instant::now();
        let wait = match pass_of(l, &ctx).await {
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
        let has_triggers = !l.wakes_on().is_empty();
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
                    watches = open_watches(&ctx, l.wakes_on()).await;
                }
            }
        }
    }
}

type Watches = futures::stream::SelectAll<nomos_store::WatchStream>;

async fn open_watches(ctx: &Ctx, parts: &[Part]) -> Watches {
    let mut streams = Vec::new();
    for part in parts {
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

#[cfg(test)]
mod tests;
