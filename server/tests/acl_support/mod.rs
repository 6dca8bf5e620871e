//! Helpers shared by the ACL test files: a server with ACLs on, calls with a token, and
//! bootstrap, policy, role and token fixtures.

#![allow(dead_code)]

use nomos_server::acl::AclConfig;
use nomos_server::ServerConfig;
use serde_json::{json, Value};

use crate::common::{TestServer, WEB_HCL};

pub async fn acl_server() -> TestServer {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        acl: AclConfig { enabled: true },
        ..ServerConfig::default()
    };
    TestServer::start_with_config(|s| s, config).await
}

/// Sends `method path` with `token` (none: anonymous) and a JSON body on writes; answers the
/// status and the body.
pub async fn call(
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
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

/// [`call`], expecting `want` and answering the body as JSON.
pub async fn expect(
    srv: &TestServer,
    want: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Value {
    let (code, text) = call(srv, method, path, token, body).await;
    assert_eq!(code, want, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// Bootstraps; answers the management secret.
pub async fn bootstrap(srv: &TestServer) -> String {
    let t = expect(srv, 200, "POST", "/v1/acl/bootstrap", None, None).await;
    t["SecretID"].as_str().unwrap().to_string()
}

pub async fn policy(srv: &TestServer, root: &str, name: &str, rules: &str) {
    let path = format!("/v1/acl/policy/{name}");
    let body = json!({"Name": name, "Rules": rules});
    expect(srv, 200, "POST", &path, Some(root), Some(body)).await;
}

/// A policy granting `policy` in namespace `ns`.
pub async fn ns_policy(srv: &TestServer, root: &str, name: &str, ns: &str, policy_: &str) {
    let rules = format!("namespace \"{ns}\" {{\n  policy = \"{policy_}\"\n}}");
    policy(srv, root, name, &rules).await;
}

/// Creates a token from `body`; answers it.
pub async fn token_with(srv: &TestServer, root: &str, body: Value) -> Value {
    expect(srv, 200, "POST", "/v1/acl/token", Some(root), Some(body)).await
}

/// A client token with `policies`; answers (accessor, secret).
pub async fn token(srv: &TestServer, root: &str, policies: &[&str]) -> (String, String) {
    let t = token_with(
        srv,
        root,
        json!({"Name": "t", "Type": "client", "Policies": policies}),
    )
    .await;
    (
        t["AccessorID"].as_str().unwrap().into(),
        t["SecretID"].as_str().unwrap().into(),
    )
}

/// A role with `policies`; answers it.
pub async fn role(srv: &TestServer, root: &str, name: &str, policies: &[&str]) -> Value {
    let links: Vec<Value> = policies.iter().map(|p| json!({"Name": p})).collect();
    let body = json!({"Name": name, "Description": "test role", "Policies": links});
    expect(srv, 200, "POST", "/v1/acl/role", Some(root), Some(body)).await
}

/// The apply body of the `web` job in `namespace`.
pub fn apply_body(namespace: &str) -> Value {
    let src = WEB_HCL.replacen(
        "job \"web\" {",
        &format!("job \"web\" {{\n  namespace = \"{namespace}\""),
        1,
    );
    let parsed = nomos_api::parse_source("web.hcl", &src, &Default::default()).expect("parses");
    crate::common::register_body(&parsed.jobs[0], &src)
}

/// Creates namespace `name` (jobs are accepted only in namespaces that exist).
pub async fn namespace(srv: &TestServer, root: &str, name: &str) {
    let path = format!("/v1/namespace/{name}");
    let body = json!({"Name": name});
    expect(srv, 200, "POST", &path, Some(root), Some(body)).await;
}
