//! Devices in placement: which requests a node's GPUs serve (name, constraints with units,
//! affinities), exclusive assignment across placements, the failure reasons, and the property
//! that no instance is ever held by two live allocations.

use nomos_api::{Affinity, Constraint, Device, DeviceInstance, Job, Node, NodeDeviceGroup};
use proptest::prelude::*;

use super::devices::{assign, DeviceAsk, DeviceRefusal};
use super::tests::{group, job, node};
use super::*;

fn gpus(model: &str, memory: &str, ids: &[&str]) -> NodeDeviceGroup {
    let mut attributes = indexmap::IndexMap::new();
    attributes.insert("memory".to_string(), memory.to_string());
    attributes.insert("driver_version".to_string(), "550.54.15".to_string());
    NodeDeviceGroup {
        vendor: "nvidia".into(),
        device_type: "gpu".into(),
        name: model.into(),
        instances: ids
            .iter()
            .map(|id| DeviceInstance {
                id: id.to_string(),
                healthy: true,
                pci_bus_id: String::new(),
            })
            .collect(),
        attributes,
    }
}

fn request(name: &str, count: u32) -> Device {
    Device {
        name: name.into(),
        count,
        ..Default::default()
    }
}

fn constrained(name: &str, attribute: &str, operator: &str, value: &str) -> Device {
    Device {
        constraints: vec![Constraint {
            attribute: attribute.into(),
            operator: operator.into(),
            value: value.into(),
        }],
        ..request(name, 1)
    }
}

fn gpu_node(name: &str, groups: Vec<NodeDeviceGroup>) -> Node {
    let mut n = node(name);
    n.resources.devices = groups;
    n
}

fn gpu_job(id: &str, count: u32, device: Device) -> Job {
    let mut g = group("g", count, 100, 100);
    g.tasks[0].resources.devices.push(device);
    job(id, vec![g])
}

/// Instance ids as a table test writes them.
type Ids = &'static [&'static str];

fn held(ids: &[&str]) -> Vec<Box<str>> {
    ids.iter().map(|id| Box::from(*id)).collect()
}

/// The model the request was served from and the ids it got, or why not.
fn served(
    device: Device,
    node_groups: &[NodeDeviceGroup],
    taken: &[&str],
) -> Result<(String, Vec<String>), DeviceRefusal> {
    let ask = DeviceAsk::new("t", &device);
    let got = assign(&[ask], node_groups, &held(taken))?;
    let d = &got.devices[0];
    Ok((d.name.clone(), d.device_ids.clone()))
}

