//! Transactions: every compare target, branches, nesting, 128 operations, racing writers.

use std::sync::Arc;

use nomos_store::{
    Compare, CompareOp, CompareTarget, KeySelector, PutOptions, RangeOptions, Store, StoreError,
    Txn, TxnOp, TxnOpResponse,
};

use crate::support::{b, get, revision};

pub async fn compares_on_every_target_choose_the_branch(store: Arc<dyn Store>) {
    let lease = store.lease_grant(60, 0).await.unwrap().id;
    let r = store
        .put(
            b("k"),
            b("m"),
            PutOptions {
                lease,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .revision;
    let cases: Vec<(Compare, bool)> = vec![
        (Compare::value("k", CompareOp::Equal, "m"), true),
        (Compare::value("k", CompareOp::Greater, "a"), true),
        (Compare::value("k", CompareOp::Less, "a"), false),
        (Compare::value("k", CompareOp::NotEqual, "m"), false),
        (Compare::version("k", CompareOp::Equal, 1), true),
        (Compare::version("k", CompareOp::Greater, 1), false),
        (
            Compare::new("k", CompareOp::Equal, CompareTarget::CreateRevision(r)),
            true,
        ),
        (Compare::mod_revision("k", CompareOp::Less, r + 1), true),
        (Compare::mod_revision("k", CompareOp::NotEqual, r), false),
        (
            Compare::new("k", CompareOp::Equal, CompareTarget::Lease(lease)),
            true,
        ),
        (
            Compare::new("k", CompareOp::Equal, CompareTarget::Lease(0)),
            false,
        ),
    ];
    for (compare, expected) in cases {
        let resp = store
            .txn(
                Txn::new()
                    .when([compare.clone()])
                    .and_then([TxnOp::get("k")])
                    .or_else([TxnOp::get("k")]),
            )
            .await
            .unwrap();
        assert_eq!(resp.succeeded, expected, "{compare:?}");
        assert_eq!(resp.revision, r, "a read-only txn adds no revision");
    }
}

pub async fn compares_on_a_missing_key_see_zeroes_and_fail_on_values(store: Arc<dyn Store>) {
    let cases: Vec<(Compare, bool)> = vec![
        (Compare::version("nope", CompareOp::Equal, 0), true),
        (Compare::mod_revision("nope", CompareOp::Equal, 0), true),
        (
            Compare::new("nope", CompareOp::Equal, CompareTarget::CreateRevision(0)),
            true,
        ),
        (
            Compare::new("nope", CompareOp::Equal, CompareTarget::Lease(0)),
            true,
        ),
        (Compare::value("nope", CompareOp::Equal, ""), false),
        (Compare::value("nope", CompareOp::NotEqual, "x"), false),
    ];
    for (compare, expected) in cases {
        let resp = store.txn(Txn::new().when([compare.clone()])).await.unwrap();
        assert_eq!(resp.succeeded, expected, "{compare:?}");
    }
    // Create-if-absent, the idiom every controller uses.
    let create = |v: &'static str| {
        Txn::new()
            .when([Compare::version("once", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("once", v)])
    };
    assert!(store.txn(create("first")).await.unwrap().succeeded);
    assert!(!store.txn(create("second")).await.unwrap().succeeded);
    assert_eq!(get(&*store, "once").await.unwrap().value, b("first"));
}

pub async fn compares_over_a_range_must_hold_for_every_key(store: Arc<dyn Store>) {
    store
        .put(b("r/a"), b("1"), PutOptions::default())
        .await
        .unwrap();
    store
        .put(b("r/b"), b("1"), PutOptions::default())
        .await
        .unwrap();
    let mut all_one = Compare::value("r/", CompareOp::Equal, "1");
    all_one.range_end = Some(nomos_store::prefix_end(b"r/"));
    assert!(
        store
            .txn(Txn::new().when([all_one.clone()]))
            .await
            .unwrap()
            .succeeded
    );
    store
        .put(b("r/b"), b("2"), PutOptions::default())
        .await
        .unwrap();
    assert!(
        !store
            .txn(Txn::new().when([all_one]))
            .await
            .unwrap()
            .succeeded
    );
}

pub async fn a_txn_writes_atomically_in_one_revision_and_reads_its_own_writes(
    store: Arc<dyn Store>,
) {
    store
        .put(b("gone"), b("x"), PutOptions::default())
        .await
        .unwrap();
    let before = revision(&*store).await;
    let resp = store
        .txn(Txn::new().and_then([
            TxnOp::put("t/a", "1"),
            TxnOp::put("t/b", "2"),
            TxnOp::delete("gone"),
            TxnOp::Range(KeySelector::prefix("t/"), RangeOptions::default()),
        ]))
        .await
        .unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.revision, before + 1);
    let TxnOpResponse::Range(read) = &resp.responses[3] else {
        panic!("expected a range response")
    };
    assert_eq!(
        read.count, 2,
        "a range inside a txn sees the txn's earlier puts"
    );
    for k in ["t/a", "t/b"] {
        let kv = get(&*store, k).await.unwrap();
        assert_eq!(kv.mod_revision, before + 1);
    }
    assert!(get(&*store, "gone").await.is_none());

    // The failure branch, nested transactions.
    let resp = store
        .txn(
            Txn::new()
                .when([Compare::value("t/a", CompareOp::Equal, "nope")])
                .and_then([TxnOp::put("never", "x")])
                .or_else([TxnOp::Txn(Box::new(
                    Txn::new()
                        .when([Compare::value("t/a", CompareOp::Equal, "1")])
                        .and_then([TxnOp::put("nested", "yes")]),
                ))]),
        )
        .await
        .unwrap();
    assert!(!resp.succeeded);
    let TxnOpResponse::Txn(inner) = &resp.responses[0] else {
        panic!("expected a nested txn response")
    };
    assert!(inner.succeeded);
    assert!(get(&*store, "never").await.is_none());
    assert_eq!(get(&*store, "nested").await.unwrap().value, b("yes"));
    assert_eq!(resp.revision, before + 2);
}

pub async fn a_txn_holds_128_operations_and_refuses_129(store: Arc<dyn Store>) {
    let before = revision(&*store).await;
    let ops: Vec<TxnOp> = (0..128)
        .map(|i| TxnOp::put(format!("many/{i:03}"), format!("{i}")))
        .collect();
    let resp = store.txn(Txn::new().and_then(ops)).await.unwrap();
    assert_eq!(resp.responses.len(), 128);
    assert_eq!(resp.revision, before + 1);
    let all = store
        .range(KeySelector::prefix("many/"), RangeOptions::default())
        .await
        .unwrap();
    assert_eq!(all.count, 128);
    assert!(all
        .kvs
        .iter()
        .all(|kv| kv.mod_revision == before + 1 && kv.create_revision == before + 1));

    let ops: Vec<TxnOp> = (0..129)
        .map(|i| TxnOp::put(format!("over/{i}"), "x"))
        .collect();
    let err = store.txn(Txn::new().and_then(ops)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::TooManyOps { limit: 128, .. }),
        "{err:?}"
    );
    assert_eq!(revision(&*store).await, before + 1);
}

