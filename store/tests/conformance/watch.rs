//! Watches: events in revision order with previous values, history replay, filters, progress.

use std::sync::Arc;

use nomos_store::{
    DeleteOptions, EventKind, KeySelector, PutOptions, Store, StoreError, Txn, TxnOp, WatchFilters,
    WatchOptions,
};

use crate::support::{b, collect_events, next_response, revision};

pub async fn a_watch_delivers_puts_and_deletes_with_previous_values(store: Arc<dyn Store>) {
    let mut watch = store
        .watch(
            KeySelector::prefix("w/"),
            WatchOptions {
                prev_kv: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let r1 = store
        .put(b("w/a"), b("1"), PutOptions::default())
        .await
        .unwrap()
        .revision;
    store
        .put(b("elsewhere"), b("x"), PutOptions::default())
        .await
        .unwrap();
    store
        .put(b("w/a"), b("2"), PutOptions::default())
        .await
        .unwrap();
    store
        .txn(Txn::new().and_then([TxnOp::put("w/b", "3"), TxnOp::put("w/c", "4")]))
        .await
        .unwrap();
    let rd = store
        .delete(KeySelector::key("w/a"), DeleteOptions::default())
        .await
        .unwrap()
        .revision;

    let events = collect_events(&mut watch, 5, 10).await;
    let summary: Vec<(EventKind, String, i64)> = events
        .iter()
        .map(|e| (e.kind, e.kv.key_str().into_owned(), e.kv.mod_revision))
        .collect();
    assert_eq!(
        summary,
        vec![
            (EventKind::Put, "w/a".into(), r1),
            (EventKind::Put, "w/a".into(), r1 + 2),
            (EventKind::Put, "w/b".into(), r1 + 3),
            (EventKind::Put, "w/c".into(), r1 + 3),
            (EventKind::Delete, "w/a".into(), rd),
        ]
    );
    assert_eq!(events[0].prev_kv, None);
    assert_eq!(events[1].prev_kv.as_ref().unwrap().value, b("1"));
    assert_eq!(events[1].kv.version, 2);
    let deleted = &events[4];
    assert!(
        deleted.kv.value.is_empty() && deleted.kv.version == 0 && deleted.kv.create_revision == 0
    );
    assert_eq!(deleted.prev_kv.as_ref().unwrap().value, b("2"));
}

pub async fn a_watch_from_revision_1_replays_thousands_of_writes_in_order(store: Arc<dyn Store>) {
    const WRITERS: usize = 8;
    const EACH: usize = 250;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                store
                    .put(
                        format!("h/{w}/{}", i % 50).into_bytes(),
                        format!("{i}").into_bytes(),
                        PutOptions::default(),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let last = revision(&*store).await;
    assert_eq!(last, 1 + (WRITERS * EACH) as i64);
    let mut watch = store
        .watch(
            KeySelector::prefix("h/"),
            WatchOptions {
                start_revision: 1,
                prev_kv: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let events = collect_events(&mut watch, WRITERS * EACH, 60).await;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.kv.mod_revision,
            i as i64 + 2,
            "every revision once, in order"
        );
        assert_eq!(e.kv.version > 1, e.prev_kv.is_some());
    }
    // A late write still arrives after the replay.
    let r = store
        .put(b("h/late"), b("x"), PutOptions::default())
        .await
        .unwrap()
        .revision;
    let more = collect_events(&mut watch, 1, 10).await;
    assert_eq!(more[0].kv.mod_revision, r);
}

pub async fn a_watch_from_a_compacted_revision_reports_compacted(store: Arc<dyn Store>) {
    for i in 0..10 {
        store
            .put(b("c/k"), format!("{i}").into_bytes(), PutOptions::default())
            .await
            .unwrap();
    }
    let current = revision(&*store).await;
    store.compact(current - 2).await.unwrap();
    let mut watch = store
        .watch(
            KeySelector::prefix("c/"),
            WatchOptions {
                start_revision: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let item = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        futures::StreamExt::next(&mut watch),
    )
    .await
    .expect("the compacted watch answers");
    match item {
        Some(Err(StoreError::Compacted {
            compact_revision, ..
        })) => assert_eq!(compact_revision, current - 2),
        other => panic!("expected a compacted error, got {other:?}"),
    }
    // Watching from the compaction revision itself still works.
    let mut watch = store
        .watch(
            KeySelector::prefix("c/"),
            WatchOptions {
                start_revision: current - 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let events = collect_events(&mut watch, 3, 10).await;
    assert_eq!(events[0].kv.mod_revision, current - 2);
}

pub async fn filters_leave_out_puts_or_deletes(store: Arc<dyn Store>) {
    let no_put = WatchOptions {
        filters: WatchFilters {
            no_put: true,
            no_delete: false,
        },
        ..Default::default()
    };
    let mut deletes = store
        .watch(KeySelector::prefix("f/"), no_put)
        .await
        .unwrap();
    store
        .put(b("f/a"), b("1"), PutOptions::default())
        .await
        .unwrap();
    store
        .delete(KeySelector::key("f/a"), DeleteOptions::default())
        .await
        .unwrap();
    let events = collect_events(&mut deletes, 1, 10).await;
    assert_eq!(events[0].kind, EventKind::Delete);
}

pub async fn an_idle_watch_gets_progress_notifications_with_the_current_revision(
    store: Arc<dyn Store>,
) {
    store
        .put(b("idle/x"), b("1"), PutOptions::default())
        .await
        .unwrap();
    store
        .put(b("busy/x"), b("1"), PutOptions::default())
        .await
        .unwrap();
    let current = revision(&*store).await;
    let mut watch = store
        .watch(
            KeySelector::prefix("idle/"),
            WatchOptions {
                progress_notify: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let resp = next_response(&mut watch, 15).await;
    assert!(resp.is_progress_notify(), "{resp:?}");
    assert_eq!(resp.revision, current);
}

pub async fn dropping_a_watch_stream_cancels_it(store: Arc<dyn Store>) {
    for _ in 0..50 {
        let watch = store
            .watch(KeySelector::prefix("x/"), WatchOptions::default())
            .await
            .unwrap();
        drop(watch);
    }
    let mut watch = store
        .watch(KeySelector::key("x/k"), WatchOptions::default())
        .await
        .unwrap();
    let r = store
        .put(b("x/k"), b("1"), PutOptions::default())
        .await
        .unwrap()
        .revision;
    assert_eq!(
        collect_events(&mut watch, 1, 10).await[0].kv.mod_revision,
        r
    );
}

conformance!(
    a_watch_delivers_puts_and_deletes_with_previous_values,
    a_watch_from_revision_1_replays_thousands_of_writes_in_order,
    a_watch_from_a_compacted_revision_reports_compacted,
    filters_leave_out_puts_or_deletes,
    an_idle_watch_gets_progress_notifications_with_the_current_revision,
    dropping_a_watch_stream_cancels_it,
);
