//! Random runs: a seeded scenario of users, nodes and faults driving a [`Cluster`] for a number
//! of steps, then a settle phase without faults in which every job must converge.
//!
//! One step: the clock moves, maybe a user acts (apply a version that may be bad, scale, stop,
//! purge, promote, pause, fail, write an invalid spec, drain), maybe a node comes or goes, maybe
//! a fault strikes (a server killed, a server killed in the middle of a reconcile, a leader cut
//! off, watches compacted, a commit conflict); then every connected agent plays a round and every
//! live server runs what it leads.

use std::collections::BTreeMap;

use nomos_api::ReschedulePolicy;

use crate::cluster::Cluster;
use crate::invariants::{every_job_converges_once_faults_stop, Violation};
use crate::spec::{self, Behavior, JobShape, Kind};

/// How long a run is.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    pub steps: usize,
    /// Settle steps (5 simulated seconds each) after the faults stop.
    pub settle_steps: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            steps: 200,
            settle_steps: 150,
        }
    }
}

/// The result of one seed.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub seed: u64,
    pub steps: usize,
    pub simulated_ms: i64,
    pub digest: u64,
    pub failure: Option<crate::cluster::Failure>,
    pub trace: crate::trace::Trace,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// What to print for a failing seed.
    pub fn explain(&self, tail: usize) -> String {
        let Some(f) = &self.failure else {
            return format!("seed {} passed", self.seed);
        };
        let mut s = format!("seed {} broke at step {}:\n", self.seed, f.step);
        for v in &f.violations {
            s.push_str(&format!("  {}: {}\n", v.invariant, v.detail));
        }
        s.push_str(&format!(
            "replay: cargo run -p nomos-sim -- --seed {} --steps {}\ntrace (last {tail} lines):\n{}",
            self.seed,
            self.steps,
            self.trace.tail(tail)
        ));
        s
    }
}

const DELAYS_MS: [i64; 7] = [0, 200, 1_000, 3_000, 10_000, 30_000, 90_000];
const DELAY_WEIGHTS: [u64; 7] = [1, 2, 4, 4, 3, 2, 1];

fn random_shape(c: &mut Cluster, id: &str, kind: Kind) -> JobShape {
    let r = &mut c.rng;
    let mut shape = spec::service(id, r.between(1, 4) as u32);
    shape.kind = kind;
    shape.cpu = r.between(1, 3) as u32 * 100;
    shape.memory_mb = r.between(1, 4) as u32 * 64;
    let ro = &mut shape.rollout;
    ro.max_parallel = r.between(1, 2) as u32;
    ro.canary = if r.chance(300) { 1 } else { 0 };
    ro.auto_revert = r.chance(600);
    ro.auto_promote = ro.canary > 0 && r.chance(400);
    ro.min_healthy_ms = r.between(1, 5) as u64 * 1_000;
    ro.healthy_deadline_ms = r.between(3, 12) as u64 * 10_000;
    ro.progress_deadline_ms = *r.pick(&[0, 0, 120_000, 300_000, 600_000]);
    ro.health_check = if r.chance(500) {
        "checks"
    } else {
        "task_states"
    };
    shape.restart_attempts = r.between(0, 2) as u32;
    shape.restart_delay_ms = r.between(1, 5) as u64 * 1_000;
    shape.lost_after_ms = r.between(1, 6) as u64 * 30_000;
    shape.migrate_max_parallel = r.between(1, 2) as u32;
    if r.chance(400) {
        shape.reschedule = Some(ReschedulePolicy {
            attempts: r.between(1, 3) as u32,
            interval_ns: 3_600_000_000_000,
            delay_ns: r.between(1, 20) as u64 * 1_000_000_000,
            delay_function: r
                .pick(&["constant", "exponential", "fibonacci"])
                .to_string(),
            max_delay_ns: 120_000_000_000,
            unlimited: r.chance(300),
        });
    }
    shape
}

fn random_behavior(c: &mut Cluster) -> Behavior {
    let r = &mut c.rng;
    match r.weighted(&[50, 15, 10, 10, 8, 7]) {
        0 => Behavior::Healthy,
        1 => Behavior::Exits {
            code: 1,
            after_ms: r.between(1, 60) * 1_000,
        },
        2 => Behavior::NeverHealthy,
        3 => Behavior::Flaps {
            period_ms: r.between(2, 20) * 1_000,
        },
        4 => Behavior::OomKilled {
            after_ms: r.between(1, 30) * 1_000,
        },
        _ => Behavior::Exits {
            code: 0,
            after_ms: r.between(5, 120) * 1_000,
        },
    }
}

