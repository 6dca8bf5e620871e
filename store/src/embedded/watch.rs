//! Watch streams of the embedded store, with bounded memory however many watchers there are
//! and however slowly they are read (etcd's synced and unsynced watcher groups).
//!
//! A watcher is in one of two modes, kept in its [`Slot`], which it shares with the writer:
//! - catch-up: it reads the event log from its next revision in chunks of whole revisions,
//!   each at most [`WatchLimits::replay_chunk_bytes`] and reserved from the store-wide
//!   [`budget::ReplayBudget`] until its consumer comes back for more;
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
use super::state::Event;
use super::{Batch, EmbeddedStore, Shared};
use crate::{
    EventKind, KeySelector, Result, StoreError, WatchEvent, WatchOptions, WatchResponse,
    WatchStream,
};

/// Most log entries one catch-up step scans while holding the store lock.
const SCAN_LIMIT: usize = 10_000;
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
        let bytes = batch.iter().map(|e| event_bytes(e, true)).sum::<usize>();
        self.slots.retain(|slot| slot.offer(batch, bytes));
    }

    /// Ends every watch (the store is shutting down).
    pub fn clear(&mut self) {
        for slot in self.slots.drain(..) {
            slot.lock().ended = true;
            slot.waker.wake();
        }
    }

    fn register(&mut self, live: bool) -> Arc<Slot> {
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
        });
        self.slots.push(slot.clone());
        slot
    }
}

/// What the writer and one watcher share.
struct Slot {
    inner: Mutex<SlotState>,
    waker: AtomicWaker,
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
        let slot = watchers.register(next_rev > visible);
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

fn wanted(keys: &KeySelector, options: &WatchOptions, e: &Event) -> bool {
    let filtered = match e.kind {
        EventKind::Put => options.filters.no_put,
        EventKind::Delete => options.filters.no_delete,
    };
    !filtered && keys.contains(&e.kv.key)
}

fn event_bytes(e: &Event, prev_kv: bool) -> usize {
    let prev = match (&e.prev, prev_kv) {
        (Some(p), true) => p.key.len() + p.value.len(),
        _ => 0,
    };
    EVENT_OVERHEAD + e.kv.key.len() + e.kv.value.len() + prev
}

fn to_watch_event(e: &Event, prev_kv: bool) -> WatchEvent {
    WatchEvent {
        kind: e.kind,
        kv: (*e.kv).clone(),
        prev_kv: if prev_kv {
            e.prev.as_ref().map(|p| (**p).clone())
        } else {
            None
        },
    }
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

/// The events picked from the log in one catch-up step.
struct Picked {
    events: Vec<Arc<Event>>,
    bytes: usize,
    /// The last revision fully scanned.
    through: i64,
    caught_up: bool,
}

impl EmbeddedWatch {
    /// Whole revisions from the log, starting at `next_rev`, up to `limit` bytes of wanted
    /// events (the first revision always) and [`SCAN_LIMIT`] entries scanned.
    fn pick(&self, events: &VecDeque<Arc<Event>>, visible: i64, limit: usize) -> Picked {
        let prev_kv = self.options.prev_kv;
        let mut at = events.partition_point(|e| e.rev < self.next_rev);
        let mut picked = Picked {
            events: Vec::new(),
            bytes: 0,
            through: self.next_rev - 1,
            caught_up: false,
        };
        let mut scanned = 0;
        while at < events.len() && events[at].rev <= visible && scanned < SCAN_LIMIT {
            let rev = events[at].rev;
            let end = at + events.range(at..).take_while(|e| e.rev == rev).count();
            let mut revision: Vec<Arc<Event>> = Vec::new();
            let mut bytes = 0;
            for e in events.range(at..end) {
                if wanted(&self.keys, &self.options, e) {
                    bytes += event_bytes(e, prev_kv);
                    revision.push(e.clone());
                }
            }
            if !picked.events.is_empty() && picked.bytes + bytes > limit {
                return picked;
            }
            picked.events.extend(revision);
            picked.bytes += bytes;
            picked.through = rev;
            scanned += end - at;
            at = end;
        }
        picked.caught_up = at >= events.len() || events[at].rev > visible;
        picked
    }

    /// Reads the next chunk of history; switches to live once it reaches the visible revision.
    fn catch_up(&mut self, cx: &mut Context<'_>) -> CatchUp {
        let picked;
        let visible;
        {
            let guard = self.shared.lock();
            visible = self.shared.visible.load(Ordering::Acquire);
            let state = &guard.state;
            if self.next_rev < state.compact_rev {
                return CatchUp::Failed(StoreError::Compacted {
                    requested: self.next_rev,
                    compact_revision: state.compact_rev,
                });
            }
            let available = self.budget.available(cx.waker());
            if available == 0 {
                return CatchUp::Wait;
            }
            picked = self.pick(&state.events, visible, self.chunk_limit.min(available));
            if !picked.events.is_empty() {
                match self.budget.reserve(picked.bytes, cx.waker()) {
                    Some(permit) => self.permit = Some(permit),
                    None => return CatchUp::Wait,
                }
            }
            if picked.caught_up {
                // Under the lock the writer publishes under: later batches queue in the slot.
                self.next_rev = self.next_rev.max(visible + 1);
                self.slot.lock().live = true;
            } else {
                self.next_rev = picked.through + 1;
            }
        }
        if picked.events.is_empty() {
            return CatchUp::Progressed {
                live: picked.caught_up,
            };
        }
        let prev_kv = self.options.prev_kv;
        let events = picked
            .events
            .iter()
            .map(|e| to_watch_event(e, prev_kv))
            .collect();
        let revision = if picked.caught_up {
            visible
        } else {
            picked.through
        };
        CatchUp::Chunk(WatchResponse { revision, events })
    }

    fn filter_batch(&mut self, batch: &Batch) -> Option<WatchResponse> {
        let from = self.next_rev;
        let last = batch.last().map_or(0, |e| e.rev);
        self.next_rev = self.next_rev.max(last + 1);
        let events: Vec<WatchEvent> = batch
            .iter()
            .filter(|e| e.rev >= from && wanted(&self.keys, &self.options, e))
            .map(|e| to_watch_event(e, self.options.prev_kv))
            .collect();
        if events.is_empty() {
            return None;
        }
        Some(WatchResponse {
            revision: last,
            events,
        })
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
                Some(resp) => self.delivered(resp),
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
                Next::Batch(batch) => {
                    if let Some(resp) = this.filter_batch(&batch) {
                        return this.delivered(resp);
                    }
                }
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
                    CatchUp::Failed(err) => {
                        this.finished = true;
                        return Poll::Ready(Some(Err(err)));
                    }
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
