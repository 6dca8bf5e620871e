//! A job file with an error is refused with its position, and nothing running changes; garbage
//! written straight into the store over a running job leaves it running, shown by `nctl status`
//! with the spec's errors, and still revertible, stoppable and purgeable.

use std::io::{Read, Write};
use std::net::TcpStream;
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
    let id = before[0]["ID"].as_str().unwrap().to_string();
    let pids = pids_of_alloc(&id);
    assert!(!pids.is_empty(), "the task has a process");
    let index_before =
        c.json(&["status", "sleeper", "-o", "json"])["job"]["JobModifyIndex"].clone();

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

    // `nctl plan` checks the file locally as well: it prints the position and exits 255
    // (Nomad's error code) without sending anything.
    let out = c.nctl(&["plan", "-f", &bad_file]);
    assert_eq!(
        out.status.code(),
        Some(255),
        "plan of a broken file exits 255"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{bad_file}:5:5:")), "{stderr}");

    // The server is the authority: a job sent to it directly, with no local check in between,
    // is refused by register and plan with 400 and its diagnostics.
    let body = serde_json::json!({"Job": {
        "ID": "sleeper", "Name": "sleeper", "Type": "service",
        "TaskGroups": [{"Name": "main", "Count": -1, "Tasks": [
            {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}]}],
    }})
    .to_string();
    for path in ["/v1/jobs", "/v1/job/sleeper/plan"] {
        let (status, answer) = post_json(&c.http_addr, path, &body);
        assert_eq!(status, 400, "POST {path}: {answer}");
        // A plain-text error, one positioned diagnostic per line.
        assert!(
            answer.lines().any(|line| line.starts_with("job.json:")),
            "POST {path}: the error's diagnostics: {answer}"
        );
    }

    let after = c.json(&["status", "sleeper", "-o", "json"]);
    assert_eq!(
        after["job"]["JobModifyIndex"], index_before,
        "the spec was not rewritten"
    );
    let now = c.running("sleeper");
    assert_eq!(now.len(), 1);
    assert_eq!(now[0]["ID"], id.as_str(), "the same allocation still runs");
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

/// Writes `value` under `key` through the cluster's etcd-protocol store endpoint, as
/// `etcdctl put` or a GitOps pipeline would.
fn store_put(c: &Cluster, key: &str, value: &[u8]) {
    use nomos_store::{EtcdConfig, EtcdStore, PutOptions, Store};
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = EtcdStore::connect(EtcdConfig::new([c.store_url.clone()]))
            .await
            .expect("connect to the store endpoint");
        store
            .put(
                key.as_bytes().to_vec(),
                value.to_vec(),
                PutOptions::default(),
            )
            .await
            .expect("store put");
    });
}

/// Writes garbage into the sleeper's spec key and waits until the controllers recorded it.
fn garbage_over_the_sleeper(c: &Cluster) {
    store_put(c, "/nomos/jobs/default/sleeper", b"not a job");
    c.wait_for(
        "the spec's errors in the job status",
        Duration::from_secs(60),
        |c| {
            let s = c.json(&["status", "sleeper", "-o", "json"]);
            let recorded = s["job"]["NomosStatus"]["Errors"]
                .as_array()
                .is_some_and(|e| !e.is_empty());
            (
                recorded && !s["job"]["InvalidSpec"].is_null(),
                s["job"].to_string(),
            )
        },
    );
}

#[test]
fn garbage_written_over_a_running_job_keeps_it_running_visible_and_manageable() {
    let c = Cluster::start("garbage");
    let file = c.write_file("sleeper.hcl", SLEEPER);
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    let id = c.running("sleeper")[0]["ID"].as_str().unwrap().to_string();

    garbage_over_the_sleeper(&c);
    let out = c.ok(&["status", "sleeper"]);
    assert!(out.contains("Status       = running"), "{out}");
    assert!(out.contains("Spec Errors"), "{out}");
    assert!(
        out.contains("version 0, the last accepted one, keeps running"),
        "{out}"
    );
    assert!(out.contains("/nomos/jobs/default/sleeper:1:1: "), "{out}");
    assert!(out.contains(&id[..8]), "the running allocation: {out}");
    assert!(out.contains("main "), "the running version's group: {out}");

    // Reverting to the version that runs makes the spec valid and changes nothing running.
    let out = c.ok(&["job", "revert", "sleeper", "0"]);
    assert!(out.contains("reverted to version 0"), "{out}");
    let s = c.json(&["status", "sleeper", "-o", "json"]);
    assert!(s["job"]["InvalidSpec"].is_null(), "{s}");
    assert_eq!(c.running("sleeper")[0]["ID"], id.as_str());

    // Stop takes the last accepted version as its base.
    garbage_over_the_sleeper(&c);
    let out = c.ok(&["stop", "sleeper"]);
    assert!(out.contains("job \"sleeper\" stopped"), "{out}");
    c.wait_for(
        "the sleeper's process to end",
        Duration::from_secs(60),
        |_| {
            let p = pids_of_alloc(&id);
            (p.is_empty(), format!("{p:?}"))
        },
    );

    garbage_over_the_sleeper(&c);
    c.ok(&["stop", "sleeper", "--purge"]);
    let out = c.nctl(&["status", "sleeper"]);
    assert_eq!(out.status.code(), Some(1), "purged: {out:?}");
}

/// POSTs a JSON `body` to the API at `addr` (`host:port`) over plain HTTP/1.0; returns the
/// status code and the response body.
fn post_json(addr: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send the request");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer}"));
    (status, body.to_string())
}
