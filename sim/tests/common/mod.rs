//! Scripted runs of the simulated cluster, for the regression tests: a [`Script`] drives a
//! [`Cluster`] one step at a time exactly as a random scenario step does (the clock moves, every
//! connected agent plays a round, every live server runs what it leads, a dead server's leases
//! lapse two steps after it died, nodes just back are checked), but the test chooses every
//! action and reads the store between steps.
//!
//! Set `NOMOS_SIM_TRACE` to print each script's whole trace when it ends.
//!
//! The helpers at the bottom count what the assertions talk about: healthy allocations of one
//! spec, live allocations, the versions and deployments of a job.

use nomos_api::{Allocation, Deployment, Job};
use nomos_sim::cluster::Cluster;
use nomos_sim::observe::{JobKey, Snapshot};

/// A cluster driven by a test, one step at a time.
pub struct Script {
    pub cluster: Cluster,
}

impl Script {
    /// A cluster of two servers and the nodes named `n0`, `n1`, ... (`nodes` of them).
    pub async fn new(seed: u64, nodes: usize) -> Self {
        let mut cluster = Cluster::new(seed).await;
        for i in 0..nodes {
            cluster.add_node(&format!("n{i}")).await;
        }
        Script { cluster }
    }

    /// One step: the clock moves `dt_ms`, then the agents and the servers act.
    pub async fn step(&mut self, dt_ms: i64) {
        self.advance(dt_ms);
        self.act(None).await;
    }

    /// One step in which server `server` dies at its write number `at_write + 1`.
    pub async fn step_crashing(&mut self, dt_ms: i64, server: usize, at_write: u32) {
        self.advance(dt_ms);
        self.act(Some((server, at_write))).await;
    }

    /// Steps of `dt_ms` until `total_ms` have passed.
    pub async fn run_for(&mut self, total_ms: i64, dt_ms: i64) {
        for _ in 0..total_ms / dt_ms {
            self.step(dt_ms).await;
        }
    }

    fn advance(&mut self, dt_ms: i64) {
        self.cluster.step += 1;
        self.cluster.clock.advance(dt_ms);
    }

    /// What a scenario step does after the clock moved (see `scenario::act`).
    async fn act(&mut self, crash: Option<(usize, u32)>) {
        nomos_sim::scenario::act(&mut self.cluster, crash).await;
    }

    /// Steps of `dt_ms` until `done` holds for the store, for at most `limit_ms`; panics with
    /// the trace if it never does, or if an invariant breaks on the way. Returns the last read.
    pub async fn run_until(
        &mut self,
        limit_ms: i64,
        dt_ms: i64,
        what: &str,
        done: impl Fn(&Snapshot) -> bool,
    ) -> Snapshot {
        for _ in 0..limit_ms / dt_ms {
            self.step(dt_ms).await;
            self.assert_sound();
            let snap = self.snapshot().await;
            if done(&snap) {
                return snap;
            }
        }
        panic!(
            "not within {} s: {what}\n{}",
            limit_ms / 1000,
            self.explain(80)
        );
    }

    /// Steps of `dt_ms` for `total_ms`, with `check` on the store after each; panics with the
    /// trace at the first step where `check` fails or an invariant breaks.
    pub async fn run_checking(
        &mut self,
        total_ms: i64,
        dt_ms: i64,
        mut check: impl FnMut(&Snapshot) -> Result<(), String>,
    ) -> Snapshot {
        let mut snap = self.snapshot().await;
        for _ in 0..total_ms / dt_ms {
            self.step(dt_ms).await;
            self.assert_sound();
            snap = self.snapshot().await;
            if let Err(e) = check(&snap) {
                panic!(
                    "at step {} (+{} s): {e}\n{}",
                    self.cluster.step,
                    self.cluster.clock.elapsed() / 1000,
                    self.explain(80)
                );
            }
        }
        snap
    }

    /// A read of the whole store now.
    pub async fn snapshot(&mut self) -> Snapshot {
        self.cluster
            .snapshot()
            .await
            .expect("the embedded store answers")
    }

