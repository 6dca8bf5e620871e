//! Where an allocation's files are read from: this process, when it runs the node's agent
//! (`nctl dev`, through an [`AllocFiles`] the binary provides), or else the node's agent over
//! HTTP (`{http_addr}/v1/client/fs/{logs,ls,stat,readat}/{alloc}`). Both answer the same
//! primitive reads; framing and following are [`super::fs`]'s.

use std::sync::Arc;

use nomos_api::allocfs::AllocFileInfo;
use serde::de::DeserializeOwned;

use crate::allocs::agent_url;
use crate::error::ServerError;
use crate::views::AllocView;
use crate::AppState;

/// The files of allocations held by this process (the in-process agent of `nctl dev`). Paths
/// are relative to the allocation's directory; errors are the HTTP answers they become
/// (`BadRequest` for a refused path, `NotFound` for a missing one).
pub trait AllocFiles: Send + Sync {
    /// Whether this process holds `node`'s files.
    fn holds(&self, node: &str) -> bool;
    /// Up to `limit` bytes of a task's log from `offset` (over its rotated files), and the
    /// offset to continue from.
    fn read_log(
        &self,
        alloc: &str,
        task: &str,
        stderr: bool,
        offset: u64,
        limit: usize,
    ) -> Result<(Vec<u8>, u64), ServerError>;
    fn list(&self, alloc: &str, path: &str) -> Result<Vec<AllocFileInfo>, ServerError>;
    fn stat(&self, alloc: &str, path: &str) -> Result<AllocFileInfo, ServerError>;
    fn read_at(
        &self,
        alloc: &str,
        path: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<u8>, ServerError>;
}

/// A shareable [`AllocFiles`].
pub type SharedAllocFiles = Arc<dyn AllocFiles>;

/// One allocation's files, local or on its agent.
#[derive(Clone)]
pub enum Source {
    Local {
        files: SharedAllocFiles,
        alloc: String,
    },
    Remote {
        http: reqwest::Client,
        /// `{agent}/v1/client/fs`.
        base: String,
        alloc: String,
    },
}

/// The header the agent puts the next log offset in.
const NEXT_OFFSET: &str = "x-nomos-next-offset";

impl Source {
    /// Where `view`'s files are.
    pub async fn of(st: &AppState, view: &AllocView) -> Result<Source, ServerError> {
        let alloc = view.allocation.id.clone();
        if let Some(files) = st.files.clone().filter(|f| f.holds(&view.allocation.node)) {
            return Ok(Source::Local { files, alloc });
        }
        let node = crate::reads::get_node(st, &view.allocation.node).await?;
        let agent = agent_url(
            &node.node,
            "its files cannot be read (they are not held by this server)",
        )?;
        Ok(Source::Remote {
            http: st.http.clone(),
            base: format!("{agent}/v1/client/fs"),
            alloc,
        })
    }

    /// A task's log from `offset`: the bytes and the offset to continue from.
    pub async fn log(
        &self,
        task: &str,
        stderr: bool,
        offset: u64,
        limit: usize,
    ) -> Result<(Vec<u8>, u64), ServerError> {
        match self {
            Source::Local { files, alloc } => files.read_log(alloc, task, stderr, offset, limit),
            Source::Remote { .. } => {
                let kind = if stderr { "stderr" } else { "stdout" };
                let query = [
                    ("task", task.to_string()),
                    ("type", kind.to_string()),
                    ("offset", offset.to_string()),
                    ("limit", limit.to_string()),
                ];
                let resp = self.get("logs", &query).await?;
                let next = resp
                    .headers()
                    .get(NEXT_OFFSET)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .ok_or_else(|| {
                        ServerError::Agent(format!("the agent sent no {NEXT_OFFSET}"))
                    })?;
                let data = resp.bytes().await.map_err(agent_error)?;
                Ok((data.to_vec(), next))
            }
        }
    }

    /// The entries of a directory.
    pub async fn list(&self, path: &str) -> Result<Vec<AllocFileInfo>, ServerError> {
        match self {
            Source::Local { files, alloc } => files.list(alloc, path),
            Source::Remote { .. } => self.get_json("ls", path).await,
        }
    }

    /// One entry.
    pub async fn stat(&self, path: &str) -> Result<AllocFileInfo, ServerError> {
        match self {
            Source::Local { files, alloc } => files.stat(alloc, path),
            Source::Remote { .. } => self.get_json("stat", path).await,
        }
    }

    /// Up to `limit` bytes of a file from `offset`.
    pub async fn read_at(
        &self,
        path: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<u8>, ServerError> {
        match self {
            Source::Local { files, alloc } => files.read_at(alloc, path, offset, limit),
            Source::Remote { .. } => {
                let query = [
                    ("path", path.to_string()),
                    ("offset", offset.to_string()),
                    ("limit", limit.to_string()),
                ];
                let resp = self.get("readat", &query).await?;
                Ok(resp.bytes().await.map_err(agent_error)?.to_vec())
            }
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, op: &str, path: &str) -> Result<T, ServerError> {
        let resp = self.get(op, &[("path", path.to_string())]).await?;
        resp.json().await.map_err(agent_error)
    }

    /// `GET {base}/{op}/{alloc}?query` on the agent; its 400 and 404 are the client's.
    async fn get(
        &self,
        op: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::Response, ServerError> {
        let Source::Remote { http, base, alloc } = self else {
            return Err(ServerError::Internal("not a remote source".into()));
        };
        let url = format!("{base}/{op}/{alloc}");
        let resp = http
            .get(&url)
            .query(query)
            .send()
            .await
            .map_err(agent_error)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        Err(match status.as_u16() {
            400 => ServerError::BadRequest(text),
            404 => ServerError::NotFound(text),
            _ => ServerError::Agent(format!("{url} answered {status}: {text}")),
        })
    }
}

fn agent_error(e: reqwest::Error) -> ServerError {
    ServerError::Agent(e.to_string())
}
