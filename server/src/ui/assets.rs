//! The UI's static files, embedded in the binary: the hand-written stylesheet and script, and the
//! vendored htmx and uPlot with their licences (copied unmodified from `shared/vendor/`), and
//! xterm.js bundled by `scripts/vendor-xterm` from Debian's `node-xterm`.
//! Vendored files carry their version in the path, so browsers may cache them for good.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::UiError;
use crate::error::ServerError;

/// One embedded file.
pub struct Asset {
    /// The path under `/ui/assets/`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Every file served under `/ui/assets/`.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "style.css",
        content_type: CSS,
        body: include_bytes!("../../assets/style.css"),
    },
    Asset {
        path: "ui.js",
        content_type: JS,
        body: include_bytes!("../../assets/ui.js"),
    },
    Asset {
        path: "actions.js",
        content_type: JS,
        body: include_bytes!("../../assets/actions.js"),
    },
    Asset {
        path: "console.js",
        content_type: JS,
        body: include_bytes!("../../assets/console.js"),
    },
    Asset {
        path: "console.css",
        content_type: CSS,
        body: include_bytes!("../../assets/console.css"),
    },
    Asset {
        path: "usage-chart.js",
        content_type: JS,
        body: include_bytes!("../../assets/usage-chart.js"),
    },
    Asset {
        path: "vendor/htmx-2.0.11/htmx.min.js",
        content_type: JS,
        body: include_bytes!("../../assets/vendor/htmx-2.0.11/htmx.min.js"),
    },
    Asset {
        path: "vendor/htmx-2.0.11/LICENSE",
        content_type: TEXT,
        body: include_bytes!("../../assets/vendor/htmx-2.0.11/LICENSE"),
    },
    Asset {
        path: "vendor/uplot-1.6.32/uPlot.iife.min.js",
        content_type: JS,
        body: include_bytes!("../../assets/vendor/uplot-1.6.32/uPlot.iife.min.js"),
    },
    Asset {
        path: "vendor/uplot-1.6.32/uPlot.min.css",
        content_type: CSS,
        body: include_bytes!("../../assets/vendor/uplot-1.6.32/uPlot.min.css"),
    },
    Asset {
        path: "vendor/uplot-1.6.32/LICENSE",
        content_type: TEXT,
        body: include_bytes!("../../assets/vendor/uplot-1.6.32/LICENSE"),
    },
    // Bundled by scripts/vendor-xterm from Debian's node-xterm.
    Asset {
        path: "vendor/xterm-3.8.1/xterm.js",
        content_type: JS,
        body: include_bytes!("../../assets/vendor/xterm-3.8.1/xterm.js"),
    },
    Asset {
        path: "vendor/xterm-3.8.1/xterm.css",
        content_type: CSS,
        body: include_bytes!("../../assets/vendor/xterm-3.8.1/xterm.css"),
    },
    Asset {
        path: "vendor/xterm-3.8.1/LICENSE",
        content_type: TEXT,
        body: include_bytes!("../../assets/vendor/xterm-3.8.1/LICENSE"),
    },
];

/// The embedded file at `path`, if any.
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// `GET /ui/assets/{*path}`.
pub async fn serve(Path(path): Path<String>) -> Result<Response, UiError> {
    let asset = find(&path)
        .ok_or_else(|| ServerError::NotFound(format!("no such file: /ui/assets/{path}")))?;
    let cache = if path.starts_with("vendor/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok((
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
        ],
        asset.body,
    )
        .into_response())
}
