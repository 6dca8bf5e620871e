//! The embedded store's watch memory limits: catch-up from old revisions is streamed in
//! bounded chunks under one store-wide replay budget, and a watcher whose consumer does not
//! keep up is moved to catch-up instead of queueing without limit or holding up writers.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nomos_store::embedded::WatchLimits;
use nomos_store::{
    EmbeddedOptions, EmbeddedStore, KeySelector, PutOptions, Store, StoreError, WatchOptions,
    WatchStream,
};

/// Only a guard against a hang: every test finishes far sooner, even on a loaded machine.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn store_with(limits: WatchLimits) -> Arc<EmbeddedStore> {
    Arc::new(EmbeddedStore::in_memory_with(EmbeddedOptions {
        watch_limits: limits,
        ..Default::default()
    }))
}

async fn put_many(store: &EmbeddedStore, from: usize, count: usize, value_len: usize) -> i64 {
    let mut last = 0;
    for i in from..from + count {
        let key = format!("k/{i:06}").into_bytes();
        let value = vec![b'v'; value_len];
        last = store
            .put(key, value, PutOptions::default())
            .await
            .expect("put")
            .revision;
    }
    last
}

async fn watch_from(store: &EmbeddedStore, start_revision: i64) -> WatchStream {
    let options = WatchOptions {
        start_revision,
        ..Default::default()
    };
    store
        .watch(KeySelector::prefix("k/"), options)
        .await
        .expect("watch")
}

/// Reads `stream` until it has seen revision `last`, checking that revisions only increase;
/// returns them.
async fn revisions_through(stream: &mut WatchStream, last: i64) -> Vec<i64> {
    let mut seen = Vec::new();
    while seen.last().copied().unwrap_or(0) < last {
        let resp = stream.next().await.expect("open").expect("no error");
        for e in resp.events {
            if let Some(&prev) = seen.last() {
                assert!(
                    e.kv.mod_revision > prev,
                    "{} after {prev}",
                    e.kv.mod_revision
                );
            }
            seen.push(e.kv.mod_revision);
        }
        // A consumer that takes its time: others get to run between its responses.
        tokio::task::yield_now().await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_from_revision_1_each_get_the_whole_history_within_the_replay_budget() {
    let limits = WatchLimits {
        replay_chunk_bytes: 4 * 1024,
        replay_budget_bytes: 24 * 1024,
        ..Default::default()
    };
    let budget = limits.replay_budget_bytes;
    let store = store_with(limits);
    let first = put_many(&store, 0, 1, 200).await;
    let history_end = put_many(&store, 1, 1499, 200).await;
    let watchers = 48;
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut stream = watch_from(&store, first).await;
        tasks.push(tokio::spawn(async move {
            revisions_through(&mut stream, history_end + 200).await
        }));
    }
    // Writes go on while they replay: each watcher must move from catch-up to live exactly.
    let end = put_many(&store, 1500, 200, 200).await;
    assert_eq!(end, history_end + 200);
    let want: Vec<i64> = (first..=end).collect();
    for task in tasks {
        let got = tokio::time::timeout(HANG_GUARD, task)
            .await
            .expect("replay finishes")
            .expect("watcher task");
        assert_eq!(got, want, "every event exactly once, in order");
    }
    let stats = store.watch_replay_stats();
    assert!(stats.peak_bytes > 0, "replay was counted");
    assert!(
        stats.peak_bytes <= budget,
        "peak {} over the budget {budget}",
        stats.peak_bytes
    );
    assert_eq!(stats.budget_bytes, budget);
    assert_eq!(
        stats.buffered_bytes, 0,
        "released once the watchers are gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_nobody_reads_holds_up_no_writer_and_later_gets_every_event_in_order() {
    let limits = WatchLimits {
        live_queue_bytes: 8 * 1024,
        ..Default::default()
    };
    let store = store_with(limits.clone());
    let mut ignored = watch_from(&store, 0).await;
    let mut reader = watch_from(&store, 0).await;
    let first = put_many(&store, 0, 1, 100).await;
    // Far more than the slow watcher's queue holds; none of these may wait for it.
    let last = tokio::time::timeout(HANG_GUARD, put_many(&store, 1, 999, 300))
        .await
        .expect("writes are not held up by an unread watcher");
    assert!(
        store.watch_live_queued_bytes() <= 2 * limits.live_queue_bytes,
        "the unread watcher's queue stays within its limit"
    );
    let want: Vec<i64> = (first..=last).collect();
    assert_eq!(revisions_through(&mut reader, last).await, want);
    // The slow one was moved to catch-up and is served from the history, without a gap.
    assert_eq!(revisions_through(&mut ignored, last).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_the_history_was_compacted_past_is_told_compacted() {
    let store = store_with(WatchLimits {
        live_queue_bytes: 2 * 1024,
        ..Default::default()
    });
    let mut slow = watch_from(&store, 0).await;
    let first = put_many(&store, 0, 1, 100).await;
    let last = put_many(&store, 1, 199, 100).await;
    store.compact(last).await.expect("compact");
    let mut seen = Vec::new();
    let err = loop {
        match tokio::time::timeout(HANG_GUARD, slow.next()).await {
            Ok(Some(Ok(resp))) => seen.extend(resp.events.iter().map(|e| e.kv.mod_revision)),
            Ok(Some(Err(err))) => break err,
            Ok(None) => panic!("ended without an error"),
            Err(_) => panic!("no answer"),
        }
    };
    assert!(
        matches!(err, StoreError::Compacted { compact_revision, .. } if compact_revision == last),
        "{err:?}"
    );
    // What it was given before falling behind came in order, from the start.
    let want: Vec<i64> = (first..first + seen.len() as i64).collect();
    assert_eq!(seen, want);
    assert!(
        slow.next().await.is_none(),
        "the stream ends after the error"
    );
}
