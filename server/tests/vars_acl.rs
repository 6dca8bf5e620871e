//! Variables with ACLs on: path capabilities from policies' `variables` blocks, and workload
//! identities reading their own job's variables (and what policies bound to their job allow).

mod common;

use common::TestServer;
use nomos_server::acl::AclConfig;
use nomos_server::identity::{IdentityClaims, AUDIENCE};
use nomos_server::{AppState, ServerConfig};
use serde_json::{json, Value};

async fn acl_server() -> (TestServer, AppState) {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        acl: AclConfig { enabled: true },
        ..ServerConfig::default()
    };
    let mut state = None;
    let srv = TestServer::start_with_config(
        |s| {
            state = Some(s.clone());
            s
        },
        config,
    )
    .await;
    (srv, state.expect("configured"))
}

async fn call(
    srv: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = srv.client.request(method, srv.url(path));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    common::decode(req.send().await.expect("request")).await
}

async fn bootstrap(srv: &TestServer) -> String {
    let (code, t) = call(srv, "POST", "/v1/acl/bootstrap", None, Some(json!({}))).await;
    assert_eq!(code, 200, "{t}");
    t["SecretID"].as_str().unwrap().to_string()
}

async fn policy(srv: &TestServer, root: &str, name: &str, rules: &str, job_acl: Option<Value>) {
    let mut body = json!({"Name": name, "Rules": rules});
    if let Some(j) = job_acl {
        body["JobACL"] = j;
    }
    let (code, e) = call(
        srv,
        "POST",
        &format!("/v1/acl/policy/{name}"),
        Some(root),
        Some(body),
    )
    .await;
    assert_eq!(code, 200, "{e}");
}

async fn token(srv: &TestServer, root: &str, policies: &[&str]) -> String {
    let body = json!({"Name": "t", "Type": "client", "Policies": policies});
    let (code, t) = call(srv, "POST", "/v1/acl/token", Some(root), Some(body)).await;
    assert_eq!(code, 200, "{t}");
    t["SecretID"].as_str().unwrap().to_string()
}

async fn put_var(srv: &TestServer, token: &str, path: &str, value: &str) -> u16 {
    let body = json!({"Items": {"v": value}});
    call(
        srv,
        "PUT",
        &format!("/v1/var/{path}"),
        Some(token),
        Some(body),
    )
    .await
    .0
}

#[tokio::test]
async fn a_read_token_on_a_glob_reads_under_it_and_nothing_else() {
    let (srv, _) = acl_server().await;
    let root = bootstrap(&srv).await;
    for path in ["a/b", "b/c"] {
        assert_eq!(put_var(&srv, &root, path, "secret").await, 200);
    }
    let rules = r#"namespace "default" {
  variables {
    path "a/*" { capabilities = ["read"] }
  }
}"#;
    policy(&srv, &root, "a-read", rules, None).await;
    let reader = token(&srv, &root, &["a-read"]).await;

    let (code, v) = call(&srv, "GET", "/v1/var/a/b", Some(&reader), None).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["Items"]["v"], "secret");
    assert!(v.get("Lock").is_none());
    assert_eq!(put_var(&srv, &reader, "a/b", "mine").await, 403);
    let (code, _) = call(&srv, "DELETE", "/v1/var/a/b", Some(&reader), None).await;
    assert_eq!(code, 403);
    let (code, e) = call(&srv, "GET", "/v1/var/b/c", Some(&reader), None).await;
    assert_eq!(code, 403, "{e}");
    assert_eq!(e, "Permission denied");
    // Missing paths the token may not read are 403, not 404: existence does not leak.
    let (code, _) = call(&srv, "GET", "/v1/var/b/nothing", Some(&reader), None).await;
    assert_eq!(code, 403);
    let (code, _) = call(
        &srv,
        "GET",
        "/v1/var/a/b?namespace=prod",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(code, 403);
    // Lists keep what the token may list.
    let (code, list) = call(&srv, "GET", "/v1/vars?namespace=*", Some(&reader), None).await;
    assert_eq!(code, 200, "{list}");
    let paths: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["a/b"]);
    // Without a token (no anonymous policy): refused.
    let (code, _) = call(&srv, "GET", "/v1/vars", None, None).await;
    assert_eq!(code, 403);
    let (code, _) = call(&srv, "GET", "/v1/var/a/b", None, None).await;
    assert_eq!(code, 403);
    // A namespace policy grants no variable capability.
    policy(
        &srv,
        &root,
        "ns-write",
        r#"namespace "default" { policy = "write" }"#,
        None,
    )
    .await;
    let writer = token(&srv, &root, &["ns-write"]).await;
    let (code, _) = call(&srv, "GET", "/v1/var/a/b", Some(&writer), None).await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn a_conflict_shows_items_only_to_a_caller_who_may_read_them() {
    let (srv, _) = acl_server().await;
    let root = bootstrap(&srv).await;
    assert_eq!(put_var(&srv, &root, "w/x", "secret").await, 200);
    let rules = r#"namespace "default" {
  variables {
    path "w/*" { capabilities = ["write"] }
  }
}"#;
    policy(&srv, &root, "w-write", rules, None).await;
    let writer = token(&srv, &root, &["w-write"]).await;
    let body = json!({"Items": {"v": "new"}});
    let (code, conflict) = call(&srv, "PUT", "/v1/var/w/x?cas=0", Some(&writer), Some(body)).await;
    assert_eq!(code, 409, "{conflict}");
    assert_eq!(conflict["Path"], "w/x");
    assert!(conflict.get("Items").is_none(), "{conflict}");
    assert!(!conflict.to_string().contains("secret"));
    // Write alone does not read.
    let (code, _) = call(&srv, "GET", "/v1/var/w/x", Some(&writer), None).await;
    assert_eq!(code, 403);
    let (code, conflict) = call(
        &srv,
        "PUT",
        "/v1/var/w/x?cas=0",
        Some(&root),
        Some(json!({"Items": {"v": "n"}})),
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(conflict["Items"]["v"], "secret");
}

