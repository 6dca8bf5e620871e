//! The exec driver on this host: where a cgroup (v2, or the v1 memory controller) and pid
//! namespaces work, a task runs in its own cgroup, pid namespace and (where possible) chroot, and
//! exceeding `memory_max` is reported as OOM; where they do not, a task asking for exec fails with
//! a clear Driver Failure event and the fingerprint says why.

mod common;

use std::sync::Arc;

use common::*;
use nomos_agent::driver::exec::{detect_isolation, detect_support, Isolation};
use nomos_api::{ClientStatus, JobType, Node};
use nomos_store::{keys, EmbeddedStore, Store};

#[tokio::test]
async fn exec_tasks_run_isolated_or_fail_clearly_when_the_host_cannot_isolate() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(test_config("e1", dir.path()), store.clone());
    let mut t = raw_task("t", "sh", &["-c", "echo isolated"]);
    t.driver = "exec".into();
    t.resources.memory_mb = 32;
    let mut job = job("iso", JobType::Batch, vec![t]);
    job.groups[0].restart.as_mut().unwrap().attempts = 0;
    place(&*store, &alloc("e-1", "e1", &job, 0), &job).await;
    let node: Node = eventually("node", || async {
        get(&*store, &keys::node("e1"))
            .await
            .and_then(|v| serde_json::from_slice(&v).ok())
    })
    .await;
    let support = detect_support();
    for k in [
        "driver.exec.cgroup_v2",
        "driver.exec.pid_namespace",
        "driver.exec.chroot",
    ] {
        assert!(node.attributes.contains_key(k), "{k} fingerprinted");
    }
    assert_eq!(
        node.attributes["driver.exec.pid_namespace"] == "1",
        support.pid_namespace
    );
    match support.refusal() {
        None => {
            assert!(node.drivers["exec"].healthy);
            status_where(&store, "e1", "e-1", "exec task complete", |s| {
                s.client_status == ClientStatus::Complete
            })
            .await;
        }
        Some(why) => {
            assert!(!node.drivers["exec"].detected);
            assert_eq!(node.attributes["driver.exec.unavailable"], why);
            assert!(
                !node.attributes.contains_key("driver.exec"),
                "exec is not advertised"
            );
            let s = status_where(&store, "e1", "e-1", "exec task failed", |s| {
                s.client_status == ClientStatus::Failed
            })
            .await;
            let ev = &s.task_states["t"].events;
            let f = ev
                .iter()
                .find(|e| e.event_type == "Driver Failure")
                .unwrap_or_else(|| panic!("{ev:?}"));
            assert!(
                f.message.contains("cannot isolate") && f.message.contains(&why),
                "{}",
                f.message
            );
        }
    }
    agent.shutdown().await;
}

#[tokio::test]
async fn exceeding_memory_max_under_exec_is_oom_or_refused_where_cgroup_v2_is_missing() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(test_config("e2", dir.path()), store.clone());
    let mut t = raw_task(
        "hog",
        "sh",
        &["-c", "dd if=/dev/zero of=/dev/null bs=256M count=1"],
    );
    t.driver = "exec".into();
    t.resources.memory_mb = 16;
    t.resources.memory_max_mb = 32;
    let mut job = job("hog", JobType::Batch, vec![t]);
    job.groups[0].restart.as_mut().unwrap().attempts = 0;
    place(&*store, &alloc("e-2", "e2", &job, 0), &job).await;
    let s = status_where(&store, "e2", "e-2", "failed", |s| {
        s.client_status == ClientStatus::Failed
    })
    .await;
    let ev = &s.task_states["hog"].events;
    match (detect_support().refusal(), detect_isolation()) {
        (None, Isolation::CgroupV2 | Isolation::CgroupV1Memory) => {
            assert!(ev.iter().any(|e| e.oom_killed), "{ev:?}")
        }
        (why, _) => {
            let why = why.expect("a refusal when no cgroup is usable");
            assert!(
                ev.iter()
                    .any(|e| e.event_type == "Driver Failure" && e.message.contains(&why)),
                "{ev:?}"
            )
        }
    }
    agent.shutdown().await;
}

