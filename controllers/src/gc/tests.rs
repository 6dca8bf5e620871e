//! Table and property tests of the garbage collector's decisions.

use super::*;
use nomos_api::{AllocStatus, Allocation};
use proptest::prelude::*;

const HOUR: i64 = 3_600_000;

fn job(id: &str, stop: bool, versions: Vec<u64>) -> GcJob {
    GcJob {
        namespace: "default".into(),
        id: id.into(),
        spec: Some(Job {
            id: id.into(),
            namespace: "default".into(),
            stop,
            ..Default::default()
        }),
        status: Some(JobStatus {
            modified_at_ms: 0,
            ..Default::default()
        }),
        versions,
    }
}

fn alloc(
    id: &str,
    job: &str,
    desired: DesiredStatus,
    client: Option<ClientStatus>,
    at: i64,
) -> ObservedAlloc {
    ObservedAlloc {
        alloc: Allocation {
            id: id.into(),
            namespace: "default".into(),
            job_id: job.into(),
            node: "n1".into(),
            desired_status: desired,
            modified_at_ms: at,
            ..Default::default()
        },
        status: client.map(|c| AllocStatus {
            client_status: c,
            modified_at_ms: at,
            ..Default::default()
        }),
    }
}

fn ids(p: &GcPlan) -> Vec<&str> {
    p.allocs.iter().map(|(_, id)| id.as_str()).collect()
}

#[test]
fn allocation_rules() {
    use ClientStatus::*;
    use DesiredStatus::*;
    let jobs = vec![job("live", false, vec![0]), job("done", true, vec![0])];
    let mut replaced = alloc("failed-replaced", "live", Run, Some(Failed), 0);
    replaced.alloc.job_version = 0;
    let mut replacement = alloc("replacement", "live", Run, Some(Running), 0);
    replacement.alloc.previous_alloc = "failed-replaced".into();
    let lost_replaced = alloc("lost-replaced", "live", Run, Some(Lost), 0);
    let mut lost_replacement = alloc("lost-replacement", "live", Run, Some(Running), 0);
    lost_replacement.alloc.previous_alloc = "lost-replaced".into();
    let cases = vec![
        (
            alloc("running", "live", Run, Some(Running), 0),
            false,
            "running is never collected",
        ),
        (
            alloc("pending", "live", Run, None, 0),
            false,
            "not yet reported",
        ),
        (
            alloc("stopping", "live", Stop, Some(Running), 0),
            false,
            "stop not yet confirmed by the agent",
        ),
        (
            alloc("batch-done", "live", Run, Some(Complete), 0),
            false,
            "a finished batch allocation of a live job is its record",
        ),
        (
            alloc("stopped-old", "live", Stop, Some(Complete), 0),
            true,
            "stopped and finished long ago",
        ),
        (
            alloc("stopped-young", "live", Stop, Some(Complete), 2 * HOUR - 1),
            false,
            "younger than the threshold",
        ),
        (replaced, true, "failed and replaced"),
        (replacement, false, "the replacement runs"),
        (
            alloc("lost-unreplaced", "live", Run, Some(Lost), 0),
            false,
            "lost but nothing replaced it yet",
        ),
        (
            lost_replaced,
            false,
            "lost and replaced, but still desired: its node may return and keep it",
        ),
        (lost_replacement, false, "the lost one's replacement runs"),
        (
            alloc("lost-stopped", "live", Stop, Some(Lost), 0),
            true,
            "lost and no longer desired",
        ),
    ];
    let allocs: Vec<ObservedAlloc> = cases.iter().map(|c| c.0.clone()).collect();
    let p = plan(&jobs, &allocs, 2 * HOUR, &GcConfig::default());
    for (a, collected, why) in &cases {
        assert_eq!(
            ids(&p).contains(&a.alloc.id.as_str()),
            *collected,
            "{}: {why}",
            a.alloc.id
        );
    }
}

