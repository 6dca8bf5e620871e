use indexmap::IndexMap;
use nomos_api::{
    build, AllocatedPort, CheckResult, Deployment, DeploymentGroup, Service, TaskGroup,
};

use super::*;

fn web_service() -> Service {
    Service {
        name: "web".into(),
        port: "http".into(),
        tags: vec!["v1".into()],
        canary_tags: vec!["canary".into()],
        ..Default::default()
    }
}

fn job_with(services: Vec<Service>, task_services: Vec<Service>) -> Job {
    let mut g: TaskGroup = build::group("g", 1);
    g.services = services;
    g.tasks = vec![build::task("t", 100, 64)];
    g.tasks[0].services = task_services;
    build::job("j").with_group(g).build()
}

fn alloc(id: &str) -> Allocation {
    Allocation {
        id: id.into(),
        namespace: "default".into(),
        job_id: "j".into(),
        task_group: "g".into(),
        name: "j.g[0]".into(),
        node: "n1".into(),
        desired_status: DesiredStatus::Run,
        ports: vec![AllocatedPort {
            label: "http".into(),
            value: 23456,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn status(client: ClientStatus, checks: &[(&str, &str)]) -> AllocStatus {
    AllocStatus {
        client_status: client,
        checks: checks
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    CheckResult {
                        status: v.to_string(),
                        ..Default::default()
                    },
                )
            })
            .collect(),
        ..Default::default()
    }
}

fn node() -> Node {
    let mut n = build::node("n1")
        .address("10.0.0.7")
        .datacenter("dc2")
        .build();
    n.id = "node-id-1".into();
    n
}

fn regs(
    job: &Job,
    a: &Allocation,
    st: Option<&AllocStatus>,
    canary: bool,
) -> Vec<(String, ServiceRegistration)> {
    let n = node();
    registrations(&Instance {
        alloc: a,
        status: st,
        job: Some(job),
        node: Some(&n),
        unpromoted_canary: canary,
    })
}

#[test]
fn a_running_allocation_registers_its_service_on_its_nodes_address_and_port() {
    let job = job_with(vec![web_service()], vec![]);
    let st = status(ClientStatus::Running, &[]);
    let got = regs(&job, &alloc("a1"), Some(&st), false);
    assert_eq!(got.len(), 1);
    let (key, r) = &got[0];
    assert_eq!(
        key,
        "/nomos/services/default/web/_nomad-task-a1-group-g-web-http"
    );
    assert_eq!(
        (
            r.address.as_str(),
            r.port,
            r.node.as_str(),
            r.node_id.as_str()
        ),
        ("10.0.0.7", 23456, "n1", "node-id-1")
    );
    assert_eq!((r.datacenter.as_str(), r.job_id.as_str()), ("dc2", "j"));
    assert_eq!(r.tags, vec!["v1".to_string()]);
    assert!(r.healthy, "no checks: healthy");
}

#[test]
fn only_allocations_that_should_run_and_do_are_registered() {
    let job = job_with(vec![web_service()], vec![]);
    let mut stopping = alloc("a1");
    stopping.desired_status = DesiredStatus::Stop;
    use ClientStatus::*;
    let cases = [
        ("no status yet", None, 0),
        ("pending", Some(Pending), 0),
        ("running", Some(Running), 1),
        ("complete", Some(Complete), 0),
        ("failed", Some(Failed), 0),
        ("lost with its node", Some(Lost), 0),
        ("unknown", Some(Unknown), 0),
    ];
    for (what, client, want) in cases {
        let st = client.map(|c| status(c, &[]));
        assert_eq!(
            regs(&job, &alloc("a1"), st.as_ref(), false).len(),
            want,
            "{what}"
        );
    }
    let running = status(Running, &[]);
    assert!(
        regs(&job, &stopping, Some(&running), false).is_empty(),
        "told to stop"
    );
}

#[test]
fn an_instance_is_healthy_only_when_every_check_of_its_service_passes_a_warning_is_not() {
    let mut svc = web_service();
    svc.checks = vec![
        nomos_api::Check {
            name: "alive".into(),
            check_type: "http".into(),
            path: "/".into(),
            ..Default::default()
        },
        nomos_api::Check {
            check_type: "tcp".into(),
            ..Default::default()
        },
    ];
    let job = job_with(vec![svc], vec![]);
    type Case<'a> = (&'a [(&'a str, &'a str)], bool, &'a str);
    let cases: Vec<Case> = vec![
        (
            &[("web.alive", "passing"), ("web.tcp1", "passing")],
            true,
            "passing",
        ),
        (
            &[("web.alive", "passing"), ("web.tcp1", "critical")],
            false,
            "critical",
        ),
        // A warning is not passing: the instance is unhealthy and its checks say why.
        (
            &[("web.alive", "passing"), ("web.tcp1", "warning")],
            false,
            "warning",
        ),
        (&[("web.alive", "passing")], false, "pending"),
        (&[], false, "pending"),
    ];
    for (checks, healthy, tcp_state) in cases {
        let st = status(ClientStatus::Running, checks);
        let got = regs(&job, &alloc("a1"), Some(&st), false);
        assert_eq!(got[0].1.healthy, healthy, "{checks:?}");
        assert_eq!(got[0].1.checks["web.tcp1"], tcp_state, "{checks:?}");
    }
}

#[test]
fn an_unpromoted_canary_registers_its_canary_tags() {
    let job = job_with(vec![web_service()], vec![]);
    let st = status(ClientStatus::Running, &[]);
    let canary = regs(&job, &alloc("a1"), Some(&st), true);
    assert_eq!(canary[0].1.tags, vec!["canary".to_string()]);
    let mut plain = web_service();
    plain.canary_tags.clear();
    let job = job_with(vec![plain], vec![]);
    let canary = regs(&job, &alloc("a1"), Some(&st), true);
    assert_eq!(
        canary[0].1.tags,
        vec!["v1".to_string()],
        "no canary_tags: tags"
    );
}

#[test]
fn names_tags_and_meta_take_nomads_runtime_variables() {
    let svc = Service {
        name: "${JOB}-api".into(),
        port: "http".into(),
        tags: vec!["alloc-${NOMAD_ALLOC_INDEX}".into(), "${UNKNOWN}".into()],
        meta: IndexMap::from([("group".to_string(), "${NOMAD_GROUP_NAME}".to_string())]),
        ..Default::default()
    };
    let unnamed = Service {
        port: "8080".into(),
        ..Default::default()
    };
    let job = job_with(vec![svc], vec![unnamed]);
    let st = status(ClientStatus::Running, &[]);
    let got = regs(&job, &alloc("a1"), Some(&st), false);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1.service_name, "j-api");
    assert_eq!(
        got[0].1.tags,
        vec!["alloc-0".to_string(), "${UNKNOWN}".into()]
    );
    assert_eq!(got[0].1.meta["group"], "g");
    assert_eq!(got[1].1.service_name, "j-g-t", "a task's unnamed service");
    assert_eq!((got[1].1.task.as_str(), got[1].1.port), ("t", 8080));
    assert_eq!(
        got[1].0,
        "/nomos/services/default/j-g-t/_nomad-task-a1-t-j-g-t-8080"
    );
}

