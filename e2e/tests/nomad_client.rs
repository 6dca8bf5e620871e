//! Nomad's own ecosystem against Nomos (issue 17): `python-nomad`, a third-party Nomad client
//! from PyPI (scripts/install-deps installs it), drives a server with two agents through
//! Nomad's HTTP API as a migrating user's script would. The script (`e2e/python/drive_nomos.py`)
//! registers a job from JSON, waits for it to run, reads its allocations, evaluations,
//! deployment and logs, promotes a canary, drains a node, writes and reads a variable,
//! dispatches a parameterized job twice with one idempotency token (one instance runs, with its
//! payload and meta) and purges the job; a misspelled request field is refused on the way.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;

/// Most time the script may take (each of its waits has its own, shorter limit).
const SCRIPT_LIMIT: Duration = Duration::from_secs(420);

/// Fails loudly, saying how to get it, when python-nomad is not installed.
fn require_python_nomad() {
    let found = Command::new("python3")
        .args(["-c", "import nomad"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "this test needs python3 with python-nomad (PyPI): run scripts/install-deps"
    );
}

#[test]
fn python_nomad_runs_a_job_through_its_whole_life() {
    require_busybox();
    require_python_nomad();
    let c = Cluster::start_server("pynomad");
    let _a = c.start_agent("py-1");
    let _b = c.start_agent("py-2");
    c.wait_nodes_ready(&["py-1", "py-2"]);

    let script = workspace_root().join("e2e/python/drive_nomos.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .env("NOMAD_ADDR", &c.addr)
        .env_remove("NOMAD_TOKEN")
        .env_remove("NOMAD_NAMESPACE")
        .env_remove("NOMAD_REGION")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    let started = Instant::now();
    while child.try_wait().expect("wait for python3").is_none() {
        if started.elapsed() > SCRIPT_LIMIT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().expect("python3 output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python-nomad failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status,
        c.log_tail()
    );
    assert!(
        stdout.contains("python-nomad: every step passed"),
        "{stdout}"
    );
}
