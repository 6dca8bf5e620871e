//! The HTTP client of the API: JSON in and out, and errors that keep the server's diagnostics
//! so job-file errors print as `FILE:LINE:COL: message`.

use std::fmt;

use nomos_server::views::{DiagnosticView, ErrorBody};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Global;

/// An error answer from the server.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub body: ErrorBody,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status == 400 && self.body.diagnostics.iter().any(|d| d.severity == "error") {
            let lines: Vec<String> = self
                .body
                .diagnostics
                .iter()
                .map(DiagnosticView::to_string)
                .collect();
            write!(f, "{}", lines.join("\n"))
        } else {
            write!(f, "{}", self.body.error)
        }
    }
}

impl std::error::Error for ApiError {}

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    pub namespace: String,
}

impl Client {
    pub fn new(g: &Global) -> Self {
        let base = if g.address.starts_with("http://") || g.address.starts_with("https://") {
            g.address.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", g.address.trim_end_matches('/'))
        };
        Client {
            base,
            http: reqwest::Client::new(),
            namespace: g.namespace.clone(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `/v1/job/<id>` with the id escaped and the namespace attached.
    pub fn job_path(&self, id: &str, rest: &str) -> String {
        format!(
            "/v1/job/{}{rest}?namespace={}",
            escape(id),
            escape(&self.namespace)
        )
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let resp = req.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the Nomos server at {}: {e}\n(set NOMOS_ADDR or --address)",
                self.base
            )
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        if !(200..300).contains(&status) {
            let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or(ErrorBody {
                error: format!("HTTP {status}: {text}"),
                diagnostics: vec![],
            });
            return Err(ApiError { status, body }.into());
        }
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("unexpected answer from the server: {e}"))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// A streaming GET (logs); the caller reads the body.
    pub async fn stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let resp =
            self.http.get(self.url(path)).send().await.map_err(|e| {
                anyhow::anyhow!("cannot reach the Nomos server at {}: {e}", self.base)
            })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let text = resp.text().await.unwrap_or_default();
            let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or(ErrorBody {
                error: format!("HTTP {status}: {text}"),
                diagnostics: vec![],
            });
            return Err(ApiError { status, body }.into());
        }
        Ok(resp)
    }
}

/// Percent-escapes a path segment or query value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
