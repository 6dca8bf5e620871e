//! Lists, the event stream and the web UI show a namespace-scoped token what it may read
//! instead of refusing it: jobs, allocations and deployments of its namespaces for
//! `?namespace=*`, only its namespaces' events, and the UI's overview with its jobs. A token
//! that may read no namespace at all is refused (Nomad's rule), and so is anonymous.

mod acl_support;
mod common;

use std::time::Duration;

use acl_support::*;
use common::TestServer;
use futures::StreamExt;
use serde_json::{json, Value};

/// Allocations and deployments of job `web` in namespaces `a` and `b`, written as the
/// controllers write them.
async fn seed_two_namespaces(srv: &TestServer) {
    for ns in ["a", "b"] {
        let id = format!("{ns}{ns}{ns}{ns}0000-0000");
        srv.put_json(
            &format!("/nomos/allocs/n1/{id}"),
            &json!({"id": id, "namespace": ns, "job_id": "web", "task_group": "frontend",
                    "name": "web.frontend[0]", "node": "n1", "desired_status": "run"}),
        )
        .await;
        let dep = format!("web-{ns}-v1");
        srv.put_json(
            &format!("/nomos/deployments/{ns}/web/{dep}"),
            &json!({"id": dep, "namespace": ns, "job_id": "web", "job_version": 1,
                    "status": "running", "status_description": "", "groups": {}}),
        )
        .await;
        let eval = format!("{ns}{ns}{ns}{ns}-eval");
        srv.put_json(
            &format!("/nomos/evals/{ns}/{eval}"),
            &json!({"ID": eval, "Namespace": ns, "JobID": "web", "Status": "complete"}),
        )
        .await;
    }
}

/// The `namespace` of every object in a list answer.
fn namespaces(list: &Value, field: &str) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| {
            let v = v.get(field).unwrap_or(v);
            v["namespace"]
                .as_str()
                .or(v["Namespace"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn a_token_for_namespace_a_lists_only_as_jobs_allocs_and_deployments() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    for ns in ["a", "b"] {
        expect(
            &srv,
            200,
            "POST",
            "/v1/jobs",
            Some(&root),
            Some(apply_body(ns)),
        )
        .await;
    }
    seed_two_namespaces(&srv).await;
    ns_policy(&srv, &root, "read-a", "a", "read").await;
    let (_, a) = token(&srv, &root, &["read-a"]).await;

    let all = expect(&srv, 200, "GET", "/v1/jobs?namespace=*", Some(&root), None).await;
    assert_eq!(namespaces(&all, "job"), ["a", "b"]);
    let jobs = expect(&srv, 200, "GET", "/v1/jobs?namespace=*", Some(&a), None).await;
    assert_eq!(namespaces(&jobs, "job"), ["a"], "{jobs}");
    // Allocations list `default` unless asked otherwise, as Nomad's do.
    for path in ["/v1/allocations?namespace=*", "/v1/allocations?namespace=a"] {
        let allocs = expect(&srv, 200, "GET", path, Some(&a), None).await;
        assert_eq!(namespaces(&allocs, "allocation"), ["a"], "{path}: {allocs}");
    }
    for path in [
        "/v1/deployments?namespace=a",
        "/v1/deployments?namespace=*",
        "/v1/evaluations?namespace=a",
        "/v1/evaluations?namespace=*",
    ] {
        let listed = expect(&srv, 200, "GET", path, Some(&a), None).await;
        assert_eq!(namespaces(&listed, "deployment"), ["a"], "{path}: {listed}");
    }
    // An evaluation or deployment of another namespace is refused by its own namespace.
    expect(&srv, 200, "GET", "/v1/evaluation/aaaa-eval", Some(&a), None).await;
    expect(&srv, 403, "GET", "/v1/evaluation/bbbb-eval", Some(&a), None).await;
    expect(&srv, 403, "GET", "/v1/deployment/web-b-v1", Some(&a), None).await;
    expect(
        &srv,
        403,
        "POST",
        "/v1/job/web/evaluate?namespace=a",
        Some(&a),
        None,
    )
    .await;
    // Naming another namespace is still refused, not filtered to nothing.
    for path in [
        "/v1/jobs?namespace=b",
        "/v1/allocations?namespace=b",
        "/v1/deployments?namespace=b",
        "/v1/evaluations?namespace=b",
        "/v1/deployments",
    ] {
        expect(&srv, 403, "GET", path, Some(&a), None).await;
    }
    srv.stop().await;
}

#[tokio::test]
async fn a_token_that_may_read_no_namespace_is_refused_the_lists() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    policy(&srv, &root, "nodes", "node {\n  policy = \"read\"\n}").await;
    ns_policy(&srv, &root, "deny-a", "a", "deny").await;
    let (_, nodes_only) = token(&srv, &root, &["nodes", "deny-a"]).await;
    for path in ["/v1/jobs?namespace=*", "/v1/allocations", "/v1/deployments"] {
        let (code, text) = call(&srv, "GET", path, Some(&nodes_only), None).await;
        assert_eq!((code, text.as_str()), (403, "Permission denied"), "{path}");
        expect(&srv, 403, "GET", path, None, None).await;
    }
    expect(&srv, 200, "GET", "/v1/nodes", Some(&nodes_only), None).await;
    srv.stop().await;
}

#[tokio::test]
async fn an_unknown_allocation_answers_404_to_a_reader_and_403_to_a_stranger() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "read-a", "a", "read").await;
    policy(&srv, &root, "nodes", "node {\n  policy = \"read\"\n}").await;
    let (_, a) = token(&srv, &root, &["read-a"]).await;
    let (_, stranger) = token(&srv, &root, &["nodes"]).await;
    expect(&srv, 404, "GET", "/v1/allocation/ffff9999", Some(&a), None).await;
    expect(
        &srv,
        403,
        "GET",
        "/v1/allocation/ffff9999",
        Some(&stranger),
        None,
    )
    .await;
    expect(
        &srv,
        403,
        "POST",
        "/v1/jobs",
        Some(&stranger),
        Some(apply_body("a")),
    )
    .await;
    srv.stop().await;
}