/// A task under exec sees only its own processes and, with chroot, not the host's files.
#[tokio::test]
async fn exec_tasks_get_their_own_pid_namespace_and_chroot() {
    let support = detect_support();
    // Unique per run: a process left by an earlier, interrupted run is never adopted.
    let id = format!("e-3-{}", std::process::id());
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config("e3", dir.path());
    let data_dir = cfg.data_dir.clone();
    let agent = RunningAgent::start(cfg, store.clone());
    let marker = dir.path().join("outside-marker");
    std::fs::write(&marker, "host file").unwrap();
    let script = format!(
        "echo \"init $(tr '\\0' ' ' < /proc/1/cmdline)\"; echo \"procs $(ls /proc | grep -c '^[0-9]')\"; \
         if [ -e {m} ]; then echo marker-visible; else echo marker-hidden; fi; \
         echo ok > written; grep '^Uid:' /proc/self/status; \
         echo ready; exec sleep 300",
        m = marker.display()
    );
    let mut t = raw_task("t", "sh", &["-c", &script]);
    t.driver = "exec".into();
    t.resources.memory_mb = 64;
    let job = job("ns", JobType::Service, vec![t]);
    let a = alloc(&id, "e3", &job, 0);
    let _cleanup = KillOnDrop(data_dir.clone(), id.clone());
    place(&*store, &a, &job).await;
    if let Some(why) = support.refusal() {
        let s = status_where(&store, "e3", &id, "exec refused", |s| {
            events(s, "t").iter().any(|e| e == "Driver Failure")
        })
        .await;
        let ev = &s.task_states["t"].events;
        assert!(ev.iter().any(|e| e.message.contains(&why)), "{ev:?}");
        agent.shutdown().await;
        return;
    }
    status_where(&store, "e3", &id, "running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    let out = eventually("task output", || async {
        let text = std::fs::read_to_string(nomos_agent::logs::live_path(
            &nomos_agent::logs::log_dir(&data_dir, &id),
            "t",
            nomos_agent::logs::LogStream::Stdout,
        ))
        .ok()?;
        // The init line echoes the whole command, "ready" included: wait for the line itself.
        text.lines().any(|l| l == "ready").then_some(text)
    })
    .await;
    assert!(support.pid_namespace);
    // pid 1 of the namespace is the task's own wrapper (its `$0` is the exit-status file).
    assert!(
        out.contains("init /bin/sh -c trap") && out.contains(".nomos/exit-status"),
        "{out}"
    );
    let procs: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("procs "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        procs <= 6,
        "only the task's own processes are visible: {out}"
    );
    // Without a `user`, an exec task runs as nobody (65534 on Debian), as in Nomad.
    let uid = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid;
    assert!(
        out.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string())),
        "the task runs as nobody: {out}"
    );
    if support.chroot {
        assert!(out.contains("marker-hidden"), "{out}");
    } else {
        assert!(out.contains("marker-visible"), "{out}");
    }
    let pid = persisted_pid(&data_dir, &id, "t").expect("pid");
    assert!(alive(pid));
    // A new agent on the same data dir re-attaches to the isolated task: same process, no restart.
    agent.shutdown().await;
    assert!(alive(pid), "the task outlives the agent");
    let agent = RunningAgent::start(test_config("e3", dir.path()), store.clone());
    let s = status_where(&store, "e3", &id, "re-attached", |s| {
        s.client_status == ClientStatus::Running && s.task_states["t"].restarts == 0
    })
    .await;
    assert!(
        !events(&s, "t").iter().any(|e| e == "Terminated"),
        "{:?}",
        events(&s, "t")
    );
    assert_eq!(persisted_pid(&data_dir, &id, "t"), Some(pid));
    assert!(alive(pid));
    // The re-attached task is still managed: a stop right away (before its task loop may have
    // subscribed) ends the whole namespace.
    stop_alloc(&*store, &alloc(&id, "e3", &job, 0)).await;
    status_where(&store, "e3", &id, "stopped", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    assert!(!alive(pid));
    agent.shutdown().await;
    let purged = nomos_agent::purge(&data_dir).await;
    assert!(purged.is_ok(), "{purged:?}");
    assert!(marker.exists(), "the host file outlives the task");
}

