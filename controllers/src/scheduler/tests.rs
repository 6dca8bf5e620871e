//! Table tests per feasibility and ranking rule, and property tests: never over-commits a node,
//! same input gives the same plan.

use nomos_api::{
    Affinity, Constraint, DriverInfo, Job, JobType, Network, Node, NodeSpec, Port, Resources,
    Spread, SpreadTarget, Task, TaskGroup,
};
use proptest::prelude::*;

use super::*;

pub(crate) fn node(name: &str) -> Node {
    nomos_api::build::node(name)
        .cores(4)
        .memory(8192)
        .address("10.0.0.1")
        .ports(20000, 32000)
        .attribute("os.version", "12.4")
        .build()
}

pub(crate) fn group(name: &str, count: u32, cpu: u32, mem: u32) -> TaskGroup {
    TaskGroup {
        name: name.into(),
        count,
        tasks: vec![Task {
            name: "t".into(),
            driver: "raw_exec".into(),
            resources: Resources {
                cpu,
                memory_mb: mem,
                memory_max_mb: i64::from(mem * 4),
                ..Default::default()
            },
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub(crate) fn job(id: &str, groups: Vec<TaskGroup>) -> Job {
    let built = groups
        .into_iter()
        .fold(nomos_api::build::job(id), |j, g| j.with_group(g));
    built.build()
}

fn snap(nodes: Vec<Node>) -> ClusterSnapshot {
    let mut s = ClusterSnapshot::new();
    for n in nodes {
        s.upsert_node(n, None, true);
    }
    s
}

fn reqs(n: usize) -> Vec<PlacementRequest> {
    (0..n)
        .map(|i| PlacementRequest {
            alloc_id: format!("a{i}"),
            penalty_node: None,
        })
        .collect()
}

fn place_one(s: &mut ClusterSnapshot, j: &Job) -> Result<Placement, PlacementFailure> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = format!(
        "one-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let r = PlacementRequest {
        alloc_id: id,
        penalty_node: None,
    };
    place(s, j, &j.groups[0], &[r], &SchedulerConfig::default(), 7).remove(0)
}

fn with_constraint(attr: &str, op: &str, value: &str) -> Job {
    let mut j = job("j", vec![group("g", 1, 100, 100)]);
    j.constraints.push(Constraint {
        attribute: attr.into(),
        operator: op.into(),
        value: value.into(),
    });
    j
}

#[test]
fn constraint_operators_filter_nodes_as_nomad_does() {
    // (attribute, operator, value, feasible on the default node)
    let table: &[(&str, &str, &str, bool)] = &[
        ("${attr.kernel.name}", "=", "linux", true),
        ("${attr.kernel.name}", "=", "windows", false),
        ("${attr.kernel.name}", "", "linux", true),
        ("${attr.kernel.name}", "!=", "windows", true),
        ("${attr.kernel.name}", "!=", "linux", false),
        ("${attr.os.version}", ">", "9", true),
        ("${attr.os.version}", ">", "12.4", false),
        ("${attr.os.version}", ">=", "12.4", true),
        ("${attr.os.version}", "<", "13", true),
        ("${attr.os.version}", "<=", "12", false),
        ("${attr.kernel.name}", "regexp", "^lin", true),
        ("${attr.kernel.name}", "regexp", "^win", false),
        ("${attr.os.version}", "version", ">= 12.0, < 13", true),
        ("${attr.os.version}", "version", "~> 11.0", false),
        ("${attr.os.version}", "semver", ">= 12.4.0", true),
        ("${meta.tags}", "set_contains", "a,b", true),
        ("${meta.tags}", "set_contains", "a,z", false),
        ("${meta.tags}", "set_contains_any", "z,b", true),
        ("${meta.tags}", "set_contains_any", "y,z", false),
        ("${meta.tags}", "is_set", "", true),
        ("${meta.missing}", "is_set", "", false),
        ("${meta.missing}", "is_not_set", "", true),
        ("${attr.kernel.name}", "is_not_set", "", false),
        ("${node.unique.name}", "=", "n1", true),
        ("${node.datacenter}", "=", "dc2", false),
        ("${node.class}", "=", "", true),
        ("${meta.missing}", "=", "x", false),
        ("${attr.kernel.name}", "bogus-operator", "x", false),
    ];
    for (attr, op, value, want) in table {
        let mut n = node("n1");
        n.meta.insert("tags".into(), "a, b,c".into());
        let mut s = snap(vec![n]);
        let got = place_one(&mut s, &with_constraint(attr, op, value)).is_ok();
        assert_eq!(got, *want, "{attr} {op} {value}");
    }
}

#[test]
fn failure_summary_counts_nodes_per_reason() {
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(node(&format!("lin{i}")));
    }
    for i in 0..2 {
        let mut n = node(&format!("win{i}"));
        n.attributes.insert("kernel.name".into(), "windows".into());
        n.resources.memory_mb = 64;
        nodes.push(n);
    }
    let mut s = snap(nodes);
    let mut j = with_constraint("${attr.kernel.name}", "=", "windows");
    j.groups[0].tasks[0].resources.memory_mb = 128;
    let f = place_one(&mut s, &j).unwrap_err();
    assert_eq!(
        f.summary(),
        "3 nodes excluded by constraint ${attr.kernel.name} = windows, 2 exhausted memory"
    );
    assert_eq!(f.nodes_evaluated, 5);
}

#[test]
fn datacenters_with_globs_and_node_pool_filter() {
    let mut a = node("a");
    a.datacenter = "eu-west".into();
    let mut b = node("b");
    b.datacenter = "us-east".into();
    b.node_pool = "gpu".into();
    let cases: &[(&[&str], &str, Option<&str>)] = &[
        (&["eu-*"], "default", Some("a")),
        (&["us-east"], "default", None),
        (&["us-east"], "gpu", Some("b")),
        (&["*"], "all", Some("a")),
        (&["ap-*"], "default", None),
    ];
    for (dcs, pool, want) in cases {
        let mut s = snap(vec![a.clone(), b.clone()]);
        let mut j = job("j", vec![group("g", 1, 100, 100)]);
        j.datacenters = dcs.iter().map(|d| d.to_string()).collect();
        j.node_pool = pool.to_string();
        let got = place_one(&mut s, &j).ok().map(|p| p.node);
        if *pool == "all" {
            assert!(got.is_some());
        } else {
            assert_eq!(got.as_deref(), *want, "{dcs:?} {pool}");
        }
    }
}

#[test]
fn missing_or_unhealthy_driver_excludes_node() {
    let mut n = node("n1");
    n.drivers.insert(
        "docker".into(),
        DriverInfo {
            detected: true,
            healthy: false,
            ..Default::default()
        },
    );
    let mut s = snap(vec![n]);
    let mut j = job("j", vec![group("g", 1, 100, 100)]);
    j.groups[0].tasks[0].driver = "docker".into();
    let f = place_one(&mut s, &j).unwrap_err();
    assert_eq!(f.summary(), "1 node excluded by missing driver docker");
}

#[test]
fn a_qemu_vm_asking_for_kvm_is_placed_only_where_kvm_guests_run() {
    let qemu = DriverInfo {
        detected: true,
        healthy: true,
        ..Default::default()
    };
    let mut plain = node("plain");
    plain.drivers.insert("qemu".into(), qemu.clone());
    let mut kvm = node("kvm");
    kvm.drivers.insert("qemu".into(), qemu);
    kvm.attributes.insert("driver.qemu.kvm".into(), "1".into());
    let vm = |accelerator: &str| {
        let mut j = job("vm", vec![group("g", 1, 100, 100)]);
        let t = &mut j.groups[0].tasks[0];
        t.driver = "qemu".into();
        t.config.insert("accelerator".into(), accelerator.into());
        j
    };
    let f = place_one(&mut snap(vec![plain.clone()]), &vm("kvm")).unwrap_err();
    assert_eq!(
        f.summary(),
        "1 node excluded by constraint ${attr.driver.qemu.kvm} = 1"
    );
    let p = place_one(&mut snap(vec![plain.clone(), kvm]), &vm("kvm")).unwrap();
    assert_eq!(p.node, "kvm");
    assert!(place_one(&mut snap(vec![plain]), &vm("tcg")).is_ok());
}

#[test]
fn a_group_needing_a_host_volume_goes_only_where_it_is_published_writable() {
    let with_volume = |name: &str, read_only: bool| {
        let mut n = node(name);
        let volume = nomos_api::HostVolume {
            path: "/srv/pg".into(),
            read_only,
        };
        n.host_volumes.insert("pg".into(), volume);
        n
    };
    let mut j = job("j", vec![group("g", 1, 100, 100)]);
    let request = nomos_api::VolumeRequest {
        name: "data".into(),
        volume_type: "host".into(),
        source: "pg".into(),
        read_only: false,
    };
    j.groups[0].volumes.insert("data".into(), request);

    let mut s = snap(vec![
        node("bare"),
        with_volume("ro", true),
        with_volume("rw", false),
    ]);
    for _ in 0..5 {
        assert_eq!(place_one(&mut s, &j).unwrap().node, "rw");
    }
    let mut s = snap(vec![node("bare"), with_volume("ro", true)]);
    let f = place_one(&mut s, &j).unwrap_err();
    assert_eq!(
        f.summary(),
        "2 nodes excluded by missing compatible host volumes"
    );

    j.groups[0].volumes["data"].read_only = true;
    assert_eq!(place_one(&mut s, &j).unwrap().node, "ro");
}

#[test]
fn a_node_registered_again_is_placed_on_by_its_new_datacenter_pool_and_drivers() {
    // What placement reads of a node is copied into its state: a new registration must
    // replace it, or a node would keep being chosen for what it no longer is.
    let mut j = job("j", vec![group("g", 1, 100, 100)]);
    j.datacenters = vec!["eu-*".into()];
    j.node_pool = "gpu".into();
    j.groups[0].tasks[0].driver = "docker".into();
    let docker = |healthy: bool| DriverInfo {
        detected: true,
        healthy,
        ..Default::default()
    };
    let mut n = node("n1");
    n.datacenter = "eu-west".into();
    n.node_pool = "gpu".into();
    n.drivers.insert("docker".into(), docker(true));
    let mut s = snap(vec![n.clone()]);
    assert_eq!(place_one(&mut s, &j).expect("fits").node, "n1");

    let cases: Vec<(Node, &str)> = vec![
        (
            Node {
                datacenter: "us-east".into(),
                ..n.clone()
            },
            "1 node excluded by datacenter (job wants eu-*)",
        ),
        (
            Node {
                node_pool: String::new(),
                ..n.clone()
            },
            "1 node excluded by node pool (job wants gpu)",
        ),
        (
            {
                let mut m = n.clone();
                m.drivers.insert("docker".into(), docker(false));
                m
            },
            "1 node excluded by missing driver docker",
        ),
    ];
    for (changed, why) in cases {
        let mut s = snap(vec![n.clone()]);
        s.upsert_node(changed, None, true);
        assert_eq!(place_one(&mut s, &j).unwrap_err().summary(), why);
        // And back again.
        s.upsert_node(n.clone(), None, true);
        assert!(place_one(&mut s, &j).is_ok(), "{why}");
    }
}

#[test]
fn drivers_past_the_bitmask_and_unknown_drivers_are_still_checked() {
    // More distinct driver names than NodeFacts has bits: the ones past it are looked up in
    // the registration.
    let mut crowded = node("crowded");
    for k in 0..(snapshot::DRIVER_BITS + 8) {
        crowded.drivers.insert(
            format!("driver-{k:03}"),
            DriverInfo {
                detected: true,
                healthy: k % 2 == 0,
                ..Default::default()
            },
        );
    }
    let mut s = snap(vec![crowded]);
    let mut j = job("j", vec![group("g", 1, 10, 10)]);
    for (driver, fits) in [
        ("driver-000", true),
        ("driver-001", false),
        ("driver-070", true),
        ("driver-071", false),
        ("never-seen", false),
    ] {
        j.groups[0].tasks[0].driver = driver.into();
        let got = place_one(&mut s, &j);
        assert_eq!(got.is_ok(), fits, "{driver}: {got:?}");
        if !fits {
            assert_eq!(
                got.unwrap_err().summary(),
                format!("1 node excluded by missing driver {driver}")
            );
        }
    }
}

#[test]
fn a_port_set_is_a_set() {
    let mut ports = PortSet::default();
    for p in [30000, 20000, 25000, 20000] {
        ports.insert(p);
    }
    assert_eq!(ports.iter().collect::<Vec<_>>(), [20000, 25000, 30000]);
    assert!(ports.contains(&25000) && !ports.contains(&25001));
    assert!(ports.remove(&25000));
    assert!(!ports.remove(&25000));
    assert_eq!(ports.len(), 2);
}

#[test]
fn ineligible_draining_and_down_nodes_are_excluded() {
    let mut s = ClusterSnapshot::new();
    s.upsert_node(
        node("a"),
        Some(&NodeSpec {
            eligible: Some(false),
            drain: None,
        }),
        true,
    );
    s.upsert_node(
        node("b"),
        Some(&NodeSpec {
            eligible: None,
            drain: Some(Default::default()),
        }),
        true,
    );
    s.upsert_node(node("c"), None, false);
    let f = place_one(&mut s, &job("j", vec![group("g", 1, 1, 1)])).unwrap_err();
    assert_eq!(f.summary(), "1 node excluded by node draining, 1 node excluded by node ineligible, 1 node excluded by node not ready");
    s.set_node_ready("c", true);
    assert_eq!(
        place_one(&mut s, &job("j", vec![group("g", 1, 1, 1)]))
            .unwrap()
            .node,
        "c"
    );
}

#[test]
fn cpu_and_memory_use_reserved_amounts_not_memory_max() {
    let mut n = node("n1");
    n.resources.reserved_memory_mb = 192; // 8000 usable
    let mut s = snap(vec![n]);
    // memory_max is 4x memory in the builder: it must not count.
    let j = job("j", vec![group("g", 5, 100, 2000)]);
    let res = place(
        &mut s,
        &j,
        &j.groups[0],
        &reqs(5),
        &SchedulerConfig::default(),
        1,
    );
    assert_eq!(res.iter().filter(|r| r.is_ok()).count(), 4);
    assert_eq!(res[4].as_ref().unwrap_err().summary(), "1 exhausted memory");
    let j = job("k", vec![group("g", 1, 4001, 1)]);
    assert_eq!(
        place_one(&mut s, &j).unwrap_err().summary(),
        "1 exhausted cpu"
    );
}

#[test]
fn cores_are_converted_with_the_nodes_mhz_per_core() {
    let mut s = snap(vec![node("n1")]);
    let mut j = job("j", vec![group("g", 1, 0, 10)]);
    j.groups[0].tasks[0].resources.cores = 2;
    let p = place_one(&mut s, &j).unwrap();
    assert_eq!(p.cpu, 2000);
    j.id = "j2".into();
    j.groups[0].tasks[0].resources.cores = 3;
    assert_eq!(
        place_one(&mut s, &j).unwrap_err().summary(),
        "1 exhausted cpu"
    );
}

fn with_ports(statics: &[u16], dynamics: usize) -> Job {
    let mut g = group("g", 1, 1, 1);
    let mut ports: Vec<Port> = statics
        .iter()
        .map(|p| Port {
            label: format!("s{p}"),
            static_port: *p,
            ..Default::default()
        })
        .collect();
    ports.extend((0..dynamics).map(|i| Port {
        label: format!("d{i}"),
        ..Default::default()
    }));
    g.networks.push(Network {
        mode: "host".into(),
        ports,
        ..Default::default()
    });
    job("j", vec![g])
}

#[test]
fn static_ports_collide_and_dynamic_ports_come_from_the_nodes_range() {
    let mut n = node("n1");
    n.resources.min_dynamic_port = 30000;
    n.resources.max_dynamic_port = 30002;
    n.resources.reserved_ports = vec![22];
    let mut s = snap(vec![n]);
    let p = place_one(&mut s, &with_ports(&[8080], 2)).unwrap();
    assert_eq!(p.ports[0].value, 8080);
    assert!(p.ports[1..]
        .iter()
        .all(|p| (30000..=30002).contains(&p.value)));
    assert_ne!(p.ports[1].value, p.ports[2].value);
    let f = place_one(&mut s, &with_ports(&[8080], 0)).unwrap_err();
    assert_eq!(f.summary(), "1 node excluded by port collision on 8080");
    assert_eq!(
        place_one(&mut s, &with_ports(&[22], 0))
            .unwrap_err()
            .summary(),
        "1 node excluded by port collision on 22"
    );
    assert!(place_one(&mut s, &with_ports(&[], 1)).is_ok());
    assert_eq!(
        place_one(&mut s, &with_ports(&[], 1))
            .unwrap_err()
            .summary(),
        "1 exhausted dynamic ports"
    );
}

#[test]
fn distinct_hosts_puts_each_allocation_on_its_own_node() {
    let mut s = snap(vec![node("a"), node("b"), node("c")]);
    let mut j = job("j", vec![group("g", 4, 1, 1)]);
    j.constraints.push(Constraint {
        operator: "distinct_hosts".into(),
        value: "true".into(),
        ..Default::default()
    });
    let res = place(
        &mut s,
        &j,
        &j.groups[0],
        &reqs(4),
        &SchedulerConfig::default(),
        3,
    );
    let mut nodes: Vec<_> = res
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|p| p.node.clone())
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec!["a", "b", "c"]);
    assert_eq!(
        res[3].as_ref().unwrap_err().summary(),
        "3 nodes excluded by constraint distinct_hosts"
    );
}

