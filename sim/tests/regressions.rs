//! Named, scripted scenarios of the simulated cluster: each one a rollout, a fault or a user's
//! mistake that went wrong once (or could), played step by step with a fixed seed, with what
//! users are promised asserted on the store at every step and at the end. Every invariant of
//! the simulation is checked after every action as well.

mod common;

use std::collections::BTreeSet;

use nomos_api::{deployment_status as ds, ClientStatus, ReschedulePolicy};
use nomos_sim::observe::{JobKey, Snapshot};
use nomos_sim::spec::{self, Behavior, JobShape};

use common::{
    deployment_of, describe_allocs, hash_of, healthy_of_version, healthy_with, key, live,
    live_with, versions, Script,
};

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;

/// A service of `count` copies rolling one at a time, reverting a failed rollout.
fn reverting_service(id: &str, count: u32) -> JobShape {
    let mut shape = spec::service(id, count);
    shape.rollout.auto_revert = true;
    shape.rollout.progress_deadline_ms = 120_000;
    shape
}

/// Applies the first version and waits until all its copies are healthy; returns its hash.
async fn run_first_version(s: &mut Script, shape: &JobShape) -> String {
    let job = key(&shape.id);
    let count = shape.count as usize;
    s.cluster.apply(shape.clone(), Behavior::Healthy).await;
    let snap = s
        .run_until(
            3 * MINUTE,
            SECOND,
            "the first version runs healthy",
            |snap| healthy_of_version(snap, &job, 0) == count,
        )
        .await;
    hash_of(&snap, &job, 0)
}

/// Waits until the job has a version after `after`; returns its number and hash.
async fn next_version(s: &mut Script, job: &JobKey, after: u64) -> (u64, String) {
    let snap = s
        .run_until(30 * SECOND, SECOND, "the new version is accepted", |snap| {
            snap.newest(job).is_some_and(|(v, _)| v > after)
        })
        .await;
    let (v, _) = snap.newest(job).expect("a version");
    (v, hash_of(&snap, job, v))
}

fn is_failed(snap: &Snapshot, job: &JobKey, version: u64) -> bool {
    deployment_of(snap, job, version).is_some_and(|d| d.status == ds::FAILED)
}

/// The risk (the rules d6356bd and 46c388b put in): a rollout of a version whose task exits
/// with an error replaces more than one healthy copy at a time, keeps placing the failing
/// version while reverting, or reverts more than once. Must hold: with `max_parallel = 1` at
/// least `count - 1` copies of the good spec stay healthy at every step, at most one copy of
/// the bad version runs before its deployment fails, the revert writes exactly one new version
/// with the good spec, and the job ends with `count` healthy copies of the good spec.
#[tokio::test]
async fn a_failing_version_with_max_parallel_1_never_drops_below_count_minus_1_healthy_and_reverts_once(
) {
    let mut s = Script::new(11, 3).await;
    let shape = reverting_service("web", 3);
    let job = key("web");
    let good = run_first_version(&mut s, &shape).await;

    s.cluster
        .apply(
            shape.clone(),
            Behavior::Exits {
                code: 1,
                after_ms: 2_000,
            },
        )
        .await;
    let (_, bad) = next_version(&mut s, &job, 0).await;
    let snap = s
        .run_checking(5 * MINUTE, SECOND, |snap| {
            let healthy = healthy_with(snap, &job, &good);
            if healthy < 2 {
                return Err(format!(
                    "{healthy} healthy copies of the good spec:\n{}",
                    describe_allocs(snap, &job)
                ));
            }
            let bad_live = live_with(snap, &job, &bad);
            if !is_failed(snap, &job, 1) && bad_live > 1 {
                return Err(format!(
                    "{bad_live} copies of the bad version before it failed:\n{}",
                    describe_allocs(snap, &job)
                ));
            }
            Ok(())
        })
        .await;

    let d = deployment_of(&snap, &job, 1).expect("a deployment of version 1");
    assert_eq!(d.status, ds::FAILED, "{}", s.explain(80));
    let all = versions(&snap, &job);
    assert_eq!(
        all.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [0, 1, 2],
        "one version written by the revert\n{}",
        s.explain(80)
    );
    assert_eq!(
        hash_of(&snap, &job, 2),
        good,
        "the revert has the good spec"
    );
    // What `nctl apply --wait` follows: the version the bad spec became, not the revert.
    assert_eq!(
        snap.job_status
            .get(&job)
            .map(|st| (st.version, st.spec_version)),
        Some((2, Some(1)))
    );
    assert_eq!(healthy_with(&snap, &job, &good), 3, "{}", s.explain(80));
    assert_eq!(
        live(&snap, &job).len(),
        3,
        "{}",
        describe_allocs(&snap, &job)
    );
}

