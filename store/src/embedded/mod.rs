//! The embedded backend: etcd's semantics in one process, durable on local disk.
//!
//! Layout:
//! - `state`: the in-memory MVCC index (key histories without values, where each revision
//!   starts in the log, leases); pure.
//! - `persist`: the SQLite log (WAL, `synchronous=FULL`) the state is rebuilt from.
//! - `log`: reads values back from the log by row, for reads, watches and transactions.
//! - `identity`: the data directory's identity file, so a lost or damaged database is refused
//!   instead of being taken for a new store.
//! - `alarm`: etcd's NOSPACE alarm: a commit that fails for lack of space rolls the state back to
//!   the disk's, later writes are refused until a probe write (or a disarm) succeeds.
//! - `watch`: watch streams fed in-process by the writer.
//! - `maintenance`: snapshots (and restoring a data dir from one), HashKV/Hash and defragmentation,
//!   run by the writer between two commits.
//! - [`auth`] (with `auth_store`): etcd's users and roles, durable in their own SQLite file
//!   apart from the key space; the etcd endpoint (`nomos-store-server`) enforces them.
//! - this module: [`EmbeddedStore`] and its single writer thread.
//!
//! Writes go through one writer thread that practises group commit: it takes every request
//! waiting in its queue, applies them to the in-memory state in order, commits all their rows in
//! one SQLite transaction, and only then makes the new revision visible to readers, publishes the
//! events to watchers and acknowledges the callers. A `kill -9` therefore loses no acknowledged
//! write, and readers never see a write that could still be lost. The same thread expires leases
//! on time (their deadlines are persisted, so a lease granted before a restart still expires).

mod alarm;
pub mod auth;
mod auth_store;
mod identity;
mod log;
mod maintenance;
mod persist;
mod state;
#[cfg(test)]
mod tests;
mod watch;

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::oneshot;

use self::persist::Db;
use self::state::{Effects, Event, State};
use crate::{
    validate, DeleteOptions, DeleteResponse, KeySelector, LeaseGrant, LeaseInfo, PutOptions,
    PutResponse, RangeOptions, RangeResponse, Result, Store, StoreError, StoreStatus, Txn, TxnOp,
    TxnOpResponse, TxnResponse, WatchOptions, WatchStream,
};

pub use self::alarm::AlarmKind;
pub use self::identity::{new_id as new_cluster_id, ID_FILE};
pub use self::maintenance::{
    inspect_snapshot, restore_snapshot, verify_snapshot_hash, KvHash, RestoreOptions, Snapshot,
    SnapshotInfo,
};
pub use self::persist::DB_FILE;
pub use self::watch::{ReplayStats, WatchLimits};

/// Most requests the writer folds into one commit.
const MAX_BATCH: usize = 4096;
/// Most bytes of keys and values the writer folds into one commit.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// Longest the writer waits for the rest of a group of writers before committing.
const GATHER_WINDOW: Duration = Duration::from_micros(300);

/// Revisions of history `nctl server`, `nctl agent` and `nctl dev` keep by default before
/// compacting older ones (etcd's `--auto-compaction-mode=revision`): enough for watchers that
/// fall behind for a while; one that falls further behind is told `compacted` and lists again.
pub const DEFAULT_HISTORY: i64 = 10_000;

/// Tuning of an [`EmbeddedStore`].
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// How often an idle watch with `progress_notify` receives a progress notification
    /// (etcd's `--experimental-watch-progress-notify-interval`, 10 minutes by default there).
    pub progress_notify_interval: Duration,
    /// Keep about this many revisions of history and compact older ones automatically (as
    /// etcd's `--auto-compaction-mode=revision`); 0 keeps everything until [`Store::compact`].
    pub auto_compaction_retention: i64,
    /// Memory limits of watches: catch-up chunks, the replay budget, live queues ([`watch`]).
    pub watch_limits: WatchLimits,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            progress_notify_interval: Duration::from_secs(5),
            auto_compaction_retention: 0,
            watch_limits: WatchLimits::default(),
        }
    }
}

