//! Compaction: history before the compaction revision is gone, the rest stays readable.

use std::sync::Arc;

use nomos_store::{DeleteOptions, KeySelector, PutOptions, RangeOptions, Store, StoreError};

use crate::support::{b, revision};

pub async fn compaction_discards_old_revisions_but_keeps_current_values(store: Arc<dyn Store>) {
    let r1 = store
        .put(b("k"), b("1"), PutOptions::default())
        .await
        .unwrap()
        .revision;
    let r2 = store
        .put(b("k"), b("2"), PutOptions::default())
        .await
        .unwrap()
        .revision;
    store
        .put(b("gone"), b("x"), PutOptions::default())
        .await
        .unwrap();
    store
        .delete(KeySelector::key("gone"), DeleteOptions::default())
        .await
        .unwrap();
    let r3 = store
        .put(b("k"), b("3"), PutOptions::default())
        .await
        .unwrap()
        .revision;
    store.compact(r2 + 1).await.unwrap();
    assert_eq!(store.status().await.unwrap().compact_revision, r2 + 1);

    let at = |rev| RangeOptions {
        revision: rev,
        ..Default::default()
    };
    let err = store
        .range(KeySelector::key("k"), at(r1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Compacted { requested, compact_revision } if requested == r1 && compact_revision == r2 + 1),
        "{err:?}"
    );
    let kept = store
        .range(KeySelector::key("k"), at(r2 + 1))
        .await
        .unwrap();
    assert_eq!(
        kept.kvs[0].value,
        b("2"),
        "the version as of the compaction revision stays readable"
    );
    assert_eq!(kept.kvs[0].version, 2);
    let now = store
        .range(KeySelector::prefix(""), RangeOptions::default())
        .await
        .unwrap();
    assert_eq!(now.count, 1);
    assert_eq!(
        (
            now.kvs[0].version,
            now.kvs[0].mod_revision,
            now.kvs[0].create_revision
        ),
        (3, r3, r1)
    );

    let again = store.compact(r2).await.unwrap_err();
    assert!(matches!(again, StoreError::Compacted { .. }), "{again:?}");
    let future = store
        .compact(revision(&*store).await + 5)
        .await
        .unwrap_err();
    assert!(
        matches!(future, StoreError::FutureRevision { .. }),
        "{future:?}"
    );
    // Writes go on after compaction, with versions continuing.
    store
        .put(b("k"), b("4"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        store
            .range(KeySelector::key("k"), RangeOptions::default())
            .await
            .unwrap()
            .kvs[0]
            .version,
        4
    );
}

conformance!(compaction_discards_old_revisions_but_keeps_current_values);
