//! Variables (Nomad's `/v1/var` API), encrypted at rest.
//!
//! Layout:
//! - [`record`]: the stored form at `/nomos/vars/<ns>/<path>` (metadata in the clear, items
//!   sealed by the keyring with AES-256-GCM, the namespace and path bound as associated data),
//!   and the load / compare-and-put helpers.
//! - [`lock`]: the pure lock decisions (held, within its lock delay, lapsed; who may write,
//!   acquire, renew, release) at a time passed in.
//! - [`endpoints`]: the HTTP handlers, which check the caller's variable capabilities
//!   ([`nomos_api::acl::Acl::allows_variable`]) on the namespace and path they learn.
//! - here: [`reencrypt_all`], run by the keyring's rotation.
//!
//! Shapes, path syntax and limits are `nomos_api::variables`; nothing secret is ever logged.

pub mod endpoints;
pub mod lock;
pub mod record;

pub use endpoints::{list, purge, read, write};

use nomos_store::{keys, prefix_end, KeySelector, KeyValue, RangeOptions};

use crate::error::ServerError;
use crate::AppState;

/// Variables read per store request while re-encrypting.
const REKEY_PAGE: i64 = 256;
/// How often one variable is re-read and re-sealed when it keeps changing under the rotation.
const REKEY_ATTEMPTS: usize = 8;

/// Re-seals every variable not sealed with the keyring's active key, and returns how many it
/// re-sealed. Each one is written with a compare on its `mod_revision` and re-read when a
/// concurrent write won, so no write is lost (a variable a user rewrote meanwhile is already
/// sealed with the active key and is left alone). Re-sealing leaves `ModifyTime` as it was but
/// moves `ModifyIndex` (it is a store write). A variable that cannot be opened (its key removed,
/// its record altered) is skipped with a warning and reported in the error after every other
/// one was done.
pub async fn reencrypt_all(st: &AppState) -> Result<usize, ServerError> {
    let active = st.keyring.active_key_id().await?;
    let end = prefix_end(keys::VARS_PREFIX.as_bytes());
    let mut start = keys::VARS_PREFIX.as_bytes().to_vec();
    let (mut resealed, mut failed) = (0usize, Vec::new());
    loop {
        let resp = st
            .store
            .range(
                KeySelector::Range {
                    start: start.clone(),
                    end: end.clone(),
                },
                RangeOptions {
                    limit: REKEY_PAGE,
                    ..RangeOptions::default()
                },
            )
            .await?;
        for kv in &resp.kvs {
            match reseal_one(st, kv.clone(), &active).await {
                Ok(true) => resealed += 1,
                Ok(false) => {}
                Err(ServerError::Store(e)) => return Err(ServerError::Store(e)),
                Err(e) => {
                    tracing::warn!(key = %kv.key_str(), error = %e, "cannot re-encrypt a variable");
                    failed.push(format!("{}: {e}", kv.key_str()));
                }
            }
        }
        match resp.kvs.last() {
            Some(last) if resp.more => {
                start = last.key.clone();
                start.push(0);
            }
            _ => break,
        }
    }
    if failed.is_empty() {
        Ok(resealed)
    } else {
        Err(ServerError::Internal(format!(
            "re-encrypted {resealed} variable(s); {} could not be: {}",
            failed.len(),
            failed.join("; ")
        )))
    }
}

/// Re-seals one variable with the active key unless that key sealed it. `Ok(false)` when
/// nothing needed doing (already current, or deleted meanwhile).
async fn reseal_one(st: &AppState, mut kv: KeyValue, active: &str) -> Result<bool, ServerError> {
    for _ in 0..REKEY_ATTEMPTS {
        let current = record::decode(&kv)?;
        if current.record.data.key_id == active {
            return Ok(false);
        }
        let items = record::open(st, &current.record).await?;
        let mut rec = current.record.clone();
        rec.data = record::seal(st, &rec.namespace, &rec.path, &items).await?;
        if record::commit(st, &rec, current.modify_index)
            .await?
            .is_some()
        {
            return Ok(true);
        }
        let fresh = st
            .store
            .range(KeySelector::key(kv.key.clone()), RangeOptions::default())
            .await?;
        match fresh.kvs.into_iter().next() {
            Some(next) => kv = next,
            None => return Ok(false),
        }
    }
    Err(ServerError::Conflict(format!(
        "variable at {} kept changing while re-encrypting it; rotate again",
        kv.key_str()
    )))
}
