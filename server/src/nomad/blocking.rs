//! Blocking queries: a read with `index` waits until something it depends on changes after
//! that index, its `wait` runs out, or the server shuts down, then answers as a plain read.
//!
//! The index of an answer (its `X-Nomad-Index`) is the store revision it was read at, taken
//! before the read: never past what the answer holds, so a change the answer missed is always
//! after the index and wakes the next blocking query. A wake is no promise of a change, as in
//! Nomad: a write that leaves the answer as it was wakes it too.
//!
//! Each waiting query holds a store watch per prefix it depends on; at most
//! [`MAX_BLOCKED`] wait at once, and a query beyond that answers at once, as if its wait
//! had run out.

use std::sync::Arc;

use futures::stream::{self, StreamExt};
use nomos_store::{KeySelector, WatchOptions};
use tokio::sync::Semaphore;

use super::query::QueryOptions;
use crate::error::ServerError;
use crate::AppState;

/// Most blocking queries waiting at once, across the server.
pub const MAX_BLOCKED: usize = 2048;

/// The server's budget of waiting queries.
#[derive(Clone)]
pub struct BlockingBudget(Arc<Semaphore>);

impl Default for BlockingBudget {
    fn default() -> Self {
        BlockingBudget(Arc::new(Semaphore::new(MAX_BLOCKED)))
    }
}

impl BlockingBudget {
    /// A budget of `n` waiting queries (tests).
    pub fn with_capacity(n: usize) -> Self {
        BlockingBudget(Arc::new(Semaphore::new(n)))
    }
}

/// The index an answer read now will carry: the store's revision before reading.
pub async fn read_index(st: &AppState) -> Result<i64, ServerError> {
    Ok(st.store.status().await?.revision.max(1))
}

/// For a blocking query (`index` set), waits until a key under one of `prefixes` changes
/// after the index, the query's wait runs out, or the server shuts down; returns at once for
/// a plain read. A store that cannot watch (a compacted index, an outage) ends the wait: the
/// read that follows answers or fails on its own.
pub async fn wait_for_change(
    st: &AppState,
    q: &QueryOptions,
    prefixes: &[&str],
) -> Result<(), ServerError> {
    let Some(index) = q.index else {
        return Ok(());
    };
    let Ok(_permit) = st.blocking.0.clone().try_acquire_owned() else {
        tracing::debug!("blocking query answered at once: too many are waiting");
        return Ok(());
    };
    let mut watches = Vec::with_capacity(prefixes.len());
    for prefix in prefixes {
        let watch = st
            .store
            .watch(
                KeySelector::prefix(prefix.as_bytes().to_vec()),
                WatchOptions {
                    start_revision: index.saturating_add(1),
                    ..Default::default()
                },
            )
            .await;
        match watch {
            Ok(w) => watches.push(w),
            Err(_) => return Ok(()),
        }
    }
    // Progress notifications carry no change; an error or the end of a watch ends the wait.
    let mut changes = stream::select_all(watches)
        .filter(|r| std::future::ready(!r.as_ref().is_ok_and(|w| w.is_progress_notify())));
    tokio::select! {
        _ = changes.next() => {}
        _ = tokio::time::sleep(q.wait) => {}
        _ = st.closed() => {}
    }
    Ok(())
}
