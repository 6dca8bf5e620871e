//! The status reporter: writes each allocation's status to `/nomos/allocstatus/<node>/<alloc>`
//! (coalesced per allocation, retried with backoff while the store is away), and keeps those keys
//! saying what it wrote. A value someone else put there (garbage, the node-lifecycle loop's
//! `unknown`, a deletion) is written again, at most once per allocation every
//! [`REWRITE_EVERY`], and only while the node's heartbeat key exists: while it is missing the
//! lifecycle loop owns those keys. Changes are followed with a watch on the node's status
//! prefix; the whole prefix is compared at start, every [`RESYNC_EVERY`], after a watch fails
//! and when the heartbeat loop re-registers the node ([`Report::Resync`]).
//!
//! [`StatusGuard`] is the pure part (what is ours, what to rewrite when); [`reporter`] the I/O.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nomos_api::AllocStatus;
use nomos_store::{
    keys, Compare, CompareOp, KeySelector, PutOptions, RangeOptions, Store, Txn, TxnOp,
    WatchOptions, WatchResponse, WatchStream,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::config::AgentConfig;
use crate::metrics::Metrics;

/// What runners and the agent loop send to the status reporter.
#[derive(Debug, Clone)]
pub enum Report {
    /// An allocation's latest status, to write.
    Status(String, Box<AllocStatus>),
    /// The allocation is gone: delete its status key.
    Remove(String),
    /// Compare every status key with what was written (the node registered again).
    Resync,
}

/// Shortest time between two rewrites of one allocation's status.
pub const REWRITE_EVERY: Duration = Duration::from_secs(3);
/// How often the node's whole status prefix is compared with what the agent wrote.
pub const RESYNC_EVERY: Duration = Duration::from_secs(60);
/// Rewrites per transaction (etcd allows 128 operations in one).
const REWRITES_PER_TXN: usize = 64;

/// What the agent last wrote to an allocation's status key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub bytes: Vec<u8>,
    pub mod_revision: i64,
}

/// Which status keys hold what the agent wrote, and which to write again when (pure).
#[derive(Debug, Default)]
pub struct StatusGuard {
    written: BTreeMap<String, Written>,
    /// Allocations whose key holds something else, with the time a rewrite was last tried.
    suspects: BTreeMap<String, Option<Instant>>,
}

impl StatusGuard {
    /// The agent wrote `bytes` for `alloc` at `mod_revision`.
    pub fn wrote(&mut self, alloc: &str, bytes: Vec<u8>, mod_revision: i64) {
        self.written.insert(
            alloc.to_string(),
            Written {
                bytes,
                mod_revision,
            },
        );
        self.suspects.remove(alloc);
    }

    /// The agent deleted `alloc`'s key (the allocation is gone): nothing to keep there.
    pub fn forget(&mut self, alloc: &str) {
        self.written.remove(alloc);
        self.suspects.remove(alloc);
    }

    /// The store held `stored` (`(value, mod_revision)`, `None`: no key) for `alloc` at
    /// `revision`. What the agent wrote later than that is not contradicted by it.
    pub fn observe(&mut self, alloc: &str, stored: Option<(&[u8], i64)>, revision: i64) {
        let Some(ours) = self.written.get_mut(alloc) else {
            return;
        };
        if ours.mod_revision > revision {
            return;
        }
        match stored {
            Some((_, rev)) if rev == ours.mod_revision => {
                self.suspects.remove(alloc);
            }
            Some((bytes, rev)) if bytes == ours.bytes.as_slice() => {
                ours.mod_revision = rev;
                self.suspects.remove(alloc);
            }
            _ => {
                self.suspects.entry(alloc.to_string()).or_insert(None);
            }
        }
    }

    /// The allocations to write again now, with what to write: each suspect at most once
    /// every `every`.
    pub fn due(&mut self, now: Instant, every: Duration) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for (alloc, tried) in &mut self.suspects {
            if tried.is_some_and(|t| now.duration_since(t) < every) {
                continue;
            }
            if let Some(w) = self.written.get(alloc) {
                *tried = Some(now);
                out.push((alloc.clone(), w.bytes.clone()));
            }
        }
        out
    }

    /// The allocations the guard keeps.
    pub fn allocs(&self) -> Vec<String> {
        self.written.keys().cloned().collect()
    }
}

