//! Table and property tests of the drain decisions.

use super::*;
use nomos_api::{AllocStatus, Allocation, ClientStatus};
use nomos_api::{TaskRunState, TaskState};
use proptest::prelude::*;

fn original(id: &str, group: &str, job_type: JobType) -> DrainAlloc {
    DrainAlloc {
        observed: ObservedAlloc {
            alloc: Allocation {
                id: id.into(),
                namespace: "default".into(),
                job_id: "web".into(),
                task_group: group.into(),
                node: "drained".into(),
                ..Default::default()
            },
            status: Some(AllocStatus {
                client_status: ClientStatus::Running,
                ..Default::default()
            }),
        },
        job_type,
        migrate: MigrateStrategy {
            max_parallel: 1,
            min_healthy_time_ns: 10_000_000_000,
            ..default_migrate()
        },
        health: HealthRule {
            min_healthy_ms: 10_000,
            required_checks: 0,
        },
        replacements: vec![],
        replacements_away: Default::default(),
    }
}

fn with_replacement(
    mut a: DrainAlloc,
    id: &str,
    status: ClientStatus,
    healthy: Option<bool>,
    started_at_ms: i64,
) -> DrainAlloc {
    let mut st = AllocStatus {
        client_status: status,
        healthy,
        ..Default::default()
    };
    st.task_states.insert(
        "t".into(),
        TaskState {
            state: TaskRunState::Running,
            started_at_ms,
            ..Default::default()
        },
    );
    a.replacements.push(ObservedAlloc {
        alloc: Allocation {
            id: id.into(),
            node: "other".into(),
            previous_alloc: a.alloc.id.clone(),
            ..Default::default()
        },
        status: Some(st),
    });
    a
}

fn drain(deadline_ms: i64, ignore_system_jobs: bool) -> DrainSpec {
    DrainSpec {
        deadline_ms,
        ignore_system_jobs,
        started_at_ms: 0,
    }
}

fn stops(p: &DrainPlan) -> Vec<&str> {
    p.stop.iter().map(|s| s.alloc_id.as_str()).collect()
}

#[test]
fn replacements_are_placed_first_within_migrate_max_parallel() {
    let allocs = vec![
        original("a1", "g", JobType::Service),
        original("a2", "g", JobType::Service),
        original("b1", "h", JobType::Service),
    ];
    let p = decide(&drain(0, false), &allocs, 1_000);
    assert_eq!(p.migrate, vec!["a1", "b1"], "one per group at a time");
    assert!(
        p.stop.is_empty(),
        "nothing stops before its replacement is healthy"
    );
    assert_eq!(
        (p.remaining, p.migrating, p.complete),
        (3, 0, false),
        "nothing is migrating until a replacement exists"
    );
}

#[test]
fn an_original_waits_for_its_replacement_then_stops_and_the_next_one_moves() {
    let pending = vec![
        with_replacement(
            original("a1", "g", JobType::Service),
            "r1",
            ClientStatus::Pending,
            None,
            0,
        ),
        original("a2", "g", JobType::Service),
    ];
    let p = decide(&drain(0, false), &pending, 1_000);
    assert!(p.migrate.is_empty() && p.stop.is_empty());
    assert_eq!(p.migrating, 1, "the pending replacement is migrating");

    let healthy = vec![
        with_replacement(
            original("a1", "g", JobType::Service),
            "r1",
            ClientStatus::Running,
            Some(true),
            0,
        ),
        original("a2", "g", JobType::Service),
    ];
    let p = decide(&drain(0, false), &healthy, 10_000);
    assert_eq!(stops(&p), vec!["a1"]);
    assert!(p.stop[0].reason.contains("r1"));
    assert_eq!(p.migrate, vec!["a2"]);
    assert_eq!(p.remaining, 1);
}

#[test]
fn without_a_health_verdict_a_replacement_must_run_for_min_healthy_time() {
    let a = vec![with_replacement(
        original("a1", "g", JobType::Service),
        "r1",
        ClientStatus::Running,
        None,
        5_000,
    )];
    let early = decide(&drain(0, false), &a, 14_999);
    assert!(early.stop.is_empty());
    assert_eq!(early.wake_at_ms, Some(15_000));
    let later = decide(&drain(0, false), &a, 15_000);
    assert_eq!(stops(&later), vec!["a1"]);
}

#[test]
fn the_migrate_min_healthy_time_holds_even_when_the_agent_says_healthy_sooner() {
    // The agent's verdict follows the `update` block; a migration waits for `migrate`'s own.
    let a = vec![with_replacement(
        original("a1", "g", JobType::Service),
        "r1",
        ClientStatus::Running,
        Some(true),
        5_000,
    )];
    let early = decide(&drain(0, false), &a, 6_000);
    assert!(early.stop.is_empty());
    assert_eq!(early.wake_at_ms, Some(15_000));
    assert_eq!(stops(&decide(&drain(0, false), &a, 15_000)), vec!["a1"]);
}