#[test]
fn distinct_property_limits_allocations_per_value() {
    let mut nodes = Vec::new();
    for (name, rack) in [("a", "r1"), ("b", "r1"), ("c", "r2")] {
        let mut n = node(name);
        n.meta.insert("rack".into(), rack.into());
        nodes.push(n);
    }
    let mut s = snap(nodes);
    let mut j = job("j", vec![group("g", 3, 1, 1)]);
    j.groups[0].constraints.push(Constraint {
        attribute: "${meta.rack}".into(),
        operator: "distinct_property".into(),
        value: "1".into(),
    });
    let res = place(
        &mut s,
        &j,
        &j.groups[0],
        &reqs(3),
        &SchedulerConfig::default(),
        3,
    );
    assert_eq!(res.iter().filter(|r| r.is_ok()).count(), 2);
    assert!(res[2]
        .as_ref()
        .unwrap_err()
        .summary()
        .contains("distinct_property ${meta.rack}"));
}

#[test]
fn binpack_fills_a_used_node_and_spread_prefers_empty_ones() {
    for (algorithm, want_same) in [(Algorithm::Binpack, true), (Algorithm::Spread, false)] {
        let mut s = snap(vec![node("a"), node("b")]);
        s.add_alloc(AllocUsage {
            id: "x".into(),
            job: "other/x".into(),
            group: "g".into(),
            node: "a".into(),
            cpu: 2000,
            memory_mb: 4000,
            ports: Box::default(),
            devices: Box::default(),
        });
        let j = job("j", vec![group("g", 1, 100, 100)]);
        let p = place(
            &mut s,
            &j,
            &j.groups[0],
            &reqs(1),
            &SchedulerConfig { algorithm },
            9,
        )
        .remove(0)
        .unwrap();
        assert_eq!(p.node == "a", want_same, "{algorithm:?}");
    }
}