/// Writes allocation statuses and keeps them written (see the module doc).
pub(crate) async fn reporter(
    store: Arc<dyn Store>,
    config: Arc<AgentConfig>,
    mut rx: mpsc::UnboundedReceiver<Report>,
    metrics: Arc<Metrics>,
) {
    let mut r = Reporter {
        store,
        node: config.name.clone(),
        prefix: keys::alloc_status_prefix(Some(&config.name)),
        heartbeat: keys::heartbeat(&config.name),
        pending: BTreeMap::new(),
        guard: StatusGuard::default(),
        metrics,
        backoff: Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(config.max_retry_backoff_ms),
        ),
        watch: None,
        resync_at: Instant::now(),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(m) => r.add(m),
                None => return,
            },
            resp = next_watch(&mut r.watch) => r.on_watch(resp),
            _ = tick.tick() => {}
        }
        while let Ok(m) = rx.try_recv() {
            r.add(m);
        }
        if !r.flush().await {
            tokio::time::sleep(r.backoff.next_delay()).await;
            continue;
        }
        if Instant::now() >= r.resync_at {
            r.resync().await;
        }
        r.rewrite_due().await;
    }
}

/// The next response of the watch, or never when there is none.
async fn next_watch(
    watch: &mut Option<WatchStream>,
) -> Option<Result<WatchResponse, nomos_store::StoreError>> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

struct Reporter {
    store: Arc<dyn Store>,
    node: String,
    /// `/nomos/allocstatus/<node>/`.
    prefix: String,
    /// `/nomos/heartbeats/<node>`.
    heartbeat: String,
    /// Writes not done yet: the latest status per allocation (`None`: delete its key).
    pending: BTreeMap<String, Option<AllocStatus>>,
    guard: StatusGuard,
    metrics: Arc<Metrics>,
    backoff: Backoff,
    watch: Option<WatchStream>,
    /// When to compare the whole prefix next.
    resync_at: Instant,
}

impl Reporter {
    fn add(&mut self, r: Report) {
        match r {
            Report::Status(id, s) => {
                self.pending.insert(id, Some(*s));
            }
            Report::Remove(id) => {
                self.pending.insert(id, None);
            }
            Report::Resync => self.resync_at = Instant::now(),
        }
    }

