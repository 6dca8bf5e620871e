//! End to end with real agents under `nctl server`: a system job follows the nodes (a node that
//! joins later gets its allocation within seconds, one made ineligible loses it), a new version
//! rolls node by node within `update.max_parallel`, a job no node can fit says why in
//! `nctl status`, a sysbatch job runs once per node to completion (and on a node that joins), and
//! `nctl system gc` collects a stopped job with its finished allocations while nothing running is
//! touched.

use std::time::Duration;

use serde_json::Value;

mod common;

use common::*;

fn nodes_running(c: &Cluster, job: &str) -> Vec<String> {
    let mut n: Vec<String> = c
        .running(job)
        .iter()
        .map(|a| a["NodeName"].as_str().unwrap_or_default().to_string())
        .collect();
    n.sort();
    n
}

#[test]
fn a_system_job_follows_nodes_joining_and_leaving_eligibility() {
    let c = Cluster::start_server("system");
    let _first = c.start_agent("s1");
    c.wait_nodes_ready(&["s1"]);
    let file = c.write_file("everywhere.hcl", &system_job("everywhere"));
    c.ok(&["apply", "-f", &file]);
    c.wait_for("the system job on s1", Duration::from_secs(60), |c| {
        let n = nodes_running(c, "everywhere");
        (n == ["s1"], format!("{n:?}"))
    });

    let _second = c.start_agent("s2");
    c.wait_for(
        "the system job on the node that joined",
        Duration::from_secs(60),
        |c| {
            let n = nodes_running(c, "everywhere");
            (n == ["s1", "s2"], format!("{n:?}"))
        },
    );
    let on_s2: Vec<Value> = c
        .running("everywhere")
        .into_iter()
        .filter(|a| a["NodeName"] == "s2")
        .collect();
    let s2_alloc = on_s2[0]["ID"].as_str().unwrap().to_string();

    c.ok(&["node", "eligibility", "s2", "--disable"]);
    c.wait_for(
        "the ineligible node to lose its system allocation",
        Duration::from_secs(60),
        |c| {
            let n = nodes_running(c, "everywhere");
            (n == ["s1"], format!("{n:?}"))
        },
    );
    c.wait_for("its task to stop", Duration::from_secs(30), |_| {
        let p = pids_of_alloc(&s2_alloc);
        (p.is_empty(), format!("{p:?}"))
    });
    c.ok(&["stop", "everywhere"]);
}

/// A system job that rolls one node at a time, each replacement healthy after 3s running; a
/// new `version` (group meta) replaces every copy.
fn rolling_system_job(version: &str) -> String {
    let settings = format!(
        r#"update {{
      max_parallel     = 1
      min_healthy_time = "3s"
      health_check     = "task_states"
    }}

    meta {{
      version = "{version}"
    }}"#
    );
    loop_job("rolling", "system", &settings)
}

fn job_version(a: &Value) -> u64 {
    a["JobVersion"].as_u64().unwrap_or(0)
}

#[test]
fn a_system_update_rolls_node_by_node_and_a_job_that_fits_nowhere_says_why() {
    let c = Cluster::start_server("sysroll");
    let _agents: Vec<Agent> = ["r1", "r2", "r3"]
        .iter()
        .map(|n| c.start_agent(n))
        .collect();
    c.wait_nodes_ready(&["r1", "r2", "r3"]);
    let file = c.write_file("rolling.hcl", &rolling_system_job("1"));
    c.ok(&["apply", "-f", &file]);
    c.wait_for("version 0 on every node", Duration::from_secs(60), |c| {
        let n = nodes_running(c, "rolling");
        (n == ["r1", "r2", "r3"], format!("{n:?}"))
    });

    let file = c.write_file("rolling.hcl", &rolling_system_job("2"));
    c.ok(&["apply", "-f", &file]);
    // Until every node runs version 1, polled: never fewer than two nodes running a copy (one
    // node at a time is replaced).
    let mut fewest_nodes_running = 3;
    c.wait_for("version 1 on every node", Duration::from_secs(90), |c| {
        let allocs = c.allocs("rolling");
        let running = nodes_running(c, "rolling");
        fewest_nodes_running = fewest_nodes_running.min(running.len());
        let live_new: Vec<&Value> = allocs
            .iter()
            .filter(|a| job_version(a) == 1 && a["DesiredStatus"] == "run")
            .collect();
        let done = live_new.len() == 3 && live_new.iter().all(|a| a["ClientStatus"] == "running");
        (done, format!("{allocs:?}"))
    });
    assert!(
        fewest_nodes_running >= 2,
        "max_parallel = 1: one node at a time, but saw only {fewest_nodes_running} running"
    );
    // Each replacement was placed only once the one before had run for min_healthy_time (3s).
    let mut created: Vec<i64> = c
        .allocs("rolling")
        .iter()
        .filter(|a| job_version(a) == 1)
        .map(|a| a["CreateTime"].as_i64().unwrap_or(0) / 1_000_000)
        .collect();
    created.sort();
    assert_eq!(created.len(), 3, "one replacement per node");
    for pair in created.windows(2) {
        assert!(
            pair[1] - pair[0] >= 3_000,
            "a replacement was placed {} ms after the previous one, before it could be healthy: {created:?}",
            pair[1] - pair[0]
        );
    }
    let old_running: Vec<Value> = c
        .running("rolling")
        .into_iter()
        .filter(|a| job_version(a) == 0)
        .collect();
    assert!(old_running.is_empty(), "{old_running:?}");

    // 100 TB of memory: no node fits, and the status says so per node.
    let huge = system_job("huge").replace("memory = 10", "memory = 100000000");
    let file = c.write_file("huge.hcl", &huge);
    c.ok(&["apply", "-f", &file]);
    c.wait_for(
        "nctl status to explain the placement failure",
        Duration::from_secs(30),
        |c| {
            let out = c.ok(&["status", "huge"]);
            (
                out.contains("Placement Failure")
                    && ["r1", "r2", "r3"].iter().all(|n| out.contains(n))
                    && out.to_lowercase().contains("memory"),
                out,
            )
        },
    );
    assert!(
        c.allocs("huge").is_empty(),
        "nothing placed for a job that fits nowhere"
    );
}