#[test]
fn a_service_that_cannot_be_reached_or_named_is_left_out() {
    let unknown_label = Service {
        name: "web".into(),
        port: "admin".into(),
        ..Default::default()
    };
    let bad_name = Service {
        name: "${NOMAD_ALLOC_NAME}".into(),
        port: "http".into(),
        ..Default::default()
    };
    let job = job_with(vec![unknown_label, bad_name], vec![]);
    let st = status(ClientStatus::Running, &[]);
    assert!(regs(&job, &alloc("a1"), Some(&st), false).is_empty());
}

fn rev<T>(value: T, mod_revision: i64) -> Rev<T> {
    Rev {
        value,
        mod_revision,
    }
}

#[test]
fn changes_put_what_is_new_or_different_and_delete_what_is_not_wanted() {
    let reg = |port: u16| ServiceRegistration {
        service_name: "web".into(),
        port,
        ..Default::default()
    };
    let wanted = BTreeMap::from([
        ("/k/same".to_string(), reg(1)),
        ("/k/moved".to_string(), reg(3)),
        ("/k/new".to_string(), reg(4)),
    ]);
    let stored = BTreeMap::from([
        ("/k/same".to_string(), rev(reg(1), 10)),
        ("/k/moved".to_string(), rev(reg(2), 11)),
        ("/k/gone".to_string(), rev(reg(5), 12)),
    ]);
    let c = changes(wanted, &stored);
    assert_eq!(c.deletes, vec![("/k/gone".to_string(), 12)]);
    assert_eq!(
        c.puts,
        vec![
            ("/k/moved".to_string(), reg(3), 11),
            ("/k/new".to_string(), reg(4), 0)
        ]
    );
    assert!(changes(BTreeMap::new(), &BTreeMap::new()).is_empty());
}

