//! Unit tests of the keyring over an in-memory embedded store.

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use nomos_store::{EmbeddedStore, Store};

use super::*;
use crate::identity::{IdentityClaims, AUDIENCE};

fn store() -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::in_memory())
}

fn keyring(store: &Arc<dyn Store>) -> Keyring {
    Keyring::new(store.clone(), Kek::random().unwrap())
}

fn claims(now: i64) -> IdentityClaims {
    IdentityClaims {
        aud: vec![AUDIENCE.into()],
        sub: "global:default:web:g:srv:default".into(),
        nomad_namespace: "default".into(),
        nomad_job_id: "web".into(),
        nomad_allocation_id: "a1".into(),
        nomad_task: "srv".into(),
        nomos_group: "g".into(),
        nomos_node: String::new(),
        iat: now,
        nbf: now,
        exp: None,
        jti: "j1".into(),
    }
}

#[tokio::test]
async fn sealed_data_opens_only_with_the_same_associated_data() {
    let s = store();
    let k = keyring(&s);
    let sealed = k.encrypt(b"secret", b"nomad/jobs/web").await.unwrap();
    assert_eq!(sealed.key_id, k.active_key_id().await.unwrap());
    assert_eq!(
        k.decrypt(&sealed, b"nomad/jobs/web").await.unwrap(),
        b"secret"
    );
    let err = k.decrypt(&sealed, b"nomad/jobs/db").await.unwrap_err();
    assert!(matches!(err, ServerError::Decrypt(_)), "{err}");
    // Two seals of one plaintext differ (fresh nonces).
    let again = k.encrypt(b"secret", b"nomad/jobs/web").await.unwrap();
    assert_ne!(sealed.nonce, again.nonce);
}

#[tokio::test]
async fn tampered_sealed_data_is_refused() {
    let s = store();
    let k = keyring(&s);
    let sealed = k.encrypt(b"secret", b"p").await.unwrap();
    let mut ct = STANDARD.decode(&sealed.ciphertext).unwrap();
    ct[0] ^= 0x80;
    let cases = [
        Sealed {
            ciphertext: STANDARD.encode(&ct),
            ..sealed.clone()
        },
        Sealed {
            nonce: STANDARD.encode([0u8; 12]),
            ..sealed.clone()
        },
        Sealed {
            nonce: "not base64!".into(),
            ..sealed.clone()
        },
        Sealed {
            key_id: uuid::Uuid::new_v4().to_string(),
            ..sealed.clone()
        },
        Sealed {
            key_id: "../../etc".into(),
            ..sealed.clone()
        },
    ];
    for bad in cases {
        let err = k.decrypt(&bad, b"p").await.unwrap_err();
        assert!(matches!(err, ServerError::Decrypt(_)), "{bad:?}: {err}");
    }
}

#[tokio::test]
async fn the_store_holds_only_wrapped_keys_and_no_plaintext() {
    let s = store();
    let k = keyring(&s);
    let sealed = k.encrypt(b"top-secret-value", b"p").await.unwrap();
    let all = s
        .range(
            nomos_store::KeySelector::prefix("/nomos/"),
            Default::default(),
        )
        .await
        .unwrap();
    for kv in &all.kvs {
        let text = String::from_utf8_lossy(&kv.value);
        assert!(!text.contains("top-secret-value"));
    }
    assert!(!sealed.ciphertext.contains("top-secret"));
}

#[tokio::test]
async fn old_data_opens_after_a_rotation_and_new_data_uses_the_new_key() {
    let s = store();
    let k = keyring(&s);
    let old = k.encrypt(b"v1", b"p").await.unwrap();
    let first = k.active_key_id().await.unwrap();
    let meta = k.rotate().await.unwrap();
    assert_ne!(meta.key_id, first);
    assert_eq!(k.active_key_id().await.unwrap(), meta.key_id);
    assert_eq!(k.decrypt(&old, b"p").await.unwrap(), b"v1");
    let new = k.encrypt(b"v2", b"p").await.unwrap();
    assert_eq!(new.key_id, meta.key_id);
    let listed = k.list().await.unwrap();
    assert_eq!(listed.len(), 2);
    let state_of = |id: &str| listed.iter().find(|m| m.key_id == id).unwrap().state;
    assert_eq!(state_of(&first), KeyState::Inactive);
    assert_eq!(state_of(&meta.key_id), KeyState::Active);
}

#[tokio::test]
async fn the_active_key_cannot_be_removed_and_unknown_keys_are_not_found() {
    let s = store();
    let k = keyring(&s);
    let active = k.active_key_id().await.unwrap();
    let err = k.remove(&active).await.unwrap_err();
    assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST, "{err}");
    assert!(err.to_string().contains("active"), "{err}");
    let err = k
        .remove(&uuid::Uuid::new_v4().to_string())
        .await
        .unwrap_err();
    assert_eq!(err.status(), axum::http::StatusCode::NOT_FOUND, "{err}");
    let err = k.remove("not-a-uuid").await.unwrap_err();
    assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST, "{err}");
}

