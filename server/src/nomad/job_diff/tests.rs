//! Table tests of Nomad's job diff over small Nomad JSON jobs.

use serde_json::json;

use super::*;

/// A job of one group `web` with one task `server`, built on by the cases.
fn job() -> Value {
    json!({
        "ID": "shop",
        "Priority": 50,
        "Datacenters": ["dc1"],
        "Meta": {"owner": "ops"},
        "Version": 3,
        "Constraints": [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}],
        "TaskGroups": [{
            "Name": "web",
            "Count": 2,
            "RestartPolicy": {"Attempts": 2, "Mode": "fail"},
            "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http", "Value": 0}]}],
            "Services": [{"Name": "web", "PortLabel": "http", "Tags": ["a"]}],
            "Tasks": [{
                "Name": "server",
                "Driver": "docker",
                "Env": {"MODE": "slow"},
                "Config": {"image": "nginx", "args": ["1000"]},
                "Resources": {"CPU": 100, "MemoryMB": 64},
            }],
        }],
    })
}

/// `job()` with `edit` applied.
fn edited(edit: impl FnOnce(&mut Value)) -> Value {
    let mut j = job();
    edit(&mut j);
    j
}

fn diff(old: Option<&Value>, new: &Value) -> Value {
    serde_json::to_value(job_diff("shop", old, new, &IndexMap::new())).unwrap()
}

/// An object with fields and no objects, for comparing.
fn obj(kind: &str, name: &str, fields: Vec<Value>) -> Value {
    json!({"Type": kind, "Name": name, "Fields": fields, "Objects": null})
}

/// `{Type, Name, Old, New}` of a field, for comparing.
fn f(kind: &str, name: &str, old: &str, new: &str) -> Value {
    json!({"Type": kind, "Name": name, "Old": old, "New": new, "Annotations": null})
}

