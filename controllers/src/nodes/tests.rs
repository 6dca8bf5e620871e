//! Table and property tests of the node-lifecycle decisions.

use super::*;
use nomos_api::{AllocStatus, Allocation};
use proptest::prelude::*;

const NODE: &str = "n1";

fn alloc(id: &str, status: ClientStatus) -> NodeAlloc {
    NodeAlloc {
        observed: ObservedAlloc {
            alloc: Allocation {
                id: id.into(),
                node: NODE.into(),
                job_id: "web".into(),
                ..Default::default()
            },
            status: Some(AllocStatus {
                alloc_id: id.into(),
                client_status: status,
                ..Default::default()
            }),
        },
        disconnect: None,
        max_client_disconnect_ns: None,
        replacements: vec![],
    }
}

fn with_lost_after(mut a: NodeAlloc, secs: u64, reconcile: &str) -> NodeAlloc {
    a.disconnect = Some(Disconnect {
        lost_after_ns: secs * 1_000_000_000,
        reconcile: reconcile.into(),
        ..Default::default()
    });
    a
}

fn replaced_by(mut a: NodeAlloc, id: &str) -> NodeAlloc {
    a.replacements.push(ObservedAlloc {
        alloc: Allocation {
            id: id.into(),
            node: "n2".into(),
            previous_alloc: a.alloc.id.clone(),
            ..Default::default()
        },
        status: Some(AllocStatus {
            client_status: ClientStatus::Running,
            ..Default::default()
        }),
    });
    a
}

fn set(status: &mut NodeAlloc, s: ClientStatus) {
    status.observed.status.as_mut().unwrap().client_status = s;
}

fn cfg() -> LifecycleConfig {
    LifecycleConfig::default()
}

#[test]
fn a_live_node_is_ready_and_nothing_is_written_to_its_allocations() {
    let plan = decide(
        NODE,
        true,
        None,
        &[alloc("a", ClientStatus::Running)],
        1_000,
        &cfg(),
    );
    assert_eq!(plan.record.status, NodeStatus::Ready);
    assert_eq!(plan.record.since_ms, 1_000);
    assert!(plan.set_status.is_empty() && plan.stop.is_empty());
    let again = decide(
        NODE,
        true,
        Some(&plan.record),
        &[alloc("a", ClientStatus::Running)],
        5_000,
        &cfg(),
    );
    assert_eq!(again.record, plan.record, "no change, no write");
}

#[test]
fn a_missed_heartbeat_disconnects_at_once_and_marks_running_allocations_unknown() {
    let ready = decide(NODE, true, None, &[], 0, &cfg()).record;
    let mut stopped = alloc("s", ClientStatus::Running);
    stopped.observed.alloc.desired_status = DesiredStatus::Stop;
    let allocs = vec![
        with_lost_after(alloc("a", ClientStatus::Running), 60, ""),
        alloc("b", ClientStatus::Pending),
        alloc("done", ClientStatus::Complete),
        stopped,
    ];
    let plan = decide(NODE, false, Some(&ready), &allocs, 10_000, &cfg());
    assert_eq!(plan.record.status, NodeStatus::Disconnected);
    assert_eq!(plan.record.disconnected_at_ms, Some(10_000));
    let marked: Vec<(&str, ClientStatus)> = plan
        .set_status
        .iter()
        .map(|s| (s.alloc_id.as_str(), s.status))
        .collect();
    assert_eq!(
        marked,
        vec![("a", ClientStatus::Unknown), ("b", ClientStatus::Unknown)]
    );
    assert_eq!(plan.record.marks["b"].previous, ClientStatus::Pending);
    assert!(
        plan.stop.is_empty(),
        "nothing is replaced or stopped while unknown"
    );
    assert_eq!(
        plan.wake_at_ms,
        Some(70_000),
        "wake when the first allocation turns lost"
    );
}

#[test]
fn allocations_turn_lost_only_after_their_groups_lost_after() {
    let allocs = vec![
        with_lost_after(alloc("a", ClientStatus::Running), 60, ""),
        alloc("b", ClientStatus::Running),
    ];
    let first = decide(NODE, false, None, &allocs, 0, &cfg());
    let mut now_view = allocs.clone();
    for a in &mut now_view {
        set(a, ClientStatus::Unknown);
    }
    let before = decide(NODE, false, Some(&first.record), &now_view, 59_999, &cfg());
    assert!(
        before.set_status.is_empty(),
        "still unknown: {:?}",
        before.set_status
    );
    let after = decide(NODE, false, Some(&before.record), &now_view, 60_000, &cfg());
    assert_eq!(after.set_status.len(), 1);
    assert_eq!(
        (
            after.set_status[0].alloc_id.as_str(),
            after.set_status[0].status
        ),
        ("a", ClientStatus::Lost)
    );
    assert_eq!(
        after.record.marks["b"].marked,
        ClientStatus::Unknown,
        "default lost_after is 5 minutes"
    );
    assert_eq!(after.record.status, NodeStatus::Disconnected);
    let later = decide(NODE, false, Some(&after.record), &now_view, 300_000, &cfg());
    assert_eq!(later.record.status, NodeStatus::Down);
    assert_eq!(later.record.marks["b"].marked, ClientStatus::Lost);
}

