//! The browser guard over real HTTP: what a web page in the user's browser can send to a
//! server on 127.0.0.1 (simple cross-site POSTs, forms, DNS-rebound names) is refused before
//! any handler runs, while curl-like clients and the server's own UI keep working.

mod common;

use common::*;
use nomos_server::guard::{GuardConfig, HostCheck};
use nomos_server::ServerConfig;
use serde_json::{json, Value};

/// A raw_exec job, as a probe page would post it: it would run as root under `nctl dev`.
const ROOT_JOB: &str = r#"job "pwn" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "id > /tmp/pwned"]
      }
    }
  }
}
"#;

/// The body that submits the job to `path`: a register for `/v1/jobs`, a job file for the plan.
fn root_job_body(path: &str) -> String {
    if path.ends_with("/plan") {
        return common::plan_body("pwn.hcl", ROOT_JOB).to_string();
    }
    let parsed = nomos_api::parse_source("pwn.hcl", ROOT_JOB, &Default::default()).unwrap();
    common::register_body(&parsed.jobs[0], ROOT_JOB).to_string()
}

/// Sends `method path` with exactly these headers (and `body`, if any): `(status, JSON body)`.
async fn send(
    srv: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (u16, Value) {
    let mut req = srv.client.request(method.parse().unwrap(), srv.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.body(body);
    }
    decode(req.send().await.expect("request")).await
}

/// POSTs the raw_exec job to `path` (`/v1/jobs` or `/v1/job/pwn/plan`) with these headers.
async fn post_job(srv: &TestServer, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    send(srv, "POST", path, headers, Some(root_job_body(path))).await
}

/// GETs `path` with these headers.
async fn get_with(srv: &TestServer, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    send(srv, "GET", path, headers, None).await
}

/// The `Host` header of a request addressed to the test server under `name`.
fn host_named(srv: &TestServer, name: &str) -> String {
    let port = srv.base.rsplit(':').next().unwrap();
    format!("{name}:{port}")
}

async fn assert_no_job_stored(srv: &TestServer) {
    assert_eq!(srv.read_json("/nomos/jobs/default/pwn").await, None);
    let (code, jobs) = srv.get("/v1/jobs").await;
    assert_eq!((code, jobs), (200, json!([])));
}

#[tokio::test]
async fn cross_site_text_plain_post_of_a_raw_exec_job_is_refused_and_stores_nothing() {
    let srv = TestServer::start().await;
    // What `fetch(url, {method: "POST", mode: "no-cors", body})` sends: no preflight.
    let (code, body) = post_job(
        &srv,
        "/v1/jobs",
        &[
            ("content-type", "text/plain;charset=UTF-8"),
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
        ],
    )
    .await;
    assert_eq!(code, 403, "{body}");
    let msg = body.as_str().unwrap();
    assert!(msg.contains("cross-site request refused"), "{msg}");
    // An older browser sends no Sec-Fetch-* but still names its origin.
    let (code, body) = post_job(
        &srv,
        "/v1/jobs",
        &[
            ("content-type", "text/plain"),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert_no_job_stored(&srv).await;
    srv.stop().await;
}

#[tokio::test]
async fn form_posts_are_refused_with_or_without_an_origin() {
    let srv = TestServer::start().await;
    let form = "source=job+%22pwn%22+%7B%7D&filename=pwn.hcl".to_string();
    let form_type = ("content-type", "application/x-www-form-urlencoded");
    let (code, body) = send(
        &srv,
        "POST",
        "/v1/jobs",
        &[
            form_type,
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
        ],
        Some(form.clone()),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    // `curl -d` sends a form too: it is told to send JSON.
    let (code, body) = send(&srv, "POST", "/v1/jobs", &[form_type], Some(form)).await;
    assert_eq!(code, 415, "{body}");
    let msg = body.as_str().unwrap();
    assert!(
        msg.contains("expected Content-Type application/json"),
        "{msg}"
    );
    // A text/plain form whose fields spell JSON is no better.
    let (code, body) = post_job(&srv, "/v1/jobs", &[("content-type", "text/plain")]).await;
    assert_eq!(code, 415, "{body}");
    assert_no_job_stored(&srv).await;
    srv.stop().await;
}

#[tokio::test]
async fn curl_like_json_posts_without_an_origin_work_and_untyped_bodies_only_outside_browsers() {
    let srv = TestServer::start().await;
    let (code, body) = post_job(
        &srv,
        "/v1/job/pwn/plan",
        &[("content-type", "application/json; charset=utf-8")],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = post_job(&srv, "/v1/jobs", &[("content-type", "application/json")]).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["Outcome"], "created");
    // A body-less write needs no content type (`curl -X DELETE`).
    let (code, body) = send(&srv, "DELETE", "/v1/job/pwn", &[], None).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = send(&srv, "DELETE", "/v1/job/pwn?purge=true", &[], None).await;
    assert_eq!(code, 200, "{body}");
    // A body without a type from a browser (a page's Blob: it carries Origin or Sec-Fetch-*)
    // is refused, even from the server's own origin.
    let own = srv.base.clone();
    for marks in [
        vec![("origin", own.as_str())],
        vec![
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-mode", "cors"),
        ],
    ] {
        let (code, body) = post_job(&srv, "/v1/jobs", &marks).await;
        assert_eq!(code, 415, "{marks:?}: {body}");
        assert_no_job_stored(&srv).await;
    }
    // From a client that is not a browser it is JSON as Nomad's Go client sends it.
    let (code, body) = post_job(&srv, "/v1/jobs", &[]).await;
    assert_eq!(code, 200, "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn ui_pages_answer_their_own_origin_and_refuse_other_sites() {
    let srv = TestServer::start().await;
    let own = srv.base.clone();
    let typed = [("sec-fetch-site", "none"), ("sec-fetch-mode", "navigate")];
    let htmx = [
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-mode", "cors"),
        ("hx-request", "true"),
    ];
    let fetch_own = [("sec-fetch-site", "same-origin"), ("origin", own.as_str())];
    for (path, headers) in [
        ("/ui", &typed[..]),
        ("/ui/fragments/jobs", &htmx[..]),
        ("/ui/series", &fetch_own[..]),
        ("/v1/jobs", &fetch_own[..]),
    ] {
        let (code, body) = get_with(&srv, path, headers).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    let evil_fetch = [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-mode", "cors"),
        ("origin", "https://evil.example"),
    ];
    let evil_script = [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-mode", "no-cors"),
    ];
    for (path, headers) in [
        ("/ui/fragments/jobs", &evil_fetch[..]),
        ("/ui/series", &evil_fetch[..]),
        ("/v1/jobs", &evil_script[..]),
        ("/metrics", &evil_script[..]),
        ("/no/such/path", &evil_script[..]),
    ] {
        let (code, body) = get_with(&srv, path, headers).await;
        assert_eq!(code, 403, "{path}: {body}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn own_origin_json_writes_pass_and_foreign_origins_do_not() {
    let srv = TestServer::start().await;
    let own = srv.base.clone();
    let json_type = ("content-type", "application/json");
    for origin in ["http://127.0.0.1:1", "null", "http://localhost:3000"] {
        let (code, body) = post_job(&srv, "/v1/jobs", &[json_type, ("origin", origin)]).await;
        assert_eq!(code, 403, "{origin}: {body}");
    }
    assert_no_job_stored(&srv).await;
    let (code, body) = post_job(
        &srv,
        "/v1/jobs",
        &[
            json_type,
            ("origin", own.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn loopback_server_answers_localhost_and_refuses_a_rebound_host() {
    let srv = TestServer::start().await;
    for name in ["localhost", "127.0.0.1", "[::1]"] {
        let host = host_named(&srv, name);
        let (code, body) = get_with(&srv, "/v1/jobs", &[("host", &host)]).await;
        assert_eq!(code, 200, "{host}: {body}");
    }
    // evil.example resolving to 127.0.0.1: the page is "same-origin" with itself.
    let evil = host_named(&srv, "evil.example");
    let rebound = [("host", evil.as_str()), ("sec-fetch-site", "same-origin")];
    for path in ["/v1/jobs", "/ui", "/metrics"] {
        let (code, body) = get_with(&srv, path, &rebound).await;
        assert_eq!(code, 403, "{path}: {body}");
        if path == "/v1/jobs" {
            let msg = body.as_str().unwrap();
            assert!(msg.contains("Host \"evil.example:"), "{msg}");
        }
    }
    let (code, body) = post_job(
        &srv,
        "/v1/jobs",
        &[
            ("host", evil.as_str()),
            ("origin", &format!("http://{evil}")),
            ("content-type", "application/json"),
        ],
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert_no_job_stored(&srv).await;
    srv.stop().await;
}

#[tokio::test]
async fn non_loopback_server_checks_host_only_when_configured() {
    let on_all = |guard| ServerConfig {
        http_addr: "0.0.0.0:0".parse().unwrap(),
        guard,
        ..ServerConfig::default()
    };
    let srv = TestServer::start_with_config(|s| s, on_all(GuardConfig::default())).await;
    let (code, body) = get_with(&srv, "/v1/jobs", &[("host", "nomos.example")]).await;
    assert_eq!(code, 200, "off by default: {body}");
    srv.stop().await;

    let checked = GuardConfig {
        host_check: HostCheck::On,
        allowed_hosts: vec!["nomos.example".parse().unwrap()],
        ..GuardConfig::default()
    };
    let srv = TestServer::start_with_config(|s| s, on_all(checked)).await;
    let (code, body) = get_with(&srv, "/v1/jobs", &[("host", "nomos.example")]).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = get_with(&srv, "/v1/jobs", &[("host", "evil.example")]).await;
    assert_eq!(code, 403, "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn allowed_origins_may_call_from_another_site() {
    let config = ServerConfig {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        guard: GuardConfig {
            allowed_origins: vec!["https://dash.example.com".parse().unwrap()],
            ..GuardConfig::default()
        },
        ..ServerConfig::default()
    };
    let srv = TestServer::start_with_config(|s| s, config).await;
    let from = |origin| {
        [
            ("content-type", "application/json"),
            ("origin", origin),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "cors"),
        ]
    };
    let (code, body) = post_job(&srv, "/v1/job/pwn/plan", &from("https://other.example.com")).await;
    assert_eq!(code, 403, "{body}");
    let (code, body) = post_job(&srv, "/v1/job/pwn/plan", &from("https://dash.example.com")).await;
    assert_eq!(code, 200, "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn refused_requests_are_counted_by_route_and_code() {
    let srv = TestServer::start().await;
    let (code, _) = post_job(&srv, "/v1/jobs", &[("content-type", "text/plain")]).await;
    assert_eq!(code, 415);
    let resp = srv.client.get(srv.url("/metrics")).send().await.unwrap();
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(r#"nomos_http_requests_total{route="/v1/jobs",method="POST",code="415"} 1"#),
        "{text}"
    );
    srv.stop().await;
}
