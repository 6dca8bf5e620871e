//! The environment every task gets: Nomad's `NOMAD_*` variables, the same under `NOMOS_*`, and
//! the task's own `env` block expanded against them. Pure: inputs in, a map out.

use std::collections::BTreeMap;
use std::path::Path;

use nomos_api::{Allocation, Job, Node, Task, TaskGroup};

use crate::interp::{interpolate, Vars};

/// Everything the environment is computed from.
#[derive(Debug, Clone, Copy)]
pub struct EnvInputs<'a> {
    pub alloc: &'a Allocation,
    pub job: &'a Job,
    pub group: &'a TaskGroup,
    pub task: &'a Task,
    pub node: &'a Node,
    /// As the task sees them (host paths for processes, `/alloc` and `/local` in containers).
    pub alloc_dir: &'a Path,
    pub task_dir: &'a Path,
    pub secrets_dir: &'a Path,
    /// Whether the task's ports are mapped (docker): `NOMAD_PORT_x` is then the `to` port.
    pub mapped_ports: bool,
}

/// Replaces what Nomad does not allow in variable names with `_`.
pub fn env_key(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The `NOMAD_*` variables (without `NOMOS_*` copies and the task's own env).
pub fn nomad_vars(i: &EnvInputs<'_>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        m.insert(format!("NOMAD_{k}"), v);
    };
    set("ALLOC_ID", i.alloc.id.clone());
    set("SHORT_ALLOC_ID", i.alloc.id.chars().take(8).collect());
    set("ALLOC_NAME", i.alloc.name.clone());
    set("ALLOC_INDEX", i.alloc.index.to_string());
    set("JOB_ID", i.job.id.clone());
    set(
        "JOB_NAME",
        if i.job.name.is_empty() {
            i.job.id.clone()
        } else {
            i.job.name.clone()
        },
    );
    set("GROUP_NAME", i.group.name.clone());
    set("TASK_NAME", i.task.name.clone());
    set(
        "NAMESPACE",
        if i.alloc.namespace.is_empty() {
            i.job.namespace.clone()
        } else {
            i.alloc.namespace.clone()
        },
    );
    set(
        "REGION",
        if i.job.region.is_empty() {
            "global".into()
        } else {
            i.job.region.clone()
        },
    );
    set("DC", i.node.datacenter.clone());
    set("ALLOC_DIR", i.alloc_dir.display().to_string());
    set("TASK_DIR", i.task_dir.display().to_string());
    set("SECRETS_DIR", i.secrets_dir.display().to_string());
    let r = &i.task.resources;
    let cpu = if r.cpu > 0 {
        r.cpu
    } else if r.cores > 0 && i.node.resources.cores > 0 {
        r.cores * (i.node.resources.cpu_mhz / i.node.resources.cores)
    } else {
        0
    };
    set("CPU_LIMIT", cpu.to_string());
    if r.cores > 0 {
        set("CPU_CORES", r.cores.to_string());
    }
    set("MEMORY_LIMIT", r.memory_mb.to_string());
    if r.memory_max_mb > 0 {
        set("MEMORY_MAX_LIMIT", r.memory_max_mb.to_string());
    }
    let meta = i
        .job
        .meta
        .iter()
        .chain(i.group.meta.iter())
        .chain(i.task.meta.iter());
    for (k, v) in meta {
        set(&format!("META_{}", env_key(k)), v.clone());
        set(
            &format!("META_{}", env_key(&k.to_ascii_uppercase())),
            v.clone(),
        );
    }
    for p in &i.alloc.ports {
        let label = env_key(&p.label);
        let ip = if p.host_ip.is_empty() {
            if i.node.address.is_empty() {
                "127.0.0.1".to_string()
            } else {
                i.node.address.clone()
            }
        } else {
            p.host_ip.clone()
        };
        let inner = if i.mapped_ports && p.to > 0 {
            p.to
        } else {
            p.value
        };
        set(&format!("PORT_{label}"), inner.to_string());
        set(&format!("HOST_PORT_{label}"), p.value.to_string());
        set(&format!("IP_{label}"), ip.clone());
        set(&format!("HOST_IP_{label}"), ip.clone());
        set(&format!("ADDR_{label}"), format!("{ip}:{}", p.value));
        set(&format!("HOST_ADDR_{label}"), format!("{ip}:{}", p.value));
        if p.to > 0 {
            set(&format!("ALLOC_PORT_{label}"), p.to.to_string());
        }
    }
    m
}

/// The interpolation variables for a task: its `NOMAD_*`/`NOMOS_*` environment, the node's
/// attributes, node values and meta.
pub fn vars_for(i: &EnvInputs<'_>, base_env: BTreeMap<String, String>) -> Vars {
    let mut node = indexmap::IndexMap::new();
    node.insert("unique.id".to_string(), i.node.id.clone());
    node.insert("unique.name".to_string(), i.node.name.clone());
    node.insert("datacenter".to_string(), i.node.datacenter.clone());
    node.insert("class".to_string(), i.node.node_class.clone());
    node.insert("pool".to_string(), i.node.node_pool.clone());
    node.insert(
        "region".to_string(),
        if i.job.region.is_empty() {
            "global".into()
        } else {
            i.job.region.clone()
        },
    );
    let mut task_meta = i.job.meta.clone();
    task_meta.extend(i.group.meta.clone());
    task_meta.extend(i.task.meta.clone());
    Vars {
        env: base_env,
        attrs: i.node.attributes.clone(),
        node,
        node_meta: i.node.meta.clone(),
        task_meta,
    }
}

/// The full environment of a task: `NOMAD_*`, `NOMOS_*`, then the task's `env` block with
/// `${...}` expanded (the task's own values win).
pub fn task_env(i: &EnvInputs<'_>) -> BTreeMap<String, String> {
    let nomad = nomad_vars(i);
    let mut env = nomad.clone();
    for (k, v) in &nomad {
        if let Some(rest) = k.strip_prefix("NOMAD_") {
            env.insert(format!("NOMOS_{rest}"), v.clone());
        }
    }
    let vars = vars_for(i, env.clone());
    for (k, v) in &i.task.env {
        env.insert(k.clone(), interpolate(v, &vars));
    }
    // Last: the devices the allocation holds are the ones the task may use.
    env.extend(device_env(i.alloc, &i.task.name));
    env
}

/// The variables that hand a task its device instances: `NVIDIA_VISIBLE_DEVICES` with the
/// UUIDs of its NVIDIA GPUs (read by the NVIDIA container runtime and by CUDA programs).
pub fn device_env(alloc: &Allocation, task: &str) -> BTreeMap<String, String> {
    let gpus: Vec<&str> = alloc
        .devices
        .iter()
        .filter(|d| d.task == task && d.vendor == "nvidia")
        .flat_map(|d| d.device_ids.iter().map(String::as_str))
        .collect();
    let mut env = BTreeMap::new();
    if !gpus.is_empty() {
        env.insert("NVIDIA_VISIBLE_DEVICES".to_string(), gpus.join(","));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::{build, AllocatedDevice, AllocatedPort};

    #[test]
    fn a_task_sees_only_the_gpus_its_allocation_holds_for_it() {
        let held = |task: &str, vendor: &str, ids: &[&str]| AllocatedDevice {
            task: task.into(),
            vendor: vendor.into(),
            device_type: "gpu".into(),
            name: "Tesla T4".into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
        };
        let alloc = Allocation {
            devices: vec![
                held("train", "nvidia", &["GPU-1", "GPU-2"]),
                held("train", "amd", &["amd-0"]),
                held("serve", "nvidia", &["GPU-3"]),
            ],
            ..Default::default()
        };
        let cases: &[(&str, Option<&str>)] = &[
            ("train", Some("GPU-1,GPU-2")),
            ("serve", Some("GPU-3")),
            ("sidecar", None),
        ];
        for (task, want) in cases {
            let env = device_env(&alloc, task);
            assert_eq!(
                env.get("NVIDIA_VISIBLE_DEVICES").map(String::as_str),
                *want,
                "{task}"
            );
        }
        // A task's own env cannot widen what it was given.
        let (mut alloc2, job, group, mut task, node) = fixture();
        alloc2.devices = vec![held("server", "nvidia", &["GPU-9"])];
        task.env
            .insert("NVIDIA_VISIBLE_DEVICES".into(), "all".into());
        let dir = Path::new("/d");
        let inputs = EnvInputs {
            alloc: &alloc2,
            job: &job,
            group: &group,
            task: &task,
            node: &node,
            alloc_dir: dir,
            task_dir: dir,
            secrets_dir: dir,
            mapped_ports: false,
        };
        assert_eq!(task_env(&inputs)["NVIDIA_VISIBLE_DEVICES"], "GPU-9");
    }

    fn fixture() -> (Allocation, Job, TaskGroup, Task, Node) {
        let alloc = Allocation {
            id: "0123456789abcdef".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            task_group: "front".into(),
            name: "web.front[2]".into(),
            index: 2,
            ports: vec![
                AllocatedPort {
                    label: "http".into(),
                    value: 23456,
                    to: 8080,
                    host_ip: "10.0.0.5".into(),
                },
                AllocatedPort {
                    label: "admin-ui".into(),
                    value: 23457,
                    to: 0,
                    host_ip: String::new(),
                },
            ],
            ..Default::default()
        };
        let mut job = build::job("web").build();
        job.meta.insert("team".into(), "ops".into());
        let group = TaskGroup {
            name: "front".into(),
            ..Default::default()
        };
        let mut task = build::task("server", 500, 256);
        task.resources.memory_max_mb = 512;
        task.env
            .insert("LISTEN".into(), "0.0.0.0:${NOMAD_PORT_http}".into());
        task.env.insert(
            "WHERE".into(),
            "${node.datacenter}/${attr.kernel.name}".into(),
        );
        let node = build::node("n1")
            .datacenter("dc1")
            .address("192.168.1.9")
            .attribute("kernel.name", "linux")
            .build();
        (alloc, job, group, task, node)
    }

    #[test]
    fn task_env_has_nomad_and_nomos_variables() {
        let (alloc, job, group, task, node) = fixture();
        let inputs = EnvInputs {
            alloc: &alloc,
            job: &job,
            group: &group,
            task: &task,
            node: &node,
            alloc_dir: Path::new("/d/allocs/a/alloc"),
            task_dir: Path::new("/d/allocs/a/server/local"),
            secrets_dir: Path::new("/d/allocs/a/server/secrets"),
            mapped_ports: false,
        };
        let env = task_env(&inputs);
        let want = [
            ("NOMAD_ALLOC_ID", "0123456789abcdef"),
            ("NOMAD_SHORT_ALLOC_ID", "01234567"),
            ("NOMAD_ALLOC_NAME", "web.front[2]"),
            ("NOMAD_ALLOC_INDEX", "2"),
            ("NOMAD_JOB_NAME", "web"),
            ("NOMAD_GROUP_NAME", "front"),
            ("NOMAD_TASK_NAME", "server"),
            ("NOMAD_DC", "dc1"),
            ("NOMAD_NAMESPACE", "default"),
            ("NOMAD_REGION", "global"),
            ("NOMAD_ALLOC_DIR", "/d/allocs/a/alloc"),
            ("NOMAD_TASK_DIR", "/d/allocs/a/server/local"),
            ("NOMAD_CPU_LIMIT", "500"),
            ("NOMAD_MEMORY_LIMIT", "256"),
            ("NOMAD_MEMORY_MAX_LIMIT", "512"),
            ("NOMAD_PORT_http", "23456"),
            ("NOMAD_HOST_PORT_http", "23456"),
            ("NOMAD_IP_http", "10.0.0.5"),
            ("NOMAD_ADDR_http", "10.0.0.5:23456"),
            ("NOMAD_PORT_admin_ui", "23457"),
            ("NOMAD_ADDR_admin_ui", "192.168.1.9:23457"),
            ("NOMAD_META_team", "ops"),
            ("NOMAD_META_TEAM", "ops"),
            ("NOMOS_ALLOC_ID", "0123456789abcdef"),
            ("NOMOS_PORT_http", "23456"),
            ("LISTEN", "0.0.0.0:23456"),
            ("WHERE", "dc1/linux"),
        ];
        for (k, v) in want {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
    }

    #[test]
    fn mapped_ports_expose_the_container_port() {
        let (alloc, job, group, task, node) = fixture();
        let inputs = EnvInputs {
            alloc: &alloc,
            job: &job,
            group: &group,
            task: &task,
            node: &node,
            alloc_dir: Path::new("/alloc"),
            task_dir: Path::new("/local"),
            secrets_dir: Path::new("/secrets"),
            mapped_ports: true,
        };
        let env = task_env(&inputs);
        assert_eq!(env["NOMAD_PORT_http"], "8080");
        assert_eq!(env["NOMAD_HOST_PORT_http"], "23456");
        assert_eq!(env["NOMAD_PORT_admin_ui"], "23457");
    }
}
