//! The servers' keyring: root keys kept in the store under `/nomos/keyring/`, each wrapped by
//! the key encryption key from the server's configuration ([`Kek`]), and what they are used
//! for: sealing Variables (AES-256-GCM) and signing workload identities (Ed25519 JWTs, whose
//! public keys `/.well-known/jwks.json` serves).
//!
//! Parts: [`kek`] (the configured key and its file), [`root`] (stored records and the keys
//! derived from each root key with HKDF-SHA256), [`ops`] (the store transactions: first key,
//! rotation, removal), [`jwt`] (compact EdDSA tokens), [`endpoints`] (`/v1/operator/keyring/...`
//! and `/.well-known/...`).
//!
//! Each server keeps the unwrapped keys in memory, filled by one list at start ([`Keyring::start`],
//! which refuses a KEK that cannot unwrap the stored keys) and kept current by a watch of the
//! prefix, so a rotation on one server reaches the others. A key id the cache does not know yet
//! is read from the store once before it is declared unknown.
//!
//! Crypto comes from `ring` (already in the tree through rustls): it has AES-256-GCM, HKDF and
//! Ed25519 behind one audited, constant-time implementation and the OS random source, so no
//! second crypto stack (RustCrypto's `aes-gcm`, a JWT crate) is added for three primitives.

pub mod endpoints;
pub mod jwt;
pub mod kek;
pub mod ops;
pub mod root;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use futures::StreamExt;
use nomos_store::{keys, EventKind, KeySelector, Store, StoreError, WatchEvent, WatchOptions};
use serde::{Deserialize, Serialize};

pub use kek::Kek;
pub use root::{KeyMeta, KeyState};

use crate::error::ServerError;
use crate::identity::IdentityClaims;
use root::{RootKey, StoredKey};

/// Largest plaintext [`Keyring::encrypt`] seals, and ciphertext [`Keyring::decrypt`] opens.
pub const MAX_SEALED_LEN: usize = 4 * 1024 * 1024;
/// Pause before listing again after the keyring's watch failed.
const REWATCH_DELAY: Duration = Duration::from_secs(1);

/// Data sealed with a root key's Variables key: stored inside a variable's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub key_id: String,
    /// Base64 (standard) 96-bit nonce.
    pub nonce: String,
    /// Base64 (standard) ciphertext followed by its 16-byte tag.
    pub ciphertext: String,
}

/// The keyring of one server process (see the module doc).
pub struct Keyring {
    shared: Arc<Shared>,
    ready: tokio::sync::OnceCell<()>,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Shared {
    store: Arc<dyn Store>,
    kek: Kek,
    cache: RwLock<Cache>,
}

#[derive(Default)]
struct Cache {
    active: Option<String>,
    keys: BTreeMap<String, Arc<RootKey>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("kek", &self.shared.kek)
            .finish_non_exhaustive()
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        if let Some(task) = self.lock_watcher().take() {
            task.abort();
        }
    }
}

impl Keyring {
    /// A keyring over `store` whose root keys are wrapped by `kek`. Nothing is read until
    /// [`Keyring::start`] or the first use.
    pub fn new(store: Arc<dyn Store>, kek: Kek) -> Keyring {
        Keyring {
            shared: Arc::new(Shared {
                store,
                kek,
                cache: RwLock::new(Cache::default()),
            }),
            ready: tokio::sync::OnceCell::new(),
            watcher: Mutex::new(None),
        }
    }

    /// Where this keyring's KEK came from (for messages; never the key).
    pub fn kek_source(&self) -> &str {
        self.shared.kek.source()
    }

    /// Creates the first root key if the store has none, loads every key (failing with
    /// [`ServerError::KeyringUnwrap`] when the KEK cannot unwrap one: the server must refuse
    /// to start) and starts following changes. Later calls return at once.
    pub async fn start(&self) -> Result<(), ServerError> {
        self.ready
            .get_or_try_init(|| async {
                ops::bootstrap(self.shared.store.as_ref(), &self.shared.kek, now_ns()).await?;
                let revision = self.shared.reload().await?;
                let task = tokio::spawn(follow(self.shared.clone(), revision + 1));
                *self.lock_watcher() = Some(task);
                Ok::<(), ServerError>(())
            })
            .await?;
        Ok(())
    }

    /// Seals `plaintext` with the active key; `aad` (say, the variable's path) must be given
    /// again to open it.
    pub async fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, ServerError> {
        if plaintext.len() > MAX_SEALED_LEN {
            return Err(ServerError::BadRequest(format!(
                "data to encrypt is {} bytes, more than the {MAX_SEALED_LEN} accepted",
                plaintext.len()
            )));
        }
        let key = self.active().await?;
        let (nonce, ciphertext) = kek::seal(&key.variables, plaintext, aad)?;
        Ok(Sealed {
            key_id: key.meta.key_id.clone(),
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        })
    }

