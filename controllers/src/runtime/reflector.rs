//! Reflector: keeps a sink in step with a key prefix. It lists the prefix at a revision, hands the
//! whole list to the sink (which swaps it in atomically), then watches from the next revision and
//! applies events in order. A compacted watch, a store error or the end of the stream sends it
//! back to listing. Nothing should reconcile before [`ReflectorHandle::ready`] says the first list
//! has landed.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nomos_store::{
    KeySelector, KeyValue, RangeOptions, Store, StoreError, WatchEvent, WatchOptions,
};
use tokio::sync::watch;

/// Receives the reflected state. Implementations are synchronous indexes (plain `#[test]`able).
pub trait Sink: Send + 'static {
    /// Replaces everything with a fresh list taken at `revision`.
    fn reset(&mut self, kvs: Vec<KeyValue>, revision: i64);
    /// Applies watch events in revision order; `revision` is the newest one they reach.
    fn apply(&mut self, events: Vec<WatchEvent>, revision: i64);
}

/// Observes a running reflector.
#[derive(Clone)]
pub struct ReflectorHandle {
    revision: Arc<AtomicI64>,
    ready: watch::Receiver<bool>,
    relists: Arc<AtomicI64>,
}

impl ReflectorHandle {
    /// The store revision the sink reflects (0 before the first list).
    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::Acquire)
    }
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }
    /// Waits until the first list has been applied.
    pub async fn ready(&self) {
        let mut rx = self.ready.clone();
        let _ = rx.wait_for(|r| *r).await;
    }
    /// How many times the reflector listed (1 after start, more after compactions or errors).
    pub fn lists(&self) -> i64 {
        self.relists.load(Ordering::Relaxed)
    }
}

/// A reflector before it runs.
pub struct Reflector<S: Sink> {
    store: Arc<dyn Store>,
    prefix: String,
    sink: S,
    revision: Arc<AtomicI64>,
    ready: watch::Sender<bool>,
    relists: Arc<AtomicI64>,
}

impl<S: Sink> Reflector<S> {
    pub fn new(
        store: Arc<dyn Store>,
        prefix: impl Into<String>,
        sink: S,
    ) -> (Self, ReflectorHandle) {
        let (tx, rx) = watch::channel(false);
        let revision = Arc::new(AtomicI64::new(0));
        let relists = Arc::new(AtomicI64::new(0));
        let handle = ReflectorHandle {
            revision: revision.clone(),
            ready: rx,
            relists: relists.clone(),
        };
        (
            Reflector {
                store,
                prefix: prefix.into(),
                sink,
                revision,
                ready: tx,
                relists,
            },
            handle,
        )
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(50);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                r = self.list_and_watch() => {
                    if let Err(e) = r {
                        tracing::debug!(prefix = %self.prefix, error = %e, "reflector re-listing");
                        if !matches!(e, StoreError::Compacted { .. }) {
                            tokio::select! {
                                _ = &mut shutdown => return,
                                _ = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    } else {
                        backoff = Duration::from_millis(50);
                    }
                }
            }
        }
    }

    async fn list_and_watch(&mut self) -> Result<(), StoreError> {
        let resp = self
            .store
            .range(
                KeySelector::prefix(self.prefix.as_bytes().to_vec()),
                RangeOptions::default(),
            )
            .await?;
        let mut rev = resp.revision;
        self.sink.reset(resp.kvs, rev);
        self.revision.store(rev, Ordering::Release);
        self.relists.fetch_add(1, Ordering::Relaxed);
        self.ready.send_replace(true);
        let opts = WatchOptions {
            start_revision: rev + 1,
            progress_notify: true,
            ..Default::default()
        };
        let mut stream = self
            .store
            .watch(KeySelector::prefix(self.prefix.as_bytes().to_vec()), opts)
            .await?;
        while let Some(msg) = stream.next().await {
            let resp = msg?;
            if resp.events.is_empty() {
                rev = rev.max(resp.revision);
            } else {
                let newest = resp
                    .events
                    .iter()
                    .map(|e| e.kv.mod_revision)
                    .max()
                    .unwrap_or(rev);
                rev = rev.max(newest);
                self.sink.apply(resp.events, rev);
            }
            self.revision.store(rev, Ordering::Release);
        }
        Err(StoreError::Unavailable(format!(
            "watch on {} ended",
            self.prefix
        )))
    }
}

/// A plain cache of raw values by key: the simplest [`Sink`], handy for tests and small prefixes.
#[derive(Debug, Default, Clone)]
pub struct RawCache {
    pub items: std::collections::BTreeMap<String, Vec<u8>>,
    pub revision: i64,
}

impl Sink for Arc<std::sync::Mutex<RawCache>> {
    fn reset(&mut self, kvs: Vec<KeyValue>, revision: i64) {
        let items = kvs
            .into_iter()
            .filter_map(|kv| Some((kv.key_utf8_or_skip()?.to_string(), kv.value)))
            .collect();
        let mut c = self.lock().unwrap_or_else(|p| p.into_inner());
        c.items = items;
        c.revision = revision;
    }
    fn apply(&mut self, events: Vec<WatchEvent>, revision: i64) {
        let mut c = self.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            let Some(k) = e.kv.key_utf8_or_skip().map(str::to_string) else {
                continue;
            };
            match e.kind {
                nomos_store::EventKind::Put => {
                    c.items.insert(k, e.kv.value);
                }
                nomos_store::EventKind::Delete => {
                    c.items.remove(&k);
                }
            }
        }
        c.revision = revision;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_store::embedded::EmbeddedStore;
    use nomos_store::PutOptions;

    async fn wait_until(mut f: impl FnMut() -> bool) {
        for _ in 0..2000 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("condition not reached");
    }

