//! The cluster's identity in the store itself (`/nomos/cluster`), so it works on etcd too:
//! created create-only by the first server, read by every later one and by the agents (which
//! never touch their tasks while the store shows another identity, see `docs/keys.md`).

use crate::{
    keys, Compare, CompareOp, CompareTarget, KeySelector, PutOptions, RangeOptions, Result, Store,
    Txn,
};
use crate::{TxnOp, TxnOpResponse};

/// Returns the cluster ID, creating `/nomos/cluster` (`{"id", "created_at_ms"}`) when the store
/// has none. Racing servers make one ID: the create compares `create_revision = 0`, and the
/// loser reads the winner's.
pub async fn ensure_cluster_id(store: &dyn Store) -> Result<String> {
    if let Some(id) = read_cluster_id(store).await? {
        return Ok(id);
    }
    let id = crate::embedded::new_cluster_id()?;
    let created_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let value = format!(r#"{{"id":"{id}","created_at_ms":{created_at_ms}}}"#);
    let create = Txn::new()
        .when([Compare::new(
            keys::CLUSTER,
            CompareOp::Equal,
            CompareTarget::CreateRevision(0),
        )])
        .and_then([TxnOp::Put {
            key: keys::CLUSTER.as_bytes().to_vec(),
            value: value.into_bytes(),
            options: PutOptions::default(),
        }])
        .or_else([TxnOp::Range(
            KeySelector::key(keys::CLUSTER),
            RangeOptions::default(),
        )]);
    let resp = store.txn(create).await?;
    if resp.succeeded {
        return Ok(id);
    }
    let winner = resp.responses.into_iter().find_map(|r| match r {
        TxnOpResponse::Range(r) => r.kvs.into_iter().next(),
        _ => None,
    });
    Ok(winner.and_then(|kv| id_of(&kv.value)).unwrap_or(id))
}

/// The cluster ID in the store, if there is one.
pub async fn read_cluster_id(store: &dyn Store) -> Result<Option<String>> {
    let resp = store
        .range(KeySelector::key(keys::CLUSTER), RangeOptions::default())
        .await?;
    Ok(resp.kvs.first().and_then(|kv| id_of(&kv.value)))
}

/// The `"id"` of a `/nomos/cluster` value (the store crate has no JSON parser: the value is
/// written by [`ensure_cluster_id`] in one fixed shape).
fn id_of(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let rest = text.split_once(r#""id":""#)?.1;
    Some(rest.split_once('"')?.0.to_string())
}
