//! Watch streams of the embedded store. A watch takes its catch-up events (from its start
//! revision to the newest durable one) from the event log while registering for live batches
//! under the same lock, so no event is missed or repeated; live batches arrive over an unbounded
//! channel from the writer thread, and filtering happens here, in the consumer's task.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::state::Event;
use super::{Batch, Shared};
use crate::{
    EventKind, KeySelector, Result, StoreError, WatchEvent, WatchOptions, WatchResponse,
    WatchStream,
};

/// Most events in one catch-up response.
const CATCH_UP_CHUNK: usize = 1000;

struct EmbeddedWatch {
    shared: Arc<Shared>,
    keys: KeySelector,
    options: WatchOptions,
    start: i64,
    /// Catch-up events not yet delivered, and the revision they bring the watcher to.
    catch_up: VecDeque<Arc<Event>>,
    catch_up_rev: i64,
    rx: mpsc::UnboundedReceiver<Batch>,
    progress: Option<Interval>,
}

pub(crate) fn start(shared: Arc<Shared>, keys: KeySelector, options: WatchOptions) -> WatchStream {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut catch_up = VecDeque::new();
    let start;
    let visible;
    {
        let mut guard = shared.lock();
        visible = shared.visible.load(Ordering::Acquire);
        let compact = guard.state.compact_rev;
        if options.start_revision > 0 && options.start_revision < compact {
            let err = StoreError::Compacted {
                requested: options.start_revision,
                compact_revision: compact,
            };
            return Box::pin(futures::stream::once(async move { Err(err) }));
        }
        start = if options.start_revision > 0 {
            options.start_revision
        } else {
            visible + 1
        };
        if start <= visible {
            let events = &guard.state.events;
            let from = events.partition_point(|e| e.rev < start);
            catch_up.extend(
                events
                    .range(from..)
                    .take_while(|e| e.rev <= visible)
                    .filter(|e| wanted(&keys, &options, e))
                    .cloned(),
            );
        }
        guard.watchers.retain(|w| !w.is_closed());
        guard.watchers.push(tx);
    }
    let progress = options.progress_notify.then(|| {
        let period = shared.options.progress_notify_interval;
        let mut iv = tokio::time::interval_at(Instant::now() + period, period);
        iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
        iv
    });
    Box::pin(EmbeddedWatch {
        shared,
        keys,
        options,
        start,
        catch_up,
        catch_up_rev: visible,
        rx,
        progress,
    })
}

fn wanted(keys: &KeySelector, options: &WatchOptions, e: &Event) -> bool {
    let filtered = match e.kind {
        EventKind::Put => options.filters.no_put,
        EventKind::Delete => options.filters.no_delete,
    };
    !filtered && keys.contains(&e.kv.key)
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

impl EmbeddedWatch {
    fn next_catch_up(&mut self) -> Option<WatchResponse> {
        if self.catch_up.is_empty() {
            return None;
        }
        let n = self.catch_up.len().min(CATCH_UP_CHUNK);
        let events: Vec<WatchEvent> = self
            .catch_up
            .drain(..n)
            .map(|e| to_watch_event(&e, self.options.prev_kv))
            .collect();
        let revision = if self.catch_up.is_empty() {
            self.catch_up_rev
        } else {
            events
                .last()
                .map_or(self.catch_up_rev, |e| e.kv.mod_revision)
        };
        Some(WatchResponse { revision, events })
    }

    fn filter_batch(&self, batch: &Batch) -> Option<WatchResponse> {
        let events: Vec<WatchEvent> = batch
            .iter()
            .filter(|e| e.rev >= self.start && wanted(&self.keys, &self.options, e))
            .map(|e| to_watch_event(e, self.options.prev_kv))
            .collect();
        if events.is_empty() {
            return None;
        }
        let revision = batch.last().map_or(0, |e| e.rev);
        Some(WatchResponse { revision, events })
    }

    fn delivered(&mut self, resp: WatchResponse) -> Poll<Option<Result<WatchResponse>>> {
        if let Some(iv) = &mut self.progress {
            iv.reset();
        }
        Poll::Ready(Some(Ok(resp)))
    }
}

impl Stream for EmbeddedWatch {
    type Item = Result<WatchResponse>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(resp) = this.next_catch_up() {
            return this.delivered(resp);
        }
        loop {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(batch)) => {
                    if let Some(resp) = this.filter_batch(&batch) {
                        return this.delivered(resp);
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => break,
            }
        }
        let Some(iv) = &mut this.progress else {
            return Poll::Pending;
        };
        if iv.poll_tick(cx).is_pending() {
            return Poll::Pending;
        }
        // Every batch up to `rev` was sent before `rev` became visible: drain them first.
        let rev = this.shared.visible.load(Ordering::Acquire);
        loop {
            match this.rx.try_recv() {
                Ok(batch) => {
                    if let Some(resp) = this.filter_batch(&batch) {
                        return this.delivered(resp);
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => return Poll::Ready(None),
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        Poll::Ready(Some(Ok(WatchResponse {
            revision: rev,
            events: Vec::new(),
        })))
    }
}
