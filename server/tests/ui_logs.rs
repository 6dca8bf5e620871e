//! The web UI's live logs (`GET /ui/logs/{alloc}`): server-sent events relaying a task's log
//! from the node's real agent endpoint, starting with the last N lines, carrying what the
//! task writes later, resuming at `Last-Event-ID`, ending with an `end` event when the
//! allocation finishes or the log stays idle; bad parameters answer 400, more streams than
//! the budget 429, and with ACLs on the caller needs `read-logs` (the UI's cookie works).

mod acl_support;
mod common;

use std::path::Path;
use std::time::Duration;

use acl_support::*;
use common::{agent_over, seed_alloc_on_n1, TestServer};
use nomos_server::ui::logs::UiLogConfig;
use serde_json::json;

const ALLOC: &str = "cccc3333-0000";

/// An agent data directory whose task `server` wrote `line 1` .. `line 300` to stdout.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("allocs").join(ALLOC).join("alloc/logs");
    std::fs::create_dir_all(&logs).unwrap();
    let lines: String = (1..=300).map(|i| format!("line {i}\n")).collect();
    std::fs::write(logs.join("server.stdout"), lines).unwrap();
    std::fs::write(logs.join("server.stderr"), "oops\n").unwrap();
    dir
}

fn append(data: &Path, text: &str) {
    let log = data
        .join("allocs")
        .join(ALLOC)
        .join("alloc/logs/server.stdout");
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
}

/// An open event stream, read as text.
struct Events {
    resp: reqwest::Response,
    text: String,
}

impl Events {
    /// Reads until `done` holds for what has come so far (failing after 10 s).
    async fn until(&mut self, what: &str, done: impl Fn(&str) -> bool) -> &str {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(&self.text) {
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .unwrap_or_else(|_| panic!("no {what} within 10s; got:\n{}", self.text))
                .unwrap();
            match chunk {
                Some(c) => self.text.push_str(&String::from_utf8_lossy(&c)),
                None => panic!("stream ended before {what}; got:\n{}", self.text),
            }
        }
        &self.text
    }

    /// The log lines of every `lines` event so far.
    fn lines(&self) -> Vec<String> {
        self.text
            .split("\n\n")
            .filter(|e| e.starts_with("event: lines"))
            .flat_map(|e| e.lines().filter_map(|l| l.strip_prefix("data: ")))
            .map(str::to_string)
            .collect()
    }
}

async fn open(srv: &TestServer, query: &str, headers: &[(&str, &str)]) -> (u16, Events) {
    let mut req = srv
        .client
        .get(srv.url(&format!("/ui/logs/{ALLOC}?{query}")));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    (
        code,
        Events {
            resp,
            text: String::new(),
        },
    )
}