#[test]
fn a_replacement_whose_checks_fail_never_releases_its_original() {
    let with_check = |check_status: Option<&str>| {
        let mut a = with_replacement(
            original("a1", "g", JobType::Service),
            "r1",
            ClientStatus::Running,
            None,
            0,
        );
        a.health.required_checks = 1;
        if let Some(st) = check_status {
            a.replacements[0].status.as_mut().unwrap().checks.insert(
                "alive".into(),
                nomos_api::CheckResult {
                    status: st.into(),
                    ..Default::default()
                },
            );
        }
        vec![a]
    };
    let hour = 3_600_000;
    for (checks, want_stop) in [
        (None, false),
        (Some("critical"), false),
        (Some("passing"), true),
    ] {
        let p = decide(&drain(0, false), &with_check(checks), hour);
        assert_eq!(!p.stop.is_empty(), want_stop, "check {checks:?}");
        assert_eq!(p.migrating, u32::from(!want_stop), "check {checks:?}");
    }
    // The deadline still stops it.
    let p = decide(&drain(hour, false), &with_check(Some("critical")), hour);
    assert_eq!(stops(&p), vec!["a1"]);
}

#[test]
fn max_parallel_two_moves_two_at_once() {
    let mut allocs: Vec<DrainAlloc> = (1..=3)
        .map(|i| original(&format!("a{i}"), "g", JobType::Service))
        .collect();
    for a in &mut allocs {
        a.migrate.max_parallel = 2;
    }
    assert_eq!(
        decide(&drain(0, false), &allocs, 0).migrate,
        vec!["a1", "a2"]
    );
}

#[test]
fn batch_allocations_finish_in_place_until_the_deadline() {
    let allocs = vec![original("b", "g", JobType::Batch)];
    let p = decide(&drain(60_000, false), &allocs, 1_000);
    assert!(p.migrate.is_empty() && p.stop.is_empty());
    assert_eq!(p.wake_at_ms, Some(60_000));
    let p = decide(&drain(60_000, false), &allocs, 60_000);
    assert_eq!(stops(&p), vec!["b"]);
    assert!(p.migrate.is_empty());
}

#[test]
fn the_deadline_stops_what_remains_and_system_allocations_go_last() {
    let allocs = vec![
        original("svc", "g", JobType::Service),
        with_replacement(
            original("svc2", "g", JobType::Service),
            "r",
            ClientStatus::Pending,
            None,
            0,
        ),
        original("sys", "s", JobType::System),
    ];
    let p = decide(&drain(10_000, false), &allocs, 10_000);
    assert_eq!(stops(&p), vec!["svc", "svc2"]);
    assert_eq!(p.migrate, vec!["svc"], "what had no replacement gets one");
    assert_eq!(p.remaining, 1);
    // Next pass: only the system allocation is left.
    let left = vec![original("sys", "s", JobType::System)];
    let p = decide(&drain(10_000, false), &left, 10_001);
    assert_eq!(stops(&p), vec!["sys"]);
    assert!(p.complete);
}

#[test]
fn system_allocations_stop_last_without_a_deadline_too() {
    let allocs = vec![
        original("svc", "g", JobType::Service),
        original("sys", "s", JobType::Sysbatch),
    ];
    let p = decide(&drain(0, false), &allocs, 0);
    assert!(!stops(&p).contains(&"sys"));
    let p = decide(&drain(0, false), &allocs[1..], 0);
    assert_eq!(stops(&p), vec!["sys"]);
}

#[test]
fn ignore_system_jobs_leaves_them_and_the_drain_completes() {
    let allocs = vec![original("sys", "s", JobType::System)];
    let p = decide(&drain(0, true), &allocs, 0);
    assert!(p.stop.is_empty());
    assert!(p.complete);
}

#[test]
fn finished_and_stopped_allocations_do_not_hold_the_drain() {
    let mut done = original("done", "g", JobType::Service);
    done.observed.status = Some(AllocStatus {
        client_status: ClientStatus::Complete,
        ..Default::default()
    });
    let mut stopped = original("stopped", "g", JobType::Service);
    stopped.observed.alloc.desired_status = DesiredStatus::Stop;
    let p = decide(&drain(0, false), &[done, stopped], 0);
    assert!(p.complete && p.migrate.is_empty() && p.stop.is_empty());
}