pub async fn a_txn_that_writes_one_key_twice_is_refused(store: Arc<dyn Store>) {
    let err = store
        .txn(Txn::new().and_then([TxnOp::put("d", "1"), TxnOp::put("d", "2")]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)), "{err:?}");
    let err = store
        .txn(Txn::new().and_then([TxnOp::delete("d"), TxnOp::put("d", "2")]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)), "{err:?}");
}

pub async fn two_writers_racing_on_a_compare_never_lose_an_update(store: Arc<dyn Store>) {
    store
        .put(b("counter"), b("0"), PutOptions::default())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let (mut wins, mut conflicts) = (0, 0);
            while wins < 40 {
                let kv = get(&*store, "counter").await.unwrap();
                let n: i64 = String::from_utf8(kv.value).unwrap().parse().unwrap();
                let resp = store
                    .txn(
                        Txn::new()
                            .when([Compare::mod_revision(
                                "counter",
                                CompareOp::Equal,
                                kv.mod_revision,
                            )])
                            .and_then([TxnOp::put("counter", (n + 1).to_string())]),
                    )
                    .await
                    .unwrap();
                if resp.succeeded {
                    wins += 1;
                } else {
                    conflicts += 1;
                }
            }
            (wins, conflicts)
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let kv = get(&*store, "counter").await.unwrap();
    assert_eq!(kv.value, b("80"));
    assert_eq!(kv.version, 81);
}

conformance!(
    compares_on_every_target_choose_the_branch,
    compares_on_a_missing_key_see_zeroes_and_fail_on_values,
    compares_over_a_range_must_hold_for_every_key,
    a_txn_writes_atomically_in_one_revision_and_reads_its_own_writes,
    a_txn_holds_128_operations_and_refuses_129,
    a_txn_that_writes_one_key_twice_is_refused,
    two_writers_racing_on_a_compare_never_lose_an_update,
);
