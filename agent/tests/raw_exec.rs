//! The raw_exec driver against real processes: exit codes, logs, env and working dir, stop
//! with kill_signal then SIGKILL, re-attach from a handle, and the session that lets tasks
//! outlive the agent.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nomos_agent::driver::raw_exec::RawExecDriver;
use nomos_agent::driver::{Driver, TaskHandle, TaskSpec};
use nomos_agent::logs::{read_logs, LogStream};
use nomos_agent::procfs;

fn spec(dir: &Path, task: &str, command: &str, args: &[&str]) -> TaskSpec {
    let mut config = indexmap::IndexMap::new();
    config.insert("command".to_string(), serde_json::json!(command));
    config.insert("args".to_string(), serde_json::json!(args));
    TaskSpec {
        alloc_id: "a1".into(),
        task: task.into(),
        config,
        task_dir: dir.join(task),
        alloc_dir: dir.join("alloc"),
        log_dir: dir.join("alloc/logs"),
        ..Default::default()
    }
}

fn log(h: &TaskHandle, s: LogStream) -> String {
    String::from_utf8(read_logs(&h.log_dir, &h.task, s, 0, 1 << 20).unwrap().data).unwrap()
}

/// Waits until the task printed `ready` (its traps are set).
async fn wait_ready(h: &TaskHandle) {
    for _ in 0..200 {
        if log(h, LogStream::Stdout).contains("ready") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task never printed ready");
}

#[tokio::test]
async fn a_process_exit_code_and_output_are_captured() {
    let dir = tempfile::tempdir().unwrap();
    let d = RawExecDriver;
    let h = d
        .start(&spec(
            dir.path(),
            "t",
            "sh",
            &["-c", "echo hello; echo oops >&2; exit 3"],
        ))
        .await
        .unwrap();
    let exit = d.wait(&h).await.unwrap();
    assert_eq!(exit.exit_code, Some(3));
    assert_eq!(exit.signal, None);
    assert_eq!(log(&h, LogStream::Stdout), "hello\n");
    assert_eq!(log(&h, LogStream::Stderr), "oops\n");
}

#[tokio::test]
async fn tasks_get_their_env_and_run_in_the_task_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = RawExecDriver;
    let mut s = spec(
        dir.path(),
        "envtask",
        "sh",
        &["-c", "pwd; echo \"$GREETING\""],
    );
    s.env = BTreeMap::from([("GREETING".to_string(), "hi there".to_string())]);
    let h = d.start(&s).await.unwrap();
    assert!(d.wait(&h).await.unwrap().successful());
    let cwd = dir.path().join("envtask").canonicalize().unwrap();
    assert_eq!(
        log(&h, LogStream::Stdout),
        format!("{}\nhi there\n", cwd.display())
    );
}

#[tokio::test]
async fn a_task_runs_in_its_own_session_and_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let d = RawExecDriver;
    let h = d
        .start(&spec(dir.path(), "t", "sleep", &["30"]))
        .await
        .unwrap();
    let pid = h.pid.unwrap();
    let st = procfs::stat(pid).unwrap();
    assert_eq!(st.pgrp, pid, "the task leads its own process group");
    let sid = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid)))
        .unwrap()
        .as_raw();
    assert_eq!(
        sid, pid,
        "the task leads its own session, detached from the agent's"
    );
    d.stop(&h, "SIGTERM", Duration::from_secs(5)).await.unwrap();
    assert!(!d.recover(&h).await.unwrap());
}

#[tokio::test]
async fn stop_sends_the_kill_signal_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = RawExecDriver;
    let h = d
        .start(&spec(
            dir.path(),
            "t",
            "sh",
            &[
                "-c",
                "trap 'echo got-int; exit 7' INT; echo ready; while true; do sleep 0.1; done",
            ],
        ))
        .await
        .unwrap();
    wait_ready(&h).await;
    d.stop(&h, "SIGINT", Duration::from_secs(10)).await.unwrap();
    let exit = d.wait(&h).await.unwrap();
    assert_eq!(exit.exit_code, Some(7));
    assert!(log(&h, LogStream::Stdout).contains("got-int"));
}

#[tokio::test]
async fn stop_escalates_to_sigkill_after_the_kill_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let d = RawExecDriver;
    // The task ignores SIGTERM (and so does the sleep it runs).
    let h = d
        .start(&spec(
            dir.path(),
            "t",
            "sh",
            &["-c", "trap '' TERM; echo ready; sleep 60"],
        ))
        .await
        .unwrap();
    wait_ready(&h).await;
    d.stop(&h, "SIGTERM", Duration::from_millis(500))
        .await
        .unwrap();
    assert!(!d.recover(&h).await.unwrap());
    let exit = d.wait(&h).await.unwrap();
    assert_eq!(exit.signal, Some(9));
    assert!(
        procfs::group_members(h.pid.unwrap()).is_empty(),
        "nothing of the group survives"
    );
}