/// The risk (d6356bd: failed canaries follow their reschedule policy, failures that cannot be
/// rescheduled fail the deployment at once): a canary whose task exits with an error is
/// replaced again and again. Must hold: the canary is rescheduled only as its policy allows
/// (one attempt; restarts happen in place), the deployment then fails and the job reverts, and
/// the original copies keep running, healthy, throughout.
#[tokio::test]
async fn a_crashing_canary_is_rescheduled_by_policy_and_fails_the_deployment() {
    let mut s = Script::new(12, 3).await;
    let mut shape = reverting_service("api", 2);
    shape.rollout.canary = 1;
    shape.reschedule = Some(ReschedulePolicy {
        attempts: 1,
        interval_ns: 3_600_000_000_000,
        delay_ns: 10_000_000_000,
        delay_function: "constant".into(),
        max_delay_ns: 120_000_000_000,
        unlimited: false,
    });
    let job = key("api");
    let good = run_first_version(&mut s, &shape).await;

    s.cluster
        .apply(
            shape.clone(),
            Behavior::Exits {
                code: 1,
                after_ms: 1_000,
            },
        )
        .await;
    let (_, bad) = next_version(&mut s, &job, 0).await;
    let mut canaries = BTreeSet::new();
    let snap = s
        .run_checking(5 * MINUTE, SECOND, |snap| {
            canaries.extend(
                snap.allocs_of(&job)
                    .filter(|a| a.job_spec_hash == bad)
                    .map(|a| a.id.clone()),
            );
            let healthy = healthy_with(snap, &job, &good);
            if healthy < 2 {
                return Err(format!(
                    "{healthy} healthy original copies:\n{}",
                    describe_allocs(snap, &job)
                ));
            }
            Ok(())
        })
        .await;

    // The canary and one reschedule (restarts happen in place).
    assert!(
        canaries.len() <= 2,
        "{} canaries placed: {canaries:?}\n{}",
        canaries.len(),
        s.explain(80)
    );
    assert!(is_failed(&snap, &job, 1), "{}", s.explain(80));
    let (newest, _) = snap.newest(&job).expect("versions");
    assert_eq!(newest, 2, "one revert\n{}", s.explain(80));
    assert_eq!(
        hash_of(&snap, &job, 2),
        good,
        "the revert has the good spec"
    );
    assert_eq!(
        live_with(&snap, &job, &bad),
        0,
        "{}",
        describe_allocs(&snap, &job)
    );
    assert_eq!(healthy_with(&snap, &job, &good), 2);
}

/// The risk (d6356bd: healthy canaries waiting for promotion stop the progress deadline and say
/// so): a healthy canary waiting for a user's promotion fails its deployment at the progress
/// deadline, and auto-revert rolls the job back. Must hold: the deployment keeps running and
/// says it requires manual promotion, no version is written, at most `count + 1` copies run;
/// once promoted, the rollout completes with `count` healthy copies of the new version.
#[tokio::test]
async fn a_healthy_canary_awaiting_promotion_does_not_fail_at_the_progress_deadline() {
    let mut s = Script::new(13, 3).await;
    let mut shape = reverting_service("api", 3);
    shape.rollout.canary = 1;
    shape.rollout.progress_deadline_ms = 20_000;
    shape.rollout.healthy_deadline_ms = 15_000;
    let job = key("api");
    run_first_version(&mut s, &shape).await;

    s.cluster.apply(shape.clone(), Behavior::Healthy).await;
    let (_, new) = next_version(&mut s, &job, 0).await;
    s.run_until(MINUTE, SECOND, "the canary is healthy", |snap| {
        healthy_with(snap, &job, &new) == 1
    })
    .await;
    s.run_checking(4 * MINUTE, SECOND, |snap| {
        let d = deployment_of(snap, &job, 1).ok_or("no deployment of version 1")?;
        if d.status != ds::RUNNING || d.status_description != ds::DESC_NEEDS_PROMOTION {
            return Err(format!("deployment {}: {}", d.status, d.status_description));
        }
        let versions = versions(snap, &job).len();
        if versions != 2 {
            return Err(format!("{versions} versions"));
        }
        let running = live(snap, &job).len();
        if running > 4 {
            return Err(format!("{running} live copies"));
        }
        Ok(())
    })
    .await;

    assert!(s.cluster.promote("api").await, "{}", s.explain(40));
    let snap = s
        .run_until(
            3 * MINUTE,
            SECOND,
            "the promoted rollout completes",
            |snap| deployment_of(snap, &job, 1).is_some_and(|d| d.status == ds::SUCCESSFUL),
        )
        .await;
    assert_eq!(healthy_with(&snap, &job, &new), 3, "{}", s.explain(60));
    assert_eq!(
        live(&snap, &job).len(),
        3,
        "{}",
        describe_allocs(&snap, &job)
    );
}

