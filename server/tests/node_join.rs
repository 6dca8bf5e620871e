//! Node join tokens over HTTP: made by management only, stored hashed, spent once; the join's
//! failure paths (embedded store, unknown, used, expired or other-node tokens, already joined
//! names, bad fields, big bodies). A stand-in [`StaticAccess`] plays etcd; the real etcd users
//! are tested end to end in `e2e/tests/etcd_node_join.rs`.

mod acl_support;
mod common;

use std::sync::Arc;

use acl_support::{acl_server, bootstrap, call, expect};
use common::TestServer;
use nomos_server::join::{JoinTokenRecord, StaticAccess};
use nomos_server::ServerConfig;
use serde_json::{json, Value};

async fn server_with_access() -> TestServer {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    TestServer::start_with_config(
        |mut s| {
            s.node_access = Some(Arc::new(StaticAccess));
            s
        },
        config,
    )
    .await
}

async fn new_token(srv: &TestServer, body: Value) -> String {
    let (code, resp) = srv.post("/v1/node/join-tokens", body).await;
    assert_eq!(code, 200, "{resp}");
    resp["token"].as_str().expect("a token").to_string()
}

async fn join(srv: &TestServer, token: &str, node: &str) -> (u16, Value) {
    srv.post("/v1/node/join", json!({"token": token, "node": node}))
        .await
}

#[tokio::test]
async fn on_the_embedded_store_a_join_is_refused_and_the_token_stays_unspent() {
    let srv = TestServer::start().await;
    let token = new_token(&srv, json!({})).await;
    let (code, body) = join(&srv, &token, "n1").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.as_str().unwrap().contains("embedded store"), "{body}");
    assert!(nomos_server::join::token_exists(&*srv.store, &token)
        .await
        .unwrap());
}

#[tokio::test]
async fn a_token_is_stored_hashed_and_joins_once() {
    let srv = server_with_access().await;
    let token = new_token(&srv, json!({"ttl_secs": 600})).await;
    let stored = srv
        .store
        .range(
            nomos_store::KeySelector::prefix(nomos_store::keys::JOIN_TOKENS_PREFIX),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(stored.kvs.len(), 1);
    let raw = String::from_utf8_lossy(&stored.kvs[0].value).to_string();
    let key = stored.kvs[0].key_str().to_string();
    assert!(
        !raw.contains(&token) && !key.contains(&token),
        "the secret is kept only as its hash: {key} {raw}"
    );

    let (code, creds) = join(&srv, &token, "n1").await;
    assert_eq!(code, 200, "{creds}");
    assert_eq!(creds["etcd_user"], "nomos-node-n1");
    assert!(creds["etcd_password"].as_str().unwrap().len() >= 32);
    let record = srv.read_json("/nomos/nodejoins/n1").await.expect("joined");
    assert_eq!(record["etcd_user"], "nomos-node-n1");

    let (code, again) = join(&srv, &token, "n2").await;
    assert_eq!(code, 403, "a spent token: {again}");
}

#[tokio::test]
async fn unknown_expired_and_other_node_tokens_get_the_same_403() {
    let srv = server_with_access().await;
    let (code, unknown) = join(&srv, "nomos-join-made-up", "n1").await;
    assert_eq!(code, 403, "{unknown}");

    let expired = json!({"node": null, "created_at_ms": 1, "expires_at_ms": 2});
    let secret = "nomos-join-expired";
    let key = nomos_store::keys::join_token(&nomos_server::acl::secret_hash(secret));
    srv.put_json(&key, &expired).await;
    let (code, old) = join(&srv, secret, "n1").await;
    assert_eq!(code, 403, "{old}");
    assert!(
        srv.read_json(&key).await.is_none(),
        "expired tokens are deleted"
    );

    let for_n2 = new_token(&srv, json!({"node": "n2"})).await;
    let (code, other) = join(&srv, &for_n2, "n1").await;
    assert_eq!(code, 403, "{other}");
    assert_eq!(unknown, old);
    assert_eq!(old, other, "no hint which");
    let (code, ok) = join(&srv, &for_n2, "n2").await;
    assert_eq!(code, 200, "the token is still good for its node: {ok}");
}

#[tokio::test]
async fn a_joined_name_rejoins_only_with_a_token_made_for_it() {
    let srv = server_with_access().await;
    let first = new_token(&srv, json!({})).await;
    let (code, _) = join(&srv, &first, "n1").await;
    assert_eq!(code, 200);

    let any = new_token(&srv, json!({})).await;
    let (code, refused) = join(&srv, &any, "n1").await;
    assert_eq!(code, 409, "{refused}");
    assert!(refused.as_str().unwrap().contains("-node n1"), "{refused}");
    assert!(nomos_server::join::token_exists(&*srv.store, &any)
        .await
        .unwrap());

    let named = new_token(&srv, json!({"node": "n1"})).await;
    let (code, creds) = join(&srv, &named, "n1").await;
    assert_eq!(code, 200, "{creds}");
}

#[tokio::test]
async fn bad_fields_and_big_bodies_are_client_errors_naming_the_field() {
    let srv = server_with_access().await;
    for (body, field) in [
        (json!({"node": "a/b"}), "node"),
        (json!({"ttl_secs": 0}), "ttl_secs"),
        (json!({"ttl_secs": 99_999_999}), "ttl_secs"),
        (json!({"nodes": "x"}), "nodes"),
    ] {
        let (code, resp) = srv.post("/v1/node/join-tokens", body.clone()).await;
        assert_eq!(code, 400, "{body}: {resp}");
        assert!(resp.as_str().unwrap().contains(field), "{body}: {resp}");
    }
    let (code, resp) = join(&srv, "", "n1").await;
    assert_eq!(
        (code, resp.as_str()),
        (400, Some("field `token` is required"))
    );
    let (code, resp) = join(&srv, "t", "../x").await;
    assert_eq!(code, 400, "{resp}");
    let big = "x".repeat(8 * 1024);
    let (code, resp) = join(&srv, &big, "n1").await;
    assert_eq!(code, 413, "{resp}");
}

#[tokio::test]
async fn with_acls_on_only_management_makes_tokens_and_anyone_may_join() {
    let srv = acl_server().await;
    let (code, _) = call(&srv, "POST", "/v1/node/join-tokens", None, Some(json!({}))).await;
    assert_eq!(code, 403);
    let root = bootstrap(&srv).await;
    let made = expect(
        &srv,
        200,
        "POST",
        "/v1/node/join-tokens",
        Some(&root),
        Some(json!({"node": "n1"})),
    )
    .await;
    let token = made["token"].as_str().unwrap();
    // Anonymous: the route is public, and this server is on the embedded store.
    let (code, text) = call(
        &srv,
        "POST",
        "/v1/node/join",
        None,
        Some(json!({"token": token, "node": "n1"})),
    )
    .await;
    assert_eq!(code, 400, "{text}");
}

#[test]
fn the_stored_record_holds_no_secret() {
    let r = JoinTokenRecord {
        node: Some("n1".into()),
        created_at_ms: 1,
        expires_at_ms: 2,
    };
    let text = serde_json::to_string(&r).unwrap();
    assert_eq!(text, r#"{"node":"n1","created_at_ms":1,"expires_at_ms":2}"#);
}