#[tokio::test]
async fn the_last_lines_come_first_then_what_the_task_writes_later_until_it_finishes() {
    let data = data_dir();
    let srv = TestServer::start().await;
    seed_alloc_on_n1(
        &srv,
        &agent_over(data.path()).await,
        ALLOC,
        "server",
        "running",
    )
    .await;

    let (code, mut ev) = open(&srv, "task=server&lines=50", &[]).await;
    assert_eq!(code, 200);
    assert_eq!(
        ev.resp.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    ev.until("the tail", |t| t.contains("data: line 300\n"))
        .await;
    let want: Vec<String> = (251..=300).map(|i| format!("line {i}")).collect();
    assert_eq!(ev.lines(), want);
    let size: usize = (1..=300).map(|i| format!("line {i}\n").len()).sum();
    assert!(ev.text.contains(&format!("id: {size}\n")), "{}", ev.text);

    append(data.path(), "later\n");
    ev.until("the later line", |t| t.contains("data: later\n"))
        .await;

    seed_alloc_on_n1(
        &srv,
        &agent_over(data.path()).await,
        ALLOC,
        "server",
        "complete",
    )
    .await;
    ev.until("the end", |t| t.contains("event: end\n")).await;
    assert!(
        ev.text.contains("data: the task has finished"),
        "{}",
        ev.text
    );
    assert!(
        ev.resp.chunk().await.unwrap().is_none(),
        "the stream closes"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_reconnect_resumes_at_its_last_event_id_and_stderr_is_its_own_stream() {
    let data = data_dir();
    let srv = TestServer::start().await;
    seed_alloc_on_n1(
        &srv,
        &agent_over(data.path()).await,
        ALLOC,
        "server",
        "running",
    )
    .await;
    let before_last: usize = (1..=299).map(|i| format!("line {i}\n").len()).sum();
    let id = before_last.to_string();
    let (code, mut ev) = open(&srv, "task=server", &[("Last-Event-ID", &id)]).await;
    assert_eq!(code, 200);
    ev.until("line 300", |t| t.contains("data: line 300\n"))
        .await;
    assert_eq!(ev.lines(), ["line 300"]);

    let (code, mut ev) = open(&srv, "task=server&type=stderr", &[]).await;
    assert_eq!(code, 200);
    ev.until("stderr", |t| t.contains("data: oops\n")).await;
    assert_eq!(ev.lines(), ["oops"]);
    srv.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_and_streams_are_bounded_in_number_and_idle_time() {
    let data = data_dir();
    let srv = TestServer::start_with(
        |mut s| {
            s.ui.logs = UiLogConfig::new(1, Duration::from_millis(1500));
            s
        },
        nomos_server::DEFAULT_BODY_LIMIT,
    )
    .await;
    seed_alloc_on_n1(
        &srv,
        &agent_over(data.path()).await,
        ALLOC,
        "server",
        "running",
    )
    .await;
    for (query, want) in [
        ("task=server&lines=0", 400),
        ("task=server&lines=5001", 400),
        ("task=server&lines=many", 400),
        ("task=server&type=stdin", 400),
        ("task=nope", 404),
    ] {
        let (code, _) = open(&srv, query, &[]).await;
        assert_eq!(code, want, "{query}");
    }
    let resp = srv
        .client
        .get(srv.url("/ui/logs/ffff9999?task=server"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);

    let (code, mut first) = open(&srv, "task=server&lines=1", &[]).await;
    assert_eq!(code, 200);
    let (code, _) = open(&srv, "task=server", &[]).await;
    assert_eq!(code, 429, "one stream at a time here");
    first
        .until("the idle end", |t| t.contains("event: end\n"))
        .await;
    assert!(first.text.contains("no output for"), "{}", first.text);
    assert!(first.resp.chunk().await.unwrap().is_none());
    let (code, _) = open(&srv, "task=server&lines=1", &[]).await;
    assert_eq!(code, 200, "the ended stream gave its place back");
    srv.stop().await;
}

#[tokio::test]
async fn with_acls_the_caller_needs_read_logs_and_the_ui_cookie_carries_the_token() {
    let data = data_dir();
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    seed_alloc_on_n1(
        &srv,
        &agent_over(data.path()).await,
        ALLOC,
        "server",
        "running",
    )
    .await;
    let rules = "namespace \"default\" {\n  capabilities = [\"read-job\", \"read-logs\"]\n}";
    policy(&srv, &root, "reader", rules).await;
    let rules = "namespace \"default\" {\n  capabilities = [\"read-job\"]\n}";
    policy(&srv, &root, "jobs-only", rules).await;
    let reader = token_with(&srv, &root, json!({"Policies": ["reader"]})).await;
    let jobs_only = token_with(&srv, &root, json!({"Policies": ["jobs-only"]})).await;
    let cookie = |t: &serde_json::Value| format!("nomos-token={}", t["SecretID"].as_str().unwrap());

    let (code, _) = open(&srv, "task=server&lines=1", &[]).await;
    assert_eq!(code, 403, "anonymous");
    let (code, _) = open(
        &srv,
        "task=server&lines=1",
        &[("Cookie", &cookie(&jobs_only))],
    )
    .await;
    assert_eq!(code, 403, "read-job without read-logs");
    let (code, mut ev) = open(&srv, "task=server&lines=1", &[("Cookie", &cookie(&reader))]).await;
    assert_eq!(code, 200);
    ev.until("the last line", |t| t.contains("data: line 300\n"))
        .await;
    srv.stop().await;
}
