//! Templates reading Variables (`nomadVar`) with real tasks, against a stand-in for the
//! servers' Variables API: a task waits, pending, for a Variable that does not exist and starts
//! within about a second of its write, or stops waiting when its allocation stops; a Variable
//! the task may not read fails the start instead; a running task whose Variable goes away keeps
//! its last render, told once, and picks the Variable up again when it is back. The stand-in
//! answers `/v1/vars` as a blocking query, as the servers do: a running task's templates
//! follow it, and read their Variables again only after a change.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use common::world::*;
use common::*;
use nomos_api::{JobType, Task, TaskRunState, Template};
use nomos_store::keys;

/// The stand-in's Variables, the index of their last change, and how often each path was
/// read.
#[derive(Clone, Default)]
struct Variables {
    items: Arc<Mutex<HashMap<String, serde_json::Value>>>,
    index: Arc<tokio::sync::watch::Sender<i64>>,
    reads: Arc<Mutex<HashMap<String, usize>>>,
}

impl Variables {
    fn changed(&self) {
        self.index.send_modify(|i| *i += 1);
    }
}

/// `GET /v1/var/<path>`: the variable's items, 404 while it is not set, 403 under `denied/`.
async fn read_var(
    State(vars): State<Variables>,
    Path(path): Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    *vars.reads.lock().unwrap().entry(path.clone()).or_default() += 1;
    if path.starts_with("denied/") {
        return (StatusCode::FORBIDDEN, "Permission denied").into_response();
    }
    match vars.items.lock().unwrap().get(&path) {
        Some(items) => {
            axum::Json(serde_json::json!({ "Path": path, "Items": items })).into_response()
        }
        None => (StatusCode::NOT_FOUND, "variable not found").into_response(),
    }
}

/// `GET /v1/vars?index=N`: a blocking query that answers (an empty list, and the index of the
/// last change, counted from 1) once the Variables changed after `N`, or after its wait.
async fn list_vars(
    State(vars): State<Variables>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let after: i64 = q.get("index").and_then(|i| i.parse().ok()).unwrap_or(0);
    let mut changes = vars.index.subscribe();
    let _ = tokio::time::timeout(
        Duration::from_secs(300),
        changes.wait_for(|now| *now + 1 > after),
    )
    .await;
    let index = *changes.borrow();
    (
        [("X-Nomad-Index", (index + 1).to_string())],
        axum::Json(serde_json::json!([])),
    )
        .into_response()
}

/// An agent (the [`World`]) whose templates read Variables from a stand-in for the servers'
/// API, and the Variables it serves.
struct VarWorld {
    w: World,
    vars: Variables,
}

impl VarWorld {
    async fn start() -> VarWorld {
        let vars: Variables = Default::default();
        let app = axum::Router::new()
            .route("/v1/var/{*path}", axum::routing::get(read_var))
            .route("/v1/vars", axum::routing::get(list_vars))
            .with_state(vars.clone());
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", tcp.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(tcp, app).await });
        let w = World::start_with(|c| c.servers = vec![url]);
        VarWorld { w, vars }
    }

    fn set(&self, path: &str, items: serde_json::Value) {
        self.vars
            .items
            .lock()
            .unwrap()
            .insert(path.to_string(), items);
        self.vars.changed();
    }

    fn remove(&self, path: &str) {
        self.vars.items.lock().unwrap().remove(path);
        self.vars.changed();
    }

