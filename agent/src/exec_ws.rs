//! The agent's end of `nctl alloc exec`: `GET /v1/client/allocation/<alloc>/exec?task=&command=&tty=`
//! upgraded to a websocket that relays Nomad's exec frames ([`nomos_api::exec`]) to and from
//! a command started inside the task by its driver ([`crate::driver::Driver::exec_session`]).
//! Refusals come before the upgrade as plain text: 404 for an unknown allocation, 400 for a
//! missing command, an unknown or stopped task, or a driver without exec. The session ends
//! when the command exits (after its `exited` frame) or when the caller goes away, which
//! kills the command.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use nomos_api::exec::{parse_command, ExecInput, EXEC_MAX_FRAME_BYTES};
use serde::Deserialize;

use crate::driver::{ExecSession, SessionRequest};
use crate::error::AgentError;
use crate::runner::{ExecRefusal, LiveAllocs, RestartRefusal};

/// How long a finished session waits for the caller's Close before it shuts the socket.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct ExecQuery {
    task: String,
    command: Option<String>,
    tty: bool,
}

/// `GET /v1/client/allocation/<alloc>/exec`.
pub(crate) async fn exec_handler(
    State(live): State<LiveAllocs>,
    Path(alloc): Path<String>,
    Query(q): Query<ExecQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let command = match parse_command(q.command.as_deref()) {
        Ok(c) => c,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let req = SessionRequest {
        command,
        tty: q.tty,
    };
    match live.exec_session(&alloc, &q.task, &req).await {
        Ok(session) => upgrade
            .max_message_size(EXEC_MAX_FRAME_BYTES)
            .on_upgrade(move |socket| relay(socket, session)),
        Err(refusal) => {
            let (code, why) = refusal_status(&refusal);
            (
                code,
                format!("allocation {alloc}, task {:?}: {why}", q.task),
            )
                .into_response()
        }
    }
}

/// The status a refused exec answers with, and why.
fn refusal_status(refusal: &ExecRefusal) -> (StatusCode, String) {
    match refusal {
        ExecRefusal::Refused(r @ RestartRefusal::UnknownAlloc) => {
            (StatusCode::NOT_FOUND, r.to_string())
        }
        ExecRefusal::Refused(RestartRefusal::NotRunning) => (
            StatusCode::BAD_REQUEST,
            "the task is not running".to_string(),
        ),
        ExecRefusal::Refused(r) => (StatusCode::BAD_REQUEST, r.to_string()),
        ExecRefusal::Driver(
            e @ (AgentError::ExecUnsupported { .. } | AgentError::TaskNotRunning { .. }),
        ) => (StatusCode::BAD_REQUEST, e.to_string()),
        ExecRefusal::Driver(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Relays frames until the command exits (then closes as websockets close: both ways) or
/// the caller goes away; dropping `session` then kills what still runs.
async fn relay(socket: WebSocket, session: ExecSession) {
    let ExecSession { input, mut events } = session;
    let (mut to_caller, mut from_caller) = socket.split();
    let inbound = async {
        while let Some(Ok(msg)) = from_caller.next().await {
            let text = match msg {
                Message::Text(t) => t,
                Message::Close(_) => return,
                Message::Binary(_) => {
                    tracing::debug!("exec: binary frame refused");
                    return;
                }
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            match ExecInput::parse(&text) {
                Ok(frame) => {
                    if input.send(frame).await.is_err() {
                        // The command ended: its last events are still on their way out.
                        std::future::pending::<()>().await;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "exec: bad frame");
                    return;
                }
            }
        }
    };
    let outbound = async {
        while let Some(event) = events.recv().await {
            let last = matches!(event, nomos_api::exec::ExecEvent::Exited { .. });
            if to_caller
                .send(Message::Text(event.to_json().into()))
                .await
                .is_err()
                || last
            {
                break;
            }
        }
        let _ = to_caller.send(Message::Close(None)).await;
    };
    tokio::select! {
        // The caller went away: dropping the session kills the command.
        _ = inbound => return,
        _ = outbound => {}
    }
    // Our Close is sent; wait for the caller's before the socket goes. Shutting a socket
    // with a frame of the caller's still unread resets the connection, and the reset throws
    // away what the caller had not read yet: the output's tail and the exit code.
    let closed = async {
        while let Some(Ok(msg)) = from_caller.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, closed).await;
}
