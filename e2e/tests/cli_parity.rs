//! `nctl` verbs as Nomad's CLI behaves, against a real `nctl dev`: `node drain --wait` ends
//! only when every allocation on the node has stopped; `apply` and `plan` take `--var` and
//! `--var-file` (repeatable, relative to the working directory); `-n` / `NOMOS_NAMESPACE`
//! place a job that names no namespace and scope `get allocs`, `get deployments`, `status`,
//! `plan` and `stop`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// A service job whose task takes about three seconds to stop after its kill signal.
fn slow_to_stop(id: &str) -> String {
    format!(
        r#"job "{id}" {{
  datacenters = ["*"]

  group "g" {{
    task "slow" {{
      driver       = "raw_exec"
      kill_timeout = "20s"
      config {{
        command = "/bin/sh"
        args    = ["-c", "trap 'sleep 3; exit 0' INT TERM; while true; do sleep 0.2; done"]
      }}
      resources {{
        cpu    = 10
        memory = 10
      }}
    }}
  }}
}}
"#
    )
}

#[test]
fn drain_wait_ends_only_when_the_last_allocation_has_stopped() {
    let c = Cluster::start("drain-wait");
    let job = c.write_file("slow.hcl", &slow_to_stop("slow"));
    c.ok(&["apply", "-f", &job]);
    c.wait_for("the task to run", Duration::from_secs(60), |c| {
        let n = c.running("slow").len();
        (n == 1, format!("{n} running"))
    });
    // One node: the allocation has nowhere to go, so the deadline stops it.
    let out = c.ok(&["node", "drain", &c.node, "--deadline", "1s", "--wait"]);
    // Looked at the moment --wait returned, without waiting.
    let allocs = c.allocs("slow");
    let live: Vec<&Value> = allocs
        .iter()
        .filter(|a| {
            !matches!(
                a["ClientStatus"].as_str(),
                Some("complete" | "failed" | "lost")
            )
        })
        .collect();
    assert!(
        live.is_empty(),
        "--wait returned while allocations still run: {live:?}\n{out}"
    );
    assert!(
        out.contains("all allocations on node have stopped"),
        "{out}"
    );
}

/// A service job `vars` whose count and `greeting` meta come from input variables.
fn var_job() -> String {
    let job = loop_job(
        "vars",
        "service",
        "count = var.count\n    meta {\n      greeting = var.greeting\n    }",
    );
    format!("variable \"greeting\" {{}}\nvariable \"count\" {{\n  type = number\n}}\n\n{job}")
}

/// How many allocations of `job` in namespace `ns` run (`get allocs -n NS`).
fn running_in(c: &Cluster, ns: &str, job: &str) -> usize {
    c.json(&["get", "allocs", "-n", ns, "--job", job, "-o", "json"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["ClientStatus"] == "running")
        .count()
}

#[test]
fn apply_and_plan_take_var_files_from_the_working_directory_and_the_namespace_flag() {
    let mut c = Cluster::start("cli-ns-vars");
    c.ok(&["namespace", "apply", "team-a"]);
    std::fs::create_dir_all(c.dir.path().join("jobs")).unwrap();
    c.write_file("jobs/vars.hcl", &var_job());
    // A decoy beside the job file: var files are read from the working directory (the
    // cluster's temp dir, where every nctl runs).
    c.write_file("jobs/common.vars", "count = 9\ngreeting = \"decoy\"\n");
    c.write_file("common.vars", "count = 1\ngreeting = \"hello\"\n");
    c.write_file("two.vars", "count = 2\n");

    // plan: a new job in team-a would place two allocations (exit 1: something changes).
    // Every run reads the job file with the var file from the working directory.
    let with_vars = |head: &[&'static str], tail: &[&'static str]| -> Vec<&'static str> {
        let common = ["-f", "jobs/vars.hcl", "--var-file", "common.vars"];
        [head, &common[..], tail].concat()
    };
    let plan = c.nctl(&with_vars(
        &["plan", "-n", "team-a"],
        &["-var-file", "two.vars"],
    ));
    let plan_out = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(
        plan.status.code(),
        Some(1),
        "{plan_out}\n{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(plan_out.contains("2 create"), "{plan_out}");

    // apply with NOMOS_NAMESPACE (the env form of -n) and a --var over the files.
    c.env.push(("NOMOS_NAMESPACE".into(), "team-a".into()));
    c.ok(&with_vars(
        &["apply"],
        &["--var-file", "two.vars", "--var", "greeting=from-flag"],
    ));
    c.env.pop();

    c.wait_for("two allocations in team-a", Duration::from_secs(60), |c| {
        let n = running_in(c, "team-a", "vars");
        (n == 2, format!("{n} running"))
    });
    // The default namespace has none of them.
    let default = c.json(&["get", "allocs", "--job", "vars", "-o", "json"]);
    assert_eq!(default.as_array().map(Vec::len), Some(0), "{default}");
    // The job spec has what the files and the flag said.
    let job = c.json(&["status", "-n", "team-a", "vars", "-o", "json"]);
    let text = job.to_string();
    assert!(text.contains("from-flag"), "{text}");
    // An update through `-n` (the flag form) makes a deployment, listed under -n only.
    c.ok(&with_vars(
        &["apply", "-n", "team-a"],
        &["--var", "greeting=second"],
    ));
    c.wait_for("a deployment in team-a", Duration::from_secs(60), |c| {
        let deps = c.json(&["get", "deployments", "-n", "team-a", "-o", "json"]);
        let n = deps.as_array().map_or(0, Vec::len);
        (n > 0, deps.to_string())
    });
    let none = c.json(&["get", "deployments", "-o", "json"]);
    assert_eq!(none.as_array().map(Vec::len), Some(0), "{none}");
    // And stop.
    c.ok(&["stop", "-n", "team-a", "vars"]);
    c.wait_for("the allocations to stop", Duration::from_secs(60), |c| {
        let n = running_in(c, "team-a", "vars");
        (n == 0, format!("{n} running"))
    });
}
