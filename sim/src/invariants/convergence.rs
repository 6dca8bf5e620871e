//! What a bad spec cannot change, and what every run must reach once its faults stop.

use nomos_api::{deployment_status as ds, ClientStatus, DesiredStatus, Job};

use super::{is_service, violation, Actor, Checker, Violation};
use crate::observe::Snapshot;

pub(super) fn an_invalid_spec_never_changes_what_runs(
    c: &Checker,
    cur: &Snapshot,
    actor: &Actor,
    out: &mut Vec<Violation>,
) {
    const NAME: &str = "an_invalid_spec_never_changes_what_runs";
    for (job, since) in &c.invalid {
        // Only `auto_revert` may add a version meanwhile: the one after a failed deployment.
        let mut accepted = cur
            .versions
            .get(job)
            .into_iter()
            .flatten()
            .filter(|(v, _)| {
                **v > *since
                    && !c.prev.versions.get(job).is_some_and(|p| p.contains_key(v))
                    && !cur.deployments.get(job).is_some_and(|ds_| {
                        ds_.iter()
                            .any(|d| d.job_version + 1 == **v && d.status == ds::FAILED)
                    })
            });
        if let Some((v, _)) = accepted.next_back() {
            violation(
                out,
                NAME,
                format!(
                    "{} accepted version {v} while its spec in the store is invalid",
                    job.1
                ),
            );
        }
        if let Some((_, j)) = cur.newest(job) {
            if j.stop {
                continue;
            }
            for a in cur.allocs_of(job) {
                let was = c.prev.allocs.get(&a.id);
                if was.is_some_and(|w| w.desired_status == DesiredStatus::Run)
                    && a.desired_status == DesiredStatus::Stop
                    && (a.desired_description.contains("job stopped")
                        || a.desired_description.contains("purged"))
                {
                    violation(
                        out,
                        NAME,
                        format!(
                            "{} was stopped ({}) because of an invalid spec",
                            a.name, a.desired_description
                        ),
                    );
                }
            }
        }
        if let Actor::Reconcile(k) = actor {
            if k == job && cur.job_status.get(job).is_some_and(|s| s.errors.is_empty()) {
                violation(
                    out,
                    NAME,
                    format!("{}: the status shows no error for the invalid spec", job.1),
                );
            }
        }
    }
}

/// The jobs that did not converge once faults stopped: each non-stopped service job whose
/// newest version is good has `count` healthy allocations of that version and no deployment
/// left running, and nothing is left `unknown` on a connected node.
pub fn every_job_converges_once_faults_stop(
    cur: &Snapshot,
    good: &dyn Fn(&Job) -> bool,
) -> Vec<Violation> {
    const NAME: &str = "every_job_converges_once_faults_stop";
    let mut out = Vec::new();
    for (job, versions) in &cur.versions {
        let Some((v, j)) = versions.last_key_value() else {
            continue;
        };
        if !is_service(cur, job) || j.stop || !cur.specs.contains_key(job) || !good(j) {
            continue;
        }
        for g in &j.groups {
            let healthy = cur
                .allocs_of(job)
                .filter(|a| a.task_group == g.name && a.job_version == *v && cur.is_healthy(a))
                .count() as u32;
            if healthy != g.count {
                let seen: Vec<String> = cur
                    .allocs_of(job)
                    .filter(|a| a.desired_status == DesiredStatus::Run)
                    .map(|a| {
                        format!(
                            "{} v{}[{}] on {} {:?} healthy={:?}",
                            &a.id[..8.min(a.id.len())],
                            a.job_version,
                            a.index,
                            a.node,
                            cur.client_status(&a.id),
                            cur.alloc_status.get(&a.id).and_then(|s| s.healthy)
                        )
                    })
                    .collect();
                let d = cur
                    .current_deployment(job)
                    .map(|d| format!("{} {}", d.id, d.status));
                let st = cur.job_status.get(job).map(|s| {
                    format!(
                        "status {} v{} failures {:?} errors {:?}",
                        s.status, s.version, s.placement_failures, s.errors
                    )
                });
                violation(
                    &mut out,
                    NAME,
                                        format!(
                        "{}/{}: {healthy} healthy allocations of version {v}, count {}; deployment {d:?}; {st:?}; desired to run: {seen:?}",
                        job.1, g.name, g.count
                    ),
                );
            }
        }
        if let Some(d) = cur.current_deployment(job).filter(|d| d.is_active()) {
            violation(
                &mut out,
                NAME,
                format!(
                    "{}: deployment {} still {} ({})",
                    job.1, d.id, d.status, d.status_description
                ),
            );
        }
    }
    for a in cur.allocs.values() {
        if cur.node_up(&a.node) && cur.client_status(&a.id) == Some(ClientStatus::Unknown) {
            violation(
                &mut out,
                NAME,
                format!("{} stays unknown on connected node {}", a.name, a.node),
            );
        }
    }
    out
}
