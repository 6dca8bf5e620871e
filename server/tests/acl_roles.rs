//! ACL roles, token expiry and revocation over real HTTP: roles' CRUD in Nomad's shapes, name
//! conflicts, tokens that get their roles' policies (and lose them with the role), expired
//! tokens refused, TTL bounds and bad TTLs answered 400, and a deleted token refused on the
//! very next request although resolutions are cached.

mod acl_support;
mod common;

use acl_support::*;
use nomos_server::acl::expiry;
use serde_json::{json, Value};

#[tokio::test]
async fn roles_are_created_read_listed_updated_and_deleted_in_nomads_shapes() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "read-a", "a", "read").await;
    ns_policy(&srv, &root, "write-b", "b", "write").await;
    let r = role(&srv, &root, "team-a", &["read-a"]).await;
    let id = r["ID"].as_str().unwrap().to_string();
    assert_eq!(r["Name"], "team-a");
    assert_eq!(r["Policies"], json!([{"Name": "read-a"}]));
    assert!(r["CreateIndex"].as_i64().unwrap() > 0 && r["ModifyIndex"].as_i64().unwrap() > 0);

    let got = expect(
        &srv,
        200,
        "GET",
        &format!("/v1/acl/role/{id}"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(got["Name"], "team-a");
    let by_name = expect(
        &srv,
        200,
        "GET",
        "/v1/acl/role/name/team-a",
        Some(&root),
        None,
    )
    .await;
    assert_eq!(by_name["ID"], id.as_str());
    let list = expect(&srv, 200, "GET", "/v1/acl/roles", Some(&root), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let body =
        json!({"ID": id, "Name": "team-ab", "Policies": [{"Name": "read-a"}, {"Name": "write-b"}]});
    let path = format!("/v1/acl/role/{id}");
    let updated = expect(&srv, 200, "POST", &path, Some(&root), Some(body)).await;
    assert_eq!(updated["Name"], "team-ab");
    assert_eq!(updated["Policies"].as_array().unwrap().len(), 2);
    // The old name is free again; the new one resolves.
    expect(
        &srv,
        404,
        "GET",
        "/v1/acl/role/name/team-a",
        Some(&root),
        None,
    )
    .await;
    expect(
        &srv,
        200,
        "GET",
        "/v1/acl/role/name/team-ab",
        Some(&root),
        None,
    )
    .await;
    role(&srv, &root, "team-a", &["read-a"]).await;

    expect(&srv, 200, "DELETE", &path, Some(&root), None).await;
    expect(&srv, 404, "GET", &path, Some(&root), None).await;
    expect(
        &srv,
        404,
        "GET",
        "/v1/acl/role/name/team-ab",
        Some(&root),
        None,
    )
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn a_role_name_is_unique_on_create_and_on_rename() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "p", "a", "read").await;
    role(&srv, &root, "one", &["p"]).await;
    let two = role(&srv, &root, "two", &["p"]).await;
    let body = json!({"Name": "one", "Policies": [{"Name": "p"}]});
    let (code, text) = call(
        &srv,
        "POST",
        "/v1/acl/role",
        Some(&root),
        Some(body.clone()),
    )
    .await;
    assert_eq!(code, 409, "{text}");
    assert!(error_of(&text).contains("\"one\" already exists"), "{text}");
    let path = format!("/v1/acl/role/{}", two["ID"].as_str().unwrap());
    let (code, text) = call(&srv, "POST", &path, Some(&root), Some(body)).await;
    assert_eq!(code, 409, "{text}");
    let list = expect(&srv, 200, "GET", "/v1/acl/roles", Some(&root), None).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    srv.stop().await;
}

#[tokio::test]
async fn bad_role_requests_answer_400_naming_the_field() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "p", "a", "read").await;
    let long = "x".repeat(300);
    for (body, needle) in [
        (
            json!({"Name": "", "Policies": [{"Name": "p"}]}),
            "role name",
        ),
        (
            json!({"Name": "a/b", "Policies": [{"Name": "p"}]}),
            "role name",
        ),
        (json!({"Name": "r", "Policies": []}), "at least one policy"),
        (
            json!({"Name": "r", "Policies": [{"Name": "missing"}]}),
            "cannot find policy \"missing\"",
        ),
        (
            json!({"Name": "r", "Description": long, "Policies": [{"Name": "p"}]}),
            "description",
        ),
        (
            json!({"ID": "chosen", "Name": "r", "Policies": [{"Name": "p"}]}),
            "role ID",
        ),
        (json!({"Name": 5}), "invalid request body"),
    ] {
        let (code, text) = call(&srv, "POST", "/v1/acl/role", Some(&root), Some(body)).await;
        assert_eq!(code, 400, "{text}");
        assert!(error_of(&text).contains(needle), "{needle}: {text}");
    }
    expect(&srv, 404, "GET", "/v1/acl/role/nope", Some(&root), None).await;
    expect(&srv, 404, "DELETE", "/v1/acl/role/nope", Some(&root), None).await;
    srv.stop().await;
}

