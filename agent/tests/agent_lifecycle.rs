//! The agent end to end on the embedded store with real processes: registration and
//! heartbeat, running, completing, restarting, failing and stopping allocations, re-attaching
//! after an in-process restart, and purge.

mod common;

use std::sync::Arc;

use common::*;
use nomos_api::{ClientStatus, JobType, Node, TaskRunState};
use nomos_store::{keys, EmbeddedStore, Store};

fn store() -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::in_memory())
}

/// The node's heartbeat key, once the agent wrote it.
async fn heartbeat_of(store: &dyn Store, node: &str) -> nomos_store::KeyValue {
    eventually("heartbeat key", || async {
        store
            .range(
                nomos_store::KeySelector::key(keys::heartbeat(node)),
                Default::default(),
            )
            .await
            .ok()?
            .kvs
            .into_iter()
            .next()
    })
    .await
}

#[tokio::test]
async fn the_agent_registers_its_node_and_keeps_a_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let mut cfg = test_config("n1", dir.path());
    cfg.meta.insert("rack".into(), "r7".into());
    cfg.node_class = "edge".into();
    let agent = RunningAgent::start(cfg, store.clone());
    let node: Node = eventually("node registration", || async {
        get(&*store, &keys::node("n1"))
            .await
            .and_then(|v| serde_json::from_slice(&v).ok())
    })
    .await;
    assert_eq!(node.name, "n1");
    assert_eq!(node.node_class, "edge");
    assert_eq!(node.meta["rack"], "r7");
    assert!(!node.id.is_empty());
    assert_eq!(node.attributes["driver.raw_exec"], "1");
    assert!(node.attributes.contains_key("os.cgroups.version"));
    assert!(node.resources.memory_mb > 0);
    assert!(node.drivers["raw_exec"].healthy);
    let hb = heartbeat_of(&*store, "n1").await;
    assert_ne!(hb.lease, 0, "the heartbeat is bound to a lease");
    // Longer than the lease TTL: the keep-alive holds it.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        get(&*store, &keys::heartbeat("n1")).await.is_some(),
        "heartbeat survives past its TTL"
    );
    agent.shutdown().await;
    let id_again = std::fs::read_to_string(dir.path().join("n1/node-id")).unwrap();
    assert_eq!(
        id_again.trim(),
        node.id,
        "node id is persisted in the data dir"
    );
}

