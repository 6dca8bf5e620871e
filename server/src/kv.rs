//! Typed helpers over the [`Store`] trait: read one JSON value, list a prefix, and write with a
//! compare on `mod_revision` (0 meaning "the key must not exist"), as etcd clients do.

use nomos_store::{Compare, CompareOp, KeySelector, KeyValue, RangeOptions, Store, Txn, TxnOp};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ServerError;

/// One decoded value with its key metadata.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    pub key: String,
    pub value: T,
    pub mod_revision: i64,
    pub create_revision: i64,
}

/// Reads and decodes one key; `None` when it does not exist.
pub async fn get_json<T: DeserializeOwned>(
    store: &dyn Store,
    key: &str,
) -> Result<Option<Entry<T>>, ServerError> {
    let resp = store
        .range(KeySelector::key(key), RangeOptions::default())
        .await?;
    match resp.kvs.into_iter().next() {
        None => Ok(None),
        Some(kv) => decode(kv).map(Some),
    }
}

/// Reads the raw key-value.
pub async fn get_raw(store: &dyn Store, key: &str) -> Result<Option<KeyValue>, ServerError> {
    let resp = store
        .range(KeySelector::key(key), RangeOptions::default())
        .await?;
    Ok(resp.kvs.into_iter().next())
}

/// Lists and decodes every key under a prefix, in key order. Values that do not decode, and
/// keys that are not UTF-8, are skipped with a warning rather than failing the whole list.
pub async fn list_json<T: DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
) -> Result<Vec<Entry<T>>, ServerError> {
    let resp = store
        .range(KeySelector::prefix(prefix), RangeOptions::default())
        .await?;
    let mut out = Vec::with_capacity(resp.kvs.len());
    for kv in resp.kvs {
        match decode(kv) {
            Ok(e) => out.push(e),
            Err(e) => tracing::warn!(error = %e, "skipping undecodable value"),
        }
    }
    Ok(out)
}

fn decode<T: DeserializeOwned>(kv: KeyValue) -> Result<Entry<T>, ServerError> {
    let key = kv.key_utf8()?.to_string();
    let value = serde_json::from_slice(&kv.value).map_err(|e| ServerError::Corrupt {
        key: key.clone(),
        message: e.to_string(),
    })?;
    Ok(Entry {
        key,
        value,
        mod_revision: kv.mod_revision,
        create_revision: kv.create_revision,
    })
}

/// Writes `value` as JSON if the key's mod_revision still equals `expected` (0: absent).
/// Returns the new mod_revision, or [`ServerError::Conflict`].
pub async fn put_if<T: Serialize>(
    store: &dyn Store,
    key: &str,
    value: &T,
    expected: i64,
) -> Result<i64, ServerError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ServerError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })?;
    put_raw_if(store, key, bytes, expected).await
}

/// Commits `ops` if every compare holds; returns the revision, or a
/// [`ServerError::Conflict`] saying `conflict` (what changed, and that a retry is the answer).
pub async fn commit(
    store: &dyn Store,
    compares: Vec<Compare>,
    ops: Vec<TxnOp>,
    conflict: impl FnOnce() -> String,
) -> Result<i64, ServerError> {
    let resp = store.txn(Txn::new().when(compares).and_then(ops)).await?;
    if resp.succeeded {
        Ok(resp.revision)
    } else {
        Err(ServerError::Conflict(conflict()))
    }
}

/// Writes `value` as JSON whatever the key holds; returns the new mod_revision.
pub async fn put_json<T: Serialize>(
    store: &dyn Store,
    key: &str,
    value: &T,
) -> Result<i64, ServerError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ServerError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })?;
    let resp = store
        .txn(Txn::new().and_then([TxnOp::put(key, bytes)]))
        .await?;
    Ok(resp.revision)
}

/// [`put_if`] for bytes already encoded.
pub async fn put_raw_if(
    store: &dyn Store,
    key: &str,
    bytes: Vec<u8>,
    expected: i64,
) -> Result<i64, ServerError> {
    let txn = Txn::new()
        .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
        .and_then([TxnOp::put(key, bytes)]);
    let resp = store.txn(txn).await?;
    if resp.succeeded {
        Ok(resp.revision)
    } else {
        Err(ServerError::Conflict(format!(
            "{key} was modified concurrently (expected modify index {expected})"
        )))
    }
}

/// Deletes a key if its mod_revision still equals `expected`.
pub async fn delete_if(store: &dyn Store, key: &str, expected: i64) -> Result<i64, ServerError> {
    let txn = Txn::new()
        .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
        .and_then([TxnOp::delete(key)]);
    let resp = store.txn(txn).await?;
    if resp.succeeded {
        Ok(resp.revision)
    } else {
        Err(ServerError::Conflict(format!(
            "{key} was modified concurrently"
        )))
    }
}

/// Finds the one entry whose id (as given by `id_of`) equals `wanted` or starts with it, as
/// Nomad resolves ID prefixes. An exact match wins over prefix matches.
pub fn resolve_prefix<'a, T>(
    items: &'a [T],
    wanted: &str,
    what: &str,
    id_of: impl Fn(&T) -> &str,
) -> Result<&'a T, ServerError> {
    if let Some(exact) = items.iter().find(|i| id_of(i) == wanted) {
        return Ok(exact);
    }
    let matches: Vec<&T> = items
        .iter()
        .filter(|i| id_of(i).starts_with(wanted))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(ServerError::NotFound(format!(
            "no {what} matches {wanted:?}"
        ))),
        many => {
            let ids: Vec<&str> = many.iter().take(5).map(|i| id_of(i)).collect();
            Err(ServerError::Ambiguous(format!(
                "{wanted:?} matches {} {what}s ({}{}); give more of the ID",
                many.len(),
                ids.join(", "),
                if many.len() > 5 { ", ..." } else { "" }
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_prefix_table() {
        let ids = ["abc123", "abd456", "xyz", "xy"];
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("abc", Ok("abc123")),
            ("abd4", Ok("abd456")),
            ("ab", Err("matches 2")),
            ("xy", Ok("xy")),
            ("q", Err("no alloc")),
        ];
        for (wanted, want) in cases {
            let got = resolve_prefix(&ids, wanted, "alloc", |s| s);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{wanted}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{wanted}: {e}"),
                (g, w) => panic!("{wanted}: got {g:?}, want {w:?}"),
            }
        }
    }
}
