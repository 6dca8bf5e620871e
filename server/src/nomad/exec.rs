//! Nomad's exec endpoint, `GET /v1/client/allocation/{alloc}/exec?task=&command=&tty=`: a
//! websocket to a command run inside a task, relayed to the websocket of the node's agent
//! (`{http_addr}/v1/client/allocation/{alloc}/exec`, over the cluster's TLS when its agents
//! serve HTTPS). Frames are [`nomos_api::exec`]'s; those from the client are checked before
//! they reach the agent, and none may exceed [`EXEC_MAX_FRAME_BYTES`]. Refusals come before
//! the upgrade, as plain text: 404 for an unknown allocation, 400 for a missing command, an
//! unknown task or one that does not run, 403 without `alloc-exec` (and for `raw_exec`
//! tasks, `alloc-node-exec`, as Nomad asks, judged by the allocation's own job version). A session with no frame either way for
//! [`EXEC_IDLE_TIMEOUT`] is closed, which kills the command.
//! With `?ws_handshake=true` (browsers) the token comes in the first frame instead and the
//! same checks run after the upgrade, before the agent is called ([`super::exec_handshake`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use futures::{SinkExt, StreamExt};
use nomos_api::acl::check::{CAP_ALLOC_EXEC, CAP_ALLOC_NODE_EXEC};
use nomos_api::exec::{parse_command, ExecInput, EXEC_MAX_FRAME_BYTES};
use nomos_api::Job;
use nomos_store::keys;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;

use super::query::QueryOptions;
use crate::acl::Caller;
use crate::allocs::{agent_url, find_alloc, pick_task};
use crate::error::ServerError;
use crate::views::AllocView;
use crate::{kv, AppState};

/// How long a session may pass with no frame either way before it is closed.
pub const EXEC_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How long a finished session waits for the client's Close before it shuts the socket.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

type AgentSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a request asks to run, read from its query before anything else.
#[derive(Debug, Clone)]
pub(crate) struct ExecRequest {
    /// The allocation's ID or unique prefix.
    pub id: String,
    pub task: Option<String>,
    pub command: Vec<String>,
    pub tty: bool,
}

/// `GET /v1/client/allocation/{alloc}/exec`. With `?ws_handshake=true` the socket is upgraded
/// first and [`super::exec_handshake`] checks the token of its first frame before anything
/// runs; otherwise the token came in a header and the middleware checked it.
pub async fn exec(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    q: QueryOptions,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ServerError> {
    let command =
        parse_command(q.param("command")).map_err(|e| ServerError::BadRequest(e.to_string()))?;
    let request = ExecRequest {
        id,
        task: q.param("task").map(str::to_string),
        command,
        tty: q.flag("tty", false),
    };
    if q.flag("ws_handshake", false) {
        let upgrade = upgrade.map_err(not_an_upgrade)?;
        return Ok(upgrade
            .max_message_size(EXEC_MAX_FRAME_BYTES)
            .on_upgrade(move |client| super::exec_handshake::serve(st, request, client)));
    }
    let (view, task) = prepare(&st, &request, &caller).await?;
    let upgrade = upgrade.map_err(not_an_upgrade)?;
    let agent = connect_agent(&st, &view, &task, &request.command, request.tty).await?;
    Ok(upgrade
        .max_message_size(EXEC_MAX_FRAME_BYTES)
        .on_upgrade(move |client| relay(client, agent, EXEC_IDLE_TIMEOUT)))
}

fn not_an_upgrade(e: WebSocketUpgradeRejection) -> ServerError {
    ServerError::BadRequest(format!("exec answers websocket upgrades only: {e}"))
}

/// Everything checked before a command may run: the allocation exists and runs, the task
/// exists, and `caller` holds `alloc-exec` in its namespace (and `alloc-node-exec` for
/// `raw_exec`). Answers the allocation and the task's name.
pub(crate) async fn prepare(
    st: &AppState,
    request: &ExecRequest,
    caller: &Caller,
) -> Result<(AllocView, String), ServerError> {
    let view = find_alloc(st, &request.id).await?;
    let alloc = &view.allocation;
    caller.require_namespace(&alloc.namespace, CAP_ALLOC_EXEC)?;
    if view.client_status().is_terminal() || alloc.desired_status != nomos_api::DesiredStatus::Run {
        return Err(ServerError::BadRequest(format!(
            "allocation {} is not running (client status {:?}), so nothing can run inside it",
            alloc.id,
            view.client_status()
        )));
    }
    let task = pick_task(st, &view, request.task.as_deref())
        .await
        .map_err(|e| match e {
            ServerError::NotFound(why) => ServerError::BadRequest(why),
            other => other,
        })?;
    // Unknown counts as raw_exec: without its version nothing shows the task is isolated.
    let driver = task_driver(st, &view, &task).await;
    if matches!(driver.as_deref(), None | Some("raw_exec")) {
        caller.require_namespace(&view.allocation.namespace, CAP_ALLOC_NODE_EXEC)?;
    }
    Ok((view, task))
}

/// The driver `task` has in the job version the allocation runs (not the job's latest: a
/// job changed from `raw_exec` to `docker` still has `raw_exec` allocations until they are
/// replaced); `None` when that version is no longer stored.
async fn task_driver(st: &AppState, view: &AllocView, task: &str) -> Option<String> {
    let alloc = &view.allocation;
    let key = keys::job_version(&alloc.namespace, &alloc.job_id, alloc.job_version);
    let job = kv::get_json::<Job>(st.store.as_ref(), &key).await.ok()??;
    let group = job
        .value
        .groups
        .iter()
        .find(|g| g.name == alloc.task_group)?;
    let task = group.tasks.iter().find(|t| t.name == task)?;
    Some(task.driver.clone())
}

/// Opens the agent's exec websocket; its refusals (before the upgrade) are the client's.
pub(crate) async fn connect_agent(
    st: &AppState,
    view: &AllocView,
    task: &str,
    command: &[String],
    tty: bool,
) -> Result<AgentSocket, ServerError> {
    let node = crate::reads::get_node(st, &view.allocation.node).await?;
    let base = agent_url(&node.node, "nothing can run inside its tasks")?;
    let url = agent_exec_url(&base, &view.allocation.id, task, command, tty)?;
    let connector = match (&st.agent_tls, url.starts_with("wss://")) {
        (Some(tls), true) => Some(tokio_tungstenite::Connector::Rustls(tls.clone())),
        (None, true) => {
            return Err(ServerError::Agent(format!(
                "node {} serves HTTPS but this server has no TLS settings for its agents",
                node.node.name
            )))
        }
        (_, false) => None,
    };
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(EXEC_MAX_FRAME_BYTES))
        .max_frame_size(Some(EXEC_MAX_FRAME_BYTES));
    match tokio_tungstenite::connect_async_tls_with_config(
        url.as_str(),
        Some(config),
        false,
        connector,
    )
    .await
    {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(resp)) => {
            let text =
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            Err(match resp.status().as_u16() {
                400 => ServerError::BadRequest(text),
                404 => ServerError::NotFound(text),
                code => ServerError::Agent(format!("the agent answered {code}: {text}")),
            })
        }
        Err(e) => Err(ServerError::Agent(format!(
            "opening exec on node {}: {e}",
            node.node.name
        ))),
    }
}