    #[tokio::test]
    async fn reflector_lists_then_follows_the_watch_and_exposes_its_revision() {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        store
            .put(b"/p/a".to_vec(), b"1".to_vec(), PutOptions::default())
            .await
            .unwrap();
        let cache = Arc::new(std::sync::Mutex::new(RawCache::default()));
        let (r, h) = Reflector::new(store.clone(), "/p/", cache.clone());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(r.run(async move {
            let _ = rx.await;
        }));
        h.ready().await;
        assert_eq!(cache.lock().unwrap().items.len(), 1);
        store
            .put(b"/p/b".to_vec(), b"2".to_vec(), PutOptions::default())
            .await
            .unwrap();
        let rev = store
            .delete(KeySelector::key(b"/p/a".to_vec()), Default::default())
            .await
            .unwrap()
            .revision;
        store
            .put(b"/other".to_vec(), b"x".to_vec(), PutOptions::default())
            .await
            .unwrap();
        wait_until(|| h.revision() >= rev).await;
        let items = cache.lock().unwrap().items.clone();
        assert_eq!(items.keys().collect::<Vec<_>>(), vec!["/p/b"]);
        let _ = stop.send(());
        task.await.unwrap();
    }

    /// Delegates to a real store, but the first watch stream ends with "compacted".
    struct CompactOnce {
        inner: EmbeddedStore,
        failed: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl Store for CompactOnce {
        async fn range(
            &self,
            k: KeySelector,
            o: RangeOptions,
        ) -> nomos_store::Result<nomos_store::RangeResponse> {
            self.inner.range(k, o).await
        }
        async fn put(
            &self,
            k: Vec<u8>,
            v: Vec<u8>,
            o: PutOptions,
        ) -> nomos_store::Result<nomos_store::PutResponse> {
            self.inner.put(k, v, o).await
        }
        async fn delete(
            &self,
            k: KeySelector,
            o: nomos_store::DeleteOptions,
        ) -> nomos_store::Result<nomos_store::DeleteResponse> {
            self.inner.delete(k, o).await
        }
        async fn txn(&self, t: nomos_store::Txn) -> nomos_store::Result<nomos_store::TxnResponse> {
            self.inner.txn(t).await
        }
        async fn watch(
            &self,
            k: KeySelector,
            o: WatchOptions,
        ) -> nomos_store::Result<nomos_store::WatchStream> {
            if !self.failed.swap(true, Ordering::SeqCst) {
                let err = StoreError::Compacted {
                    requested: o.start_revision,
                    compact_revision: o.start_revision + 1,
                };
                return Ok(Box::pin(futures::stream::iter(vec![Err(err)])));
            }
            self.inner.watch(k, o).await
        }
        async fn lease_grant(
            &self,
            ttl: i64,
            id: i64,
        ) -> nomos_store::Result<nomos_store::LeaseGrant> {
            self.inner.lease_grant(ttl, id).await
        }
        async fn lease_keep_alive(&self, id: i64) -> nomos_store::Result<i64> {
            self.inner.lease_keep_alive(id).await
        }
        async fn lease_revoke(&self, id: i64) -> nomos_store::Result<()> {
            self.inner.lease_revoke(id).await
        }
        async fn lease_time_to_live(
            &self,
            id: i64,
            keys: bool,
        ) -> nomos_store::Result<nomos_store::LeaseInfo> {
            self.inner.lease_time_to_live(id, keys).await
        }
        async fn lease_list(&self) -> nomos_store::Result<Vec<i64>> {
            self.inner.lease_list().await
        }
        async fn compact(&self, rev: i64) -> nomos_store::Result<()> {
            self.inner.compact(rev).await
        }
        async fn status(&self) -> nomos_store::Result<nomos_store::StoreStatus> {
            self.inner.status().await
        }
    }

    #[tokio::test]
    async fn reflector_relists_when_its_watch_is_compacted() {
        let store: Arc<dyn Store> = Arc::new(CompactOnce {
            inner: EmbeddedStore::in_memory(),
            failed: Default::default(),
        });
        store
            .put(b"/p/a".to_vec(), b"1".to_vec(), PutOptions::default())
            .await
            .unwrap();
        let cache = Arc::new(std::sync::Mutex::new(RawCache::default()));
        let (r, h) = Reflector::new(store.clone(), "/p/", cache.clone());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(r.run(async move {
            let _ = rx.await;
        }));
        h.ready().await;
        let rev = store
            .put(b"/p/b".to_vec(), b"2".to_vec(), PutOptions::default())
            .await
            .unwrap()
            .revision;
        wait_until(|| h.revision() >= rev).await;
        assert_eq!(h.lists(), 2);
        assert_eq!(cache.lock().unwrap().items.len(), 2);
        let _ = stop.send(());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn reflector_keeps_every_key_across_a_compaction() {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        let cache = Arc::new(std::sync::Mutex::new(RawCache::default()));
        let (r, h) = Reflector::new(store.clone(), "/p/", cache.clone());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(r.run(async move {
            let _ = rx.await;
        }));
        h.ready().await;
        let mut last = 0;
        for i in 0..50 {
            last = store
                .put(
                    format!("/p/{i}").into_bytes(),
                    b"v".to_vec(),
                    PutOptions::default(),
                )
                .await
                .unwrap()
                .revision;
        }
        store.compact(last).await.unwrap();
        for i in 50..60 {
            last = store
                .put(
                    format!("/p/{i}").into_bytes(),
                    b"v".to_vec(),
                    PutOptions::default(),
                )
                .await
                .unwrap()
                .revision;
        }
        wait_until(|| h.revision() >= last).await;
        assert_eq!(cache.lock().unwrap().items.len(), 60);
        let _ = stop.send(());
        task.await.unwrap();
    }
}
