//! The agent's HTTP endpoint: task logs (`GET /v1/client/logs/<alloc>/<task>?type=stdout|stderr
//! &offset=N&follow=true`) and Prometheus metrics (`GET /metrics`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::logs::{read_task_logs, LogStream};
use crate::metrics::Metrics;

#[derive(Clone)]
struct AppState {
    data_dir: PathBuf,
    metrics: Arc<Metrics>,
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
pub fn router(data_dir: PathBuf, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/v1/client/logs/{alloc}/{task}", get(logs_handler))
        .with_state(AppState { data_dir, metrics })
}

/// Serves until the listener fails or the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, data_dir: PathBuf, metrics: Arc<Metrics>) {
    if let Err(e) = axum::serve(listener, router(data_dir, metrics)).await {
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

fn valid_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && s != "." && s != ".."
}

async fn logs_handler(
    State(s): State<AppState>,
    Path((alloc, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    if !valid_name(&alloc) || !valid_name(&task) {
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