#[tokio::test]
async fn an_identity_verifies_and_its_claims_come_back() {
    let s = store();
    let k = keyring(&s);
    let now = 1_800_000_000;
    let jwt = k.sign_identity(&claims(now)).await.unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], k.active_key_id().await.unwrap().as_str());
    assert_eq!(k.verify_identity_at(&jwt, now).await.unwrap(), claims(now));
    let jwks = k.jwks();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
}

#[tokio::test]
async fn an_identity_signed_by_a_removed_key_is_refused() {
    let s = store();
    let k = keyring(&s);
    let now = 1_800_000_000;
    let old_id = k.active_key_id().await.unwrap();
    let jwt = k.sign_identity(&claims(now)).await.unwrap();
    k.rotate().await.unwrap();
    assert!(
        k.verify_identity_at(&jwt, now).await.is_ok(),
        "inactive keys still verify"
    );
    k.remove(&old_id).await.unwrap();
    let err = k.verify_identity_at(&jwt, now).await.unwrap_err();
    assert!(
        err.to_string().contains("not a key in the keyring"),
        "{err}"
    );
    assert_eq!(k.jwks()["keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn identities_outside_their_time_or_audience_are_refused() {
    let s = store();
    let k = keyring(&s);
    let now = 1_800_000_000;
    let cases = [
        (
            IdentityClaims {
                exp: Some(now - 3600),
                ..claims(now)
            },
            "expired",
        ),
        (
            IdentityClaims {
                nbf: now + 3600,
                ..claims(now)
            },
            "not valid before",
        ),
        (
            IdentityClaims {
                aud: vec!["someone-else".into()],
                ..claims(now)
            },
            "audience",
        ),
    ];
    for (c, want) in cases {
        let jwt = k.sign_identity(&c).await.unwrap();
        let err = k.verify_identity_at(&jwt, now).await.unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::FORBIDDEN);
        assert!(err.to_string().contains(want), "{err}");
    }
}

#[tokio::test]
async fn unsigned_forged_or_foreign_identities_are_refused() {
    let s = store();
    let k = keyring(&s);
    let now = 1_800_000_000;
    let jwt = k.sign_identity(&claims(now)).await.unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    let kid = k.active_key_id().await.unwrap();
    let header = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    // Another keyring (another cluster) signing with its own key under this kid.
    let foreign = keyring(&store());
    let foreign_jwt = foreign.sign_identity(&claims(now)).await.unwrap();
    let fparts: Vec<&str> = foreign_jwt.split('.').collect();
    let cases = [
        (
            format!(
                "{}.{}.",
                header(serde_json::json!({"alg": "none", "kid": kid})),
                parts[1]
            ),
            "not accepted",
        ),
        (
            format!(
                "{}.{}.{}",
                header(
                    serde_json::json!({"alg": "EdDSA", "kid": uuid::Uuid::new_v4().to_string()})
                ),
                parts[1],
                parts[2]
            ),
            "not a key in the keyring",
        ),
        (
            format!(
                "{}.{}.{}",
                header(serde_json::json!({"alg": "EdDSA", "kid": kid})),
                fparts[1],
                fparts[2]
            ),
            "signature",
        ),
        (foreign_jwt.clone(), "not a key in the keyring"),
    ];
    for (bad, want) in cases {
        let err = k.verify_identity_at(&bad, now).await.unwrap_err();
        assert!(err.to_string().contains(want), "{want}: {err}");
    }
}

#[tokio::test]
async fn a_kek_that_did_not_wrap_the_stored_keys_refuses_to_start_naming_its_source() {
    let s = store();
    keyring(&s).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.key");
    let other = Keyring::new(s.clone(), Kek::load_or_create(&path).unwrap());
    let err = other.start().await.unwrap_err();
    assert!(matches!(err, ServerError::KeyringUnwrap { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn two_keyrings_racing_to_start_make_one_active_key() {
    let s = store();
    let kek_bytes = kek::random_key().unwrap();
    let a = Keyring::new(s.clone(), Kek::from_bytes(&kek_bytes, "a".into()).unwrap());
    let b = Keyring::new(s.clone(), Kek::from_bytes(&kek_bytes, "b".into()).unwrap());
    let (ra, rb) = tokio::join!(a.start(), b.start());
    ra.unwrap();
    rb.unwrap();
    assert_eq!(
        a.active_key_id().await.unwrap(),
        b.active_key_id().await.unwrap()
    );
    assert_eq!(a.list().await.unwrap().len(), 1);
}