/// The behaviour a job of `kind` starts with.
fn first_behavior(kind: Kind) -> Behavior {
    match kind {
        Kind::Service | Kind::System => Behavior::Healthy,
        Kind::Batch | Kind::Periodic => Behavior::Exits {
            code: 0,
            after_ms: 20_000,
        },
    }
}

async fn setup(c: &mut Cluster) {
    let nodes = c.rng.between(3, 5);
    for i in 0..nodes {
        c.add_node(&format!("n{i}")).await;
    }
    let services = c.rng.between(1, 3);
    for i in 0..services {
        let shape = random_shape(c, &format!("web{i}"), Kind::Service);
        c.apply(shape, Behavior::Healthy).await;
    }
    for (id, kind, per_mille) in [
        ("sys", Kind::System, 300),
        ("batch", Kind::Batch, 300),
        ("cron", Kind::Periodic, 300),
    ] {
        if c.rng.chance(per_mille) {
            let mut shape = random_shape(c, id, kind);
            shape.count = 1;
            c.apply(shape, first_behavior(kind)).await;
        }
    }
}

fn service_ids(c: &Cluster) -> Vec<String> {
    c.jobs
        .values()
        .filter(|u| u.shape.kind == Kind::Service)
        .map(|u| u.shape.id.clone())
        .collect()
}

async fn user_action(c: &mut Cluster) {
    let ids = service_ids(c);
    if ids.is_empty() {
        return;
    }
    let id = c.rng.pick(&ids).clone();
    let Some(u) = c.jobs.get(&id).cloned() else {
        return;
    };
    match c.rng.weighted(&[30, 8, 4, 3, 3, 10, 3, 3, 4, 4, 5, 3]) {
        0 => {
            let b = random_behavior(c);
            let mut shape = u.shape.clone();
            if c.rng.chance(300) {
                shape = random_shape(c, &id, Kind::Service);
            }
            c.apply(shape, b).await;
        }
        1 => {
            let mut shape = u.shape.clone();
            shape.count = c.rng.between(1, 5) as u32;
            c.apply(shape, u.behavior).await;
        }
        2 => c.stop_job(&id).await,
        3 if !u.purged => c.purge_job(&id).await,
        4 => c.write_invalid_spec(&id).await,
        5 => {
            c.promote(&id).await;
        }
        6 => {
            c.pause(&id, true).await;
        }
        7 => {
            c.pause(&id, false).await;
        }
        8 => {
            c.fail_deployment(&id).await;
        }
        9 | 10 => {
            let nodes = c.connected();
            if !nodes.is_empty() {
                let n = c.rng.pick(&nodes).clone();
                if c.rng.chance(500) {
                    let deadline = *c.rng.pick(&[0, 30_000, 120_000]);
                    c.drain(&n, deadline).await;
                } else {
                    c.cancel_drain(&n).await;
                }
            }
        }
        _ => {
            // Fix what is broken: a good spec again.
            c.apply(u.shape.clone(), Behavior::Healthy).await;
        }
    }
}

async fn node_action(c: &mut Cluster) {
    let up = c.connected();
    let down = c.disconnected();
    match c.rng.weighted(&[5, 5, 1, 1]) {
        0 if up.len() > 1 => {
            let n = c.rng.pick(&up).clone();
            c.disconnect(&n).await;
        }
        1 if !down.is_empty() => {
            let n = c.rng.pick(&down).clone();
            c.connect(&n).await;
        }
        2 if up.len() > 2 => {
            let n = c.rng.pick(&up).clone();
            c.remove_node(&n).await;
        }
        3 if c.nodes.len() < 8 => {
            let n = format!("n{}", c.nodes.len());
            c.add_node(&n).await;
        }
        _ => {}
    }
}

/// A fault for this step; returns a crash point for the server that runs next, if any.
async fn fault(c: &mut Cluster) -> Option<(usize, u32)> {
    let i = c.rng.below(c.servers.len() as u64) as usize;
    match c.rng.weighted(&[2, 3, 4, 3, 3, 3]) {
        0 => c.crash_server(i),
        1 => {
            let n = c.rng.below(4) as u32;
            return Some((i, n));
        }
        2 => {
            if !c.servers[i].alive {
                c.restart_server(i).await;
            }
        }
        3 => c.depose(i).await,
        4 => {
            let name = c.servers[i].name.clone();
            c.servers[i].store.cut_watches(c.rng.between(1, 9) as u32);
            c.log(format!("server {name}: watches cut and answered compacted"));
        }
        _ => {
            let name = c.servers[i].name.clone();
            c.servers[i].store.conflict_next_guarded_txn();
            c.log(format!(
                "server {name}: its next commit meets a concurrent writer"
            ));
        }
    }
    None
}

