//! The ACL cache: what each secret resolved to (its token and merged [`Acl`]) and the
//! anonymous policy's [`Acl`], so a request does not read the token, its secret index, its
//! roles and every policy from the store.
//!
//! Kept fresh by a watch of `/nomos/acl/` ([`run`]): any change under the prefix empties it.
//! It is a state machine with a readiness gate: entries are kept only while a watch is open
//! (set up before the cache says it is ready; on a watch error it goes back to not ready,
//! empty, and reopens). Fills are guarded by an epoch: a request that read the store while an
//! invalidation happened does not store what it read. The server's own ACL writes also
//! empty it before they answer ([`AclCache::invalidate`]), so a token revoked through this
//! server fails on the very next request; on other servers, as soon as the watch delivers.
//!
//! Expiry is not cached: callers check a token's `ExpirationTime` on every request. Unknown
//! secrets are never cached (a flood of made-up tokens cannot grow it), and it holds at most
//! [`MAX_ENTRIES`] secrets (a fill beyond that empties it first).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use nomos_api::acl::{Acl, AclToken};
use nomos_store::{keys, KeySelector, Store, WatchOptions};

/// Most secrets kept.
pub const MAX_ENTRIES: usize = 10_000;
/// How long to wait before reopening a failed watch.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A resolved secret: its token and what its policies and roles allow.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub token: AclToken,
    pub acl: Acl,
}

#[derive(Debug, Default)]
struct State {
    ready: bool,
    epoch: u64,
    by_secret_hash: HashMap<String, Resolved>,
    anonymous: Option<Acl>,
}

/// The shared cache (cheap to clone). Empty and not ready until [`run`] opens its watch.
#[derive(Debug, Clone, Default)]
pub struct AclCache {
    state: Arc<Mutex<State>>,
}

/// Proof of the cache's epoch when a store read began; a fill with an older epoch is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(u64);

impl AclCache {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The epoch to fill with, or `None` while the cache is not ready (nothing may be kept).
    pub fn epoch(&self) -> Option<Epoch> {
        let s = self.lock();
        s.ready.then_some(Epoch(s.epoch))
    }

    /// What the secret with this SHA-256 resolved to, if kept.
    pub fn get(&self, secret_hash: &str) -> Option<Resolved> {
        self.lock().by_secret_hash.get(secret_hash).cloned()
    }

    /// Keeps a resolution read from the store since `epoch`, unless the cache was emptied
    /// in between.
    pub fn insert(&self, epoch: Epoch, secret_hash: String, resolved: Resolved) {
        let mut s = self.lock();
        if !s.ready || s.epoch != epoch.0 {
            return;
        }
        if s.by_secret_hash.len() >= MAX_ENTRIES {
            s.by_secret_hash.clear();
        }
        s.by_secret_hash.insert(secret_hash, resolved);
    }

    /// The anonymous policy's ACL, if kept.
    pub fn anonymous(&self) -> Option<Acl> {
        self.lock().anonymous.clone()
    }

    /// Keeps the anonymous policy's ACL read since `epoch`.
    pub fn insert_anonymous(&self, epoch: Epoch, acl: Acl) {
        let mut s = self.lock();
        if s.ready && s.epoch == epoch.0 {
            s.anonymous = Some(acl);
        }
    }

    /// Empties the cache: something under `/nomos/acl/` changed.
    pub fn invalidate(&self) {
        let mut s = self.lock();
        s.epoch += 1;
        s.by_secret_hash.clear();
        s.anonymous = None;
    }

    /// Opens or closes the readiness gate (either way the cache starts empty).
    fn set_ready(&self, ready: bool) {
        self.invalidate();
        self.lock().ready = ready;
    }

