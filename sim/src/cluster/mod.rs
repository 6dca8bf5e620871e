//! The simulated cluster: the shared store, simulated servers (each running the real jobs
//! controller and the real loops when it leads them, behind its own [`FaultyStore`]), nodes
//! with their simulated agents, and the users' jobs. Every action goes through here, and each
//! one is followed by an invariant check.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use nomos_api::{Job, Node};
use nomos_controllers::jobs::{self};
use nomos_controllers::loops::{LoopMetrics, LoopName};
use nomos_controllers::runtime::election::Leadership;
use nomos_store::Store;

use crate::agents::SimAgent;
use crate::clock::SimClock;
use crate::faults::{FaultyStore, RecordingStore};
use crate::invariants::{Actor, Checker, Violation};
use crate::observe::{DecodeCache, JobKey, Snapshot};
use crate::rng::{id_source, SimRng};
use crate::spec::{self, Behavior, JobShape};
use crate::trace::{describe, Trace};

mod nodes;
mod servers;
mod users;

/// Election leases outlive any run; the harness expires them itself.
const LEASE_TTL_SECS: i64 = 86_400;

/// The controllers a server campaigns for.
pub const CONTROLLERS: [&str; 6] = ["jobs", "system", "periodic", "drain", "nodes", "gc"];

fn loop_name(name: &str) -> Option<LoopName> {
    LoopName::ALL.into_iter().find(|l| l.as_str() == name)
}

