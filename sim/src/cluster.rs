//! The simulated cluster: the shared store, simulated servers (each running the real jobs
//! controller and the real loops when it leads them, behind its own [`FaultyStore`]), nodes
//! with their simulated agents, and the users' jobs. Every action goes through here, and each
//! one is followed by an invariant check.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use nomos_api::{deployment_status as ds, Deployment, DrainSpec, Job, Node, NodeSpec};
use nomos_controllers::jobs::{self, JobsConfig};
use nomos_controllers::loops::{self, LoopMetrics, LoopName, LoopsConfig};
use nomos_controllers::runtime::election::{campaign_once, Leadership};
use nomos_controllers::runtime::runner::Action;
use nomos_store::{keys, KeySelector, PutOptions, Store, Txn, TxnOp};

use crate::agents::SimAgent;
use crate::clock::SimClock;
use crate::faults::{FaultyStore, RecordingStore};
use crate::invariants::{Actor, Checker, Violation};
use crate::observe::{DecodeCache, JobKey, Snapshot};
use crate::rng::{id_source, SimRng};
use crate::spec::{self, Behavior, JobShape};
use crate::trace::{describe, Trace};

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

    // ---- users ---------------------------------------------------------------------------

    /// Writes the user's current declaration of a job into the store (the GitOps path).
    pub async fn write_job(&mut self, id: &str) {
        let Some(u) = self.jobs.get(id) else { return };
        let job = u.job();
        let key = u.key();
        // What the controllers will accept from this write (defaults filled in).
        let accepted =
            match nomos_api::parse_stored_spec(&keys::job(&key.0, &key.1), &spec::stored(&job)) {
                Ok(mut p) => p.jobs.remove(0),
                Err(e) => {
                    panic!("the simulation wrote a spec it believes valid, and it is not: {e:?}")
                }
            };
        let _ = self
            .store
            .put(
                keys::job(&key.0, &key.1).into_bytes(),
                spec::stored(&job),
                PutOptions::default(),
            )
            .await;
        self.checker.user_wrote(&key, Some(&accepted));
        self.check(Actor::User).await;
    }

    pub async fn apply(&mut self, shape: JobShape, behavior: Behavior) {
        let id = shape.id.clone();
        let generation = self.jobs.get(&id).map(|u| u.generation + 1).unwrap_or(0);
        self.log(format!(
            "user applies {id} generation {generation}: {} x{}{}",
            behavior.encode(),
            shape.count,
            if shape.rollout.canary > 0 {
                " with canary"
            } else {
                ""
            }
        ));
        self.jobs.insert(
            id.clone(),
            UserJob {
                shape,
                behavior,
                generation,
                stopped: false,
                purged: false,
                invalid: false,
            },
        );
        self.write_job(&id).await;
    }

    pub async fn write_invalid_spec(&mut self, id: &str) {
        let Some(u) = self.jobs.get_mut(id) else {
            return;
        };
        u.invalid = true;
        let key = u.key();
        self.log(format!("user writes an invalid spec over {id}"));
        let _ = self
            .store
            .put(
                keys::job(&key.0, &key.1).into_bytes(),
                b"{\"groups\": 7, \"not\": [a job".to_vec(),
                PutOptions::default(),
            )
            .await;
        self.checker.user_wrote(&key, None);
        self.check(Actor::User).await;
    }

    pub async fn stop_job(&mut self, id: &str) {
        let Some(u) = self.jobs.get_mut(id) else {
            return;
        };
        u.stopped = true;
        u.generation += 1;
        self.log(format!("user stops {id}"));
        self.write_job(id).await;
    }

    pub async fn purge_job(&mut self, id: &str) {
        let Some(u) = self.jobs.get_mut(id) else {
            return;
        };
        u.purged = true;
        let key = u.key();
        self.log(format!("user purges {id}"));
        let _ = self
            .store
            .delete(
                KeySelector::key(keys::job(&key.0, &key.1)),
                Default::default(),
            )
            .await;
        self.checker.user_purged(&key);
        self.check(Actor::User).await;
    }

    /// Writes a user's change onto a deployment, with a compare on what was read (as the API
    /// does). Returns whether it landed.
    pub async fn change_deployment(
        &mut self,
        job: &str,
        what: &str,
        change: impl Fn(&mut Deployment) -> bool,
    ) -> bool {
        let key: JobKey = ("default".into(), job.into());
        let Ok(snap) = Snapshot::read(&*self.store, self.clock.now(), &mut self.cache).await else {
            return false;
        };
        let Some(mut d) = snap.current_deployment(&key).cloned() else {
            return false;
        };
        if !d.is_active() || !change(&mut d) {
            return false;
        }
        let k = keys::deployment(&d.namespace, &d.job_id, &d.id);
        let Ok(r) = self
            .store
            .range(KeySelector::key(k.clone()), Default::default())
            .await
        else {
            return false;
        };
        let Some(kv) = r.kvs.first() else {
            return false;
        };
        d.modified_at_ms = self.clock.now();
        let txn = Txn::new()
            .when([nomos_store::Compare::mod_revision(
                k.clone(),
                nomos_store::CompareOp::Equal,
                kv.mod_revision,
            )])
            .and_then([TxnOp::put(k, serde_json::to_vec(&d).unwrap_or_default())]);
        let ok = self.store.txn(txn).await.is_ok_and(|r| r.succeeded);
        self.log(format!(
            "user {what} deployment {} ({})",
            d.id,
            if ok { "done" } else { "conflict" }
        ));
        self.check(Actor::User).await;
        ok
    }

    pub async fn promote(&mut self, job: &str) -> bool {
        self.change_deployment(job, "promotes", |d| {
            // As the API: only when some group waits, and every canary is placed and healthy.
            let waiting = |g: &nomos_api::DeploymentGroup| g.desired_canaries > 0 && !g.promoted;
            let ready = |g: &nomos_api::DeploymentGroup| {
                g.placed_canaries.len() as u32 >= g.desired_canaries
                    && g.healthy >= g.desired_canaries
            };
            if !d.groups.values().any(waiting)
                || d.groups.values().filter(|g| waiting(g)).any(|g| !ready(g))
            {
                return false;
            }
            for g in d.groups.values_mut() {
                g.promoted = true;
            }
            true
        })
        .await
    }

    pub async fn pause(&mut self, job: &str, pause: bool) -> bool {
        self.change_deployment(job, if pause { "pauses" } else { "resumes" }, |d| {
            let (from, to, desc) = if pause {
                (ds::RUNNING, ds::PAUSED, ds::DESC_PAUSED)
            } else {
                (ds::PAUSED, ds::RUNNING, ds::DESC_RUNNING)
            };
            if d.status != from {
                return false;
            }
            d.status = to;
            d.status_description = desc.into();
            true
        })
        .await
    }

    pub async fn fail_deployment(&mut self, job: &str) -> bool {
        self.change_deployment(job, "fails", |d| {
            d.status = ds::FAILED;
            d.status_description = ds::DESC_FAILED_BY_USER.into();
            true
        })
        .await
    }

    pub async fn drain(&mut self, node: &str, deadline_ms: i64) {
        let now = self.clock.now();
        let spec = NodeSpec {
            eligible: Some(false),
            drain: Some(DrainSpec {
                deadline_ms: if deadline_ms > 0 {
                    now + deadline_ms
                } else {
                    0
                },
                ignore_system_jobs: false,
                started_at_ms: now,
            }),
        };
        self.log(format!("user drains {node} (deadline {deadline_ms} ms)"));
        self.put_node_spec(node, &spec).await;
    }

    pub async fn cancel_drain(&mut self, node: &str) {
        self.log(format!("user cancels the drain of {node}"));
        let spec = NodeSpec {
            eligible: Some(true),
            drain: None,
        };
        self.put_node_spec(node, &spec).await;
    }

    async fn put_node_spec(&mut self, node: &str, spec: &NodeSpec) {
        let _ = self
            .store
            .put(
                keys::node_spec(node).into_bytes(),
                serde_json::to_vec(spec).unwrap_or_default(),
                PutOptions::default(),
            )
            .await;
        self.check(Actor::User).await;
    }

    // ---- nodes ---------------------------------------------------------------------------

    pub async fn add_node(&mut self, name: &str) {
        self.log(format!("node {name} joins"));
        let _ = self
            .store
            .put(
                keys::node(name).into_bytes(),
                serde_json::to_vec(&node_value(name)).unwrap_or_default(),
                PutOptions::default(),
            )
            .await;
        self.nodes.insert(
            name.into(),
            SimNode {
                name: name.into(),
                lease: None,
                registered: true,
                back: None,
            },
        );
        self.agents.insert(name.into(), SimAgent::new(name));
        self.connect(name).await;
    }

    /// The agent's heartbeat comes (back): a new lease and the heartbeat key on it.
    pub async fn connect(&mut self, name: &str) {
        let Ok(lease) = self.store.lease_grant(LEASE_TTL_SECS, 0).await else {
            return;
        };
        let _ = self
            .store
            .put(
                keys::heartbeat(name).into_bytes(),
                b"{}".to_vec(),
                PutOptions {
                    lease: lease.id,
                    ..Default::default()
                },
            )
            .await;
        let passes = self.nodes_passes;
        if let Some(n) = self.nodes.get_mut(name) {
            n.lease = Some(lease.id);
            n.back = Some((passes, 0));
        }
        self.log(format!("node {name} heartbeats"));
        self.check(Actor::User).await;
    }

    /// The heartbeat lease lapses (a network cut, or the agent died).
    pub async fn disconnect(&mut self, name: &str) {
        let Some(lease) = self.nodes.get_mut(name).and_then(|n| {
            n.back = None;
            n.lease.take()
        }) else {
            return;
        };
        self.log(format!("node {name} misses its heartbeat"));
        let _ = self.store.lease_revoke(lease).await;
        self.check(Actor::Fault).await;
    }

    /// The node is gone for good: deregistered.
    pub async fn remove_node(&mut self, name: &str) {
        self.disconnect(name).await;
        self.log(format!("node {name} is deregistered"));
        let _ = self
            .store
            .delete(KeySelector::key(keys::node(name)), Default::default())
            .await;
        if let Some(n) = self.nodes.get_mut(name) {
            n.registered = false;
        }
        self.agents.remove(name);
        self.check(Actor::Fault).await;
    }

    pub fn connected(&self) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.registered && n.lease.is_some())
            .map(|n| n.name.clone())
            .collect()
    }

    pub fn disconnected(&self) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.registered && n.lease.is_none())
            .map(|n| n.name.clone())
            .collect()
    }

    /// Every connected agent plays one round.
    pub async fn agents_round(&mut self) {
        let now = self.clock.now();
        let mut wrong = Vec::new();
        for name in self.connected() {
            let Some(agent) = self.agents.get_mut(&name) else {
                continue;
            };
            if let Ok(r) = agent.round(&*self.store, now).await {
                wrong.extend(r.wrong_spec);
            }
            if let Some((_, rounds)) = self.nodes.get_mut(&name).and_then(|n| n.back.as_mut()) {
                *rounds += 1;
            }
        }
        self.check(Actor::Agents).await;
        if !wrong.is_empty() && self.failure.is_none() {
            let violations: Vec<Violation> = wrong
                .into_iter()
                .map(|(id, named, found)| Violation {
                    invariant: "an_agent_only_runs_the_spec_its_allocation_names",
                    detail: format!("{id} names spec {named}, the store's version is {found}"),
                })
                .collect();
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

    /// Nodes whose heartbeat is back, seen by the node-lifecycle loop twice since and by their
    /// agent once: none of their allocations may stay `unknown`.
    pub async fn check_nodes_back(&mut self) {
        let Ok(snap) = Snapshot::read(&*self.store, self.clock.now(), &mut self.cache).await else {
            return;
        };
        let mut violations = Vec::new();
        for n in self.nodes.values() {
            let Some((passes, rounds)) = n.back else {
                continue;
            };
            if self.nodes_passes < passes + 2 || rounds < 2 {
                continue;
            }
            for a in snap.allocs.values().filter(|a| a.node == n.name) {
                if snap.client_status(&a.id) == Some(nomos_api::ClientStatus::Unknown) {
                    violations.push(Violation {
                        invariant: "once_a_node_is_back_none_of_its_allocations_stays_unknown",
                        detail: format!("{} on {} is still unknown", a.name, n.name),
                    });
                }
            }
        }
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

    // ---- servers -------------------------------------------------------------------------

    /// Kills a server process: it makes no more calls; its leases lapse later.
    pub fn crash_server(&mut self, i: usize) {
        let s = &mut self.servers[i];
        if !s.alive {
            return;
        }
        s.store.crash_after(0);
        s.alive = false;
        s.jobs = None;
        s.dead_for = 0;
        let name = s.name.clone();
        self.log(format!("server {name} is killed"));
    }

    /// The dead server's leases expire: other servers may lead.
    pub async fn expire_leases(&mut self, i: usize) {
        let leases: Vec<i64> = std::mem::take(&mut self.servers[i].leads)
            .into_values()
            .map(|l| l.lease)
            .collect();
        if leases.is_empty() {
            return;
        }
        for l in leases {
            let _ = self.store.lease_revoke(l).await;
        }
        let name = self.servers[i].name.clone();
        self.log(format!("the leases of server {name} expire"));
        self.check(Actor::Fault).await;
    }

    /// A killed server starts again (the leases of its last life lapse first: a new process
    /// holds none of them).
    pub async fn restart_server(&mut self, i: usize) {
        if self.servers[i].alive {
            return;
        }
        self.expire_leases(i).await;
        let s = &mut self.servers[i];
        s.incarnation += 1;
        s.store = Arc::new(FaultyStore::new(self.store.clone()));
        s.alive = true;
        s.deposed = false;
        s.due.clear();
        s.passes.clear();
        let name = s.name.clone();
        self.log(format!("server {name} restarts"));
    }

    /// Cuts a leading server off: its leases are revoked behind its back (another server may
    /// take over), and it acts once more believing it leads.
    pub async fn depose(&mut self, i: usize) {
        let leases: Vec<i64> = self.servers[i].leads.values().map(|l| l.lease).collect();
        if leases.is_empty() || !self.servers[i].alive {
            return;
        }
        for l in leases {
            let _ = self.store.lease_revoke(l).await;
        }
        self.servers[i].deposed = true;
        let name = self.servers[i].name.clone();
        self.log(format!("server {name} is cut off; its leases are gone"));
        self.check(Actor::Fault).await;
    }

    async fn campaign(&mut self, i: usize) {
        let now_ms = self.clock.source();
        for name in CONTROLLERS {
            let s = &self.servers[i];
            if !s.alive || s.deposed || s.leads.contains_key(name) {
                continue;
            }
            let Ok(Some(l)) = campaign_once(&*s.store, name, &s.identity(), LEASE_TTL_SECS).await
            else {
                continue;
            };
            let server = s.name.clone();
            self.servers[i].leads.insert(name, l.clone());
            self.log(format!("server {server} leads {name}"));
            if name == "jobs" {
                let config = JobsConfig {
                    workers: 1,
                    resync: Duration::from_secs(300),
                    clock: now_ms.clone(),
                    ids: self.ids.clone(),
                    ..Default::default()
                };
                let store: Arc<dyn Store> = self.servers[i].store.clone();
                let (running, tasks, stop) = jobs::start(store, config, None, Some(l));
                for (_, h) in &running.reflectors {
                    h.ready().await;
                }
                let all = running
                    .ctx
                    .world
                    .lock()
                    .map(|w| w.all_jobs())
                    .unwrap_or_default();
                let now = self.clock.now();
                let s = &mut self.servers[i];
                for k in all {
                    s.due.insert(k, now);
                }
                s.jobs = Some(JobsInstance {
                    running,
                    tasks,
                    stop,
                });
            }
        }
    }

    /// Waits until each of the server's reflectors has seen the newest write under its prefix,
    /// and, after its watches were cut, has listed again and watches once more (a relist queues
    /// jobs: were it left to happen whenever, a seed would not replay).
    async fn sync(&self, i: usize) {
        let Some(inst) = &self.servers[i].jobs else {
            return;
        };
        let store = &self.servers[i].store;
        let rewatched = || {
            store
                .watches_since_cut()
                .is_none_or(|n| n >= inst.running.reflectors.len())
        };
        let targets: Vec<i64> = inst
            .running
            .reflectors
            .iter()
            .map(|(k, _)| self.recorder.newest_under(k.prefix().as_bytes()))
            .collect();
        for spin in 0u32.. {
            if rewatched()
                && inst
                    .running
                    .reflectors
                    .iter()
                    .zip(&targets)
                    .all(|((_, h), t)| h.revision() >= *t)
            {
                return;
            }
            if spin < 2000 {
                tokio::task::yield_now().await;
            } else if spin > 30_000 {
                // Going on would make the seed's story depend on timing.
                panic!(
                    "server {}'s reflectors did not catch up with the store within 28 s",
                    self.servers[i].name
                );
            } else {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    /// The job keys the server's jobs controller should reconcile now: those its reflectors
    /// queued, and those whose requested time came.
    fn due_keys(&mut self, i: usize) -> BTreeSet<JobKey> {
        let now = self.clock.now();
        let s = &mut self.servers[i];
        let mut keys = BTreeSet::new();
        if let Some(inst) = &s.jobs {
            while let Some(Some(k)) = inst.running.queue.next().now_or_never() {
                inst.running.queue.done(&k);
                keys.insert(k);
            }
        }
        for (k, at) in &s.due {
            if *at <= now {
                keys.insert(k.clone());
            }
        }
        for k in &keys {
            s.due.remove(k);
        }
        keys
    }

    /// One round of a server: campaign, reconcile what is due, run the loops it leads.
    pub async fn server_round(&mut self, i: usize, crash_at_write: Option<u32>) {
        if !self.servers[i].alive {
            return;
        }
        self.campaign(i).await;
        let deposed = self.servers[i].deposed;
        let before = self.store.status().await.map(|s| s.revision).unwrap_or(0);
        let rival_before = self.servers[i].store.rival_writes();
        if crash_at_write.is_some() {
            let n = crash_at_write.unwrap_or(0);
            self.servers[i].store.crash_after(n);
            let name = self.servers[i].name.clone();
            self.log(format!("server {name} will die at its write #{}", n + 1));
        }
        self.jobs_round(i).await;
        self.loops_round(i).await;
        if self.servers[i].store.is_crashed() && self.servers[i].alive {
            self.crash_server(i);
        }
        if deposed {
            // (What the simulated rival wrote meanwhile is not the server's.)
            let rivals = self.servers[i].store.rival_writes() - rival_before;
            let after = self.store.status().await.map(|s| s.revision).unwrap_or(0) - rivals as i64;
            if after != before && self.failure.is_none() {
                let v = Violation {
                    invariant: "a_deposed_leader_never_writes",
                    detail: format!(
                        "server {} wrote revisions {}..={after} after losing its leases",
                        self.servers[i].name,
                        before + 1
                    ),
                };
                self.trace
                    .push(format!("  !! {}: {}", v.invariant, v.detail));
                self.failure = Some(Failure {
                    step: self.step,
                    violations: vec![v],
                });
            }
            // It notices: stops leading, campaigns again next round.
            let s = &mut self.servers[i];
            s.deposed = false;
            s.leads.clear();
            s.jobs = None;
            let name = s.name.clone();
            self.log(format!("server {name} notices it lost its leases"));
        }
    }

    async fn jobs_round(&mut self, i: usize) {
        if self.servers[i].jobs.is_none() {
            return;
        }
        self.sync(i).await;
        let keys = self.due_keys(i);
        for k in keys {
            if !self.servers[i].alive || self.servers[i].store.is_crashed() {
                return;
            }
            let Some(ctx) = self.servers[i].jobs.as_ref().map(|j| j.running.ctx.clone()) else {
                return;
            };
            let before = self.store.status().await.map(|s| s.revision).unwrap_or(0);
            let result = ctx.reconcile(k.clone()).await;
            let after = self.store.status().await.map(|s| s.revision).unwrap_or(0);
            let writes = if after > before {
                format!(", {} write(s)", after - before)
            } else {
                String::new()
            };
            let now = self.clock.now();
            let name = self.servers[i].name.clone();
            let line = match &result {
                Ok(Action::RequeueAfter(d)) => {
                    let ms = d.as_millis() as i64;
                    self.servers[i].due.insert(k.clone(), now + ms);
                    format!("{name}: reconcile {} (again in {ms} ms{writes})", k.1)
                }
                Ok(Action::AwaitChange) => format!("{name}: reconcile {}{writes}", k.1),
                Err(e) => {
                    self.servers[i].due.insert(k.clone(), now + 1_000);
                    format!("{name}: reconcile {} failed: {e}", k.1)
                }
            };
            self.log(line);
            let actor = if result.is_ok() {
                Actor::Reconcile(k)
            } else {
                Actor::FailedReconcile(k)
            };
            self.check(actor).await;
            self.sync(i).await;
        }
    }

    /// Whether a loop would run now in a real server: never ran, something changed under the
    /// prefixes that wake it, the time it asked for came, or its resync period passed.
    fn loop_due(&self, i: usize, name: &str, loop_name: LoopName, now: i64) -> bool {
        let Some(last) = self.servers[i].passes.get(name) else {
            return true;
        };
        let resync = LoopsConfig::default().resync.as_millis() as i64;
        let changed = loops::triggers_of(loop_name)
            .iter()
            .any(|p| self.recorder.newest_under(p.prefix().as_bytes()) > last.revision);
        changed || last.wake_at_ms.is_some_and(|t| t <= now) || now - last.at_ms >= resync
    }

    async fn loops_round(&mut self, i: usize) {
        let mut names: Vec<&'static str> = self.servers[i]
            .leads
            .keys()
            .copied()
            .filter(|n| *n != "jobs")
            .collect();
        // Loop order varies: each is independent and level-triggered.
        for k in (1..names.len()).rev() {
            let j = self.rng.below(k as u64 + 1) as usize;
            names.swap(k, j);
        }
        let now = self.clock.now();
        for name in names {
            if !self.servers[i].alive || self.servers[i].store.is_crashed() {
                return;
            }
            let Some(loop_name) = loop_name(name) else {
                continue;
            };
            if !self.loop_due(i, name, loop_name, now) {
                continue;
            }
            let revision = self.store.status().await.map(|s| s.revision).unwrap_or(0);
            let s = &self.servers[i];
            let ctx = loops::Ctx {
                store: s.store.clone(),
                leadership: s.leads.get(name).cloned(),
                config: LoopsConfig {
                    identity: s.identity(),
                    clock: self.clock.source(),
                    ..Default::default()
                },
                metrics: self.metrics.clone(),
                name: loop_name,
            };
            let result = loops::pass(&ctx).await;
            if name == "nodes" && result.is_ok() {
                self.nodes_passes += 1;
            }
            let server = s.name.clone();
            let wake_at_ms = result.as_ref().ok().and_then(|o| o.wake_at_ms);
            self.servers[i].passes.insert(
                name,
                LoopPass {
                    revision,
                    at_ms: now,
                    wake_at_ms,
                },
            );
            match result {
                Ok(_) => self.log(format!("{server}: {name} pass")),
                Err(e) => self.log(format!("{server}: {name} pass failed: {e}")),
            }
            self.check(Actor::Loop(name)).await;
        }
    }
}
