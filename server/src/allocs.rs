//! Allocation logs (`GET /v1/allocation/{id}/logs`), the lookup of one allocation by unique ID
//! prefix, and the address of an allocation's agent. The allocation reads and writes in
//! Nomad's shapes are in [`crate::nomad::allocs`] and [`crate::nomad::alloc_writes`].
//!
//! Logs are read through a [`LogReader`] when this process holds the node's files (`nctl dev`,
//! where the agent runs in-process), and otherwise fetched from the agent's `http_addr`
//! (`GET {http_addr}/v1/client/logs/{alloc}/{task}?type=&offset=&follow=`). Restarts and
//! signals always go to the agent's `http_addr` (every agent serves one unless started with
//! `--http-addr off`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

use crate::error::ServerError;
use crate::kv;
use crate::reads::all_allocs;
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

/// One allocation by exact ID or unique prefix.
pub async fn find_alloc(st: &AppState, id: &str) -> Result<AllocView, ServerError> {
    let all = all_allocs(st).await?;
    kv::resolve_prefix(&all, id, "allocation", |a| a.allocation.id.as_str()).cloned()
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
    let node = crate::reads::get_node(st, &view.allocation.node).await?;
    let url = format!(
        "{}/v1/client/logs/{}/{task}",
        agent_url(
            &node.node,
            "its logs cannot be read (they are not held by this server)"
        )?,
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
            crate::specs::find_job(st, &view.allocation.namespace, &view.allocation.job_id).await
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

/// The base URL of `node`'s agent: its registered `http_addr`, with a wildcard IP (`0.0.0.0`,
/// `::`, as registered by agents older than the rule that replaces it) swapped for the node's
/// own address. A node that serves no HTTP endpoint is an error saying what cannot be done
/// (`consequence`) and how to fix it.
pub fn agent_url(node: &nomos_api::Node, consequence: &str) -> Result<String, ServerError> {
    if node.http_addr.is_empty() {
        return Err(ServerError::Agent(format!(
            "node {} registered no HTTP address, so {consequence}; start its agent without `--http-addr off`",
            node.name
        )));
    }
    if let Ok(bound) = node.http_addr.parse::<std::net::SocketAddr>() {
        if bound.ip().is_unspecified() {
            if let Ok(ip) = node.address.parse::<std::net::IpAddr>() {
                return Ok(base_url(
                    &std::net::SocketAddr::new(ip, bound.port()).to_string(),
                ));
            }
        }
    }
    Ok(base_url(&node.http_addr))
}

/// `http://` in front of a bare `host:port`.
pub fn base_url(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.trim_end_matches('/').to_string()
    } else {
        format!("http://{addr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(http_addr: &str, address: &str) -> nomos_api::Node {
        nomos_api::Node {
            name: "n1".into(),
            http_addr: http_addr.into(),
            address: address.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_agent_url_is_the_registered_http_addr() {
        assert_eq!(
            agent_url(&node("192.0.2.5:4749", "192.0.2.5"), "x").unwrap(),
            "http://192.0.2.5:4749"
        );
        assert_eq!(
            agent_url(&node("127.0.0.1:31234", "192.0.2.5"), "x").unwrap(),
            "http://127.0.0.1:31234"
        );
        assert_eq!(
            agent_url(&node("https://n1.example:4749/", ""), "x").unwrap(),
            "https://n1.example:4749"
        );
    }

    #[test]
    fn a_wildcard_http_addr_is_reached_on_the_nodes_address() {
        assert_eq!(
            agent_url(&node("0.0.0.0:4749", "192.0.2.5"), "x").unwrap(),
            "http://192.0.2.5:4749"
        );
        assert_eq!(
            agent_url(&node("[::]:4749", "2001:db8::5"), "x").unwrap(),
            "http://[2001:db8::5]:4749"
        );
    }

    #[test]
    fn a_node_without_http_addr_is_an_error_saying_what_cannot_be_done() {
        let err = agent_url(&node("", "192.0.2.5"), "its tasks cannot be restarted")
            .expect_err("no address");
        let text = err.to_string();
        assert!(
            text.contains("node n1 registered no HTTP address, so its tasks cannot be restarted"),
            "{text}"
        );
        assert!(text.contains("--http-addr off"), "{text}");
    }
}