#[test]
fn max_client_disconnect_is_honoured_as_lost_after() {
    let mut a = alloc("a", ClientStatus::Running);
    a.max_client_disconnect_ns = Some(30_000_000_000);
    assert_eq!(a.lost_after_ms(&cfg()), 30_000);
    let a = with_lost_after(a, 45, "");
    assert_eq!(
        a.lost_after_ms(&cfg()),
        45_000,
        "disconnect.lost_after wins"
    );
    assert_eq!(
        alloc("b", ClientStatus::Running).lost_after_ms(&cfg()),
        300_000
    );
}

#[test]
fn a_node_back_before_lost_after_keeps_everything() {
    let allocs = vec![
        alloc("a", ClientStatus::Running),
        alloc("b", ClientStatus::Running),
    ];
    let gone = decide(NODE, false, None, &allocs, 0, &cfg());
    let mut seen = allocs.clone();
    set(&mut seen[0], ClientStatus::Unknown);
    // The agent already re-reported b.
    set(&mut seen[1], ClientStatus::Unknown);
    set(&mut seen[1], ClientStatus::Running);
    let back = decide(NODE, true, Some(&gone.record), &seen, 20_000, &cfg());
    assert_eq!(back.record.status, NodeStatus::Ready);
    assert!(back.record.marks.is_empty());
    assert!(back.stop.is_empty());
    let restored: Vec<(&str, ClientStatus)> = back
        .set_status
        .iter()
        .map(|s| (s.alloc_id.as_str(), s.status))
        .collect();
    assert_eq!(
        restored,
        vec![("a", ClientStatus::Running)],
        "only what still carries the mark is restored"
    );
}

#[test]
fn a_node_back_after_lost_after_keeps_its_originals_and_stops_the_replacements() {
    let a = replaced_by(
        with_lost_after(alloc("a", ClientStatus::Running), 10, "keep_original"),
        "r1",
    );
    let gone = decide(NODE, false, None, std::slice::from_ref(&a), 0, &cfg());
    let mut seen = a.clone();
    set(&mut seen, ClientStatus::Unknown);
    let lost = decide(
        NODE,
        false,
        Some(&gone.record),
        std::slice::from_ref(&seen),
        10_000,
        &cfg(),
    );
    set(&mut seen, ClientStatus::Lost);
    // The jobs controller stopped the lost original when it placed the replacement.
    seen.observed.alloc.desired_status = DesiredStatus::Stop;
    // First pass after the return: the status comes back, nothing is settled yet.
    let back = decide(
        NODE,
        true,
        Some(&lost.record),
        std::slice::from_ref(&seen),
        20_000,
        &cfg(),
    );
    assert_eq!(
        back.set_status[0].status,
        ClientStatus::Running,
        "the original gets its status back"
    );
    assert!(back.stop.is_empty() && back.resume.is_empty());
    assert_eq!(back.record.status, NodeStatus::Ready);
    assert_eq!(back.wake_at_ms, Some(20_000 + RECONCILE_SETTLE_MS));
    // Next pass: the original is kept, the replacement stops.
    set(&mut seen, ClientStatus::Running);
    let back = decide(
        NODE,
        true,
        Some(&back.record),
        std::slice::from_ref(&seen),
        20_500,
        &cfg(),
    );
    assert_eq!(
        back.stop,
        vec![Stop {
            node: "n2".into(),
            alloc_id: "r1".into(),
            reason: back.stop[0].reason.clone()
        }]
    );
    assert!(back.set_status.is_empty());
    assert!(back.record.marks.is_empty());
    assert_eq!(back.resume, vec!["a".to_string()], "and runs again");
}

#[test]
fn keep_replacement_stops_the_original_instead() {
    let a = replaced_by(
        with_lost_after(alloc("a", ClientStatus::Running), 10, "keep_replacement"),
        "r1",
    );
    let record = NodeLifecycle {
        status: NodeStatus::Disconnected,
        since_ms: 0,
        disconnected_at_ms: Some(0),
        marks: [(
            "a".to_string(),
            AllocMark {
                previous: ClientStatus::Running,
                marked: ClientStatus::Lost,
                lost_at_ms: Some(10_000),
                restored: false,
            },
        )]
        .into(),
    };
    let mut seen = a.clone();
    set(&mut seen, ClientStatus::Running); // the agent came back and reported it
    let back = decide(NODE, true, Some(&record), &[seen], 20_000, &cfg());
    assert_eq!(back.stop.len(), 1);
    assert_eq!(
        (back.stop[0].node.as_str(), back.stop[0].alloc_id.as_str()),
        (NODE, "a")
    );
    assert!(back.set_status.is_empty());
}

