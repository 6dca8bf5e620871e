//! ACLs on the HTTP API: bootstrap, tokens, policies, and the rule every route enforces.

mod common;

use common::{seed_allocs, TestServer, WEB_HCL};
use nomos_server::acl::rules::{Rule, ROUTES};
use nomos_server::acl::AclConfig;
use nomos_server::ServerConfig;
use serde_json::{json, Value};

async fn acl_server() -> TestServer {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        acl: AclConfig { enabled: true },
        ..ServerConfig::default()
    };
    TestServer::start_with_config(|s| s, config).await
}

/// Sends `method path` with `token` (none: anonymous) and a JSON body on writes.
async fn call(
    srv: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = srv.client.request(method.clone(), srv.url(path));
    if let Some(t) = token {
        req = req.header("X-Nomad-Token", t);
    }
    if method != reqwest::Method::GET {
        req = req.json(&body.unwrap_or(json!({})));
    }
    let resp = req.send().await.expect("request");
    let code = resp.status().as_u16();
    // Streams (events, logs) would not end: the head is enough for a refusal.
    let text = if code == 200 && (path.contains("/event/stream") || path.contains("/client/fs/")) {
        String::new()
    } else {
        resp.text().await.unwrap_or_default()
    };
    (code, text)
}

async fn bootstrap(srv: &TestServer) -> String {
    let (code, body) = call(srv, "POST", "/v1/acl/bootstrap", None, None).await;
    assert_eq!(code, 200, "{body}");
    let token: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(token["Type"], "management");
    token["SecretID"].as_str().unwrap().to_string()
}

