//! What users do to the simulated cluster: write, apply, stop and purge jobs, act on
//! deployments (promote, pause, fail) and drain nodes.

use nomos_api::eval::{eval_status, triggers, Evaluation};
use nomos_api::{deployment_status as ds, Deployment, DrainSpec, NodeSpec};
use nomos_store::{keys, KeySelector, PutOptions, Txn, TxnOp};

use super::{Cluster, UserJob};
use crate::invariants::Actor;
use crate::observe::{JobKey, Snapshot};
use crate::spec::{self, Behavior, JobShape};

impl Cluster {
    /// Writes the user's current declaration of a job into the store (the GitOps path).
    pub async fn write_job(&mut self, id: &str) {
        self.write_job_with(id, None).await;
    }

    /// Applies a job as the API registers it: the spec and a pending `job-register`
    /// evaluation in one transaction. Returns the evaluation's ID.
    pub async fn register(&mut self, shape: JobShape, behavior: Behavior) -> String {
        let eval = Evaluation {
            id: (self.ids)(),
            namespace: "default".into(),
            job_id: shape.id.clone(),
            triggered_by: triggers::JOB_REGISTER.into(),
            status: eval_status::PENDING.into(),
            create_time: self.clock.now().saturating_mul(1_000_000),
            ..Default::default()
        };
        self.log(format!(
            "user registers {} (evaluation {})",
            shape.id, eval.id
        ));
        let id = eval.id.clone();
        self.record_job(shape.clone(), behavior);
        self.write_job_with(&shape.id, Some(eval)).await;
        id
    }

    /// [`Self::write_job`], with `eval` written in the spec's transaction.
    async fn write_job_with(&mut self, id: &str, eval: Option<Evaluation>) {
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
        let mut ops = vec![TxnOp::put(keys::job(&key.0, &key.1), spec::stored(&job))];
        if let Some(e) = &eval {
            let value = serde_json::to_vec(e).unwrap_or_default();
            ops.push(TxnOp::put(keys::eval(&e.namespace, &e.id), value));
        }
        let _ = self.store.txn(Txn::new().and_then(ops)).await;
        self.checker.user_wrote(&key, Some(&accepted));
        self.check(Actor::User).await;
    }

    pub async fn apply(&mut self, shape: JobShape, behavior: Behavior) {
        let id = shape.id.clone();
        self.record_job(shape, behavior);
        self.write_job(&id).await;
    }

    /// The user's new declaration of a job, logged.
    fn record_job(&mut self, shape: JobShape, behavior: Behavior) {
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
}
