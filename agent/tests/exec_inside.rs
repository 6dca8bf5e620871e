//! `Driver::exec` for the process drivers against real processes: a command run inside a
//! `raw_exec` task runs as the task does (its user, environment and directory); one inside an
//! `exec` task also sees only what the task sees (its chroot, pid namespace and cgroup). A
//! command past its timeout is killed with everything it started, output past its limit is
//! dropped, and a task that is gone says so.

use std::path::Path;
use std::time::{Duration, Instant};

use nomos_agent::driver::exec::{detect_support, ExecDriver};
use nomos_agent::driver::raw_exec::RawExecDriver;
use nomos_agent::driver::{Driver, ExecRequest, TaskHandle, TaskSpec, EXEC_OUTPUT_LIMIT};
use nomos_agent::logs::{read_logs, LogStream};
use nomos_agent::AgentError;

fn spec(dir: &Path, alloc: &str, script: &str) -> TaskSpec {
    let mut config = indexmap::IndexMap::new();
    config.insert("command".to_string(), serde_json::json!("sh"));
    config.insert("args".to_string(), serde_json::json!(["-c", script]));
    let alloc_dir = dir.join(alloc);
    TaskSpec {
        alloc_id: alloc.into(),
        task: "t".into(),
        config,
        env: [("GREETING".to_string(), "hello from the task".to_string())].into(),
        task_dir: alloc_dir.join("t"),
        alloc_dir: alloc_dir.join("alloc"),
        log_dir: alloc_dir.join("alloc/logs"),
        resources: nomos_api::Resources {
            memory_mb: 64,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Starts a task that prints `ready` and sleeps; returns once it printed.
async fn running(driver: &dyn Driver, spec: &TaskSpec) -> TaskHandle {
    let h = driver.start(spec).await.expect("task starts");
    for _ in 0..200 {
        let out = read_logs(&h.log_dir, &h.task, LogStream::Stdout, 0, 1 << 16)
            .map(|c| c.data)
            .unwrap_or_default();
        if String::from_utf8_lossy(&out).contains("ready") {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task never printed ready");
}

fn req(script: &str, timeout: Duration) -> ExecRequest {
    ExecRequest {
        command: "sh".into(),
        args: vec!["-c".into(), script.into()],
        timeout,
        output_limit: EXEC_OUTPUT_LIMIT,
    }
}

async fn run(driver: &dyn Driver, h: &TaskHandle, script: &str) -> (Option<i32>, String) {
    let out = driver
        .exec(h, &req(script, Duration::from_secs(10)))
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    (
        out.exit_code,
        String::from_utf8_lossy(&out.output).to_string(),
    )
}

fn nobody() -> u32 {
    nix::unistd::User::from_name("nobody")
        .unwrap()
        .unwrap()
        .uid
        .as_raw()
}

/// A timed-out command is killed with its children; output past the limit is dropped; a
/// stopped task refuses commands.
async fn failure_paths(driver: &dyn Driver, h: &TaskHandle, secs: u32) {
    let started = Instant::now();
    // `secs` tells this test's sleeps from a parallel test's (raw_exec sees the host's).
    let script = format!("sleep {secs} & sleep {secs}");
    let err = driver
        .exec(h, &req(&script, Duration::from_millis(500)))
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::ExecTimedOut { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "killed at its timeout"
    );
    let list = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done";
    let (_, procs) = run(driver, h, list).await;
    assert!(
        !procs.contains(&format!("sleep {secs}")),
        "nothing it started is left: {procs}"
    );

    let out = driver
        .exec(
            h,
            &req(
                "head -c 1000000 /dev/zero; echo done >&2",
                Duration::from_secs(10),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, out.output.len()),
        (Some(0), EXEC_OUTPUT_LIMIT)
    );
    assert!(out.truncated);

    driver
        .stop(h, "SIGKILL", Duration::from_secs(1))
        .await
        .unwrap();
    driver.wait(h).await.unwrap();
    let _ = driver.destroy(h).await;
    let err = driver
        .exec(h, &req("true", Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::TaskNotRunning { .. }), "{err}");
}

#[tokio::test]
async fn a_command_inside_a_raw_exec_task_runs_as_the_task_runs() {
    let dir = tempfile::tempdir().unwrap();
    // The tempdir must be reachable by nobody.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = RawExecDriver;
    let mut spec = spec(dir.path(), "r1", "echo ready; exec sleep 300");
    spec.user = "nobody".into();
    let h = running(&d, &spec).await;
    let (code, out) = run(&d, &h, "echo \"$GREETING\"; pwd; id -u; exit 1").await;
    assert_eq!(code, Some(1));
    let task_dir = spec.task_dir.canonicalize().unwrap();
    assert_eq!(
        out,
        format!(
            "hello from the task\n{}\n{}\n",
            task_dir.display(),
            nobody()
        )
    );
    failure_paths(&d, &h, 31).await;
}

#[tokio::test]
async fn a_command_inside_an_exec_task_sees_only_what_the_task_sees() {
    let support = detect_support();
    if let Some(why) = support.refusal() {
        panic!("this test needs exec isolation (cgroups and pid namespaces, as root): {why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("host-only-marker");
    std::fs::write(&marker, "host").unwrap();
    let d = ExecDriver::new(1000);
    // Unique per run: a process left by an interrupted run is never adopted.
    let alloc = format!("x{}", std::process::id());
    let spec = spec(dir.path(), &alloc, "echo ready; exec sleep 300");
    let h = running(&d, &spec).await;
    let script = format!(
        "echo \"$GREETING\"; pwd; id -u; ls /proc | grep -c '^[0-9]'; \
         if [ -e {m} ]; then echo marker-visible; else echo marker-hidden; fi; \
         cat /proc/self/cgroup",
        m = marker.display()
    );
    let (code, out) = run(&d, &h, &script).await;
    assert_eq!(code, Some(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello from the task");
    assert_eq!(
        lines[1],
        spec.task_dir.display().to_string(),
        "the task's directory"
    );
    assert_eq!(lines[2], nobody().to_string(), "the task's user");
    let procs: usize = lines[3].parse().unwrap();
    assert!(procs <= 8, "only the task's processes are visible: {out}");
    if support.chroot {
        assert_eq!(lines[4], "marker-hidden", "{out}");
    }
    let cgroup = h
        .cgroup
        .as_ref()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy();
    assert!(
        out.contains(&*cgroup),
        "joins the task's cgroup {cgroup}: {out}"
    );
    failure_paths(&d, &h, 32).await;
}