/// A view of node `n1`, `job` as version 0 of `j`, and `allocs` each reported running.
fn view_of(job: Job, allocs: Vec<Allocation>) -> View {
    let mut view = View::default();
    view.nodes.insert("n1".into(), node());
    view.versions
        .entry(("default".into(), "j".into()))
        .or_default()
        .insert(0, job);
    for a in allocs {
        view.alloc_status
            .insert(a.id.clone(), rev(status(ClientStatus::Running, &[]), 1));
        view.allocs.insert(a.id.clone(), rev(a, 1));
    }
    view
}

#[test]
fn the_catalogue_follows_a_canarys_promotion() {
    let job = job_with(vec![web_service()], vec![]);
    let mut a = alloc("a1");
    a.canary = true;
    a.deployment_id = "d1".into();
    let mut view = view_of(job, vec![a]);
    let tags = |view: &View| catalogue(view).into_values().next().map(|r| r.tags);
    assert_eq!(
        tags(&view),
        Some(vec!["canary".to_string()]),
        "no deployment seen"
    );
    let mut d = Deployment {
        id: "d1".into(),
        ..Default::default()
    };
    d.groups.insert("g".into(), DeploymentGroup::default());
    view.deployments
        .entry(("default".into(), "j".into()))
        .or_default()
        .insert("d1".into(), d.clone());
    assert_eq!(tags(&view), Some(vec!["canary".to_string()]), "unpromoted");
    if let Some(g) = d.groups.get_mut("g") {
        g.promoted = true;
    }
    view.deployments
        .entry(("default".into(), "j".into()))
        .or_default()
        .insert("d1".into(), d);
    assert_eq!(tags(&view), Some(vec!["v1".to_string()]), "promoted");
}

#[test]
fn a_stopped_lost_or_collected_allocation_is_deregistered() {
    let job = job_with(vec![web_service()], vec![]);
    let mut view = view_of(job, vec![alloc("a1"), alloc("a2"), alloc("a3")]);
    let stored: BTreeMap<String, Rev<ServiceRegistration>> = catalogue(&view)
        .into_iter()
        .map(|(k, v)| (k, rev(v, 5)))
        .collect();
    assert_eq!(stored.len(), 3);
    assert!(changes(catalogue(&view), &stored).is_empty(), "in step");

    // a1 is told to stop, a2's node is lost past lost_after, a3 is collected with its job.
    view.allocs.get_mut("a1").unwrap().value.desired_status = DesiredStatus::Stop;
    view.alloc_status.get_mut("a2").unwrap().value.client_status = ClientStatus::Lost;
    view.allocs.remove("a3");
    let c = changes(catalogue(&view), &stored);
    assert!(c.puts.is_empty());
    let mut gone: Vec<&str> = c.deletes.iter().map(|(k, _)| k.as_str()).collect();
    gone.sort();
    assert_eq!(
        gone,
        vec![
            "/nomos/services/default/web/_nomad-task-a1-group-g-web-http",
            "/nomos/services/default/web/_nomad-task-a2-group-g-web-http",
            "/nomos/services/default/web/_nomad-task-a3-group-g-web-http",
        ]
    );
}