#[tokio::test]
async fn role_writes_need_management_and_a_client_sees_only_its_roles() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "p", "a", "read").await;
    let mine = role(&srv, &root, "mine", &["p"]).await;
    let other = role(&srv, &root, "other", &["p"]).await;
    let t = token_with(
        &srv,
        &root,
        json!({"Name": "t", "Roles": [{"Name": "mine"}]}),
    )
    .await;
    let secret = t["SecretID"].as_str().unwrap();
    let body = json!({"Name": "x", "Policies": [{"Name": "p"}]});
    expect(&srv, 403, "POST", "/v1/acl/role", Some(secret), Some(body)).await;
    let list = expect(&srv, 200, "GET", "/v1/acl/roles", Some(secret), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["ID"], mine["ID"]);
    let other_path = format!("/v1/acl/role/{}", other["ID"].as_str().unwrap());
    expect(&srv, 403, "GET", &other_path, Some(secret), None).await;
    expect(&srv, 403, "GET", "/v1/acl/roles", None, None).await;
    srv.stop().await;
}

#[tokio::test]
async fn a_token_gets_its_roles_policies_and_loses_them_with_the_role() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "write-a", "a", "write").await;
    ns_policy(&srv, &root, "read-b", "b", "read").await;
    let r = role(&srv, &root, "team-a", &["write-a"]).await;
    let rid = r["ID"].as_str().unwrap();
    // Linked by ID and by name (the same role once), plus a policy of its own.
    let t = token_with(
        &srv,
        &root,
        json!({"Name": "t", "Policies": ["read-b"], "Roles": [{"ID": rid}, {"Name": "team-a"}]}),
    )
    .await;
    assert_eq!(t["Roles"], json!([{"ID": rid, "Name": "team-a"}]));
    let secret = t["SecretID"].as_str().unwrap().to_string();
    expect(
        &srv,
        200,
        "POST",
        "/v1/jobs",
        Some(&secret),
        Some(apply_body("a")),
    )
    .await;
    expect(
        &srv,
        200,
        "GET",
        "/v1/jobs?namespace=b",
        Some(&secret),
        None,
    )
    .await;
    expect(
        &srv,
        403,
        "POST",
        "/v1/jobs",
        Some(&secret),
        Some(apply_body("b")),
    )
    .await;
    let me = expect(&srv, 200, "GET", "/v1/acl/token/self", Some(&secret), None).await;
    assert_eq!(me["Roles"][0]["Name"], "team-a");

    expect(
        &srv,
        200,
        "DELETE",
        &format!("/v1/acl/role/{rid}"),
        Some(&root),
        None,
    )
    .await;
    expect(
        &srv,
        403,
        "POST",
        "/v1/jobs",
        Some(&secret),
        Some(apply_body("a")),
    )
    .await;
    expect(
        &srv,
        200,
        "GET",
        "/v1/jobs?namespace=b",
        Some(&secret),
        None,
    )
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn updating_a_role_changes_what_its_tokens_may_do_at_once() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "read-a", "a", "read").await;
    ns_policy(&srv, &root, "write-a", "a", "write").await;
    let r = role(&srv, &root, "team", &["read-a"]).await;
    let t = token_with(&srv, &root, json!({"Roles": [{"Name": "team"}]})).await;
    let secret = t["SecretID"].as_str().unwrap().to_string();
    expect(
        &srv,
        403,
        "POST",
        "/v1/jobs",
        Some(&secret),
        Some(apply_body("a")),
    )
    .await;
    let path = format!("/v1/acl/role/{}", r["ID"].as_str().unwrap());
    let body = json!({"Name": "team", "Policies": [{"Name": "write-a"}]});
    expect(&srv, 200, "POST", &path, Some(&root), Some(body)).await;
    expect(
        &srv,
        200,
        "POST",
        "/v1/jobs",
        Some(&secret),
        Some(apply_body("a")),
    )
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn token_role_links_must_name_existing_roles() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    for (body, needle) in [
        (
            json!({"Roles": [{"Name": "ghost"}]}),
            "cannot find role with name \"ghost\"",
        ),
        (
            json!({"Roles": [{"ID": "0000"}]}),
            "cannot find role with ID \"0000\"",
        ),
        (json!({"Roles": [{}]}), "needs an ID or a Name"),
        (json!({"Type": "client"}), "missing policies or roles"),
        (
            json!({"Type": "management", "Roles": [{"Name": "x"}]}),
            "cannot be associated with roles",
        ),
    ] {
        let (code, text) = call(&srv, "POST", "/v1/acl/token", Some(&root), Some(body)).await;
        assert_eq!(code, 400, "{text}");
        assert!(error_of(&text).contains(needle), "{needle}: {text}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn token_expiry_is_set_from_a_ttl_or_a_time_and_shown() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "p", "a", "read").await;
    let t = token_with(
        &srv,
        &root,
        json!({"Policies": ["p"], "ExpirationTTL": "1h"}),
    )
    .await;
    assert_eq!(t["ExpirationTTL"], json!(3_600_000_000_000i64));
    let at: jiff::Timestamp = t["ExpirationTime"].as_str().unwrap().parse().unwrap();
    let ahead = at.duration_since(jiff::Timestamp::now()).as_secs();
    assert!((3500..=3600).contains(&ahead), "{ahead}");
    let path = format!("/v1/acl/token/{}", t["AccessorID"].as_str().unwrap());
    let read = expect(&srv, 200, "GET", &path, Some(&root), None).await;
    assert_eq!(read["ExpirationTime"], t["ExpirationTime"]);
    // Nomad's Go client sends the TTL as nanoseconds.
    let t = token_with(
        &srv,
        &root,
        json!({"Policies": ["p"], "ExpirationTTL": 120_000_000_000i64}),
    )
    .await;
    assert!(t["ExpirationTime"].is_string());
    let when = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2)).to_string();
    let t = token_with(
        &srv,
        &root,
        json!({"Policies": ["p"], "ExpirationTime": when}),
    )
    .await;
    assert!(t.get("ExpirationTTL").is_none(), "{t}");
    // A token without expiry shows none.
    let t = token_with(&srv, &root, json!({"Policies": ["p"]})).await;
    assert!(t.get("ExpirationTime").is_none(), "{t}");
    srv.stop().await;
}

