//! Helpers shared by the conformance cases, and the macro that runs each case on both backends.

use std::time::Duration;

use futures::StreamExt;
use nomos_store::{
    KeySelector, KeyValue, RangeOptions, Store, WatchEvent, WatchResponse, WatchStream,
};

/// Runs each listed `async fn(Arc<dyn Store>)` of the enclosing module once per backend.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let s = nomos_store::test_util::TestStore::new(nomos_store::test_util::Backend::Embedded).await;
                    super::$case(s.store.clone()).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let s = nomos_store::test_util::TestStore::new(nomos_store::test_util::Backend::Etcd).await;
                    super::$case(s.store.clone()).await;
                }
            )*
        }
    };
}

pub fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub async fn get(store: &dyn Store, key: &str) -> Option<KeyValue> {
    store
        .range(KeySelector::key(key), RangeOptions::default())
        .await
        .unwrap()
        .kvs
        .into_iter()
        .next()
}

pub async fn revision(store: &dyn Store) -> i64 {
    store.status().await.unwrap().revision
}

/// Next response of a watch, failing the test if none arrives within `secs`.
pub async fn next_response(stream: &mut WatchStream, secs: u64) -> WatchResponse {
    match tokio::time::timeout(Duration::from_secs(secs), stream.next()).await {
        Ok(Some(Ok(resp))) => resp,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch response within {secs} s"),
    }
}

/// Collects exactly `n` events (skipping progress notifications).
pub async fn collect_events(stream: &mut WatchStream, n: usize, secs: u64) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while events.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(Ok(resp))) => events.extend(resp.events),
            Ok(Some(Err(e))) => panic!("watch failed after {} events: {e}", events.len()),
            Ok(None) => panic!("watch ended after {} events", events.len()),
            Err(_) => panic!("only {} of {n} events within {secs} s", events.len()),
        }
    }
    assert_eq!(events.len(), n, "more events than expected");
    events
}
