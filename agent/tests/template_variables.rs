//! Templates reading Variables (`nomadVar`) with real tasks, against a stand-in for the
//! servers' Variables API: a task waits, pending, for a Variable that does not exist and starts
//! within about a second of its write, or stops waiting when its allocation stops; a Variable
//! the task may not read fails the start instead; a running task whose Variable goes away keeps
//! its last render, told once, and picks the Variable up again when it is back.

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

type Variables = Arc<Mutex<HashMap<String, serde_json::Value>>>;

/// `GET /v1/var/<path>`: the variable's items, 404 while it is not set, 403 under `denied/`.
async fn read_var(
    State(vars): State<Variables>,
    Path(path): Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if path.starts_with("denied/") {
        return (StatusCode::FORBIDDEN, "Permission denied").into_response();
    }
    match vars.lock().unwrap().get(&path) {
        Some(items) => {
            axum::Json(serde_json::json!({ "Path": path, "Items": items })).into_response()
        }
        None => (StatusCode::NOT_FOUND, "variable not found").into_response(),
    }
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
            .with_state(vars.clone());
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", tcp.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(tcp, app).await });
        let w = World::start_with(|c| c.servers = vec![url]);
        VarWorld { w, vars }
    }

    fn set(&self, path: &str, items: serde_json::Value) {
        self.vars.lock().unwrap().insert(path.to_string(), items);
    }

    fn remove(&self, path: &str) {
        self.vars.lock().unwrap().remove(path);
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
    // Polls after it find it missing again: no new event, the file as it was.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let s = w.w.status_where("gone-var", "a status", |_| true).await;
    assert_eq!(missing_events(&s), vec![MISSING_WEB], "{s:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "pw=one");
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
