//! The cluster guard: an agent touches its tasks only while the store is the cluster it ran
//! them for. The first server writes `/nomos/cluster` (a random ID) create-only; the agent
//! remembers the first ID it sees (`cluster-id` in its data dir) and, on every list of its
//! allocations, reads the key in the same transaction. A store that shows another ID, or none
//! once one was remembered, is a lost or replaced store (a server started on an empty data
//! directory, the wrong etcd): its empty allocation list must not stop anything. The agent then
//! leaves every task as it is, logs both IDs and what to do, writes the problem into its node
//! registration (attribute [`MISMATCH_ATTRIBUTE`]) and retries. `nctl agent purge` (which stops
//! the node's tasks and forgets the data dir, the remembered ID with it) accepts a new cluster.

use nomos_store::{keys, KeySelector, KeyValue, RangeOptions, Store, Txn, TxnOp, TxnOpResponse};

use crate::error::AgentError;
use crate::state::StateDir;

/// The node attribute that tells an operator why this agent is waiting.
pub const MISMATCH_ATTRIBUTE: &str = "nomos.cluster.mismatch";

/// What the store's cluster ID means for this agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The cluster the agent belongs to (or a cluster without an ID, and none remembered).
    Same,
    /// The first ID this agent sees: remember it, then carry on.
    First(String),
    /// Not the remembered cluster: touch nothing.
    Changed {
        remembered: String,
        found: Option<String>,
    },
}

/// Judges the store's cluster ID against the remembered one (pure).
pub fn judge(remembered: Option<&str>, found: Option<&str>) -> Verdict {
    match (remembered, found) {
        (None, None) => Verdict::Same,
        (None, Some(id)) => Verdict::First(id.to_string()),
        (Some(r), Some(f)) if r == f => Verdict::Same,
        (Some(r), found) => Verdict::Changed {
            remembered: r.to_string(),
            found: found.map(str::to_string),
        },
    }
}

/// The `id` of a `/nomos/cluster` value (`None` if it is not one).
pub fn cluster_id_of(value: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    v.get("id")?.as_str().map(str::to_string)
}

/// Lists `prefix` and reads `/nomos/cluster` at one revision; fails with
/// [`AgentError::ClusterChanged`] (after recording it) when the store is not this agent's
/// cluster. Returns the listed keys and the revision.
pub async fn list_checked(
    store: &dyn Store,
    state: &StateDir,
    node: &str,
    prefix: &str,
) -> Result<(Vec<KeyValue>, i64), AgentError> {
    let read = Txn::new().and_then([
        TxnOp::Range(KeySelector::key(keys::CLUSTER), RangeOptions::default()),
        TxnOp::Range(KeySelector::prefix(prefix), RangeOptions::default()),
    ]);
    let resp = store.txn(read).await.map_err(|source| AgentError::Store {
        op: "list allocations",
        source,
    })?;
    let mut ranges = resp.responses.into_iter().filter_map(|r| match r {
        TxnOpResponse::Range(r) => Some(r.kvs),
        _ => None,
    });
    let cluster = ranges.next().unwrap_or_default();
    let allocs = ranges.next().unwrap_or_default();
    let found = cluster.first().and_then(|kv| cluster_id_of(&kv.value));
    judged(store, state, node, found).await?;
    Ok((allocs, resp.revision))
}

/// Checks the store's cluster ID alone (while following the watch: a watch that resumes on
/// a replaced store does not list again, so the agent asks on its own before stopping anything
/// and every few seconds); same outcome as [`list_checked`].
pub async fn verify(store: &dyn Store, state: &StateDir, node: &str) -> Result<(), AgentError> {
    let resp = store
        .range(KeySelector::key(keys::CLUSTER), RangeOptions::default())
        .await
        .map_err(|source| AgentError::Store {
            op: "read the cluster identity",
            source,
        })?;
    let found = resp.kvs.first().and_then(|kv| cluster_id_of(&kv.value));
    judged(store, state, node, found).await
}

/// Acts on the verdict for the store's cluster ID `found`.
async fn judged(
    store: &dyn Store,
    state: &StateDir,
    node: &str,
    found: Option<String>,
) -> Result<(), AgentError> {
    match judge(state.cluster_id()?.as_deref(), found.as_deref()) {
        Verdict::Same => Ok(()),
        Verdict::First(id) => {
            tracing::info!(cluster = %id, "this agent now belongs to cluster {id}");
            state.remember_cluster_id(&id)
        }
        Verdict::Changed { remembered, found } => {
            let err = AgentError::ClusterChanged {
                remembered,
                found: found.unwrap_or_else(|| "missing".to_string()),
            };
            tracing::error!(error = %err, "the store is not this agent's cluster");
            record_on_node(store, node, &err.to_string()).await;
            Err(err)
        }
    }
}

/// Writes `message` into the node's registration (attribute [`MISMATCH_ATTRIBUTE`]), where
/// `nctl node status` shows it; best effort, compared on the key's revision so a concurrent
/// registration is never overwritten with stale fields.
async fn record_on_node(store: &dyn Store, node: &str, message: &str) {
    let key = keys::node(node);
    let Ok(current) = store
        .range(KeySelector::key(key.clone()), RangeOptions::default())
        .await
    else {
        return;
    };
    let Some(kv) = current.kvs.first() else {
        return; // not registered yet: the next retry records it
    };
    let Ok(mut reg) = serde_json::from_slice::<serde_json::Value>(&kv.value) else {
        return;
    };
    let Some(attributes) = reg
        .get_mut("attributes")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    if attributes.get(MISMATCH_ATTRIBUTE).and_then(|v| v.as_str()) == Some(message) {
        return;
    }
    attributes.insert(MISMATCH_ATTRIBUTE.to_string(), message.into());
    let update = Txn::new()
        .when([nomos_store::Compare::mod_revision(
            key.clone(),
            nomos_store::CompareOp::Equal,
            kv.mod_revision,
        )])
        .and_then([TxnOp::put(key, reg.to_string())]);
    if let Err(e) = store.txn(update).await {
        tracing::debug!(error = %e, "recording the cluster mismatch on the node failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_adopts_the_first_cluster_id_it_sees() {
        assert_eq!(judge(None, Some("a")), Verdict::First("a".into()));
        assert_eq!(judge(None, None), Verdict::Same);
        assert_eq!(judge(Some("a"), Some("a")), Verdict::Same);
    }

    #[test]
    fn another_or_a_missing_cluster_id_is_a_changed_cluster() {
        assert_eq!(
            judge(Some("a"), Some("b")),
            Verdict::Changed {
                remembered: "a".into(),
                found: Some("b".into())
            }
        );
        assert_eq!(
            judge(Some("a"), None),
            Verdict::Changed {
                remembered: "a".into(),
                found: None
            }
        );
    }

    #[test]
    fn the_cluster_value_names_its_id() {
        assert_eq!(
            cluster_id_of(br#"{"id":"c1","created_at_ms":5}"#),
            Some("c1".into())
        );
        assert_eq!(cluster_id_of(b"not json"), None);
    }
}
