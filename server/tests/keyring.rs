//! The servers' keyring across servers and over HTTP (rotation, listing, removal, ACLs,
//! `/.well-known/jwks.json`), and the workload identity loop over an embedded store.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use nomos_server::acl::AclConfig;
use nomos_server::identity::{self, AllocIdentities};
use nomos_server::keyring::Kek;
use nomos_server::{AppState, ServerConfig, ServerError};
use nomos_store::{EmbeddedStore, KeySelector, PutOptions, Store};
use serde_json::{json, Value};

/// Polls `check` every 20 ms for up to 5 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..250 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

fn shared_kek(bytes: &[u8; 32], name: &str) -> Kek {
    Kek::from_bytes(bytes, name.to_string()).unwrap()
}

#[tokio::test]
async fn two_servers_on_one_store_agree_on_the_active_key_after_a_rotation_on_one() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let bytes = [42u8; 32];
    let a = AppState::with_store(store.clone()).with_keyring_key(shared_kek(&bytes, "a"));
    let b = AppState::with_store(store.clone()).with_keyring_key(shared_kek(&bytes, "b"));
    a.keyring.start().await.unwrap();
    b.keyring.start().await.unwrap();
    let first = b.keyring.active_key_id().await.unwrap();
    assert_eq!(a.keyring.active_key_id().await.unwrap(), first);
    let sealed_before = b.keyring.encrypt(b"v", b"path").await.unwrap();

    let rotated = a.keyring.rotate().await.unwrap();
    assert_ne!(rotated.key_id, first);
    eventually("server b follows the rotation", || async {
        b.keyring.active_key_id().await.unwrap() == rotated.key_id
    })
    .await;
    // What b seals now, a opens; what b sealed before, a still opens.
    let sealed_after = b.keyring.encrypt(b"w", b"path").await.unwrap();
    assert_eq!(sealed_after.key_id, rotated.key_id);
    assert_eq!(
        a.keyring.decrypt(&sealed_after, b"path").await.unwrap(),
        b"w"
    );
    assert_eq!(
        a.keyring.decrypt(&sealed_before, b"path").await.unwrap(),
        b"v"
    );
    // b's public keys include the new one without a restart.
    let jwks = b.keyring.jwks();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&rotated.key_id.as_str()), "{jwks}");
}

#[tokio::test]
async fn a_server_with_another_key_file_refuses_to_start_naming_the_file() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let first_file = dir.path().join("a/keyring.key");
    let a = AppState::with_store(store.clone())
        .with_keyring_key(Kek::load_or_create(&first_file).unwrap());
    a.keyring.start().await.unwrap();

    // The same file (copied to the second server) works.
    let b = AppState::with_store(store.clone())
        .with_keyring_key(Kek::load_or_create(&first_file).unwrap());
    b.keyring.start().await.unwrap();

    let wrong_file = dir.path().join("b/keyring.key");
    let c = AppState::with_store(store.clone())
        .with_keyring_key(Kek::load_or_create(&wrong_file).unwrap());
    let err = c.keyring.start().await.unwrap_err();
    assert!(matches!(err, ServerError::KeyringUnwrap { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&wrong_file.display().to_string()), "{text}");
    assert!(text.contains("same keyring key file"), "{text}");
}

#[tokio::test]
async fn rotate_list_and_remove_over_http_in_nomads_shapes() {
    let srv = TestServer::start().await;
    let (code, keys) = srv.get("/v1/operator/keyring/keys").await;
    assert_eq!(code, 200, "{keys}");
    assert_eq!(keys.as_array().unwrap().len(), 1);
    let first = keys[0]["KeyID"].as_str().unwrap().to_string();
    assert_eq!(keys[0]["State"], "active");
    assert_eq!(keys[0]["Algorithm"], "aes256-gcm");
    assert!(keys[0]["CreateTime"].as_i64().unwrap() > 0);

    let resp = srv
        .client
        .put(srv.url("/v1/operator/keyring/rotate"))
        .send()
        .await
        .unwrap();
    let (code, rotated) = common::decode(resp).await;
    assert_eq!(code, 200, "{rotated}");
    let second = rotated["Key"]["KeyID"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    let (code, _) = srv.post("/v1/operator/keyring/rotate", json!({})).await;
    assert_eq!(code, 200, "POST rotates too");

    let (_, keys) = srv.get("/v1/operator/keyring/keys").await;
    let states: Vec<(String, String)> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["KeyID"].as_str().unwrap().into(),
                k["State"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(states.len(), 3);
    assert_eq!(states.iter().filter(|(_, s)| s == "active").count(), 1);
    let active = states
        .iter()
        .find(|(_, s)| s == "active")
        .unwrap()
        .0
        .clone();

    let (code, body) = srv
        .delete(&format!("/v1/operator/keyring/key/{active}"))
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.as_str().unwrap().contains("active"), "{body}");
    let (code, body) = srv.delete("/v1/operator/keyring/key/not-a-uuid").await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = srv
        .delete(&format!(
            "/v1/operator/keyring/key/{}",
            uuid::Uuid::new_v4()
        ))
        .await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = srv
        .delete(&format!("/v1/operator/keyring/key/{first}"))
        .await;
    assert_eq!(code, 200, "{body}");
    let (_, keys) = srv.get("/v1/operator/keyring/keys").await;
    assert_eq!(keys.as_array().unwrap().len(), 2);

    let (code, jwks) = srv.get("/.well-known/jwks.json").await;
    assert_eq!(code, 200, "{jwks}");
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        !kids.contains(&first.as_str()),
        "removed key still published: {jwks}"
    );
    assert!(kids.contains(&active.as_str()), "{jwks}");
    srv.stop().await;
}