#[test]
fn job_anti_affinity_spreads_a_group_over_equal_nodes() {
    let mut s = snap(vec![node("a"), node("b")]);
    let j = job("j", vec![group("g", 2, 100, 100)]);
    let res = place(
        &mut s,
        &j,
        &j.groups[0],
        &reqs(2),
        &SchedulerConfig::default(),
        5,
    );
    let a = res[0].as_ref().unwrap();
    let b = res[1].as_ref().unwrap();
    assert_ne!(a.node, b.node);
}

#[test]
fn affinity_weights_attract_and_repel() {
    let mut n1 = node("a");
    n1.node_class = "fast".into();
    let n2 = node("b");
    for (weight, want) in [(100, "a"), (-100, "b")] {
        let mut s = snap(vec![n1.clone(), n2.clone()]);
        let mut j = job("j", vec![group("g", 1, 100, 100)]);
        j.affinities.push(Affinity {
            attribute: "${node.class}".into(),
            operator: "=".into(),
            value: "fast".into(),
            weight,
        });
        assert_eq!(place_one(&mut s, &j).unwrap().node, want, "weight {weight}");
    }
}

#[test]
fn spread_targets_split_allocations_by_percentage() {
    let mut nodes = Vec::new();
    for i in 0..20 {
        let mut n = node(&format!("n{i}"));
        n.datacenter = if i < 10 { "east".into() } else { "west".into() };
        nodes.push(n);
    }
    let mut s = snap(nodes);
    let mut j = job("j", vec![group("g", 10, 10, 10)]);
    j.spreads.push(Spread {
        attribute: "${node.datacenter}".into(),
        weight: 100,
        targets: vec![
            SpreadTarget {
                value: "east".into(),
                percent: 70,
            },
            SpreadTarget {
                value: "west".into(),
                percent: 30,
            },
        ],
    });
    let res = place(
        &mut s,
        &j,
        &j.groups[0],
        &reqs(10),
        &SchedulerConfig::default(),
        11,
    );
    let east = res
        .iter()
        .filter(|r| s.node(&r.as_ref().unwrap().node).unwrap().node.datacenter == "east")
        .count();
    assert_eq!(east, 7);
}

