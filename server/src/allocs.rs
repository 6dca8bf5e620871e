//! Allocation handlers: list (by job or node), get by unique ID prefix (the desired allocation
//! joined with the agent's observed status), stop, restart and logs.
//!
//! Logs are read through a [`LogReader`] when this process holds the node's files (`nctl dev`,
//! where the agent runs in-process), and otherwise fetched from the agent's `http_addr`
//! (`GET {http_addr}/v1/client/logs/{alloc}/{task}?type=&offset=&follow=`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use nomos_api::{AllocStatus, Allocation, DesiredStatus};
use nomos_store::keys;
use serde::Deserialize;

use crate::error::ServerError;
use crate::kv::{self, Entry};
use crate::views::AllocView;
use crate::AppState;

/// Reads task logs held by this process (the in-process agent of `nctl dev`).
pub trait LogReader: Send + Sync {
    /// `None` when this process does not hold `node`'s files; otherwise up to `limit` bytes from
    /// `offset` and the offset to continue from.
    fn read(
        &self,
        node: &str,
        alloc: &str,
        task: &str,
        stderr: bool,
        offset: u64,
        limit: usize,
    ) -> Option<std::io::Result<(Vec<u8>, u64)>>;
}

/// A shareable log reader.
pub type SharedLogReader = Arc<dyn LogReader>;

/// Every allocation joined with its status, in key order.
pub async fn all_allocs(st: &AppState) -> Result<Vec<AllocView>, ServerError> {
    let allocs: Vec<Entry<Allocation>> =
        kv::list_json(st.store.as_ref(), &keys::allocs_prefix(None)).await?;
    let statuses: Vec<Entry<AllocStatus>> =
        kv::list_json(st.store.as_ref(), &keys::alloc_status_prefix(None)).await?;
    let mut by_key: std::collections::HashMap<String, AllocStatus> =
        statuses.into_iter().map(|e| (e.key, e.value)).collect();
    Ok(allocs
        .into_iter()
        .map(|e| {
            let status = by_key.remove(&keys::alloc_status(&e.value.node, &e.value.id));
            AllocView {
                allocation: e.value,
                status,
                modify_index: e.mod_revision,
            }
        })
        .collect())
}

/// One allocation by exact ID or unique prefix.
pub async fn find_alloc(st: &AppState, id: &str) -> Result<AllocView, ServerError> {
    let all = all_allocs(st).await?;
    kv::resolve_prefix(&all, id, "allocation", |a| a.allocation.id.as_str()).cloned()
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    pub job: Option<String>,
    pub namespace: Option<String>,
    pub node: Option<String>,
    pub prefix: Option<String>,
}

/// `GET /v1/allocations?job=&namespace=&node=&prefix=`.
pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<AllocView>>, ServerError> {
    let mut all = all_allocs(&st).await?;
    all.retain(|a| {
        let al = &a.allocation;
        q.job.as_deref().is_none_or(|j| al.job_id == j)
            && q.namespace.as_deref().is_none_or(|n| al.namespace == n)
            && q.node.as_deref().is_none_or(|n| al.node == n)
            && q.prefix.as_deref().is_none_or(|p| al.id.starts_with(p))
    });
    Ok(Json(all))
}