/// Purges a job running a spec without checks, creates it again with a spec that has one
/// (once the controllers saw the purge, or once the purge has deleted everything, so the new
/// spec is version 0 again),
/// and checks that only the new spec runs.
async fn purge_and_create_again(seed: u64, wait_until_forgotten: bool) {
    let mut s = Script::new(seed, 3).await;
    let mut old = spec::service("web", 2);
    old.rollout.health_check = "task_states";
    let job = key("web");
    let old_hash = run_first_version(&mut s, &old).await;

    s.cluster.purge_job("web").await;
    s.step(SECOND).await;
    if wait_until_forgotten {
        s.run_until(2 * MINUTE, SECOND, "the purge deletes everything", |snap| {
            !snap.versions.contains_key(&job) && snap.allocs_of(&job).next().is_none()
        })
        .await;
    }
    let mut new = spec::service("web", 3);
    new.rollout.health_check = "checks";
    s.cluster.apply(new, Behavior::Healthy).await;
    s.run_until(3 * MINUTE, SECOND, "the new spec runs healthy", |snap| {
        snap.newest(&job).is_some_and(|(v, _)| {
            let h = hash_of(snap, &job, v);
            h != old_hash && healthy_with(snap, &job, &h) == 3
        })
    })
    .await;
    s.run_for(MINUTE, SECOND).await;
    s.assert_sound();

    let snap = s.snapshot().await;
    let (v, _) = snap.newest(&job).expect("a version");
    assert_eq!(v, 0, "the job created again starts at version 0");
    let new_hash = hash_of(&snap, &job, v);
    assert_ne!(new_hash, old_hash);
    let running = live(&snap, &job);
    assert_eq!(running.len(), 3, "{}", describe_allocs(&snap, &job));
    for a in running {
        assert_eq!(
            a.job_spec_hash,
            new_hash,
            "{}",
            describe_allocs(&snap, &job)
        );
        let status = &snap.alloc_status[&a.id];
        assert_eq!(status.client_status, ClientStatus::Running);
        assert!(
            !status.checks.is_empty(),
            "{} reports no check: its agent runs the purged spec",
            a.name
        );
    }
}

/// The risk (f2ed26a, 2c3086c: allocations name the spec hash they run): a job purged and
/// created again under the same id starts at version 0 once more, and its allocations, or an
/// agent's cache, take the purged job's version 0 for the new one. Must hold, whether it is
/// created again while the purge is under way or after it finished: every live allocation
/// names the new spec's hash, and the agents run the new spec (its health check, absent from
/// the purged spec, is reported).
#[tokio::test]
async fn a_purged_job_created_again_runs_its_new_spec() {
    purge_and_create_again(14, false).await;
    purge_and_create_again(14, true).await;
}

