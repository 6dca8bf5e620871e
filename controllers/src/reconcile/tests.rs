//! Table tests of the jobs reconcile: each test states one rule.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use nomos_api::{
    deployment_status as ds, AllocStatus, Allocation, ClientStatus, Deployment, DesiredStatus,
    GroupSummary, Job, JobType, ReschedulePolicy, TaskRunState, TaskState, UpdateStrategy,
};

use super::*;
use crate::health::HealthRule;

const NOW: i64 = 1_000_000_000;

fn job(count: u32) -> Job {
    nomos_api::build::job("web").group("g", count).build()
}

fn alloc(id: &str, index: u32, version: u64, client: Option<ClientStatus>) -> ObservedAlloc {
    ObservedAlloc {
        alloc: Allocation {
            id: id.into(),
            namespace: "default".into(),
            job_id: "web".into(),
            job_version: version,
            task_group: "g".into(),
            name: format!("web.g[{index}]"),
            index,
            node: "n1".into(),
            created_at_ms: NOW - 60_000,
            ..Default::default()
        },
        status: client.map(|c| AllocStatus {
            client_status: c,
            modified_at_ms: NOW - 1_000,
            ..Default::default()
        }),
    }
}

fn running(id: &str, index: u32, version: u64, started_ms: i64) -> ObservedAlloc {
    let mut a = alloc(id, index, version, Some(ClientStatus::Running));
    let st = a.status.as_mut().unwrap();
    st.task_states.insert(
        "t".into(),
        TaskState {
            state: TaskRunState::Running,
            started_at_ms: started_ms,
            ..Default::default()
        },
    );
    a
}

/// A running canary of version `version` at `index`.
fn canary(id: &str, index: u32, version: u64, started_ms: i64) -> ObservedAlloc {
    let mut a = running(id, index, version, started_ms);
    a.alloc.canary = true;
    a
}

fn ready(_: &str) -> NodeHealth {
    NodeHealth::Ready
}

fn run_with(
    job: &Job,
    version: u64,
    versions: &BTreeMap<u64, Job>,
    allocs: &[ObservedAlloc],
    d: Option<&Deployment>,
    health: &dyn Fn(&str) -> NodeHealth,
) -> Plan {
    reconcile(&Input {
        job,
        version,
        versions,
        spec_hash: "",
        deployment: d,
        deployments: &[],
        allocs,
        node_health: health,
        now_ms: NOW,
        stable_version: None,
    })
}

fn run(job: &Job, allocs: &[ObservedAlloc]) -> Plan {
    let mut versions = BTreeMap::new();
    versions.insert(1, job.clone());
    run_with(job, 1, &versions, allocs, None, &ready)
}

fn indexes(places: &[Place]) -> Vec<u32> {
    places.iter().map(|p| p.index).collect()
}

fn stopped(plan: &Plan) -> Vec<String> {
    let mut v: Vec<String> = plan.stops().map(|s| s.alloc_id.clone()).collect();
    v.sort();
    v
}

#[test]
fn count_up_places_the_missing_indexes() {
    let plan = run(&job(3), &[alloc("a", 1, 1, Some(ClientStatus::Running))]);
    assert_eq!(indexes(&plan.place), vec![0, 2]);
    assert!(plan.stop.is_empty());
}

#[test]
fn count_down_stops_the_highest_indexes() {
    let allocs: Vec<_> = (0..4)
        .map(|i| alloc(&format!("a{i}"), i, 1, Some(ClientStatus::Running)))
        .collect();
    let plan = run(&job(2), &allocs);
    assert!(plan.place.is_empty());
    assert_eq!(stopped(&plan), vec!["a2", "a3"]);
}

#[test]
fn an_unchanged_job_with_all_allocations_running_plans_nothing() {
    let allocs: Vec<_> = (0..3)
        .map(|i| alloc(&format!("a{i}"), i, 1, Some(ClientStatus::Running)))
        .collect();
    assert!(run(&job(3), &allocs).is_empty());
    // Allocations the agent has not reported on yet count as placed.
    let allocs: Vec<_> = (0..3)
        .map(|i| alloc(&format!("a{i}"), i, 1, None))
        .collect();
    assert!(run(&job(3), &allocs).is_empty());
}

#[test]
fn a_stopped_job_stops_everything_and_places_nothing() {
    let mut j = job(3);
    j.stop = true;
    let mut allocs: Vec<_> = (0..2)
        .map(|i| alloc(&format!("a{i}"), i, 1, Some(ClientStatus::Running)))
        .collect();
    allocs[1].alloc.desired_status = DesiredStatus::Stop;
    let plan = run(&j, &allocs);
    assert!(plan.place.is_empty());
    assert_eq!(stopped(&plan), vec!["a0"]);
}

#[test]
fn batch_allocations_that_completed_are_not_replaced() {
    let mut j = job(2);
    j.job_type = JobType::Batch;
    let plan = run(
        &j,
        &[
            alloc("a0", 0, 1, Some(ClientStatus::Complete)),
            alloc("a1", 1, 1, Some(ClientStatus::Running)),
        ],
    );
    assert!(plan.is_empty(), "{plan:?}");
}

#[test]
fn service_allocations_that_completed_are_replaced() {
    let plan = run(&job(1), &[alloc("a0", 0, 1, Some(ClientStatus::Complete))]);
    assert_eq!(plan.reschedule.len(), 1);
    assert_eq!(
        plan.reschedule[0].place.previous_alloc.as_deref(),
        Some("a0")
    );
}

fn failed_job(policy: ReschedulePolicy) -> Job {
    let mut j = job(1);
    j.groups[0].reschedule = Some(policy);
    j
}

fn policy(attempts: u32, delay_s: u64, function: &str, unlimited: bool) -> ReschedulePolicy {
    ReschedulePolicy {
        attempts,
        interval_ns: 3600 * 1_000_000_000,
        delay_ns: delay_s * 1_000_000_000,
        delay_function: function.into(),
        max_delay_ns: 120 * 1_000_000_000,
        unlimited,
    }
}

#[test]
fn failed_allocations_are_rescheduled_per_policy() {
    // (policy, prior attempts, expect reschedule now, expect follow-up)
    let table: &[(ReschedulePolicy, u32, bool, bool)] = &[
        (policy(2, 0, "constant", false), 0, true, false),
        (policy(2, 0, "constant", false), 1, true, false),
        (policy(2, 0, "constant", false), 2, false, false),
        (policy(0, 0, "constant", true), 50, true, false),
        (policy(3, 30, "constant", false), 0, false, true),
        (policy(3, 1, "constant", false), 0, true, false),
    ];
    for (p, prior, now, later) in table {
        let mut a = alloc("f", 0, 1, Some(ClientStatus::Failed));
        a.alloc.reschedule_attempts = *prior;
        let plan = run(&failed_job(p.clone()), &[a]);
        assert_eq!(plan.reschedule.len() == 1, *now, "{p:?} prior {prior}");
        assert_eq!(!plan.follow_ups.is_empty(), *later, "{p:?} prior {prior}");
        assert!(
            plan.place.is_empty(),
            "a failed index is not refilled by a plain placement"
        );
        if *now {
            let r = &plan.reschedule[0];
            assert_eq!(r.place.reschedule_attempts, prior + 1);
            assert_eq!(r.place.penalty_node.as_deref(), Some("n1"));
        }
    }
}

