//! Variables over HTTP (ACLs off: every caller is management): Nomad's shapes, check-and-set,
//! locks, path and size limits, sealing at rest, and re-encryption after a key rotation.

mod common;

use common::TestServer;
use nomos_server::AppState;
use serde_json::{json, Value};

/// A server and its state (for the keyring and `reencrypt_all`).
async fn server() -> (TestServer, AppState) {
    let mut state = None;
    let srv = TestServer::start_with(
        |s| {
            state = Some(s.clone());
            s
        },
        nomos_server::DEFAULT_BODY_LIMIT,
    )
    .await;
    (srv, state.expect("configured"))
}

/// `method path` with a JSON body (writes), answering (status, X-Nomad-Index, body).
async fn call(
    srv: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, i64, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = srv.client.request(method, srv.url(path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let index = resp
        .headers()
        .get("x-nomad-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    let (code, body) = common::decode(resp).await;
    (code, index, body)
}

async fn put(srv: &TestServer, path: &str, items: Value) -> (u16, Value) {
    let (code, _, body) = call(srv, "PUT", path, Some(json!({ "Items": items }))).await;
    (code, body)
}

fn index_of(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

#[tokio::test]
async fn a_variable_is_written_read_listed_and_deleted_in_nomads_shapes() {
    let (srv, _) = server().await;
    let (code, v) = put(&srv, "/v1/var/app/db", json!({"user": "me", "pass": "pw"})).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["Namespace"], "default");
    assert_eq!(v["Path"], "app/db");
    assert_eq!(v["Items"]["pass"], "pw");
    let created = index_of(&v, "CreateIndex");
    assert_eq!(created, index_of(&v, "ModifyIndex"));
    assert!(v["CreateTime"].as_i64().unwrap() > 1_600_000_000_000_000_000);

    let (code, index, got) = call(&srv, "GET", "/v1/var/app/db", None).await;
    assert_eq!(code, 200, "{got}");
    assert_eq!(index, created);
    assert_eq!(got["Items"], json!({"user": "me", "pass": "pw"}));

    let (code, v) = put(&srv, "/v1/var/app/db", json!({"user": "you"})).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(index_of(&v, "CreateIndex"), created);
    assert!(index_of(&v, "ModifyIndex") > created);

    put(&srv, "/v1/var/app/cache", json!({"k": "v"})).await;
    put(&srv, "/v1/var/other/x?namespace=prod", json!({"k": "v"})).await;
    let (code, index, list) = call(&srv, "GET", "/v1/vars?prefix=app/", None).await;
    assert_eq!(code, 200);
    assert!(index > 0);
    let paths: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["app/cache", "app/db"]);
    assert!(
        list[0].get("Items").is_none(),
        "lists show metadata only: {list}"
    );
    let (_, _, all) = call(&srv, "GET", "/v1/vars?namespace=*", None).await;
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    let (_, _, prod) = call(&srv, "GET", "/v1/vars?namespace=prod", None).await;
    assert_eq!(prod[0]["Namespace"], "prod");

    let (code, index, del) = call(&srv, "DELETE", "/v1/var/app/db", None).await;
    assert_eq!(code, 200, "{del}");
    assert_eq!(index_of(&del, "Index"), index);
    let (code, _, missing) = call(&srv, "GET", "/v1/var/app/db", None).await;
    assert_eq!(code, 404, "{missing}");
    // Deleting what is not there succeeds without a check index.
    let (code, _, _) = call(&srv, "DELETE", "/v1/var/app/db", None).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn a_lost_check_and_set_answers_409_with_the_current_variable() {
    let (srv, _) = server().await;
    let (code, v) = put(&srv, "/v1/var/cfg?cas=0", json!({"a": "1"})).await;
    assert_eq!(code, 200, "{v}");
    let first = index_of(&v, "ModifyIndex");
    // cas=0: only if it does not exist.
    let (code, conflict) = put(&srv, "/v1/var/cfg?cas=0", json!({"a": "2"})).await;
    assert_eq!(code, 409, "{conflict}");
    assert_eq!(index_of(&conflict, "ModifyIndex"), first);
    assert_eq!(conflict["Items"]["a"], "1");
    let (code, _) = put(
        &srv,
        &format!("/v1/var/cfg?cas={}", first + 100),
        json!({"a": "2"}),
    )
    .await;
    assert_eq!(code, 409);
    let (code, v) = put(&srv, &format!("/v1/var/cfg?cas={first}"), json!({"a": "2"})).await;
    assert_eq!(code, 200, "{v}");
    let second = index_of(&v, "ModifyIndex");
    // The old index is stale now.
    let (code, _) = put(&srv, &format!("/v1/var/cfg?cas={first}"), json!({"a": "3"})).await;
    assert_eq!(code, 409);
    let (code, _, conflict) = call(&srv, "DELETE", &format!("/v1/var/cfg?cas={first}"), None).await;
    assert_eq!(code, 409);
    assert_eq!(index_of(&conflict, "ModifyIndex"), second);
    let (code, _, _) = call(&srv, "DELETE", &format!("/v1/var/cfg?cas={second}"), None).await;
    assert_eq!(code, 200);
    // A check index on a missing variable conflicts with an empty one.
    let (code, missing) = put(&srv, "/v1/var/cfg?cas=7", json!({"a": "1"})).await;
    assert_eq!(code, 409);
    assert_eq!(missing["Path"], "cfg");
    assert_eq!(missing["ModifyIndex"], 0);
    assert!(missing.get("Items").is_none());
}

#[tokio::test]
async fn bad_paths_items_and_parameters_are_refused_naming_the_field() {
    let (srv, _) = server().await;
    let big = "x".repeat(64 * 1024);
    let long = format!("/v1/var/{}", "a".repeat(129));
    let cases: Vec<(&str, String, Option<Value>, u16, &str)> = vec![
        (
            "PUT",
            "/v1/var/a.b".into(),
            Some(json!({"Items": {"k": "v"}})),
            400,
            "holds '.'",
        ),
        (
            "PUT",
            "/v1/var/a/..x".into(),
            Some(json!({"Items": {"k": "v"}})),
            400,
            "holds '.'",
        ),
        (
            "PUT",
            "/v1/var/a%20b".into(),
            Some(json!({"Items": {"k": "v"}})),
            400,
            "holds ' '",
        ),
        (
            "PUT",
            "/v1/var/a/".into(),
            Some(json!({"Items": {"k": "v"}})),
            400,
            "empty segment",
        ),
        (
            "PUT",
            "/v1/var/a//b".into(),
            Some(json!({"Items": {"k": "v"}})),
            400,
            "empty segment",
        ),
        (
            "PUT",
            long.clone(),
            Some(json!({"Items": {"k": "v"}})),
            400,
            "found 129 bytes",
        ),
        ("GET", long, None, 400, "found 129 bytes"),
        (
            "PUT",
            "/v1/var/nomad/other".into(),
            Some(json!({"Items": {"k": "v"}})),
            400,
            "reserved",
        ),
        (
            "PUT",
            "/v1/var/a".into(),
            Some(json!({"Items": {}})),
            400,
            "Items: a variable needs at least one item",
        ),
        ("PUT", "/v1/var/a".into(), Some(json!({})), 400, "Items"),
        (
            "PUT",
            "/v1/var/a".into(),
            Some(json!({"Items": {"k": big}})),
            400,
            "limited to 65536 bytes",
        ),
        (
            "PUT",
            "/v1/var/a".into(),
            Some(json!({"Items": {"k": 1}})),
            400,
            "invalid type",
        ),
        (
            "PUT",
            "/v1/var/a".into(),
            Some(json!({"Path": "b", "Items": {"k": "v"}})),
            400,
            "Path: \"b\" in the body differs",
        ),
        (
            "PUT",
            "/v1/var/a?namespace=*".into(),
            Some(json!({"Items": {"k": "v"}})),
            400,
            "wildcard",
        ),
        (
            "PUT",
            "/v1/var/a?namespace=a/b".into(),
            Some(json!({"Items": {"k": "v"}})),
            400,
            "namespace",
        ),
        (
            "PUT",
            "/v1/var/a?cas=abc".into(),
            Some(json!({"Items": {"k": "v"}})),
            400,
            "cas: expected a modify index",
        ),
        (
            "PUT",
            "/v1/var/a?cas=-1".into(),
            Some(json!({"Items": {"k": "v"}})),
            400,
            "cas",
        ),
        (
            "PUT",
            "/v1/var/a?lock-acquire&lock-release".into(),
            Some(json!({})),
            400,
            "one lock operation",
        ),
        (
            "PUT",
            "/v1/var/a?lock-operation=steal".into(),
            Some(json!({})),
            400,
            "lock-operation",
        ),
        (
            "PUT",
            "/v1/var/a".into(),
            Some(json!({"Items": {"k": "v"}, "Lock": {"TTL": "20s"}})),
            400,
            "Lock: a write may carry only the lock's ID",
        ),
        ("DELETE", "/v1/var/a?cas=x".into(), None, 400, "cas"),
        (
            "GET",
            "/v1/vars?per_page=100000".into(),
            None,
            400,
            "per_page",
        ),
        ("GET", "/v1/vars?prefix=a.b".into(), None, 400, "prefix"),
        ("GET", "/v1/var/a?namespace=*".into(), None, 400, "wildcard"),
    ];
    for (method, path, body, want_code, want) in cases {
        let (code, _, answer) = call(&srv, method, &path, body).await;
        assert_eq!(code, want_code, "{method} {path}: {answer}");
        assert!(
            answer.as_str().unwrap_or_default().contains(want),
            "{method} {path}: {answer}"
        );
    }
    // Writes are JSON only (the guard in front of every route).
    let resp = srv
        .client
        .put(srv.url("/v1/var/a"))
        .header("content-type", "text/plain")
        .body(r#"{"Items":{"k":"v"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    // Nothing was written by any of them.
    let (_, _, list) = call(&srv, "GET", "/v1/vars?namespace=*", None).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn a_held_lock_refuses_other_acquirers_and_writes_without_its_id() {
    let (srv, _) = server().await;
    let (code, _, v) = call(
        &srv,
        "PUT",
        "/v1/var/leader?lock-acquire",
        Some(json!({"Lock": {"TTL": "30s"}})),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let id = v["Lock"]["ID"]
        .as_str()
        .expect("the holder sees its lock ID")
        .to_string();
    assert_eq!(v["Lock"]["TTL"], "30s");
    assert_eq!(v["Lock"]["LockDelay"], "15s");
    // Another acquirer, a write and a delete without the ID: 409 with the variable.
    let (code, _, conflict) =
        call(&srv, "PUT", "/v1/var/leader?lock-acquire", Some(json!({}))).await;
    assert_eq!(code, 409, "{conflict}");
    assert_eq!(conflict["Path"], "leader");
    let (code, _) = put(&srv, "/v1/var/leader", json!({"k": "v"})).await;
    assert_eq!(code, 409);
    let (code, _, _) = call(
        &srv,
        "PUT",
        "/v1/var/leader",
        Some(json!({"Items": {"k": "v"}, "Lock": {"ID": "wrong"}})),
    )
    .await;
    assert_eq!(code, 409);
    let (code, _, _) = call(&srv, "DELETE", "/v1/var/leader", None).await;
    assert_eq!(code, 409);
    // The holder writes with its ID.
    let (code, _, v) = call(
        &srv,
        "PUT",
        "/v1/var/leader",
        Some(json!({"Items": {"k": "v"}, "Lock": {"ID": id}})),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["Lock"]["ID"], id.as_str());
    // Renew: the holder only.
    let (code, _, _) = call(
        &srv,
        "PUT",
        "/v1/var/leader?lock-renew",
        Some(json!({"Lock": {"ID": "wrong"}})),
    )
    .await;
    assert_eq!(code, 409);
    let (code, _, renewed) = call(
        &srv,
        "PUT",
        "/v1/var/leader?lock-renew",
        Some(json!({"Lock": {"ID": id}})),
    )
    .await;
    assert_eq!(code, 200, "{renewed}");
    assert!(
        renewed.get("Items").is_none(),
        "a renewal shows metadata only: {renewed}"
    );
    // Release: the holder only, and without items.
    let (code, _, _) = call(
        &srv,
        "PUT",
        "/v1/var/leader?lock-release",
        Some(json!({"Lock": {"ID": "wrong"}})),
    )
    .await;
    assert_eq!(code, 409);
    let (code, _, e) = call(
        &srv,
        "PUT",
        "/v1/var/leader?lock-release",
        Some(json!({"Lock": {"ID": id}, "Items": {"k": "v"}})),
    )
    .await;
    assert_eq!(code, 400, "{e}");
    let (code, _, released) = call(
        &srv,
        "PUT",
        "/v1/var/leader?lock-release",
        Some(json!({"Lock": {"ID": id}})),
    )
    .await;
    assert_eq!(code, 200, "{released}");
    assert!(released.get("Lock").is_none());
    // The items stayed; writes need no ID any more.
    let (_, _, got) = call(&srv, "GET", "/v1/var/leader", None).await;
    assert_eq!(got["Items"]["k"], "v");
    let (code, _) = put(&srv, "/v1/var/leader", json!({"k": "w"})).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn lock_operations_check_their_input() {
    let (srv, _) = server().await;
    let cases: &[(&str, Value, u16, &str)] = &[
        (
            "/v1/var/l?lock-acquire",
            json!({"Lock": {"TTL": "1s"}}),
            400,
            "between 10s and 24h",
        ),
        (
            "/v1/var/l?lock-acquire",
            json!({"Lock": {"TTL": "25h"}}),
            400,
            "between 10s and 24h",
        ),
        (
            "/v1/var/l?lock-acquire",
            json!({"Lock": {"TTL": "soon"}}),
            400,
            "duration",
        ),
        (
            "/v1/var/l?lock-renew",
            json!({}),
            400,
            "Lock.ID: missing lock ID",
        ),
        (
            "/v1/var/l?lock-release",
            json!({"Lock": {}}),
            400,
            "Lock.ID: missing lock ID",
        ),
        (
            "/v1/var/l?lock-renew",
            json!({"Lock": {"ID": "x"}}),
            404,
            "not found",
        ),
    ];
    for (path, body, want_code, want) in cases {
        let (code, _, answer) = call(&srv, "PUT", path, Some(body.clone())).await;
        assert_eq!(code, *want_code, "{path} {body}: {answer}");
        assert!(answer.to_string().contains(want), "{path} {body}: {answer}");
    }
    // A variable without a lock: renew and release conflict.
    put(&srv, "/v1/var/l", json!({"k": "v"})).await;
    let (code, _, _) = call(
        &srv,
        "PUT",
        "/v1/var/l?lock-renew",
        Some(json!({"Lock": {"ID": "x"}})),
    )
    .await;
    assert_eq!(code, 409);
    let (code, _, _) = call(
        &srv,
        "PUT",
        "/v1/var/l?lock-release",
        Some(json!({"Lock": {"ID": "x"}})),
    )
    .await;
    assert_eq!(code, 409);
    // A lock may be taken on a new variable without items.
    let (code, _, v) = call(&srv, "PUT", "/v1/var/fresh?lock-acquire", Some(json!({}))).await;
    assert_eq!(code, 200, "{v}");
}

/// Moves the stored lock's TTL end of `path` to `ago_s` seconds in the past.
async fn age_lock(srv: &TestServer, path: &str, ago_s: i64) {
    let key = format!("/nomos/vars/default/{path}");
    let mut rec = srv.read_json(&key).await.expect("stored variable");
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    rec["Lock"]["Expires"] = json!(now - ago_s * 1_000_000_000);
    srv.put_json(&key, &rec).await;
}

#[tokio::test]
async fn an_expired_lock_can_be_taken_once_its_delay_has_passed() {
    let (srv, _) = server().await;
    let (_, _, v) = call(
        &srv,
        "PUT",
        "/v1/var/job?lock-acquire",
        Some(json!({"Items": {"k": "v"}})),
    )
    .await;
    let old = v["Lock"]["ID"].as_str().unwrap().to_string();
    // TTL ran out 5 s ago; the 15 s lock delay has not: still locked, and the holder lost it.
    age_lock(&srv, "job", 5).await;
    let (code, _, _) = call(&srv, "PUT", "/v1/var/job?lock-acquire", Some(json!({}))).await;
    assert_eq!(code, 409);
    let (code, _, _) = call(
        &srv,
        "PUT",
        "/v1/var/job?lock-renew",
        Some(json!({"Lock": {"ID": old}})),
    )
    .await;
    assert_eq!(code, 409);
    let (code, _) = put(&srv, "/v1/var/job", json!({"k": "x"})).await;
    assert_eq!(code, 409);
    // Delay over: a new holder takes it, the old ID no longer renews.
    age_lock(&srv, "job", 16).await;
    let (code, _, v) = call(&srv, "PUT", "/v1/var/job?lock-acquire", Some(json!({}))).await;
    assert_eq!(code, 200, "{v}");
    assert_ne!(v["Lock"]["ID"], old.as_str());
    let (code, _, _) = call(
        &srv,
        "PUT",
        "/v1/var/job?lock-renew",
        Some(json!({"Lock": {"ID": old}})),
    )
    .await;
    assert_eq!(code, 409);
    // Items were kept by an acquire that sent none.
    let (_, _, got) = call(&srv, "GET", "/v1/var/job", None).await;
    assert_eq!(got["Items"]["k"], "v");
}

#[tokio::test]
async fn the_store_holds_only_ciphertext_bound_to_its_path() {
    let (srv, _) = server().await;
    let secret = "hunter2-distinctive-7f3a9c";
    put(&srv, "/v1/var/app/secret", json!({"password": secret})).await;
    let raw = srv
        .read_json("/nomos/vars/default/app/secret")
        .await
        .unwrap();
    let text = raw.to_string();
    assert!(!text.contains(secret), "{text}");
    assert!(
        !text.contains("password"),
        "item names are sealed too: {text}"
    );
    assert_eq!(raw["Path"], "app/secret");
    assert!(raw["Data"]["ciphertext"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    // The sealed blob copied to another variable's key does not open there.
    put(&srv, "/v1/var/app/other", json!({"k": "v"})).await;
    let mut moved = srv
        .read_json("/nomos/vars/default/app/other")
        .await
        .unwrap();
    moved["Data"] = raw["Data"].clone();
    srv.put_json("/nomos/vars/default/app/other", &moved).await;
    let (code, _, e) = call(&srv, "GET", "/v1/var/app/other", None).await;
    assert_eq!(code, 500, "{e}");
    assert!(e.as_str().unwrap().contains("does not open"), "{e}");
    assert!(!e.to_string().contains(secret));
    // A record naming another path than its key's is refused, not shown as that variable.
    let mut renamed = raw.clone();
    renamed["Path"] = json!("app/elsewhere");
    srv.put_json("/nomos/vars/default/app/third", &renamed)
        .await;
    let (code, _, e) = call(&srv, "GET", "/v1/var/app/third", None).await;
    assert_eq!(code, 500, "{e}");
}

#[tokio::test]
async fn reencrypt_all_reseals_every_variable_with_the_active_key() {
    let (srv, st) = server().await;
    for i in 0..5 {
        put(
            &srv,
            &format!("/v1/var/r/{i}"),
            json!({"v": format!("value-{i}")}),
        )
        .await;
    }
    let old = st.keyring.active_key_id().await.unwrap();
    assert_eq!(nomos_server::vars::reencrypt_all(&st).await.unwrap(), 0);
    st.keyring.rotate().await.unwrap();
    let new = st.keyring.active_key_id().await.unwrap();
    assert_ne!(old, new);
    // Writes racing the re-encryption are never lost.
    let writer = {
        let base = srv.url("/v1/var/r/0");
        let client = srv.client.clone();
        tokio::spawn(async move {
            for n in 0..20 {
                let resp = client
                    .put(&base)
                    .json(&json!({"Items": {"v": format!("w{n}")}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status().as_u16(), 200);
            }
        })
    };
    let resealed = nomos_server::vars::reencrypt_all(&st).await.unwrap();
    writer.await.unwrap();
    assert!(resealed <= 5, "{resealed}");
    for i in 0..5 {
        let raw = srv
            .read_json(&format!("/nomos/vars/default/r/{i}"))
            .await
            .unwrap();
        assert_eq!(raw["Data"]["key_id"], new.as_str(), "r/{i}");
    }
    let (_, _, got) = call(&srv, "GET", "/v1/var/r/0", None).await;
    assert_eq!(got["Items"]["v"], "w19");
    let (_, _, got) = call(&srv, "GET", "/v1/var/r/4", None).await;
    assert_eq!(got["Items"]["v"], "value-4");
    assert_eq!(nomos_server::vars::reencrypt_all(&st).await.unwrap(), 0);
}

#[tokio::test]
async fn lists_page_with_next_token() {
    let (srv, _) = server().await;
    for p in ["p/a", "p/b", "p/c"] {
        put(&srv, &format!("/v1/var/{p}"), json!({"k": "v"})).await;
    }
    let resp = srv
        .client
        .get(srv.url("/v1/vars?prefix=p/&per_page=2"))
        .send()
        .await
        .unwrap();
    let next = resp
        .headers()
        .get("x-nomad-nexttoken")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page.as_array().unwrap().len(), 2);
    let resp = srv
        .client
        .get(srv.url(&format!("/v1/vars?prefix=p/&per_page=2&next_token={next}")))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("x-nomad-nexttoken").is_none());
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page[0]["Path"], "p/c");
    // A token past the end gives an empty page; one before the prefix, the first page.
    let (code, _, page) = call(&srv, "GET", "/v1/vars?prefix=p/&next_token=zzz", None).await;
    assert_eq!((code, page), (200, json!([])));
    let (_, _, page) = call(&srv, "GET", "/v1/vars?prefix=p/&next_token=a", None).await;
    assert_eq!(page.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn blocking_reads_wake_on_the_variables_change() {
    let (srv, _) = server().await;
    let (code, _) = put(&srv, "/v1/var/app/config", json!({"colour": "green"})).await;
    assert_eq!(code, 200);
    let (code, index, _) = call(&srv, "GET", "/v1/var/app/config", None).await;
    assert_eq!(code, 200);
    let (_, list_index, _) = call(&srv, "GET", "/v1/vars?prefix=app", None).await;

    // Nothing changes: the read waits out its wait and answers the same index.
    let started = std::time::Instant::now();
    let (code, same, _) = call(
        &srv,
        "GET",
        &format!("/v1/var/app/config?index={index}&wait=1s"),
        None,
    )
    .await;
    assert_eq!((code, same), (200, index));
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));

    // A write wakes a waiting read and a waiting list, each with the new contents.
    let read_url = format!("/v1/var/app/config?index={index}&wait=20s");
    let list_url = format!("/v1/vars?prefix=app&index={list_index}&wait=20s");
    let (read, list) = tokio::join!(call(&srv, "GET", &read_url, None), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let (code, _) = put(&srv, "/v1/var/app/config", json!({"colour": "blue"})).await;
        assert_eq!(code, 200);
        call(&srv, "GET", &list_url, None).await
    });
    let (code, new_index, body) = read;
    assert_eq!(code, 200, "{body}");
    assert!(new_index > index, "{new_index} after {index}");
    assert_eq!(body["Items"]["colour"], "blue");
    let (code, new_list_index, _) = list;
    assert_eq!(code, 200);
    assert!(new_list_index > list_index);

    // `*` names no one variable; a bad index is refused.
    let (code, _, _) = call(&srv, "GET", "/v1/var/app/config?namespace=*", None).await;
    assert_eq!(code, 400);
    let (code, _, _) = call(&srv, "GET", "/v1/var/app/config?index=soon", None).await;
    assert_eq!(code, 400);
}