#[test]
fn reschedule_penalty_avoids_the_failed_node() {
    let mut s = snap(vec![node("a"), node("b")]);
    s.add_alloc(AllocUsage {
        id: "x".into(),
        job: "o/x".into(),
        group: "g".into(),
        node: "a".into(),
        cpu: 2000,
        memory_mb: 4000,
        ports: Box::default(),
        devices: Box::default(),
    });
    let j = job("j", vec![group("g", 1, 100, 100)]);
    let r = PlacementRequest {
        alloc_id: "r".into(),
        penalty_node: Some("a".into()),
    };
    assert_eq!(
        place(
            &mut s,
            &j,
            &j.groups[0],
            &[r],
            &SchedulerConfig::default(),
            1
        )[0]
        .as_ref()
        .unwrap()
        .node,
        "b"
    );
}

#[test]
fn services_score_only_about_log2_n_candidates() {
    let nodes: Vec<Node> = (0..1024).map(|i| node(&format!("n{i}"))).collect();
    let mut s = snap(nodes);
    let j = job("j", vec![group("g", 1, 1, 1)]);
    let p = place_one(&mut s, &j).unwrap();
    assert_eq!(p.nodes_evaluated, 11);
    let mut b = job("b", vec![group("g", 1, 1, 1)]);
    b.job_type = JobType::Batch;
    assert_eq!(place_one(&mut s, &b).unwrap().nodes_evaluated, 2);
}