/// The risk (seed 61): a spec that does not parse, written while a purge is under way (its
/// allocations stopped, its versions not yet deleted), made the controller run the purged
/// job's last version again, as it keeps the last good version of a running job. Must hold:
/// the purge is recorded in the job's status; after the invalid spec, nothing of the purged
/// job runs or is placed again, its versions are gone, and the status reports the errors.
#[tokio::test]
async fn an_invalid_spec_written_while_a_purge_is_under_way_runs_nothing() {
    let mut s = Script::new(61, 3).await;
    let shape = spec::service("web", 3);
    let job = key("web");
    let old_hash = run_first_version(&mut s, &shape).await;

    s.cluster.purge_job("web").await;
    let snap = s
        .run_until(30 * SECOND, SECOND, "the purge begins", |snap| {
            snap.job_status.get(&job).is_some_and(|st| st.purging)
        })
        .await;
    assert!(
        snap.allocs_of(&job).next().is_some(),
        "the purge ended before the test could write in its middle"
    );
    s.cluster.write_invalid_spec("web").await;
    let snap = s
        .run_checking(2 * MINUTE, SECOND, |snap| {
            match live_with(snap, &job, &old_hash) {
                0 => Ok(()),
                n => Err(format!(
                    "{n} allocations of the purged spec run:\n{}",
                    describe_allocs(snap, &job)
                )),
            }
        })
        .await;
    assert!(versions(&snap, &job).is_empty(), "{}", s.explain(40));
    let status = snap.job_status.get(&job).expect("a job status");
    assert!(!status.purging, "{status:?}");
    assert!(!status.errors.is_empty(), "{status:?}");
    assert!(
        snap.allocs_of(&job).all(|a| !snap.is_live(a)),
        "{}",
        describe_allocs(&snap, &job)
    );
}

/// What runs, per allocation: its version, node and desired status.
fn placements(snap: &Snapshot, job: &JobKey) -> Vec<String> {
    snap.allocs_of(job)
        .map(|a| {
            format!(
                "{} {} v{} {} {:?}",
                a.id, a.name, a.job_version, a.node, a.desired_status
            )
        })
        .collect()
}

/// The risk: a spec that does not parse, written over a running job, stops or replaces what
/// runs. Must hold: for several minutes after it, the allocations and versions stay exactly as
/// they were, all healthy, and the job's status reports the spec's errors.
#[tokio::test]
async fn an_invalid_spec_written_over_a_running_job_changes_nothing() {
    let mut s = Script::new(15, 3).await;
    let shape = spec::service("web", 3);
    let job = key("web");
    let good = run_first_version(&mut s, &shape).await;
    let before = s.snapshot().await;

    s.cluster.write_invalid_spec("web").await;
    let expected = placements(&before, &job);
    s.run_checking(5 * MINUTE, SECOND, |snap| {
        if placements(snap, &job) != expected {
            return Err(format!(
                "allocations changed:\n{}",
                describe_allocs(snap, &job)
            ));
        }
        if versions(snap, &job).len() != 1 {
            return Err("a version was written".into());
        }
        if healthy_with(snap, &job, &good) != 3 {
            return Err(format!("not all healthy:\n{}", describe_allocs(snap, &job)));
        }
        Ok(())
    })
    .await;
    let snap = s.snapshot().await;
    let status = snap.job_status.get(&job).expect("a job status");
    assert!(
        !status.errors.is_empty(),
        "the job status says nothing of the invalid spec"
    );
}

/// A node holding half of 70 allocations misses its heartbeat for `away_ms`, then is back;
/// after two minutes, nothing may be `unknown` or run twice, and all 70 copies are healthy.
async fn blip(seed: u64, away_ms: i64) {
    let mut s = Script::new(seed, 2).await;
    let mut shape = spec::service("many", 70);
    shape.cpu = 50;
    shape.memory_mb = 32;
    shape.rollout.max_parallel = 10;
    let job = key("many");
    run_first_version(&mut s, &shape).await;

    s.cluster.disconnect("n0").await;
    s.run_for(away_ms, 5 * SECOND).await;
    s.assert_sound();
    s.cluster.connect("n0").await;
    s.run_for(2 * MINUTE, 5 * SECOND).await;
    s.assert_sound();

    let snap = s.snapshot().await;
    let unknown: Vec<&str> = snap
        .allocs_of(&job)
        .filter(|a| snap.client_status(&a.id) == Some(ClientStatus::Unknown))
        .map(|a| a.name.as_str())
        .collect();
    assert!(
        unknown.is_empty(),
        "away {away_ms} ms, still unknown: {unknown:?}"
    );
    let running = live(&snap, &job);
    let indexes: BTreeSet<u32> = running.iter().map(|a| a.index).collect();
    assert_eq!(
        indexes.len(),
        running.len(),
        "away {away_ms} ms, an index runs twice:\n{}",
        describe_allocs(&snap, &job)
    );
    assert_eq!(running.len(), 70, "away {away_ms} ms\n{}", s.explain(60));
    let healthy = running.iter().filter(|a| snap.is_healthy(a)).count();
    assert_eq!(healthy, 70, "away {away_ms} ms\n{}", s.explain(60));
}