#[test]
fn a_stopped_job_is_purged_with_its_allocations_once_nothing_runs() {
    use ClientStatus::*;
    use DesiredStatus::*;
    let jobs = vec![job("done", true, vec![0, 1]), job("busy", true, vec![0])];
    let allocs = vec![
        alloc("d1", "done", Stop, Some(Complete), 5 * HOUR - 1),
        alloc("b1", "busy", Stop, Some(Running), 0),
    ];
    let p = plan(&jobs, &allocs, 5 * HOUR, &GcConfig::default());
    assert_eq!(p.jobs, vec![("default".to_string(), "done".to_string())]);
    assert_eq!(
        ids(&p),
        vec!["d1"],
        "the purged job's allocations go with it"
    );
    let young = plan(&jobs, &allocs, HOUR, &GcConfig::default());
    assert!(young.jobs.is_empty());
}

#[test]
fn a_running_job_is_never_purged() {
    let mut j = job("web", false, vec![0]);
    j.status = None;
    let p = plan(&[j], &[], 100 * HOUR, &GcConfig::default().forced());
    assert!(p.jobs.is_empty());
}

#[test]
fn old_versions_beyond_the_limit_go_except_stable_current_and_referenced() {
    let mut j = job("web", false, (0..10).collect());
    j.status = Some(JobStatus {
        version: 9,
        stable_version: Some(2),
        ..Default::default()
    });
    let mut on_v1 = alloc(
        "a",
        "web",
        DesiredStatus::Run,
        Some(ClientStatus::Running),
        0,
    );
    on_v1.alloc.job_version = 1;
    let p = plan(&[j], &[on_v1], 0, &GcConfig::default());
    let gone: Vec<u64> = p.versions.iter().map(|v| v.2).collect();
    assert_eq!(gone, vec![0, 3]);
}

#[test]
fn forced_collection_ignores_the_age_thresholds() {
    let jobs = vec![job("live", false, vec![0])];
    let allocs = vec![alloc(
        "s",
        "live",
        DesiredStatus::Stop,
        Some(ClientStatus::Complete),
        1_000,
    )];
    assert!(plan(&jobs, &allocs, 1_001, &GcConfig::default()).is_empty());
    assert_eq!(
        ids(&plan(&jobs, &allocs, 1_001, &GcConfig::default().forced())),
        vec!["s"]
    );
}

fn arb_alloc() -> impl Strategy<Value = ObservedAlloc> {
    (0u8..3, 0u8..7, 0u8..3, 0i64..10, any::<bool>()).prop_map(|(d, c, j, age, prev)| {
        let desired = [
            DesiredStatus::Run,
            DesiredStatus::Stop,
            DesiredStatus::Evict,
        ][d as usize];
        let client = [
            None,
            Some(ClientStatus::Pending),
            Some(ClientStatus::Running),
            Some(ClientStatus::Complete),
            Some(ClientStatus::Failed),
            Some(ClientStatus::Lost),
            Some(ClientStatus::Unknown),
        ][c as usize];
        let mut a = alloc("", &format!("j{j}"), desired, client, age * HOUR);
        if prev {
            a.alloc.previous_alloc = format!("x{age}");
        }
        a
    })
}

proptest! {
    /// Nothing running or desired is ever collected, and no job with a running allocation or an
    /// unstopped spec is purged.
    #[test]
    fn never_collects_running_or_desired(
        mut allocs in proptest::collection::vec(arb_alloc(), 0..30),
        stops in proptest::collection::vec(any::<bool>(), 3),
        forced in any::<bool>(),
    ) {
        for (i, a) in allocs.iter_mut().enumerate() {
            a.alloc.id = format!("x{i}");
        }
        let jobs: Vec<GcJob> = (0..3).map(|i| job(&format!("j{i}"), stops[i], vec![0])).collect();
        let config = if forced { GcConfig::default().forced() } else { GcConfig::default() };
        let p = plan(&jobs, &allocs, 20 * HOUR, &config);
        for (_, id) in &p.allocs {
            let a = allocs.iter().find(|a| &a.alloc.id == id).unwrap();
            prop_assert!(!is_protected(a), "collected protected {:?}", a);
            prop_assert!(a.status.as_ref().is_some_and(|s| s.client_status.is_terminal()));
        }
        for (_, j) in &p.jobs {
            let spec = jobs.iter().find(|x| &x.id == j).unwrap().spec.as_ref().unwrap();
            prop_assert!(spec.stop);
            prop_assert!(!allocs.iter().any(|a| &a.alloc.job_id == j && is_protected(a)));
        }
    }
}