#[tokio::test]
async fn ttls_outside_nomads_bounds_and_bad_ttls_answer_400() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "p", "a", "read").await;
    let past = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string();
    let far = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48)).to_string();
    for (extra, needle) in [
        (json!({"ExpirationTTL": "30s"}), "cannot be less than 1m"),
        (json!({"ExpirationTTL": "25h"}), "cannot be more than 24h"),
        (json!({"ExpirationTTL": "soon"}), "ExpirationTTL"),
        (json!({"ExpirationTTL": "-1h"}), "ExpirationTTL"),
        (json!({"ExpirationTTL": -5}), "ExpirationTTL"),
        (json!({"ExpirationTTL": "x".repeat(100)}), "ExpirationTTL"),
        (json!({"ExpirationTime": past}), "cannot be in the past"),
        (json!({"ExpirationTime": far}), "cannot be more than 24h"),
        (json!({"ExpirationTime": "tomorrow"}), "ExpirationTime"),
        (
            json!({"ExpirationTTL": "1h", "ExpirationTime": far}),
            "not both",
        ),
    ] {
        let mut body = json!({"Policies": ["p"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (code, text) = call(&srv, "POST", "/v1/acl/token", Some(&root), Some(body)).await;
        assert_eq!(code, 400, "{text}");
        assert!(error_of(&text).contains(needle), "{needle}: {text}");
    }
    srv.stop().await;
}

/// Rewrites a stored token's expiry, as time passing would make it.
async fn expire(srv: &common::TestServer, accessor: &str, at: jiff::Timestamp) {
    let key = format!("/nomos/acl/tokens/{accessor}");
    let mut t = srv.read_json(&key).await.expect("the token");
    t["ExpirationTime"] = Value::String(at.to_string());
    srv.put_json(&key, &t).await;
}

#[tokio::test]
async fn an_expired_token_is_refused_and_later_deleted() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "p", "default", "read").await;
    let t = token_with(
        &srv,
        &root,
        json!({"Policies": ["p"], "ExpirationTTL": "1h"}),
    )
    .await;
    let (accessor, secret) = (
        t["AccessorID"].as_str().unwrap().to_string(),
        t["SecretID"].as_str().unwrap().to_string(),
    );
    expect(&srv, 200, "GET", "/v1/jobs", Some(&secret), None).await;
    let now = jiff::Timestamp::now();
    expire(&srv, &accessor, now - jiff::SignedDuration::from_secs(1)).await;
    // The store was written behind the server's back: the watch empties its cache shortly.
    let (code, text) = until_refused(&srv, &secret).await;
    assert_eq!((code, text.as_str()), (403, "ACL token expired"));

    // The sweeper keeps it for the threshold, then deletes it and its secret index.
    let st = nomos_server::AppState::with_store(srv.store.clone());
    assert_eq!(expiry::sweep(&st, now).await.unwrap(), 0);
    let later = now + jiff::SignedDuration::try_from(expiry::GC_THRESHOLD).unwrap();
    assert_eq!(expiry::sweep(&st, later).await.unwrap(), 1);
    let path = format!("/v1/acl/token/{accessor}");
    expect(&srv, 404, "GET", &path, Some(&root), None).await;
    let (code, text) = call(&srv, "GET", "/v1/jobs", Some(&secret), None).await;
    assert_eq!(code, 403);
    assert!(text.contains("ACL token not found"), "{text}");
    let secrets = srv
        .store
        .range(
            nomos_store::KeySelector::prefix("/nomos/acl/secrets/"),
            nomos_store::RangeOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        secrets.kvs.len(),
        1,
        "only the bootstrap token's secret is left"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_revoked_token_is_refused_on_the_very_next_request_despite_the_cache() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "p", "default", "read").await;
    for _ in 0..20 {
        let (accessor, secret) = token(&srv, &root, &["p"]).await;
        // Twice, so the second answer comes from the cache.
        expect(&srv, 200, "GET", "/v1/jobs", Some(&secret), None).await;
        expect(&srv, 200, "GET", "/v1/jobs", Some(&secret), None).await;
        let path = format!("/v1/acl/token/{accessor}");
        expect(&srv, 200, "DELETE", &path, Some(&root), None).await;
        expect(&srv, 403, "GET", "/v1/jobs", Some(&secret), None).await;
    }
    srv.stop().await;
}

