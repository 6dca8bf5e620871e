//! The agent's HTTP endpoint, which the servers proxy to: an allocation's files (Nomad's
//! `GET /v1/client/fs/ls|stat|readat/<alloc>?path=`, and `fs/logs/<alloc>?task=&type=&offset=`
//! as plain bytes, with the offset to continue from in `X-Nomos-Next-Offset`; framing and
//! following are the server's), resource usage (`GET /v1/client/allocation/<alloc>/stats`,
//! `GET /v1/client/stats`), Prometheus metrics (`GET /metrics`) and in-place restarts of an
//! allocation's tasks (`POST /v1/allocation/<alloc>/restart[?task=NAME]`, also under
//! `/v1/client/allocation/...` with `PUT` as in Nomad's client API), and signals to them
//! (`POST|PUT /v1/client/allocation/<alloc>/signal` with `{"Signal", "Task"}`), and commands run
//! inside them over a websocket (`GET /v1/client/allocation/<alloc>/exec`, [`crate::exec_ws`]).
//! With TLS on it serves
//! HTTPS only to callers presenting a certificate signed by the cluster's CA.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

use crate::allocfs::{self, FsError};
use crate::confine::is_single_component;
use crate::logs::{read_task_logs, LogStream};
use crate::metrics::Metrics;
use crate::runner::{LiveAllocs, RestartRefusal};
use crate::stats::Samples;
use nomos_api::allocfs::MAX_READ_BYTES;

#[derive(Clone)]
struct AppState {
    data_dir: PathBuf,
    metrics: Arc<Metrics>,
    live: LiveAllocs,
    samples: Arc<Samples>,
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
    task: String,
    #[serde(rename = "type")]
    stream: Option<String>,
    offset: u64,
    limit: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct FsQuery {
    path: String,
    offset: u64,
    limit: Option<u64>,
}

/// The header carrying the log offset to continue from.
static NEXT_OFFSET: HeaderName = HeaderName::from_static("x-nomos-next-offset");

/// The router, for tests and for embedding.
pub fn router(data_dir: PathBuf, metrics: Arc<Metrics>, live: LiveAllocs) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/v1/client/fs/logs/{alloc}", get(logs_handler))
        .route("/v1/client/fs/ls/{alloc}", get(ls_handler))
        .route("/v1/client/fs/stat/{alloc}", get(stat_handler))
        .route("/v1/client/fs/readat/{alloc}", get(readat_handler))
        .route(
            "/v1/client/allocation/{alloc}/stats",
            get(alloc_stats_handler),
        )
        .route("/v1/client/stats", get(host_stats_handler))
        .route("/v1/allocation/{alloc}/restart", post(restart_handler))
        .route(
            "/v1/client/allocation/{alloc}/restart",
            post(restart_handler).put(restart_handler),
        )
        .route(
            "/v1/client/allocation/{alloc}/signal",
            post(signal_handler).put(signal_handler),
        )
        .route(
            "/v1/client/allocation/{alloc}/exec",
            get(crate::exec_ws::exec_handler).with_state(live.clone()),
        )
        .with_state(AppState {
            data_dir,
            metrics,
            live,
            samples: Arc::default(),
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

/// Where a request's files are: the agent's allocation directories.
fn alloc_root(s: &AppState, alloc: &str) -> PathBuf {
    s.data_dir.join("allocs").join(alloc)
}

/// A refused or failed filesystem read: 400 for a path the client may not read or that is
/// not what it asked for, 404 for a missing one, 500 when reading failed.
fn fs_refused(e: &FsError) -> Response {
    let code = match e {
        FsError::Refused(_) | FsError::WrongKind(_) => StatusCode::BAD_REQUEST,
        FsError::NotFound(_) => StatusCode::NOT_FOUND,
        FsError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, e.to_string()).into_response()
}

/// `GET /v1/client/fs/ls/<alloc>?path=`.
async fn ls_handler(
    State(s): State<AppState>,
    Path(alloc): Path<String>,
    Query(q): Query<FsQuery>,
) -> Response {
    match allocfs::list(&alloc_root(&s, &alloc), &alloc, &q.path) {
        Ok(files) => axum::Json(files).into_response(),
        Err(e) => fs_refused(&e),
    }
}

/// `GET /v1/client/fs/stat/<alloc>?path=`.
async fn stat_handler(
    State(s): State<AppState>,
    Path(alloc): Path<String>,
    Query(q): Query<FsQuery>,
) -> Response {
    match allocfs::stat(&alloc_root(&s, &alloc), &alloc, &q.path) {
        Ok(file) => axum::Json(file).into_response(),
        Err(e) => fs_refused(&e),
    }
}

/// `GET /v1/client/fs/readat/<alloc>?path=&offset=&limit=`: raw bytes.
async fn readat_handler(
    State(s): State<AppState>,
    Path(alloc): Path<String>,
    Query(q): Query<FsQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(MAX_READ_BYTES);
    match allocfs::read_at(&alloc_root(&s, &alloc), &alloc, &q.path, q.offset, limit) {
        Ok(data) => ([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response(),
        Err(e) => fs_refused(&e),
    }
}

/// `GET /v1/client/fs/logs/<alloc>?task=&type=&offset=&limit=`: up to `limit` bytes of the
/// task's log from `offset` (over its rotated files), with the offset to continue from in
/// `X-Nomos-Next-Offset`. The server frames and follows.
async fn logs_handler(
    State(s): State<AppState>,
    Path(alloc): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    if !is_single_component(&alloc) || !is_single_component(&q.task) {
        return (StatusCode::BAD_REQUEST, "invalid allocation or task name").into_response();
    }
    let Some(stream) = LogStream::parse(q.stream.as_deref().unwrap_or("stdout")) else {
        return (StatusCode::BAD_REQUEST, "type must be stdout or stderr").into_response();
    };
    let log_dir = crate::logs::log_dir(&s.data_dir, &alloc);
    if !crate::logs::live_path(&log_dir, &q.task, stream).exists() {
        let what = format!(
            "no {} log for task {} of allocation {alloc}",
            stream.as_str(),
            q.task
        );
        return (StatusCode::NOT_FOUND, what).into_response();
    }
    let limit = q.limit.unwrap_or(MAX_READ_BYTES).min(MAX_READ_BYTES) as usize;
    match read_task_logs(&s.data_dir, &alloc, &q.task, stream, q.offset, limit) {
        Ok(c) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (NEXT_OFFSET.clone(), c.next_offset.to_string()),
            ],
            c.data,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `GET /v1/client/allocation/<alloc>/stats`: Nomad's `AllocResourceUsage`.
async fn alloc_stats_handler(State(s): State<AppState>, Path(alloc): Path<String>) -> Response {
    match s.live.usage(&alloc).await {
        Ok(tasks) => axum::Json(s.samples.alloc_usage(&alloc, &tasks, now_ns())).into_response(),
        Err(r) => refused(&alloc, &r),
    }
}

/// `GET /v1/client/stats`: Nomad's `HostStats`.
async fn host_stats_handler(State(s): State<AppState>) -> Response {
    match s.samples.host(&s.data_dir, now_ns()) {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading host stats: {e}"),
        )
            .into_response(),
    }
}

fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}
