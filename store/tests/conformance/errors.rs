//! Bad input gets a typed error from both backends, never a panic, and changes nothing.

use std::sync::Arc;

use nomos_store::validate::{MAX_KEY_BYTES, MAX_REQUEST_BYTES};
use nomos_store::{
    KeySelector, PutOptions, RangeOptions, Store, StoreError, Txn, TxnOp, WatchOptions,
};

use crate::support::{b, revision};

pub async fn bad_input_gets_typed_errors(store: Arc<dyn Store>) {
    let before = revision(&*store).await;
    let err = store
        .put(Vec::new(), b("v"), PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)), "{err:?}");
    let err = store
        .put(vec![b'k'; MAX_KEY_BYTES + 1], b("v"), PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::KeyTooLarge { .. }), "{err:?}");
    let err = store
        .range(KeySelector::Key(Vec::new()), RangeOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)), "{err:?}");
    let err = store
        .range(
            KeySelector::Range {
                start: Vec::new(),
                end: b("z"),
            },
            RangeOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)), "{err:?}");
    assert!(store
        .watch(KeySelector::Key(Vec::new()), WatchOptions::default())
        .await
        .is_err());
    let err = store
        .put(
            b("k"),
            b("v"),
            PutOptions {
                ignore_value: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)), "{err:?}");
    // Many values that are each fine but too large together.
    let chunk = vec![1u8; MAX_REQUEST_BYTES / 4];
    let ops: Vec<TxnOp> = (0..5)
        .map(|i| TxnOp::put(format!("big/{i}"), chunk.clone()))
        .collect();
    let err = store.txn(Txn::new().and_then(ops)).await.unwrap_err();
    assert!(matches!(err, StoreError::RequestTooLarge { .. }), "{err:?}");
    let err = store
        .put(
            b("k"),
            b("v"),
            PutOptions {
                lease: 999,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotFound(999)), "{err:?}");
    let err = store.lease_revoke(999).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseNotFound(999)), "{err:?}");
    assert_eq!(revision(&*store).await, before, "nothing was written");
    assert!(!err.is_retryable());
}

conformance!(bad_input_gets_typed_errors);
