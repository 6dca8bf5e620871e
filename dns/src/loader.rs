//! Keeps the catalogue in memory, as a small state machine: list `/nomos/services/` at a
//! revision and publish the [`Catalogue`] whole; watch `/nomos/servicesindex` (put in the same
//! transaction as every catalogue change) from the next revision; on a change, list again.
//! A failed list or watch (a compacted revision, a lost connection, a watch that ends) is
//! logged and waited out with exponential backoff, 100 ms doubling to 5 s and reset by a good
//! list, then it starts over from a fresh list.
//!
//! The published value is `None` until the first list succeeds (queries then get SERVFAIL,
//! never an answer from a half-read catalogue). A registration that does not decode is
//! skipped with a warning naming its key.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nomos_api::service::ServiceRegistration;
use nomos_store::keys::{SERVICES_INDEX, SERVICES_PREFIX};
use nomos_store::{KeySelector, KeyValue, RangeOptions, Store, StoreError, WatchOptions};
use tokio::sync::watch;

use crate::catalogue::Catalogue;
use crate::DnsError;

/// Where the loader publishes each catalogue.
pub type Publish = watch::Sender<Option<Arc<Catalogue>>>;

/// First wait after a failure.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two tries.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Loads the catalogue from `store` into `publish`, and again on every change, until dropped.
pub async fn run(store: Arc<dyn Store>, publish: Publish) {
    let mut backoff = Backoff::default();
    loop {
        let Err(e) = follow(&*store, &publish, &mut backoff).await;
        let wait = backoff.next_wait();
        tracing::warn!(error = %e, retry_in = ?wait, "DNS: the service catalogue stopped updating; listing it again");
        tokio::time::sleep(wait).await;
    }
}

/// Lists the catalogue, then lists it again on every change of the index key; returns only
/// the error that stopped it.
async fn follow(
    store: &dyn Store,
    publish: &Publish,
    backoff: &mut Backoff,
) -> Result<Infallible, DnsError> {
    let mut revision = load(store, publish).await?;
    backoff.reset();
    let watch_failed = |source| DnsError::WatchFailed {
        key: SERVICES_INDEX,
        source,
    };
    let options = WatchOptions {
        start_revision: revision + 1,
        ..Default::default()
    };
    let mut changes = store
        .watch(KeySelector::key(SERVICES_INDEX), options)
        .await
        .map_err(watch_failed)?;
    loop {
        let changed = match changes.next().await {
            Some(Ok(batch)) => batch.events.iter().any(|e| e.kv.mod_revision > revision),
            Some(Err(e)) => return Err(watch_failed(e)),
            None => {
                return Err(watch_failed(StoreError::Unavailable(
                    "the watch ended".into(),
                )))
            }
        };
        // A list at or past the event's revision includes it; events it already covered are
        // skipped by the comparison above.
        if changed {
            revision = load(store, publish).await?;
        }
    }
}

/// Lists the catalogue and publishes it; returns the revision it was read at.
async fn load(store: &dyn Store, publish: &Publish) -> Result<i64, DnsError> {
    let listed = store
        .range(
            KeySelector::prefix(SERVICES_PREFIX),
            RangeOptions::default(),
        )
        .await
        .map_err(|source| DnsError::ListFailed {
            prefix: SERVICES_PREFIX,
            source,
        })?;
    let catalogue = Catalogue::new(listed.revision, listed.kvs.iter().filter_map(decode));
    tracing::debug!(
        revision = listed.revision,
        healthy = catalogue.len(),
        "DNS: service catalogue loaded"
    );
    publish.send_replace(Some(Arc::new(catalogue)));
    Ok(listed.revision)
}

/// A registration from its key and value; the key's namespace and service fill in fields the
/// value leaves empty.
fn decode(kv: &KeyValue) -> Option<ServiceRegistration> {
    let mut r: ServiceRegistration = match serde_json::from_slice(&kv.value) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(key = %kv.key_str(), error = %e, "DNS: skipping a service registration that does not decode");
            return None;
        }
    };
    let key = kv.key_str();
    let mut parts = key
        .strip_prefix(SERVICES_PREFIX)
        .unwrap_or("")
        .splitn(3, '/');
    if let (Some(ns), Some(svc)) = (parts.next(), parts.next()) {
        if r.namespace.is_empty() {
            r.namespace = ns.to_string();
        }
        if r.service_name.is_empty() {
            r.service_name = svc.to_string();
        }
    }
    Some(r)
}

/// Exponential backoff between failed tries.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    /// The wait before the next try; each call doubles the one after, up to the maximum.
    fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(BACKOFF_MAX);
        wait
    }

    fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

#[cfg(test)]
mod tests;