async fn call(
    srv: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let mut req = srv.client.request(method, srv.url(path));
    if let Some(t) = token {
        req = req.header("X-Nomad-Token", t);
    }
    common::decode(req.json(&json!({})).send().await.unwrap()).await
}

/// A client token whose one policy has `rules`.
async fn token_with(srv: &TestServer, root: &str, name: &str, rules: &str) -> String {
    let mut req = srv.client.post(srv.url(&format!("/v1/acl/policy/{name}")));
    req = req
        .header("X-Nomad-Token", root)
        .json(&json!({"Name": name, "Rules": rules}));
    let (code, body) = common::decode(req.send().await.unwrap()).await;
    assert_eq!(code, 200, "{body}");
    let req = srv
        .client
        .post(srv.url("/v1/acl/token"))
        .header("X-Nomad-Token", root)
        .json(&json!({"Name": name, "Type": "client", "Policies": [name]}));
    let (code, body) = common::decode(req.send().await.unwrap()).await;
    assert_eq!(code, 200, "{body}");
    body["SecretID"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn keyring_rotation_needs_operator_write_and_listing_operator_read() {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        acl: AclConfig { enabled: true },
        ..ServerConfig::default()
    };
    let srv = TestServer::start_with_config(|s| s, config).await;
    let (code, boot) = srv.post("/v1/acl/bootstrap", json!({})).await;
    assert_eq!(code, 200, "{boot}");
    let root = boot["SecretID"].as_str().unwrap().to_string();
    let reader = token_with(
        &srv,
        &root,
        "op-read",
        "operator {\n  policy = \"read\"\n}\n",
    )
    .await;
    let writer = token_with(
        &srv,
        &root,
        "op-write",
        "operator {\n  policy = \"write\"\n}\n",
    )
    .await;
    let jobs = token_with(
        &srv,
        &root,
        "jobs",
        "namespace \"*\" {\n  policy = \"write\"\n}\n",
    )
    .await;

    use reqwest::Method;
    for (token, want) in [
        (None, 403),
        (Some(jobs.as_str()), 403),
        (Some(reader.as_str()), 403),
    ] {
        let (code, body) = call(&srv, Method::PUT, "/v1/operator/keyring/rotate", token).await;
        assert_eq!(code, want, "rotate with {token:?}: {body}");
        let (code, body) = call(&srv, Method::POST, "/v1/operator/keyring/rotate", token).await;
        assert_eq!(code, want, "rotate with {token:?}: {body}");
    }
    let (code, body) = call(&srv, Method::GET, "/v1/operator/keyring/keys", None).await;
    assert_eq!(code, 403, "{body}");
    let (code, body) = call(
        &srv,
        Method::GET,
        "/v1/operator/keyring/keys",
        Some(&reader),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let key = body[0]["KeyID"].as_str().unwrap().to_string();
    let (code, body) = call(
        &srv,
        Method::DELETE,
        &format!("/v1/operator/keyring/key/{key}"),
        Some(&reader),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    let (code, body) = call(
        &srv,
        Method::PUT,
        "/v1/operator/keyring/rotate",
        Some(&writer),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(
        &srv,
        Method::POST,
        "/v1/operator/keyring/rotate",
        Some(&root),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // The public keys stay public, as in Nomad.
    let (code, body) = call(&srv, Method::GET, "/.well-known/jwks.json", None).await;
    assert_eq!(code, 200, "{body}");
    srv.stop().await;
}

async fn put(store: &dyn Store, key: &str, value: Value) {
    store
        .put(
            key.into(),
            serde_json::to_vec(&value).unwrap(),
            PutOptions::default(),
        )
        .await
        .unwrap();
}

async fn get(store: &dyn Store, key: &str) -> Option<Value> {
    let resp = store
        .range(KeySelector::key(key), Default::default())
        .await
        .unwrap();
    resp.kvs
        .first()
        .map(|kv| serde_json::from_slice(&kv.value).unwrap())
}

fn web_version() -> Value {
    json!({"id": "web", "name": "web", "namespace": "default", "groups": [
        {"name": "frontend", "count": 1, "tasks": [{"name": "server"}, {"name": "sidecar"}]},
        {"name": "other", "count": 1, "tasks": [{"name": "x"}]}
    ]})
}

fn alloc(id: &str, node: &str) -> Value {
    json!({"id": id, "namespace": "default", "job_id": "web", "job_version": 0,
           "task_group": "frontend", "name": "web.frontend[0]", "node": node,
           "desired_status": "run"})
}

#[tokio::test]
async fn the_identity_loop_signs_each_task_of_an_allocation_and_deletes_them_with_it() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    put(
        store.as_ref(),
        "/nomos/jobversions/default/web/00000000000000000000",
        web_version(),
    )
    .await;
    put(store.as_ref(), "/nomos/allocs/n1/a1", alloc("a1", "n1")).await;
    // An orphan from an allocation deleted while no server ran.
    put(
        store.as_ref(),
        "/nomos/identities/n1/gone",
        json!({"tasks": {}}),
    )
    .await;
    let state = AppState::with_store(store.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let loop_task = tokio::spawn(identity::run(state.clone(), async {
        let _ = stop_rx.await;
    }));

    let s = store.clone();
    eventually("a1's identities are written", || {
        let s = s.clone();
        async move { get(s.as_ref(), "/nomos/identities/n1/a1").await.is_some() }
    })
    .await;
    let s = store.clone();
    eventually("the orphan is deleted", || {
        let s = s.clone();
        async move { get(s.as_ref(), "/nomos/identities/n1/gone").await.is_none() }
    })
    .await;
    let value: AllocIdentities = serde_json::from_value(
        get(store.as_ref(), "/nomos/identities/n1/a1")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        value.tasks.keys().collect::<Vec<_>>(),
        ["server", "sidecar"]
    );
    let claims = state
        .keyring
        .verify_identity(&value.tasks["sidecar"])
        .await
        .unwrap();
    assert_eq!(claims.sub, "global:default:web:frontend:sidecar:default");
    assert_eq!(claims.nomad_allocation_id, "a1");
    assert_eq!(claims.nomad_task, "sidecar");
    assert_eq!(claims.nomad_job_id, "web");
    assert_eq!(claims.nomad_namespace, "default");

    // A new allocation while the loop runs; one whose job version is missing gets none.
    put(store.as_ref(), "/nomos/allocs/n2/a2", alloc("a2", "n2")).await;
    let mut orphan_version = alloc("a3", "n2");
    orphan_version["job_version"] = json!(7);
    put(store.as_ref(), "/nomos/allocs/n2/a3", orphan_version).await;
    let s = store.clone();
    eventually("a2's identities are written", || {
        let s = s.clone();
        async move { get(s.as_ref(), "/nomos/identities/n2/a2").await.is_some() }
    })
    .await;
    assert!(get(store.as_ref(), "/nomos/identities/n2/a3")
        .await
        .is_none());

    // The identity is not rewritten when the allocation changes.
    let before = get(store.as_ref(), "/nomos/identities/n1/a1").await;
    let mut changed = alloc("a1", "n1");
    changed["desired_description"] = json!("changed");
    put(store.as_ref(), "/nomos/allocs/n1/a1", changed).await;

    store
        .delete(KeySelector::key("/nomos/allocs/n1/a1"), Default::default())
        .await
        .unwrap();
    let s = store.clone();
    eventually("a1's identities are deleted with it", || {
        let s = s.clone();
        async move { get(s.as_ref(), "/nomos/identities/n1/a1").await.is_none() }
    })
    .await;
    assert!(before.is_some());
    assert!(get(store.as_ref(), "/nomos/identities/n2/a2")
        .await
        .is_some());

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(5), loop_task)
        .await
        .expect("the loop stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn two_identity_loops_on_one_store_write_one_identity_per_allocation() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    put(
        store.as_ref(),
        "/nomos/jobversions/default/web/00000000000000000000",
        web_version(),
    )
    .await;
    let bytes = [7u8; 32];
    let a = AppState::with_store(store.clone()).with_keyring_key(shared_kek(&bytes, "a"));
    let b = AppState::with_store(store.clone()).with_keyring_key(shared_kek(&bytes, "b"));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let ta = tokio::spawn(identity::run(a.clone(), stop(rx.clone())));
    let tb = tokio::spawn(identity::run(b.clone(), stop(rx)));
    for i in 0..10 {
        put(
            store.as_ref(),
            &format!("/nomos/allocs/n1/a{i}"),
            alloc(&format!("a{i}"), "n1"),
        )
        .await;
    }
    let s = store.clone();
    eventually("every allocation has identities", || {
        let s = s.clone();
        async move {
            let r = s
                .range(
                    KeySelector::prefix("/nomos/identities/"),
                    Default::default(),
                )
                .await
                .unwrap();
            r.kvs.len() == 10
        }
    })
    .await;
    // Each identity was written once (version 1): the create-only write let one server win.
    let r = store
        .range(
            KeySelector::prefix("/nomos/identities/"),
            Default::default(),
        )
        .await
        .unwrap();
    assert!(r.kvs.iter().all(|kv| kv.version == 1));
    let jwt: AllocIdentities = serde_json::from_slice(&r.kvs[0].value).unwrap();
    a.keyring
        .verify_identity(&jwt.tasks["server"])
        .await
        .unwrap();
    b.keyring
        .verify_identity(&jwt.tasks["server"])
        .await
        .unwrap();
    tx.send_replace(true);
    ta.await.unwrap();
    tb.await.unwrap();
}
