//! A batch job runs to completion, `--wait` reports it, and its output is readable.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const BATCH: &str = r#"
job "once" {
  datacenters = ["*"]
  type = "batch"

  group "work" {
    count = 1

    restart {
      attempts = 0
      mode     = "fail"
    }

    task "count" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "for i in 1 2 3; do echo step $i; done; echo done"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

#[test]
fn a_batch_job_runs_to_completion() {
    let c = Cluster::start("batch");
    let file = c.write_file("once.hcl", BATCH);
    let out = c.ok(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    assert!(out.contains("rollout complete"), "{out}");

    let allocs = c.allocs("once");
    assert_eq!(allocs.len(), 1, "{allocs:?}");
    assert_eq!(allocs[0]["ClientStatus"], "complete", "{:?}", allocs[0]);
    let id = allocs[0]["ID"].as_str().unwrap();
    let logs = c.ok(&["logs", &id[..8]]);
    assert_eq!(logs, "step 1\nstep 2\nstep 3\ndone\n");

    // The controller's summary follows the agent's report.
    c.wait_for(
        "the job summary to count one complete allocation",
        Duration::from_secs(30),
        |c| {
            let status = c.ok(&["status", "once"]);
            let row: Vec<String> = status
                .lines()
                .find(|l| l.starts_with("work "))
                .map(|l| l.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
            // Task Group, Queued, Starting, Running, Failed, Complete, Lost
            let done = status.contains("Type         = batch")
                && row == ["work", "0", "0", "0", "0", "1", "0"];
            (done, status)
        },
    );

    // The whole process's metrics (server and controllers, after real work) pass promtool.
    let port: u16 = c.http_addr.rsplit(':').next().unwrap().parse().unwrap();
    let metrics = http_get_path(port, "/metrics").expect("/metrics answers");
    assert!(metrics.contains("nomos_http_requests_total"), "{metrics}");
    promtool_check(&metrics);
}

#[test]
fn apply_wait_exits_non_zero_when_the_batch_job_fails() {
    let c = Cluster::start("batchfail");
    let failing = BATCH
        .replace("job \"once\"", "job \"broken\"")
        .replace("echo done", "echo oops >&2; exit 3");
    let file = c.write_file("broken.hcl", &failing);
    let out = c.nctl(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "apply --wait fails: {stderr}");
    assert!(stderr.contains("rollout failed"), "{stderr}");
    let allocs = c.allocs("broken");
    let failed = allocs
        .iter()
        .find(|a| a["ClientStatus"] == "failed")
        .expect("a failed allocation");
    let id = failed["ID"].as_str().unwrap();
    let err = c.ok(&["logs", "--stderr", &id[..8]]);
    assert_eq!(err, "oops\n");
}

const RENDER: &str = r#"
job "render" {
  datacenters = ["*"]
  type = "batch"

  parameterized {
    payload       = "required"
    meta_required = ["scene"]
  }

  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }

    task "t" {
      driver = "raw_exec"
      dispatch_payload {
        file = "input.txt"
      }
      config {
        command = "/bin/sh"
        args    = ["-c", "echo scene=${NOMAD_META_scene}; cat local/input.txt"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

/// A parameterized job places nothing until dispatched; each dispatch runs once with its
/// payload in the task's `local/` and its meta in the environment; a second dispatch with the
/// same idempotency token runs nothing more.
#[test]
fn a_dispatched_job_runs_once_per_idempotency_token_with_its_payload() {
    let c = Cluster::start("dispatch");
    let file = c.write_file("render.hcl", RENDER);
    c.ok(&["apply", "-f", &file]);
    let payload = c.write_file("payload.txt", "frame one\n");

    let first = c.ok(&[
        "job",
        "dispatch",
        "render",
        &payload,
        "--meta",
        "scene=intro",
        "--idempotency-token",
        "take-1",
    ]);
    let child = first
        .lines()
        .find_map(|l| l.strip_prefix("Dispatched Job ID = "))
        .unwrap_or_else(|| panic!("no child id in {first:?}"))
        .to_string();
    let again = c.ok(&[
        "job",
        "dispatch",
        "render",
        &payload,
        "--meta",
        "scene=intro",
        "--idempotency-token",
        "take-1",
    ]);
    assert!(
        again.contains(&format!("\"{child}\" already dispatched")),
        "{again}"
    );

    c.wait_for("the child to complete", Duration::from_secs(120), |c| {
        let allocs = c.allocs(&child);
        let done = allocs.len() == 1 && allocs[0]["ClientStatus"] == "complete";
        (done, format!("{allocs:?}"))
    });
    let allocs = c.allocs(&child);
    let id = allocs[0]["ID"].as_str().unwrap();
    assert_eq!(c.ok(&["logs", &id[..8]]), "scene=intro\nframe one\n");
    assert!(c.allocs("render").is_empty(), "the parent places nothing");

    // A dispatch the job refuses (no payload, which it requires) fails with Nomad's reason.
    let out = c.nctl(&["job", "dispatch", "render", "--meta", "scene=x"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Payload is required"), "{stderr}");
    let jobs = c.json(&["get", "jobs", "-o", "json"]);
    let children: Vec<&Value> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["ParentID"] == "render")
        .collect();
    assert_eq!(children.len(), 1, "one child for one token: {children:?}");
}
