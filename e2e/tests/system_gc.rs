//! End to end with real agents under `nctl server`: a system job follows the nodes (a node that
//! joins later gets its allocation within seconds, one made ineligible loses it), and
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
        .map(|a| {
            a["allocation"]["node"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
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
        .filter(|a| a["allocation"]["node"] == "s2")
        .collect();
    let s2_alloc = on_s2[0]["allocation"]["id"].as_str().unwrap().to_string();

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
    let kept_alloc = c.running("keep")[0]["allocation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok(&["stop", "once"]);
    c.ok(&["system", "gc"]);
    c.wait_for(
        "the stopped job and its allocations collected",
        Duration::from_secs(30),
        |c| {
            let jobs = c.json(&["get", "jobs", "-o", "json"]);
            let ids: Vec<&str> = jobs
                .as_array()
                .map(|j| j.iter().filter_map(|j| j["id"].as_str()).collect())
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
    assert_eq!(r[0]["allocation"]["id"], kept_alloc.as_str());
    assert!(!pids_of_alloc(&kept_alloc).is_empty());
}
