//! Namespaces and quota specifications over HTTP: CRUD in Nomad's shapes, validation, deletes
//! refused while in use, jobs refused in namespaces that do not exist, usage, and ACLs.

mod common;

use common::{apply_source, plan_body, seed_node, TestServer, WEB_HCL};
use nomos_server::acl::AclConfig;
use nomos_server::ServerConfig;
use serde_json::{json, Value};

fn web_in(namespace: &str) -> String {
    WEB_HCL.replacen(
        "job \"web\" {",
        &format!("job \"web\" {{\n  namespace = \"{namespace}\""),
        1,
    )
}

fn quota_body(name: &str, cpu: i64, memory: i64, allocations: i64) -> Value {
    json!({"Name": name, "Description": "team quota", "Limits": [{"Region": "global",
           "RegionLimit": {"CPU": cpu, "MemoryMB": memory, "Allocations": allocations}}]})
}

fn error_of(body: &Value) -> String {
    body.as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn namespaces_are_created_read_updated_listed_and_deleted() {
    let srv = TestServer::start().await;
    let (code, list) = srv.get("/v1/namespaces").await;
    assert_eq!(code, 200);
    assert_eq!(list[0]["Name"], "default", "default always exists: {list}");
    let (code, ns) = srv.get("/v1/namespace/default").await;
    assert_eq!((code, ns["Name"].as_str()), (200, Some("default")));

    let body = json!({"Name": "team-a", "Description": "Team A", "Meta": {"owner": "a"}});
    let (code, created) = srv.post("/v1/namespace/team-a", body).await;
    assert_eq!(code, 200, "{created}");
    assert!(created["CreateIndex"].as_i64().unwrap() > 0);
    let (code, got) = srv.get("/v1/namespace/team-a").await;
    assert_eq!(code, 200);
    assert_eq!(
        (got["Description"].as_str(), got["Meta"]["owner"].as_str()),
        (Some("Team A"), Some("a"))
    );
    assert_eq!(got["Quota"], "");

    // `POST /v1/namespace` names it in the body; an update keeps the create index.
    let (code, updated) = srv
        .post(
            "/v1/namespace",
            json!({"Name": "team-a", "Description": "A"}),
        )
        .await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["CreateIndex"], created["CreateIndex"]);
    assert!(updated["ModifyIndex"].as_i64() > created["ModifyIndex"].as_i64());

    let (_, list) = srv.get("/v1/namespaces").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "team-a"]);

    let (code, _) = srv.delete("/v1/namespace/team-a").await;
    assert_eq!(code, 200);
    let (code, body) = srv.get("/v1/namespace/team-a").await;
    assert_eq!(code, 404, "{body}");
    assert!(error_of(&body).contains("namespace \"team-a\" not found"));
    srv.stop().await;
}

#[tokio::test]
async fn bad_namespaces_are_refused_naming_the_field() {
    let srv = TestServer::start().await;
    let cases = [
        ("/v1/namespace/team_a", json!({}), "namespace name"),
        ("/v1/namespace/a", json!({"Name": "b"}), "differs"),
        (
            "/v1/namespace/a",
            json!({"Description": "d".repeat(257)}),
            "description",
        ),
        (
            "/v1/namespace/a",
            json!({"Quota": "nope"}),
            "Quota \"nope\" does not exist",
        ),
        ("/v1/namespace/a", json!({"Name": 3}), "Name"),
        (
            "/v1/namespace",
            json!({"Name": "x".repeat(129)}),
            "1 to 128",
        ),
    ];
    for (path, body, want) in cases {
        let (code, answer) = srv.post(path, body.clone()).await;
        assert_eq!(code, 400, "{path} {body}: {answer}");
        assert!(error_of(&answer).contains(want), "{path} {body}: {answer}");
    }
    let (code, _) = srv.get("/v1/namespace/a%2Fb").await;
    assert_eq!(code, 400);
    srv.stop().await;
}