#[test]
fn removing_an_allocation_releases_its_resources() {
    let mut s = snap(vec![node("a")]);
    let j = job("j", vec![group("g", 1, 4000, 100)]);
    let p = place_one(&mut s, &j).unwrap();
    assert!(place_one(&mut s, &job("k", vec![group("g", 1, 4000, 100)])).is_err());
    s.remove_alloc(&p.alloc_id);
    assert!(place_one(&mut s, &job("k", vec![group("g", 1, 4000, 100)])).is_ok());
}

/// (node cpu, node memory) per node; (count, cpu, memory) per group; seed.
type Cluster = (Vec<(u32, u32)>, Vec<(u32, u32, u32)>, u64);

fn arb_cluster() -> impl Strategy<Value = Cluster> {
    (
        prop::collection::vec((500u32..4000, 256u32..4096), 1..12),
        prop::collection::vec((1u32..6, 50u32..1500, 32u32..2048), 1..6),
        any::<u64>(),
    )
}

proptest! {
    #[test]
    fn never_over_commits_a_node((nodes, groups, seed) in arb_cluster()) {
        let mut s = ClusterSnapshot::new();
        for (i, (cpu, mem)) in nodes.iter().enumerate() {
            let mut n = node(&format!("n{i}"));
            n.resources.cpu_mhz = *cpu;
            n.resources.memory_mb = *mem;
            n.resources.min_dynamic_port = 20000;
            n.resources.max_dynamic_port = 20003;
            s.upsert_node(n, None, true);
        }
        for (gi, (count, cpu, mem)) in groups.iter().enumerate() {
            let mut j = with_ports(&[], 1);
            j.id = format!("j{gi}");
            j.groups[0].count = *count;
            j.groups[0].tasks[0].resources.cpu = *cpu;
            j.groups[0].tasks[0].resources.memory_mb = *mem;
            let rs: Vec<PlacementRequest> = (0..*count).map(|i| PlacementRequest { alloc_id: format!("j{gi}-{i}"), penalty_node: None }).collect();
            place(&mut s, &j, &j.groups[0], &rs, &SchedulerConfig::default(), seed);
        }
        for st in s.nodes() {
            prop_assert!(st.used_cpu <= st.cpu_capacity());
            prop_assert!(st.used_memory_mb <= st.memory_capacity());
            prop_assert_eq!(st.used_ports.len() as u32, st.alloc_count, "ports are unique per node");
        }
    }

    #[test]
    fn same_input_gives_the_same_plan((nodes, groups, seed) in arb_cluster()) {
        let run = || {
            let mut s = ClusterSnapshot::new();
            for (i, (cpu, mem)) in nodes.iter().enumerate() {
                let mut n = node(&format!("n{i}"));
                n.resources.cpu_mhz = *cpu;
                n.resources.memory_mb = *mem;
                s.upsert_node(n, None, true);
            }
            let mut out = Vec::new();
            for (gi, (count, cpu, mem)) in groups.iter().enumerate() {
                let j = job(&format!("j{gi}"), vec![group("g", *count, *cpu, *mem)]);
                let rs: Vec<PlacementRequest> = (0..*count).map(|i| PlacementRequest { alloc_id: format!("{gi}-{i}"), penalty_node: None }).collect();
                out.extend(place(&mut s, &j, &j.groups[0], &rs, &SchedulerConfig::default(), seed).into_iter().map(|r| r.map(|p| p.node).map_err(|f| f.summary())));
            }
            out
        };
        prop_assert_eq!(run(), run());
    }
}
