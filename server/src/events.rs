//! Who may see a store change, for the event stream (`GET /v1/event/stream`,
//! [`crate::nomad::event_stream`]).
//!
//! Each change goes only to callers who may read it ([`audience`], [`Visibility`]): job,
//! version, status, deployment, evaluation and service changes to `read-job` holders in
//! their namespace (the key's), allocation changes likewise in the allocation's namespace (an
//! allocation status is looked up through its allocation, remembered per stream), node
//! changes to `node` read, and everything else (ACL objects, keyring, variables,
//! configuration, elections) to management tokens only. [`token_expiry`] ends a stream when
//! its token expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nomos_api::acl::check::CAP_READ_JOB;
use nomos_api::acl::{Access, Acl};
use nomos_store::{keys, WatchEvent, WatchResponse};
use serde::Deserialize;

use crate::acl::Caller;
use crate::AppState;

/// Most allocation namespaces one stream remembers (beyond it, the memory starts afresh).
const MAX_REMEMBERED_ALLOCS: usize = 10_000;

/// Who may see an event, from its key (and for an allocation, its value or previous value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// `read-job` holders in this namespace.
    Namespace(String),
    /// `read-job` holders in the namespace of the allocation `/nomos/allocs/<node>/<alloc>`.
    Alloc { node: String, alloc: String },
    /// `node` readers.
    Nodes,
    /// Management tokens only.
    Management,
}

/// The audience of the change to `key`, whose new or previous value is `values`.
pub fn audience(key: &str, values: &[&[u8]]) -> Audience {
    let Some(rest) = key.strip_prefix(keys::ROOT) else {
        return Audience::Management;
    };
    let mut parts = rest.splitn(3, '/');
    let (topic, first, second) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    match topic {
        "jobs" | "jobversions" | "jobstatus" | "deployments" | "services" | "evals"
            if !first.is_empty() =>
        {
            Audience::Namespace(first.to_string())
        }
        "allocs" => values
            .iter()
            .find_map(|v| namespace_in(v))
            .map(Audience::Namespace)
            .unwrap_or_else(|| Audience::Alloc {
                node: first.to_string(),
                alloc: second.to_string(),
            }),
        "allocstatus" => Audience::Alloc {
            node: first.to_string(),
            alloc: second.to_string(),
        },
        "nodes" | "nodespec" | "heartbeats" | "nodestatus" | "drainstatus" => Audience::Nodes,
        _ => Audience::Management,
    }
}

/// The `namespace` field of a stored allocation.
fn namespace_in(value: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Namespaced {
        namespace: String,
    }
    serde_json::from_slice::<Namespaced>(value)
        .ok()
        .map(|n| n.namespace)
        .filter(|n| !n.is_empty())
}

/// Decides, per event, whether one caller may see it; remembers allocations' namespaces so a
/// stream of status changes does not read each allocation again.
#[derive(Clone)]
pub struct Visibility {
    acl: Acl,
    st: AppState,
    allocs: Arc<Mutex<HashMap<String, String>>>,
}

impl Visibility {
    pub fn new(st: AppState, acl: Acl) -> Self {
        Visibility {
            acl,
            st,
            allocs: Arc::default(),
        }
    }

    fn remember(&self, alloc: &str, namespace: &str) {
        let mut m = self.allocs.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_REMEMBERED_ALLOCS {
            m.clear();
        }
        m.insert(alloc.to_string(), namespace.to_string());
    }

    /// The namespace of an allocation: remembered, else read from the store (`None` when it
    /// is gone).
    async fn alloc_namespace(&self, node: &str, alloc: &str) -> Option<String> {
        let known = self
            .allocs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(alloc)
            .cloned();
        if known.is_some() {
            return known;
        }
        let raw = crate::kv::get_raw(self.st.store.as_ref(), &keys::alloc(node, alloc))
            .await
            .ok()??;
        let ns = namespace_in(&raw.value)?;
        self.remember(alloc, &ns);
        Some(ns)
    }

