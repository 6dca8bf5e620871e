//! The agent's HTTP endpoint: task logs (whole, from an offset), an allocation's files
//! (listed, read at an offset, paths out of it refused), resource usage, Prometheus metrics
//! and in-place restarts of an allocation's tasks.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use nomos_api::{ClientStatus, JobType};
use nomos_store::{EmbeddedStore, Store};

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    request(addr, "GET", path)
}

fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// GETs `path` until its body holds `needle` (30 s at most); answers the body.
async fn eventually_get(addr: std::net::SocketAddr, path: &'static str, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = tokio::task::spawn_blocking(move || get(addr, path))
            .await
            .unwrap();
        if code == 200 && body.contains(needle) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path}: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_metrics_are_served_over_http() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config("h1", dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    cfg.http_addr = Some(addr);
    let agent = RunningAgent::start(cfg, store.clone());
    let job = job(
        "talk",
        JobType::Service,
        vec![raw_task(
            "t",
            "sh",
            &[
                "-c",
                "echo first; echo oops >&2; sleep 1; echo second; exec sleep 300",
            ],
        )],
    );
    place(&*store, &alloc("h-1", "h1", &job, 0), &job).await;
    status_where(&store, "h1", "h-1", "running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;

    let logs = "/v1/client/fs/logs/h-1?task=t&type=stdout";
    let body = eventually_get(addr, logs, "second").await;
    assert_eq!(body, "first\nsecond\n");
    for (path, want_code, want_body) in [
        (
            "/v1/client/fs/logs/h-1?task=t&type=stdout&offset=6",
            200,
            "second\n",
        ),
        ("/v1/client/fs/logs/h-1?task=t&type=stderr", 200, "oops\n"),
        ("/v1/client/fs/logs/h-1?task=nope&type=stdout", 404, ""),
        ("/v1/client/fs/logs/h-1?task=t&type=stdin", 400, ""),
        (
            "/v1/client/fs/readat/h-1?path=alloc/logs/t.stdout&offset=6&limit=3",
            200,
            "sec",
        ),
        ("/v1/client/fs/readat/h-1?path=t/secrets/x", 400, ""),
        ("/v1/client/fs/ls/h-1?path=/../..", 400, ""),
    ] {
        let (code, body) = tokio::task::spawn_blocking(move || get(addr, path))
            .await
            .unwrap();
        assert_eq!(code, want_code, "{path}: {body}");
        if code == 200 {
            assert_eq!(body, want_body, "{path}");
        }
    }
    let (code, body) =
        tokio::task::spawn_blocking(move || get(addr, "/v1/client/fs/ls/h-1?path=/"))
            .await
            .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(r#""Name":"alloc","IsDir":true"#) && body.contains(r#""Name":"t""#),
        "{body}"
    );

    // The running task's usage, and the host's.
    let (code, body) =
        tokio::task::spawn_blocking(move || get(addr, "/v1/client/allocation/h-1/stats"))
            .await
            .unwrap();
    assert_eq!(code, 200, "{body}");
    let usage: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        usage["Tasks"]["t"]["ResourceUsage"]["MemoryStats"]["RSS"]
            .as_u64()
            .unwrap()
            > 0,
        "{body}"
    );
    assert!(
        usage["ResourceUsage"]["CpuStats"]["Percent"].is_number(),
        "{body}"
    );
    let (code, _) =
        tokio::task::spawn_blocking(move || get(addr, "/v1/client/allocation/nope/stats"))
            .await
            .unwrap();
    assert_eq!(code, 404);
    let (code, body) = tokio::task::spawn_blocking(move || get(addr, "/v1/client/stats"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let host: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(host["Memory"]["Total"].as_u64().unwrap() > 0, "{body}");

    let (code, metrics) = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("nomos_agent_tasks_running 1"), "{metrics}");
    assert!(
        metrics.contains("nomos_agent_task_starts_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nomos_agent_heartbeat_latency_seconds_count"),
        "{metrics}"
    );
    agent.shutdown().await;
    nomos_agent::purge(dir.path().join("h1")).await.unwrap();
}

fn free_addr() -> std::net::SocketAddr {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_over_http_replaces_the_process_in_place() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config("r1", dir.path());
    let addr = free_addr();
    cfg.http_addr = Some(addr);
    let data_dir = cfg.data_dir.clone();
    let agent = RunningAgent::start(cfg, store.clone());
    let job = job(
        "bounce",
        JobType::Service,
        vec![
            raw_task("a", "sleep", &["300"]),
            raw_task("b", "sleep", &["300"]),
        ],
    );
    place(&*store, &alloc("r-1", "r1", &job, 0), &job).await;
    status_where(&store, "r1", "r-1", "both tasks running", |s| {
        s.client_status == ClientStatus::Running
            && ["a", "b"].iter().all(|t| {
                s.task_states
                    .get(*t)
                    .map(|ts| ts.state == nomos_api::TaskRunState::Running)
                    .unwrap_or(false)
            })
    })
    .await;
    let a1 = persisted_pid(&data_dir, "r-1", "a").expect("pid of a");
    let b1 = persisted_pid(&data_dir, "r-1", "b").expect("pid of b");

    // One task: only it gets a new process.
    let (code, body) = tokio::task::spawn_blocking(move || {
        request(addr, "POST", "/v1/allocation/r-1/restart?task=a")
    })
    .await
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"a\"") && !body.contains("\"b\""), "{body}");
    let s = status_where(&store, "r1", "r-1", "a restarted", |s| {
        let a = &s.task_states["a"];
        a.restarts == 1
            && a.state == nomos_api::TaskRunState::Running
            && events(s, "a").last().map(String::as_str) == Some("Started")
    })
    .await;
    assert!(
        events(&s, "a").iter().any(|e| e == "Restart Signaled"),
        "{:?}",
        events(&s, "a")
    );
    assert_eq!(s.task_states["b"].restarts, 0);
    let a2 = eventually("a's new pid", || async {
        persisted_pid(&data_dir, "r-1", "a").filter(|p| *p != a1)
    })
    .await;
    assert!(alive(a2), "restarted task runs");
    assert!(!alive(a1), "the old process is gone");
    assert_eq!(persisted_pid(&data_dir, "r-1", "b"), Some(b1));

    // Every task, through Nomad's client path.
    let (code, body) = tokio::task::spawn_blocking(move || {
        request(addr, "PUT", "/v1/client/allocation/r-1/restart")
    })
    .await
    .unwrap();
    assert_eq!(code, 200, "{body}");
    status_where(&store, "r1", "r-1", "both restarted again", |s| {
        s.task_states["a"].restarts == 2
            && s.task_states["b"].restarts == 1
            && ["a", "b"].iter().all(|t| {
                s.task_states[*t].state == nomos_api::TaskRunState::Running
                    && events(s, t).last().map(String::as_str) == Some("Started")
            })
    })
    .await;
    let b2 = persisted_pid(&data_dir, "r-1", "b").unwrap();
    assert_ne!(b2, b1);
    assert!(alive(b2) && !alive(b1));

    // Refusals.
    let (code, _) =
        tokio::task::spawn_blocking(move || request(addr, "POST", "/v1/allocation/nope/restart"))
            .await
            .unwrap();
    assert_eq!(code, 404);
    let (code, _) = tokio::task::spawn_blocking(move || {
        request(addr, "POST", "/v1/allocation/r-1/restart?task=zzz")
    })
    .await
    .unwrap();
    assert_eq!(code, 404);
    let (_, metrics) = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
        .await
        .unwrap();
    assert!(
        metrics.contains("nomos_agent_task_restarts_total 3"),
        "{metrics}"
    );

    stop_alloc(&*store, &alloc("r-1", "r1", &job, 0)).await;
    status_where(&store, "r1", "r-1", "stopped", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    let (code, _) =
        tokio::task::spawn_blocking(move || request(addr, "POST", "/v1/allocation/r-1/restart"))
            .await
            .unwrap();
    assert!(code == 404 || code == 409, "{code}");
    agent.shutdown().await;
    nomos_agent::purge(dir.path().join("r1")).await.unwrap();
}