const ONCE_PER_NODE: &str = r#"job "once-per-node" {
  datacenters = ["*"]
  type        = "sysbatch"

  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo ran"]
      }
      resources {
        cpu    = 10
        memory = 10
      }
    }
  }
}
"#;

#[test]
fn a_sysbatch_job_runs_once_per_node_to_completion() {
    let c = Cluster::start_server("sysbatch");
    let _first: Vec<Agent> = ["b1", "b2"].iter().map(|n| c.start_agent(n)).collect();
    c.wait_nodes_ready(&["b1", "b2"]);
    let file = c.write_file("once-per-node.hcl", ONCE_PER_NODE);
    c.ok(&["apply", "-f", &file]);
    let complete_on = |c: &Cluster| -> Vec<String> {
        let mut n: Vec<String> = c
            .allocs("once-per-node")
            .iter()
            .filter(|a| a["ClientStatus"] == "complete")
            .map(|a| a["NodeName"].as_str().unwrap_or("").to_string())
            .collect();
        n.sort();
        n
    };
    c.wait_for("one complete run per node", Duration::from_secs(60), |c| {
        let n = complete_on(c);
        (n == ["b1", "b2"], format!("{n:?}"))
    });
    // It is not run again: a few seconds later there are still exactly two allocations.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(c.allocs("once-per-node").len(), 2);

    let _late = c.start_agent("b3");
    c.wait_for(
        "a run on the node that joined",
        Duration::from_secs(60),
        |c| {
            let n = complete_on(c);
            (n == ["b1", "b2", "b3"], format!("{n:?}"))
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(c.allocs("once-per-node").len(), 3, "once per node, no more");
    let out = c.ok(&["status", "once-per-node"]);
    assert!(out.contains("sysbatch"), "{out}");
}

const ONCE: &str = r#"job "once" {
  datacenters = ["*"]
  type        = "batch"

  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
      resources {
        cpu    = 10
        memory = 10
      }
    }
  }
}
"#;

#[test]
fn system_gc_collects_a_stopped_job_and_leaves_what_runs() {
    let c = Cluster::start_server("gc");
    let _agent = c.start_agent("g1");
    c.wait_nodes_ready(&["g1"]);
    let keep = c.write_file("keep.hcl", &system_job("keep"));
    c.ok(&["apply", "-f", &keep]);
    let once = c.write_file("once.hcl", ONCE);
    c.ok(&["apply", "-f", &once, "--wait", "--timeout", "60"]);
    c.wait_for("keep running", Duration::from_secs(60), |c| {
        let r = c.running("keep");
        (r.len() == 1, format!("{r:?}"))
    });
    let kept_alloc = c.running("keep")[0]["ID"].as_str().unwrap().to_string();
    c.ok(&["stop", "once"]);
    c.ok(&["system", "gc"]);
    c.wait_for(
        "the stopped job and its allocations collected",
        Duration::from_secs(30),
        |c| {
            let jobs = c.json(&["get", "jobs", "-o", "json"]);
            let ids: Vec<&str> = jobs
                .as_array()
                .map(|j| j.iter().filter_map(|j| j["ID"].as_str()).collect())
                .unwrap_or_default();
            let allocs = c.allocs("once");
            (
                !ids.contains(&"once") && allocs.is_empty(),
                format!("jobs {ids:?}, allocations of once: {allocs:?}"),
            )
        },
    );
    let r = c.running("keep");
    assert_eq!(r.len(), 1, "the running job is untouched");
    assert_eq!(r[0]["ID"], kept_alloc.as_str());
    assert!(!pids_of_alloc(&kept_alloc).is_empty());
}
