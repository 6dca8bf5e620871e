//! The Watch service: one bidirectional stream carries any number of watches.
//!
//! A session is a single stream, driven by the client reading it (no spawned tasks): it merges
//! the client's requests (create, cancel, progress) with the store's watch streams, keyed by
//! watch id, and emits etcd's responses in order: `created` before any event of a watch,
//! `canceled` after its last one.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use etcd_client::proto::{PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService};
use futures::{Stream, StreamExt};
use nomos_store::{KeySelector, Store, StoreError, WatchOptions, WatchResponse};
use tokio_stream::StreamMap;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Caller;
use crate::convert;
use crate::error::messages;
use crate::identity::Identity;

pub struct WatchService {
    pub store: Arc<dyn Store>,
    pub identity: Arc<Identity>,
    /// Flips to true when the server shuts down; every session then ends.
    pub closing: tokio::sync::watch::Receiver<bool>,
}

type Outbound = Pin<Box<dyn Stream<Item = Result<PbWatchResponse, Status>> + Send>>;

/// A store watch stream that yields `None` once when the store ends it.
type Feed = Pin<Box<dyn Stream<Item = Option<Result<WatchResponse, StoreError>>> + Send>>;

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = Outbound;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<Outbound>, Status> {
        let caller = Caller::of(&request)?;
        let session = Session {
            caller,
            store: self.store.clone(),
            identity: self.identity.clone(),
            closing: self.closing.clone(),
            inbound: Some(request.into_inner()),
            feeds: StreamMap::new(),
            min_revision: HashMap::new(),
            next_id: 0,
            pending: VecDeque::new(),
        };
        let stream = futures::stream::unfold(session, |mut session| async move {
            let item = session.next_response().await?;
            Some((item, session))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

struct Session {
    /// Who opened the stream: each watch needs read permission on its range.
    caller: Caller,
    store: Arc<dyn Store>,
    identity: Arc<Identity>,
    closing: tokio::sync::watch::Receiver<bool>,
    /// `None` once the client closed its sending side; the watches keep running, as in etcd.
    inbound: Option<Streaming<PbWatchRequest>>,
    feeds: StreamMap<i64, Feed>,
    /// For a watch that starts at a future revision: events below it are dropped.
    min_revision: HashMap<i64, i64>,
    next_id: i64,
    pending: VecDeque<Result<PbWatchResponse, Status>>,
}

impl Session {
    /// The next response to send; `None` ends the stream.
    async fn next_response(&mut self) -> Option<Result<PbWatchResponse, Status>> {
        loop {
            if let Some(resp) = self.pending.pop_front() {
                return Some(resp);
            }
            let has_feeds = !self.feeds.is_empty();
            tokio::select! {
                () = crate::closed(&mut self.closing) => return None,
                msg = next_request(&mut self.inbound), if self.inbound.is_some() => match msg {
                    Some(Ok(req)) => self.handle(req).await,
                    Some(Err(status)) => {
                        tracing::debug!(%status, "watch stream from client failed");
                        return None;
                    }
                    None => self.inbound = None,
                },
                Some((id, item)) = self.feeds.next(), if has_feeds => self.feed(id, item).await,
                // Nothing can happen any more; stay open until the client goes, as etcd does.
                () = futures::future::pending::<()>(), if self.inbound.is_none() && !has_feeds => {}
            }
        }
    }

    fn response(&self, revision: i64, watch_id: i64) -> PbWatchResponse {
        PbWatchResponse {
            header: self.identity.header(revision),
            watch_id,
            ..Default::default()
        }
    }

    async fn handle(&mut self, req: PbWatchRequest) {
        match req.request_union {
            Some(PbWatchRequestUnion::CreateRequest(create)) => {
                let options = WatchOptions {
                    start_revision: create.start_revision,
                    prev_kv: create.prev_kv,
                    progress_notify: create.progress_notify,
                    filters: convert::watch_filters(&create.filters),
                };
                if let Err(denied) = self.caller.read(&create.key, &create.range_end) {
                    self.refuse(create.watch_id, &denied).await;
                    return;
                }
                let sel = convert::selector(&create.key, &create.range_end);
                self.create(create.watch_id, sel, options).await;
            }
            Some(PbWatchRequestUnion::CancelRequest(cancel)) => {
                let id = cancel.watch_id;
                if self.feeds.remove(&id).is_some() {
                    self.min_revision.remove(&id);
                    let rev = revision(&self.store).await;
                    let mut resp = self.response(rev, id);
                    resp.canceled = true;
                    self.pending.push_back(Ok(resp));
                }
            }
            Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                // Not tied to one watch: etcd answers with watch id -1.
                let rev = revision(&self.store).await;
                let resp = self.response(rev, -1);
                self.pending.push_back(Ok(resp));
            }
            None => {}
        }
    }

    /// A watch the caller may not read: created and cancelled at once, as etcd answers it.
    async fn refuse(&mut self, requested_id: i64, denied: &Status) {
        let rev = revision(&self.store).await;
        let mut resp = self.response(rev, requested_id);
        resp.created = true;
        resp.canceled = true;
        // etcd puts the whole gRPC error text here.
        resp.cancel_reason = format!(
            "rpc error: code = PermissionDenied desc = {}",
            denied.message()
        );
        self.pending.push_back(Ok(resp));
    }

    fn assign_id(&mut self, requested: i64) -> Option<i64> {
        if requested != 0 {
            return (!self.feeds.contains_key(&requested)).then_some(requested);
        }
        while self.feeds.contains_key(&self.next_id) {
            self.next_id += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        Some(id)
    }

    async fn create(&mut self, requested_id: i64, sel: KeySelector, mut options: WatchOptions) {
        let current = revision(&self.store).await;
        let Some(id) = self.assign_id(requested_id) else {
            let mut resp = self.response(current, -1);
            resp.created = true;
            resp.canceled = true;
            resp.cancel_reason = messages::DUPLICATE_WATCH_ID.to_string();
            self.pending.push_back(Ok(resp));
            return;
        };
        let wanted_start = options.start_revision;
        // "From now" is pinned to the revision the created response reports.
        if options.start_revision <= 0 {
            options.start_revision = current + 1;
        }
        let mut min_revision = 0;
        let mut result = self.store.watch(sel.clone(), options.clone()).await;
        if let Err(StoreError::FutureRevision { .. }) = result {
            // etcd lets a watch start at a future revision: watch from now, drop what is older.
            min_revision = wanted_start;
            options.start_revision = revision(&self.store).await + 1;
            result = self.store.watch(sel, options).await;
        }
        let mut created = self.response(current, id);
        created.created = true;
        match result {
            Ok(stream) => {
                self.pending.push_back(Ok(created));
                let feed: Feed = Box::pin(
                    stream
                        .map(Some)
                        .chain(futures::stream::once(async { None })),
                );
                self.feeds.insert(id, feed);
                if min_revision > 0 {
                    self.min_revision.insert(id, min_revision);
                }
            }
            Err(err) => {
                self.pending.push_back(Ok(created));
                let end = self.end_response(id, &err, current);
                self.pending.push_back(Ok(end));
            }
        }
    }

    /// The response that ends a watch because its store stream failed.
    fn end_response(&self, id: i64, err: &StoreError, revision: i64) -> PbWatchResponse {
        let mut resp = self.response(revision, id);
        resp.canceled = true;
        match err {
            StoreError::Compacted {
                compact_revision, ..
            } => {
                resp.compact_revision = (*compact_revision).max(1);
                // etcd leaves the header's revision at 0 in this answer.
                if let Some(h) = resp.header.as_mut() {
                    h.revision = 0;
                }
            }
            other => resp.cancel_reason = crate::error::to_status(other).message().to_string(),
        }
        resp
    }

    async fn feed(&mut self, id: i64, item: Option<Result<WatchResponse, StoreError>>) {
        match item {
            Some(Ok(batch)) => {
                let progress = batch.events.is_empty();
                let min = self.min_revision.get(&id).copied().unwrap_or(0);
                let events: Vec<_> = batch
                    .events
                    .into_iter()
                    .filter(|e| e.kv.mod_revision >= min)
                    .map(convert::event)
                    .collect();
                if events.is_empty() && !progress {
                    return;
                }
                let mut resp = self.response(batch.revision, id);
                resp.events = events;
                self.pending.push_back(Ok(resp));
            }
            Some(Err(err)) => {
                self.feeds.remove(&id);
                self.min_revision.remove(&id);
                let revision = revision(&self.store).await;
                let resp = self.end_response(id, &err, revision);
                self.pending.push_back(Ok(resp));
            }
            None => {
                self.feeds.remove(&id);
                self.min_revision.remove(&id);
                let revision = revision(&self.store).await;
                let err = StoreError::WatchCancelled("the store ended the watch".to_string());
                let resp = self.end_response(id, &err, revision);
                self.pending.push_back(Ok(resp));
            }
        }
    }
}

async fn revision(store: &Arc<dyn Store>) -> i64 {
    store.status().await.map(|s| s.revision).unwrap_or_default()
}

async fn next_request(
    inbound: &mut Option<Streaming<PbWatchRequest>>,
) -> Option<Result<PbWatchRequest, Status>> {
    match inbound {
        Some(s) => s.next().await,
        None => None,
    }
}