#[test]
fn diff_table() {
    struct Case {
        name: &'static str,
        new: Value,
        /// A JSON pointer into the diff and what must be there.
        want: Vec<(&'static str, Value)>,
    }
    let task = "/TaskGroups/0/Tasks/0";
    let cases = vec![
        Case {
            name: "unchanged",
            new: job(),
            want: vec![
                ("/Type", json!("None")),
                ("/Fields", Value::Null),
                ("/Objects", Value::Null),
                ("/TaskGroups/0/Type", json!("None")),
                ("/TaskGroups/0/Tasks/0/Type", json!("None")),
            ],
        },
        Case {
            name: "bookkeeping is not a change",
            new: edited(|j| j["Version"] = json!(4)),
            want: vec![("/Type", json!("None"))],
        },
        Case {
            name: "edited job field",
            new: edited(|j| j["Priority"] = json!(70)),
            want: vec![
                ("/Type", json!("Edited")),
                ("/Fields/0", f("Edited", "Priority", "50", "70")),
                ("/TaskGroups/0/Type", json!("None")),
            ],
        },
        Case {
            name: "added and deleted map entries are fields",
            new: edited(|j| j["Meta"] = json!({"team": "web"})),
            want: vec![
                ("/Fields/0", f("Deleted", "Meta[owner]", "ops", "")),
                ("/Fields/1", f("Added", "Meta[team]", "", "web")),
            ],
        },
        Case {
            name: "added group field",
            new: edited(|j| j["TaskGroups"][0]["ShutdownDelay"] = json!(5_000_000_000u64)),
            want: vec![
                ("/TaskGroups/0/Type", json!("Edited")),
                (
                    "/TaskGroups/0/Fields/0",
                    f("Added", "ShutdownDelay", "", "5000000000"),
                ),
            ],
        },
        Case {
            name: "nested block is an object",
            new: edited(|j| j["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] = json!(200)),
            want: vec![
                ("/Type", json!("Edited")),
                ("/TaskGroups/0/Type", json!("Edited")),
                ("/TaskGroups/0/Fields", Value::Null),
                (
                    task,
                    json!({
                        "Type": "Edited", "Name": "server", "Fields": null, "Annotations": null,
                        "Objects": [obj("Edited", "Resources", vec![f("Edited", "CPU", "100", "200")])],
                    }),
                ),
            ],
        },
        Case {
            name: "config is flattened into one object",
            new: edited(|j| j["TaskGroups"][0]["Tasks"][0]["Config"]["args"] = json!(["2000"])),
            want: vec![(
                "/TaskGroups/0/Tasks/0/Objects/0",
                obj(
                    "Edited",
                    "Config",
                    vec![f("Edited", "args[0]", "1000", "2000")],
                ),
            )],
        },
        Case {
            name: "env entries are task fields",
            new: edited(|j| j["TaskGroups"][0]["Tasks"][0]["Env"]["MODE"] = json!("fast")),
            want: vec![(
                "/TaskGroups/0/Tasks/0/Fields/0",
                f("Edited", "Env[MODE]", "slow", "fast"),
            )],
        },
        Case {
            name: "deleted block",
            new: edited(|j| {
                j["TaskGroups"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("RestartPolicy");
            }),
            want: vec![(
                "/TaskGroups/0/Objects/0",
                obj(
                    "Deleted",
                    "RestartPolicy",
                    vec![
                        f("Deleted", "Attempts", "2", ""),
                        f("Deleted", "Mode", "fail", ""),
                    ],
                ),
            )],
        },
        Case {
            name: "list element added",
            new: edited(|j| {
                j["Constraints"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"LTarget": "${node.class}", "RTarget": "big", "Operand": "="}));
            }),
            want: vec![
                ("/Objects/0/Type", json!("Added")),
                ("/Objects/0/Name", json!("Constraint")),
                (
                    "/Objects/0/Fields/0",
                    f("Added", "LTarget", "", "${node.class}"),
                ),
                ("/Objects/1", Value::Null),
            ],
        },
        Case {
            name: "an edited unnamed element is deleted and added",
            new: edited(|j| j["Constraints"][0]["RTarget"] = json!("darwin")),
            want: vec![
                ("/Objects/0/Type", json!("Deleted")),
                ("/Objects/1/Type", json!("Added")),
                ("/Objects/1/Fields/2", f("Added", "RTarget", "", "darwin")),
            ],
        },
        Case {
            name: "named elements are matched by name",
            new: edited(|j| j["TaskGroups"][0]["Services"][0]["Tags"] = json!(["a", "b"])),
            want: vec![(
                "/TaskGroups/0/Objects/0",
                json!({
                    "Type": "Edited", "Name": "Service", "Fields": null,
                    "Objects": [obj("Added", "Tags", vec![f("Added", "Tags", "", "b")])],
                }),
            )],
        },
        Case {
            name: "an edited network is deleted and added, with its ports inside",
            new: edited(|j| {
                j["TaskGroups"][0]["Networks"][0]["DynamicPorts"][0]["To"] = json!(8080)
            }),
            want: vec![
                ("/TaskGroups/0/Objects/0/Type", json!("Deleted")),
                ("/TaskGroups/0/Objects/1/Name", json!("Network")),
                ("/TaskGroups/0/Objects/1/Type", json!("Added")),
                (
                    "/TaskGroups/0/Objects/1/Fields/0",
                    f("Added", "Mode", "", "host"),
                ),
                (
                    "/TaskGroups/0/Objects/1/Objects/0/Name",
                    json!("Dynamic Port"),
                ),
                (
                    "/TaskGroups/0/Objects/1/Objects/0/Fields",
                    json!([
                        f("Added", "Label", "", "http"),
                        f("Added", "To", "", "8080"),
                        f("Added", "Value", "", "0")
                    ]),
                ),
            ],
        },
        Case {
            name: "datacenters are a set",
            new: edited(|j| j["Datacenters"] = json!(["dc2"])),
            want: vec![(
                "/Objects/0",
                obj(
                    "Edited",
                    "Datacenters",
                    vec![
                        f("Added", "Datacenters", "", "dc2"),
                        f("Deleted", "Datacenters", "dc1", ""),
                    ],
                ),
            )],
        },
        Case {
            name: "groups and tasks added and deleted, listed by name",
            new: edited(|j| {
                let mut api = j["TaskGroups"][0].clone();
                api["Name"] = json!("api");
                j["TaskGroups"] = json!([api]);
            }),
            want: vec![
                ("/Type", json!("Edited")),
                ("/TaskGroups/0/Name", json!("api")),
                ("/TaskGroups/0/Type", json!("Added")),
                ("/TaskGroups/0/Fields/0", f("Added", "Count", "", "2")),
                ("/TaskGroups/0/Tasks/0/Type", json!("Added")),
                (
                    "/TaskGroups/0/Tasks/0/Fields/0",
                    f("Added", "Driver", "", "docker"),
                ),
                ("/TaskGroups/1/Name", json!("web")),
                ("/TaskGroups/1/Type", json!("Deleted")),
                ("/TaskGroups/1/Objects/0/Type", json!("Deleted")),
            ],
        },
    ];
    let old = job();
    for case in cases {
        let got = diff(Some(&old), &case.new);
        for (pointer, want) in &case.want {
            let found = got.pointer(pointer).cloned().unwrap_or(Value::Null);
            assert_eq!(&found, want, "case {:?} at {pointer}: {got:#}", case.name);
        }
    }
}

#[test]
fn a_new_job_is_added_throughout_with_the_planned_updates() {
    let updates = IndexMap::from([(
        "web".to_string(),
        IndexMap::from([("create".to_string(), 2u64)]),
    )]);
    let d = serde_json::to_value(job_diff("shop", None, &job(), &updates)).unwrap();
    assert_eq!(d["Type"], "Added");
    assert_eq!(d["ID"], "shop");
    assert!(d["Fields"]
        .as_array()
        .unwrap()
        .contains(&f("Added", "Priority", "", "50")));
    let group = &d["TaskGroups"][0];
    assert_eq!(
        (&group["Type"], &group["Updates"]),
        (&json!("Added"), &json!({"create": 2}))
    );
    let task = &group["Tasks"][0];
    assert_eq!(task["Type"], "Added");
    let names: Vec<&str> = task["Objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Config", "Resources"]);
    assert_eq!(task["Objects"][0]["Type"], "Added");
}

#[test]
fn a_group_only_the_updates_name_is_listed_unchanged() {
    let updates = IndexMap::from([(
        "gone".to_string(),
        IndexMap::from([("destroy".to_string(), 1u64)]),
    )]);
    let d = serde_json::to_value(job_diff("shop", Some(&job()), &job(), &updates)).unwrap();
    assert_eq!(d["Type"], "None");
    assert_eq!(d["TaskGroups"][1]["Name"], "gone");
    assert_eq!(d["TaskGroups"][1]["Type"], "None");
    assert_eq!(d["TaskGroups"][1]["Updates"]["destroy"], 1);
    assert!(d["TaskGroups"][0]["Updates"].is_null());
}
