//! The HTTP client of the API: JSON in, JSON out, and the server's plain-text errors (a job
//! file's errors arrive one `FILE:LINE:COL: message` per line and print as they are).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::client_tls::describe_send_error;
use super::Global;

/// An error answer from the server: its status and its plain-text message.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    /// The error answer `text` with `status`; an empty body names the status instead.
    pub fn new(status: u16, text: &str) -> Self {
        let text = text.trim_end();
        let message = if text.is_empty() {
            format!("HTTP {status}")
        } else {
            text.to_string()
        };
        ApiError { status, message }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    base: String,
    /// The HTTP client, or why the TLS options could not make one (reported by each request).
    http: Result<reqwest::Client, String>,
    pub namespace: String,
    /// The ACL token's secret, sent as `X-Nomad-Token` on every request.
    token: Option<String>,
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
            http: g.tls.http_client().map_err(|e| format!("{e:#}")),
            namespace: g.namespace.clone(),
            token: g.token(),
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

    fn http(&self) -> anyhow::Result<&reqwest::Client> {
        self.http.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// `req` with the token header, when there is a token.
    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.header("X-Nomad-Token", t),
            None => req,
        }
    }

    /// Sends `req` with the token, reporting an unreachable server (or a TLS failure) clearly.
    async fn execute(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        self.authed(req).send().await.map_err(|e| {
            let detail = describe_send_error(&e);
            // A TLS failure carries its own hint; the address is right then.
            let hint = if detail.contains("\n(") {
                ""
            } else {
                "\n(set NOMOS_ADDR or --address)"
            };
            anyhow::anyhow!(
                "cannot reach the Nomos server at {}: {detail}{hint}",
                self.base
            )
        })
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let resp = self.execute(req).await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        if !(200..300).contains(&status) {
            return Err(ApiError::new(status, &text).into());
        }
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("unexpected answer from the server: {e}"))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http()?.get(self.url(path))).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(self.http()?.post(self.url(path)).json(body))
            .await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http()?.delete(self.url(path))).await
    }

    /// A request whose answer the caller reads whatever its status: for APIs that answer a
    /// conflict with data (Variables answer 409 with the conflicting variable).
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(u16, String)> {
        let mut req = self.http()?.request(method, self.url(path));
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = self.execute(req).await?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await?))
    }

    /// A streaming GET (logs); the caller reads the body.
    pub async fn stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let resp = self
            .authed(self.http()?.get(self.url(path)))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach the Nomos server at {}: {}",
                    self.base,
                    describe_send_error(&e)
                )
            })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let text = resp.text().await.unwrap_or_default();
            return Err(ApiError::new(status, &text).into());
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