#[test]
fn a_lost_original_that_failed_meanwhile_leaves_the_replacement_running() {
    let a = replaced_by(
        with_lost_after(alloc("a", ClientStatus::Failed), 10, ""),
        "r1",
    );
    let record = NodeLifecycle {
        status: NodeStatus::Down,
        marks: [(
            "a".to_string(),
            AllocMark {
                previous: ClientStatus::Running,
                marked: ClientStatus::Lost,
                lost_at_ms: Some(1),
                restored: false,
            },
        )]
        .into(),
        disconnected_at_ms: Some(0),
        ..Default::default()
    };
    let back = decide(NODE, true, Some(&record), &[a], 20_000, &cfg());
    assert!(back.stop.is_empty() && back.set_status.is_empty());
}

#[test]
fn a_status_written_during_the_disconnect_is_marked_again_and_remembered() {
    let a = alloc("a", ClientStatus::Pending);
    let gone = decide(NODE, false, None, std::slice::from_ref(&a), 0, &cfg());
    let mut seen = a.clone();
    set(&mut seen, ClientStatus::Running);
    let again = decide(
        NODE,
        false,
        Some(&gone.record),
        std::slice::from_ref(&seen),
        5_000,
        &cfg(),
    );
    assert_eq!(again.set_status[0].status, ClientStatus::Unknown);
    assert_eq!(again.record.marks["a"].previous, ClientStatus::Running);
}

#[test]
fn heartbeat_settings_map_onto_lease_ttls() {
    let d = HeartbeatConfig::default();
    assert_eq!(
        lease_timing(&d, 3),
        LeaseTiming {
            ttl_seconds: 20,
            keepalive_interval_ms: 10_000
        }
    );
    // 10,000 nodes at 50 per second: each renews every 200 s.
    assert_eq!(
        lease_timing(&d, 10_000),
        LeaseTiming {
            ttl_seconds: 210,
            keepalive_interval_ms: 200_000
        }
    );
    let short = HeartbeatConfig {
        heartbeat_grace_ms: 500,
        min_heartbeat_ttl_ms: 1_000,
        max_heartbeats_per_second: 0.0,
    };
    assert_eq!(
        lease_timing(&short, 1),
        LeaseTiming {
            ttl_seconds: 2,
            keepalive_interval_ms: 1_000
        }
    );
}

proptest! {
    /// A node whose heartbeat flaps (gone and back, each gap shorter than lost_after) never has an
    /// allocation marked lost, never stops anything, and ends with every allocation as it was.
    #[test]
    fn flapping_never_loses_or_stops_anything(
        gaps in proptest::collection::vec((1i64..59_000, 1i64..20_000, 0usize..4), 1..40),
    ) {
        let config = LifecycleConfig { default_lost_after_ms: 60_000, down_after_ms: 60_000 };
        let mut allocs = vec![alloc("a", ClientStatus::Running), alloc("b", ClientStatus::Running), alloc("c", ClientStatus::Pending)];
        let original: Vec<ClientStatus> = allocs.iter().map(|a| a.client_status()).collect();
        let mut record: Option<NodeLifecycle> = None;
        let mut now = 0i64;
        for (gap, up, evals) in gaps {
            // Evaluations while the heartbeat is gone (the loop may run several times).
            let step = gap / (evals as i64 + 1);
            for i in 0..=evals {
                let plan = decide(NODE, false, record.as_ref(), &allocs, now + step * i as i64, &config);
                prop_assert!(plan.stop.is_empty());
                for s in &plan.set_status {
                    prop_assert_eq!(s.status, ClientStatus::Unknown);
                    let a = allocs.iter_mut().find(|a| a.alloc.id == s.alloc_id).unwrap();
                    set(a, s.status);
                }
                prop_assert_ne!(plan.record.status, NodeStatus::Down);
                record = Some(plan.record);
            }
            now += gap;
            let plan = decide(NODE, true, record.as_ref(), &allocs, now, &config);
            prop_assert!(plan.stop.is_empty());
            for s in &plan.set_status {
                let a = allocs.iter_mut().find(|a| a.alloc.id == s.alloc_id).unwrap();
                set(a, s.status);
            }
            prop_assert_eq!(plan.record.status, NodeStatus::Ready);
            record = Some(plan.record);
            now += up;
            let now_statuses: Vec<ClientStatus> = allocs.iter().map(|a| a.client_status()).collect();
            prop_assert_eq!(&now_statuses, &original);
        }
    }
}