/// The risk (b342463, 61608b0: unknown marks and allocations of disconnected nodes): after a
/// node with many allocations misses its heartbeat and comes back, some of its allocations
/// stay `unknown`, or an index runs twice (the original and its replacement). Must hold, for a
/// blip shorter than `lost_after` (the allocations are only `unknown`) and one longer (they
/// are lost and replaced on the other node): once settled, no allocation is `unknown`, no
/// index runs twice, and all `count` copies are healthy.
#[tokio::test]
async fn a_heartbeat_blip_leaves_nothing_unknown() {
    blip(16, 15 * SECOND).await;
    blip(16, 90 * SECOND).await;
}

/// The index of the server leading the jobs controller.
fn jobs_leader(s: &Script) -> Option<usize> {
    s.cluster
        .servers
        .iter()
        .position(|srv| srv.alive && srv.leads.contains_key("jobs"))
}

/// At least `count - max_parallel` (2 of 3) copies of the job are healthy.
fn keeps_the_floor(snap: &Snapshot, job: &JobKey) -> Result<(), String> {
    let healthy = snap.allocs_of(job).filter(|a| snap.is_healthy(a)).count();
    if healthy < 2 {
        return Err(format!(
            "{healthy} healthy copies:\n{}",
            describe_allocs(snap, job)
        ));
    }
    Ok(())
}

/// One rollout in which the leading server dies at its write number `at_write + 1` from the
/// moment the new version is applied (each reconcile commits its plan in one write, so each
/// value kills it at a later stage of the rollout), then the other server takes over.
async fn rollout_with_a_crash_at_write(at_write: u32) {
    let mut s = Script::new(17 + u64::from(at_write), 3).await;
    let shape = spec::service("web", 3);
    let job = key("web");
    run_first_version(&mut s, &shape).await;

    let leader = jobs_leader(&s).expect("a server leads the jobs controller");
    s.cluster.apply(shape.clone(), Behavior::Healthy).await;
    s.step_crashing(SECOND, leader, at_write).await;
    for _ in 0..60 {
        if !s.cluster.servers[leader].alive {
            break;
        }
        s.step(SECOND).await;
        s.assert_sound();
        let snap = s.snapshot().await;
        if let Err(e) = keeps_the_floor(&snap, &job) {
            panic!("{e}\n{}", s.explain(60));
        }
    }
    assert!(
        !s.cluster.servers[leader].alive,
        "the leader never reached write #{}\n{}",
        at_write + 1,
        s.explain(60)
    );
    let floor = |snap: &Snapshot| keeps_the_floor(snap, &job);
    s.run_checking(20 * SECOND, SECOND, floor).await;
    s.cluster.restart_server(leader).await;
    s.run_checking(MINUTE, SECOND, floor).await;
    let snap = s
        .run_until(3 * MINUTE, SECOND, "the rollout completes", |snap| {
            deployment_of(snap, &job, 1).is_some_and(|d| d.status == ds::SUCCESSFUL)
        })
        .await;
    assert_eq!(healthy_of_version(&snap, &job, 1), 3, "{}", s.explain(60));
    assert_eq!(
        live(&snap, &job).len(),
        3,
        "{}",
        describe_allocs(&snap, &job)
    );
}

/// The risk: a leading server killed while it writes a rollout's steps (a failed commit of a
/// reconcile's plan, or a later one) leaves the rollout stuck, or the server that takes over
/// goes below the floor. Must hold: whatever write the leader dies at (the first five from the
/// new version on), the other server takes over, at least `count - max_parallel` copies stay
/// healthy at every step, and the rollout completes with `count` healthy copies of the new
/// version.
#[tokio::test]
async fn a_server_crash_in_the_middle_of_a_rollout_keeps_the_floor() {
    for at_write in 0..5 {
        rollout_with_a_crash_at_write(at_write).await;
    }
}