#[tokio::test]
async fn a_namespace_with_jobs_and_default_cannot_be_deleted() {
    let srv = TestServer::start().await;
    let (code, _) = srv.post("/v1/namespace/team-a", json!({})).await;
    assert_eq!(code, 200);
    let (code, body) = apply_source(&srv, "web.hcl", &web_in("team-a")).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = srv.delete("/v1/namespace/team-a").await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        error_of(&body),
        "namespace \"team-a\" has non-terminal jobs in regions: [global]"
    );
    let (code, body) = srv.delete("/v1/job/web?namespace=team-a&purge=true").await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = srv.delete("/v1/namespace/team-a").await;
    assert_eq!(code, 200, "{body}");

    let (code, body) = srv.delete("/v1/namespace/default").await;
    assert_eq!(
        (code, error_of(&body).as_str()),
        (400, "default namespace can not be deleted")
    );
    let (code, _) = srv.delete("/v1/namespace/ghost").await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn a_job_in_a_namespace_that_does_not_exist_is_refused_at_apply_and_plan() {
    let srv = TestServer::start().await;
    let (code, body) = apply_source(&srv, "web.hcl", &web_in("ghost")).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        error_of(&body).contains("nonexistent namespace \"ghost\""),
        "{body}"
    );
    assert!(
        srv.read_json("/nomos/jobs/ghost/web").await.is_none(),
        "nothing written"
    );
    let (code, body) = srv
        .post("/v1/job/web/plan", plan_body("web.hcl", &web_in("ghost")))
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(error_of(&body).contains("\"ghost\""), "{body}");
    // `default` needs no object.
    let (code, body) = apply_source(&srv, "web.hcl", WEB_HCL).await;
    assert_eq!(code, 200, "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn quotas_are_created_attached_reported_and_deleted_once_detached() {
    let srv = TestServer::start().await;
    let (code, q) = srv
        .post("/v1/quota/team-a", quota_body("team-a", 2500, 1000, 3))
        .await;
    assert_eq!(code, 200, "{q}");
    let (code, got) = srv.get("/v1/quota/team-a").await;
    assert_eq!(code, 200);
    assert_eq!(got["Limits"][0]["RegionLimit"]["CPU"], 2500);
    assert_eq!(got["Limits"][0]["RegionLimit"]["Allocations"], 3);
    let (_, list) = srv.get("/v1/quotas").await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let (code, body) = srv
        .post("/v1/namespace/team-a", json!({"Quota": "team-a"}))
        .await;
    assert_eq!(code, 200, "{body}");
    // Two allocations of a job in team-a, one of them finished: only the live one counts.
    seed_node(&srv, "n1", true).await;
    srv.put_json(
        "/nomos/jobversions/team-a/web/00000000000000000000",
        &json!({"id": "web", "namespace": "team-a", "type": "service", "datacenters": ["dc1"],
                "groups": [{"name": "g", "count": 2, "tasks": [{"name": "t", "driver": "raw_exec",
                "resources": {"cpu": 300, "memory_mb": 128}}]}]}),
    )
    .await;
    for id in ["a1", "a2"] {
        srv.put_json(
            &format!("/nomos/allocs/n1/{id}"),
            &json!({"id": id, "namespace": "team-a", "job_id": "web", "job_version": 0,
                    "task_group": "g", "name": "web.g[0]", "node": "n1", "desired_status": "run"}),
        )
        .await;
    }
    srv.put_json(
        "/nomos/allocstatus/n1/a2",
        &json!({"alloc_id": "a2", "client_status": "complete"}),
    )
    .await;
    let (code, usage) = srv.get("/v1/quota/usage/team-a").await;
    assert_eq!(code, 200, "{usage}");
    let used = &usage["Used"]["global"]["RegionLimit"];
    assert_eq!(
        (
            used["CPU"].as_i64(),
            used["MemoryMB"].as_i64(),
            used["Allocations"].as_i64()
        ),
        (Some(300), Some(128), Some(1))
    );
    assert_eq!(usage["Namespaces"], json!(["team-a"]));

    let (code, body) = srv.delete("/v1/quota/team-a").await;
    assert_eq!(code, 400, "{body}");
    assert!(
        error_of(&body).contains("attached to namespaces [team-a]"),
        "{body}"
    );
    let (code, _) = srv.post("/v1/namespace/team-a", json!({"Quota": ""})).await;
    assert_eq!(code, 200);
    let (code, body) = srv.delete("/v1/quota/team-a").await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = srv.get("/v1/quota/team-a").await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn bad_quotas_are_refused_naming_the_field() {
    let srv = TestServer::start().await;
    let cases = [
        ("/v1/quota/q", json!({"Name": "q"}), "no limits"),
        (
            "/v1/quota/q",
            json!({"Limits": [{"Region": "eu", "RegionLimit": {"CPU": 1}}]}),
            "Limits[0].Region",
        ),
        ("/v1/quota/q_1", quota_body("q_1", 1, 1, 1), "quota name"),
        ("/v1/quota/q", quota_body("other", 1, 1, 1), "differs"),
        ("/v1/quota", json!({"Limits": []}), "quota name"),
        (
            "/v1/quota/q",
            json!({"Limits": [{"Region": "global", "RegionLimit": {"CPU": "lots"}}]}),
            "CPU",
        ),
    ];
    for (path, body, want) in cases {
        let (code, answer) = srv.post(path, body.clone()).await;
        assert_eq!(code, 400, "{path} {body}: {answer}");
        assert!(error_of(&answer).contains(want), "{path} {body}: {answer}");
    }
    let (code, _) = srv.get("/v1/quota/usage/missing").await;
    assert_eq!(code, 404);
    srv.stop().await;
}

async fn acl_call(
    srv: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = srv.client.request(method.clone(), srv.url(path));
    if let Some(t) = token {
        req = req.header("X-Nomad-Token", t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    common::decode(req.send().await.unwrap()).await
}

#[tokio::test]
async fn with_acls_writes_need_management_and_lists_show_what_a_token_can_see() {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        acl: AclConfig { enabled: true },
        ..ServerConfig::default()
    };
    let srv = TestServer::start_with_config(|s| s, config).await;
    let (_, boot) = acl_call(&srv, "POST", "/v1/acl/bootstrap", None, Some(json!({}))).await;
    let root = boot["SecretID"].as_str().unwrap().to_string();
    for ns in ["a", "b"] {
        let (code, body) = acl_call(
            &srv,
            "POST",
            &format!("/v1/namespace/{ns}"),
            Some(&root),
            Some(json!({})),
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }
    let (code, _) = acl_call(
        &srv,
        "POST",
        "/v1/quota/qa",
        Some(&root),
        Some(quota_body("qa", 1000, 0, 0)),
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = acl_call(
        &srv,
        "POST",
        "/v1/namespace/a",
        Some(&root),
        Some(json!({"Quota": "qa"})),
    )
    .await;
    assert_eq!(code, 200);
    let rules = "namespace \"a\" {\n  policy = \"read\"\n}";
    let (code, _) = acl_call(
        &srv,
        "POST",
        "/v1/acl/policy/ra",
        Some(&root),
        Some(json!({"Name": "ra", "Rules": rules})),
    )
    .await;
    assert_eq!(code, 200);
    let (_, t) = acl_call(
        &srv,
        "POST",
        "/v1/acl/token",
        Some(&root),
        Some(json!({"Name": "t", "Type": "client", "Policies": ["ra"]})),
    )
    .await;
    let reader = t["SecretID"].as_str().unwrap().to_string();

    let (code, list) = acl_call(&srv, "GET", "/v1/namespaces", Some(&reader), None).await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["Name"], "a");
    let (_, all) = acl_call(&srv, "GET", "/v1/namespaces", Some(&root), None).await;
    assert_eq!(
        all.as_array().unwrap().len(),
        3,
        "management sees every namespace: {all}"
    );
    let (code, _) = acl_call(&srv, "GET", "/v1/namespace/b", Some(&reader), None).await;
    assert_eq!(code, 403);
    let (code, _) = acl_call(&srv, "GET", "/v1/quota/qa", Some(&reader), None).await;
    assert_eq!(code, 200, "the quota of a namespace the token can see");
    let (code, _) = acl_call(&srv, "GET", "/v1/quota/usage/qa", Some(&reader), None).await;
    assert_eq!(code, 200);

    for (method, path, body) in [
        ("POST", "/v1/namespace/c", json!({})),
        ("DELETE", "/v1/namespace/b", json!({})),
        ("POST", "/v1/quota/qb", quota_body("qb", 1, 1, 1)),
        ("DELETE", "/v1/quota/qa", json!({})),
    ] {
        for token in [Some(reader.as_str()), None] {
            let (code, answer) = acl_call(&srv, method, path, token, Some(body.clone())).await;
            assert_eq!(code, 403, "{method} {path} as {token:?}: {answer}");
        }
    }
    let (code, _) = acl_call(&srv, "GET", "/v1/namespaces", None, None).await;
    assert_eq!(code, 403, "anonymous, with no anonymous policy");
    srv.stop().await;
}
