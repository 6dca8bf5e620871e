//! Table and property tests of the system/sysbatch placement decisions.

use super::*;
use nomos_api::{
    AllocStatus, Constraint, Network, Node, NodeSpec, Port, Resources, Task, UpdateStrategy,
};
use proptest::prelude::*;

fn node(name: &str, memory_mb: u32) -> Node {
    nomos_api::build::node(name)
        .cores(4)
        .memory(memory_mb)
        .build()
}

fn sys_job(job_type: JobType) -> Job {
    Job {
        id: "agentd".into(),
        namespace: "default".into(),
        datacenters: vec!["dc1".into()],
        node_pool: "default".into(),
        job_type,
        groups: vec![TaskGroup {
            name: "g".into(),
            count: 1,
            tasks: vec![Task {
                name: "t".into(),
                driver: "raw_exec".into(),
                resources: Resources {
                    cpu: 100,
                    memory_mb: 256,
                    ..Default::default()
                },
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

struct Cluster {
    snap: ClusterSnapshot,
    allocs: Vec<ObservedAlloc>,
}

impl Cluster {
    fn new(nodes: &[(&str, u32)]) -> Self {
        let mut snap = ClusterSnapshot::new();
        for (n, mem) in nodes {
            snap.upsert_node(node(n, *mem), None, true);
        }
        Cluster {
            snap,
            allocs: vec![],
        }
    }
    fn plan(&mut self, job: &Job, version: u64) -> SystemPlan {
        let mut snap = self.snap.clone();
        plan(job, version, &mut snap, &self.allocs, 1_000)
    }
    /// Applies a plan as the executor would, agents reporting `status` for new allocations.
    fn apply(&mut self, p: &SystemPlan, status: ClientStatus) {
        for s in &p.stop {
            let a = self
                .allocs
                .iter_mut()
                .find(|a| a.alloc.id == s.alloc_id)
                .unwrap();
            a.alloc.desired_status = DesiredStatus::Stop;
            self.snap.remove_alloc(&s.alloc_id);
            a.status = Some(AllocStatus {
                client_status: ClientStatus::Complete,
                ..Default::default()
            });
        }
        for n in &p.place {
            self.snap.add_alloc(scheduler::AllocUsage {
                id: n.alloc.id.as_str().into(),
                job: "default/agentd".into(),
                group: n.alloc.task_group.as_str().into(),
                node: n.alloc.node.as_str().into(),
                cpu: n.cpu,
                memory_mb: n.memory_mb,
                ports: n.alloc.ports.iter().map(|p| p.value).collect(),
                devices: scheduler::devices::instance_ids(&n.alloc.devices),
            });
            self.allocs.push(ObservedAlloc {
                alloc: n.alloc.clone(),
                status: Some(AllocStatus {
                    client_status: status,
                    ..Default::default()
                }),
            });
        }
    }
    fn live_on(&self, node: &str) -> usize {
        self.allocs
            .iter()
            .filter(|a| a.alloc.node == node && a.is_live())
            .count()
    }
}

fn placed_nodes(p: &SystemPlan) -> Vec<&str> {
    p.place.iter().map(|n| n.alloc.node.as_str()).collect()
}

#[test]
fn every_ready_eligible_node_gets_one_allocation_and_a_second_pass_changes_nothing() {
    let mut c = Cluster::new(&[("n1", 8192), ("n2", 8192), ("n3", 8192)]);
    let job = sys_job(JobType::System);
    let p = c.plan(&job, 0);
    assert_eq!(placed_nodes(&p), vec!["n1", "n2", "n3"]);
    assert!(p.stop.is_empty() && p.failures.is_empty());
    assert_eq!(p.place[0].alloc.name, "agentd.g[0]");
    assert_eq!(
        p.place,
        c.plan(&job, 0).place,
        "same input, same plan (ids included)"
    );
    c.apply(&p, ClientStatus::Running);
    assert!(c.plan(&job, 0).is_empty());
}

#[test]
fn a_node_that_joins_later_gets_its_allocation() {
    let mut c = Cluster::new(&[("n1", 8192)]);
    let job = sys_job(JobType::System);
    let p = c.plan(&job, 0);
    c.apply(&p, ClientStatus::Running);
    c.snap.upsert_node(node("n2", 8192), None, true);
    assert_eq!(placed_nodes(&c.plan(&job, 0)), vec!["n2"]);
}

#[test]
fn an_ineligible_node_loses_its_allocation_a_disconnected_or_draining_one_keeps_it() {
    let mut c = Cluster::new(&[("n1", 8192), ("n2", 8192), ("n3", 8192)]);
    let job = sys_job(JobType::System);
    let p = c.plan(&job, 0);
    c.apply(&p, ClientStatus::Running);
    c.snap.set_node_spec(
        "n1",
        Some(&NodeSpec {
            eligible: Some(false),
            drain: None,
        }),
    );
    c.snap.set_node_ready("n2", false);
    c.snap.set_node_spec(
        "n3",
        Some(&NodeSpec {
            eligible: Some(false),
            drain: Some(Default::default()),
        }),
    );
    let p = c.plan(&job, 0);
    assert!(p.place.is_empty());
    let stopped: Vec<(&str, &str)> = p
        .stop
        .iter()
        .map(|s| (s.node.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        stopped,
        vec![("n1", "node no longer runs this job: node ineligible")]
    );
}

#[test]
fn a_node_failing_the_constraints_gets_nothing_and_loses_what_it_had() {
    let mut c = Cluster::new(&[("n1", 8192), ("n2", 8192)]);
    let mut job = sys_job(JobType::System);
    let p = c.plan(&job, 0);
    c.apply(&p, ClientStatus::Running);
    let mut win = node("n2", 8192);
    win.attributes
        .insert("kernel.name".into(), "windows".into());
    c.snap.upsert_node(win, None, true);
    job.constraints.push(Constraint {
        attribute: "${attr.kernel.name}".into(),
        operator: "=".into(),
        value: "linux".into(),
    });
    let p = c.plan(&job, 1);
    assert_eq!(p.stop.iter().filter(|s| s.node == "n2").count(), 1);
    assert!(p
        .stop
        .iter()
        .find(|s| s.node == "n2")
        .unwrap()
        .reason
        .contains("constraint"));
    assert!(p.failures.is_empty(), "excluded nodes are not failures");
    assert!(placed_nodes(&p).iter().all(|n| *n == "n1"));
}

#[test]
fn a_node_that_cannot_fit_says_why() {
    let mut c = Cluster::new(&[("n1", 8192), ("small", 128)]);
    let mut job = sys_job(JobType::System);
    job.groups[0].networks.push(Network {
        ports: vec![Port {
            label: "http".into(),
            static_port: 8080,
            ..Default::default()
        }],
        ..Default::default()
    });
    // Something else holds port 8080 on n1.
    c.snap.add_alloc(scheduler::AllocUsage {
        id: "x".into(),
        job: "default/other".into(),
        node: "n1".into(),
        ports: Box::new([8080]),
        ..Default::default()
    });
    let p = c.plan(&job, 0);
    assert!(p.place.is_empty());
    assert_eq!(
        p.failures["g"],
        "2 nodes cannot fit the group: n1 (port collision on 8080), small (exhausted memory)"
    );
}

#[test]
fn sysbatch_runs_once_per_node_and_again_for_a_new_version() {
    let mut c = Cluster::new(&[("n1", 8192), ("n2", 8192)]);
    let job = sys_job(JobType::Sysbatch);
    let p = c.plan(&job, 0);
    c.apply(&p, ClientStatus::Complete);
    assert!(
        c.plan(&job, 0).is_empty(),
        "finished allocations are not placed again"
    );
    let (_, status) = summarize(&job, &c.allocs);
    assert_eq!(status, "dead");
    let p = c.plan(&job, 1);
    assert_eq!(placed_nodes(&p), vec!["n1", "n2"]);
    assert!(p.place.iter().all(|n| !n.alloc.previous_alloc.is_empty()));
    assert_ne!(p.place[0].alloc.id, c.allocs[0].alloc.id);
}

#[test]
fn updates_roll_node_by_node_within_max_parallel() {
    let mut c = Cluster::new(&[("n1", 8192), ("n2", 8192), ("n3", 8192)]);
    let mut job = sys_job(JobType::System);
    let p = c.plan(&job, 0);
    c.apply(&p, ClientStatus::Running);
    job.update = Some(UpdateStrategy {
        max_parallel: 1,
        ..Default::default()
    });
    job.groups[0].tasks[0].env.insert("V".into(), "2".into());

    let p = c.plan(&job, 1);
    assert_eq!(placed_nodes(&p), vec!["n1"]);
    assert_eq!(p.stop.len(), 1);
    assert_eq!(p.updates_waiting, 2);
    c.apply(&p, ClientStatus::Pending);
    let blocked = c.plan(&job, 1);
    assert!(
        blocked.is_empty(),
        "the replacement is not healthy yet: {blocked:?}"
    );
    c.allocs.last_mut().unwrap().status = Some(AllocStatus {
        client_status: ClientStatus::Running,
        healthy: Some(true),
        ..Default::default()
    });
    let p = c.plan(&job, 1);
    assert_eq!(placed_nodes(&p), vec!["n2"]);
    c.apply(&p, ClientStatus::Running);
    assert!(
        c.plan(&job, 1).is_empty(),
        "running without a verdict, and not yet for min_healthy_time"
    );
    c.allocs
        .last_mut()
        .unwrap()
        .status
        .as_mut()
        .unwrap()
        .healthy = Some(true);
    let p = c.plan(&job, 1);
    assert_eq!(placed_nodes(&p), vec!["n3"]);
    c.apply(&p, ClientStatus::Running);
    assert!(c.plan(&job, 1).is_empty());
    for n in ["n1", "n2", "n3"] {
        assert_eq!(c.live_on(n), 1);
    }
}

#[test]
fn a_stopped_job_stops_everything_and_places_nothing() {
    let mut c = Cluster::new(&[("n1", 8192), ("n2", 8192)]);
    let mut job = sys_job(JobType::System);
    let p = c.plan(&job, 0);
    c.apply(&p, ClientStatus::Running);
    job.stop = true;
    let p = c.plan(&job, 0);
    assert!(p.place.is_empty());
    assert_eq!(p.stop.len(), 2);
    c.apply(&p, ClientStatus::Running);
    assert_eq!(summarize(&job, &c.allocs).1, "dead");
}

#[test]
fn alloc_ids_are_stable_and_distinct_per_predecessor() {
    let v1 = VersionRef {
        version: 1,
        hash: "aaaa".into(),
    };
    let a = alloc_id("default", "agentd", &v1, "g", "n1", "");
    assert_eq!(a, alloc_id("default", "agentd", &v1, "g", "n1", ""));
    assert_ne!(a, alloc_id("default", "agentd", &v1, "g", "n1", &a));
    assert_ne!(a, alloc_id("default", "agentd", &v1, "g", "n2", ""));
    let recreated = VersionRef {
        version: 1,
        hash: "bbbb".into(),
    };
    assert_ne!(a, alloc_id("default", "agentd", &recreated, "g", "n1", ""));
    assert_eq!(a.len(), 36);
}

proptest! {
    /// Whatever the cluster looks like, applying plans converges to exactly one live allocation
    /// per feasible node, none on excluded nodes, and never over-commits memory.
    #[test]
    fn converges_to_one_allocation_per_feasible_node(
        nodes in proptest::collection::vec((300u32..2000, any::<bool>(), any::<bool>()), 1..12),
        sysbatch in any::<bool>(),
    ) {
        let names: Vec<String> = (0..nodes.len()).map(|i| format!("n{i:02}")).collect();
        let spec: Vec<(&str, u32)> = names.iter().zip(&nodes).map(|(n, (m, _, _))| (n.as_str(), *m)).collect();
        let mut c = Cluster::new(&spec);
        for (n, (_, eligible, _)) in names.iter().zip(&nodes) {
            c.snap.set_node_spec(n, Some(&NodeSpec { eligible: Some(*eligible), drain: None }));
        }
        let job = sys_job(if sysbatch { JobType::Sysbatch } else { JobType::System });
        for _ in 0..3 {
            let p = c.plan(&job, 0);
            c.apply(&p, ClientStatus::Running);
        }
        prop_assert!(c.plan(&job, 0).is_empty());
        for (n, (mem, eligible, _)) in names.iter().zip(&nodes) {
            let want = usize::from(*eligible && *mem >= 256);
            prop_assert_eq!(c.live_on(n), want, "node {}", n);
            let st = c.snap.node(n).unwrap();
            prop_assert!(st.used_memory_mb <= st.memory_capacity());
        }
    }
}

#[test]
fn a_replacement_settles_only_once_healthy_by_its_rule() {
    let rule = HealthRule {
        min_healthy_ms: 10_000,
        required_checks: 1,
    };
    let running = |check: Option<&str>, healthy: Option<bool>| {
        let mut s = AllocStatus {
            client_status: ClientStatus::Running,
            healthy,
            ..Default::default()
        };
        s.task_states.insert(
            "t".into(),
            nomos_api::TaskState {
                state: nomos_api::TaskRunState::Running,
                started_at_ms: 0,
                ..Default::default()
            },
        );
        if let Some(c) = check {
            s.checks.insert(
                "alive".into(),
                nomos_api::CheckResult {
                    status: c.into(),
                    ..Default::default()
                },
            );
        }
        ObservedAlloc {
            alloc: Allocation::default(),
            status: Some(s),
        }
    };
    // (case, allocation, now, settled)
    let cases = [
        ("agent says healthy", running(None, Some(true)), 0, true),
        (
            "check critical",
            running(Some("critical"), None),
            60_000,
            false,
        ),
        ("check unreported", running(None, None), 60_000, false),
        (
            "passing, too soon",
            running(Some("passing"), None),
            9_999,
            false,
        ),
        (
            "passing, long enough",
            running(Some("passing"), None),
            10_000,
            true,
        ),
        (
            "agent says unhealthy",
            running(Some("passing"), Some(false)),
            60_000,
            false,
        ),
    ];
    for (case, a, now, want) in cases {
        assert_eq!(a.is_settled(&rule, now), want, "{case}");
    }
}

#[test]
fn each_pass_that_acts_names_its_trigger_and_an_idle_one_records_nothing() {
    use nomos_api::eval::triggers;
    let mut c = Cluster::new(&[("n1", 8192), ("small", 128)]);
    let mut job = sys_job(JobType::System);
    let trigger = |c: &mut Cluster, job: &Job, version: u64| {
        let p = c.plan(job, version);
        let t = evals::trigger(job, version, &p, &c.allocs);
        c.apply(&p, ClientStatus::Running);
        t
    };
    assert_eq!(trigger(&mut c, &job, 0), Some(triggers::JOB_REGISTER));
    assert_eq!(
        trigger(&mut c, &job, 0),
        None,
        "idle, though small cannot fit"
    );
    c.snap.upsert_node(node("n2", 8192), None, true);
    assert_eq!(trigger(&mut c, &job, 0), Some(triggers::NODE_UPDATE));
    assert_eq!(trigger(&mut c, &job, 1), Some(triggers::JOB_REGISTER));
    c.snap.set_node_spec(
        "n2",
        Some(&NodeSpec {
            eligible: Some(false),
            drain: None,
        }),
    );
    assert_eq!(trigger(&mut c, &job, 1), Some(triggers::NODE_UPDATE));
    job.stop = true;
    assert_eq!(trigger(&mut c, &job, 1), Some(triggers::JOB_DEREGISTER));
}

#[test]
fn a_passs_evaluation_is_complete_and_carries_what_it_placed_and_could_not() {
    let mut c = Cluster::new(&[("n1", 8192), ("n2", 8192), ("small", 128)]);
    let job = sys_job(JobType::System);
    let p = c.plan(&job, 0);
    let facts = crate::jobs::evals::JobFacts {
        namespace: "default".into(),
        job_id: "agentd".into(),
        kind: "system".into(),
        priority: 50,
        job_modify_index: 7,
    };
    let placed = vec![p.place[0].alloc.id.clone()];
    let e = evals::record(&facts, "job-register", &p, placed.clone(), "e1".into(), 5);
    assert_eq!(
        (e.id.as_str(), e.status.as_str(), e.kind.as_str()),
        ("e1", "complete", "system")
    );
    assert_eq!((e.job_id.as_str(), e.job_modify_index), ("agentd", 7));
    assert_eq!(e.triggered_by, "job-register");
    assert_eq!(e.placed_allocs, Some(placed), "only what committed");
    let failed = &e.failed_tg_allocs.as_ref().unwrap()["g"];
    assert_eq!((failed.nodes_exhausted, failed.coalesced_failures), (1, 0));
    assert_eq!((e.create_time, e.modify_time), (5, 5));
    let none = evals::record(
        &facts,
        "node-update",
        &SystemPlan::default(),
        vec![],
        "e2".into(),
        5,
    );
    assert!(none.placed_allocs.is_none() && none.failed_tg_allocs.is_none());
}

#[test]
fn a_passs_evaluation_id_replays_and_two_passes_never_share_one() {
    let mut c = Cluster::new(&[("n1", 8192), ("n2", 8192)]);
    let job = sys_job(JobType::System);
    let p = c.plan(&job, 0);
    let id = |p: &SystemPlan, now: i64| evals::eval_id(&job, "job-register", p, now);
    assert_eq!(id(&p, 10), id(&p, 10), "the same pass replays its id");
    assert_ne!(id(&p, 10), id(&p, 11), "a later pass");
    assert_ne!(
        id(&p, 10),
        id(&SystemPlan::default(), 10),
        "a pass that does other things"
    );
    assert_ne!(
        id(&p, 10),
        evals::eval_id(&job, "node-update", &p, 10),
        "another trigger"
    );
    assert_eq!(id(&p, 10).len(), 36, "UUID-shaped: {}", id(&p, 10));
}