    /// Opens `sealed` with whichever key sealed it, while that key is in the keyring.
    pub async fn decrypt(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, ServerError> {
        if sealed.ciphertext.len() > MAX_SEALED_LEN * 4 / 3 + 64 {
            return Err(ServerError::Decrypt(format!(
                "ciphertext is larger than the {MAX_SEALED_LEN} bytes ever sealed"
            )));
        }
        let key = self.key(&sealed.key_id).await?.ok_or_else(|| {
            ServerError::Decrypt(format!(
                "root key {:.64} is not in the keyring (removed?)",
                sealed.key_id
            ))
        })?;
        let decode = |what: &str, text: &str| {
            STANDARD
                .decode(text)
                .map_err(|e| ServerError::Decrypt(format!("{what} is not base64: {e}")))
        };
        let nonce = decode("nonce", &sealed.nonce)?;
        let ciphertext = decode("ciphertext", &sealed.ciphertext)?;
        kek::open(&key.variables, &nonce, ciphertext, aad).ok_or_else(|| {
            ServerError::Decrypt(format!(
                "data sealed with key {} does not open: its ciphertext, nonce or associated data was altered",
                key.meta.key_id
            ))
        })
    }

    /// The id of the key that seals and signs now.
    pub async fn active_key_id(&self) -> Result<String, ServerError> {
        Ok(self.active().await?.meta.key_id.clone())
    }

    /// Signs `claims` as a compact JWT with the active key (header `alg` EdDSA, `kid` the key's
    /// id).
    pub async fn sign_identity(&self, claims: &IdentityClaims) -> Result<String, ServerError> {
        let key = self.active().await?;
        jwt::sign(&key, claims)
    }

    /// Checks a workload identity: EdDSA only, a `kid` in the keyring, the signature, `nbf` and
    /// `exp` against the clock, and the audience.
    pub async fn verify_identity(&self, jwt: &str) -> Result<IdentityClaims, ServerError> {
        self.verify_identity_at(jwt, now_ns() / 1_000_000_000).await
    }

    /// [`Keyring::verify_identity`] at `now` (seconds since the epoch).
    pub async fn verify_identity_at(
        &self,
        jwt: &str,
        now: i64,
    ) -> Result<IdentityClaims, ServerError> {
        let unverified = jwt::parse(jwt)?;
        let key = self.key(&unverified.kid).await?.ok_or_else(|| {
            ServerError::InvalidIdentity(format!(
                "kid {:.64?} is not a key in the keyring",
                unverified.kid
            ))
        })?;
        let payload = unverified.verify(key.public_key())?;
        let claims: IdentityClaims = serde_json::from_slice(&payload)
            .map_err(|e| ServerError::InvalidIdentity(format!("claims do not decode: {e}")))?;
        claims.check(now)?;
        Ok(claims)
    }

    /// The public keys that verify identities, as a JSON Web Key Set (RFC 8037's OKP keys),
    /// from the keys loaded so far (empty before [`Keyring::start`]).
    pub fn jwks(&self) -> serde_json::Value {
        let cache = self.shared.read_cache();
        let keys: Vec<serde_json::Value> = cache
            .keys
            .values()
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(k.public_key()),
                    "kid": k.meta.key_id,
                    "use": "sig",
                    "alg": jwt::ALG,
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Every root key's metadata, read from the store (newest first).
    pub async fn list(&self) -> Result<Vec<KeyMeta>, ServerError> {
        self.start().await?;
        let snap = ops::load(self.shared.store.as_ref()).await?;
        let mut metas: Vec<KeyMeta> = snap.keys.into_iter().map(|k| k.meta).collect();
        metas.sort_by_key(|m| std::cmp::Reverse(m.create_time));
        Ok(metas)
    }

    /// Makes a new active key (the old one stays, inactive, to open and verify what it made)
    /// and reloads this server's cache so the new key is used at once.
    pub async fn rotate(&self) -> Result<KeyMeta, ServerError> {
        self.start().await?;
        let meta = ops::rotate(self.shared.store.as_ref(), &self.shared.kek, now_ns()).await?;
        self.shared.reload().await?;
        Ok(meta)
    }

    /// Removes an inactive key; what it sealed or signed no longer opens or verifies.
    pub async fn remove(&self, key_id: &str) -> Result<(), ServerError> {
        self.start().await?;
        ops::remove(self.shared.store.as_ref(), key_id).await?;
        self.shared.write_cache().keys.remove(key_id);
        Ok(())
    }

    async fn active(&self) -> Result<Arc<RootKey>, ServerError> {
        self.start().await?;
        let id = self.shared.read_cache().active.clone();
        let id =
            match id {
                Some(id) => id,
                None => {
                    self.shared.reload().await?;
                    self.shared.read_cache().active.clone().ok_or_else(|| {
                        ServerError::Internal("the keyring has no active key".into())
                    })?
                }
            };
        self.key(&id)
            .await?
            .ok_or_else(|| ServerError::Internal(format!("the active root key {id} is missing")))
    }

    /// A key by id: from the cache, else read from the store once (a rotation on another
    /// server the watch has not delivered yet). Ids that are not UUIDs are never looked up.
    async fn key(&self, id: &str) -> Result<Option<Arc<RootKey>>, ServerError> {
        self.start().await?;
        if let Some(key) = self.shared.read_cache().keys.get(id) {
            return Ok(Some(key.clone()));
        }
        if uuid::Uuid::parse_str(id).is_err() {
            return Ok(None);
        }
        let store_key = keys::keyring_key(id);
        let Some(kv) = crate::kv::get_raw(self.shared.store.as_ref(), &store_key).await? else {
            return Ok(None);
        };
        let stored: StoredKey = ops::decode(&store_key, &kv.value)?;
        let key = Arc::new(self.shared.unwrap(&store_key, &stored)?);
        self.shared
            .write_cache()
            .keys
            .insert(id.to_string(), key.clone());
        Ok(Some(key))
    }

    fn lock_watcher(&self) -> std::sync::MutexGuard<'_, Option<tokio::task::JoinHandle<()>>> {
        self.watcher.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Shared {
    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|e| e.into_inner())
    }

    fn unwrap(&self, store_key: &str, stored: &StoredKey) -> Result<RootKey, ServerError> {
        RootKey::unwrap_stored(stored, &self.kek).unwrap_or_else(|| {
            Err(ServerError::KeyringUnwrap {
                kek: self.kek.source().to_string(),
                key_id: stored.meta.key_id.clone(),
                key: store_key.to_string(),
            })
        })
    }

    /// Lists the keyring and swaps the whole cache at once; returns the revision read.
    async fn reload(&self) -> Result<i64, ServerError> {
        let snap = ops::load(self.store.as_ref()).await?;
        let mut cache = Cache {
            active: snap.active.map(|a| a.key_id),
            keys: BTreeMap::new(),
        };
        for stored in &snap.keys {
            let store_key = keys::keyring_key(&stored.meta.key_id);
            let key = self.unwrap(&store_key, stored)?;
            cache.keys.insert(stored.meta.key_id.clone(), Arc::new(key));
        }
        *self.write_cache() = cache;
        Ok(snap.revision)
    }

    /// Applies one watched change to the cache.
    fn apply(&self, event: &WatchEvent) {
        let Some(key) = event.kv.key_utf8_or_skip() else {
            return;
        };
        if key == keys::KEYRING_ACTIVE {
            if event.kind == EventKind::Put {
                match ops::decode::<ops::ActiveMarker>(key, &event.kv.value) {
                    Ok(m) => self.write_cache().active = Some(m.key_id),
                    Err(e) => tracing::error!(error = %e, "ignoring the keyring's active marker"),
                }
            }
            return;
        }
        let Some(id) = key.strip_prefix(keys::KEYRING_KEYS_PREFIX) else {
            return;
        };
        if event.kind == EventKind::Delete {
            self.write_cache().keys.remove(id);
            return;
        }
        let decoded = ops::decode::<StoredKey>(key, &event.kv.value)
            .and_then(|stored| self.unwrap(key, &stored));
        match decoded {
            Ok(root) => {
                self.write_cache()
                    .keys
                    .insert(id.to_string(), Arc::new(root));
            }
            Err(e) => tracing::error!(error = %e, "ignoring a root key this server cannot use"),
        }
    }
}

/// Follows `/nomos/keyring/` from `revision`, going back to a full list whenever the watch
/// ends (compacted history, a store outage). Runs until the keyring is dropped.
async fn follow(shared: Arc<Shared>, mut revision: i64) {
    loop {
        match watch_once(&shared, revision).await {
            Ok(()) => tracing::debug!("the keyring's watch ended; listing again"),
            Err(e) => tracing::warn!(error = %e, "the keyring's watch failed; listing again"),
        }
        tokio::time::sleep(REWATCH_DELAY).await;
        match shared.reload().await {
            Ok(r) => revision = r + 1,
            Err(e) => tracing::warn!(error = %e, "cannot list the keyring"),
        }
    }
}

async fn watch_once(shared: &Shared, revision: i64) -> Result<(), StoreError> {
    let options = WatchOptions {
        start_revision: revision,
        ..WatchOptions::default()
    };
    let mut stream = shared
        .store
        .watch(KeySelector::prefix(keys::KEYRING_PREFIX), options)
        .await?;
    while let Some(resp) = stream.next().await {
        for event in &resp?.events {
            shared.apply(event);
        }
    }
    Ok(())
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[cfg(test)]
mod tests;