    fn alloc_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.prefix.as_str())
    }

    /// Writes the pending statuses; `false` when the store failed (the rest stay pending).
    async fn flush(&mut self) -> bool {
        while let Some((id, status)) = self.pending.pop_first() {
            let key = keys::alloc_status(&self.node, &id);
            let result = match &status {
                Some(s) => match serde_json::to_vec(s) {
                    Ok(bytes) => self
                        .store
                        .put(key.into_bytes(), bytes.clone(), PutOptions::default())
                        .await
                        .map(|resp| self.guard.wrote(&id, bytes, resp.revision)),
                    Err(_) => Ok(()),
                },
                None => self
                    .store
                    .delete(KeySelector::key(key), Default::default())
                    .await
                    .map(|_| self.guard.forget(&id)),
            };
            if let Err(e) = result {
                self.metrics.store_errors.inc();
                tracing::debug!(alloc = %id, error = %e, "status write failed; will retry");
                self.pending.entry(id).or_insert(status);
                return false;
            }
        }
        self.backoff.reset();
        true
    }

    /// Compares the node's whole status prefix with what was written, then watches it from there.
    async fn resync(&mut self) {
        let listed = match self
            .store
            .range(
                KeySelector::prefix(self.prefix.clone()),
                RangeOptions::default(),
            )
            .await
        {
            Ok(listed) => listed,
            Err(e) => return self.resync_later(e),
        };
        let stored: BTreeMap<&str, (&[u8], i64)> = listed
            .kvs
            .iter()
            .filter_map(|kv| {
                let key = std::str::from_utf8(&kv.key).ok()?;
                Some((self.alloc_of(key)?, (kv.value.as_slice(), kv.mod_revision)))
            })
            .collect();
        for alloc in self.guard.allocs() {
            let seen = stored.get(alloc.as_str()).copied();
            self.guard.observe(&alloc, seen, listed.revision);
        }
        let options = WatchOptions {
            start_revision: listed.revision + 1,
            ..Default::default()
        };
        match self
            .store
            .watch(KeySelector::prefix(self.prefix.clone()), options)
            .await
        {
            Ok(w) => {
                self.watch = Some(w);
                self.resync_at = Instant::now() + RESYNC_EVERY;
            }
            Err(e) => self.resync_later(e),
        }
    }

    fn resync_later(&mut self, e: nomos_store::StoreError) {
        self.metrics.store_errors.inc();
        tracing::debug!(error = %e, "comparing the node's allocation statuses failed; will retry");
        self.watch = None;
        self.resync_at = Instant::now() + self.backoff.next_delay();
    }

    fn on_watch(&mut self, resp: Option<Result<WatchResponse, nomos_store::StoreError>>) {
        let resp = match resp {
            Some(Ok(resp)) => resp,
            Some(Err(e)) => return self.resync_later(e),
            None => {
                self.watch = None;
                self.resync_at = Instant::now();
                return;
            }
        };
        for ev in &resp.events {
            let Some(key) = ev.kv.key_utf8_or_skip() else {
                continue;
            };
            let Some(alloc) = self.alloc_of(key) else {
                continue;
            };
            let stored = match ev.kind {
                nomos_store::EventKind::Put => Some((ev.kv.value.as_slice(), ev.kv.mod_revision)),
                nomos_store::EventKind::Delete => None,
            };
            self.guard.observe(alloc, stored, ev.kv.mod_revision);
        }
    }

    /// Writes again what someone else replaced, while the node's heartbeat key exists (one
    /// transaction compares it, so a missing heartbeat writes nothing).
    async fn rewrite_due(&mut self) {
        let due: Vec<(String, Vec<u8>)> = self
            .guard
            .due(Instant::now(), REWRITE_EVERY)
            .into_iter()
            .filter(|(id, _)| !self.pending.contains_key(id))
            .collect();
        for chunk in due.chunks(REWRITES_PER_TXN) {
            let txn = Txn::new()
                .when([Compare::version(
                    self.heartbeat.clone(),
                    CompareOp::Greater,
                    0,
                )])
                .and_then(chunk.iter().map(|(id, bytes)| {
                    TxnOp::put(keys::alloc_status(&self.node, id), bytes.clone())
                }));
            match self.store.txn(txn).await {
                Ok(resp) if resp.succeeded => {
                    for (id, bytes) in chunk {
                        tracing::info!(alloc = %id, "the stored status was not this agent's report; wrote it again");
                        self.guard.wrote(id, bytes.clone(), resp.revision);
                    }
                }
                Ok(_) => {
                    tracing::debug!("the node's heartbeat key is missing; leaving the statuses to the lifecycle loop");
                }
                Err(e) => {
                    self.metrics.store_errors.inc();
                    tracing::debug!(error = %e, "rewriting statuses failed; will retry");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard_with(alloc: &str, bytes: &[u8], rev: i64) -> StatusGuard {
        let mut g = StatusGuard::default();
        g.wrote(alloc, bytes.to_vec(), rev);
        g
    }

    #[test]
    fn what_the_agent_wrote_is_left_alone_and_anything_else_is_written_again() {
        let ours: &[u8] = b"{\"client_status\":\"running\"}";
        let now = Instant::now();
        // (what the store held, as of revision, to be written again)
        type Case<'a> = (&'a str, Option<(&'a [u8], i64)>, i64, bool);
        let cases: Vec<Case> = vec![
            ("our own write", Some((ours, 5)), 5, false),
            (
                "the same bytes written by someone else",
                Some((ours, 7)),
                7,
                false,
            ),
            ("garbage", Some((b"{not json", 7)), 7, true),
            (
                "unknown from the lifecycle loop",
                Some((b"{\"client_status\":\"unknown\"}", 8)),
                8,
                true,
            ),
            ("the key deleted", None, 9, true),
            (
                "an older value seen after our write",
                Some((b"old", 4)),
                4,
                false,
            ),
        ];
        for (what, stored, revision, rewrite) in cases {
            let mut g = guard_with("a", ours, 5);
            g.observe("a", stored, revision);
            let due = g.due(now, REWRITE_EVERY);
            assert_eq!(!due.is_empty(), rewrite, "{what}");
            if rewrite {
                assert_eq!(due, vec![("a".to_string(), ours.to_vec())], "{what}");
            }
        }
    }

    #[test]
    fn rewrites_of_one_allocation_are_at_most_one_per_interval() {
        let mut g = guard_with("a", b"ours", 5);
        g.observe("a", Some((b"theirs", 6)), 6);
        let t0 = Instant::now();
        assert_eq!(g.due(t0, REWRITE_EVERY).len(), 1);
        assert!(g.due(t0 + Duration::from_secs(1), REWRITE_EVERY).is_empty());
        assert_eq!(g.due(t0 + REWRITE_EVERY, REWRITE_EVERY).len(), 1);
        // Once written again it is no longer due.
        g.wrote("a", b"ours".to_vec(), 9);
        assert!(g.due(t0 + REWRITE_EVERY * 3, REWRITE_EVERY).is_empty());
    }

    #[test]
    fn keys_of_allocations_the_agent_does_not_report_are_not_its_to_keep() {
        let mut g = guard_with("a", b"ours", 5);
        g.observe("other", Some((b"garbage", 6)), 6);
        g.forget("a");
        g.observe("a", Some((b"garbage", 7)), 7);
        assert!(g.due(Instant::now(), REWRITE_EVERY).is_empty());
    }
}
