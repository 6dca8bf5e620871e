//! `GET /v1/events?topic=jobs&index=N`: server-sent events fed by a store watch on `/nomos/`
//! (or one topic's prefix), one event per change, with the store revision as the event id so a
//! client can resume with `index`. A compacted start revision ends the stream with an `error`
//! event telling the client to re-list.
//!
//! Each event goes only to callers who may read it ([`audience`], [`Visibility`]): job,
//! version, status and deployment events to `read-job` holders in their namespace (the key's),
//! allocation events likewise in the allocation's namespace (an allocation status is looked
//! up through its allocation, remembered per stream), node events to `node` read, and
//! everything else (ACL objects, keyring, variables, configuration, elections) to management
//! tokens only. A stream ends when its token expires.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures::{Stream, StreamExt};
use nomos_api::acl::check::CAP_READ_JOB;
use nomos_api::acl::{Access, Acl};
use nomos_store::{keys, EventKind, KeySelector, WatchEvent, WatchOptions, WatchResponse};
use serde::Deserialize;

use crate::acl::Caller;
use crate::error::ServerError;
use crate::views::EventView;
use crate::AppState;

/// Most allocation namespaces one stream remembers (beyond it, the memory starts afresh).
const MAX_REMEMBERED_ALLOCS: usize = 10_000;

#[derive(Debug, Deserialize, Default)]
pub struct EventsQuery {
    /// `jobs`, `allocs`, `allocstatus`, `nodes`, `deployments`, ... (the key's second segment).
    pub topic: Option<String>,
    /// Deliver changes after this revision (0 or absent: from now on).
    #[serde(default)]
    pub index: i64,
}

/// The prefix a topic watches.
pub fn topic_prefix(topic: Option<&str>) -> Result<String, ServerError> {
    match topic {
        None | Some("") => Ok(nomos_store::keys::ROOT.to_string()),
        Some(t)
            if t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Ok(format!("{}{t}/", nomos_store::keys::ROOT))
        }
        Some(t) => Err(ServerError::BadRequest(format!("invalid topic {t:?}"))),
    }
}

/// The events of one watch response; events on keys that are not UTF-8 are left out.
pub fn to_views(resp: &WatchResponse) -> Vec<EventView> {
    resp.events
        .iter()
        .filter_map(|ev| {
            let key = ev.kv.key_utf8_or_skip()?.to_string();
            let topic = key
                .strip_prefix(nomos_store::keys::ROOT)
                .and_then(|r| r.split('/').next())
                .unwrap_or("")
                .to_string();
            Some(EventView {
                revision: ev.kv.mod_revision,
                kind: match ev.kind {
                    EventKind::Put => "put".into(),
                    EventKind::Delete => "delete".into(),
                },
                topic,
                key,
                value: serde_json::from_slice(&ev.kv.value).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}

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
        "jobs" | "jobversions" | "jobstatus" | "deployments" if !first.is_empty() => {
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
        // A key that is not UTF-8 names nothing Nomos wrote; [`to_views`] leaves it out.
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
async fn token_expiry(caller: &Caller) {
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

fn to_sse(item: Result<WatchResponse, nomos_store::StoreError>) -> Vec<Result<Event, Infallible>> {
    match item {
        Ok(resp) => to_views(&resp)
            .into_iter()
            .map(|v| {
                let data = serde_json::to_string(&v).unwrap_or_default();
                Ok(Event::default()
                    .id(v.revision.to_string())
                    .event(v.topic.clone())
                    .data(data))
            })
            .collect(),
        Err(e) => vec![Ok(Event::default().event("error").data(e.to_string()))],
    }
}

/// `GET /v1/events`: the changes the caller may see.
pub async fn stream(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ServerError> {
    let prefix = topic_prefix(q.topic.as_deref())?;
    let options = WatchOptions {
        start_revision: if q.index > 0 { q.index + 1 } else { 0 },
        prev_kv: true,
        ..WatchOptions::default()
    };
    let watch = st.store.watch(KeySelector::prefix(prefix), options).await?;
    let visibility = Visibility::new(st.clone(), caller.acl.clone());
    let expired = Box::pin(async move { token_expiry(&caller).await });
    let events = watch
        .then(move |item| {
            let visibility = visibility.clone();
            async move {
                match item {
                    Ok(resp) => Ok(visibility.visible(resp).await),
                    Err(e) => Err(e),
                }
            }
        })
        .map(to_sse)
        .flat_map(futures::stream::iter)
        .take_until(futures::future::select(Box::pin(st.closed()), expired));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
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