    /// How often `path` was read.
    fn reads(&self, path: &str) -> usize {
        self.vars
            .reads
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn file(&self, alloc: &str) -> PathBuf {
        self.w.file(alloc, "local/out")
    }

    /// Places a service allocation running `task`, with the identity the servers would issue.
    async fn place(&self, id: &str, task: Task) -> nomos_api::Allocation {
        let issued = serde_json::json!({ "tasks": { "t": "token-of-t" } });
        let key = keys::identity("n1", id).into_bytes();
        let value = serde_json::to_vec(&issued).unwrap();
        self.w
            .store
            .put(key, value, Default::default())
            .await
            .unwrap();
        self.w.place(id, JobType::Service, task).await
    }
}

/// A task that renders `body` to `local/out` (change_mode noop), then waits.
fn task_with(body: &str) -> Task {
    let mut t = raw_task("t", "/bin/sh", &["-c", "exec sleep 3600"]);
    t.templates.push(Template {
        data: body.into(),
        destination: "local/out".into(),
        change_mode: "noop".into(),
        ..Default::default()
    });
    t
}

const PASSWORD: &str = r#"pw={{ with nomadVar "nomad/jobs/web" }}{{ .password }}{{ end }}"#;
const MISSING_WEB: &str = "Missing: nomad.var.block(nomad/jobs/web@default)";

#[tokio::test]
async fn a_task_waits_pending_for_a_missing_variable_and_starts_about_a_second_after_its_write() {
    let w = VarWorld::start().await;
    let a = w.place("wait-var", task_with(PASSWORD)).await;
    let s =
        w.w.status_where("wait-var", "the Missing event", |s| {
            !missing_events(s).is_empty()
        })
        .await;
    assert_eq!(missing_events(&s), vec![MISSING_WEB]);
    assert_eq!(s.task_states["t"].state, TaskRunState::Pending, "{s:?}");
    // The servers are asked again every second; the event is not repeated.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let s = w.w.status_where("wait-var", "a status", |_| true).await;
    assert!(!started(&s), "{s:?}");
    assert_eq!(missing_events(&s), vec![MISSING_WEB], "{s:?}");
    assert!(!w.file("wait-var").exists());

    let written_at = now_ms();
    w.set(
        "nomad/jobs/web",
        serde_json::json!({ "password": "s3cret" }),
    );
    let s = w.w.status_where("wait-var", "started", started).await;
    let after = s.task_states["t"].started_at_ms.saturating_sub(written_at);
    assert!(after < 2000, "started {after} ms after the write");
    assert_eq!(
        std::fs::read_to_string(w.file("wait-var")).unwrap(),
        "pw=s3cret"
    );
    w.w.stop(&[&a]).await;
}

#[tokio::test]
async fn a_stopped_allocation_stops_waiting_for_its_variable() {
    let w = VarWorld::start().await;
    let a = w.place("never-var", task_with(PASSWORD)).await;
    w.w.status_where("never-var", "the Missing event", |s| {
        !missing_events(s).is_empty()
    })
    .await;
    stop_alloc(&*w.w.store, &a).await;
    let s =
        w.w.status_where("never-var", "the task dead", |s| {
            s.task_states
                .get("t")
                .is_some_and(|t| t.state == TaskRunState::Dead)
        })
        .await;
    assert!(!started(&s), "{s:?}");
    assert!(
        events(&s, "t").iter().any(|e| e == "Killed"),
        "{:?}",
        events(&s, "t")
    );
    w.w.stop(&[]).await;
}

#[tokio::test]
async fn a_variable_the_task_may_not_read_fails_the_start_instead_of_waiting() {
    let w = VarWorld::start().await;
    let body = r#"{{ with nomadVar "denied/x" }}{{ .a }}{{ end }}"#;
    let a = w.place("denied", task_with(body)).await;
    let s =
        w.w.status_where("denied", "the hook failure", |s| {
            events(s, "t").iter().any(|e| e == "Task hook failed")
        })
        .await;
    assert!(missing_events(&s).is_empty(), "{s:?}");
    let failed = s.task_states["t"]
        .events
        .iter()
        .find(|e| e.event_type == "Task hook failed")
        .unwrap();
    assert!(failed.message.contains("403"), "{}", failed.message);
    w.w.stop(&[&a]).await;
}

#[tokio::test]
async fn a_running_tasks_variable_that_goes_away_keeps_the_last_render_told_once() {
    let w = VarWorld::start().await;
    w.set("nomad/jobs/web", serde_json::json!({ "password": "one" }));
    let a = w.place("gone-var", task_with(PASSWORD)).await;
    w.w.status_where("gone-var", "started", started).await;
    let file = w.file("gone-var");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "pw=one");
    w.remove("nomad/jobs/web");
    w.w.status_where("gone-var", "the Missing event", |s| {
        !missing_events(s).is_empty()
    })
    .await;
    // Nothing changes for a while: the templates follow the blocking query and do not read
    // the Variable again; no new event, the file as it was.
    let reads = w.reads("nomad/jobs/web");
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        w.reads("nomad/jobs/web"),
        reads,
        "read again with nothing changed"
    );
    let s = w.w.status_where("gone-var", "a status", |_| true).await;
    assert_eq!(missing_events(&s), vec![MISSING_WEB], "{s:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "pw=one");
    // Another Variable changes: rendered again, still missing, still told once.
    w.set("nomad/jobs/other", serde_json::json!({ "x": "y" }));
    eventually("a render after the change", || async {
        (w.reads("nomad/jobs/web") > reads).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = w.w.status_where("gone-var", "a status", |_| true).await;
    assert_eq!(missing_events(&s), vec![MISSING_WEB], "{s:?}");
    // Back, with another value: rendered again, without a restart (noop).
    w.set("nomad/jobs/web", serde_json::json!({ "password": "two" }));
    eventually("the new render", || async {
        (std::fs::read_to_string(&file).ok()? == "pw=two").then_some(())
    })
    .await;
    let s = w.w.status_where("gone-var", "a status", |_| true).await;
    assert_eq!(s.task_states["t"].restarts, 0, "{s:?}");
    w.w.stop(&[&a]).await;
}
