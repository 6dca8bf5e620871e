//! A variable as kept at `/nomos/vars/<ns>/<path>`: its metadata in the clear (namespace, path,
//! times, lock) and its items sealed by the keyring (AES-256-GCM) with associated data that
//! binds the namespace and path, so a sealed blob copied to another variable's key does not
//! open. `CreateIndex` and `ModifyIndex` are the key's create and mod revisions, never stored.

use nomos_api::variables::{Items, VariableMetadata};
use nomos_store::{keys, Compare, CompareOp, KeySelector, KeyValue, RangeOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::lock::StoredLock;
use crate::error::ServerError;
use crate::keyring::Sealed;
use crate::AppState;

/// The stored value of a variable's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoredVariable {
    pub namespace: String,
    pub path: String,
    /// Unix nanoseconds.
    pub create_time: i64,
    pub modify_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<StoredLock>,
    /// The items as JSON, sealed.
    pub data: Sealed,
}

/// A stored variable with its key's revisions.
#[derive(Debug, Clone)]
pub struct Current {
    pub record: StoredVariable,
    pub create_index: i64,
    pub modify_index: i64,
}

impl Current {
    /// The metadata Nomad shows, lock included (callers strip it where it must not show).
    pub fn metadata(&self) -> VariableMetadata {
        VariableMetadata {
            namespace: self.record.namespace.clone(),
            path: self.record.path.clone(),
            lock: self.record.lock.as_ref().map(|l| l.lock.clone()),
            create_index: self.create_index,
            create_time: self.record.create_time,
            modify_index: self.modify_index,
            modify_time: self.record.modify_time,
        }
    }
}

/// The associated data a variable's items are sealed with: its namespace and path.
pub fn aad(namespace: &str, path: &str) -> Vec<u8> {
    format!("nomos/vars\0{namespace}\0{path}").into_bytes()
}

/// Decodes one stored key-value into a [`Current`]; a record whose namespace and path are not
/// its key's is corrupt (it would be shown, and written back, as another variable).
pub fn decode(kv: &KeyValue) -> Result<Current, ServerError> {
    let key = kv.key_str();
    let corrupt = |message: String| ServerError::Corrupt {
        key: key.clone().into_owned(),
        message,
    };
    let record: StoredVariable =
        serde_json::from_slice(&kv.value).map_err(|e| corrupt(e.to_string()))?;
    if keys::variable(&record.namespace, &record.path).as_bytes() != kv.key.as_slice() {
        return Err(corrupt(format!(
            "record names namespace {:.140?} and path {:.140?}, not its key's",
            record.namespace, record.path
        )));
    }
    Ok(Current {
        record,
        create_index: kv.create_revision,
        modify_index: kv.mod_revision,
    })
}

/// The variable at `path` in `namespace`, if any.
pub async fn load(
    st: &AppState,
    namespace: &str,
    path: &str,
) -> Result<Option<Current>, ServerError> {
    let resp = st
        .store
        .range(
            KeySelector::key(keys::variable(namespace, path)),
            RangeOptions::default(),
        )
        .await?;
    resp.kvs.first().map(decode).transpose()
}

/// Seals `items` for the variable at `path` in `namespace` with the active key.
pub async fn seal(
    st: &AppState,
    namespace: &str,
    path: &str,
    items: &Items,
) -> Result<Sealed, ServerError> {
    let plain = serde_json::to_vec(items).map_err(|e| ServerError::Internal(e.to_string()))?;
    st.keyring.encrypt(&plain, &aad(namespace, path)).await
}

/// Opens a stored variable's items.
pub async fn open(st: &AppState, record: &StoredVariable) -> Result<Items, ServerError> {
    let plain = st
        .keyring
        .decrypt(&record.data, &aad(&record.namespace, &record.path))
        .await?;
    serde_json::from_slice(&plain).map_err(|e| ServerError::Corrupt {
        key: keys::variable(&record.namespace, &record.path),
        message: format!("sealed items are not a JSON object of strings: {e}"),
    })
}

/// Writes `record` if its key's mod revision is still `expected` (0: absent). `Some(revision)`
/// on success, `None` when someone changed the key first.
pub async fn commit(
    st: &AppState,
    record: &StoredVariable,
    expected: i64,
) -> Result<Option<i64>, ServerError> {
    let key = keys::variable(&record.namespace, &record.path);
    let value = serde_json::to_vec(record).map_err(|e| ServerError::Internal(e.to_string()))?;
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            expected,
        )])
        .and_then([TxnOp::put(key, value)]);
    let resp = st.store.txn(txn).await?;
    Ok(resp.succeeded.then_some(resp.revision))
}

/// Deletes the variable if its key's mod revision is still `expected`.
pub async fn remove(
    st: &AppState,
    namespace: &str,
    path: &str,
    expected: i64,
) -> Result<Option<i64>, ServerError> {
    let key = keys::variable(namespace, path);
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            expected,
        )])
        .and_then([TxnOp::delete(key)]);
    let resp = st.store.txn(txn).await?;
    Ok(resp.succeeded.then_some(resp.revision))
}