/// Runs the agents, then every live server, then the end-of-step checks (scripted tests call it
/// after moving the clock themselves). `crash`: the server that dies at its n-th write.
pub async fn act(c: &mut Cluster, crash: Option<(usize, u32)>) {
    c.agents_round().await;
    for i in 0..c.servers.len() {
        let at = crash.filter(|(s, _)| *s == i).map(|(_, n)| n);
        c.server_round(i, at).await;
    }
    for i in 0..c.servers.len() {
        if !c.servers[i].alive {
            c.servers[i].dead_for += 1;
            if c.servers[i].dead_for == 2 {
                c.expire_leases(i).await;
            }
        }
    }
    c.check_nodes_back().await;
}

async fn random_step(c: &mut Cluster) {
    let dt = DELAYS_MS[c.rng.weighted(&DELAY_WEIGHTS)];
    c.clock.advance(dt);
    if c.rng.chance(250) {
        user_action(c).await;
    }
    if c.rng.chance(80) {
        node_action(c).await;
    }
    let mut crash = None;
    if c.rng.chance(100) {
        crash = fault(c).await;
    }
    act(c, crash).await;
}

/// Ends the faults: servers back, nodes back and eligible, broken jobs fixed with a good
/// version, as an operator would.
async fn end_faults(c: &mut Cluster) {
    c.log("settle: faults end");
    for i in 0..c.servers.len() {
        c.restart_server(i).await;
    }
    for n in c.disconnected() {
        c.connect(&n).await;
    }
    if c.connected().len() < 3 {
        for k in 0..3 {
            let n = format!("n{}", c.nodes.len() + k);
            c.add_node(&n).await;
        }
    }
    for n in c.connected() {
        c.cancel_drain(&n).await;
    }
    fix_jobs(c, &mut BTreeMap::new()).await;
}

/// What an operator does about a job that does not run as declared: a good spec again for one
/// that is invalid, purged or misbehaving, or whose rollout failed (a failed deployment stays as
/// it stopped, as in Nomad). At most a few times per job.
async fn fix_jobs(c: &mut Cluster, fixes: &mut BTreeMap<String, u32>) {
    for id in service_ids(c) {
        let Some(u) = c.jobs.get(&id).cloned() else {
            continue;
        };
        if u.stopped || fixes.get(&id).copied().unwrap_or(0) >= 3 {
            continue;
        }
        let failed = c.snapshot().await.ok().is_some_and(|s| {
            s.current_deployment(&u.key())
                .is_some_and(|d| d.status == nomos_api::deployment_status::FAILED)
        });
        if u.invalid || u.purged || !u.behavior.is_good() || failed {
            *fixes.entry(id.clone()).or_default() += 1;
            c.apply(u.shape.clone(), Behavior::Healthy).await;
        }
    }
}

async fn settle(c: &mut Cluster, steps: usize) {
    end_faults(c).await;
    let mut fixes = BTreeMap::new();
    for _ in 0..steps {
        if c.failed() {
            return;
        }
        c.step += 1;
        c.clock.advance(5_000);
        for id in service_ids(c) {
            c.promote(&id).await;
            c.pause(&id, false).await;
        }
        fix_jobs(c, &mut fixes).await;
        act(c, None).await;
    }
    let Ok(snap) = c.snapshot().await else {
        return;
    };
    let good = |j: &nomos_api::Job| spec::behavior_of(j).is_good();
    let violations: Vec<Violation> = every_job_converges_once_faults_stop(&snap, &good);
    if !violations.is_empty() && c.failure.is_none() {
        for v in &violations {
            c.trace.push(format!("  !! {}: {}", v.invariant, v.detail));
        }
        for line in c.controller_views() {
            c.trace.push(format!("  .. {line}"));
        }
        c.failure = Some(crate::cluster::Failure {
            step: c.step,
            violations,
        });
    }
}

/// Runs one seed to the end, or to its first broken invariant.
pub async fn run(seed: u64, config: RunConfig) -> RunReport {
    let mut c = Cluster::new(seed).await;
    setup(&mut c).await;
    while c.step < config.steps && !c.failed() {
        c.step += 1;
        random_step(&mut c).await;
    }
    if !c.failed() {
        settle(&mut c, config.settle_steps).await;
    }
    RunReport {
        seed,
        steps: config.steps,
        simulated_ms: c.clock.elapsed(),
        digest: c.trace.digest(),
        failure: c.failure.clone(),
        trace: c.trace.clone(),
    }
}

/// Runs one seed on its own single-threaded runtime.
pub fn run_blocking(seed: u64, config: RunConfig) -> RunReport {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(run(seed, config))
}
