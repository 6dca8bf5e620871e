//! A job file with an error is refused with its position, and nothing running changes.

use std::time::Duration;

mod common;

use common::*;

const SLEEPER: &str = r#"job "sleeper" {
  datacenters = ["*"]

  group "main" {
    count = 1

    task "sleep" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "exec /bin/sleep 100000"]
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
fn an_invalid_job_file_is_refused_with_its_position_and_nothing_changes() {
    let c = Cluster::start("invalid");
    let file = c.write_file("sleeper.hcl", SLEEPER);
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    let before = c.running("sleeper");
    assert_eq!(before.len(), 1);
    let id = before[0]["allocation"]["id"].as_str().unwrap().to_string();
    let pids = pids_of_alloc(&id);
    assert!(!pids.is_empty(), "the task has a process");
    let index_before = c.json(&["status", "sleeper", "-o", "json"])["job"]["modify_index"].clone();

    // Line 5 misspells `count` and sets it to a string.
    let bad = SLEEPER.replace("count = 1", "cuont = \"two\"");
    let bad_file = c.write_file("bad.hcl", &bad);
    let out = c.nctl(&["apply", "-f", &bad_file]);
    assert_eq!(out.status.code(), Some(1), "apply of a broken file exits 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{bad_file}:5:5:")),
        "error names file:line:col: {stderr}"
    );
    assert!(stderr.contains("cuont"), "{stderr}");

    // The server refuses it too when sent directly (no local check in between).
    let out = c.nctl(&["plan", "-f", &bad_file]);
    assert_eq!(
        out.status.code(),
        Some(255),
        "plan of a broken file exits 255"
    );

    let after = c.json(&["status", "sleeper", "-o", "json"]);
    assert_eq!(
        after["job"]["modify_index"], index_before,
        "the spec was not rewritten"
    );
    let now = c.running("sleeper");
    assert_eq!(now.len(), 1);
    assert_eq!(
        now[0]["allocation"]["id"],
        id.as_str(),
        "the same allocation still runs"
    );
    assert_eq!(pids_of_alloc(&id), pids, "the same process still runs");

    c.ok(&["stop", "sleeper"]);
    c.wait_for(
        "the sleeper's process to end",
        Duration::from_secs(60),
        |_| {
            let p = pids_of_alloc(&id);
            (p.is_empty(), format!("{p:?}"))
        },
    );
}
