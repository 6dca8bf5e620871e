//! Watch streams of the embedded store, with bounded memory however many watchers there are
//! and however slowly they are read (etcd's synced and unsynced watcher groups).
//!
//! A watcher is in one of two modes, kept in its [`Slot`], which it shares with the writer:
//! - catch-up: it reads the log ([`super::log`]) from its next revision in chunks of whole
//!   revisions, each at most [`WatchLimits::replay_chunk_bytes`] and reserved from the
//!   store-wide [`budget::ReplayBudget`] until its consumer comes back for more (the log is read
//!   without the store lock; a compaction that passed meanwhile ends the watch `Compacted`);
//! - live: the writer queues each committed batch (shared, not copied) in its slot, up to
//!   [`WatchLimits::live_queue_bytes`]. A batch that does not fit moves the watcher back to
//!   catch-up; it drains what was queued and reads the rest from the log. The writer never
//!   waits for a watcher.
//!
//! Switching from catch-up to live happens under the store lock the writer publishes under, at
//! the newest visible revision, so every event is delivered exactly once and in order. A
//! watcher whose next revision has been compacted away ends with `Compacted`.

mod budget;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use futures::Stream;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use self::budget::{Permit, ReplayBudget};
pub use self::budget::{ReplayStats, WatchLimits};
use super::log::{Log, LogRow};
use super::state::{Event, Prev};
use super::{Batch, EmbeddedStore, Shared};
use crate::{
    EventKind, KeySelector, KeyValue, Result, StoreError, WatchEvent, WatchOptions, WatchResponse,
    WatchStream,
};

/// Most log rows one catch-up step reads (a revision with more is read whole).
const SCAN_ROWS: i64 = 4_096;
/// What an event costs beyond its key and values (the structs around them), for budgets.
const EVENT_OVERHEAD: usize = 64;

/// Every watcher's slot, held by the store under its lock.
pub(crate) struct Watchers {
    slots: Vec<Arc<Slot>>,
    budget: Arc<ReplayBudget>,
    limits: WatchLimits,
}

impl Watchers {
    pub fn new(limits: &WatchLimits) -> Self {
        Watchers {
            slots: Vec::new(),
            budget: ReplayBudget::new(limits.replay_budget_bytes),
            limits: limits.clone(),
        }
    }

    /// Hands a committed batch to every live watcher; called under the store lock, before the
    /// batch's revision becomes visible.
    pub fn publish(&mut self, batch: &Batch) {
        let bytes = batch
            .iter()
            .map(|e| event_bytes(&e.kv, e.prev.as_ref(), true))
            .sum::<usize>();
        self.slots.retain(|slot| slot.offer(batch, bytes));
    }

    /// Whether a live watcher asks for replaced versions (`prev_kv`): the writer then reads
    /// their values before it publishes a batch ([`resolve_prev_values`]).
    pub fn want_prev_values(&self) -> bool {
        self.slots
            .iter()
            .any(|slot| slot.prev_kv && slot.lock().live)
    }

    /// Ends every watch (the store is shutting down).
    pub fn clear(&mut self) {
        for slot in self.slots.drain(..) {
            slot.lock().ended = true;
            slot.waker.wake();
        }
    }

    fn register(&mut self, live: bool, prev_kv: bool) -> Arc<Slot> {
        self.slots.retain(|slot| !slot.lock().dropped);
        let slot = Arc::new(Slot {
            inner: Mutex::new(SlotState {
                live,
                queue: VecDeque::new(),
                queued_bytes: 0,
                limit: self.limits.live_queue_bytes,
                ended: false,
                dropped: false,
            }),
            waker: AtomicWaker::new(),
            prev_kv,
        });
        self.slots.push(slot.clone());
        slot
    }
}

/// What the writer and one watcher share.
struct Slot {
    inner: Mutex<SlotState>,
    waker: AtomicWaker,
    /// The watcher asks for replaced versions.
    prev_kv: bool,
}

struct SlotState {
    /// Whether the writer queues batches here (else the watcher reads the log).
    live: bool,
    queue: VecDeque<(Batch, usize)>,
    queued_bytes: usize,
    limit: usize,
    /// The store ended the watch.
    ended: bool,
    /// The watch stream was dropped; the writer forgets the slot.
    dropped: bool,
}

/// What a watcher does next, by its slot.
enum Next {
    Batch(Batch),
    Idle,
    CatchUp,
    Ended,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `batch` if the watcher is live and has room; else moves it to catch-up. Returns
    /// whether the slot is still wanted.
    fn offer(&self, batch: &Batch, bytes: usize) -> bool {
        let mut state = self.lock();
        if state.dropped {
            return false;
        }
        if !state.live {
            return true;
        }
        if state.queued_bytes + bytes > state.limit {
            state.live = false;
        } else {
            state.queued_bytes += bytes;
            state.queue.push_back((batch.clone(), bytes));
        }
        drop(state);
        self.waker.wake();
        true
    }