async fn policy(srv: &TestServer, root: &str, name: &str, rules: &str) {
    let (code, body) = call(
        srv,
        "POST",
        &format!("/v1/acl/policy/{name}"),
        Some(root),
        Some(json!({"Name": name, "Rules": rules})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
}

/// A client token with `policies`; returns (accessor, secret).
async fn token(srv: &TestServer, root: &str, policies: &[&str]) -> (String, String) {
    let (code, body) = call(
        srv,
        "POST",
        "/v1/acl/token",
        Some(root),
        Some(json!({"Name": "t", "Type": "client", "Policies": policies})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let t: Value = serde_json::from_str(&body).unwrap();
    (
        t["AccessorID"].as_str().unwrap().into(),
        t["SecretID"].as_str().unwrap().into(),
    )
}

fn apply_body(namespace: &str) -> Value {
    let src = WEB_HCL.replacen(
        "job \"web\" {",
        &format!("job \"web\" {{\n  namespace = \"{namespace}\""),
        1,
    );
    let parsed = nomos_api::parse_source("web.hcl", &src, &Default::default()).expect("parses");
    common::register_body(&parsed.jobs[0], &src)
}

/// A concrete path for a route pattern.
fn concrete(path: &str) -> String {
    path.replace("{id}", "aaaa1111")
        .replace("{name}", "n1")
        .replace("{accessor}", "x")
        .replace("{*path}", "style.css")
        .replace("{*rest}", "x")
}

#[tokio::test]
async fn bootstrap_succeeds_once_then_answers_400() {
    let srv = acl_server().await;
    bootstrap(&srv).await;
    let (code, body) = call(&srv, "POST", "/v1/acl/bootstrap", None, None).await;
    assert_eq!(code, 400);
    assert!(body.contains("ACL bootstrap already done"), "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn anonymous_is_denied_on_every_route_in_the_table() {
    let srv = acl_server().await;
    bootstrap(&srv).await;
    seed_allocs(&srv).await;
    for (method, path, rule) in ROUTES {
        if *rule == Rule::Public {
            continue;
        }
        let (code, body) = call(&srv, method, &concrete(path), None, None).await;
        assert_eq!(code, 403, "anonymous {method} {path}: {body}");
        if !path.starts_with("/ui") {
            assert!(
                body.contains("Permission denied") || body.contains("ACL token not found"),
                "{method} {path}: {body}"
            );
        }
    }
    srv.stop().await;
}

#[tokio::test]
async fn a_method_a_route_does_not_serve_answers_405_not_a_handler() {
    let srv = acl_server().await;
    let (code, _) = call(&srv, "PATCH", "/v1/jobs", None, None).await;
    assert_eq!(code, 405);
    srv.stop().await;
}

#[tokio::test]
async fn the_token_may_come_as_a_bearer_authorization() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    let resp = srv
        .client
        .get(srv.url("/v1/acl/token/self"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("management"));
    srv.stop().await;
}

#[tokio::test]
async fn an_unknown_token_is_refused_with_token_not_found() {
    let srv = acl_server().await;
    bootstrap(&srv).await;
    let (code, body) = call(&srv, "GET", "/v1/jobs", Some("made-up"), None).await;
    assert_eq!(code, 403);
    assert!(body.contains("ACL token not found"), "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn management_can_do_everything() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    seed_allocs(&srv).await;
    for (method, path, _) in ROUTES {
        if path.contains("/client/") || path.contains("/restart") || path.contains("bootstrap") {
            continue; // need a live agent; bootstrap is done
        }
        let (code, body) = call(&srv, method, &concrete(path), Some(&root), None).await;
        assert_ne!(code, 403, "management {method} {path}: {body}");
    }
    let (code, body) = call(
        &srv,
        "POST",
        "/v1/jobs",
        Some(&root),
        Some(apply_body("default")),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn a_read_token_can_read_but_not_apply() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    seed_allocs(&srv).await;
    policy(
        &srv,
        &root,
        "readonly",
        "namespace \"default\" {\n  policy = \"read\"\n}\nnode {\n  policy = \"read\"\n}",
    )
    .await;
    let (_, reader) = token(&srv, &root, &["readonly"]).await;
    for path in [
        "/v1/jobs",
        "/v1/allocation/aaaa1111",
        "/v1/allocations?namespace=default",
        "/v1/nodes",
    ] {
        let (code, body) = call(&srv, "GET", path, Some(&reader), None).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    let (code, body) = call(
        &srv,
        "POST",
        "/v1/jobs",
        Some(&reader),
        Some(apply_body("default")),
    )
    .await;
    assert_eq!((code, body.as_str()), (403, "Permission denied"));
    let plan = Some(common::plan_body("web.hcl", WEB_HCL));
    let (code, body) = call(&srv, "POST", "/v1/job/web/plan", Some(&reader), plan).await;
    assert_eq!(code, 403, "a plan needs submit-job: {body}");
    for (method, path) in [
        ("POST", "/v1/allocation/aaaa1111/stop"),
        ("POST", "/v1/node/n1/drain"),
        ("GET", "/v1/acl/tokens"),
        ("POST", "/v1/job/web/stable"),
        ("PUT", "/v1/node/n1/purge"),
        ("PUT", "/v1/operator/scheduler/configuration"),
        ("POST", "/v1/node/pools"),
        ("DELETE", "/v1/node/pool/edge"),
    ] {
        let (code, body) = call(
            &srv,
            method,
            path,
            Some(&reader),
            Some(apply_body("default")),
        )
        .await;
        assert_eq!(code, 403, "{method} {path}: {body}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn a_token_scoped_to_namespace_a_cannot_touch_b() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    policy(
        &srv,
        &root,
        "team-a",
        "namespace \"a\" {\n  policy = \"write\"\n}",
    )
    .await;
    let (_, a) = token(&srv, &root, &["team-a"]).await;
    let ns = Some(json!({"Name": "a"}));
    let (code, body) = call(&srv, "POST", "/v1/namespace/a", Some(&root), ns).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(&srv, "POST", "/v1/jobs", Some(&a), Some(apply_body("a"))).await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = call(&srv, "POST", "/v1/jobs", Some(&a), Some(apply_body("b"))).await;
    assert_eq!(code, 403);
    for (method, path) in [
        ("GET", "/v1/jobs?namespace=b"),
        ("GET", "/v1/job/web?namespace=b"),
        ("DELETE", "/v1/job/web?namespace=b"),
        // Lists over every namespace (`*`) are filtered instead: tests/acl_filtering.rs.
    ] {
        let (code, body) = call(&srv, method, path, Some(&a), None).await;
        assert_eq!(code, 403, "{method} {path}: {body}");
    }
    let (code, body) = call(&srv, "GET", "/v1/job/web?namespace=a", Some(&a), None).await;
    assert_eq!(code, 200, "{body}");
    // An allocation in `default` is refused by its own namespace, whatever the query says.
    seed_allocs(&srv).await;
    let (code, _) = call(
        &srv,
        "GET",
        "/v1/allocation/aaaa1111?namespace=a",
        Some(&a),
        None,
    )
    .await;
    assert_eq!(code, 403);
    srv.stop().await;
}

#[tokio::test]
async fn a_deleted_token_stops_working() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    policy(
        &srv,
        &root,
        "readonly",
        "namespace \"default\" {\n  policy = \"read\"\n}",
    )
    .await;
    let (accessor, secret) = token(&srv, &root, &["readonly"]).await;
    assert_eq!(
        call(&srv, "GET", "/v1/jobs", Some(&secret), None).await.0,
        200
    );
    let (code, body) = call(&srv, "GET", "/v1/acl/token/self", Some(&secret), None).await;
    assert!(code == 200 && body.contains(&accessor), "{body}");
    assert_eq!(
        call(
            &srv,
            "DELETE",
            &format!("/v1/acl/token/{accessor}"),
            Some(&root),
            None
        )
        .await
        .0,
        200
    );
    let (code, body) = call(&srv, "GET", "/v1/jobs", Some(&secret), None).await;
    assert_eq!(code, 403);
    assert!(body.contains("ACL token not found"), "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn the_anonymous_policy_applies_to_requests_without_a_token() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    assert_eq!(call(&srv, "GET", "/v1/jobs", None, None).await.0, 403);
    policy(
        &srv,
        &root,
        "anonymous",
        "namespace \"default\" {\n  policy = \"read\"\n}",
    )
    .await;
    assert_eq!(call(&srv, "GET", "/v1/jobs", None, None).await.0, 200);
    assert_eq!(
        call(&srv, "POST", "/v1/jobs", None, Some(apply_body("default")))
            .await
            .0,
        403
    );
    srv.stop().await;
}

#[tokio::test]
async fn tokens_and_policies_read_back_in_nomads_shapes() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    let rules = "namespace \"default\" {\n  policy = \"read\"\n}";
    policy(&srv, &root, "readonly", rules).await;
    let (_, body) = call(&srv, "GET", "/v1/acl/policy/readonly", Some(&root), None).await;
    let p: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (p["Name"].as_str(), p["Rules"].as_str()),
        (Some("readonly"), Some(rules))
    );
    let (_, body) = call(&srv, "GET", "/v1/acl/policies", Some(&root), None).await;
    assert!(
        body.contains("\"Name\":\"readonly\"") && !body.contains("Rules"),
        "{body}"
    );
    let (accessor, _) = token(&srv, &root, &["readonly"]).await;
    let (_, body) = call(&srv, "GET", "/v1/acl/tokens", Some(&root), None).await;
    assert!(
        body.contains(&accessor) && !body.contains("SecretID"),
        "{body}"
    );
    let (code, body) = call(
        &srv,
        "POST",
        "/v1/acl/policy/bad",
        Some(&root),
        Some(json!({"Rules": "namespace \"a\" {\n  policy = \"reed\"\n}"})),
    )
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("bad:2:12: unknown policy"), "{body}");
    let (code, _) = call(
        &srv,
        "POST",
        "/v1/acl/token",
        Some(&root),
        Some(json!({"Type": "client"})),
    )
    .await;
    assert_eq!(code, 400, "a client token needs policies");
    srv.stop().await;
}

#[tokio::test]
async fn acl_endpoints_answer_400_while_acls_are_off() {
    let srv = TestServer::start().await;
    let (code, body) = call(&srv, "POST", "/v1/acl/bootstrap", None, None).await;
    assert_eq!(code, 400);
    assert!(body.contains("ACL support disabled"), "{body}");
    assert_eq!(call(&srv, "GET", "/v1/jobs", None, None).await.0, 200);
    srv.stop().await;
}

#[tokio::test]
async fn the_ui_takes_its_token_from_the_cookie_and_offers_a_login_form() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    let resp = srv.client.get(srv.url("/ui")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.text().await.unwrap().contains("nomos-token"));
    let resp = srv
        .client
        .get(srv.url("/ui"))
        .header("cookie", format!("nomos-token={root}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // The cookie never authorises an API write.
    let resp = srv
        .client
        .post(srv.url("/v1/jobs"))
        .header("cookie", format!("nomos-token={root}"))
        .json(&apply_body("default"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    srv.stop().await;
}
