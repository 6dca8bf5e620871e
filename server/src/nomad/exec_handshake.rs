//! Nomad's `ws_handshake=true` on the exec endpoint, for browsers (which cannot set
//! `X-Nomad-Token` on a websocket): the socket is upgraded first, its first frame must be
//! `{"version":1,"auth_token":"SECRET"}` within [`HANDSHAKE_TIMEOUT`], and that token is
//! resolved and checked (`alloc-exec`, and `alloc-node-exec` for `raw_exec`) before the agent
//! is asked to run anything. A refusal closes the socket as Nomad does: code 1008 (policy
//! violation) with the reason, or 1011 for a server-side failure.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::StreamExt;
use nomos_api::acl::Acl;
use nomos_api::exec::ExecHandshake;

use super::exec::{connect_agent, prepare, relay, ExecRequest, EXEC_IDLE_TIMEOUT};
use crate::acl::Caller;
use crate::error::ServerError;
use crate::AppState;

/// How long the client has to send its handshake frame.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// WebSocket close codes Nomad uses for refusals.
const CLOSE_POLICY_VIOLATION: u16 = 1008;
const CLOSE_INTERNAL_ERROR: u16 = 1011;
/// The most bytes a close reason may carry (a control frame holds 125, 2 for the code).
const MAX_REASON_BYTES: usize = 123;

/// Runs an upgraded `ws_handshake` session: handshake, checks, then the relay.
pub(crate) async fn serve(st: AppState, request: ExecRequest, mut client: WebSocket) {
    let opened = async {
        let caller = read_handshake(&st, &mut client).await?;
        let (view, task) = prepare(&st, &request, &caller).await?;
        connect_agent(&st, &view, &task, &request.command, request.tty).await
    };
    match opened.await {
        Ok(agent) => relay(client, agent, EXEC_IDLE_TIMEOUT).await,
        Err(e) => {
            tracing::info!(alloc = %request.id, reason = %e, "exec handshake refused");
            let _ = client.send(Message::Close(Some(close_frame(&e)))).await;
        }
    }
}

/// Waits for the handshake frame and resolves its token (with ACLs off, anyone may exec, as
/// the middleware treats every caller).
async fn read_handshake(st: &AppState, client: &mut WebSocket) -> Result<Caller, ServerError> {
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, client.next())
        .await
        .map_err(|_| {
            ServerError::BadRequest(format!(
                "no handshake frame within {HANDSHAKE_TIMEOUT:?} (ws_handshake=true expects {{\"version\":1,\"auth_token\":\"...\"}} first)"
            ))
        })?;
    let text = match first {
        Some(Ok(Message::Text(t))) => t,
        _ => {
            return Err(ServerError::BadRequest(
                "the socket closed or sent a non-text frame before the handshake".into(),
            ))
        }
    };
    let handshake =
        ExecHandshake::parse(&text).map_err(|e| ServerError::BadRequest(e.to_string()))?;
    if !st.agent.acl_enabled {
        return Ok(Caller {
            token: None,
            acl: Acl::management(),
        });
    }
    let secret = Some(handshake.auth_token.trim()).filter(|s| !s.is_empty());
    crate::acl::resolve(st, secret).await
}

/// The close frame for a refusal: 1011 for the server's failures, 1008 for the rest.
fn close_frame(e: &ServerError) -> CloseFrame {
    let code = if e.status().is_server_error() {
        CLOSE_INTERNAL_ERROR
    } else {
        CLOSE_POLICY_VIOLATION
    };
    let mut reason = e.to_string();
    if reason.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_close_with_nomads_codes_and_a_bounded_reason() {
        let denied = close_frame(&ServerError::Forbidden("Permission denied".into()));
        assert_eq!(
            (denied.code, denied.reason.as_str()),
            (1008, "Permission denied")
        );
        let failed = close_frame(&ServerError::Agent("node down".into()));
        assert_eq!(failed.code, 1011);
        let long = close_frame(&ServerError::BadRequest("é".repeat(100)));
        assert!(
            long.reason.len() <= MAX_REASON_BYTES,
            "{}",
            long.reason.len()
        );
        assert!(long.reason.starts_with("éé"));
    }
}