#[tokio::test]
async fn a_token_deleted_straight_from_the_store_stops_working_once_the_watch_sees_it() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "p", "default", "read").await;
    let (accessor, secret) = token(&srv, &root, &["p"]).await;
    expect(&srv, 200, "GET", "/v1/jobs", Some(&secret), None).await;
    expect(&srv, 200, "GET", "/v1/jobs", Some(&secret), None).await;
    // Another server (or etcdctl) revokes it: only the watch can tell this one.
    srv.store
        .delete(
            nomos_store::KeySelector::key(format!("/nomos/acl/tokens/{accessor}")),
            Default::default(),
        )
        .await
        .unwrap();
    let (code, text) = until_refused(&srv, &secret).await;
    assert_eq!(code, 403);
    assert!(text.contains("ACL token not found"), "{text}");
    srv.stop().await;
}

/// `GET /v1/jobs` with `secret` until it is refused (for up to two seconds).
async fn until_refused(srv: &common::TestServer, secret: &str) -> (u16, String) {
    let mut answer = (0, String::new());
    for _ in 0..200 {
        answer = call(srv, "GET", "/v1/jobs", Some(secret), None).await;
        if answer.0 == 403 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    answer
}

#[tokio::test]
async fn policy_changes_reach_cached_tokens_at_once() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "p", "default", "read").await;
    let (_, secret) = token(&srv, &root, &["p"]).await;
    expect(&srv, 200, "GET", "/v1/jobs", Some(&secret), None).await;
    ns_policy(&srv, &root, "p", "default", "deny").await;
    expect(&srv, 403, "GET", "/v1/jobs", Some(&secret), None).await;
    expect(&srv, 200, "DELETE", "/v1/acl/policy/p", Some(&root), None).await;
    expect(&srv, 403, "GET", "/v1/jobs", Some(&secret), None).await;
    srv.stop().await;
}

/// The message of an error answer (plain text, as Nomad answers errors).
fn error_of(text: &str) -> String {
    text.trim_end().to_string()
}