#[test]
fn reschedule_attempts_reset_after_the_interval() {
    let mut a = alloc("f", 0, 1, Some(ClientStatus::Failed));
    a.alloc.reschedule_attempts = 2;
    a.alloc.created_at_ms = NOW - 2 * 3600 * 1000;
    let plan = run(&failed_job(policy(2, 0, "constant", false)), &[a]);
    assert_eq!(plan.reschedule[0].place.reschedule_attempts, 1);
}

#[test]
fn reschedule_delays_follow_their_function_and_cap() {
    let cases = [
        ("constant", [10, 10, 10, 10, 10]),
        ("exponential", [10, 20, 40, 80, 120]),
        ("fibonacci", [10, 10, 20, 30, 50]),
    ];
    for (f, want) in cases {
        let p = policy(10, 10, f, false);
        let got: Vec<i64> = (0..5).map(|n| reschedule_delay_ms(&p, n) / 1000).collect();
        assert_eq!(got, want, "{f}");
    }
}

#[test]
fn allocations_on_down_nodes_are_replaced_at_once() {
    let mut allocs: Vec<_> = (0..2)
        .map(|i| alloc(&format!("a{i}"), i, 1, Some(ClientStatus::Running)))
        .collect();
    allocs[0].alloc.node = "down".into();
    let health = |n: &str| match n {
        "down" => NodeHealth::Down,
        _ => NodeHealth::Ready,
    };
    let j = job(2);
    let mut versions = BTreeMap::new();
    versions.insert(1, j.clone());
    let plan = run_with(&j, 1, &versions, &allocs, None, &health);
    let migrated: Vec<&str> = plan
        .migrate
        .iter()
        .map(|r| r.stop.alloc_id.as_str())
        .collect();
    assert_eq!(migrated, vec!["a0"]);
    assert!(plan.place.is_empty());
}

/// A replacement for `original`, placed on node `n2`, running since `started_ms`.
fn replacement_of(original: &ObservedAlloc, id: &str, started_ms: i64) -> ObservedAlloc {
    let mut r = running(id, original.alloc.index, 1, started_ms);
    r.alloc.node = "n2".into();
    r.alloc.previous_alloc = original.alloc.id.clone();
    r
}

