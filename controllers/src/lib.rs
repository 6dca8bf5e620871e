//! nomos-controllers: everything that turns what users declare into allocations, and keeps
//! them there. Decisions are pure functions; runtimes read the store, call them, and write
//! what they return with fenced transactions.
//!
//! Layout:
//! - [`scheduler`]: the placement engine (pure): feasibility, ranking, bin-packing or spread over
//!   a [`scheduler::ClusterSnapshot`]; scores about log2(n) candidates per placement.
//! - [`reconcile`]: the jobs reconcile as a pure function `(job versions, allocations with their
//!   statuses, node health, deployment, now) -> Plan`; [`jobs::decide`] adds the placements.
//! - [`jobs`]: the jobs controller for service and batch jobs, on the per-key runtime.
//! - [`loops`]: the system, periodic, drain, node-lifecycle, gc and services loops, each a pure
//!   decision ([`system::plan`], [`periodic`], [`drain::decide`], [`nodes`], [`gc::plan`],
//!   [`services::catalogue`]) over a whole-cluster read.
//! - [`plan`]: `nctl plan`, the jobs controller's (or system loop's) decision over one read,
//!   written nowhere.
//! - [`observed`]: the shared words: an allocation with its status, a stop request.
//! - [`runtime`]: reflectors (list + watch into indexed caches), the de-duplicating work queue,
//!   the runner, leader election on a store lease, Prometheus metrics.
//! - [`write`]: the fenced-write toolkit both runtimes commit with.
//! - [`error`]: the crate's one error enum.
//!
//! Why two runtimes. The jobs controller has many independent keys (one per job, a million
//! allocations at C1M scale) and must react to one of them in milliseconds: it keeps indexed
//! caches fed by watches (the world) and reconciles one job key at a time from a work queue,
//! as kube-runtime does. The loops decide about the whole cluster at once (every node for a
//! system job, every allocation for the collector) and run rarely (on a watch event, a timer or
//! a resync): each pass re-reads what it needs at one revision (a view) and keeps nothing in
//! memory, which makes them simple to reason about and free of cache bugs. A loop that needed
//! per-key latency would move to the first runtime.
//!
//! Glossary:
//! - *world*: the jobs controller's in-memory indexes of every prefix it watches
//!   ([`jobs::world::World`]), kept in step by reflectors and by its own commits.
//! - *view*: one consistent read of the prefixes a loop pass needs ([`loops::view::View`]).
//! - *snapshot*: the scheduler's picture of nodes and what their allocations hold
//!   ([`scheduler::ClusterSnapshot`]), built from a world or a view by one rule
//!   ([`scheduler::AllocUsage::of`]).
//! - *guard*: a compare on a node's allocation prefix (no key there newer than the revision the
//!   decision read), so two writers can never over-commit a node.
//! - *fence*: a compare on the leader's election key, so a deposed leader writes nothing.
//!
//! ```text
//! /nomos/jobs, jobversions, allocs, allocstatus, nodes, nodespec, heartbeats, deployments
//!        │ reflectors
//!        ▼
//!   jobs::world::World ──keys──▶ WorkQueue ──▶ jobs::Ctx::reconcile
//!                                                 │ jobs::decide::decide (pure: reconcile + placement)
//!                                                 ▼
//!                         txn per batch: compare per-node revision + leader lease ──▶ /nomos/allocs/<node>/<id>
//! ```
//!
//! Entry point for `nctl` (server / dev):
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn nomos_store::Store>) {
//! let mut registry = prometheus_client::registry::Registry::default();
//! let config = nomos_controllers::ControllersConfig { identity: "server-1".into(), ..Default::default() };
//! let (tx, rx) = tokio::sync::oneshot::channel::<()>();
//! let task = tokio::spawn(nomos_controllers::run(config, store, &mut registry, async move {
//!     let _ = rx.await;
//! }));
//! // ... serve `registry` on /metrics ...
//! let _ = tx.send(());
//! task.await.unwrap().unwrap();
//! # }
//! ```
//!
//! `run` registers the metrics synchronously, then returns a `'static` future that runs the
//! jobs controller while this process holds the lease on `/nomos/election/jobs`.

pub mod error;
pub mod jobs;
pub mod reconcile;
pub mod runtime;
pub mod scheduler;
// The system, periodic, drain, node-lifecycle and gc loops (see docs/loops.md).
pub mod drain;
pub mod gc;
pub mod health;
pub mod loops;
pub mod nodes;
pub mod observed;
pub mod periodic;
pub mod plan;
pub mod services;
pub mod system;
pub mod write;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use error::ControllerError;

/// A job's identity in the store and in every controller: `(namespace, job id)`.
pub type JobKey = (String, String);

/// A hash map for the controllers' in-memory indexes, keyed by names and ids read from the
/// store: foldhash (seeded per process) instead of SipHash, which was a tenth of the jobs
/// controller's time at a million allocations.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// The set counterpart of [`FastMap`].
pub type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
use nomos_store::Store;
use prometheus_client::registry::Registry;
pub use scheduler::Algorithm;

/// Configuration of the controllers one server process runs.
#[derive(Debug, Clone)]
pub struct ControllersConfig {
    /// Who this process is (written into election keys); defaults to `<hostname>-<pid>`.
    pub identity: String,
    /// Lease TTL of each controller's leader election; another server takes over within it.
    pub election_ttl_secs: i64,
    /// Cluster-wide ranking: bin-packing (default) or spread.
    pub scheduler_algorithm: Algorithm,
    /// Concurrent reconciles per controller.
    pub workers: usize,
    /// Every job is reconciled at least this often.
    pub resync_secs: u64,
    /// Garbage-collection thresholds (Nomad's `job_gc_interval`, `job_gc_threshold`, ...).
    pub gc: gc::GcConfig,
    /// Cluster-wide node-lifecycle settings (the default `lost_after`).
    pub lifecycle: nodes::LifecycleConfig,
    /// Cluster-wide periodic settings (children kept per periodic job).
    pub periodic: periodic::PeriodicConfig,
}

impl Default for ControllersConfig {
    fn default() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "nomos".into());
        ControllersConfig {
            identity: format!("{host}-{}", std::process::id()),
            election_ttl_secs: 15,
            scheduler_algorithm: Algorithm::Binpack,
            workers: 2,
            resync_secs: 300,
            gc: Default::default(),
            lifecycle: Default::default(),
            periodic: Default::default(),
        }
    }
}