/// A batch of committed events, shared by every watcher.
pub(crate) type Batch = Arc<Vec<Arc<Event>>>;

pub(crate) struct Locked {
    pub state: State,
    pub watchers: watch::Watchers,
    /// Set when a commit failed and the state could not be reloaded from disk: the in-memory
    /// state is then ahead of the disk, and every write is refused.
    pub failed: Option<String>,
    /// Why writes are refused for now (a full disk, a failed write, an operator's alarm).
    pub alarm: Option<alarm::Cause>,
}

pub(crate) struct Shared {
    pub locked: Mutex<Locked>,
    /// Where the values are read from.
    pub log: log::Log,
    /// The store's ID (its identity file); `None` in memory.
    pub store_id: Option<String>,
    /// Newest durable revision: what readers see.
    pub visible: AtomicI64,
    pub db_size: AtomicI64,
    pub options: EmbeddedOptions,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Locked> {
        self.locked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type Reply<T> = oneshot::Sender<Result<T>>;

fn txn_size(txn: &Txn) -> usize {
    txn.success
        .iter()
        .chain(&txn.failure)
        .map(|op| match op {
            TxnOp::Put { key, value, .. } => key.len() + value.len(),
            TxnOp::Txn(inner) => txn_size(inner),
            _ => 0,
        })
        .sum()
}

enum Request {
    Txn(Txn, Reply<TxnResponse>),
    LeaseGrant(i64, i64, Reply<LeaseGrant>),
    LeaseKeepAlive(i64, Reply<i64>),
    LeaseRevoke(i64, Reply<()>),
    Compact(i64, Reply<()>),
    /// Operator maintenance (snapshot, hash, defragment), run between two commits.
    Maintenance(maintenance::Task),
    Shutdown,
}

impl Request {
    /// Approximate bytes the request writes.
    fn size(&self) -> usize {
        match self {
            Request::Txn(txn, _) => txn_size(txn),
            _ => 0,
        }
    }
}

/// The embedded store. Cheap to share as `Arc<dyn Store>`; dropping it stops its writer thread
/// and ends its watches.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Request>,
    writer: Option<JoinHandle<()>>,
    /// etcd's users and roles, kept apart from the key space ([`auth`]).
    auth: Arc<auth::EmbeddedAuth>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl EmbeddedStore {
    /// Opens (or creates) the store in a data directory.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    pub fn open_with(dir: &Path, options: EmbeddedOptions) -> Result<Self> {
        let (db, store_id) = Db::open(dir)?;
        let state = db.load().map_err(|e| {
            identity::refuse(&dir.join(DB_FILE), format!("cannot read the database: {e}"))
        })?;
        let users =
            auth::EmbeddedAuth::open(dir).map_err(|e| StoreError::Backend(e.to_string()))?;
        let log = log::Log::disk(dir.join(DB_FILE));
        let mut store = Self::start(state, Some((db, store_id)), log, options);
        store.auth = Arc::new(users);
        Ok(store)
    }

    /// The store's users and roles, which its etcd endpoint enforces (durable in the data
    /// directory; in memory for an in-memory store).
    pub fn auth(&self) -> &Arc<auth::EmbeddedAuth> {
        &self.auth
    }

    /// A store that lives in memory only (tests, simulations).
    pub fn in_memory() -> Self {
        Self::in_memory_with(EmbeddedOptions::default())
    }

    pub fn in_memory_with(options: EmbeddedOptions) -> Self {
        Self::start(State::new(), None, log::Log::memory(), options)
    }

    fn start(
        state: State,
        db: Option<(Db, String)>,
        log: log::Log,
        options: EmbeddedOptions,
    ) -> Self {
        let (db, store_id) = db.unzip();
        let size = db.as_ref().map_or(0, Db::size);
        let shared = Arc::new(Shared {
            log,
            store_id,
            visible: AtomicI64::new(state.rev),
            db_size: AtomicI64::new(size),
            locked: Mutex::new(Locked {
                state,
                watchers: watch::Watchers::new(&options.watch_limits),
                failed: None,
                alarm: None,
            }),
            options,
        });
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("nomos-store-writer".into())
            .spawn(move || writer_loop(writer_shared, rx, db))
            .expect("spawning the store writer thread");
        EmbeddedStore {
            shared,
            tx,
            writer: Some(writer),
            auth: Arc::new(auth::EmbeddedAuth::in_memory()),
        }
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| StoreError::Unavailable("embedded store is stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("embedded store is stopped".into()))?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        let _ = self.tx.send(Request::Shutdown);
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn writer_loop(shared: Arc<Shared>, rx: mpsc::Receiver<Request>, mut db: Option<Db>) {
    let mut shutdown = false;
    let mut last_batch = 0;
    let mut prober = alarm::Prober::new();
    while !shutdown {
        // Under an alarm raised by the disk, leases do not expire (that would be a write) and
        // the writer wakes up only to probe.
        let wait = prober.wait(&shared).or_else(|| {
            let deadline = shared.lock().state.next_deadline_ms()?;
            Some(Duration::from_millis((deadline - now_ms()).max(0) as u64))
        });
        let first = match wait {
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(r) => Some(r),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(r) => Some(r),
                Err(_) => break,
            },
        };
        let mut requests: Vec<Request> = first.into_iter().collect();
        let mut bytes = requests.iter().map(Request::size).sum::<usize>();
        // Writers acknowledged by the last commit come back within microseconds: when fewer
        // than last time are queued, wait briefly for them so they share this commit instead
        // of splitting into a small commit and a large one. A lone writer never waits.
        let gather_until = Instant::now() + GATHER_WINDOW;
        while requests.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            let next = match rx.try_recv() {
                Ok(r) => Some(r),
                Err(_) if !requests.is_empty() && requests.len() < last_batch => {
                    let left = gather_until.saturating_duration_since(Instant::now());
                    rx.recv_timeout(left).ok()
                }
                Err(_) => None,
            };
            match next {
                Some(r) => {
                    bytes += r.size();
                    requests.push(r);
                }
                None => break,
            }
        }
        last_batch = requests.len();
        let requests = maintenance::run_between_commits(requests, &mut db);
        prober.probe_if_due(&shared, &mut db);
        let alarm = shared.lock().alarm.clone();
        if let Some(cause) = alarm {
            shutdown = alarm::answer_under_alarm(&shared, requests, &cause);
            continue;
        }
        let mut fx = Effects::default();
        let mut replies: Vec<Acknowledge> = Vec::new();
        let new_rev;
        {
            let mut guard = shared.lock();
            if let Some(e) = guard.failed.clone() {
                for r in requests {
                    shutdown |= matches!(r, Request::Shutdown);
                    fail_with(r, || StoreError::Backend(e.clone()));
                }
                continue;
            }
            let visible = shared.visible.load(Ordering::Acquire);
            let state = &mut guard.state;
            state.expire_leases(now_ms(), &mut fx);
            for r in requests {
                match r {
                    Request::Txn(txn, reply) => {
                        let res = apply_txn(&shared.log, state, &txn, visible, &mut fx);
                        replies.push(reply_fn(reply, res));
                    }
                    Request::LeaseGrant(ttl, id, reply) => {
                        let res = state.lease_grant(ttl, id, now_ms(), &mut fx);
                        replies.push(reply_fn(reply, res));
                    }
                    Request::LeaseKeepAlive(id, reply) => {
                        let res = state.lease_keep_alive(id, now_ms(), &mut fx);
                        replies.push(reply_fn(reply, res));
                    }
                    Request::LeaseRevoke(id, reply) => {
                        let res = state.lease_revoke(id, &mut fx);
                        replies.push(reply_fn(reply, res));
                    }
                    Request::Compact(rev, reply) => {
                        let res = state.compact(rev, visible, &mut fx);
                        replies.push(reply_fn(reply, res));
                    }
                    Request::Shutdown => shutdown = true,
                    // Already run (and taken out) by `maintenance::run_between_commits`.
                    Request::Maintenance(_) => {}
                }
            }
            let retention = shared.options.auto_compaction_retention;
            if retention > 0 && visible - state.compact_rev > 2 * retention {
                let _ = state.compact(visible - retention, visible, &mut fx);
            }
            new_rev = state.rev;
        }
        let mut commit_error = None;
        if let Some(db) = db.as_mut() {
            if !fx.sql.is_empty() {
                match db.commit(&fx.sql) {
                    Ok(()) => shared.db_size.store(db.size(), Ordering::Relaxed),
                    Err(e) => commit_error = Some(alarm::Cause::of_commit_error(&e, bytes)),
                }
            }
        }
        if commit_error.is_none() {
            shared.log.committed(&fx.sql);
        }
        {
            let mut guard = shared.lock();
            if let (Some(cause), Some(db)) = (&commit_error, db.as_ref()) {
                roll_back(&mut guard, db, cause);
                prober.reset();
            } else {
                if !fx.events.is_empty() {
                    let batch: Batch = Arc::new(fx.events);
                    if guard.watchers.want_prev_values() {
                        watch::resolve_prev_values(&shared.log, &batch);
                    }
                    guard.watchers.publish(&batch);
                }
                shared.visible.store(new_rev, Ordering::Release);
            }
        }
        for reply in replies {
            reply(commit_error.as_ref());
        }
    }
    shared.lock().watchers.clear();
}

/// Applies a transaction to the state, with the values it reads fetched from the log first
/// (nothing is applied when they cannot be read).
pub(crate) fn apply_txn(
    log: &log::Log,
    state: &mut State,
    txn: &Txn,
    visible: i64,
    fx: &mut Effects,
) -> Result<TxnResponse> {
    let rows = state.rows_for_txn(txn, visible, fx);
    let values = log.values(&rows)?;
    state.apply_txn(txn, visible, &state::Fetched::new(rows, values), fx)
}

/// After a failed commit: the batch is not on disk, so the in-memory state goes back to what
/// the database holds (nothing of the batch was published), and writes are refused until a
/// probe commits. If even reading the database fails, the store stays read-only for good.
fn roll_back(guard: &mut MutexGuard<'_, Locked>, db: &Db, cause: &alarm::Cause) {
    tracing::error!(error = %cause.error(), "embedded store: a commit failed; writes are refused until one succeeds again");
    match db.load() {
        Ok(state) => {
            guard.state = state;
            guard.alarm = Some(cause.clone());
        }
        Err(e) => {
            tracing::error!(error = %e, "embedded store: cannot reload the database after a failed commit; the store is now read-only");
            guard.failed = Some(format!(
                "{} (and reloading the database failed: {e})",
                cause.error()
            ));
        }
    }
}

/// Sends a request's result once its batch is durable (or the commit's error if it failed).
type Acknowledge = Box<dyn FnOnce(Option<&alarm::Cause>) + Send>;

fn reply_fn<T: Send + 'static>(reply: Reply<T>, res: Result<T>) -> Acknowledge {
    Box::new(move |commit_error: Option<&alarm::Cause>| {
        let res = match commit_error {
            Some(cause) => Err(cause.error()),
            None => res,
        };
        let _ = reply.send(res);
    })
}

/// Answers a request that is refused with the error `err` makes.
fn fail_with(r: Request, err: impl Fn() -> StoreError) {
    match r {
        Request::Txn(_, reply) => drop(reply.send(Err(err()))),
        Request::LeaseGrant(_, _, reply) => drop(reply.send(Err(err()))),
        Request::LeaseKeepAlive(_, reply) => drop(reply.send(Err(err()))),
        Request::LeaseRevoke(_, reply) => drop(reply.send(Err(err()))),
        Request::Compact(_, reply) => drop(reply.send(Err(err()))),
        Request::Maintenance(task) => task(Err(err())),
        Request::Shutdown => {}
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn range(&self, keys: KeySelector, options: RangeOptions) -> Result<RangeResponse> {
        validate::check_selector(&keys)?;
        loop {
            let plan = {
                let guard = self.shared.lock();
                let visible = self.shared.visible.load(Ordering::Acquire);
                guard.state.plan_range(&keys, &options, visible)?
            };
            // The values are read without the lock; a row that is gone by then was compacted
            // away meanwhile, and the read is planned again (or refused, at a fixed revision).
            let read_rev = plan.read_rev;
            let values = self.shared.log.values(&plan.rows())?;
            match plan.finish(values) {
                Ok(resp) => return Ok(resp),
                Err(row) => {
                    let compact_revision = self.shared.lock().state.compact_rev;
                    if compact_revision <= read_rev {
                        return Err(StoreError::Backend(format!(
                            "the log has no row {row}, which the index names at revision {read_rev}"
                        )));
                    }
                    if options.revision > 0 {
                        return Err(StoreError::Compacted {
                            requested: options.revision,
                            compact_revision,
                        });
                    }
                }
            }
        }
    }

    async fn put(&self, key: Vec<u8>, value: Vec<u8>, options: PutOptions) -> Result<PutResponse> {
        validate::check_put(&key, &value, &options)?;
        let txn = Txn {
            success: vec![TxnOp::Put {
                key,
                value,
                options,
            }],
            ..Txn::default()
        };
        let resp = self.call(|r| Request::Txn(txn, r)).await?;
        match resp.responses.into_iter().next() {
            Some(TxnOpResponse::Put(p)) => Ok(PutResponse {
                revision: resp.revision,
                ..p
            }),
            _ => Err(StoreError::Backend("put returned no response".into())),
        }
    }

    async fn delete(&self, keys: KeySelector, options: DeleteOptions) -> Result<DeleteResponse> {
        validate::check_selector(&keys)?;
        let txn = Txn {
            success: vec![TxnOp::Delete(keys, options)],
            ..Txn::default()
        };
        let resp = self.call(|r| Request::Txn(txn, r)).await?;
        match resp.responses.into_iter().next() {
            Some(TxnOpResponse::Delete(d)) => Ok(DeleteResponse {
                revision: resp.revision,
                ..d
            }),
            _ => Err(StoreError::Backend("delete returned no response".into())),
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        validate::check_txn(&txn)?;
        self.call(|r| Request::Txn(txn, r)).await
    }

    async fn watch(&self, keys: KeySelector, options: WatchOptions) -> Result<WatchStream> {
        validate::check_selector(&keys)?;
        Ok(watch::start(self.shared.clone(), keys, options))
    }

    async fn lease_grant(&self, ttl_seconds: i64, id: i64) -> Result<LeaseGrant> {
        self.call(|r| Request::LeaseGrant(ttl_seconds, id, r)).await
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        self.call(|r| Request::LeaseKeepAlive(id, r)).await
    }

    async fn lease_revoke(&self, id: i64) -> Result<()> {
        self.call(|r| Request::LeaseRevoke(id, r)).await
    }

    async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo> {
        Ok(self.shared.lock().state.lease_info(id, with_keys, now_ms()))
    }

    async fn lease_list(&self) -> Result<Vec<i64>> {
        Ok(self.shared.lock().state.lease_ids())
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.call(|r| Request::Compact(revision, r)).await
    }

    async fn status(&self) -> Result<StoreStatus> {
        let guard = self.shared.lock();
        Ok(StoreStatus {
            revision: self.shared.visible.load(Ordering::Acquire),
            compact_revision: guard.state.compact_rev,
            db_size: self.shared.db_size.load(Ordering::Relaxed),
        })
    }
}
