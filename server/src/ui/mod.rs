//! The web UI: server-rendered HTML under `/ui`, kept live by htmx, with no JavaScript build.
//!
//! Layout:
//! - [`pages`]: the pages (overview, job, node, allocation) and their fragments. Each loads what
//!   it shows through the API's own data functions, builds a model and renders a template.
//! - [`model`]: the pure part: table rows, links, resource bars and times, built from the API's
//!   views with the clock passed in.
//! - [`series`]: the resource charts (cluster, node, allocation, job), computed from the
//!   agents' usage reports in the store.
//! - [`render`]: the minijinja environment over `server/templates/` (HTML autoescaping).
//! - [`actions`]: what the action buttons need (revert diffs, dispatch inputs, replacements);
//!   the actions themselves are `/v1` requests sent by `assets/actions.js` after a confirmation.
//! - [`assets`]: the stylesheet, the scripts and the vendored htmx, uPlot and xterm.js, embedded.
//! - [`logs`]: the allocation page's live logs, relayed as server-sent events; [`console`]:
//!   what the page's log and terminal panels may offer the caller.
//!
//! Live updates: each page's changing part is also served alone under `/ui/fragments/...`;
//! the page asks htmx to fetch it every [`render::REFRESH`] while the tab is visible and swaps
//! it in. The chart scripts poll `/ui/series...` every [`UiState::sample_every`].

pub mod actions;
pub mod assets;
pub mod console;
pub mod logs;
pub mod model;
pub mod pages;
pub mod render;
pub mod series;

use std::time::Duration;

use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use crate::error::ServerError;
use crate::AppState;

/// The UI's settings in the server's state.
#[derive(Debug, Clone)]
pub struct UiState {
    /// How often the charts poll their series.
    pub sample_every: Duration,
    /// The live log relay's limits ([`logs`]).
    pub logs: logs::UiLogConfig,
}

impl UiState {
    /// Charts polling every `every`.
    pub fn sampling_every(every: Duration) -> Self {
        UiState {
            sample_every: every.max(Duration::from_millis(10)),
            logs: logs::UiLogConfig::default(),
        }
    }
}

impl Default for UiState {
    fn default() -> Self {
        Self::sampling_every(series::DEFAULT_SAMPLE_EVERY)
    }
}

/// The UI's routes, to merge into the server's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(pages::overview))
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/job/{id}", get(pages::job))
        .route("/ui/node/{name}", get(pages::node))
        .route("/ui/allocation/{id}", get(pages::alloc))
        .route("/ui/fragments/counts", get(pages::counts_fragment))
        .route("/ui/fragments/jobs", get(pages::jobs_fragment))
        .route("/ui/fragments/nodes", get(pages::nodes_fragment))
        .route("/ui/fragments/job/{id}", get(pages::job_fragment))
        .route("/ui/fragments/node/{name}", get(pages::node_fragment))
        .route("/ui/fragments/allocation/{id}", get(pages::alloc_fragment))
        .route("/ui/series", get(pages::series))
        .route("/ui/logs/{id}", get(logs::stream))
        .route("/ui/series/node/{name}", get(pages::node_series))
        .route("/ui/series/allocation/{id}", get(pages::alloc_series))
        .route("/ui/series/job/{id}", get(pages::job_series))
        .route("/ui/login", get(crate::acl::login::page))
        .route("/ui/assets/{*path}", get(assets::serve))
        .route("/ui/{*rest}", get(not_found))
}

/// A failed UI request: the server's error, rendered as an HTML page with its status code
/// (404 for an unknown job, node or allocation, 5xx when the store fails).
#[derive(Debug)]
pub struct UiError(pub ServerError);

impl From<ServerError> for UiError {
    fn from(e: ServerError) -> Self {
        UiError(e)
    }
}

#[derive(Serialize)]
struct ErrorPage {
    code: u16,
    title: String,
    message: String,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if status.is_server_error() {
            tracing::warn!(error = %self.0, "UI request failed");
        }
        let page = ErrorPage {
            code: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            message: self.0.to_string(),
        };
        match render::render("error.html", &page) {
            Ok(body) => (status, Html(body)).into_response(),
            Err(e) => (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{}\n({e})", page.message),
            )
                .into_response(),
        }
    }
}

/// Unknown paths under `/ui/`: an HTML 404 rather than the API's JSON one.
async fn not_found(uri: axum::http::Uri) -> UiError {
    UiError(ServerError::NotFound(format!(
        "no such page: {}",
        uri.path()
    )))
}