/// `GET /v1/allocation/{id}`.
pub async fn get(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AllocView>, ServerError> {
    Ok(Json(find_alloc(&st, &id).await?))
}

/// `POST /v1/allocation/{id}/stop`: marks the allocation `stop`; the agent stops its tasks and
/// the jobs controller places a replacement if the job still wants one.
pub async fn stop(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AllocView>, ServerError> {
    let mut view = find_alloc(&st, &id).await?;
    let key = keys::alloc(&view.allocation.node, &view.allocation.id);
    if view.allocation.desired_status != DesiredStatus::Stop {
        view.allocation.desired_status = DesiredStatus::Stop;
        view.allocation.desired_description = "stopped by user".into();
        view.allocation.modified_at_ms = now_ms();
        view.modify_index =
            kv::put_if(st.store.as_ref(), &key, &view.allocation, view.modify_index).await?;
    }
    Ok(Json(view))
}

/// `?task=NAME` on a restart: only that task (default: every running task).
#[derive(Debug, Deserialize, Default)]
pub struct RestartQuery {
    #[serde(default)]
    pub task: Option<String>,
}

/// `POST /v1/allocation/{id}/restart[?task=NAME]`: asks the allocation's agent to restart its
/// tasks in place (`POST {http_addr}/v1/allocation/{alloc}/restart` on the agent).
pub async fn restart(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RestartQuery>,
) -> Result<Json<AllocView>, ServerError> {
    let view = find_alloc(&st, &id).await?;
    let node = crate::nodes::get_node(&st, &view.allocation.node).await?;
    if node.node.http_addr.is_empty() {
        return Err(ServerError::Agent(format!(
            "node {} does not serve an HTTP endpoint, so its tasks cannot be restarted remotely",
            view.allocation.node
        )));
    }
    let url = format!(
        "{}/v1/allocation/{}/restart",
        base_url(&node.node.http_addr),
        view.allocation.id
    );
    let mut req = st.http.post(&url);
    if let Some(task) = q.task.as_deref().filter(|t| !t.is_empty()) {
        req = req.query(&[("task", task)]);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| ServerError::Agent(format!("{url}: {e}")))?;
    if !resp.status().is_success() {
        let code = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(ServerError::Agent(format!("{url} answered {code}: {text}")));
    }
    Ok(Json(view))
}

#[derive(Debug, Deserialize, Default)]
pub struct LogsQuery {
    pub task: Option<String>,
    /// `stdout` (default) or `stderr`.
    #[serde(rename = "type")]
    pub stream: Option<String>,
    #[serde(default)]
    pub follow: bool,
    #[serde(default)]
    pub offset: u64,
}

/// `GET /v1/allocation/{id}/logs?task=&type=stdout|stderr&follow=true&offset=N`: the log bytes
/// as a streamed `text/plain` body; with `follow` the body stays open and grows until the
/// allocation ends or the server shuts down.
pub async fn logs(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ServerError> {
    let view = find_alloc(&st, &id).await?;
    let task = pick_task(&st, &view, q.task.as_deref()).await?;
    let stderr = match q.stream.as_deref() {
        None | Some("stdout") => false,
        Some("stderr") => true,
        Some(other) => {
            return Err(ServerError::BadRequest(format!(
                "type must be stdout or stderr, found {other:?}"
            )))
        }
    };
    let node = view.allocation.node.clone();
    let alloc = view.allocation.id.clone();
    if let Some(reader) = st.logs.clone() {
        if let Some(first) = reader.read(&node, &alloc, &task, stderr, q.offset, LOG_CHUNK) {
            let (data, next) =
                first.map_err(|e| ServerError::Agent(format!("reading logs: {e}")))?;
            let body = if q.follow {
                let follow = follow_local(st.clone(), reader, node, alloc, task, stderr, next);
                Body::from_stream(
                    futures::stream::once(async move { Ok::<_, std::io::Error>(data) })
                        .chain(follow),
                )
            } else {
                Body::from(data)
            };
            return Ok(
                ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response(),
            );
        }
    }
    proxy_logs(&st, &view, &task, stderr, &q).await
}

const LOG_CHUNK: usize = 1 << 20;

fn follow_local(
    st: AppState,
    reader: SharedLogReader,
    node: String,
    alloc: String,
    task: String,
    stderr: bool,
    offset: u64,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    let closed = st.closed();
    let stream = futures::stream::unfold((offset, 0u32), move |(offset, idle)| {
        let reader = reader.clone();
        let (node, alloc, task, st) = (node.clone(), alloc.clone(), task.clone(), st.clone());
        async move {
            let mut offset = offset;
            let mut idle = idle;
            loop {
                match reader.read(&node, &alloc, &task, stderr, offset, LOG_CHUNK)? {
                    Ok((data, next)) if !data.is_empty() => {
                        return Some((Ok(data), (next, 0)));
                    }
                    Ok((_, next)) => offset = next,
                    Err(e) => return Some((Err(e), (offset, idle))),
                }
                idle += 1;
                // Every few idle polls, end the stream if the allocation is gone or finished.
                if idle % 8 == 0 {
                    match find_alloc(&st, &alloc).await {
                        Ok(v) if v.client_status().is_terminal() => return None,
                        Err(_) => return None,
                        _ => {}
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });
    stream.take_until(closed)
}

async fn proxy_logs(
    st: &AppState,
    view: &AllocView,
    task: &str,
    stderr: bool,
    q: &LogsQuery,
) -> Result<Response, ServerError> {
    let node = crate::nodes::get_node(st, &view.allocation.node).await?;
    if node.node.http_addr.is_empty() {
        return Err(ServerError::Agent(format!(
            "node {} does not serve its logs over HTTP and they are not held by this server",
            view.allocation.node
        )));
    }
    let url = format!(
        "{}/v1/client/logs/{}/{task}",
        base_url(&node.node.http_addr),
        view.allocation.id
    );
    let resp = st
        .http
        .get(&url)
        .query(&[
            ("type", if stderr { "stderr" } else { "stdout" }),
            ("follow", if q.follow { "true" } else { "false" }),
            ("offset", &q.offset.to_string()),
        ])
        .send()
        .await
        .map_err(|e| ServerError::Agent(format!("{url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(ServerError::Agent(format!(
            "{url} answered {}",
            resp.status()
        )));
    }
    let closed = st.closed();
    let stream = resp
        .bytes_stream()
        .map(|r| r.map_err(std::io::Error::other))
        .take_until(closed);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The task whose logs to show: the one asked for, or the only one the allocation has.
async fn pick_task(
    st: &AppState,
    view: &AllocView,
    wanted: Option<&str>,
) -> Result<String, ServerError> {
    let mut tasks: Vec<String> = view
        .status
        .as_ref()
        .map(|s| s.task_states.keys().cloned().collect())
        .unwrap_or_default();
    if tasks.is_empty() {
        if let Ok((job, _)) =
            crate::jobs::find_job(st, &view.allocation.namespace, &view.allocation.job_id).await
        {
            if let Some(g) = job
                .groups
                .iter()
                .find(|g| g.name == view.allocation.task_group)
            {
                tasks = g.tasks.iter().map(|t| t.name.clone()).collect();
            }
        }
    }
    match wanted {
        Some(t) if tasks.is_empty() || tasks.iter().any(|x| x == t) => Ok(t.to_string()),
        Some(t) => Err(ServerError::NotFound(format!(
            "allocation {} has no task {t:?} (tasks: {})",
            view.allocation.id,
            tasks.join(", ")
        ))),
        None if tasks.len() == 1 => Ok(tasks.remove(0)),
        None => Err(ServerError::BadRequest(format!(
            "allocation {} has several tasks ({}); name one",
            view.allocation.id,
            tasks.join(", ")
        ))),
    }
}

/// `http://` in front of a bare `host:port`.
pub fn base_url(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.trim_end_matches('/').to_string()
    } else {
        format!("http://{addr}")
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
