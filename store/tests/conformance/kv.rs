//! Single-key and range operations: revisions, versions, prefixes, limits, past reads, deletes.

use std::sync::Arc;

use nomos_store::{
    DeleteOptions, KeySelector, PutOptions, RangeOptions, SortOrder, SortTarget, Store, StoreError,
};

use crate::support::{b, get, revision};

async fn put(store: &dyn Store, key: &str, value: &str) -> i64 {
    store
        .put(b(key), b(value), PutOptions::default())
        .await
        .unwrap()
        .revision
}

pub async fn a_fresh_store_starts_at_revision_1_and_each_write_adds_one(store: Arc<dyn Store>) {
    assert_eq!(revision(&*store).await, 1);
    let r1 = put(&*store, "a", "1").await;
    assert_eq!(r1, 2);
    let kv = get(&*store, "a").await.unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version, kv.lease),
        (2, 2, 1, 0)
    );
    assert_eq!(kv.value, b("1"));

    let resp = store
        .put(
            b("a"),
            b("2"),
            PutOptions {
                prev_kv: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(resp.revision, 3);
    assert_eq!(resp.prev_kv.unwrap().value, b("1"));
    let kv = get(&*store, "a").await.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));

    let resp = store
        .put(
            b("b"),
            b("x"),
            PutOptions {
                prev_kv: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(resp.prev_kv, None);
    assert_eq!(revision(&*store).await, 4);
    let r = store
        .range(KeySelector::key("missing"), RangeOptions::default())
        .await
        .unwrap();
    assert_eq!((r.revision, r.count, r.kvs.len(), r.more), (4, 0, 0, false));
}

pub async fn prefix_ranges_honour_limit_keys_only_count_only_and_sort(store: Arc<dyn Store>) {
    for i in 0..5 {
        put(&*store, &format!("p/{i}"), &format!("v{i}")).await;
    }
    put(&*store, "p", "parent").await;
    put(&*store, "q/0", "other").await;
    let all = store
        .range(KeySelector::prefix("p/"), RangeOptions::default())
        .await
        .unwrap();
    assert_eq!(all.count, 5);
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key_str().into_owned()).collect();
    assert_eq!(keys, ["p/0", "p/1", "p/2", "p/3", "p/4"]);

    let limited = store
        .range(
            KeySelector::prefix("p/"),
            RangeOptions {
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (limited.kvs.len(), limited.count, limited.more),
        (2, 5, true)
    );
    let exact = store
        .range(
            KeySelector::prefix("p/"),
            RangeOptions {
                limit: 5,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((exact.kvs.len(), exact.more), (5, false));

    let keys_only = store
        .range(
            KeySelector::prefix("p/"),
            RangeOptions {
                keys_only: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(keys_only
        .kvs
        .iter()
        .all(|kv| kv.value.is_empty() && kv.version == 1));

    let count_only = store
        .range(
            KeySelector::prefix("p/"),
            RangeOptions {
                count_only: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (count_only.kvs.len(), count_only.count, count_only.more),
        (0, 5, false)
    );

    let everything = store
        .range(KeySelector::prefix(""), RangeOptions::default())
        .await
        .unwrap();
    assert_eq!(everything.count, 7);

    let desc = store
        .range(
            KeySelector::prefix("p/"),
            RangeOptions {
                sort_order: SortOrder::Descend,
                sort_target: SortTarget::Key,
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let keys: Vec<_> = desc
        .kvs
        .iter()
        .map(|kv| kv.key_str().into_owned())
        .collect();
    assert_eq!(keys, ["p/4", "p/3"]);
    assert!(desc.more);

    let by_mod = store
        .range(
            KeySelector::prefix(""),
            RangeOptions {
                sort_order: SortOrder::Descend,
                sort_target: SortTarget::Mod,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_mod.kvs[0].key, b("q/0"));

    let range = store
        .range(
            KeySelector::Range {
                start: b("p/1"),
                end: b("p/3"),
            },
            RangeOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(range.count, 2);
    let from = store
        .range(
            KeySelector::Range {
                start: b("p/4"),
                end: vec![0],
            },
            RangeOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(from.count, 2, "p/4 and q/0");
    let backwards = store
        .range(
            KeySelector::Range {
                start: b("z"),
                end: b("a"),
            },
            RangeOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(backwards.count, 0);
}

pub async fn reads_at_a_past_revision_see_the_store_as_it_was(store: Arc<dyn Store>) {
    let r1 = put(&*store, "k", "one").await;
    let r2 = put(&*store, "k", "two").await;
    let r3 = store
        .delete(KeySelector::key("k"), DeleteOptions::default())
        .await
        .unwrap()
        .revision;
    put(&*store, "other", "x").await;
    let at = |rev| RangeOptions {
        revision: rev,
        ..Default::default()
    };
    let v1 = store.range(KeySelector::key("k"), at(r1)).await.unwrap();
    assert_eq!(v1.kvs[0].value, b("one"));
    assert_eq!(
        v1.revision,
        r3 + 1,
        "the header carries the current revision"
    );
    assert_eq!(
        store
            .range(KeySelector::key("k"), at(r2))
            .await
            .unwrap()
            .kvs[0]
            .value,
        b("two")
    );
    assert_eq!(
        store
            .range(KeySelector::key("k"), at(r3))
            .await
            .unwrap()
            .count,
        0
    );
    assert_eq!(
        store
            .range(KeySelector::prefix(""), at(r1 - 1))
            .await
            .unwrap()
            .count,
        0
    );
    let future = store
        .range(KeySelector::key("k"), at(r3 + 10))
        .await
        .unwrap_err();
    assert!(
        matches!(future, StoreError::FutureRevision { requested, .. } if requested == r3 + 10),
        "{future:?}"
    );
}

pub async fn deletes_remove_keys_and_a_recreated_key_starts_a_new_life(store: Arc<dyn Store>) {
    for k in ["d/a", "d/b", "d/c", "e"] {
        put(&*store, k, "v").await;
    }
    let before = revision(&*store).await;
    let none = store
        .delete(KeySelector::key("nothing"), DeleteOptions { prev_kv: true })
        .await
        .unwrap();
    assert_eq!(
        (none.deleted, none.revision, none.prev_kvs.len()),
        (0, before, 0)
    );
    assert_eq!(
        revision(&*store).await,
        before,
        "deleting nothing does not add a revision"
    );

    let one = store
        .delete(KeySelector::key("e"), DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!((one.deleted, one.revision), (1, before + 1));
    assert!(one.prev_kvs.is_empty());
    let prefix = store
        .delete(KeySelector::prefix("d/"), DeleteOptions { prev_kv: true })
        .await
        .unwrap();
    assert_eq!((prefix.deleted, prefix.revision), (3, before + 2));
    let keys: Vec<_> = prefix
        .prev_kvs
        .iter()
        .map(|kv| kv.key_str().into_owned())
        .collect();
    assert_eq!(keys, ["d/a", "d/b", "d/c"]);
    assert_eq!(
        store
            .range(KeySelector::prefix(""), RangeOptions::default())
            .await
            .unwrap()
            .count,
        0
    );

    let r = put(&*store, "e", "again").await;
    let kv = get(&*store, "e").await.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (r, r, 1));
}

pub async fn keys_with_slashes_unicode_and_high_bytes_round_trip(store: Arc<dyn Store>) {
    let keys: Vec<Vec<u8>> = vec![
        b("/nomos/jobs/default/wéb-日本語"),
        b("/nomos/jobs/default/a b/c"),
        b("/"),
        b("//double//slash/"),
        vec![0xff, 0xfe, 0x00, 0x01],
        vec![0xff, 0xff],
        "🚀/emoji".as_bytes().to_vec(),
    ];
    for (i, k) in keys.iter().enumerate() {
        store
            .put(
                k.clone(),
                format!("value-{i}-ü").into_bytes(),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        let r = store
            .range(KeySelector::Key(k.clone()), RangeOptions::default())
            .await
            .unwrap();
        assert_eq!(r.kvs[0].value, format!("value-{i}-ü").into_bytes());
    }
    let jobs = store
        .range(
            KeySelector::prefix("/nomos/jobs/default/"),
            RangeOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(jobs.count, 2);
    let high = store
        .range(KeySelector::Prefix(vec![0xff]), RangeOptions::default())
        .await
        .unwrap();
    assert_eq!(high.count, 2);
    let all_ff = store
        .range(
            KeySelector::Prefix(vec![0xff, 0xff]),
            RangeOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        all_ff.count, 1,
        "a prefix of only 0xff bytes reaches to the last key"
    );
    let slash = store
        .range(KeySelector::prefix("/"), RangeOptions::default())
        .await
        .unwrap();
    assert_eq!(slash.count, 4);
}

pub async fn values_up_to_the_request_limit_round_trip(store: Arc<dyn Store>) {
    let limit = nomos_store::validate::MAX_REQUEST_BYTES;
    let big: Vec<u8> = (0..limit - 1024).map(|i| (i % 251) as u8).collect();
    store
        .put(b("big"), big.clone(), PutOptions::default())
        .await
        .unwrap();
    let kv = get(&*store, "big").await.unwrap();
    assert_eq!(kv.value.len(), big.len());
    assert!(kv.value == big);
    let too_big = vec![7u8; limit + 1];
    let err = store
        .put(b("too-big"), too_big, PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::RequestTooLarge { .. }), "{err:?}");
    assert!(get(&*store, "too-big").await.is_none());
}

pub async fn put_can_keep_the_current_value_or_lease(store: Arc<dyn Store>) {
    let lease = store.lease_grant(60, 0).await.unwrap().id;
    store
        .put(
            b("k"),
            b("v1"),
            PutOptions {
                lease,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .put(
            b("k"),
            Vec::new(),
            PutOptions {
                ignore_value: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let kv = get(&*store, "k").await.unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"v1"[..], 0, 2),
        "ignore_value keeps the value only"
    );
    store
        .put(
            b("k"),
            b("v2"),
            PutOptions {
                lease,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .put(
            b("k"),
            b("v3"),
            PutOptions {
                ignore_lease: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let kv = get(&*store, "k").await.unwrap();
    assert_eq!((kv.value.as_slice(), kv.lease), (&b"v3"[..], lease));
    let err = store
        .put(
            b("missing"),
            Vec::new(),
            PutOptions {
                ignore_value: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)), "{err:?}");
}

conformance!(
    a_fresh_store_starts_at_revision_1_and_each_write_adds_one,
    prefix_ranges_honour_limit_keys_only_count_only_and_sort,
    reads_at_a_past_revision_see_the_store_as_it_was,
    deletes_remove_keys_and_a_recreated_key_starts_a_new_life,
    keys_with_slashes_unicode_and_high_bytes_round_trip,
    values_up_to_the_request_limit_round_trip,
    put_can_keep_the_current_value_or_lease,
);