    /// May the caller see `ev`? An allocation whose namespace cannot be told any more is
    /// shown only to callers who may read every namespace.
    pub async fn allows(&self, ev: &WatchEvent) -> bool {
        if self.acl.is_management() {
            return true;
        }
        // A key that is not UTF-8 names nothing Nomos wrote.
        let Ok(key) = ev.kv.key_utf8() else {
            return false;
        };
        let mut values: Vec<&[u8]> = vec![&ev.kv.value];
        if let Some(prev) = &ev.prev_kv {
            values.push(&prev.value);
        }
        let namespace = match audience(key, &values) {
            Audience::Management => return false,
            Audience::Nodes => return self.acl.allows_node(Access::Read),
            Audience::Namespace(ns) => {
                if key.starts_with(keys::ALLOCS_PREFIX) {
                    if let Some(alloc) = key.rsplit('/').next() {
                        self.remember(alloc, &ns);
                    }
                }
                ns
            }
            Audience::Alloc { node, alloc } => self
                .alloc_namespace(&node, &alloc)
                .await
                .unwrap_or_else(|| "*".into()),
        };
        self.acl.allows_namespace(&namespace, CAP_READ_JOB)
    }

    /// The events of `resp` the caller may see.
    pub async fn visible(&self, resp: WatchResponse) -> WatchResponse {
        let revision = resp.revision;
        let mut events = Vec::with_capacity(resp.events.len());
        for ev in resp.events {
            if self.allows(&ev).await {
                events.push(ev);
            }
        }
        WatchResponse { revision, events }
    }
}

/// Resolves when `caller`'s token expires (never for a token without expiry).
pub async fn token_expiry(caller: &Caller) {
    let at = caller
        .token
        .as_ref()
        .and_then(|t| t.expiration_time.as_deref())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    match at {
        None => std::future::pending().await,
        Some(at) => {
            let left = at.duration_since(jiff::Timestamp::now());
            let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
            tokio::time::sleep(left).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_topic_has_the_audience_nomad_gives_it() {
        let ns = |n: &str| Audience::Namespace(n.into());
        let alloc = br#"{"id": "x", "namespace": "a"}"#;
        for (key, values, want) in [
            ("/nomos/jobs/a/web", vec![], ns("a")),
            (
                "/nomos/jobversions/b/web/00000000000000000001",
                vec![],
                ns("b"),
            ),
            ("/nomos/jobstatus/a/web", vec![], ns("a")),
            ("/nomos/deployments/a/web/web-v1-x", vec![], ns("a")),
            ("/nomos/services/a/web/_nomad-task-x", vec![], ns("a")),
            ("/nomos/evals/b/e1", vec![], ns("b")),
            ("/nomos/allocs/n1/x", vec![&alloc[..]], ns("a")),
            (
                "/nomos/allocs/n1/x",
                vec![&b""[..]],
                Audience::Alloc {
                    node: "n1".into(),
                    alloc: "x".into(),
                },
            ),
            (
                "/nomos/allocstatus/n1/x",
                vec![],
                Audience::Alloc {
                    node: "n1".into(),
                    alloc: "x".into(),
                },
            ),
            ("/nomos/nodes/n1", vec![], Audience::Nodes),
            ("/nomos/heartbeats/n1", vec![], Audience::Nodes),
            ("/nomos/drainstatus/n1", vec![], Audience::Nodes),
            ("/nomos/acl/tokens/x", vec![], Audience::Management),
            ("/nomos/acl/secrets/x", vec![], Audience::Management),
            ("/nomos/keyring/active", vec![], Audience::Management),
            ("/nomos/vars/a/app", vec![], Audience::Management),
            ("/nomos/something-new/x", vec![], Audience::Management),
            ("/nomos/jobs/", vec![], Audience::Management),
            ("/elsewhere", vec![], Audience::Management),
        ] {
            assert_eq!(audience(key, &values), want, "{key}");
        }
    }
}