/// `ws(s)://agent/v1/client/allocation/{alloc}/exec?task=&command=&tty=` from the agent's
/// `http(s)://` base.
fn agent_exec_url(
    base: &str,
    alloc: &str,
    task: &str,
    command: &[String],
    tty: bool,
) -> Result<String, ServerError> {
    let ws_base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        return Err(ServerError::Agent(format!(
            "unexpected agent address {base:?}"
        )));
    };
    let command = serde_json::to_string(command)
        .map_err(|e| ServerError::Internal(format!("encoding the command: {e}")))?;
    let mut url = reqwest::Url::parse(&format!("{ws_base}/v1/client/allocation/{alloc}/exec"))
        .map_err(|e| ServerError::Agent(format!("agent address {base:?}: {e}")))?;
    url.query_pairs_mut()
        .append_pair("task", task)
        .append_pair("command", &command)
        .append_pair("tty", if tty { "true" } else { "false" });
    Ok(url.to_string())
}

/// Relays frames between the client and the agent until either side closes or the session
/// has been idle for `idle`; closing the agent's socket kills the command.
pub(crate) async fn relay(client: WebSocket, agent: AgentSocket, idle: Duration) {
    let started = Instant::now();
    let last_frame = Arc::new(AtomicU64::new(0));
    let touch = || last_frame.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    let (mut to_client, mut from_client) = client.split();
    let (mut to_agent, mut from_agent) = agent.split();
    let inbound = async {
        while let Some(Ok(msg)) = from_client.next().await {
            touch();
            let text = match msg {
                Message::Text(t) => t,
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Binary(_) | Message::Close(_) => break,
            };
            // Checked and written anew: the agent only ever sees well-formed frames.
            let Ok(frame) = ExecInput::parse(&text) else {
                break;
            };
            let frame = tungstenite::Message::Text(frame.to_json().into());
            if to_agent.send(frame).await.is_err() {
                // The agent is done: what it sent last is still on its way to the client.
                std::future::pending::<()>().await;
            }
        }
        let _ = to_agent.close().await;
    };
    let outbound = async {
        while let Some(Ok(msg)) = from_agent.next().await {
            touch();
            let text = match msg {
                tungstenite::Message::Text(t) => t,
                tungstenite::Message::Close(_) => break,
                _ => continue,
            };
            if to_client
                .send(Message::Text(text.as_str().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = to_client.send(Message::Close(None)).await;
    };
    let watchdog = async {
        loop {
            let quiet_since = Duration::from_millis(last_frame.load(Ordering::Relaxed));
            let deadline = started + quiet_since + idle;
            if Instant::now() >= deadline {
                tracing::info!("exec session idle for {idle:?}; closing it");
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        _ = inbound => return,
        _ = watchdog => return,
        _ = outbound => {}
    }
    // The agent closed after the exit code and the client has been sent both. Answer the
    // agent's Close, then wait for the client's: a socket shut with a frame still unread is
    // reset, and a reset throws away what the other end had not read yet (the exit code).
    let closed = async {
        let _ = to_agent.close().await;
        while let Some(Ok(msg)) = from_client.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, closed).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_exec_url_follows_its_scheme_and_encodes_the_command() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        let cases = [
            ("http://10.0.0.1:4646", "ws://10.0.0.1:4646/v1/client/allocation/a1/exec?task=web&command=%5B%22sh%22%2C%22-c%22%2C%22exit+3%22%5D&tty=true"),
            ("https://n1:4646", "wss://n1:4646/v1/client/allocation/a1/exec?task=web&command=%5B%22sh%22%2C%22-c%22%2C%22exit+3%22%5D&tty=true"),
        ];
        for (base, want) in cases {
            assert_eq!(agent_exec_url(base, "a1", "web", &cmd, true).unwrap(), want);
        }
        assert!(agent_exec_url("ftp://n1", "a1", "web", &cmd, false).is_err());
    }
}