#[test]
fn finished_periodic_children_of_a_parent_that_is_gone_are_collected() {
    let child = |id: &str, parent: &str, status: &str| {
        let mut j = job(id, false, vec![0]);
        j.spec
            .as_mut()
            .unwrap()
            .labels
            .insert(crate::periodic::PARENT_LABEL.into(), parent.into());
        j.status.as_mut().unwrap().status = status.into();
        j
    };
    let jobs = vec![
        job("report", false, vec![0]),
        child("report-periodic-100", "report", "dead"),
        child("gone-periodic-100", "gone", "dead"),
        child("gone-periodic-200", "gone", "running"),
    ];
    let p = plan(&jobs, &[], 20 * HOUR, &GcConfig::default());
    let purged: Vec<&str> = p.jobs.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        purged,
        vec!["gone-periodic-100"],
        "only the finished orphan goes; a live parent's children are the periodic loop's"
    );
}

#[test]
fn finished_dispatched_jobs_are_collected_after_the_threshold_and_running_ones_never() {
    let child = |id: &str, status: &str, quiet_since: i64| {
        let mut j = job(id, false, vec![0]);
        j.spec.as_mut().unwrap().dispatched = Some(nomos_api::Dispatched {
            parent_id: "encode".into(),
            ..Default::default()
        });
        let st = j.status.as_mut().unwrap();
        st.status = status.into();
        st.modified_at_ms = quiet_since;
        j
    };
    let jobs = vec![
        job("encode", false, vec![0]),
        child("encode-dispatch-1-aaaaaaaa", "dead", 0),
        child("encode-dispatch-2-bbbbbbbb", "running", 0),
        child("encode-dispatch-3-cccccccc", "dead", 19 * HOUR),
    ];
    let config = GcConfig::default();
    let p = plan(&jobs, &[], 20 * HOUR, &config);
    let purged: Vec<&str> = p.jobs.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        purged,
        vec!["encode-dispatch-1-aaaaaaaa"],
        "finished and quiet for the threshold: collected; running or recent: kept; the parent stays"
    );
}

#[test]
fn evaluations_go_when_finished_and_old_beyond_the_cap_or_with_their_job() {
    let eval = |id: &str, job: &str, status: &str, age_ms: i64| Evaluation {
        id: id.into(),
        namespace: "default".into(),
        job_id: job.into(),
        status: status.into(),
        modify_time: (10 * HOUR - age_ms) * 1_000_000,
        ..Default::default()
    };
    let evals = vec![
        eval("fresh", "web", "complete", 1_000),
        eval("old", "web", "complete", 2 * HOUR),
        eval("old-failed", "web", "failed", 2 * HOUR),
        eval("old-pending", "web", "pending", 2 * HOUR),
        eval("old-blocked", "web", "blocked", 2 * HOUR),
        eval("gone-pending", "purged", "pending", 0),
        eval("older", "api", "complete", 3_000),
        eval("newer", "api", "canceled", 2_000),
        eval("newest", "api", "complete", 1_000),
    ];
    let live: HashSet<(String, String)> = [("default", "web"), ("default", "api")]
        .into_iter()
        .map(|(n, j)| (n.to_string(), j.to_string()))
        .collect();
    let config = GcConfig {
        evals_kept_per_job: 2,
        ..Default::default()
    };
    let got: Vec<String> = plan_evals(&evals, &live, 10 * HOUR, &config)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(
        got,
        ["gone-pending", "old", "old-failed", "older"],
        "unfinished evaluations of live jobs stay, however old"
    );
    let forced: Vec<String> = plan_evals(&evals, &live, 10 * HOUR, &config.forced())
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(
        forced,
        [
            "fresh",
            "gone-pending",
            "newer",
            "newest",
            "old",
            "old-failed",
            "older"
        ]
    );
}