#[tokio::test]
async fn a_handle_recovers_the_running_task_but_not_a_reused_pid() {
    let dir = tempfile::tempdir().unwrap();
    let h = RawExecDriver
        .start(&spec(dir.path(), "t", "sleep", &["30"]))
        .await
        .unwrap();
    let json = serde_json::to_string(&h).unwrap();
    let restored: TaskHandle = serde_json::from_str(&json).unwrap();
    let fresh = RawExecDriver;
    assert!(fresh.recover(&restored).await.unwrap());
    // The wrapper and the command it runs: wait until the command has been exec'd (a signal
    // that lands between the wrapper's fork and exec would hit the wrapper's trap).
    let mut stats = fresh.stats(&restored).await.unwrap();
    for _ in 0..100 {
        let sleeping = procfs::group_members(restored.pid.unwrap())
            .iter()
            .any(|m| {
                std::fs::read_to_string(format!("/proc/{}/comm", m.pid))
                    .map(|c| c.trim() == "sleep")
                    .unwrap_or(false)
            });
        if sleeping && stats.pids >= 2 && stats.memory_rss_bytes > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        stats = fresh.stats(&restored).await.unwrap();
    }
    assert!(stats.pids >= 2 && stats.memory_rss_bytes > 0, "{stats:?}");
    let mut other = restored.clone();
    other.start_time = Some(restored.start_time.unwrap() + 1);
    assert!(
        !fresh.recover(&other).await.unwrap(),
        "same pid, different start time is another process"
    );
    fresh.signal(&restored, "SIGTERM").await.unwrap();
    let exit = fresh.wait(&restored).await.unwrap();
    assert_eq!(exit.signal, Some(15));
}

#[tokio::test]
async fn a_missing_command_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = RawExecDriver
        .start(&spec(dir.path(), "t", "no-such-binary-xyz", &[]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no-such-binary-xyz"), "{err}");
}

#[tokio::test]
async fn tasks_run_as_the_configured_user() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody exists");
    // The tempdir must be reachable by nobody.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut s = spec(dir.path(), "t", "id", &["-u"]);
    s.user = "nobody".into();
    let h = RawExecDriver.start(&s).await.unwrap();
    assert!(RawExecDriver.wait(&h).await.unwrap().successful());
    assert_eq!(log(&h, LogStream::Stdout).trim(), nobody.uid.to_string());
}

#[tokio::test]
async fn a_first_start_in_a_fresh_task_dir_never_adopts_a_process() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), "t", "sleep", &["30"]);
    let alloc_id = format!("fresh-{}", std::process::id());
    s.env.insert("NOMOS_ALLOC_ID".into(), alloc_id.clone());
    s.env.insert("NOMOS_TASK_NAME".into(), "t".into());
    // A group leader with the task's ids that no start in this task dir began (no agent can
    // have started it from here): the start runs its own process instead of searching /proc.
    let mut outsider = std::process::Command::new("sleep")
        .arg("30")
        .env("NOMOS_ALLOC_ID", &alloc_id)
        .env("NOMOS_TASK_NAME", "t")
        .env_remove("NOMOS_AGENT_ID")
        .process_group(0)
        .spawn()
        .unwrap();
    let h = RawExecDriver.start(&s).await.unwrap();
    let outsider_pid = outsider.id() as i32;
    let _ = outsider.kill();
    let _ = outsider.wait();
    RawExecDriver
        .stop(&h, "SIGTERM", Duration::from_secs(5))
        .await
        .unwrap();
    assert_ne!(
        h.pid,
        Some(outsider_pid),
        "adopted a process no start began"
    );
}

#[tokio::test]
async fn starting_a_task_that_already_runs_unrecorded_adopts_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), "t", "sleep", &["30"]);
    let alloc_id = format!("adopt-{}", std::process::id());
    s.env.insert("NOMOS_ALLOC_ID".into(), alloc_id);
    s.env.insert("NOMOS_TASK_NAME".into(), "t".into());
    let first = RawExecDriver.start(&s).await.unwrap();
    // As if the agent died before persisting `first`: a new start finds the same process.
    let second = RawExecDriver.start(&s).await.unwrap();
    assert_eq!(second.pid, first.pid);
    assert_eq!(second.start_time, first.start_time);
    RawExecDriver
        .stop(&second, "SIGTERM", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!RawExecDriver.recover(&first).await.unwrap());
    let third = RawExecDriver.start(&s).await.unwrap();
    assert_ne!(third.pid, first.pid, "a stopped task is started anew");
    RawExecDriver
        .stop(&third, "SIGTERM", Duration::from_secs(5))
        .await
        .unwrap();
}