#[test]
fn a_request_names_a_type_a_vendor_and_type_or_a_model() {
    let node_groups = [
        gpus("Tesla T4", "15360 MiB", &["t4-a", "t4-b"]),
        gpus("A100", "40960 MiB", &["a100-a"]),
    ];
    let missing = Err(DeviceRefusal::Missing);
    type Case = (
        &'static str,
        u32,
        Result<(&'static str, Ids), DeviceRefusal>,
    );
    let cases: &[Case] = &[
        ("gpu", 1, Ok(("Tesla T4", &["t4-a"]))),
        ("nvidia/gpu", 2, Ok(("Tesla T4", &["t4-a", "t4-b"]))),
        ("nvidia/gpu/A100", 1, Ok(("A100", &["a100-a"]))),
        ("nvidia/gpu/Tesla T4", 0, Ok(("Tesla T4", &["t4-a"]))),
        // No single model has three.
        ("nvidia/gpu", 3, missing),
        ("nvidia/gpu/A100", 2, missing),
        ("amd/gpu", 1, missing),
        ("fpga", 1, missing),
        ("nvidia/gpu/H100", 1, missing),
        ("", 1, missing),
    ];
    for (name, count, want) in cases {
        let got = served(request(name, *count), &node_groups, &[]);
        let want =
            want.map(|(m, ids)| (m.to_string(), ids.iter().map(|s| s.to_string()).collect()));
        assert_eq!(got, want, "{name} x{count}");
    }
}

#[test]
fn device_constraints_read_model_vendor_type_and_attributes_with_units() {
    let node_groups = [gpus("Tesla T4", "15360 MiB", &["t4-a"])];
    let cases: &[(&str, &str, &str, bool)] = &[
        ("${device.attr.memory}", ">=", "8 GiB", true),
        ("${device.attr.memory}", ">=", "15 GiB", true),
        ("${device.attr.memory}", ">", "15 GiB", false),
        ("${device.attr.memory}", ">=", "16 GiB", false),
        ("${device.attr.memory}", "=", "15360 MiB", true),
        ("${device.attr.memory}", "<", "17000 MB", true),
        ("${device.attr.memory}", "<", "16000 MB", false),
        ("${device.attr.memory}", ">=", "10000", true),
        ("${device.attr.driver_version}", "version", ">= 550.0", true),
        ("${device.model}", "=", "Tesla T4", true),
        ("${device.model}", "!=", "Tesla T4", false),
        ("${device.model}", "regexp", "^Tesla", true),
        ("${device.vendor}", "=", "nvidia", true),
        ("${device.type}", "=", "gpu", true),
        ("${device.ids}", "set_contains", "t4-a", true),
        // An attribute the device does not have, or a node attribute, never matches.
        ("${device.attr.power}", ">=", "100 W", false),
        ("${attr.kernel.name}", "=", "linux", false),
        ("${device.attr.memory}", "is_set", "", true),
        ("${device.attr.power}", "is_not_set", "", true),
    ];
    for (attribute, operator, value, fits) in cases {
        let got = served(
            constrained("nvidia/gpu", attribute, operator, value),
            &node_groups,
            &[],
        );
        assert_eq!(
            got.is_ok(),
            *fits,
            "{attribute} {operator} {value}: {got:?}"
        );
        if !fits {
            assert_eq!(got, Err(DeviceRefusal::Missing));
        }
    }
}

#[test]
fn instances_held_by_live_allocations_are_not_given_again() {
    let node_groups = [gpus("Tesla T4", "15360 MiB", &["t4-a", "t4-b"])];
    let cases: &[(Ids, u32, Result<Ids, DeviceRefusal>)] = &[
        (&[], 1, Ok(&["t4-a"])),
        (&["t4-a"], 1, Ok(&["t4-b"])),
        (&["t4-b"], 1, Ok(&["t4-a"])),
        (&["t4-a"], 2, Err(DeviceRefusal::Exhausted)),
        (&["t4-a", "t4-b"], 1, Err(DeviceRefusal::Exhausted)),
        // Held ids the node does not have change nothing.
        (&["elsewhere"], 2, Ok(&["t4-a", "t4-b"])),
    ];
    for (taken, count, want) in cases {
        let got = served(request("nvidia/gpu", *count), &node_groups, taken).map(|(_, ids)| ids);
        let want = want.map(|ids| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "held {taken:?}, asking {count}");
    }
    // Two tasks of one allocation never share an instance.
    let asks = [
        DeviceAsk::new("a", &request("nvidia/gpu", 1)),
        DeviceAsk::new("b", &request("nvidia/gpu", 1)),
    ];
    let both = assign(&asks, &node_groups, &[]).unwrap();
    let ids: Vec<&str> = both.instance_ids().collect();
    assert_eq!(ids, ["t4-a", "t4-b"]);
    assert_eq!(both.devices[1].task, "b");
    let three = [asks[0].clone(), asks[1].clone(), asks[0].clone()];
    assert_eq!(
        assign(&three, &node_groups, &[]),
        Err(DeviceRefusal::Exhausted)
    );
}

#[test]
fn unhealthy_instances_are_never_given() {
    let mut g = gpus("Tesla T4", "15360 MiB", &["t4-a", "t4-b"]);
    g.instances[0].healthy = false;
    assert_eq!(
        served(request("gpu", 1), std::slice::from_ref(&g), &[]),
        Ok(("Tesla T4".into(), vec!["t4-b".into()]))
    );
    assert_eq!(
        served(request("gpu", 2), &[g], &[]),
        Err(DeviceRefusal::Missing)
    );
}

#[test]
fn device_affinities_choose_the_preferred_model_and_node() {
    let mut wants_big = request("nvidia/gpu", 1);
    wants_big.affinities.push(Affinity {
        attribute: "${device.attr.memory}".into(),
        operator: ">=".into(),
        value: "32 GiB".into(),
        weight: 100,
    });
    let node_groups = [
        gpus("Tesla T4", "15360 MiB", &["t4-a"]),
        gpus("A100", "40960 MiB", &["a100-a"]),
    ];
    let ask = DeviceAsk::new("t", &wants_big);
    let got = assign(std::slice::from_ref(&ask), &node_groups, &[]).unwrap();
    assert_eq!(got.devices[0].name, "A100");
    assert_eq!(got.affinity, Some(1.0));
    // The big one taken: the small one still serves, with no affinity.
    let got = assign(&[ask], &node_groups, &held(&["a100-a"])).unwrap();
    assert_eq!(got.devices[0].name, "Tesla T4");
    assert_eq!(got.affinity, Some(0.0));

    // Across nodes: the node with the preferred model wins, whatever the seed.
    for seed in 0..20 {
        let mut s = ClusterSnapshot::new();
        s.upsert_node(
            gpu_node("small", vec![gpus("Tesla T4", "15360 MiB", &["t4-a"])]),
            None,
            true,
        );
        s.upsert_node(
            gpu_node("big", vec![gpus("A100", "40960 MiB", &["a100-a"])]),
            None,
            true,
        );
        s.upsert_node(node("plain"), None, true);
        let j = gpu_job("j", 1, wants_big.clone());
        let r = PlacementRequest {
            alloc_id: "a".into(),
            penalty_node: None,
        };
        let placed = place(
            &mut s,
            &j,
            &j.groups[0],
            &[r],
            &SchedulerConfig::default(),
            seed,
        );
        assert_eq!(placed[0].as_ref().unwrap().node, "big", "seed {seed}");
    }
}

fn requests(ids: &[&str]) -> Vec<PlacementRequest> {
    ids.iter()
        .map(|id| PlacementRequest {
            alloc_id: id.to_string(),
            penalty_node: None,
        })
        .collect()
}

#[test]
fn two_gpus_serve_two_allocations_and_the_third_waits_for_one_to_stop() {
    let mut s = ClusterSnapshot::new();
    s.upsert_node(
        gpu_node(
            "n1",
            vec![gpus("Tesla T4", "15360 MiB", &["gpu-1", "gpu-2"])],
        ),
        None,
        true,
    );
    let j = gpu_job("j", 3, request("nvidia/gpu", 1));
    let out = place(
        &mut s,
        &j,
        &j.groups[0],
        &requests(&["a0", "a1", "a2"]),
        &SchedulerConfig::default(),
        1,
    );
    let ids = |p: &Placement| p.devices[0].device_ids.clone();
    let first = out[0].as_ref().unwrap();
    let second = out[1].as_ref().unwrap();
    assert_eq!(first.devices[0].task, "t");
    assert_eq!(first.devices[0].vendor, "nvidia");
    assert_eq!(first.devices[0].name, "Tesla T4");
    assert_ne!(ids(first), ids(second));
    let failure = out[2].as_ref().unwrap_err();
    assert_eq!(failure.summary(), "1 exhausted devices");

    let freed = ids(first);
    s.remove_alloc("a0");
    let again = place(
        &mut s,
        &j,
        &j.groups[0],
        &requests(&["a3"]),
        &SchedulerConfig::default(),
        2,
    );
    assert_eq!(ids(again[0].as_ref().unwrap()), freed);
    assert_eq!(s.node("n1").unwrap().used_devices.len(), 2);
}

#[test]
fn a_node_without_matching_devices_is_excluded_as_missing_devices() {
    let mut s = ClusterSnapshot::new();
    s.upsert_node(node("plain"), None, true);
    s.upsert_node(
        gpu_node("t4", vec![gpus("Tesla T4", "15360 MiB", &["gpu-1"])]),
        None,
        true,
    );
    let not_a_t4 = constrained("nvidia/gpu", "${device.model}", "!=", "Tesla T4");
    let j = gpu_job("j", 1, not_a_t4);
    let out = place(
        &mut s,
        &j,
        &j.groups[0],
        &requests(&["a"]),
        &SchedulerConfig::default(),
        3,
    );
    assert_eq!(
        out[0].as_ref().unwrap_err().summary(),
        "2 nodes excluded by missing devices"
    );
    // A group without device blocks places as before, and holds nothing.
    let plain = job("p", vec![group("g", 1, 100, 100)]);
    let out = place(
        &mut s,
        &plain,
        &plain.groups[0],
        &requests(&["p"]),
        &SchedulerConfig::default(),
        3,
    );
    assert!(out[0].as_ref().unwrap().devices.is_empty());
}

#[test]
fn an_allocation_read_back_from_the_store_holds_its_devices() {
    let mut s = ClusterSnapshot::new();
    s.upsert_node(
        gpu_node(
            "n1",
            vec![gpus("Tesla T4", "15360 MiB", &["gpu-1", "gpu-2"])],
        ),
        None,
        true,
    );
    let alloc = nomos_api::Allocation {
        id: "old".into(),
        namespace: "default".into(),
        job_id: "other".into(),
        task_group: "g".into(),
        node: "n1".into(),
        devices: vec![nomos_api::AllocatedDevice {
            task: "t".into(),
            vendor: "nvidia".into(),
            device_type: "gpu".into(),
            name: "Tesla T4".into(),
            device_ids: vec!["gpu-1".into()],
        }],
        ..Default::default()
    };
    s.add_alloc(AllocUsage::of(&alloc, None, 0));
    let j = gpu_job("j", 2, request("nvidia/gpu", 1));
    let out = place(
        &mut s,
        &j,
        &j.groups[0],
        &requests(&["a", "b"]),
        &SchedulerConfig::default(),
        4,
    );
    assert_eq!(out[0].as_ref().unwrap().devices[0].device_ids, ["gpu-2"]);
    assert!(out[1].is_err());
}

/// No device instance is held by two live allocations, and every held instance is one its
/// node has.
fn no_instance_is_held_twice(s: &ClusterSnapshot, live: &[String]) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for id in live {
        let Some(u) = s.alloc(id) else { continue };
        let node = s.node(&u.node).ok_or("alloc on an unknown node")?;
        for d in u.devices.iter() {
            if seen.contains(&&**d) {
                return Err(format!("{d} held twice (again by {id})"));
            }
            seen.push(d);
            let exists = node
                .node
                .resources
                .devices
                .iter()
                .flat_map(|g| &g.instances)
                .any(|i| *i.id == **d);
            if !exists {
                return Err(format!("{id} holds {d}, which {} lacks", u.node));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random placements and stops over nodes with 0 to 3 GPUs, of jobs asking 1 or 2: after
    /// every step no instance is held by two live allocations, and a placement fails only
    /// when no node has enough free instances.
    #[test]
    fn no_instance_is_ever_held_by_two_live_allocations(
        gpus_per_node in proptest::collection::vec(0usize..4, 1..4),
        steps in proptest::collection::vec((any::<bool>(), 1u32..3, any::<u16>()), 1..40),
    ) {
        let mut s = ClusterSnapshot::new();
        for (n, count) in gpus_per_node.iter().enumerate() {
            let ids: Vec<String> = (0..*count).map(|i| format!("n{n}-gpu{i}")).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            s.upsert_node(gpu_node(&format!("n{n}"), vec![gpus("T4", "15360 MiB", &ids)]), None, true);
        }
        let mut live: Vec<String> = Vec::new();
        for (step, (stop, count, pick)) in steps.into_iter().enumerate() {
            if stop && !live.is_empty() {
                let id = live.remove(pick as usize % live.len());
                s.remove_alloc(&id);
            } else {
                let free_max = s.nodes().map(|n| {
                    let total: usize = n.node.resources.devices.iter().map(|g| g.instances.len()).sum();
                    total - n.used_devices.len()
                }).max().unwrap_or(0);
                let j = gpu_job(&format!("j{step}"), 1, request("nvidia/gpu", count));
                let id = format!("a{step}");
                let out = place(&mut s, &j, &j.groups[0], &requests(&[&id]), &SchedulerConfig::default(), u64::from(pick));
                match &out[0] {
                    Ok(p) => {
                        prop_assert_eq!(p.devices[0].device_ids.len(), count as usize);
                        live.push(id);
                    }
                    Err(f) => prop_assert!(free_max < count as usize, "refused with {} free: {}", free_max, f.summary()),
                }
            }
            if let Err(why) = no_instance_is_held_twice(&s, &live) {
                prop_assert!(false, "step {}: {}", step, why);
            }
        }
    }
}