    fn next(&self) -> Next {
        let mut state = self.lock();
        if let Some((batch, bytes)) = state.queue.pop_front() {
            state.queued_bytes -= bytes;
            return Next::Batch(batch);
        }
        if state.ended {
            Next::Ended
        } else if state.live {
            Next::Idle
        } else {
            Next::CatchUp
        }
    }
}

impl EmbeddedStore {
    /// The watches' replay budget now (for tests and metrics).
    pub fn watch_replay_stats(&self) -> ReplayStats {
        self.shared.lock().watchers.budget.stats()
    }

    /// Bytes of live events queued for watchers now, all together (for tests and metrics).
    pub fn watch_live_queued_bytes(&self) -> usize {
        let guard = self.shared.lock();
        guard
            .watchers
            .slots
            .iter()
            .map(|s| s.lock().queued_bytes)
            .sum()
    }
}

struct EmbeddedWatch {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    budget: Arc<ReplayBudget>,
    chunk_limit: usize,
    keys: KeySelector,
    options: WatchOptions,
    /// The first revision not yet delivered.
    next_rev: i64,
    /// The budget held by the last catch-up response, until the consumer comes back.
    permit: Option<Permit>,
    progress: Option<Interval>,
    finished: bool,
}

pub(crate) fn start(shared: Arc<Shared>, keys: KeySelector, options: WatchOptions) -> WatchStream {
    let (slot, budget, chunk_limit, next_rev) = {
        let mut guard = shared.lock();
        let visible = shared.visible.load(Ordering::Acquire);
        let compact = guard.state.compact_rev;
        if options.start_revision > 0 && options.start_revision < compact {
            let err = StoreError::Compacted {
                requested: options.start_revision,
                compact_revision: compact,
            };
            return Box::pin(futures::stream::once(async move { Err(err) }));
        }
        let next_rev = if options.start_revision > 0 {
            options.start_revision
        } else {
            visible + 1
        };
        let watchers = &mut guard.watchers;
        let slot = watchers.register(next_rev > visible, options.prev_kv);
        let chunk = watchers.limits.replay_chunk_bytes.max(1);
        (slot, watchers.budget.clone(), chunk, next_rev)
    };
    let progress = options.progress_notify.then(|| {
        let period = shared.options.progress_notify_interval;
        let mut iv = tokio::time::interval_at(Instant::now() + period, period);
        iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
        iv
    });
    Box::pin(EmbeddedWatch {
        shared,
        slot,
        budget,
        chunk_limit,
        keys,
        options,
        next_rev,
        permit: None,
        progress,
        finished: false,
    })
}

fn wanted(keys: &KeySelector, options: &WatchOptions, kind: EventKind, key: &[u8]) -> bool {
    let filtered = match kind {
        EventKind::Put => options.filters.no_put,
        EventKind::Delete => options.filters.no_delete,
    };
    !filtered && keys.contains(key)
}

fn event_bytes(kv: &KeyValue, prev: Option<&Prev>, prev_kv: bool) -> usize {
    let prev = match (prev, prev_kv) {
        (Some(p), true) => kv.key.len() + p.meta.value_len as usize,
        _ => 0,
    };
    EVENT_OVERHEAD + kv.key.len() + kv.value.len() + prev
}

