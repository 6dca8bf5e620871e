//! The agent's HTTP endpoint: task logs (`GET /v1/client/logs/<alloc>/<task>?type=stdout|stderr
//! &offset=N&follow=true`), Prometheus metrics (`GET /metrics`) and in-place restarts of an
//! allocation's tasks (`POST /v1/allocation/<alloc>/restart[?task=NAME]`, also under
//! `/v1/client/allocation/...` with `PUT` as in Nomad's client API), and signals to them
//! (`POST|PUT /v1/client/allocation/<alloc>/signal` with `{"Signal", "Task"}`). With TLS on it serves
//! HTTPS only to callers presenting a certificate signed by the cluster's CA.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::confine::is_single_component;
use crate::logs::{read_task_logs, LogStream};
use crate::metrics::Metrics;
use crate::runner::{LiveAllocs, RestartRefusal};

#[derive(Clone)]
struct AppState {
    data_dir: PathBuf,
    metrics: Arc<Metrics>,
    live: LiveAllocs,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RestartQuery {
    task: Option<String>,
}

/// An optional restart body: `{"task": "web"}` or Nomad's `{"TaskName": "web"}`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RestartBody {
    #[serde(alias = "TaskName")]
    task: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct LogQuery {
    #[serde(rename = "type")]
    stream: Option<String>,
    offset: u64,
    follow: bool,
}

/// The router, for tests and for embedding.
pub fn router(data_dir: PathBuf, metrics: Arc<Metrics>, live: LiveAllocs) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/v1/client/logs/{alloc}/{task}", get(logs_handler))
        .route("/v1/allocation/{alloc}/restart", post(restart_handler))
        .route(
            "/v1/client/allocation/{alloc}/restart",
            post(restart_handler).put(restart_handler),
        )
        .route(
            "/v1/client/allocation/{alloc}/signal",
            post(signal_handler).put(signal_handler),
        )
        .with_state(AppState {
            data_dir,
            metrics,
            live,
        })
}

/// Serves until the listener fails or the task is aborted; over TLS when `tls` is given (its
/// client verifier decides who may call).
pub async fn serve(
    listener: tokio::net::TcpListener,
    data_dir: PathBuf,
    metrics: Arc<Metrics>,
    live: LiveAllocs,
    tls: Option<Arc<nomos_tls::rustls::ServerConfig>>,
) {
    let app = router(data_dir, metrics, live);
    let served = match tls {
        Some(tls) => axum::serve(nomos_tls::TlsListener::new(listener, tls), app).await,
        None => axum::serve(listener, app).await,
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "agent http endpoint stopped");
    }
}

async fn metrics_handler(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn restart_handler(
    State(s): State<AppState>,
    Path(alloc): Path<String>,
    Query(q): Query<RestartQuery>,
    body: axum::body::Bytes,
) -> Response {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        RestartBody::default()
    } else {
        match serde_json::from_slice::<RestartBody>(&body) {
            Ok(b) => b,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("invalid restart body: {e}"),
                )
                    .into_response()
            }
        }
    };
    let task = q.task.or(from_body.task).filter(|t| !t.is_empty());
    match s.live.restart(&alloc, task.as_deref()) {
        Ok(tasks) => {
            axum::Json(serde_json::json!({ "alloc_id": alloc, "restarted": tasks })).into_response()
        }
        Err(r) => refused(&alloc, &r),
    }
}

/// A refused restart or signal: 404 for an unknown allocation or task, 409 when nothing asked
/// for runs, 500 when the driver failed.
fn refused(alloc: &str, r: &RestartRefusal) -> Response {
    let code = match r {
        RestartRefusal::UnknownAlloc | RestartRefusal::UnknownTask(_) => StatusCode::NOT_FOUND,
        RestartRefusal::NotRunning => StatusCode::CONFLICT,
        RestartRefusal::SignalFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, format!("allocation {alloc}: {r}")).into_response()
}

/// `{"Signal": "SIGHUP", "Task": "web"}` (no task: every running task).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct SignalBody {
    #[serde(rename = "Signal")]
    signal: String,
    #[serde(rename = "Task")]
    task: String,
}

async fn signal_handler(
    State(s): State<AppState>,
    Path(alloc): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let req: SignalBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("invalid signal body: {e}")).into_response()
        }
    };
    if let Err(e) = crate::driver::parse_signal(&req.signal) {
        return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
    }
    let task = Some(req.task.as_str()).filter(|t| !t.is_empty());
    match s.live.signal(&alloc, task, &req.signal).await {
        Ok(tasks) => {
            axum::Json(serde_json::json!({ "alloc_id": alloc, "signalled": tasks })).into_response()
        }
        Err(r) => refused(&alloc, &r),
    }
}

async fn logs_handler(
    State(s): State<AppState>,
    Path((alloc, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    if !is_single_component(&alloc) || !is_single_component(&task) {
        return (StatusCode::BAD_REQUEST, "invalid allocation or task name").into_response();
    }
    let stream = match q.stream.as_deref().map(LogStream::parse) {
        None => LogStream::Stdout,
        Some(Some(s)) => s,
        Some(None) => {
            return (StatusCode::BAD_REQUEST, "type must be stdout or stderr").into_response()
        }
    };
    let live = crate::logs::live_path(&crate::logs::log_dir(&s.data_dir, &alloc), &task, stream);
    if !live.exists() {
        return (
            StatusCode::NOT_FOUND,
            format!(
                "no {} log for task {task} of allocation {alloc}",
                stream.as_str()
            ),
        )
            .into_response();
    }
    if !q.follow {
        return match read_task_logs(&s.data_dir, &alloc, &task, stream, q.offset, 16 << 20) {
            Ok(c) => ([(header::CONTENT_TYPE, "application/octet-stream")], c.data).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
    }
    let data_dir = s.data_dir.clone();
    let body = futures::stream::unfold(q.offset, move |offset| {
        let data_dir = data_dir.clone();
        let alloc = alloc.clone();
        let task = task.clone();
        async move {
            loop {
                match read_task_logs(&data_dir, &alloc, &task, stream, offset, 64 << 10) {
                    Ok(c) if !c.data.is_empty() => {
                        return Some((Ok::<_, std::io::Error>(c.data), c.next_offset))
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                    Err(e) => return Some((Err(e), offset)),
                }
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(body),
    )
        .into_response()
}
