//! What a task gets from the servers: its workload identity (the JWT the servers sign for each
//! task of an allocation, at `/nomos/identities/<node>/<alloc>`) and, with that identity, the
//! Variables its templates read through the servers' API (`/v1/var/...`).
//!
//! The agent never signs anything: a node that could mint identities could read every job's
//! Variables. It only passes on what the servers issued for the allocations placed on it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nomos_store::{keys, KeySelector, RangeOptions, Store};
use serde::Deserialize;

use crate::config::AgentConfig;
use crate::error::AgentError;

/// How long a task that needs its identity waits for the servers to issue it.
pub const IDENTITY_WAIT: Duration = Duration::from_secs(30);
/// Largest answer read from a server (a Variable is at most 64 KiB of items).
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// How long one call to a server may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a blocking query on the servers waits at most (Nomad's maximum `wait`).
pub const BLOCKING_WAIT: Duration = Duration::from_secs(300);

/// The value at `/nomos/identities/<node>/<alloc>`: one JWT per task.
#[derive(Debug, Deserialize)]
struct Issued {
    tasks: BTreeMap<String, String>,
}

/// The JWT the servers issued for `task` of allocation `alloc` on `node`, waiting up to `wait`
/// for it to appear (the servers sign it as soon as they see the allocation).
pub async fn task_token(
    store: &dyn Store,
    node: &str,
    alloc: &str,
    task: &str,
    wait: Duration,
) -> Result<String, AgentError> {
    let key = keys::identity(node, alloc);
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(50);
    loop {
        let resp = store
            .range(KeySelector::key(key.clone()), RangeOptions::default())
            .await
            .map_err(|source| AgentError::Store {
                op: "read workload identity",
                source,
            })?;
        if let Some(kv) = resp.kvs.first() {
            let issued: Issued =
                serde_json::from_slice(&kv.value).map_err(|source| AgentError::Decode {
                    what: key.clone(),
                    source,
                })?;
            return issued.tasks.get(task).cloned().ok_or_else(|| {
                AgentError::Identity(format!(
                    "the servers issued no identity for task {task:?} of allocation {alloc}"
                ))
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AgentError::Identity(format!(
                "no workload identity issued for allocation {alloc} within {}s; \
                 the servers sign identities, so check that one is running",
                wait.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// The servers' HTTP API, as the agent calls it on behalf of a task (with the task's token).
#[derive(Clone)]
pub struct ServerLink {
    http: reqwest::Client,
    /// Base URLs from the configuration; empty means "those the servers advertise".
    configured: Vec<String>,
    store: Arc<dyn Store>,
}

impl ServerLink {
    /// A link using `config.servers` (or the advertised servers) and `config.servers_tls`.
    pub fn new(config: &AgentConfig, store: Arc<dyn Store>) -> Result<Self, AgentError> {
        let builder = reqwest::Client::builder().timeout(CALL_TIMEOUT);
        let builder = match &config.servers_tls {
            Some(tls) => {
                let tls = nomos_tls::client_config(tls)
                    .map_err(|e| AgentError::Config(format!("TLS to the servers: {e}")))?;
                builder.use_preconfigured_tls(tls)
            }
            None => builder,
        };
        let http = builder
            .build()
            .map_err(|e| AgentError::Config(format!("HTTP client for the servers: {e}")))?;
        Ok(ServerLink {
            http,
            configured: config.servers.clone(),
            store,
        })
    }

    /// Where the servers are: the configured addresses, else the ones they advertise at
    /// `/nomos/servers/`.
    async fn addresses(&self) -> Result<Vec<String>, AgentError> {
        if !self.configured.is_empty() {
            return Ok(self.configured.clone());
        }
        let resp = self
            .store
            .range(
                KeySelector::prefix(keys::SERVERS_PREFIX),
                RangeOptions::default(),
            )
            .await
            .map_err(|source| AgentError::Store {
                op: "list servers",
                source,
            })?;
        let found: Vec<String> = resp
            .kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice::<Advertised>(&kv.value).ok())
            .map(|a| a.http_addr)
            .collect();
        if found.is_empty() {
            return Err(AgentError::Servers(
                "no server address: none is advertised at /nomos/servers/ and the agent's \
                 configuration names none (client { servers = [...] } or --servers)"
                    .into(),
            ));
        }
        Ok(found)
    }

    /// `GET path_and_query` with `token`, from the first server that answers: the JSON body,
    /// or `None` for 404.
    pub async fn get(
        &self,
        path_and_query: &str,
        token: &str,
    ) -> Result<Option<serde_json::Value>, AgentError> {
        Ok(self.query(path_and_query, token, CALL_TIMEOUT).await?.body)
    }

    /// The `X-Nomad-Index` of a blocking query (`path_and_query` carries its `index` and
    /// `wait`, at most [`BLOCKING_WAIT`]): it answers once what it reads changed after the
    /// index, or when its wait (plus Nomad's jitter) ran out.
    pub async fn blocking_index(
        &self,
        path_and_query: &str,
        token: &str,
    ) -> Result<i64, AgentError> {
        let limit = BLOCKING_WAIT + BLOCKING_WAIT / 16 + CALL_TIMEOUT;
        let answer = self.query(path_and_query, token, limit).await?;
        answer.index.ok_or_else(|| {
            AgentError::Servers(format!(
                "{path_and_query}: the answer carries no X-Nomad-Index"
            ))
        })
    }

    async fn query(
        &self,
        path_and_query: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<Answer, AgentError> {
        let mut last = String::new();
        for base in self.addresses().await? {
            let url = format!("{}{path_and_query}", base.trim_end_matches('/'));
            match self.get_one(&url, token, timeout).await {
                Ok(answer) => return Ok(answer),
                Err(Reply::Refused(e)) => return Err(AgentError::Servers(e)),
                Err(Reply::Unreachable(e)) => last = e,
            }
        }
        Err(AgentError::Servers(last))
    }

    async fn get_one(&self, url: &str, token: &str, timeout: Duration) -> Result<Answer, Reply> {
        let resp = self
            .http
            .get(url)
            .timeout(timeout)
            .header("X-Nomad-Token", token)
            .send()
            .await
            .map_err(|e| Reply::Unreachable(format!("{url}: {e}")))?;
        let status = resp.status();
        let index = resp
            .headers()
            .get("x-nomad-index")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Answer { body: None, index });
        }
        let body = read_limited(resp)
            .await
            .map_err(|e| Reply::Unreachable(format!("{url}: {e}")))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            return Err(if status.is_server_error() {
                Reply::Unreachable(format!("{url}: {status}: {text}"))
            } else {
                Reply::Refused(format!("{url}: {status}: {text}"))
            });
        }
        let body = serde_json::from_slice(&body)
            .map_err(|e| Reply::Refused(format!("{url}: answer is not JSON: {e}")))?;
        Ok(Answer {
            body: Some(body),
            index,
        })
    }
}

/// A server's answer: its JSON body (`None` for 404) and its `X-Nomad-Index`.
struct Answer {
    body: Option<serde_json::Value>,
    index: Option<i64>,
}

/// How one server's answer went wrong: refused (no point asking another) or unreachable.
enum Reply {
    Refused(String),
    Unreachable(String),
}

/// What a server advertises at `/nomos/servers/<id>`.
#[derive(Debug, Deserialize)]
struct Advertised {
    http_addr: String,
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!("answer larger than {MAX_ANSWER_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
