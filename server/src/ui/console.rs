//! The allocation page's console: the live log panel ([`super::logs`]) and the terminal
//! (xterm.js over the exec websocket with `ws_handshake=true`), and what of them the caller
//! may use: the logs need `read-logs`, the terminal `alloc-exec` in the allocation's namespace
//! (the server checks again, and asks `alloc-node-exec` for `raw_exec` tasks).

use nomos_api::acl::check::{CAP_ALLOC_EXEC, CAP_READ_LOGS};
use nomos_api::acl::Acl;
use serde::Serialize;

use super::logs::{DEFAULT_LINES, MAX_LINES};
use super::model::encode_segment;
use super::pages::AllocPage;

/// The line counts the log panel offers.
pub const LINE_CHOICES: [usize; 4] = [50, DEFAULT_LINES, 1000, MAX_LINES];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Console {
    /// `/ui/logs/{id}`.
    pub logs_href: String,
    /// `/v1/client/allocation/{id}/exec`, opened as a websocket.
    pub exec_path: String,
    pub tasks: Vec<String>,
    pub namespace: String,
    pub can_read_logs: bool,
    pub can_exec: bool,
    /// Whether anything can run inside the allocation now.
    pub running: bool,
    pub line_choices: Vec<usize>,
    pub default_lines: usize,
    pub max_lines: usize,
}

/// The console of `alloc` for a caller holding `acl`.
pub fn console(alloc: &AllocPage, acl: &Acl) -> Console {
    let id = encode_segment(&alloc.id);
    Console {
        logs_href: format!("/ui/logs/{id}"),
        exec_path: format!("/v1/client/allocation/{id}/exec"),
        tasks: alloc.tasks.iter().map(|t| t.name.clone()).collect(),
        namespace: alloc.namespace.clone(),
        can_read_logs: acl.allows_namespace(&alloc.namespace, CAP_READ_LOGS),
        can_exec: acl.allows_namespace(&alloc.namespace, CAP_ALLOC_EXEC),
        running: alloc.desired == "run" && alloc.client_status == "running",
        line_choices: LINE_CHOICES.to_vec(),
        default_lines: DEFAULT_LINES,
        max_lines: MAX_LINES,
    }
}