/// The risk (seed 984): a canary that alone holds its index (the copy of the version before it
/// failed there and was stopped) fails after its deployment failed; it was stopped as a canary
/// of a failed deployment and its index filled again at once with the same failing version,
/// around the reschedule policy's delay. Must hold (with every invariant, the reschedule
/// policy's among them, checked at every step): the deployment fails, and the version's
/// failures at the canary's index are replaced no sooner than the policy allows, each
/// replacement naming the failure it replaces.
#[tokio::test]
async fn a_failed_canary_alone_at_its_index_is_replaced_by_its_reschedule_policy() {
    let mut s = Script::new(984, 4).await;
    let mut shape = spec::service("web", 2);
    let job = key("web");
    s.cluster
        .apply(
            shape.clone(),
            Behavior::Exits {
                code: 1,
                after_ms: 6_000,
            },
        )
        .await;
    s.run_until(30 * SECOND, SECOND, "the first version runs", |snap| {
        snap.allocs_of(&job)
            .filter(|a| snap.client_status(&a.id) == Some(ClientStatus::Running))
            .count()
            == 2
    })
    .await;

    shape.count = 3;
    shape.rollout.canary = 1;
    shape.rollout.progress_deadline_ms = 0;
    s.cluster
        .apply(
            shape.clone(),
            Behavior::Exits {
                code: 1,
                after_ms: 8_000,
            },
        )
        .await;
    let (v, _) = next_version(&mut s, &job, 0).await;
    let snap = s.run_checking(5 * MINUTE, SECOND, |_| Ok(())).await;
    assert!(is_failed(&snap, &job, v), "{}", s.explain(80));
    let canary = snap
        .allocs_of(&job)
        .find(|a| a.canary && a.job_version == v)
        .expect("the canary is kept in the store");
    assert_eq!(
        snap.client_status(&canary.id),
        Some(ClientStatus::Failed),
        "{}",
        describe_allocs(&snap, &job)
    );
    assert!(
        snap.allocs_of(&job)
            .any(|a| a.previous_alloc == canary.id && a.index == canary.index && !a.canary),
        "the failed canary is rescheduled, as an ordinary copy, in its turn\n{}",
        s.explain(80)
    );
}

/// The risk (issue 17): a register writes the spec and its pending evaluation in one
/// transaction, which reach the jobs controller through two watches; reconciled from the spec
/// alone, the pass recorded an evaluation of its own and a later pass completed the pending
/// one, so one register left two evaluations. Must hold: with the evaluations' watch of every
/// server held back while the job is registered and placed, the register's own evaluation is
/// the job's only `job-register` one, it completes with the allocations the register placed,
/// and those allocations name it.
#[tokio::test]
async fn a_register_placed_before_its_evaluation_is_seen_records_one_evaluation() {
    let mut s = Script::new(17, 2).await;
    s.step(SECOND).await;
    let job = key("web");
    for server in &s.cluster.servers {
        server.store.hold_watches(nomos_store::keys::EVALS_PREFIX);
    }
    let registered = s
        .cluster
        .register(spec::service("web", 2), Behavior::Healthy)
        .await;
    let placed = s
        .run_until(30 * SECOND, SECOND, "the register is placed", |snap| {
            live(snap, &job).len() == 2
        })
        .await;
    let of_register = |snap: &Snapshot| {
        let mut ids: Vec<String> = snap
            .evals
            .values()
            .filter(|e| e.job_id == "web" && e.triggered_by == "job-register")
            .map(|e| format!("{} {}", e.id, e.status))
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        of_register(&placed),
        vec![format!("{registered} complete")],
        "placed from the spec alone\n{}",
        s.explain(40)
    );
    for server in &s.cluster.servers {
        server.store.release_watches();
    }
    let snap = s
        .run_until(3 * MINUTE, SECOND, "the job runs healthy", |snap| {
            healthy_of_version(snap, &job, 0) == 2
        })
        .await;
    assert_eq!(
        of_register(&snap),
        vec![format!("{registered} complete")],
        "{}",
        s.explain(40)
    );
    let eval = &snap.evals[&registered];
    let allocs: BTreeSet<String> = live(&snap, &job).iter().map(|a| a.id.clone()).collect();
    let listed: BTreeSet<String> = eval.placed_allocs.iter().flatten().cloned().collect();
    assert_eq!(listed, allocs, "{eval:?}");
    for a in live(&snap, &job) {
        assert_eq!(a.eval_id, registered, "{a:?}");
    }
}