/// Registers the controllers' metrics in `registry`, then returns the future that runs every
/// controller (each leader-elected) until `shutdown` resolves.
pub fn run(
    config: ControllersConfig,
    store: Arc<dyn Store>,
    registry: &mut Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = Result<(), ControllerError>> + Send + 'static {
    let metrics = runtime::metrics::Metrics::register(registry);
    // The system, periodic, drain, node-lifecycle and gc loops run beside the jobs controller
    // (see `loops` and docs/loops.md).
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let loops_run = loops::run_loops(
        loops::LoopsConfig::from_controllers(&config),
        store.clone(),
        registry,
        shutdown.clone(),
    );
    let jobs_run = async move {
        if config.election_ttl_secs < 1 {
            return Err(ControllerError::Config(format!(
                "election_ttl_secs must be at least 1, found {}",
                config.election_ttl_secs
            )));
        }
        let election = runtime::election::ElectionConfig {
            name: jobs::NAME.into(),
            identity: config.identity.clone(),
            ttl_secs: config.election_ttl_secs,
        };
        let jobs_config = jobs::JobsConfig {
            scheduler: scheduler::SchedulerConfig {
                algorithm: config.scheduler_algorithm,
            },
            workers: config.workers.max(1),
            resync: Duration::from_secs(config.resync_secs.max(1)),
            ..Default::default()
        };
        let label = runtime::metrics::Metrics::label(jobs::NAME);
        let m = metrics.clone();
        let s = store.clone();
        runtime::election::run_elected(
            store,
            election,
            Some((metrics, label)),
            move |leadership| {
                let store = s.clone();
                let config = jobs_config.clone();
                let m = m.clone();
                async move {
                    jobs::run(
                        store,
                        config,
                        Some(m),
                        Some(leadership),
                        std::future::pending::<()>(),
                    )
                    .await
                }
            },
            shutdown,
        )
        .await
    };
    async move {
        let (jobs, loops) = tokio::join!(jobs_run, loops_run);
        jobs.and(loops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests::{add_node, eventually, node, put_spec, running_allocs, spec};
    use nomos_store::embedded::EmbeddedStore;

    #[tokio::test]
    async fn run_leads_places_jobs_exposes_metrics_and_stops_on_shutdown() {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        add_node(&*store, &node("n0", 4000, 4096)).await;
        put_spec(&*store, "web", spec("web", 2, 100, serde_json::json!({}))).await;
        let mut registry = Registry::default();
        let config = ControllersConfig {
            identity: "test".into(),
            election_ttl_secs: 5,
            ..Default::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(config, store.clone(), &mut registry, async move {
            let _ = rx.await;
        }));
        eventually("placed", || async {
            running_allocs(&*store, "web").await.len() == 2
        })
        .await;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("nomos_controller_leader{controller=\"jobs\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("nomos_controller_placements_total{controller=\"jobs\"} 2"),
            "{text}"
        );
        let _ = tx.send(());
        task.await.unwrap().unwrap();
        let r = store
            .range(
                nomos_store::KeySelector::key(nomos_store::keys::election("jobs").into_bytes()),
                Default::default(),
            )
            .await
            .unwrap();
        assert!(r.kvs.is_empty(), "the election key is released on shutdown");
    }

    #[tokio::test]
    async fn run_rejects_a_zero_election_ttl() {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        let mut registry = Registry::default();
        let config = ControllersConfig {
            election_ttl_secs: 0,
            ..Default::default()
        };
        let err = run(config, store, &mut registry, std::future::pending())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("election_ttl_secs"), "{err}");
    }
}