/// Reads the event stream until `needle` shows (or five seconds pass); answers everything read.
async fn read_events_until(resp: reqwest::Response, needle: &str) -> String {
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    seen
}

async fn events(srv: &TestServer, token: &str, query: &str) -> reqwest::Response {
    let resp = srv
        .client
        .get(srv.url(&format!("/v1/event/stream{query}")))
        .header("X-Nomad-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp
}

#[tokio::test]
async fn the_event_stream_gives_a_token_for_a_only_as_events() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    ns_policy(&srv, &root, "read-a", "a", "read").await;
    let (_, a) = token(&srv, &root, &["read-a"]).await;
    let from_a = events(&srv, &a, "?namespace=*").await;
    let from_root = events(&srv, &root, "?namespace=*").await;
    // b first, then a: a's stream must skip b's events and still see a's.
    expect(
        &srv,
        200,
        "POST",
        "/v1/jobs",
        Some(&root),
        Some(apply_body("b")),
    )
    .await;
    seed_two_namespaces(&srv).await;
    srv.put_json(
        "/nomos/allocstatus/n1/bbbb0000-0000",
        &json!({"alloc_id": "bbbb0000-0000"}),
    )
    .await;
    srv.put_json(
        "/nomos/allocstatus/n1/aaaa0000-0000",
        &json!({"alloc_id": "aaaa0000-0000"}),
    )
    .await;
    common::seed_node(&srv, "n1", true).await;
    expect(
        &srv,
        200,
        "POST",
        "/v1/jobs",
        Some(&root),
        Some(apply_body("a")),
    )
    .await;

    let job_a = r#""Type":"JobRegistered","Key":"web","Namespace":"a""#;
    let seen = read_events_until(from_a, job_a).await;
    assert!(seen.contains(job_a), "{seen}");
    assert!(
        seen.contains(r#""Type":"AllocationUpdated","Key":"aaaa0000-0000""#),
        "{seen}"
    );
    assert!(seen.contains(r#""Key":"web-a-v1""#), "{seen}");
    for hidden in [
        r#""Namespace":"b""#,
        "bbbb0000",
        "web-b-v1",
        r#""Topic":"Node""#,
        "SecretID",
    ] {
        assert!(!seen.contains(hidden), "{hidden} leaked: {seen}");
    }
    let seen = read_events_until(from_root, job_a).await;
    assert!(
        seen.contains(r#""Type":"JobRegistered","Key":"web","Namespace":"b""#)
            && seen.contains(r#""Topic":"Node""#),
        "{seen}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn node_events_need_node_read_and_acl_events_need_management() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    policy(&srv, &root, "nodes", "node {\n  policy = \"read\"\n}").await;
    policy(
        &srv,
        &root,
        "all",
        "namespace \"*\" {\n  policy = \"write\"\n}",
    )
    .await;
    let (_, nodes) = token(&srv, &root, &["nodes", "all"]).await;
    let stream = events(&srv, &nodes, "").await;
    // An ACL write (a secret index among it) first, then a node.
    token(&srv, &root, &["nodes"]).await;
    common::seed_node(&srv, "n7", true).await;
    let seen = read_events_until(stream, r#""Key":"n7-id-0001""#).await;
    assert!(seen.contains(r#""Type":"NodeRegistration""#), "{seen}");
    assert!(!seen.contains("SecretID"), "ACL objects leaked: {seen}");
    expect(&srv, 403, "GET", "/v1/event/stream", None, None).await;
    srv.stop().await;
}

#[tokio::test]
async fn the_ui_shows_a_namespace_reader_its_jobs_and_keeps_nodes_for_node_readers() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
    }
    let src_a = apply_body("a");
    expect(&srv, 200, "POST", "/v1/jobs", Some(&root), Some(src_a)).await;
    let mut src_b = apply_body("b");
    src_b["Job"]["ID"] = json!("secret-job");
    src_b["Job"]["Name"] = json!("secret-job");
    expect(&srv, 200, "POST", "/v1/jobs", Some(&root), Some(src_b)).await;
    common::seed_node(&srv, "n1", true).await;
    ns_policy(&srv, &root, "read-a", "a", "read").await;
    let (_, a) = token(&srv, &root, &["read-a"]).await;
    let page = |path: &'static str, token: String| {
        let req = srv
            .client
            .get(srv.url(path))
            .header("cookie", format!("nomos-token={token}"));
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (code, html) = page("/ui", a.clone()).await;
    assert_eq!(code, 200, "{html}");
    assert!(
        html.contains("web") && !html.contains("secret-job"),
        "{html}"
    );
    let (code, html) = page("/ui/fragments/jobs", a.clone()).await;
    assert!(code == 200 && !html.contains("secret-job"), "{html}");
    assert_eq!(page("/ui/job/web?namespace=a", a.clone()).await.0, 200);
    assert_eq!(
        page("/ui/job/secret-job?namespace=b", a.clone()).await.0,
        403
    );
    assert_eq!(page("/ui/fragments/nodes", a.clone()).await.0, 403);
    assert_eq!(page("/ui/node/n1", a.clone()).await.0, 403);
    let (code, html) = page("/ui", root.clone()).await;
    assert!(code == 200 && html.contains("secret-job"), "{html}");
    srv.stop().await;
}

#[tokio::test]
async fn search_finds_only_what_the_token_may_read() {
    let srv = acl_server().await;
    let root = bootstrap(&srv).await;
    for ns in ["a", "b"] {
        namespace(&srv, &root, ns).await;
        expect(
            &srv,
            200,
            "POST",
            "/v1/jobs",
            Some(&root),
            Some(apply_body(ns)),
        )
        .await;
    }
    seed_two_namespaces(&srv).await;
    ns_policy(&srv, &root, "read-a", "a", "read").await;
    let (_, a) = token(&srv, &root, &["read-a"]).await;

    let everything = json!({"Prefix": "", "Context": "all"});
    let all = expect(
        &srv,
        200,
        "POST",
        "/v1/search",
        Some(&root),
        Some(everything.clone()),
    )
    .await;
    assert_eq!(
        all["Matches"]["allocs"].as_array().unwrap().len(),
        2,
        "{all}"
    );
    let mine = expect(&srv, 200, "POST", "/v1/search", Some(&a), Some(everything)).await;
    assert_eq!(
        mine["Matches"]["allocs"],
        json!(["aaaa0000-0000"]),
        "{mine}"
    );
    assert_eq!(mine["Matches"]["deployment"], json!(["web-a-v1"]), "{mine}");
    assert_eq!(mine["Matches"]["namespaces"], json!(["a"]), "{mine}");
    assert_eq!(
        mine["Matches"]["nodes"],
        Value::Null,
        "no node read: {mine}"
    );
    let fuzzy = json!({"Text": "web", "Context": "jobs"});
    let found = expect(&srv, 200, "POST", "/v1/search/fuzzy", Some(&a), Some(fuzzy)).await;
    assert_eq!(
        found["Matches"]["jobs"],
        json!([{"ID": "web", "Scope": ["a"]}]),
        "{found}"
    );
    expect(
        &srv,
        403,
        "POST",
        "/v1/search",
        None,
        Some(json!({"Prefix": "", "Context": "all"})),
    )
    .await;
}
