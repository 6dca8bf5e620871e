//! The keyring's writes and reads in the store, each one transaction: create the first root
//! key (create-only on `/nomos/keyring/active`, so racing servers make one), rotate (compare
//! the active marker's and the old key's `mod_revision`), remove an inactive key, and read
//! everything back.

use nomos_store::{
    keys, Compare, CompareOp, CompareTarget, KeySelector, RangeOptions, Store, Txn, TxnOp,
};
use serde::{Deserialize, Serialize};

use super::kek::{random_key, Kek};
use super::root::{KeyMeta, KeyState, StoredKey, ALGORITHM};
use crate::error::ServerError;
use crate::kv;

/// How many times a rotation re-reads and retries after losing a race.
const ROTATE_ATTEMPTS: usize = 3;

/// The value of `/nomos/keyring/active`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveMarker {
    #[serde(rename = "KeyID")]
    pub key_id: String,
}

/// Everything under `/nomos/keyring/`, decoded, at one revision.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub revision: i64,
    pub active: Option<ActiveMarker>,
    pub keys: Vec<StoredKey>,
}

/// Reads the whole keyring at one revision.
pub async fn load(store: &dyn Store) -> Result<Snapshot, ServerError> {
    let resp = store
        .range(
            KeySelector::prefix(keys::KEYRING_PREFIX),
            RangeOptions::default(),
        )
        .await?;
    let mut snap = Snapshot {
        revision: resp.revision,
        ..Snapshot::default()
    };
    for kv in resp.kvs {
        let Some(key) = kv.key_utf8_or_skip() else {
            continue;
        };
        if key == keys::KEYRING_ACTIVE {
            snap.active = Some(decode(key, &kv.value)?);
        } else if key.starts_with(keys::KEYRING_KEYS_PREFIX) {
            snap.keys.push(decode(key, &kv.value)?);
        }
    }
    Ok(snap)
}

/// Decodes a keyring value, naming the key when it does not decode.
pub fn decode<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, ServerError> {
    serde_json::from_slice(value).map_err(|e| ServerError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

/// Makes the first root key unless one is active already. Two servers racing both call this;
/// the create-only compare lets exactly one win and the other reads the winner's key.
pub async fn bootstrap(store: &dyn Store, kek: &Kek, now_ns: i64) -> Result<(), ServerError> {
    if kv::get_raw(store, keys::KEYRING_ACTIVE).await?.is_some() {
        return Ok(());
    }
    let stored = new_key(kek, now_ns)?;
    let txn = Txn::new()
        .when([Compare::new(
            keys::KEYRING_ACTIVE,
            CompareOp::Equal,
            CompareTarget::CreateRevision(0),
        )])
        .and_then([
            put_json(&keys::keyring_key(&stored.meta.key_id), &stored)?,
            put_json(keys::KEYRING_ACTIVE, &marker(&stored))?,
        ]);
    let resp = store.txn(txn).await?;
    if resp.succeeded {
        tracing::info!(key_id = %stored.meta.key_id, "created the first root key of the keyring");
    }
    Ok(())
}

/// Makes a new active root key and the active one inactive, in one transaction that compares
/// both keys' revisions; retries a few times when another rotation wins the race.
pub async fn rotate(store: &dyn Store, kek: &Kek, now_ns: i64) -> Result<KeyMeta, ServerError> {
    for _ in 0..ROTATE_ATTEMPTS {
        let Some(active) = kv::get_json::<ActiveMarker>(store, keys::KEYRING_ACTIVE).await? else {
            bootstrap(store, kek, now_ns).await?;
            continue;
        };
        let old_key = keys::keyring_key(&active.value.key_id);
        let old = kv::get_json::<StoredKey>(store, &old_key).await?;
        let stored = new_key(kek, now_ns)?;
        let mut ops = vec![
            put_json(&keys::keyring_key(&stored.meta.key_id), &stored)?,
            put_json(keys::KEYRING_ACTIVE, &marker(&stored))?,
        ];
        let mut compares = vec![Compare::mod_revision(
            keys::KEYRING_ACTIVE,
            CompareOp::Equal,
            active.mod_revision,
        )];
        if let Some(old) = old {
            let mut retired = old.value;
            retired.meta.state = KeyState::Inactive;
            ops.push(put_json(&old_key, &retired)?);
            compares.push(Compare::mod_revision(
                old_key.as_str(),
                CompareOp::Equal,
                old.mod_revision,
            ));
        }
        if store
            .txn(Txn::new().when(compares).and_then(ops))
            .await?
            .succeeded
        {
            tracing::info!(key_id = %stored.meta.key_id, previous = %active.value.key_id, "rotated the keyring");
            return Ok(stored.meta);
        }
    }
    Err(ServerError::Conflict(format!(
        "the keyring changed during each of {ROTATE_ATTEMPTS} rotation attempts; try again"
    )))
}

/// Removes an inactive root key. The active key is refused (400): rotate first.
pub async fn remove(store: &dyn Store, key_id: &str) -> Result<(), ServerError> {
    if uuid::Uuid::parse_str(key_id).is_err() {
        return Err(ServerError::BadRequest(format!(
            "key_id {key_id:.64?} is not a key ID (a UUID)"
        )));
    }
    let active = kv::get_json::<ActiveMarker>(store, keys::KEYRING_ACTIVE).await?;
    if active.as_ref().is_some_and(|a| a.value.key_id == key_id) {
        return Err(ServerError::BadRequest(format!(
            "key {key_id} is the active root key and cannot be removed; rotate the keyring first"
        )));
    }
    let key = keys::keyring_key(key_id);
    let Some(found) = kv::get_raw(store, &key).await? else {
        return Err(ServerError::NotFound(format!("no root key {key_id}")));
    };
    let marker_rev = active.map_or(0, |a| a.mod_revision);
    let txn = Txn::new()
        .when([
            Compare::mod_revision(keys::KEYRING_ACTIVE, CompareOp::Equal, marker_rev),
            Compare::mod_revision(key.as_str(), CompareOp::Equal, found.mod_revision),
        ])
        .and_then([TxnOp::delete(key.as_str())]);
    if store.txn(txn).await?.succeeded {
        tracing::info!(key_id, "removed a root key from the keyring");
        Ok(())
    } else {
        Err(ServerError::Conflict(format!(
            "the keyring changed while removing key {key_id}; try again"
        )))
    }
}

fn new_key(kek: &Kek, now_ns: i64) -> Result<StoredKey, ServerError> {
    let key_id = uuid::Uuid::new_v4().to_string();
    let material = random_key()?;
    let wrapped = kek.wrap(&key_id, &material)?;
    Ok(StoredKey {
        meta: KeyMeta {
            key_id,
            state: KeyState::Active,
            create_time: now_ns,
            algorithm: ALGORITHM.into(),
        },
        wrapped,
    })
}

fn marker(stored: &StoredKey) -> ActiveMarker {
    ActiveMarker {
        key_id: stored.meta.key_id.clone(),
    }
}

fn put_json<T: Serialize>(key: &str, value: &T) -> Result<TxnOp, ServerError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ServerError::Internal(e.to_string()))?;
    Ok(TxnOp::put(key, bytes))
}