    /// How many secrets are kept (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().by_secret_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Watches `/nomos/acl/` and empties `cache` on every change, until `closed` resolves; a
/// failed or ended watch closes the gate and is reopened after [`RETRY_AFTER`].
pub async fn run(store: Arc<dyn Store>, cache: AclCache, closed: impl Future<Output = ()>) {
    tokio::pin!(closed);
    loop {
        tokio::select! {
            _ = &mut closed => break,
            _ = watch_once(store.as_ref(), &cache) => {}
        }
        cache.set_ready(false);
        tokio::select! {
            _ = &mut closed => break,
            _ = tokio::time::sleep(RETRY_AFTER) => {}
        }
    }
    cache.set_ready(false);
}

/// One watch: ready once it is open, emptying the cache on each batch of changes; returns
/// when the watch fails or ends.
async fn watch_once(store: &dyn Store, cache: &AclCache) {
    let watch = match store
        .watch(
            KeySelector::prefix(keys::ACL_PREFIX),
            WatchOptions::default(),
        )
        .await
    {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch ACLs; resolving tokens from the store until it works");
            return;
        }
    };
    cache.set_ready(true);
    tokio::pin!(watch);
    while let Some(item) = watch.next().await {
        match item {
            Ok(resp) if resp.events.is_empty() => {}
            Ok(_) => cache.invalidate(),
            Err(e) => {
                tracing::warn!(error = %e, "the ACL watch failed; reopening it");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::acl::TokenType;

    fn resolved() -> Resolved {
        Resolved {
            token: AclToken {
                accessor_id: "a".into(),
                secret_id: "s".into(),
                name: String::new(),
                token_type: TokenType::Client,
                policies: vec![],
                roles: vec![],
                global: false,
                create_time: String::new(),
                expiration_time: None,
                expiration_ttl: 0,
                create_index: 0,
                modify_index: 0,
            },
            acl: Acl::default(),
        }
    }

    #[test]
    fn nothing_is_kept_before_the_watch_is_open() {
        let c = AclCache::default();
        assert_eq!(c.epoch(), None);
        c.insert_anonymous(Epoch(0), Acl::default());
        assert!(c.anonymous().is_none());
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_dropped() {
        let c = AclCache::default();
        c.set_ready(true);
        let before = c.epoch().unwrap();
        c.invalidate();
        c.insert(before, "h".into(), resolved());
        assert!(c.get("h").is_none());
        let now = c.epoch().unwrap();
        c.insert(now, "h".into(), resolved());
        assert!(c.get("h").is_some());
    }

    #[test]
    fn invalidation_empties_everything() {
        let c = AclCache::default();
        c.set_ready(true);
        let e = c.epoch().unwrap();
        c.insert(e, "h".into(), resolved());
        c.insert_anonymous(e, Acl::management());
        c.invalidate();
        assert!(c.is_empty() && c.anonymous().is_none());
    }

    #[test]
    fn the_cache_never_holds_more_than_its_limit() {
        let c = AclCache::default();
        c.set_ready(true);
        let e = c.epoch().unwrap();
        for i in 0..MAX_ENTRIES + 5 {
            c.insert(e, format!("h{i}"), resolved());
        }
        assert!(c.len() <= MAX_ENTRIES);
    }

    #[tokio::test]
    async fn a_change_under_the_acl_prefix_empties_the_cache() {
        let store: Arc<dyn Store> = Arc::new(nomos_store::EmbeddedStore::in_memory());
        let cache = AclCache::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(store.clone(), cache.clone(), async {
            let _ = rx.await;
        }));
        let epoch = loop {
            if let Some(e) = cache.epoch() {
                break e;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        cache.insert(epoch, "h".into(), resolved());
        store
            .put(
                keys::acl_policy("p").into_bytes(),
                b"{}".to_vec(),
                Default::default(),
            )
            .await
            .unwrap();
        for _ in 0..200 {
            if cache.get("h").is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(cache.get("h").is_none(), "the watch emptied the cache");
        let _ = tx.send(());
        task.await.unwrap();
        assert_eq!(cache.epoch(), None, "closed again after shutdown");
    }
}