/// The allocation `aaaa1111-0000` of job `web`, group `frontend` (seeded), task `server`.
fn claims(alloc: &str, job: &str, group: &str) -> IdentityClaims {
    let now = jiff::Timestamp::now().as_second();
    IdentityClaims {
        aud: vec![AUDIENCE.to_string()],
        sub: format!("global:default:{job}:{group}:server:default"),
        nomad_namespace: "default".into(),
        nomad_job_id: job.into(),
        nomad_allocation_id: alloc.into(),
        nomad_task: "server".into(),
        nomos_group: group.into(),
        nomos_node: String::new(),
        iat: now,
        nbf: now,
        exp: None,
        jti: uuid::Uuid::new_v4().to_string(),
    }
}

#[tokio::test]
async fn a_workload_identity_reads_its_own_job_variables_and_nothing_else() {
    let (srv, st) = acl_server().await;
    let root = bootstrap(&srv).await;
    common::seed_allocs(&srv).await;
    for path in [
        "nomad/jobs/web",
        "nomad/jobs/web/frontend",
        "nomad/jobs/web/frontend/server",
        "nomad/jobs/web/frontend/other",
        "nomad/jobs/db",
        "shared/x",
    ] {
        assert_eq!(put_var(&srv, &root, path, path).await, 200, "{path}");
    }
    let jwt = st
        .keyring
        .sign_identity(&claims("aaaa1111-0000", "web", "frontend"))
        .await
        .unwrap();
    for path in [
        "nomad/jobs/web",
        "nomad/jobs/web/frontend",
        "nomad/jobs/web/frontend/server",
    ] {
        let (code, v) = call(&srv, "GET", &format!("/v1/var/{path}"), Some(&jwt), None).await;
        assert_eq!(code, 200, "{path}: {v}");
        assert_eq!(v["Items"]["v"], path);
    }
    for path in ["nomad/jobs/db", "nomad/jobs/web/frontend/other", "shared/x"] {
        let (code, _) = call(&srv, "GET", &format!("/v1/var/{path}"), Some(&jwt), None).await;
        assert_eq!(code, 403, "{path}");
    }
    assert_eq!(put_var(&srv, &jwt, "nomad/jobs/web", "mine").await, 403);
    let (code, _) = call(
        &srv,
        "GET",
        "/v1/var/nomad/jobs/web?namespace=prod",
        Some(&jwt),
        None,
    )
    .await;
    assert_eq!(code, 403);
    let (code, list) = call(&srv, "GET", "/v1/vars?prefix=nomad/", Some(&jwt), None).await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    // Nothing else is granted: no jobs, no nodes, no ACL self.
    for path in ["/v1/jobs", "/v1/nodes", "/v1/acl/token/self"] {
        let (code, _) = call(&srv, "GET", path, Some(&jwt), None).await;
        assert_eq!(code, 403, "{path}");
    }
    // A policy bound to the job adds its paths; one bound to another job does not.
    let shared = r#"namespace "default" {
  variables {
    path "shared/*" { capabilities = ["read"] }
  }
}"#;
    policy(
        &srv,
        &root,
        "db-shared",
        shared,
        Some(json!({"Namespace": "default", "JobID": "db"})),
    )
    .await;
    let (code, _) = call(&srv, "GET", "/v1/var/shared/x", Some(&jwt), None).await;
    assert_eq!(code, 403);
    let bound = json!({"Namespace": "default", "JobID": "web", "Group": "frontend"});
    policy(&srv, &root, "web-shared", shared, Some(bound)).await;
    let (code, v) = call(&srv, "GET", "/v1/var/shared/x", Some(&jwt), None).await;
    assert_eq!(code, 200, "{v}");
    let (_, p) = call(&srv, "GET", "/v1/acl/policy/web-shared", Some(&root), None).await;
    assert_eq!(p["JobACL"]["JobID"], "web");
}