#[test]
fn draining_allocations_stop_only_once_their_replacement_is_healthy() {
    // (case, max_parallel, replacements: (original index, started ms ago), placed indexes);
    // originals whose replacement ran 10s (min_healthy_time) stop.
    type Case = (&'static str, u32, Vec<(usize, i64)>, Vec<u32>);
    let cases: Vec<Case> = vec![
        ("nothing moved yet: one replacement", 1, vec![], vec![0]),
        ("max_parallel 2: two at once", 2, vec![], vec![0, 1]),
        (
            "replacement young: wait, nothing else placed",
            1,
            vec![(0, 3_000)],
            vec![],
        ),
        (
            "replacement healthy: original stops, next placed",
            1,
            vec![(0, 11_000)],
            vec![1],
        ),
        (
            "both replaced and healthy: both stop",
            1,
            vec![(0, 11_000), (1, 20_000)],
            vec![],
        ),
    ];
    for (case, max_parallel, reps, want_placed) in cases {
        let mut allocs: Vec<_> = (0..3)
            .map(|i| running(&format!("a{i}"), i, 1, NOW - 600_000))
            .collect();
        allocs[0].alloc.node = "drain".into();
        allocs[1].alloc.node = "drain".into();
        let originals = allocs.clone();
        for (k, (idx, ago)) in reps.iter().enumerate() {
            allocs.push(replacement_of(
                &originals[*idx],
                &format!("r{k}"),
                NOW - ago,
            ));
        }
        let health = |n: &str| match n {
            "drain" => NodeHealth::Draining,
            _ => NodeHealth::Ready,
        };
        let mut j = job(3);
        j.groups[0].migrate = Some(nomos_api::MigrateStrategy {
            max_parallel,
            health_check: "task_states".into(),
            min_healthy_time_ns: 10_000_000_000,
            healthy_deadline_ns: 300_000_000_000,
        });
        let mut versions = BTreeMap::new();
        versions.insert(1, j.clone());
        let plan = run_with(&j, 1, &versions, &allocs, None, &health);
        let placed: Vec<u32> = plan.place.iter().map(|p| p.index).collect();
        assert_eq!(placed, want_placed, "{case}: placed");
        for p in &plan.place {
            assert_eq!(
                p.previous_alloc.as_deref(),
                Some(format!("a{}", p.index).as_str()),
                "{case}: a replacement names its original"
            );
        }
        let stopped: Vec<&str> = plan.stop.iter().map(|s| s.alloc_id.as_str()).collect();
        let want_stopped: Vec<String> = reps
            .iter()
            .filter(|(_, ago)| *ago >= 10_000)
            .map(|(idx, _)| format!("a{idx}"))
            .collect();
        assert_eq!(stopped, want_stopped, "{case}: stopped");
        assert!(plan.migrate.is_empty(), "{case}: no stop-and-place at once");
        if reps.iter().any(|(_, ago)| *ago < 10_000) {
            assert!(
                plan.follow_ups
                    .iter()
                    .any(|f| f.at_ms == NOW - 3_000 + 10_000),
                "{case}: look again when the young replacement turns healthy: {:?}",
                plan.follow_ups
            );
        }
    }
}

/// Seed 2808: a promoted canary on a draining node shares its index with an allocation of its
/// own version elsewhere (an original updated in place, back from a lost node). That one
/// serves the index: the canary stops, and no third allocation of the version is placed.
#[test]
fn a_draining_canary_beside_an_allocation_of_its_version_moves_onto_it() {
    let (j, versions) = rolling(1, 1, false);
    let mut back = running("back", 1, 2, NOW - 600_000);
    back.status.as_mut().unwrap().healthy = Some(true);
    back.alloc.node = "n2".into();
    let mut c = canary("c1", 1, 2, NOW - 600_000);
    c.alloc.node = "drain".into();
    let mut allocs = vec![back, c];
    for i in [0, 2, 3] {
        let mut a = running(&format!("a{i}"), i, 2, NOW - 600_000);
        a.status.as_mut().unwrap().healthy = Some(true);
        allocs.push(a);
    }
    let health = |n: &str| match n {
        "drain" => NodeHealth::Draining,
        _ => NodeHealth::Ready,
    };
    let plan = run_with(&j, 2, &versions, &allocs, None, &health);
    assert!(plan.placements().next().is_none(), "{plan:?}");
    assert_eq!(stopped(&plan), vec!["c1"], "{plan:?}");
}

#[test]
fn a_replacement_not_healthy_within_the_migrate_deadline_is_itself_replaced() {
    let mut allocs = vec![running("a0", 0, 1, NOW - 600_000)];
    allocs[0].alloc.node = "drain".into();
    // Placed 61s ago and still not healthy (the agent says so).
    let mut r = replacement_of(&allocs[0], "r0", NOW - 61_000);
    r.alloc.created_at_ms = NOW - 61_000;
    r.status.as_mut().unwrap().healthy = Some(false);
    allocs.push(r.clone());
    let health = |n: &str| match n {
        "drain" => NodeHealth::Draining,
        _ => NodeHealth::Ready,
    };
    let mut j = job(1);
    j.groups[0].migrate = Some(nomos_api::MigrateStrategy {
        max_parallel: 1,
        health_check: "checks".into(),
        min_healthy_time_ns: 1_000_000_000,
        healthy_deadline_ns: 60_000_000_000,
    });
    let mut versions = BTreeMap::new();
    versions.insert(1, j.clone());
    let plan = run_with(&j, 1, &versions, &allocs, None, &health);
    assert_eq!(plan.reschedule.len(), 1, "{plan:?}");
    let re = &plan.reschedule[0];
    assert_eq!(re.stop.alloc_id, "r0");
    assert_eq!(re.place.previous_alloc.as_deref(), Some("a0"));
    assert_eq!(re.place.penalty_node.as_deref(), Some("n2"));
    assert!(
        plan.stop.is_empty() && plan.place.is_empty(),
        "the original keeps running"
    );

    // Before the deadline it waits, and looks again at the deadline.
    allocs[1].alloc.created_at_ms = NOW - 30_000;
    let plan = run_with(&j, 1, &versions, &allocs, None, &health);
    assert!(plan.reschedule.is_empty() && plan.stop.is_empty() && plan.place.is_empty());
    assert!(plan.follow_ups.iter().any(|f| f.at_ms == NOW + 30_000));
}

#[test]
fn batch_allocations_on_a_draining_node_finish_there_unless_the_deadline_kills_them() {
    let health = |n: &str| match n {
        "drain" => NodeHealth::Draining,
        _ => NodeHealth::Ready,
    };
    let mut j = job(2);
    j.job_type = JobType::Batch;
    let mut versions = BTreeMap::new();
    versions.insert(1, j.clone());
    let mut allocs = vec![
        running("a0", 0, 1, NOW - 600_000),
        running("a1", 1, 1, NOW - 600_000),
    ];
    for a in &mut allocs {
        a.alloc.node = "drain".into();
    }
    let plan = run_with(&j, 1, &versions, &allocs, None, &health);
    assert!(
        plan.place.is_empty() && plan.stop.is_empty() && plan.migrate.is_empty(),
        "running batch work is not duplicated: {plan:?}"
    );

    // a0 finished on its own; a1 was killed at the drain deadline (both report complete).
    for a in &mut allocs {
        a.alloc.desired_status = DesiredStatus::Stop;
        a.status.as_mut().unwrap().client_status = ClientStatus::Complete;
    }
    allocs[0].alloc.desired_description = "job stopped".into();
    allocs[1].alloc.desired_description = crate::drain::DEADLINE_REASON.into();
    let plan = run_with(&j, 1, &versions, &allocs, None, &health);
    let placed: Vec<u32> = plan.place.iter().map(|p| p.index).collect();
    assert_eq!(placed, vec![1], "only the killed one runs again");
}

#[test]
fn a_failed_replacement_is_rescheduled_once_and_the_original_keeps_running() {
    let mut allocs = vec![running("a0", 0, 1, NOW - 600_000)];
    allocs[0].alloc.node = "drain".into();
    let mut r = replacement_of(&allocs[0], "r0", NOW - 5_000);
    r.status.as_mut().unwrap().client_status = ClientStatus::Failed;
    allocs.push(r);
    let health = |n: &str| match n {
        "drain" => NodeHealth::Draining,
        _ => NodeHealth::Ready,
    };
    let j = job(1);
    let mut versions = BTreeMap::new();
    versions.insert(1, j.clone());
    let plan = run_with(&j, 1, &versions, &allocs, None, &health);
    let placed = plan.place.len() + plan.reschedule.len();
    assert_eq!(placed, 1, "exactly one new placement at index 0: {plan:?}");
    assert!(plan.stop.iter().all(|s| s.alloc_id != "a0"));
}

fn rolling(max_parallel: u32, canary: u32, auto_promote: bool) -> (Job, BTreeMap<u64, Job>) {
    let old = job(4);
    let mut new = job(4);
    new.groups[0].tasks[0].env.insert("V".into(), "2".into());
    new.update = Some(UpdateStrategy {
        max_parallel,
        canary,
        auto_promote,
        min_healthy_time_ns: 10_000_000_000,
        progress_deadline_ns: 600_000_000_000,
        health_check: "task_states".into(),
        ..Default::default()
    });
    let mut versions = BTreeMap::new();
    versions.insert(1, old);
    versions.insert(2, new.clone());
    (new, versions)
}

#[test]
fn a_service_jobs_first_version_gets_a_deployment_that_succeeds_once_all_are_healthy() {
    let (mut j, _) = rolling(1, 0, false);
    j.groups[0].count = 3;
    let versions = BTreeMap::from([(0, j.clone())]);
    // Version 0: everything is placed at once (max_parallel limits updates, not placements),
    // under a deployment of version 0.
    let plan = run_with(&j, 0, &versions, &[], None, &ready);
    assert_eq!(indexes(&plan.place), vec![0, 1, 2]);
    let d = plan
        .deployment
        .clone()
        .expect("version 0 gets a deployment");
    assert_eq!((d.status, d.job_version), (ds::RUNNING, 0));
    assert_eq!(d.groups["g"].desired_total, 3);

    // Placed, running, not yet healthy: it goes on; once healthy, it succeeds.
    let mut allocs: Vec<_> = (0..3)
        .map(|i| running(&format!("a{i}"), i, 0, NOW - 1_000))
        .collect();
    let plan = run_with(&j, 0, &versions, &allocs, Some(&d), &ready);
    assert!(plan.place.is_empty());
    let d = plan.deployment.unwrap_or(d);
    assert_eq!((d.status, d.groups["g"].placed), (ds::RUNNING, 3));
    for a in &mut allocs {
        *a = running(&a.alloc.id.clone(), a.alloc.index, 0, NOW - 20_000);
    }
    let plan = run_with(&j, 0, &versions, &allocs, Some(&d), &ready);
    assert_eq!(plan.deployment.unwrap().status, ds::SUCCESSFUL);

    // Without an update block (or with max_parallel 0), and for batch jobs: no deployment.
    let mut plain = j.clone();
    plain.update = None;
    let mut forced = j.clone();
    forced.update.as_mut().unwrap().max_parallel = 0;
    let mut batch = j.clone();
    batch.job_type = JobType::Batch;
    for other in [plain, forced, batch] {
        let versions = BTreeMap::from([(0, other.clone())]);
        let plan = run_with(&other, 0, &versions, &[], None, &ready);
        assert_eq!(plan.place.len(), 3);
        assert!(plan.deployment.is_none(), "{:?}", other.update);
    }
}

#[test]
fn rolling_update_replaces_max_parallel_at_a_time_and_waits_for_health() {
    let (j, versions) = rolling(2, 0, false);
    let mut allocs: Vec<_> = (0..4)
        .map(|i| running(&format!("a{i}"), i, 1, NOW - 100_000))
        .collect();
    let plan = run_with(&j, 2, &versions, &allocs, None, &ready);
    assert_eq!(plan.destructive_update.len(), 2);
    let d = plan.deployment.clone().expect("a deployment is created");
    assert_eq!(d.status, ds::RUNNING);

    // Two new ones running but not yet past min_healthy_time: nothing more moves.
    allocs[0] = running("b0", 0, 2, NOW - 1_000);
    allocs[1] = running("b1", 1, 2, NOW - 1_000);
    let plan = run_with(&j, 2, &versions, &allocs, Some(&d), &ready);
    assert!(plan.destructive_update.is_empty());
    assert!(plan
        .follow_ups
        .iter()
        .any(|f| f.at_ms == NOW - 1_000 + 10_000));

    // Healthy by time: the next two go.
    allocs[0] = running("b0", 0, 2, NOW - 20_000);
    allocs[1] = running("b1", 1, 2, NOW - 20_000);
    let plan = run_with(&j, 2, &versions, &allocs, Some(&d), &ready);
    assert_eq!(
        plan.destructive_update
            .iter()
            .map(|r| r.stop.alloc_id.as_str())
            .collect::<Vec<_>>(),
        vec!["a2", "a3"]
    );

    // All new and healthy: the deployment succeeds.
    let allocs: Vec<_> = (0..4)
        .map(|i| running(&format!("b{i}"), i, 2, NOW - 20_000))
        .collect();
    let plan = run_with(&j, 2, &versions, &allocs, Some(&d), &ready);
    assert_eq!(plan.deployment.unwrap().status, ds::SUCCESSFUL);
}

#[test]
fn agent_reported_unhealthy_counts_against_the_budget() {
    let (j, versions) = rolling(1, 0, false);
    let mut allocs: Vec<_> = (0..4)
        .map(|i| running(&format!("a{i}"), i, 1, NOW - 100_000))
        .collect();
    allocs[0] = running("b0", 0, 2, NOW - 100_000);
    allocs[0].status.as_mut().unwrap().healthy = Some(false);
    let plan = run_with(&j, 2, &versions, &allocs, None, &ready);
    assert!(plan.destructive_update.is_empty());
}

#[test]
fn health_set_by_hand_in_the_deployment_wins_over_the_agent_and_the_clock() {
    let (j, versions) = rolling(2, 0, false);
    let mut allocs: Vec<_> = (0..4)
        .map(|i| running(&format!("a{i}"), i, 1, NOW - 100_000))
        .collect();
    let d = run_with(&j, 2, &versions, &allocs, None, &ready)
        .deployment
        .expect("a deployment is created");
    // Two new ones, just started: not healthy by time, and b1 reported unhealthy.
    allocs[0] = running("b0", 0, 2, NOW - 1_000);
    allocs[1] = running("b1", 1, 2, NOW - 1_000);
    allocs[1].status.as_mut().unwrap().healthy = Some(false);
    let plan = run_with(&j, 2, &versions, &allocs, Some(&d), &ready);
    assert!(plan.destructive_update.is_empty(), "nothing healthy yet");

    let mut by_hand = d.clone();
    by_hand.manual_health.insert("b0".into(), true);
    by_hand.manual_health.insert("b1".into(), true);
    let plan = run_with(&j, 2, &versions, &allocs, Some(&by_hand), &ready);
    let moved: Vec<&str> = plan
        .destructive_update
        .iter()
        .map(|r| r.stop.alloc_id.as_str())
        .collect();
    assert_eq!(moved, ["a2", "a3"], "both count as healthy");
    let written = plan.deployment.expect("the counts changed");
    assert_eq!(written.groups["g"].healthy, 2);
    assert_eq!(written.manual_health.len(), 2, "the marks are kept");

    by_hand.manual_health.insert("b0".into(), false);
    let plan = run_with(&j, 2, &versions, &allocs, Some(&by_hand), &ready);
    assert_eq!(
        plan.deployment.expect("the counts changed").groups["g"].unhealthy,
        1
    );
}

#[test]
fn in_place_update_when_only_non_task_fields_change() {
    let old = job(2);
    let mut new = job(2);
    new.priority = 80;
    new.groups[0].restart = Some(Default::default());
    let mut versions = BTreeMap::new();
    versions.insert(1, old);
    versions.insert(2, new.clone());
    let allocs: Vec<_> = (0..2)
        .map(|i| running(&format!("a{i}"), i, 1, NOW))
        .collect();
    let plan = run_with(&new, 2, &versions, &allocs, None, &ready);
    assert_eq!(plan.inplace_update, vec!["a0", "a1"]);
    assert!(plan.destructive_update.is_empty() && plan.place.is_empty() && plan.stop.is_empty());
}

#[test]
fn an_in_place_update_rolls_out_under_a_deployment_that_succeeds_once_healthy() {
    let (old, _) = rolling(1, 0, false);
    let mut old = old;
    old.groups[0].tasks[0].env.clear();
    let mut new = old.clone();
    new.priority = 80;
    let versions = BTreeMap::from([(1, old), (2, new.clone())]);
    let allocs: Vec<_> = (0..4)
        .map(|i| running(&format!("a{i}"), i, 1, NOW - 100_000))
        .collect();
    let plan = run_with(&new, 2, &versions, &allocs, None, &ready);
    assert_eq!(plan.inplace_update.len(), 4, "{plan:?}");
    assert!(plan.destructive_update.is_empty() && plan.place.is_empty());
    let d = plan
        .deployment
        .expect("an in-place version gets a deployment");
    assert_eq!(d.status, ds::RUNNING);
    assert_eq!(d.job_version, 2);

    // Updated in place and healthy: the deployment succeeds.
    let updated: Vec<_> = (0..4)
        .map(|i| running(&format!("a{i}"), i, 2, NOW - 100_000))
        .collect();
    let plan = run_with(&new, 2, &versions, &updated, Some(&d), &ready);
    let done = plan.deployment.expect("the deployment is finished");
    assert_eq!(done.status, ds::SUCCESSFUL, "{done:?}");

    // A job without an `update` block updates in place with no deployment.
    let (plain_old, mut plain_new) = (job(2), job(2));
    plain_new.priority = 80;
    let versions = BTreeMap::from([(1, plain_old), (2, plain_new.clone())]);
    let plan = run_with(&plain_new, 2, &versions, &allocs[..2], None, &ready);
    assert_eq!(plan.inplace_update.len(), 2);
    assert!(plan.deployment.is_none(), "{plan:?}");
}

#[test]
fn canaries_are_placed_first_and_the_rest_waits_for_promotion() {
    let (j, versions) = rolling(2, 1, false);
    let mut allocs: Vec<_> = (0..4)
        .map(|i| running(&format!("a{i}"), i, 1, NOW - 100_000))
        .collect();
    let plan = run_with(&j, 2, &versions, &allocs, None, &ready);
    assert_eq!(plan.place.len(), 1);
    assert!(plan.place[0].canary);
    assert!(plan.destructive_update.is_empty());
    let d = plan.deployment.unwrap();

    // Canary healthy but not promoted: nothing else moves.
    allocs.push(canary("c0", 0, 2, NOW - 100_000));
    let plan = run_with(&j, 2, &versions, &allocs, Some(&d), &ready);
    assert!(plan.place.is_empty() && plan.destructive_update.is_empty() && plan.stop.is_empty());
    let waiting = plan
        .deployment
        .clone()
        .expect("the deployment says it waits");
    assert_eq!(
        waiting.status_description,
        "Deployment is running but requires manual promotion"
    );
    assert!(waiting.waits_for_promotion());

    // Promoted: the canary's old twin stops, the rest roll.
    let mut promoted = plan.deployment.clone().unwrap_or(d.clone());
    promoted.groups.get_mut("g").unwrap().promoted = true;
    let plan = run_with(&j, 2, &versions, &allocs, Some(&promoted), &ready);
    assert_eq!(
        plan.stop
            .iter()
            .map(|s| s.alloc_id.as_str())
            .collect::<Vec<_>>(),
        vec!["a0"]
    );
    assert_eq!(plan.destructive_update.len(), 2);
}

/// Seed 791: a promoted canary whose node then missed its heartbeat keeps its healthy verdict
/// but serves nobody; its old twin must keep serving, and the rest must not roll past the floor.
#[test]
fn a_promoted_canary_on_a_disconnected_node_does_not_stop_its_twin() {
    let (j, versions) = rolling(1, 1, false);
    let mut allocs: Vec<_> = (0..3)
        .map(|i| running(&format!("a{i}"), i, 1, NOW - 100_000))
        .collect();
    let d = run_with(&j, 2, &versions, &allocs, None, &ready)
        .deployment
        .unwrap();
    let mut c0 = canary("c0", 0, 2, NOW - 100_000);
    c0.alloc.node = "away".into();
    allocs.push(c0);
    let mut promoted = d.clone();
    promoted.groups.get_mut("g").unwrap().promoted = true;
    let away = |n: &str| {
        if n == "away" {
            NodeHealth::Disconnected
        } else {
            NodeHealth::Ready
        }
    };
    let plan = run_with(&j, 2, &versions, &allocs, Some(&promoted), &away);
    assert!(
        !stopped(&plan).contains(&"a0".to_string()),
        "the twin still serves: {plan:?}"
    );
    // Once the canary's node is back, the twin stops.
    let plan = run_with(&j, 2, &versions, &allocs, Some(&promoted), &ready);
    assert!(stopped(&plan).contains(&"a0".to_string()), "{plan:?}");
}

/// Seed 1369: a canary deployment whose older copies all went in place (a revert to the spec
/// they run) has nothing to place a canary on; it must finish, not wait for a promotion.
#[test]
fn a_canary_deployment_with_nothing_left_to_update_completes() {
    let (j, versions) = rolling(1, 1, true);
    let old: Vec<_> = (0..4)
        .map(|i| running(&format!("a{i}"), i, 1, NOW - 100_000))
        .collect();
    let d = run_with(&j, 2, &versions, &old, None, &ready)
        .deployment
        .unwrap();
    assert_eq!(d.groups["g"].desired_canaries, 1);
    let updated: Vec<_> = (0..4)
        .map(|i| {
            let mut a = running(&format!("a{i}"), i, 2, NOW - 100_000);
            a.status.as_mut().unwrap().healthy = Some(true);
            a
        })
        .collect();
    let plan = run_with(&j, 2, &versions, &updated, Some(&d), &ready);
    let after = plan.deployment.expect("the deployment moves on");
    assert_eq!(after.status, ds::SUCCESSFUL, "{after:?}");
    assert!(plan.place.is_empty(), "{:?}", plan.place);
}

/// Seed 1414: a canary failed with no reschedule attempts left while a lost original's
/// successor takes its index; the deployment must still fail at once.
#[test]
fn a_canary_out_of_reschedules_fails_the_deployment_even_beside_a_lost_original() {
    let (mut j, mut versions) = rolling(1, 1, false);
    j.groups[0].reschedule = Some(policy(0, 5, "constant", false));
    versions.insert(2, j.clone());
    let mut allocs: Vec<_> = (0..4)
        .map(|i| running(&format!("a{i}"), i, 1, NOW - 100_000))
        .collect();
    let d = run_with(&j, 2, &versions, &allocs, None, &ready)
        .deployment
        .unwrap();
    allocs[0].status.as_mut().unwrap().client_status = ClientStatus::Lost;
    let mut c0 = canary("c0", 0, 2, NOW - 100_000);
    c0.status.as_mut().unwrap().client_status = ClientStatus::Failed;
    allocs.push(c0);
    let plan = run_with(&j, 2, &versions, &allocs, Some(&d), &ready);
    let after = plan.deployment.expect("the deployment changes");
    assert_eq!(after.status, ds::FAILED, "{after:?}");
}

/// Seed 2248: a healthy canary of an older deployment stays until its twin is healthy by the
/// twin's own version's rule, not by the newest version's laxer one.
#[test]
fn a_stale_canary_stays_until_its_twin_is_healthy_by_its_own_rule() {
    let update = |canary: u32, min_healthy_s: u64| UpdateStrategy {
        max_parallel: 1,
        canary,
        min_healthy_time_ns: min_healthy_s * 1_000_000_000,
        progress_deadline_ns: 600_000_000_000,
        health_check: "task_states".into(),
        ..Default::default()
    };
    let mut v1 = job(4);
    v1.update = Some(update(0, 60));
    let mut v2 = job(4);
    v2.groups[0].tasks[0].env.insert("V".into(), "2".into());
    v2.update = Some(update(1, 10));
    let mut v3 = job(4);
    v3.groups[0].tasks[0].env.insert("V".into(), "3".into());
    v3.update = Some(update(1, 1));
    let versions: BTreeMap<u64, Job> = [(1, v1), (2, v2), (3, v3.clone())].into();
    let mut allocs = vec![running("twin", 0, 1, NOW - 5_000)];
    for i in 1..4 {
        allocs.push(running(&format!("a{i}"), i, 1, NOW - 600_000));
    }
    let mut c0 = canary("c0", 0, 2, NOW - 600_000);
    c0.status.as_mut().unwrap().healthy = Some(true);
    allocs.push(c0);
    let plan = run_with(&v3, 3, &versions, &allocs, None, &ready);
    assert!(
        !stopped(&plan).contains(&"c0".to_string()),
        "the twin has run 5 s of its version's 60: {plan:?}"
    );
}

/// Seed 2727: an older allocation the new version could update in place shares its index with
/// a canary of that version; updated in place, it would make two of the new version there.
/// It stays as it is, and is replaced by the canary once the canary is promoted.
#[test]
fn an_older_allocation_beside_a_canary_is_not_updated_in_place() {
    let (v3, mut versions) = rolling(1, 1, false);
    let mut v2 = v3.clone();
    v2.priority = 10;
    v2.update = None;
    versions.insert(3, v3.clone());
    versions.insert(2, v2);
    let mut allocs = vec![running("a0", 0, 2, NOW - 600_000)];
    for i in 1..4 {
        allocs.push(running(&format!("a{i}"), i, 1, NOW - 600_000));
    }
    let d = run_with(&v3, 3, &versions, &allocs, None, &ready)
        .deployment
        .expect("a deployment for the canary");
    allocs.push(canary("c0", 0, 3, NOW - 1_000));
    let plan = run_with(&v3, 3, &versions, &allocs, Some(&d), &ready);
    assert!(plan.inplace_update.is_empty(), "{plan:?}");
    assert!(plan.stop.is_empty() && plan.place.is_empty(), "{plan:?}");

    let mut promoted = d.clone();
    promoted.groups.get_mut("g").unwrap().promoted = true;
    allocs.last_mut().unwrap().status.as_mut().unwrap().healthy = Some(true);
    let plan = run_with(&v3, 3, &versions, &allocs, Some(&promoted), &ready);
    assert!(plan.inplace_update.is_empty(), "{plan:?}");
    assert!(stopped(&plan).contains(&"a0".to_string()), "{plan:?}");
}

/// With no update block, an older allocation beside one of the new version is stopped, not
/// replaced by a second new one at its index.
#[test]
fn without_an_update_block_an_older_allocation_beside_a_new_one_just_stops() {
    let old = job(2);
    let mut new = job(2);
    new.groups[0].tasks[0].env.insert("V".into(), "2".into());
    let versions: BTreeMap<u64, Job> = [(1, old), (2, new.clone())].into();
    let allocs = vec![
        running("a0", 0, 1, NOW - 600_000),
        running("a1", 1, 1, NOW - 600_000),
        alloc("n0", 0, 2, Some(ClientStatus::Pending)),
    ];
    let plan = run_with(&new, 2, &versions, &allocs, None, &ready);
    assert_eq!(stopped(&plan), vec!["a0", "a1"], "{plan:?}");
    assert_eq!(
        plan.placements().map(|p| p.index).collect::<Vec<_>>(),
        vec![1],
        "{plan:?}"
    );
}

#[test]
fn auto_promote_promotes_healthy_canaries() {
    let (j, versions) = rolling(1, 1, true);
    let mut allocs: Vec<_> = (0..4)
        .map(|i| running(&format!("a{i}"), i, 1, NOW - 100_000))
        .collect();
    allocs.push(canary("c0", 0, 2, NOW - 100_000));
    let d = run_with(&j, 2, &versions, &allocs[..4], None, &ready)
        .deployment
        .unwrap();
    let plan = run_with(&j, 2, &versions, &allocs, Some(&d), &ready);
    assert!(plan.deployment.as_ref().unwrap().groups["g"].promoted);
    assert_eq!(stopped(&plan), vec!["a0", "a1"]);
}

#[test]
fn a_deployment_past_its_progress_deadline_fails_and_reverts_when_asked() {
    let (mut j, mut versions) = rolling(1, 0, false);
    j.update.as_mut().unwrap().auto_revert = true;
    versions.insert(2, j.clone());
    let allocs: Vec<_> = (0..2)
        .map(|i| running(&format!("a{i}"), i, 1, NOW - 100_000))
        .collect();
    let mut d = run_with(&j, 2, &versions, &allocs, None, &ready)
        .deployment
        .unwrap();
    d.groups.get_mut("g").unwrap().require_progress_by_ms = NOW - 1;
    let plan = run_stable(&j, &versions, &allocs, Some(&d), Some(1));
    let failed = plan.deployment.unwrap();
    assert_eq!(failed.status, ds::FAILED);
    assert_eq!(
        failed.status_description,
        "Failed due to progress deadline - rolling back to job version 1"
    );
    assert_eq!(plan.revert_to, Some(1));
    assert!(plan.destructive_update.is_empty());
    // Without a stable version there is nothing to revert to.
    let plan = run_stable(&j, &versions, &allocs, Some(&d), None);
    assert_eq!(plan.revert_to, None);
}

#[test]
fn summary_counts_allocations_by_client_status() {
    let allocs = vec![
        alloc("a", 0, 1, None),
        alloc("b", 1, 1, Some(ClientStatus::Running)),
        alloc("c", 2, 1, Some(ClientStatus::Failed)),
        alloc("d", 3, 1, Some(ClientStatus::Complete)),
        alloc("e", 4, 1, Some(ClientStatus::Lost)),
    ];
    let mut queued = IndexMap::new();
    queued.insert("g".to_string(), 2);
    let s = summarize(&job(5), &allocs, &queued);
    assert_eq!(
        s["g"],
        GroupSummary {
            queued: 2,
            starting: 1,
            running: 1,
            failed: 1,
            complete: 1,
            lost: 1,
            unknown: 0
        }
    );
}

#[test]
fn duplicate_allocations_of_one_index_keep_only_the_oldest() {
    let mut a = alloc("a", 0, 1, Some(ClientStatus::Running));
    let mut b = alloc("b", 0, 1, Some(ClientStatus::Running));
    a.alloc.created_at_ms = 10;
    b.alloc.created_at_ms = 5;
    let plan = run(&job(1), &[a, b]);
    assert_eq!(stopped(&plan), vec!["a"]);
    assert!(plan.place.is_empty());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn arb_alloc() -> impl Strategy<Value = (u32, u8, bool)> {
        (0u32..8, 0u8..6, any::<bool>())
    }

    fn client(c: u8) -> Option<ClientStatus> {
        match c {
            0 => None,
            1 => Some(ClientStatus::Pending),
            2 => Some(ClientStatus::Running),
            3 => Some(ClientStatus::Failed),
            4 => Some(ClientStatus::Complete),
            _ => Some(ClientStatus::Lost),
        }
    }

    proptest! {
        #[test]
        fn never_more_than_count_and_a_stopped_job_places_nothing(
            raw in prop::collection::vec(arb_alloc(), 0..16),
            count in 0u32..6,
            stop_job in any::<bool>(),
            batch in any::<bool>(),
        ) {
            let mut j = job(count);
            j.stop = stop_job;
            if batch {
                j.job_type = JobType::Batch;
            }
            let allocs: Vec<ObservedAlloc> = raw
                .iter()
                .enumerate()
                .map(|(i, (index, c, stopped))| {
                    let mut a = alloc(&format!("a{i}"), *index, 1, client(*c));
                    if *stopped {
                        a.alloc.desired_status = DesiredStatus::Stop;
                    }
                    a
                })
                .collect();
            let plan = run(&j, &allocs);
            if stop_job {
                prop_assert_eq!(plan.placements().count(), 0);
            }
            let stops: std::collections::HashSet<&str> = plan.stops().map(|s| s.alloc_id.as_str()).collect();
            let live = allocs
                .iter()
                .filter(|a| a.alloc.desired_status == DesiredStatus::Run)
                .filter(|a| !a.status.as_ref().is_some_and(|s| s.client_status.is_terminal()))
                .filter(|a| !stops.contains(a.alloc.id.as_str()))
                .count();
            prop_assert!(live + plan.placements().count() <= count as usize,
                "live {} + placed {} > count {}", live, plan.placements().count(), count);
        }
    }
}

/// Seed 1098: after a revert, an original of the reverted-to spec came back from a lost node
/// (healthy, its agent says) beside the copy of the failed version that replaced it (running,
/// no verdict). The original stays, to be updated in place; the failed version's copy stops.
#[test]
fn after_a_revert_the_returning_original_of_the_reverted_spec_is_kept() {
    let (bad, mut versions) = rolling(1, 0, false);
    let good = versions[&1].clone();
    let mut reverted = good.clone();
    reverted.update = bad.update.clone();
    versions.get_mut(&1).unwrap().update = bad.update.clone();
    versions.insert(3, reverted.clone());
    let mut original = running("orig", 0, 1, NOW - 600_000);
    original.status.as_mut().unwrap().healthy = Some(true);
    original.alloc.created_at_ms = NOW - 900_000;
    let mut failed_version = running("bad", 0, 2, NOW - 60_000);
    failed_version.alloc.previous_alloc = "orig".into();
    let mut allocs = vec![original, failed_version];
    for i in 1..4 {
        let mut a = running(&format!("a{i}"), i, 1, NOW - 600_000);
        a.status.as_mut().unwrap().healthy = Some(true);
        allocs.push(a);
    }
    let plan = run_with(&reverted, 3, &versions, &allocs, None, &ready);
    let stopped = stopped(&plan);
    assert!(stopped.contains(&"bad".to_string()), "{plan:?}");
    assert!(!stopped.contains(&"orig".to_string()), "{plan:?}");
    assert!(
        plan.inplace_update.contains(&"orig".to_string()),
        "{plan:?}"
    );
}

#[test]
fn lost_allocations_are_replaced_but_kept_and_a_returning_original_wins() {
    let mut lost = alloc("orig", 0, 1, Some(ClientStatus::Lost));
    lost.alloc.created_at_ms = 1;
    let plan = run(&job(1), std::slice::from_ref(&lost));
    assert_eq!(plan.place.len(), 1);
    assert_eq!(plan.place[0].previous_alloc.as_deref(), Some("orig"));
    assert!(
        plan.stops().next().is_none(),
        "the lost original is not stopped"
    );

    // Replacement running; the original is still lost: nothing changes.
    let mut repl = running("repl", 0, 1, NOW);
    repl.alloc.created_at_ms = 2;
    repl.alloc.previous_alloc = "orig".into();
    assert!(run(&job(1), &[lost.clone(), repl.clone()]).is_empty());

    // The node comes back and the original runs again: the replacement stops.
    let back = running("orig", 0, 1, NOW);
    let mut back = back;
    back.alloc.created_at_ms = 1;
    let plan = run(&job(1), &[back, repl]);
    assert_eq!(stopped(&plan), vec!["repl"]);
}

#[test]
fn deployment_health_enforces_the_healthy_deadline() {
    const MIN: i64 = 10_000;
    const DEADLINE: i64 = 300_000;
    // (case, allocation, deadline, expected)
    let placed_long_ago = NOW - 600_000;
    let mut pending_old = alloc("p", 0, 2, Some(ClientStatus::Pending));
    pending_old.alloc.created_at_ms = placed_long_ago;
    let mut pending_new = alloc("q", 0, 2, Some(ClientStatus::Pending));
    pending_new.alloc.created_at_ms = NOW - 1_000;
    let mut unreported_old = alloc("u", 0, 2, None);
    unreported_old.alloc.created_at_ms = placed_long_ago;
    // Running since shortly after placement: healthy by time well before the deadline.
    let mut healthy_in_time = running("h", 0, 2, placed_long_ago + 1_000);
    healthy_in_time.alloc.created_at_ms = placed_long_ago;
    // Its tasks only started after the deadline had passed: healthy too late.
    let mut healthy_too_late = running("l", 0, 2, placed_long_ago + DEADLINE);
    healthy_too_late.alloc.created_at_ms = placed_long_ago;
    // Running but not yet past min_healthy_time, deadline not reached: undecided.
    let mut starting = running("s", 0, 2, NOW - 1_000);
    starting.alloc.created_at_ms = NOW - 2_000;
    // The agent's verdict wins over the deadline.
    let mut agent_healthy = pending_old.clone();
    agent_healthy.status.as_mut().unwrap().healthy = Some(true);
    let cases: Vec<(&str, &ObservedAlloc, i64, Option<bool>)> = vec![
        (
            "pending past the deadline",
            &pending_old,
            DEADLINE,
            Some(false),
        ),
        ("pending, no deadline", &pending_old, 0, None),
        ("pending within the deadline", &pending_new, DEADLINE, None),
        (
            "never reported, past the deadline",
            &unreported_old,
            DEADLINE,
            Some(false),
        ),
        ("healthy in time", &healthy_in_time, DEADLINE, Some(true)),
        (
            "healthy only after the deadline",
            &healthy_too_late,
            DEADLINE,
            Some(false),
        ),
        (
            "healthy late, no deadline",
            &healthy_too_late,
            0,
            Some(true),
        ),
        ("still starting", &starting, DEADLINE, None),
        ("agent says healthy", &agent_healthy, DEADLINE, Some(true)),
    ];
    let rule = HealthRule {
        min_healthy_ms: MIN,
        required_checks: 0,
    };
    for (case, a, deadline, want) in cases {
        assert_eq!(deployment_health(a, &rule, deadline, NOW), want, "{case}");
    }
    // With a check to wait on, running long enough is not enough: the check must pass.
    let checked = HealthRule {
        required_checks: 1,
        ..rule
    };
    let mut failing = healthy_in_time.clone();
    failing.status.as_mut().unwrap().checks.insert(
        "alive".into(),
        nomos_api::CheckResult {
            status: "critical".into(),
            ..Default::default()
        },
    );
    assert_eq!(deployment_health(&failing, &checked, 0, NOW), None);
    assert_eq!(
        deployment_health(&failing, &checked, DEADLINE, NOW),
        Some(false)
    );
    let mut passing = failing.clone();
    passing.status.as_mut().unwrap().checks["alive"].status = "passing".into();
    assert_eq!(
        deployment_health(&passing, &checked, DEADLINE, NOW),
        Some(true)
    );
}

/// A rolling update of `web` from version 1 to 2 with the given deadlines; one allocation of
/// version 2 (index 0) placed `placed_ago_ms` ago and still pending, three of version 1 running.
fn deadline_case(
    healthy_deadline_s: u64,
    progress_deadline_s: u64,
    auto_revert: bool,
    placed_ago_ms: i64,
) -> (Job, BTreeMap<u64, Job>, Vec<ObservedAlloc>) {
    let (mut j, mut versions) = rolling(1, 0, false);
    let u = j.update.as_mut().unwrap();
    u.healthy_deadline_ns = healthy_deadline_s * 1_000_000_000;
    u.progress_deadline_ns = progress_deadline_s * 1_000_000_000;
    u.auto_revert = auto_revert;
    versions.insert(0, versions[&1].clone());
    versions.insert(2, j.clone());
    let mut allocs: Vec<_> = (1..4)
        .map(|i| running(&format!("a{i}"), i, 1, NOW - 1_000_000))
        .collect();
    let mut b0 = alloc("b0", 0, 2, Some(ClientStatus::Pending));
    b0.alloc.created_at_ms = NOW - placed_ago_ms;
    allocs.push(b0);
    (j, versions, allocs)
}

fn run_stable(
    j: &Job,
    versions: &BTreeMap<u64, Job>,
    allocs: &[ObservedAlloc],
    d: Option<&Deployment>,
    stable: Option<u64>,
) -> Plan {
    reconcile(&Input {
        job: j,
        version: 2,
        versions,
        spec_hash: "",
        deployment: d,
        deployments: &[],
        allocs,
        node_health: &ready,
        now_ms: NOW,
        stable_version: stable,
    })
}

#[test]
fn an_allocation_past_its_healthy_deadline_fails_the_deployment() {
    // (case, healthy_deadline s, progress_deadline s, auto_revert, placed ago ms, stable,
    //  expected deployment status, expected revert)
    type Case = (
        &'static str,
        u64,
        u64,
        bool,
        i64,
        Option<u64>,
        &'static str,
        Option<u64>,
    );
    let cases: Vec<Case> = vec![
        (
            "within the deadline",
            300,
            0,
            true,
            60_000,
            Some(0),
            "running",
            None,
        ),
        (
            "past it, no revert",
            300,
            0,
            false,
            600_000,
            Some(0),
            "failed",
            None,
        ),
        (
            "past it, revert to the stable version",
            300,
            0,
            true,
            600_000,
            Some(0),
            "failed",
            Some(0),
        ),
        // Nomad reverts only to a stable version: without one, the failure stays.
        (
            "past it, no stable version known",
            300,
            0,
            true,
            600_000,
            None,
            "failed",
            None,
        ),
        (
            "no healthy deadline",
            0,
            0,
            true,
            600_000,
            Some(0),
            "running",
            None,
        ),
        // With a progress deadline, an unhealthy allocation only stops progress.
        (
            "past it, progress deadline pending",
            300,
            3600,
            true,
            600_000,
            Some(0),
            "running",
            None,
        ),
    ];
    for (case, hd, pd, revert, ago, stable, want_status, want_revert) in cases {
        let (j, versions, allocs) = deadline_case(hd, pd, revert, ago);
        let first = run_stable(&j, &versions, &allocs, None, stable);
        let d = first.deployment.clone().expect("a deployment is created");
        assert_eq!(d.status.as_str(), want_status, "{case}");
        assert_eq!(first.revert_to, want_revert, "{case}");
        if want_status == "failed" {
            assert!(first.destructive_update.is_empty(), "{case}: nothing rolls");
            let want = match want_revert {
                Some(v) => {
                    format!("Failed due to unhealthy allocations - rolling back to job version {v}")
                }
                None => "Failed due to unhealthy allocations".to_string(),
            };
            assert_eq!(d.status_description, want, "{case}");
        } else if hd > 0 && ago < (hd * 1000) as i64 {
            // The reconcile asks to look again right after the deadline.
            let at = NOW - ago + (hd * 1000) as i64 + 1;
            assert!(first.follow_ups.iter().any(|f| f.at_ms == at), "{case}");
        }
        if pd > 0 {
            let g = &d.groups["g"];
            assert_eq!(g.unhealthy, u32::from(ago > (hd * 1000) as i64), "{case}");
        }
    }
}

#[test]
fn the_progress_deadline_moves_with_progress_and_fails_without_it() {
    let (j, versions, mut allocs) = deadline_case(0, 600, true, 1_000);
    let d = run_stable(&j, &versions, &allocs, None, Some(0))
        .deployment
        .expect("a deployment is created");
    assert_eq!(d.groups["g"].require_progress_by_ms, NOW + 600_000);

    // (case, deadline in the stored deployment, index-0 allocation healthy, expected status,
    //  expected new deadline, expected revert)
    type Case = (
        &'static str,
        i64,
        bool,
        &'static str,
        Option<i64>,
        Option<u64>,
    );
    let cases: Vec<Case> = vec![
        (
            "before the deadline, no progress",
            NOW + 5_000,
            false,
            "running",
            Some(NOW + 5_000),
            None,
        ),
        (
            "past the deadline, no progress",
            NOW - 1,
            false,
            "failed",
            None,
            Some(0),
        ),
        (
            "progress pushes the deadline",
            NOW + 5_000,
            true,
            "running",
            Some(NOW + 600_000),
            None,
        ),
        (
            "progress made just in time",
            NOW - 1,
            true,
            "running",
            Some(NOW + 600_000),
            None,
        ),
    ];
    for (case, deadline, healthy, want_status, want_deadline, want_revert) in cases {
        let mut d = d.clone();
        d.groups.get_mut("g").unwrap().require_progress_by_ms = deadline;
        let last = allocs.len() - 1;
        allocs[last] = if healthy {
            running("b0", 0, 2, NOW - 100_000)
        } else {
            let mut b = alloc("b0", 0, 2, Some(ClientStatus::Pending));
            b.alloc.created_at_ms = NOW - 1_000;
            b
        };
        let plan = run_stable(&j, &versions, &allocs, Some(&d), Some(0));
        let got = plan.deployment.clone().unwrap_or(d.clone());
        assert_eq!(got.status.as_str(), want_status, "{case}");
        assert_eq!(plan.revert_to, want_revert, "{case}");
        if let Some(t) = want_deadline {
            assert_eq!(got.groups["g"].require_progress_by_ms, t, "{case}");
            if !healthy {
                assert!(plan.follow_ups.iter().any(|f| f.at_ms == t + 1), "{case}");
            }
        }
    }
}

#[test]
fn reschedule_attempts_count_the_reschedules_within_the_interval() {
    const H: i64 = 3600 * 1000;
    // Policy: 2 attempts per hour, no delay. The allocation failed at NOW - 1 s.
    // (case, reschedule times of the lineage, legacy attempts, expected: Some(attempts, times kept))
    type Case = (&'static str, Vec<i64>, u32, Option<(u32, Vec<i64>)>);
    let cases: Vec<Case> = vec![
        ("first failure", vec![], 0, Some((1, vec![]))),
        (
            "one recent reschedule",
            vec![NOW - 10_000],
            0,
            Some((2, vec![NOW - 10_000])),
        ),
        (
            "two recent reschedules",
            vec![NOW - 20_000, NOW - 10_000],
            0,
            None,
        ),
        (
            "two, one of them outside the window",
            vec![NOW - 2 * H, NOW - 10_000],
            0,
            Some((2, vec![NOW - 10_000])),
        ),
        // The window ends at the failure (NOW - 1 s), not at now.
        (
            "one just inside the window",
            vec![NOW - 1_000 - H + 1, NOW - 10_000],
            0,
            None,
        ),
        (
            "one just outside the window",
            vec![NOW - 1_000 - H, NOW - 10_000],
            0,
            Some((2, vec![NOW - 10_000])),
        ),
        (
            "many old ones",
            vec![NOW - 5 * H, NOW - 4 * H, NOW - 3 * H],
            0,
            Some((1, vec![])),
        ),
        // Written before times were recorded: created within the interval, its count stands.
        ("legacy, recent", vec![], 2, None),
    ];
    let p = ReschedulePolicy {
        interval_ns: 3600 * 1_000_000_000,
        ..policy(2, 0, "constant", false)
    };
    for (case, times, legacy, want) in cases {
        let mut a = alloc("f", 0, 1, Some(ClientStatus::Failed));
        a.alloc.reschedule_times_ms = times;
        a.alloc.reschedule_attempts = legacy;
        let got = reschedule_at(&p, &a, NOW).map(|r| (r.attempts, r.times_ms));
        assert_eq!(got, want, "{case}");

        // Through the reconcile: the replacement carries the kept times plus this reschedule.
        let plan = run(&failed_job(p.clone()), &[a]);
        match &want {
            Some((attempts, kept)) => {
                let place = &plan.reschedule[0].place;
                assert_eq!(place.reschedule_attempts, *attempts, "{case}");
                let mut carried = kept.clone();
                carried.push(NOW);
                assert_eq!(place.reschedule_times_ms, carried, "{case}");
            }
            None => assert!(plan.reschedule.is_empty(), "{case}"),
        }
    }
}

#[test]
fn a_lineage_failing_repeatedly_is_bounded_per_interval_and_resumes_after_it() {
    // 2 attempts per 10 minutes, no delay: walk a lineage through failures at given times.
    const M: i64 = 60 * 1000;
    let p = ReschedulePolicy {
        interval_ns: 10 * 60 * 1_000_000_000,
        ..policy(2, 0, "constant", false)
    };
    // (failure time, expected: rescheduled)
    let steps: &[(i64, bool)] = &[
        (0, true),
        (M, true),
        (2 * M, false),     // two reschedules in the last 10 minutes
        (10 * M + 1, true), // the first has left the window
        (10 * M + 30_000, false),
        (30 * M, true),
    ];
    let mut times: Vec<i64> = Vec::new();
    for (t, want) in steps {
        let mut a = alloc("f", 0, 1, Some(ClientStatus::Failed));
        a.alloc.reschedule_times_ms = times.clone();
        a.status.as_mut().unwrap().modified_at_ms = *t;
        let got = reschedule_at(&p, &a, *t);
        assert_eq!(got.is_some(), *want, "failure at {t}");
        if let Some(r) = got {
            times = r.times_ms;
            times.push(*t);
        }
    }
}