/// Reads from the log the values of the versions a batch's changes replaced, for live
/// watchers that ask for them; called by the writer before it publishes the batch (every row
/// is committed by then). A value that cannot be read is looked up again at delivery.
pub(crate) fn resolve_prev_values(log: &Log, batch: &Batch) {
    let rows: Vec<i64> = batch.iter().filter_map(|e| e.prev.map(|p| p.row)).collect();
    match log.values(&rows) {
        Ok(values) => {
            // `values` is aligned with the events that replaced a version, in batch order.
            let replaced = batch.iter().filter(|e| e.prev.is_some());
            for (e, value) in replaced.zip(values) {
                if let Some(value) = value {
                    let _ = e.prev_value.set(value);
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "embedded store: cannot read replaced values for watchers")
        }
    }
}

/// One change to deliver, with the version it replaced (read from the log for `prev_kv`).
struct Change {
    kind: EventKind,
    kv: KeyValue,
    prev: Option<Prev>,
    /// The replaced version's value, when the writer read it already.
    prev_value: Option<Vec<u8>>,
}

/// The watch events for `changes`; with `prev_kv`, the replaced versions' values are read from
/// the log, and one compacted away meanwhile is left out (as etcd does).
fn to_watch_events(log: &Log, changes: Vec<Change>, prev_kv: bool) -> Result<Vec<WatchEvent>> {
    let rows: Vec<i64> = if prev_kv {
        changes
            .iter()
            .filter(|c| c.prev_value.is_none())
            .filter_map(|c| c.prev.map(|p| p.row))
            .collect()
    } else {
        Vec::new()
    };
    // Aligned with the changes that need a value read, in order.
    let mut values = log.values(&rows)?.into_iter();
    Ok(changes
        .into_iter()
        .map(|c| {
            let prev_kv = c.prev.filter(|_| prev_kv).and_then(|p| {
                let value = match c.prev_value {
                    Some(value) => Some(value),
                    None => values.next().flatten(),
                };
                let value = value?;
                Some(KeyValue {
                    key: c.kv.key.clone(),
                    value,
                    create_revision: p.meta.create_revision,
                    mod_revision: p.rev,
                    version: p.meta.version,
                    lease: p.meta.lease,
                })
            });
            WatchEvent {
                kind: c.kind,
                kv: c.kv,
                prev_kv,
            }
        })
        .collect())
}

/// One catch-up step's outcome.
enum CatchUp {
    /// Events to deliver, through `revision`.
    Chunk(WatchResponse),
    /// Nothing to deliver yet: either now live, or more log to scan.
    Progressed {
        live: bool,
    },
    /// The replay budget is spent; woken on release.
    Wait,
    Failed(StoreError),
}

/// The changes picked from the log in one catch-up step.
struct Picked {
    changes: Vec<Change>,
    bytes: usize,
    /// The last revision fully scanned.
    through: i64,
}

impl EmbeddedWatch {
    /// The wanted changes of whole revisions from `rows` (log order, revisions from
    /// `next_rev` through `last_rev`), up to `limit` bytes (the first revision always).
    fn pick(&self, rows: Vec<LogRow>, last_rev: i64, limit: usize) -> Picked {
        let mut picked = Picked {
            changes: Vec::new(),
            bytes: 0,
            through: last_rev,
        };
        let mut rows = rows.into_iter().peekable();
        while let Some(first) = rows.peek() {
            let rev = first.rev;
            let mut revision = Vec::new();
            let mut bytes = 0;
            while let Some(row) = rows.next_if(|r| r.rev == rev) {
                let kind = if row.deleted {
                    EventKind::Delete
                } else {
                    EventKind::Put
                };
                if wanted(&self.keys, &self.options, kind, &row.kv.key) {
                    bytes += event_bytes(&row.kv, None, false);
                    revision.push(Change {
                        kind,
                        kv: row.kv,
                        prev: None,
                        prev_value: None,
                    });
                }
            }
            if !picked.changes.is_empty() && picked.bytes + bytes > limit {
                picked.through = rev - 1;
                return picked;
            }
            picked.changes.extend(revision);
            picked.bytes += bytes;
        }
        picked
    }

    /// Reads the next chunk of history; switches to live once it reaches the visible revision.
    fn catch_up(&mut self, cx: &mut Context<'_>) -> CatchUp {
        let from = self.next_rev;
        // Under the lock: which log rows come next, or live when there are none.
        let (span, limit) = {
            let guard = self.shared.lock();
            let visible = self.shared.visible.load(Ordering::Acquire);
            let state = &guard.state;
            if from < state.compact_rev {
                return CatchUp::Failed(StoreError::Compacted {
                    requested: from,
                    compact_revision: state.compact_rev,
                });
            }
            let available = self.budget.available(cx.waker());
            if available == 0 {
                return CatchUp::Wait;
            }
            match state.log_span(from, visible, SCAN_ROWS) {
                Some(span) => (span, self.chunk_limit.min(available)),
                None => {
                    // Under the lock the writer publishes under: later batches queue in the slot.
                    self.next_rev = from.max(visible + 1);
                    self.slot.lock().live = true;
                    return CatchUp::Progressed { live: true };
                }
            }
        };
        // Without the lock: the rows themselves.
        let rows = match self.shared.log.rows(span.first_row, span.end_row) {
            Ok(rows) => rows,
            Err(e) => return CatchUp::Failed(e),
        };
        let mut picked = self.pick(rows, span.last_rev, limit);
        let prev_kv = self.options.prev_kv;
        // Under the lock again: nothing read was compacted meanwhile; the replaced versions;
        // the budget; live once caught up.
        let (caught_up, visible) = {
            let guard = self.shared.lock();
            let state = &guard.state;
            if state.compact_rev > from {
                return CatchUp::Failed(StoreError::Compacted {
                    requested: from,
                    compact_revision: state.compact_rev,
                });
            }
            if prev_kv {
                for change in &mut picked.changes {
                    change.prev = state.prev_version(&change.kv.key, change.kv.mod_revision);
                    if let Some(p) = &change.prev {
                        picked.bytes += change.kv.key.len() + p.meta.value_len as usize;
                    }
                }
            }
            if !picked.changes.is_empty() {
                match self.budget.reserve(picked.bytes, cx.waker()) {
                    Some(permit) => self.permit = Some(permit),
                    None => return CatchUp::Wait,
                }
            }
            let visible = self.shared.visible.load(Ordering::Acquire);
            let caught_up = picked.through >= visible;
            if caught_up {
                self.next_rev = self.next_rev.max(visible + 1);
                self.slot.lock().live = true;
            } else {
                self.next_rev = picked.through + 1;
            }
            (caught_up, visible)
        };
        if picked.changes.is_empty() {
            return CatchUp::Progressed { live: caught_up };
        }
        let events = match to_watch_events(&self.shared.log, picked.changes, prev_kv) {
            Ok(events) => events,
            Err(e) => return CatchUp::Failed(e),
        };
        let revision = if caught_up { visible } else { picked.through };
        CatchUp::Chunk(WatchResponse { revision, events })
    }

    fn filter_batch(&mut self, batch: &Batch) -> Option<Result<WatchResponse>> {
        let from = self.next_rev;
        let last = batch.last().map_or(0, |e| e.rev);
        self.next_rev = self.next_rev.max(last + 1);
        let changes: Vec<Change> = batch
            .iter()
            .filter(|e| e.rev >= from && wanted(&self.keys, &self.options, e.kind, &e.kv.key))
            .map(|e: &Arc<Event>| Change {
                kind: e.kind,
                kv: (*e.kv).clone(),
                prev: e.prev,
                prev_value: if self.options.prev_kv {
                    e.prev_value.get().cloned()
                } else {
                    None
                },
            })
            .collect();
        if changes.is_empty() {
            return None;
        }
        Some(
            to_watch_events(&self.shared.log, changes, self.options.prev_kv).map(|events| {
                WatchResponse {
                    revision: last,
                    events,
                }
            }),
        )
    }

    /// Ends the watch with an error.
    fn failed(&mut self, err: StoreError) -> Poll<Option<Result<WatchResponse>>> {
        self.finished = true;
        Poll::Ready(Some(Err(err)))
    }

    fn delivered(&mut self, resp: WatchResponse) -> Poll<Option<Result<WatchResponse>>> {
        if let Some(iv) = &mut self.progress {
            iv.reset();
        }
        Poll::Ready(Some(Ok(resp)))
    }

    /// A progress notification at the visible revision, unless a batch up to it is still
    /// queued (then that batch is delivered first).
    fn progress(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<WatchResponse>>> {
        let next = {
            let _guard = self.shared.lock();
            let visible = self.shared.visible.load(Ordering::Acquire);
            (self.slot.next(), visible)
        };
        match next {
            (Next::Batch(batch), _) => match self.filter_batch(&batch) {
                Some(Ok(resp)) => self.delivered(resp),
                Some(Err(e)) => self.failed(e),
                None => self.progress(cx),
            },
            (Next::Ended, _) => Poll::Ready(None),
            (Next::CatchUp, _) => {
                // Moved to catch-up since the last look: no progress until it is live again.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            (_, visible) => Poll::Ready(Some(Ok(WatchResponse {
                revision: visible,
                events: Vec::new(),
            }))),
        }
    }
}