/// With `heartbeat_from_cluster`, the lease follows the servers' published settings and the node
/// count (Nomad's rule): 4 nodes at 1 heartbeat/s renew every 4s, and the TTL adds the 1.5s grace.
#[tokio::test]
async fn the_heartbeat_lease_follows_the_servers_settings_and_the_node_count() {
    use nomos_api::heartbeat::HeartbeatConfig;
    use nomos_store::PutOptions;

    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let settings = HeartbeatConfig {
        heartbeat_grace_ms: 1_500,
        min_heartbeat_ttl_ms: 1_000,
        max_heartbeats_per_second: 1.0,
    };
    store
        .put(
            keys::HEARTBEAT_CONFIG.as_bytes().to_vec(),
            serde_json::to_vec(&settings).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    for other in ["a", "b", "c"] {
        let n = nomos_api::build::node(other).build();
        store
            .put(
                keys::node(other).into_bytes(),
                serde_json::to_vec(&n).unwrap(),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    let mut cfg = test_config("n1", dir.path());
    cfg.heartbeat_from_cluster = true;
    let agent = RunningAgent::start(cfg, store.clone());
    let hb = heartbeat_of(&*store, "n1").await;
    let lease = store.lease_time_to_live(hb.lease, false).await.unwrap();
    // 4 nodes (3 + this one) / 1 per second = 4s between renewals, + 1.5s grace = 5.5 -> 6s.
    assert_eq!(lease.granted_ttl, 6);
    assert_eq!(
        nomos_agent::agent::heartbeat_timing(2, None),
        (2, std::time::Duration::from_millis(666)),
        "without published settings the configured TTL holds"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn a_service_allocation_runs_with_nomad_env_and_becomes_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let cfg = test_config("n1", dir.path());
    let data = cfg.data_dir.clone();
    let agent = RunningAgent::start(cfg, store.clone());
    let job = job(
        "web",
        JobType::Service,
        vec![raw_task(
            "srv",
            "sh",
            &[
                "-c",
                "echo port=${NOMAD_PORT_http} alloc=$NOMAD_ALLOC_ID dc=${node.datacenter}; exec sleep 300",
            ],
        )],
    );
    let a = with_port(alloc("alloc-1", "n1", &job, 0), "http", 23456);
    place(&*store, &a, &job).await;
    let s = status_where(&store, "n1", "alloc-1", "running and healthy", |s| {
        s.client_status == ClientStatus::Running && s.healthy == Some(true)
    })
    .await;
    assert_eq!(events(&s, "srv"), vec!["Received", "Task Setup", "Started"]);
    let out = eventually("task output", || async {
        let c = nomos_agent::logs::read_task_logs(
            &data,
            "alloc-1",
            "srv",
            nomos_agent::logs::LogStream::Stdout,
            0,
            4096,
        )
        .ok()?;
        (!c.data.is_empty()).then(|| String::from_utf8(c.data).unwrap())
    })
    .await;
    assert_eq!(out, "port=23456 alloc=alloc-1 dc=dc1\n");
    stop_alloc(&*store, &a).await;
    let s = status_where(&store, "n1", "alloc-1", "stopped", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    assert_eq!(
        events(&s, "srv"),
        vec!["Received", "Task Setup", "Started", "Killing", "Killed"]
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn a_batch_task_that_exits_zero_completes_the_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let agent = RunningAgent::start(test_config("n1", dir.path()), store.clone());
    let job = job(
        "once",
        JobType::Batch,
        vec![raw_task("t", "sh", &["-c", "echo done"])],
    );
    place(&*store, &alloc("b1", "n1", &job, 3), &job).await;
    let s = status_where(&store, "n1", "b1", "complete", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    let t = &s.task_states["t"];
    assert_eq!(t.state, TaskRunState::Dead);
    assert!(!t.failed);
    assert_eq!(t.restarts, 0);
    assert_eq!(t.exit_code, Some(0));
    assert_eq!(
        events(&s, "t"),
        vec!["Received", "Task Setup", "Started", "Terminated"]
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn a_failing_task_is_restarted_per_policy_then_fails_the_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let agent = RunningAgent::start(test_config("n1", dir.path()), store.clone());
    let mut job = job(
        "flaky",
        JobType::Service,
        vec![
            raw_task("bad", "sh", &["-c", "exit 2"]),
            raw_task("good", "sleep", &["300"]),
        ],
    );
    job.groups[0].restart.as_mut().unwrap().attempts = 1;
    place(&*store, &alloc("f1", "n1", &job, 0), &job).await;
    let s = status_where(&store, "n1", "f1", "failed", |s| {
        s.client_status == ClientStatus::Failed && s.task_states["good"].state == TaskRunState::Dead
    })
    .await;
    let bad = &s.task_states["bad"];
    assert!(bad.failed);
    assert_eq!(bad.restarts, 1);
    assert_eq!(bad.exit_code, Some(2));
    let ev = events(&s, "bad");
    assert_eq!(
        ev.iter().filter(|e| *e == "Restarting").count(),
        1,
        "{ev:?}"
    );
    assert_eq!(
        ev.last().map(String::as_str),
        Some("Not Restarting"),
        "{ev:?}"
    );
    assert!(
        events(&s, "good").contains(&"Killed".to_string()),
        "the sibling is stopped when the group fails"
    );
    assert_eq!(s.healthy, Some(false));
    agent.shutdown().await;
}

#[tokio::test]
async fn a_task_with_a_missing_driver_fails_with_a_driver_failure_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let agent = RunningAgent::start(test_config("n1", dir.path()), store.clone());
    let mut t = raw_task("t", "true", &[]);
    t.driver = "hyperv".into();
    let job = job("vm", JobType::Service, vec![t]);
    place(&*store, &alloc("d1", "n1", &job, 0), &job).await;
    let s = status_where(&store, "n1", "d1", "failed", |s| {
        s.client_status == ClientStatus::Failed
    })
    .await;
    let ev = &s.task_states["t"].events;
    assert!(
        ev.iter()
            .any(|e| e.event_type == "Driver Failure" && e.message.contains("hyperv")),
        "{ev:?}"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn restarting_the_agent_reattaches_without_restarting_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let cfg = test_config("n1", dir.path());
    let data = cfg.data_dir.clone();
    let agent = RunningAgent::start(cfg.clone(), store.clone());
    let job = job(
        "web",
        JobType::Service,
        vec![raw_task("srv", "sleep", &["300"])],
    );
    place(&*store, &alloc("r1", "n1", &job, 0), &job).await;
    status_where(&store, "n1", "r1", "running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    let pid = persisted_pid(&data, "r1", "srv").expect("persisted pid");
    agent.shutdown().await;
    assert!(alive(pid), "the task outlives the agent");

    let agent = RunningAgent::start(cfg, store.clone());
    // Give the new agent time to converge, then check nothing was restarted.
    let s = status_where(
        &store,
        "n1",
        "r1",
        "running and healthy after restart",
        |s| s.client_status == ClientStatus::Running && s.healthy == Some(true),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(persisted_pid(&data, "r1", "srv"), Some(pid), "same process");
    let s2 = status(&*store, "n1", "r1").await.unwrap();
    assert_eq!(s2.task_states["srv"].restarts, 0);
    assert_eq!(
        events(&s2, "srv")
            .iter()
            .filter(|e| *e == "Started")
            .count(),
        1,
        "{:?}",
        events(&s, "srv")
    );
    assert!(alive(pid));
    stop_alloc(&*store, &alloc("r1", "n1", &job, 0)).await;
    status_where(&store, "n1", "r1", "stopped", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    assert!(!alive(pid));
    agent.shutdown().await;
}

#[tokio::test]
async fn deleting_an_allocation_stops_it_and_removes_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let cfg = test_config("n1", dir.path());
    let data = cfg.data_dir.clone();
    let agent = RunningAgent::start(cfg, store.clone());
    let job = job(
        "web",
        JobType::Service,
        vec![raw_task("srv", "sleep", &["300"])],
    );
    let a = alloc("x1", "n1", &job, 0);
    place(&*store, &a, &job).await;
    status_where(&store, "n1", "x1", "running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    let pid = persisted_pid(&data, "x1", "srv").unwrap();
    store
        .delete(
            nomos_store::KeySelector::key(keys::alloc("n1", "x1")),
            Default::default(),
        )
        .await
        .unwrap();
    eventually("status removed", || async {
        status(&*store, "n1", "x1").await.is_none().then_some(())
    })
    .await;
    assert!(!alive(pid));
    assert!(!data.join("allocs/x1").exists());
    assert!(!data.join("state/allocs/x1.json").exists());
    agent.shutdown().await;
}

#[tokio::test]
async fn purge_stops_every_task_and_removes_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let cfg = test_config("n1", dir.path());
    let data = cfg.data_dir.clone();
    let agent = RunningAgent::start(cfg, store.clone());
    let job = job(
        "web",
        JobType::Service,
        vec![
            raw_task("a", "sleep", &["300"]),
            raw_task("b", "sleep", &["300"]),
        ],
    );
    place(&*store, &alloc("p1", "n1", &job, 0), &job).await;
    status_where(&store, "n1", "p1", "running", |s| {
        s.task_states
            .values()
            .all(|t| t.state == TaskRunState::Running)
    })
    .await;
    let pids = [
        persisted_pid(&data, "p1", "a").unwrap(),
        persisted_pid(&data, "p1", "b").unwrap(),
    ];
    agent.shutdown().await;
    assert!(pids.iter().all(|p| alive(*p)));
    let report = nomos_agent::purge(&data).await.unwrap();
    assert_eq!(report.allocations, 1);
    assert_eq!(report.tasks_stopped, 2);
    assert!(pids.iter().all(|p| !alive(*p)));
    assert!(!data.exists());
}

#[tokio::test]
async fn service_checks_decide_health() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let agent = RunningAgent::start(test_config("n1", dir.path()), store.clone());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The task opens its port only after a marker file appears, so the check starts critical.
    let script =
        "while [ ! -e go ]; do sleep 0.1; done; exec busybox httpd -f -p 127.0.0.1:$NOMAD_PORT_db";
    let mut job = job(
        "db",
        JobType::Service,
        vec![raw_task("srv", "sh", &["-c", script])],
    );
    let check = |t: &str, name: &str| nomos_api::Check {
        name: name.into(),
        check_type: t.into(),
        interval_ns: 200_000_000,
        timeout_ns: 1_000_000_000,
        ..Default::default()
    };
    let mut script_check = check("script", "marker");
    script_check.command = "test".into();
    script_check.args = vec!["-e".into(), "go".into()];
    job.groups[0].services.push(nomos_api::Service {
        name: "db".into(),
        port: "db".into(),
        checks: vec![check("tcp", "port"), script_check],
        ..Default::default()
    });
    let a = with_port(alloc("c1", "n1", &job, 0), "db", port);
    place(&*store, &a, &job).await;
    let s = status_where(&store, "n1", "c1", "checks critical", |s| {
        s.checks
            .get("db.port")
            .map(|c| c.status == "critical")
            .unwrap_or(false)
    })
    .await;
    assert_eq!(s.client_status, ClientStatus::Running);
    assert_eq!(
        s.healthy, None,
        "running tasks with failing checks are not healthy yet"
    );
    std::fs::write(dir.path().join("n1/allocs/c1/srv/go"), "").unwrap();
    let s = status_where(&store, "n1", "c1", "healthy from checks", |s| {
        s.healthy == Some(true)
    })
    .await;
    assert_eq!(s.checks["db.port"].status, "passing");
    assert_eq!(s.checks["db.marker"].status, "passing");
    agent.shutdown().await;
    nomos_agent::purge(dir.path().join("n1")).await.unwrap();
}

#[tokio::test]
async fn artifacts_are_fetched_before_start_and_a_bad_one_is_a_task_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    // A host path as source: only with allow_host_paths (tests/confinement.rs: refused without).
    let mut cfg = test_config("n1", dir.path());
    cfg.allow_host_paths = true;
    let agent = RunningAgent::start(cfg, store.clone());
    let src = dir.path().join("payload.txt");
    std::fs::write(&src, "payload\n").unwrap();
    let mut t = raw_task("t", "cat", &["local/payload.txt"]);
    t.artifacts.push(nomos_api::Artifact {
        source: src.display().to_string(),
        ..Default::default()
    });
    let good = job("art", JobType::Batch, vec![t.clone()]);
    place(&*store, &alloc("art-1", "n1", &good, 0), &good).await;
    let s = status_where(&store, "n1", "art-1", "complete", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    assert!(events(&s, "t").contains(&"Downloading Artifacts".to_string()));
    let out = nomos_agent::logs::read_task_logs(
        &dir.path().join("n1"),
        "art-1",
        "t",
        nomos_agent::logs::LogStream::Stdout,
        0,
        100,
    )
    .unwrap();
    assert_eq!(out.data, b"payload\n");

    t.artifacts[0]
        .options
        .insert("checksum".into(), format!("sha256:{}", "0".repeat(64)));
    let mut bad = job("art2", JobType::Batch, vec![t]);
    bad.groups[0].restart.as_mut().unwrap().attempts = 0;
    place(&*store, &alloc("art-2", "n1", &bad, 0), &bad).await;
    let s = status_where(&store, "n1", "art-2", "failed", |s| {
        s.client_status == ClientStatus::Failed
    })
    .await;
    let ev = &s.task_states["t"].events;
    let f = ev
        .iter()
        .find(|e| e.event_type == "Failed Artifact Download")
        .unwrap_or_else(|| panic!("{ev:?}"));
    assert!(f.message.contains("checksum mismatch"), "{}", f.message);
    agent.shutdown().await;
}

#[tokio::test]
async fn lifecycle_hooks_order_prestart_main_and_poststart() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let data = dir.path().join("n1");
    let agent = RunningAgent::start(test_config("n1", dir.path()), store.clone());
    let mut pre = raw_task(
        "init",
        "sh",
        &["-c", "sleep 1; touch $NOMAD_ALLOC_DIR/data/ready"],
    );
    pre.lifecycle = Some(nomos_api::Lifecycle {
        hook: "prestart".into(),
        sidecar: false,
    });
    let main = raw_task(
        "main",
        "sh",
        &[
            "-c",
            "test -e $NOMAD_ALLOC_DIR/data/ready && echo saw-ready; exec sleep 300",
        ],
    );
    let mut post = raw_task("announce", "sh", &["-c", "echo main-is-up"]);
    post.lifecycle = Some(nomos_api::Lifecycle {
        hook: "poststart".into(),
        sidecar: false,
    });
    let job = job("hooks", JobType::Service, vec![post, main, pre]);
    place(&*store, &alloc("l1", "n1", &job, 0), &job).await;
    let s = status_where(&store, "n1", "l1", "poststart done", |s| {
        s.task_states
            .get("announce")
            .map(|t| t.state == TaskRunState::Dead)
            .unwrap_or(false)
    })
    .await;
    assert_eq!(s.client_status, ClientStatus::Running);
    assert!(!s.task_states["init"].failed && s.task_states["init"].state == TaskRunState::Dead);
    assert_eq!(
        s.task_states["init"].restarts, 0,
        "a completed prestart task is not restarted in a service job"
    );
    assert!(!s.task_states["announce"].failed);
    let read = |t| {
        String::from_utf8(
            nomos_agent::logs::read_task_logs(
                &data,
                "l1",
                t,
                nomos_agent::logs::LogStream::Stdout,
                0,
                100,
            )
            .unwrap()
            .data,
        )
        .unwrap()
    };
    assert_eq!(
        read("main"),
        "saw-ready\n",
        "main started after prestart completed"
    );
    assert_eq!(read("announce"), "main-is-up\n");
    agent.shutdown().await;
    nomos_agent::purge(&data).await.unwrap();
}

#[tokio::test]
async fn an_allocation_naming_a_missing_job_version_says_so_and_starts_once_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let agent = RunningAgent::start(test_config("n1", dir.path()), store.clone());
    let job = job("late", JobType::Batch, vec![raw_task("t", "true", &[])]);
    let a = alloc("m1", "n1", &job, 7);
    put_alloc(&*store, &a).await;
    let s = status_where(&store, "n1", "m1", "explained", |s| {
        s.client_description.contains("not found")
    })
    .await;
    assert_eq!(s.client_status, ClientStatus::Pending);
    place(&*store, &a, &job).await;
    status_where(
        &store,
        "n1",
        "m1",
        "complete once the version exists",
        |s| s.client_status == ClientStatus::Complete,
    )
    .await;
    agent.shutdown().await;
}

#[tokio::test]
async fn agent_metrics_pass_promtool() {
    let metrics = nomos_agent::metrics::Metrics::default();
    metrics.tasks_running.set(2);
    metrics.driver_error("docker");
    metrics.heartbeat_latency.observe(0.01);
    let promtool = "/usr/bin/promtool";
    assert!(
        std::path::Path::new(promtool).exists(),
        "promtool (Debian's prometheus package) is needed for this test"
    );
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.encode().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn poststop_tasks_run_after_the_allocation_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let store = store();
    let data = dir.path().join("n1");
    let agent = RunningAgent::start(test_config("n1", dir.path()), store.clone());
    let mut cleanup = raw_task("cleanup", "sh", &["-c", "echo cleaned-up"]);
    cleanup.lifecycle = Some(nomos_api::Lifecycle {
        hook: "poststop".into(),
        sidecar: false,
    });
    let job = job(
        "ps",
        JobType::Service,
        vec![raw_task("main", "sleep", &["300"]), cleanup],
    );
    let a = alloc("ps1", "n1", &job, 0);
    place(&*store, &a, &job).await;
    let s = status_where(&store, "n1", "ps1", "main running", |s| {
        s.task_states["main"].state == TaskRunState::Running
    })
    .await;
    assert_eq!(
        s.task_states["cleanup"].state,
        TaskRunState::Pending,
        "poststop waits for the main tasks"
    );
    stop_alloc(&*store, &a).await;
    let s = status_where(&store, "n1", "ps1", "complete", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    assert!(!s.task_states["cleanup"].failed);
    let out = nomos_agent::logs::read_task_logs(
        &data,
        "ps1",
        "cleanup",
        nomos_agent::logs::LogStream::Stdout,
        0,
        100,
    )
    .unwrap();
    assert_eq!(out.data, b"cleaned-up\n");
    agent.shutdown().await;
}