/// A running jobs controller of one server.
struct JobsInstance {
    running: jobs::Running,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for JobsInstance {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// One `nctl server` process.
pub struct Server {
    pub name: String,
    incarnation: u32,
    pub store: Arc<FaultyStore>,
    pub alive: bool,
    /// Partitioned away: its leases were revoked behind its back; it acts once more, still
    /// believing it leads, then notices.
    pub deposed: bool,
    pub leads: BTreeMap<&'static str, Leadership>,
    jobs: Option<JobsInstance>,
    /// When each job asked to be reconciled again (simulated ms).
    due: BTreeMap<JobKey, i64>,
    /// Steps since it died (its leases expire after a few).
    pub dead_for: u32,
    /// Per loop: the store revision and time of its last pass, and when it asked to wake.
    passes: BTreeMap<&'static str, LoopPass>,
}

/// When a loop last ran, and when it wants to run again.
#[derive(Debug, Clone, Copy, Default)]
struct LoopPass {
    revision: i64,
    at_ms: i64,
    wake_at_ms: Option<i64>,
}

impl Server {
    fn new(name: &str, shared: &Arc<dyn Store>) -> Self {
        Server {
            name: name.into(),
            incarnation: 0,
            store: Arc::new(FaultyStore::new(shared.clone())),
            alive: true,
            deposed: false,
            leads: BTreeMap::new(),
            jobs: None,
            due: BTreeMap::new(),
            dead_for: 0,
            passes: BTreeMap::new(),
        }
    }

    fn identity(&self) -> String {
        format!("{}#{}", self.name, self.incarnation)
    }
}

/// A node and its agent's connection.
pub struct SimNode {
    pub name: String,
    pub lease: Option<i64>,
    pub registered: bool,
    /// Nodes-loop passes when the heartbeat came back, and agent rounds since.
    pub back: Option<(u64, u32)>,
}

/// What a user has declared for one job.
#[derive(Debug, Clone)]
pub struct UserJob {
    pub shape: JobShape,
    pub behavior: Behavior,
    pub generation: u32,
    pub stopped: bool,
    pub purged: bool,
    pub invalid: bool,
}

impl UserJob {
    pub fn key(&self) -> JobKey {
        ("default".into(), self.shape.id.clone())
    }

    pub fn job(&self) -> Job {
        let mut j = spec::build(&self.shape, self.behavior, self.generation);
        j.stop = self.stopped;
        j
    }
}

/// A broken invariant, where it broke.
#[derive(Debug, Clone)]
pub struct Failure {
    pub step: usize,
    pub violations: Vec<Violation>,
}

pub struct Cluster {
    pub seed: u64,
    pub rng: SimRng,
    pub clock: SimClock,
    pub store: Arc<dyn Store>,
    recorder: Arc<RecordingStore>,
    pub trace: Trace,
    pub servers: Vec<Server>,
    pub nodes: BTreeMap<String, SimNode>,
    agents: BTreeMap<String, SimAgent>,
    pub jobs: BTreeMap<String, UserJob>,
    checker: Checker,
    cache: DecodeCache,
    pub step: usize,
    metrics: LoopMetrics,
    ids: Arc<dyn Fn() -> String + Send + Sync>,
    nodes_passes: u64,
    pub failure: Option<Failure>,
    /// Writes seen from a deposed server (must stay 0).
    pub fenced_writes: u64,
}

fn node_value(name: &str) -> Node {
    nomos_api::build::node(name)
        .cores(4)
        .address("10.0.0.1")
        .build()
}

impl Cluster {
    pub async fn new(seed: u64) -> Self {
        let recorder = Arc::new(RecordingStore::new(Arc::new(
            nomos_store::EmbeddedStore::in_memory(),
        )));
        let store: Arc<dyn Store> = recorder.clone();
        let clock = SimClock::default();
        let mut cache = DecodeCache::default();
        let first = Snapshot::read(&*store, clock.now(), &mut cache)
            .await
            .unwrap_or_default();
        let mut registry = prometheus_client::registry::Registry::default();
        Cluster {
            seed,
            rng: SimRng::new(seed),
            clock,
            servers: vec![Server::new("s0", &store), Server::new("s1", &store)],
            store,
            recorder,
            trace: Trace::default(),
            nodes: BTreeMap::new(),
            agents: BTreeMap::new(),
            jobs: BTreeMap::new(),
            checker: Checker::new(first),
            cache,
            step: 0,
            metrics: LoopMetrics::register(&mut registry),
            ids: id_source(seed),
            nodes_passes: 0,
            failure: None,
            fenced_writes: 0,
        }
    }

    pub fn log(&mut self, what: impl AsRef<str>) {
        let line = format!(
            "[{:3} +{:7.1}s] {}",
            self.step,
            self.clock.elapsed() as f64 / 1000.0,
            what.as_ref()
        );
        self.trace.push(line);
    }

    /// Reads the store and checks every invariant for the action that just happened.
    pub async fn check(&mut self, actor: Actor) {
        let Ok(cur) = self.snapshot().await else {
            return;
        };
        for line in describe(self.checker.previous(), &cur) {
            self.trace.push(format!("      {line}"));
        }
        let violations = self.checker.check(cur, &actor);
        if !violations.is_empty() && self.failure.is_none() {
            for v in &violations {
                self.trace
                    .push(format!("  !! {}: {}", v.invariant, v.detail));
            }
            self.failure = Some(Failure {
                step: self.step,
                violations,
            });
        }
    }

    /// A fresh read of the whole store.
    pub async fn snapshot(&mut self) -> Result<Snapshot, nomos_store::StoreError> {
        let mut s = Snapshot::read(&*self.store, self.clock.now(), &mut self.cache).await?;
        s.settling = self.settling_nodes();
        Ok(s)
    }

    /// What each leading jobs controller believes about the nodes (printed with a failure of
    /// convergence: a cache out of step with the store shows here).
    pub fn controller_views(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.servers {
            let Some(inst) = &s.jobs else { continue };
            let w = inst
                .running
                .ctx
                .world
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (name, spec) in &w.node_specs {
                out.push(format!(
                    "{}: node spec {name} eligible {:?} drain {}",
                    s.name,
                    spec.eligible,
                    spec.drain.is_some()
                ));
            }
            let revs: Vec<String> = inst
                .running
                .reflectors
                .iter()
                .map(|(k, h)| format!("{}@{}", k.name(), h.revision()))
                .collect();
            out.push(format!("{}: reflectors {}", s.name, revs.join(" ")));
        }
        out
    }

    /// Nodes back since too short a time for the node-lifecycle loop (two passes) and their
    /// agent (two rounds) to have settled what ran there against its replacements.
    fn settling_nodes(&self) -> BTreeSet<String> {
        self.nodes
            .values()
            .filter(|n| {
                n.back
                    .is_some_and(|(passes, rounds)| self.nodes_passes < passes + 2 || rounds < 2)
            })
            .map(|n| n.name.clone())
            .collect()
    }

    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }
}