    /// Panics with the broken invariant and the end of the trace if any invariant broke.
    pub fn assert_sound(&self) {
        assert!(!self.cluster.failed(), "{}", self.explain(60));
    }

    /// The broken invariants, if any, and the last `tail` lines of the trace.
    pub fn explain(&self, tail: usize) -> String {
        let c = &self.cluster;
        let mut s = match &c.failure {
            Some(f) => {
                let mut s = format!("seed {} broke at step {}:\n", c.seed, f.step);
                for v in &f.violations {
                    s.push_str(&format!("  {}: {}\n", v.invariant, v.detail));
                }
                s
            }
            None => format!("seed {} at step {}, no invariant broken\n", c.seed, c.step),
        };
        s.push_str(&format!(
            "trace (last {tail} lines):\n{}",
            c.trace.tail(tail)
        ));
        s
    }
}

/// With `NOMOS_SIM_TRACE` set, a script prints its whole trace when it ends (run the tests with
/// `--nocapture` to read the story of each).
impl Drop for Script {
    fn drop(&mut self) {
        if std::env::var_os("NOMOS_SIM_TRACE").is_some() {
            eprintln!("{}", self.explain(usize::MAX));
        }
    }
}

/// The key of a job in the default namespace.
pub fn key(id: &str) -> JobKey {
    ("default".into(), id.into())
}

/// The spec hash of a stored version.
pub fn hash_of(snap: &Snapshot, job: &JobKey, version: u64) -> String {
    snap.version_hash(job, version)
        .unwrap_or_else(|| panic!("version {version} of {job:?} is stored"))
        .to_string()
}

/// The stored versions of a job, oldest first.
pub fn versions(snap: &Snapshot, job: &JobKey) -> Vec<(u64, Job)> {
    snap.versions
        .get(job)
        .map(|v| v.iter().map(|(n, j)| (*n, (**j).clone())).collect())
        .unwrap_or_default()
}

/// Live allocations (desired to run, not finished) of a job.
pub fn live<'a>(snap: &'a Snapshot, job: &'a JobKey) -> Vec<&'a Allocation> {
    snap.allocs_of(job).filter(|a| snap.is_live(a)).collect()
}

/// Healthy allocations of a job running the spec with this hash.
pub fn healthy_with(snap: &Snapshot, job: &JobKey, hash: &str) -> usize {
    snap.allocs_of(job)
        .filter(|a| a.job_spec_hash == hash && snap.is_healthy(a))
        .count()
}

/// Healthy allocations of a job running the spec of `version` (0 while it is not stored).
pub fn healthy_of_version(snap: &Snapshot, job: &JobKey, version: u64) -> usize {
    snap.version_hash(job, version)
        .map_or(0, |h| healthy_with(snap, job, h))
}

/// Live allocations of a job running the spec with this hash.
pub fn live_with(snap: &Snapshot, job: &JobKey, hash: &str) -> usize {
    live(snap, job)
        .into_iter()
        .filter(|a| a.job_spec_hash == hash)
        .count()
}

/// The deployment of a job version, if any.
pub fn deployment_of<'a>(snap: &'a Snapshot, job: &JobKey, version: u64) -> Option<&'a Deployment> {
    snap.deployments
        .get(job)?
        .iter()
        .rev()
        .find(|d| d.job_version == version)
}

/// One line per allocation of a job, for assertion messages.
pub fn describe_allocs(snap: &Snapshot, job: &JobKey) -> String {
    snap.allocs_of(job)
        .map(|a| {
            let st = snap.alloc_status.get(&a.id);
            format!(
                "  {} {} v{} {:?} {:?} healthy={:?} hash={}{}\n",
                &a.id[..a.id.len().min(8)],
                a.name,
                a.job_version,
                a.desired_status,
                st.map(|s| s.client_status),
                st.and_then(|s| s.healthy),
                a.job_spec_hash,
                if a.canary { " canary" } else { "" }
            )
        })
        .collect()
}
