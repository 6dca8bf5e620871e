//! Job generators shared by the property tests: small jobs of every type with groups, tasks,
//! ports, constraints, affinities, meta and (for batch jobs) a cron.

use indexmap::IndexMap;
use nomos_api::*;
use proptest::prelude::*;

pub fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}"
}

pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,12}",
        Just("${attr.kernel.name}".to_string()),
        Just("ünïcødé ✓".to_string()),
        Just("line1\nline2".to_string()),
    ]
}

pub fn str_map() -> impl Strategy<Value = IndexMap<String, String>> {
    proptest::collection::vec((name(), text()), 0..3).prop_map(|v| v.into_iter().collect())
}

pub fn duration() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1u64..10_000_000_000_000u64]
}

pub fn constraint() -> impl Strategy<Value = Constraint> {
    (
        text(),
        prop::sample::select(validate::OPERATORS.to_vec()),
        "[a-z0-9.]{0,6}",
    )
        .prop_map(|(a, o, v)| Constraint {
            attribute: if a.is_empty() { "${attr.x}".into() } else { a },
            operator: if o == "regexp" { "=".into() } else { o.into() },
            value: v,
        })
}

pub fn affinity() -> impl Strategy<Value = Affinity> {
    (constraint(), prop_oneof![-100i32..=-1, 1i32..=100]).prop_map(|(c, w)| Affinity {
        attribute: c.attribute,
        operator: c.operator,
        value: c.value,
        weight: w,
    })
}

pub fn task(n: String) -> impl Strategy<Value = Task> {
    (
        prop::sample::select(vec!["docker", "exec", "raw_exec"]),
        str_map(),
        (0u32..4000, 10u32..4096, 0u32..2),
        duration(),
        prop::option::of(prop::sample::select(vec![
            "prestart",
            "poststart",
            "poststop",
        ])),
        proptest::collection::vec(constraint(), 0..2),
        any::<bool>(),
    )
        .prop_map(
            move |(driver, env, (cpu, mem, max_factor), kill, hook, constraints, sidecar)| Task {
                name: n.clone(),
                driver: driver.into(),
                config: [
                    ("command".to_string(), serde_json::json!("/bin/true")),
                    (
                        "n".to_string(),
                        serde_json::json!([1, 2.5, "x", {"k": null}]),
                    ),
                ]
                .into_iter()
                .collect(),
                env,
                resources: Resources {
                    cpu,
                    memory_mb: mem,
                    memory_max_mb: i64::from(mem * max_factor * 2),
                    ..Resources::default()
                },
                kill_timeout_ns: kill,
                lifecycle: hook.map(|h| Lifecycle {
                    hook: h.into(),
                    sidecar,
                }),
                constraints,
                ..Task::default()
            },
        )
}

pub fn group(n: String) -> impl Strategy<Value = TaskGroup> {
    (
        0u32..100,
        proptest::collection::btree_set(name(), 1..4),
        proptest::collection::btree_map(name(), 0u16..3, 0..3),
        proptest::collection::vec(affinity(), 0..2),
        str_map(),
    )
        .prop_flat_map(move |(count, task_names, ports, affinities, meta)| {
            let tasks: Vec<_> = task_names.into_iter().map(task).collect();
            let n = n.clone();
            (tasks, Just((count, ports, affinities, meta))).prop_map(
                move |(tasks, (count, ports, affinities, meta))| {
                    let ports: Vec<Port> = ports
                        .into_iter()
                        .enumerate()
                        .map(|(i, (label, kind))| Port {
                            label,
                            static_port: if kind == 0 { 20000 + i as u16 } else { 0 },
                            to: if kind == 2 { 8080 } else { 0 },
                            host_network: String::new(),
                        })
                        .collect();
                    TaskGroup {
                        name: n.clone(),
                        count,
                        networks: if ports.is_empty() {
                            vec![]
                        } else {
                            vec![Network {
                                ports,
                                ..Network::default()
                            }]
                        },
                        affinities: affinities.clone(),
                        meta: meta.clone(),
                        tasks: tasks.clone(),
                        ..TaskGroup::default()
                    }
                },
            )
        })
}

pub fn job() -> impl Strategy<Value = Job> {
    (
        name(),
        prop::sample::select(vec![
            JobType::Service,
            JobType::Batch,
            JobType::System,
            JobType::Sysbatch,
        ]),
        1i32..=100,
        proptest::collection::btree_set(name(), 1..3),
        str_map(),
        proptest::collection::vec(constraint(), 0..3),
        prop::option::of(prop::sample::select(vec![
            "*/5 * * * *",
            "0 3 * * 1-5",
            "@daily",
        ])),
    )
        .prop_flat_map(|(id, ty, priority, group_names, meta, constraints, cron)| {
            let groups: Vec<_> = group_names.into_iter().map(group).collect();
            (groups, Just((id, ty, priority, meta, constraints, cron))).prop_map(
                |(groups, (id, ty, priority, meta, constraints, cron))| Job {
                    id,
                    job_type: ty,
                    priority,
                    meta,
                    constraints,
                    // Only batch and sysbatch jobs may be periodic.
                    periodic: cron
                        .filter(|_| matches!(ty, JobType::Batch | JobType::Sysbatch))
                        .map(|c| Periodic {
                            crons: vec![c.into()],
                            ..Periodic::default()
                        }),
                    groups,
                    ..Job::default()
                },
            )
        })
}
