//! The simulated servers: crashes, lapsed leases, restarts and depositions, and each round
//! of the controllers and loops they lead.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use nomos_controllers::jobs::{self, JobsConfig};
use nomos_controllers::loops::{self, LoopName, LoopsConfig};
use nomos_controllers::runtime::election::campaign_once;
use nomos_controllers::runtime::runner::Action;
use nomos_store::Store;

use super::{loop_name, Cluster, Failure, JobsInstance, LoopPass, CONTROLLERS, LEASE_TTL_SECS};
use crate::faults::FaultyStore;
use crate::invariants::{Actor, Violation};
use crate::observe::JobKey;

impl Cluster {
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
                    // Reconciles run on the simulated clock: a report is reconciled in the
                    // next round, not after a wall-clock delay a seed could not replay.
                    status_coalesce: Duration::ZERO,
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
        // (A reflector whose watch is held waits for its release.)
        let targets: Vec<i64> = inst
            .running
            .reflectors
            .iter()
            .map(|(k, _)| {
                if store.holds(k.prefix()) {
                    0
                } else {
                    self.recorder.newest_under(k.prefix().as_bytes())
                }
            })
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