proptest! {
    /// Before the deadline a service allocation stops only when a replacement is healthy, system
    /// allocations stop only when nothing else is left, and a group never has more migrations in
    /// flight than `max_parallel` because of this plan.
    #[test]
    fn drain_safety(
        spec in proptest::collection::vec((0u8..3, 0u8..4, 1u32..3, any::<bool>()), 0..12),
        ignore_system in any::<bool>(),
    ) {
        let allocs: Vec<DrainAlloc> = spec
            .iter()
            .enumerate()
            .map(|(i, (kind, repl, par, _))| {
                let job_type = [JobType::Service, JobType::Batch, JobType::System][*kind as usize];
                let mut a = original(&format!("a{i:02}"), &format!("g{}", i % 2), job_type);
                a.migrate.max_parallel = *par;
                match repl {
                    1 => with_replacement(a, &format!("r{i}"), ClientStatus::Pending, None, 0),
                    2 => with_replacement(a, &format!("r{i}"), ClientStatus::Running, Some(true), 0),
                    3 => with_replacement(a, &format!("r{i}"), ClientStatus::Failed, None, 0),
                    _ => a,
                }
            })
            .collect();
        let p = decide(&drain(0, ignore_system), &allocs, 1_000_000);
        let non_system_left = allocs.iter().any(|a| !matches!(a.job_type, JobType::System));
        for s in &p.stop {
            let a = allocs.iter().find(|a| a.alloc.id == s.alloc_id).unwrap();
            match a.job_type {
                JobType::System | JobType::Sysbatch => prop_assert!(!non_system_left && !ignore_system),
                JobType::Batch => prop_assert!(false, "batch stopped before the deadline"),
                _ => prop_assert!(a.replacements.iter().any(|r| r.status.as_ref().and_then(|s| s.healthy) == Some(true))),
            }
        }
        for id in &p.migrate {
            let a = allocs.iter().find(|a| &a.alloc.id == id).unwrap();
            prop_assert_eq!(a.job_type, JobType::Service);
            prop_assert!(!a.replacements.iter().any(|r| r.is_live()));
        }
        let mut per_group: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        for a in allocs.iter().filter(|a| a.job_type == JobType::Service) {
            let e = per_group.entry(a.alloc.task_group.clone()).or_insert((0, a.migrate.max_parallel));
            e.1 = e.1.max(a.migrate.max_parallel);
            let pending = a.replacements.iter().any(|r| r.is_live() && r.status.as_ref().and_then(|s| s.healthy) != Some(true));
            if pending || p.migrate.contains(&a.alloc.id) {
                e.0 += 1;
            }
        }
        for (g, (flight, _)) in per_group {
            let pre = allocs.iter().filter(|a| a.alloc.task_group == g && a.job_type == JobType::Service).filter(|a| a.replacements.iter().any(|r| r.is_live() && r.status.as_ref().and_then(|s| s.healthy) != Some(true))).count() as u32;
            let new = p.migrate.iter().filter(|id| allocs.iter().any(|a| &&a.alloc.id == id && a.alloc.task_group == g)).count() as u32;
            let max = allocs.iter().filter(|a| a.alloc.task_group == g).map(|a| a.migrate.max_parallel.max(1)).max().unwrap_or(1);
            prop_assert!(new == 0 || pre + new <= max, "group {}: {} in flight + {} new > {}", g, pre, new, max);
            prop_assert_eq!(flight, pre + new);
        }
    }
}

/// Seed 1549: a healthy replacement whose node then missed its heartbeat does not let the
/// drained original stop; once its node is back, it does.
#[test]
fn a_replacement_on_a_node_that_missed_its_heartbeat_does_not_stop_the_original() {
    let drain = drain(0, false);
    let mut a = with_replacement(
        original("a1", "g", JobType::Service),
        "r1",
        ClientStatus::Running,
        Some(true),
        0,
    );
    a.replacements_away.insert("r1".into());
    let plan = decide(&drain, std::slice::from_ref(&a), 100_000);
    assert!(plan.stop.is_empty(), "{plan:?}");
    a.replacements_away.clear();
    let plan = decide(&drain, std::slice::from_ref(&a), 100_000);
    assert_eq!(plan.stop.len(), 1, "{plan:?}");
}

#[test]
fn removing_the_request_cancels_a_drain_in_any_state_and_clears_its_deadline() {
    for state in [
        DrainState::Draining,
        DrainState::Blocked,
        DrainState::Complete,
    ] {
        let old = DrainStatus {
            state,
            started_at_ms: 1_000,
            deadline_ms: 3_601_000,
            remaining: 1,
            migrating: 1,
            nowhere_to_go: vec!["a1: no room".into()],
            updated_at_ms: 2_000,
        };
        let c = run::cancelled(&old, 5_000).expect("cancelled");
        assert_eq!(
            c,
            DrainStatus {
                state: DrainState::Cancelled,
                started_at_ms: 1_000,
                deadline_ms: 0,
                remaining: 1,
                migrating: 0,
                nowhere_to_go: vec![],
                updated_at_ms: 5_000,
            },
            "{state}"
        );
        assert_eq!(run::cancelled(&c, 9_000), None, "written once");
    }
}