#[tokio::test]
async fn a_workload_identity_is_refused_once_its_allocation_is_gone_or_if_forged() {
    let (srv, st) = acl_server().await;
    let root = bootstrap(&srv).await;
    common::seed_allocs(&srv).await;
    assert_eq!(put_var(&srv, &root, "nomad/jobs/web", "v").await, 200);
    let jwt = st
        .keyring
        .sign_identity(&claims("aaaa1111-0000", "web", "frontend"))
        .await
        .unwrap();
    let (code, _) = call(&srv, "GET", "/v1/var/nomad/jobs/web", Some(&jwt), None).await;
    assert_eq!(code, 200);
    // Claims that do not match the allocation (another job's, or a made-up allocation).
    let lying = st
        .keyring
        .sign_identity(&claims("bbbb3333-0000", "web", "frontend"))
        .await
        .unwrap();
    let (code, e) = call(&srv, "GET", "/v1/var/nomad/jobs/web", Some(&lying), None).await;
    assert_eq!(code, 403, "{e}");
    let ghost = st
        .keyring
        .sign_identity(&claims("ffff0000-0000", "web", "frontend"))
        .await
        .unwrap();
    let (code, _) = call(&srv, "GET", "/v1/var/nomad/jobs/web", Some(&ghost), None).await;
    assert_eq!(code, 403);
    // A tampered signature.
    let mut forged: Vec<char> = jwt.chars().collect();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let (code, _) = call(&srv, "GET", "/v1/var/nomad/jobs/web", Some(&forged), None).await;
    assert_eq!(code, 403);
    // The allocation is collected: the identity no longer works.
    srv.store
        .delete(
            nomos_store::KeySelector::key("/nomos/allocs/n1/aaaa1111-0000"),
            Default::default(),
        )
        .await
        .unwrap();
    let (code, e) = call(&srv, "GET", "/v1/var/nomad/jobs/web", Some(&jwt), None).await;
    assert_eq!(code, 403, "{e}");
    assert!(e.as_str().unwrap().contains("no longer exists"), "{e}");
}

#[tokio::test]
async fn a_job_acl_must_name_a_namespace_and_job() {
    let (srv, _) = acl_server().await;
    let root = bootstrap(&srv).await;
    let rules = r#"namespace "default" { policy = "read" }"#;
    for (job_acl, want) in [
        (
            json!({"Namespace": "default"}),
            "JobACL: a job ACL needs both Namespace and JobID",
        ),
        (
            json!({"Namespace": "default", "JobID": "web", "Task": "t"}),
            "needs its Group",
        ),
    ] {
        let body = json!({"Name": "p", "Rules": rules, "JobACL": job_acl});
        let (code, e) = call(&srv, "POST", "/v1/acl/policy/p", Some(&root), Some(body)).await;
        assert_eq!(code, 400, "{e}");
        assert!(e.as_str().unwrap().contains(want), "{e}");
    }
}

#[tokio::test]
async fn an_identity_naming_its_node_is_checked_against_that_nodes_allocation() {
    let (srv, st) = acl_server().await;
    let root = bootstrap(&srv).await;
    common::seed_allocs(&srv).await;
    assert_eq!(put_var(&srv, &root, "nomad/jobs/web", "w").await, 200);
    let on = |node: &str| IdentityClaims {
        nomos_node: node.into(),
        ..claims("aaaa1111-0000", "web", "frontend")
    };
    let right = st.keyring.sign_identity(&on("n1")).await.unwrap();
    let (code, v) = call(&srv, "GET", "/v1/var/nomad/jobs/web", Some(&right), None).await;
    assert_eq!(code, 200, "{v}");
    for node in ["n2", "../n1", "n1/aaaa1111-0000"] {
        let wrong = st.keyring.sign_identity(&on(node)).await.unwrap();
        let (code, _) = call(&srv, "GET", "/v1/var/nomad/jobs/web", Some(&wrong), None).await;
        assert_eq!(code, 403, "{node}");
    }
}
