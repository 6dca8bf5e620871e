//! Watches on etcd: one logical watch runs in a task across reconnects and member failures,
//! resuming from the revision after the last one it delivered.

use std::time::Duration;

use etcd_client as ec;
use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::convert::{header_rev, kv_from};
use super::{members, watch_client, EtcdStore};
use crate::{EventKind, KeySelector, Result, StoreError, WatchEvent, WatchOptions, WatchResponse};

/// How etcd answered a new watch.
pub(super) enum WatchStart {
    /// Created at this revision.
    Created(i64),
    Cancelled(String),
    Closed,
}

/// Creates a watch on one member and waits for etcd to confirm it. A member without a leader
/// fails here (the client requires one), so the caller moves to the next member.
pub(super) async fn start_watch(
    client: &ec::Client,
    key: Vec<u8>,
    options: ec::WatchOptions,
) -> std::result::Result<(ec::WatchStream, WatchStart), ec::Error> {
    let mut stream = watch_client(client).watch(key, Some(options)).await?;
    loop {
        let start = match stream.message().await? {
            Some(resp) if resp.created() && resp.canceled() => {
                WatchStart::Cancelled(resp.cancel_reason().to_string())
            }
            Some(resp) if resp.created() => WatchStart::Created(header_rev(resp.header())),
            Some(_) => continue,
            None => WatchStart::Closed,
        };
        return Ok((stream, start));
    }
}

/// A watch stream: responses forwarded by the task that owns the etcd watch.
pub(super) struct EtcdWatch {
    pub(super) rx: mpsc::Receiver<Result<WatchResponse>>,
    pub(super) task: JoinHandle<()>,
}

impl Drop for EtcdWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for EtcdWatch {
    type Item = Result<WatchResponse>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

pub(super) fn watch_options(
    keys: &KeySelector,
    options: &WatchOptions,
    start: i64,
) -> (Vec<u8>, ec::WatchOptions) {
    let (key, end) = keys.to_etcd_range();
    let mut o = ec::WatchOptions::new();
    if !end.is_empty() {
        o = o.with_range(end);
    }
    if start > 0 {
        o = o.with_start_revision(start);
    }
    if options.prev_kv {
        o = o.with_prev_key();
    }
    if options.progress_notify {
        o = o.with_progress_notify();
    }
    let mut filters = Vec::new();
    if options.filters.no_put {
        filters.push(ec::WatchFilterType::NoPut);
    }
    if options.filters.no_delete {
        filters.push(ec::WatchFilterType::NoDelete);
    }
    if !filters.is_empty() {
        o = o.with_filters(filters);
    }
    (key, o)
}

/// Runs one logical watch across reconnects until its consumer goes away.
pub(super) async fn run_watch(
    store: EtcdStore,
    keys: KeySelector,
    options: WatchOptions,
    tx: mpsc::Sender<Result<WatchResponse>>,
    mut first: Option<ec::WatchStream>,
    // Next revision to deliver.
    mut next: i64,
) {
    let mut backoff = Duration::from_millis(50);
    let mut events: Vec<WatchEvent> = Vec::new();
    // The member the current stream runs on, when known (the first stream's is not).
    let mut member: Option<usize> = None;
    loop {
        let (key, o) = watch_options(&keys, &options, next);
        let attempt = match first.take() {
            Some(stream) => Ok(stream),
            None => match store.members.client().await {
                Ok((index, client)) => {
                    member = Some(index);
                    let started = watch_client(&client).watch(key, Some(o)).await;
                    if let Err(e) = &started {
                        if members::member_failed(e) {
                            store.members.failed(index).await;
                        }
                    }
                    started
                }
                Err(e) => Err(e),
            },
        };
        let mut stream = match attempt {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "etcd watch could not start; retrying");
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        loop {
            let msg = tokio::select! {
                _ = tx.closed() => return,
                msg = stream.message() => msg,
            };
            let resp = match msg {
                Ok(Some(resp)) => resp,
                Ok(None) => break,
                Err(e) => {
                    // The member went away or lost its leader: resume on the next one.
                    if let (Some(index), true) = (member, members::member_failed(&e)) {
                        store.members.failed(index).await;
                    }
                    break;
                }
            };
            backoff = Duration::from_millis(50);
            let revision = header_rev(resp.header());
            if resp.compact_revision() != 0 {
                let err = StoreError::Compacted {
                    requested: next,
                    compact_revision: resp.compact_revision(),
                };
                let _ = tx.send(Err(err)).await;
                return;
            }
            if resp.canceled() && resp.cancel_reason().contains("no leader") {
                if let Some(index) = member {
                    store.members.failed(index).await;
                }
                break;
            }
            if resp.canceled() {
                let _ = tx
                    .send(Err(StoreError::WatchCancelled(
                        resp.cancel_reason().to_string(),
                    )))
                    .await;
                return;
            }
            if resp.created() && resp.events().is_empty() {
                continue;
            }
            for e in resp.events() {
                let Some(kv) = e.kv() else { continue };
                events.push(WatchEvent {
                    kind: match e.event_type() {
                        ec::EventType::Put => EventKind::Put,
                        ec::EventType::Delete => EventKind::Delete,
                    },
                    kv: kv_from(kv),
                    prev_kv: e.prev_kv().map(kv_from),
                });
            }
            let batch = std::mem::take(&mut events);
            if let Some(last) = batch.last() {
                next = next.max(last.kv.mod_revision + 1);
            } else if revision >= next {
                // A progress notification: everything up to `revision` has been seen.
                next = revision + 1;
            }
            if tx
                .send(Ok(WatchResponse {
                    revision,
                    events: batch,
                }))
                .await
                .is_err()
            {
                return;
            }
        }
        events.clear();
        tracing::debug!(next, "etcd watch disconnected; resuming");
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