impl Stream for EmbeddedWatch {
    type Item = Result<WatchResponse>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // The consumer came back: the last catch-up response is theirs now.
        this.permit = None;
        if this.finished {
            return Poll::Ready(None);
        }
        this.slot.waker.register(cx.waker());
        loop {
            match this.slot.next() {
                Next::Batch(batch) => match this.filter_batch(&batch) {
                    Some(Ok(resp)) => return this.delivered(resp),
                    Some(Err(e)) => return this.failed(e),
                    None => {}
                },
                Next::Ended => return Poll::Ready(None),
                Next::CatchUp => match this.catch_up(cx) {
                    CatchUp::Chunk(resp) => return this.delivered(resp),
                    CatchUp::Progressed { live: true } => {}
                    CatchUp::Progressed { live: false } => {
                        // A long stretch of log with nothing wanted: let others run.
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    CatchUp::Wait => return Poll::Pending,
                    CatchUp::Failed(err) => return this.failed(err),
                },
                Next::Idle => break,
            }
        }
        let Some(iv) = &mut this.progress else {
            return Poll::Pending;
        };
        if iv.poll_tick(cx).is_pending() {
            return Poll::Pending;
        }
        this.progress(cx)
    }
}

impl Drop for EmbeddedWatch {
    fn drop(&mut self) {
        let mut state = self.slot.lock();
        state.dropped = true;
        state.queue.clear();
        state.queued_bytes = 0;
    }
}
