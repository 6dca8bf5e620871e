//! Leases: grant, keep-alive, time to live, revoke, list, and expiry while a watcher looks on.

use std::sync::Arc;

use nomos_store::{EventKind, KeySelector, PutOptions, Store, StoreError, WatchOptions};

use crate::support::{b, collect_events, get, revision};

pub async fn a_lease_can_be_granted_kept_alive_inspected_and_revoked(store: Arc<dyn Store>) {
    let grant = store.lease_grant(30, 0).await.unwrap();
    assert!(grant.id > 0);
    assert_eq!(grant.ttl, 30);
    let chosen = store.lease_grant(30, 4242).await.unwrap();
    assert_eq!(chosen.id, 4242);
    let err = store.lease_grant(30, 4242).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseExists(4242)), "{err:?}");
    let mut ids = store.lease_list().await.unwrap();
    ids.sort_unstable();
    let mut expected = vec![grant.id, 4242];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    store
        .put(
            b("l/b"),
            b("1"),
            PutOptions {
                lease: grant.id,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .put(
            b("l/a"),
            b("1"),
            PutOptions {
                lease: grant.id,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .put(b("l/c"), b("1"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(store.lease_keep_alive(grant.id).await.unwrap(), 30);
    let info = store.lease_time_to_live(grant.id, true).await.unwrap();
    assert_eq!(info.granted_ttl, 30);
    assert!(info.ttl > 25 && info.ttl <= 30, "{info:?}");
    assert_eq!(info.keys, vec![b("l/a"), b("l/b")]);

    let before = revision(&*store).await;
    store.lease_revoke(grant.id).await.unwrap();
    assert_eq!(
        revision(&*store).await,
        before + 1,
        "revoking deletes the lease's keys in one revision"
    );
    assert!(get(&*store, "l/a").await.is_none());
    assert!(get(&*store, "l/b").await.is_none());
    assert!(get(&*store, "l/c").await.is_some());
    let gone = store.lease_time_to_live(grant.id, false).await.unwrap();
    assert_eq!(gone.ttl, -1);
    assert!(
        matches!(store.lease_keep_alive(grant.id).await, Err(StoreError::LeaseNotFound(id)) if id == grant.id)
    );
    assert!(matches!(
        store.lease_revoke(grant.id).await,
        Err(StoreError::LeaseNotFound(_))
    ));
    let err = store
        .put(
            b("l/d"),
            b("1"),
            PutOptions {
                lease: grant.id,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::LeaseNotFound(id) if id == grant.id),
        "{err:?}"
    );
    // Revoking an empty lease adds no revision.
    let before = revision(&*store).await;
    store.lease_revoke(4242).await.unwrap();
    assert_eq!(revision(&*store).await, before);
}

pub async fn keys_vanish_when_their_lease_expires_while_watched(store: Arc<dyn Store>) {
    let lease = store.lease_grant(2, 0).await.unwrap();
    assert_eq!(lease.ttl, 2);
    let mut watch = store
        .watch(
            KeySelector::prefix("hb/"),
            WatchOptions {
                prev_kv: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .put(
            b("hb/node-1"),
            b("alive"),
            PutOptions {
                lease: lease.id,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .put(
            b("hb/node-2"),
            b("alive"),
            PutOptions {
                lease: lease.id,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let events = collect_events(&mut watch, 4, 20).await;
    assert_eq!(events[2].kind, EventKind::Delete);
    assert_eq!(events[3].kind, EventKind::Delete);
    assert_eq!(
        events[2].kv.mod_revision, events[3].kv.mod_revision,
        "one revision per expired lease"
    );
    assert_eq!(events[2].kv.key, b("hb/node-1"));
    assert_eq!(events[2].prev_kv.as_ref().unwrap().lease, lease.id);
    assert!(get(&*store, "hb/node-1").await.is_none());
    assert_eq!(
        store.lease_time_to_live(lease.id, false).await.unwrap().ttl,
        -1
    );
    assert!(matches!(
        store.lease_keep_alive(lease.id).await,
        Err(StoreError::LeaseNotFound(_))
    ));
}

pub async fn a_key_moved_to_another_lease_survives_the_first(store: Arc<dyn Store>) {
    let first = store.lease_grant(60, 0).await.unwrap().id;
    let second = store.lease_grant(60, 0).await.unwrap().id;
    store
        .put(
            b("m"),
            b("1"),
            PutOptions {
                lease: first,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .put(
            b("m"),
            b("2"),
            PutOptions {
                lease: second,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store.lease_revoke(first).await.unwrap();
    assert_eq!(get(&*store, "m").await.unwrap().lease, second);
    assert!(store
        .lease_time_to_live(first, true)
        .await
        .unwrap()
        .keys
        .is_empty());
    assert_eq!(
        store.lease_time_to_live(second, true).await.unwrap().keys,
        vec![b("m")]
    );
}

conformance!(
    a_lease_can_be_granted_kept_alive_inspected_and_revoked,
    keys_vanish_when_their_lease_expires_while_watched,
    a_key_moved_to_another_lease_survives_the_first,
);