/// Kills the task's process group if the test fails half-way.
struct KillOnDrop(std::path::PathBuf, String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = persisted_pid(&self.0, &self.1, "t") {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

/// The exec support this host must have for a test of cgroup limits: a test that needs them fails
/// loudly on a host without them instead of passing without checking anything.
fn require_exec_isolation() {
    let support = detect_support();
    if let Some(why) = support.refusal() {
        panic!("this test needs exec isolation (a cgroup with a memory controller and pid namespaces, as root): {why}");
    }
}

/// A batch exec task limited to 32 MiB running `script` under `sh -c`; returns its final status.
async fn run_memory_limited(node: &str, id: &str, script: &str) -> nomos_api::AllocStatus {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(test_config(node, dir.path()), store.clone());
    let mut t = raw_task("t", "sh", &["-c", script]);
    t.driver = "exec".into();
    t.resources.memory_mb = 16;
    t.resources.memory_max_mb = 32;
    let mut job = job("oom", JobType::Batch, vec![t]);
    job.groups[0].restart.as_mut().unwrap().attempts = 0;
    place(&*store, &alloc(id, node, &job, 0), &job).await;
    let s = status_where(&store, node, id, "finished", |s| {
        s.client_status.is_terminal()
    })
    .await;
    agent.shutdown().await;
    s
}

/// The task's `Terminated` event.
fn terminated(s: &nomos_api::AllocStatus) -> nomos_api::TaskEvent {
    let ev = &s.task_states["t"].events;
    ev.iter()
        .find(|e| e.event_type == "Terminated")
        .cloned()
        .unwrap_or_else(|| panic!("no Terminated event: {ev:?}"))
}

#[tokio::test]
async fn a_child_oom_killed_under_exec_leaves_an_exit_0_batch_task_complete() {
    require_exec_isolation();
    // The child (dd, 256 MiB buffer) is OOM-killed; the main process carries on and exits 0.
    let s = run_memory_limited(
        "e4",
        &format!("e-4-{}", std::process::id()),
        "dd if=/dev/zero of=/dev/null bs=256M count=1; echo parent-survived; exit 0",
    )
    .await;
    let ev = terminated(&s);
    assert_eq!(s.client_status, ClientStatus::Complete, "{s:?}");
    assert!(!s.task_states["t"].failed, "{s:?}");
    assert_eq!(ev.exit_code, Some(0), "{ev:?}");
    assert!(!ev.oom_killed, "the task itself was not OOM-killed: {ev:?}");
    assert!(
        ev.message.contains("a process in the task was OOM-killed"),
        "the OOM kill of the child is still told: {ev:?}"
    );
}

#[tokio::test]
async fn a_main_process_oom_killed_under_exec_fails_the_task_as_oom_killed() {
    require_exec_isolation();
    // The main process itself (dd, exec'd by the shell) is the one the kernel kills.
    let s = run_memory_limited(
        "e5",
        &format!("e-5-{}", std::process::id()),
        "exec dd if=/dev/zero of=/dev/null bs=256M count=1",
    )
    .await;
    let ev = terminated(&s);
    assert_eq!(s.client_status, ClientStatus::Failed, "{s:?}");
    assert!(s.task_states["t"].failed, "{s:?}");
    assert!(ev.oom_killed, "{ev:?}");
    assert_eq!(ev.signal, Some(9), "{ev:?}");
    assert!(ev.message.contains("OOM Killed"), "{ev:?}");
}

#[tokio::test]
async fn an_exec_tasks_usage_is_measured_through_its_cgroup_and_reported_to_the_store() {
    require_exec_isolation();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config("e4", dir.path());
    config.usage_interval = std::time::Duration::from_millis(200);
    let data_dir = config.data_dir.clone();
    let agent = RunningAgent::start(config, store.clone());
    // 40 MiB without a newline held by tail while sleep keeps the pipe open, and a busy loop.
    let script = "(head -c 40m /dev/zero; sleep 600) | tail > /dev/null & while :; do :; done";
    let mut t = raw_task("t", "sh", &["-c", script]);
    t.driver = "exec".into();
    t.resources.memory_mb = 128;
    let job = job("hot", JobType::Service, vec![t]);
    let _cleanup = KillOnDrop(data_dir, "e-4".into());
    place(&*store, &alloc("e-4", "e4", &job, 0), &job).await;
    let usage: nomos_api::usage::TaskUsage = eventually("40 MiB and CPU measured", || async {
        let bytes = get(&*store, &keys::usage("e4")).await?;
        let report: nomos_api::usage::NodeUsage = serde_json::from_slice(&bytes).ok()?;
        let u = report.allocs.get("e-4")?.tasks.get("t")?.clone();
        (u.memory_bytes > 40 << 20 && u.cpu_seconds > 0.2 && u.cpu_percent > 10.0).then_some(u)
    })
    .await;
    // cgroup v2 accounts both; a v1 host's memory controller gives memory, /proc the CPU.
    let want = match detect_isolation() {
        Isolation::CgroupV2 => "cgroup",
        _ => "cgroup_memory_procfs_cpu",
    };
    assert_eq!(usage.source, want, "{usage:?}");
    stop_alloc(&*store, &alloc("e-4", "e4", &job, 0)).await;
    status_where(&store, "e4", "e-4", "stopped", |s| {
        s.client_status.is_terminal()
    })
    .await;
    agent.shutdown().await;
}
