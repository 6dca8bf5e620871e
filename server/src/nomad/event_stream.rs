//! `GET /v1/event/stream`: Nomad's event stream, newline-delimited JSON fed by a store watch
//! on `/nomos/`. Each store revision that makes events the caller may see and subscribed to
//! is one line, `{"Index": N, "Events": [...]}`; a `{}` line goes out every
//! [`StreamConfig::heartbeat`] so idle connections stay open.
//!
//! - What is subscribed: [`super::event_topics`]; how a change becomes an event:
//!   [`super::event_payloads`].
//! - Who sees what: the watch's events pass [`crate::events::Visibility`] first (jobs,
//!   allocations, deployments, evaluations and services by `read-job` in their namespace,
//!   nodes by `node` read); the stream ends when the caller's token expires.
//! - `index=N` resumes from revision N (included); an index the store has compacted away
//!   answers 410 before the stream starts. No `index`: changes from now on.
//! - At most [`MAX_STREAMS`] streams are open at once; one more answers 429.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::{Stream, StreamExt};
use nomos_store::{KeySelector, StoreError, WatchOptions, WatchResponse};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::event_payloads::to_event;
use super::event_topics::{Event, Subscription};
use super::query::QueryOptions;
use crate::acl::Caller;
use crate::error::ServerError;
use crate::events::{token_expiry, Visibility};
use crate::AppState;

/// Most event streams open at once, across the server.
pub const MAX_STREAMS: usize = 256;
/// How often an idle stream writes `{}`.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// The server's budget of open streams and their heartbeat interval.
#[derive(Clone)]
pub struct StreamConfig {
    budget: Arc<Semaphore>,
    capacity: usize,
    pub heartbeat: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig::new(MAX_STREAMS, HEARTBEAT)
    }
}

impl StreamConfig {
    /// At most `streams` open at once, each writing `{}` every `heartbeat` (tests).
    pub fn new(streams: usize, heartbeat: Duration) -> Self {
        StreamConfig {
            budget: Arc::new(Semaphore::new(streams)),
            capacity: streams,
            heartbeat,
        }
    }

    fn admit(&self) -> Result<OwnedSemaphorePermit, ServerError> {
        self.budget.clone().try_acquire_owned().map_err(|_| {
            ServerError::Busy(format!(
                "too many event streams are open (at most {}); retry later",
                self.capacity
            ))
        })
    }
}

/// One line of the stream.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Batch {
    index: i64,
    events: Vec<Event>,
}

/// `GET /v1/event/stream`.
pub async fn stream(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryOptions,
) -> Result<Response, ServerError> {
    let subscription = Subscription::parse(&q)?;
    let permit = st.streams.admit()?;
    let start_revision = match q.index {
        Some(index) if index > 0 => resume_from(&st, index).await?,
        _ => 0,
    };
    let options = WatchOptions {
        start_revision,
        prev_kv: true,
        ..WatchOptions::default()
    };
    let watch = st
        .store
        .watch(KeySelector::prefix(nomos_store::keys::ROOT), options)
        .await?;
    let visibility = Visibility::new(st.clone(), caller.acl.clone());
    let converter = st.clone();
    let batches = watch
        .take_while(|item| std::future::ready(end_on_error(item)))
        .filter_map(|item| std::future::ready(item.ok()))
        .then(move |resp| {
            let (visibility, st, subscription) =
                (visibility.clone(), converter.clone(), subscription.clone());
            async move { lines(&st, &visibility, &subscription, resp).await }
        })
        .flat_map(futures::stream::iter);
    let body = futures::stream::select(batches, heartbeats(st.streams.heartbeat))
        .map(move |line| {
            let _held = &permit;
            Ok::<_, std::convert::Infallible>(line)
        })
        .take_until(futures::future::select(
            Box::pin(st.closed()),
            Box::pin(async move { token_expiry(&caller).await }),
        ));
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Extension(crate::Unbuffered),
        Body::from_stream(body),
    )
        .into_response())
}

/// The revision to watch from for `index`: 410 when the store no longer holds it.
async fn resume_from(st: &AppState, index: i64) -> Result<i64, ServerError> {
    let status = st.store.status().await?;
    if index < status.compact_revision {
        return Err(ServerError::Store(StoreError::Compacted {
            requested: index,
            compact_revision: status.compact_revision,
        }));
    }
    Ok(index)
}

/// Whether the stream goes on after `item`: a watch error (the store compacted past it, an
/// outage) ends it, and the client resumes with the last index it saw.
fn end_on_error(item: &Result<WatchResponse, StoreError>) -> bool {
    if let Err(e) = item {
        tracing::info!(error = %e, "event stream ends: its watch failed");
    }
    item.is_ok()
}

/// `{}` every `every`, from one interval on.
fn heartbeats(every: Duration) -> impl Stream<Item = Bytes> + Send {
    futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(every).await;
        Some((Bytes::from_static(b"{}\n"), ()))
    })
}

/// The lines one watch response makes: a batch per revision with events the caller may see
/// and wants.
async fn lines(
    st: &AppState,
    visibility: &Visibility,
    subscription: &Subscription,
    resp: WatchResponse,
) -> Vec<Bytes> {
    let mut batches: Vec<Batch> = Vec::new();
    for ev in visibility.visible(resp).await.events {
        let event = match to_event(st, &ev).await {
            Ok(Some(e)) if subscription.wants(&e) => e,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, key = %ev.kv.key_str(), "event left out");
                continue;
            }
        };
        match batches.last_mut() {
            Some(b) if b.index == event.index => b.events.push(event),
            _ => batches.push(Batch {
                index: event.index,
                events: vec![event],
            }),
        }
    }
    batches
        .iter()
        .filter_map(|b| serde_json::to_vec(b).ok())
        .map(|mut line| {
            line.push(b'\n');
            Bytes::from(line)
        })
        .collect()
}
