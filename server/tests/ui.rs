//! The web UI over real HTTP: every page and fragment for seeded jobs, nodes and allocations
//! (written into the store as the controllers and agents write them), error pages, escaping,
//! the embedded assets and the resource series.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// `(status, content type, body)` of a GET.
async fn fetch(srv: &TestServer, path: &str) -> (u16, String, String) {
    let resp = srv.client.get(srv.url(path)).send().await.expect("GET");
    let code = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (code, ct, resp.text().await.expect("body"))
}

/// A page that answered 200 with HTML.
async fn page(srv: &TestServer, path: &str) -> String {
    let (code, ct, body) = fetch(srv, path).await;
    assert_eq!(code, 200, "{path}: {body}");
    assert!(ct.starts_with("text/html"), "{path}: {ct}");
    body
}

const NIGHTLY_HCL: &str = r#"job "nightly" {
  type = "batch"
  periodic {
    crons            = ["0 3 * * *"]
    prohibit_overlap = true
  }
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
    }
  }
}
"#;

/// Two nodes (n1 ready, n2 disconnected), job `web` with a status, a deployment and
/// allocations (one running with task events), and the periodic job `nightly` with two children.
async fn seed(srv: &TestServer) {
    seed_node(srv, "n1", true).await;
    seed_node(srv, "n2", false).await;
    let (code, body) = apply_source(srv, "web.hcl", WEB_HCL).await;
    assert_eq!(code, 200, "{body}");
    // Version 0, as the jobs controller accepts it: the allocations run it (their usage is
    // what it asks for).
    let web = srv.read_json("/nomos/jobs/default/web").await.unwrap();
    srv.put_json(&nomos_store::keys::job_version("default", "web", 0), &web)
        .await;
    seed_allocs(srv).await;
    let now = nomos_api::now_ms();
    srv.put_json(
        "/nomos/allocstatus/n1/aaaa1111-0000",
        &json!({"alloc_id": "aaaa1111-0000", "client_status": "running", "healthy": true,
                "task_states": {"server": {"state": "running", "restarts": 1,
                    "started_at_ms": now - 60_000,
                    "events": [
                        {"time_ms": now - 120_000, "type": "Received", "message": "Task received by client"},
                        {"time_ms": now - 90_000, "type": "Terminated", "message": "Exit status 1", "exit_code": 1},
                        {"time_ms": now - 60_000, "type": "Started", "message": "Task started by client"}
                    ]}}}),
    )
    .await;
    srv.put_json(
        "/nomos/jobstatus/default/web",
        &json!({"status": "running", "version": 3, "stable_version": 2,
                "summary": {"frontend": {"running": 1, "queued": 1, "failed": 4}},
                "placement_failures": {"frontend": "1 of 2 not placed: memory exhausted on 1 node"},
                "latest_deployment": "dep-1234"}),
    )
    .await;
    srv.put_json(
        "/nomos/deployments/default/web/dep-1234",
        &json!({"id": "dep-1234", "namespace": "default", "job_id": "web", "job_version": 3,
                "status": "running", "status_description": "Deployment is running",
                "created_at_ms": now - 30_000,
                "groups": {"frontend": {"desired_total": 2, "desired_canaries": 1,
                                        "placed_canaries": ["aaaa1111-0000"], "placed": 1, "healthy": 1}}}),
    )
    .await;

    let (code, body) = apply_source(srv, "nightly.hcl", NIGHTLY_HCL).await;
    assert_eq!(code, 200, "{body}");
    let parent = srv.read_json("/nomos/jobs/default/nightly").await.unwrap();
    for (tick, status) in [(1_700_000_000i64, "dead"), (1_700_086_400, "running")] {
        let id = format!("nightly-periodic-{tick}");
        let mut child = parent.clone();
        child["id"] = json!(id);
        child["name"] = json!(format!("nightly/periodic-{tick}"));
        child["periodic"] = Value::Null;
        child["labels"] = json!({"nomos/periodic-parent": "nightly",
                                 "nomos/periodic-launch": tick.to_string()});
        srv.put_json(&format!("/nomos/jobs/default/{id}"), &child)
            .await;
        srv.put_json(
            &format!("/nomos/jobstatus/default/{id}"),
            &json!({"status": status, "summary": {"g": {"complete": 1}}}),
        )
        .await;
    }
    srv.put_json(
        "/nomos/jobstatus/default/nightly",
        &json!({"status": "running", "version": 0,
                "periodic": {"next_launch_ms": now + 3_630_000, "last_launch_ms": now - 7_200_000,
                             "last_success_ms": now - 7_000_000, "skipped_overlaps": 2}}),
    )
    .await;
}

#[tokio::test]
async fn the_overview_shows_counts_jobs_with_group_summaries_and_nodes_with_usage() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let html = page(&srv, "/ui").await;
    // Counts.
    assert!(html.contains("<b>2</b> jobs"), "{html}");
    assert!(html.contains("1 ready · 1 disconnected · 0 down"), "{html}");
    assert!(html.contains("<b>1</b> running allocation\n"), "{html}");
    // Jobs, with per-group summaries and periodic children folded under their parent.
    assert!(html.contains(r#"<a href="/ui/job/web">web</a>"#), "{html}");
    assert!(
        html.contains(r#"<a href="/ui/job/nightly">nightly</a>"#),
        "{html}"
    );
    assert!(html.contains("2 periodic children"), "{html}");
    assert!(!html.contains("/ui/job/nightly-periodic-"), "{html}");
    assert!(html.contains(r#"<td class="n c-failed">4</td>"#), "{html}");
    // Nodes with status and allocated / capacity bars: n1 holds two web allocations of
    // 100 MHz / 64 MiB each.
    assert!(html.contains(r#"<a href="/ui/node/n1">n1</a>"#), "{html}");
    assert!(html.contains(r#"<span class="status s-disconnected">disconnected</span>"#));
    assert!(html.contains("200 MHz &#x2f; 4.0 GHz"), "{html}");
    assert!(html.contains("128 MiB &#x2f; 4.0 GiB"), "{html}");
    // Live updates and the chart.
    assert!(html.contains(r#"hx-get="/ui/fragments/jobs""#), "{html}");
    assert!(html.contains(r#"hx-get="/ui/fragments/nodes""#), "{html}");
    assert!(html.contains(r#"hx-get="/ui/fragments/counts""#), "{html}");
    assert!(
        html.contains(r#"id="chart" data-src="/ui/series""#),
        "{html}"
    );
    assert!(html.contains("/ui/assets/vendor/htmx-2.0.11/htmx.min.js"));
    assert!(html.contains("/ui/assets/vendor/uplot-1.6.32/uPlot.iife.min.js"));
    srv.stop().await;
}

#[tokio::test]
async fn fragments_render_their_tables_without_the_layout() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    for (path, want) in [
        ("/ui/fragments/jobs", r#"<a href="/ui/job/web">web</a>"#),
        ("/ui/fragments/nodes", r#"<a href="/ui/node/n2">n2</a>"#),
        ("/ui/fragments/counts", "<b>2</b> nodes"),
        ("/ui/fragments/job/web", "Task groups"),
        ("/ui/fragments/node/n1", "Resources"),
        (
            "/ui/fragments/allocation/aaaa1111",
            "Task started by client",
        ),
    ] {
        let html = page(&srv, path).await;
        assert!(html.contains(want), "{path}: {html}");
        assert!(!html.contains("<html"), "{path} is a fragment: {html}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn the_job_page_shows_groups_failures_the_deployment_and_allocations() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let html = page(&srv, "/ui/job/web").await;
    assert!(html.contains("<title>Job web · Nomos</title>"), "{html}");
    assert!(html.contains("<dt>Type</dt><dd>service</dd>"), "{html}");
    assert!(
        html.contains("3 <small class=\"muted\">(stable 2)</small>"),
        "{html}"
    );
    assert!(html.contains("server (raw_exec)"), "{html}");
    assert!(
        html.contains("1 of 2 not placed: memory exhausted on 1 node"),
        "{html}"
    );
    // Latest deployment.
    assert!(html.contains("Latest deployment"), "{html}");
    assert!(
        html.contains(r#"<span class="mono">dep-1234</span>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<td class="n">1/1</td>"#),
        "canaries placed of desired: {html}"
    );
    // Allocations, linking to their pages and nodes, newest live first.
    assert!(
        html.contains(r#"<a class="mono" href="/ui/allocation/aaaa1111-0000" title="web.frontend[0]">aaaa1111</a>"#),
        "{html}"
    );
    assert!(html.contains(r#"<a href="/ui/node/n1">n1</a>"#), "{html}");
    assert!(
        !html.contains("bbbb3333"),
        "another job's allocation: {html}"
    );
    assert!(html.contains(r#"hx-get="/ui/fragments/job/web""#), "{html}");
    // A unique prefix finds the job too.
    let html = page(&srv, "/ui/job/we").await;
    assert!(html.contains("<title>Job web · Nomos</title>"), "{html}");
    srv.stop().await;
}

#[tokio::test]
async fn the_job_page_shows_deployment_ids_in_full() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    srv.put_json(
        "/nomos/deployments/default/web/gitops-v12",
        &json!({"id": "gitops-v12", "namespace": "default", "job_id": "web", "job_version": 12,
                "status": "running", "created_at_ms": nomos_api::now_ms(),
                "groups": {"frontend": {"desired_total": 2}}}),
    )
    .await;
    let mut status = srv.read_json("/nomos/jobstatus/default/web").await.unwrap();
    status["latest_deployment"] = json!("gitops-v12");
    srv.put_json("/nomos/jobstatus/default/web", &status).await;
    let html = page(&srv, "/ui/job/web").await;
    assert!(
        html.contains(r#"<span class="mono">gitops-v12</span>"#),
        "the whole ID, never cut to 8 characters: {html}"
    );
    assert!(!html.contains(">gitops-v<"), "{html}");
    srv.stop().await;
}

#[tokio::test]
async fn a_periodic_job_page_shows_its_schedule_status_and_children() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let html = page(&srv, "/ui/job/nightly").await;
    assert!(html.contains("Periodic"), "{html}");
    assert!(html.contains("0 3 * * *"), "{html}");
    assert!(
        html.contains("<dt>Next launch</dt><dd><span title=\""),
        "{html}"
    );
    assert!(html.contains(">in 1h</span>"), "{html}");
    assert!(html.contains(">2h ago</span>"), "last launch: {html}");
    assert!(
        html.contains("<dt>Last failure</dt><dd><span title=\"\">—</span>"),
        "{html}"
    );
    assert!(
        html.contains("<dt>Skipped overlaps</dt><dd>2</dd>"),
        "{html}"
    );
    // Children, newest launch first.
    let newer = html
        .find(r#"href="/ui/job/nightly-periodic-1700086400""#)
        .expect("newer child listed");
    let older = html
        .find(r#"href="/ui/job/nightly-periodic-1700000000""#)
        .expect("older child listed");
    assert!(newer < older, "{html}");
    assert!(
        html.contains("2023-11-14 22:13:20 UTC"),
        "launch time: {html}"
    );
    // A child links back to its parent.
    let child = page(&srv, "/ui/job/nightly-periodic-1700000000").await;
    assert!(
        child.contains(r#"<a href="/ui/job/nightly">nightly</a> ›"#),
        "{child}"
    );
    assert!(
        child.contains(r#"<span class="status s-dead">dead</span>"#),
        "{child}"
    );
    srv.stop().await;
}

/// After `node drain --disable` the page shows the last report without a deadline counting
/// down, even while the report still carries the old one.
#[tokio::test]
async fn a_drain_no_longer_requested_shows_no_deadline() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let (code, body) = srv
        .post(
            "/v1/node/n1/drain",
            json!({"DrainSpec": null, "MarkEligible": true}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let in_an_hour = nomos_api::now_ms() + 3_600_000;
    srv.put_json(
        "/nomos/drainstatus/n1",
        &json!({"state": "complete", "started_at_ms": 5, "deadline_ms": in_an_hour}),
    )
    .await;
    let html = page(&srv, "/ui/node/n1").await;
    assert!(
        html.contains(r#"<span class="status s-complete">complete</span>"#),
        "{html}"
    );
    assert!(
        !html.contains(">in 1h</span>") && !html.contains(">in 59m</span>"),
        "no deadline: {html}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn the_node_page_shows_resources_drain_and_allocations() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let (code, body) = srv
        .post(
            "/v1/node/n1/drain",
            json!({"DrainSpec": {"Deadline": 3_600_000_000_000_i64}}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    srv.put_json(
        "/nomos/drainstatus/n1",
        &json!({"state": "blocked", "started_at_ms": 5, "remaining": 2, "migrating": 1,
                "nowhere_to_go": ["aaaa2222: no node has room"]}),
    )
    .await;
    let html = page(&srv, "/ui/node/n1").await;
    assert!(html.contains("<title>Node n1 · Nomos</title>"), "{html}");
    assert!(
        html.contains("<dd class=\"mono\">n1-id-0001</dd>"),
        "{html}"
    );
    assert!(
        html.contains("4.0 GHz <small class=\"muted\">(2 cores)</small>"),
        "{html}"
    );
    assert!(html.contains("200 MHz &#x2f; 4.0 GHz"), "{html}");
    assert!(html.contains("20000–20100"), "{html}");
    assert!(html.contains("<dd>ineligible</dd>"), "{html}");
    assert!(
        html.contains(r#"<span class="status s-blocked">blocked</span>"#),
        "{html}"
    );
    assert!(html.contains("<dt>Remaining</dt><dd>2</dd>"), "{html}");
    assert!(html.contains("aaaa2222: no node has room"), "{html}");
    assert!(
        html.contains(">in 1h</span>") || html.contains(">in 59m</span>"),
        "the deadline: {html}"
    );
    assert!(
        html.contains("<td>raw_exec</td><td>yes</td><td>yes</td>"),
        "{html}"
    );
    assert!(
        html.contains(r#"href="/ui/allocation/aaaa2222-0000""#),
        "{html}"
    );
    assert!(
        !html.contains("bbbb3333"),
        "another node's allocation: {html}"
    );
    assert!(html.contains(r#"hx-get="/ui/fragments/node/n1""#), "{html}");

    let html = page(&srv, "/ui/node/n2").await;
    assert!(html.contains("Not draining."), "{html}");
    assert!(
        html.contains(r#"<span class="status s-disconnected">"#),
        "{html}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn the_allocation_page_shows_task_states_recent_events_and_log_links() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let html = page(&srv, "/ui/allocation/aaaa1").await;
    assert!(
        html.contains("<title>Allocation aaaa1111 · Nomos</title>"),
        "{html}"
    );
    assert!(html.contains(r#"<a href="/ui/job/web">web</a>"#), "{html}");
    assert!(html.contains(r#"<a href="/ui/node/n1">n1</a>"#), "{html}");
    assert!(html.contains("<dt>Health</dt><dd>healthy</dd>"), "{html}");
    assert!(html.contains("restarts 1"), "{html}");
    // Events newest first, with exit codes.
    let started = html.find("Task started by client").expect("event");
    let received = html.find("Task received by client").expect("event");
    assert!(started < received, "{html}");
    assert!(html.contains("exit code 1"), "{html}");
    // Logs through the API.
    assert!(
        html.contains(
            r#"href="/v1/client/fs/logs/aaaa1111-0000?plain=true&amp;task=server">stdout</a>"#
        ),
        "{html}"
    );
    assert!(
        html.contains(
            r#"href="/v1/client/fs/logs/aaaa1111-0000?plain=true&amp;task=server&amp;type=stderr">stderr</a>"#
        ),
        "{html}"
    );
    // Before its agent reports, an allocation lists its spec's tasks as pending.
    let html = page(&srv, "/ui/allocation/aaaa2222").await;
    assert!(
        html.contains("<h3>server <span class=\"status s-pending\">pending</span>"),
        "{html}"
    );
    // An allocation of a job without a spec still renders.
    let html = page(&srv, "/ui/allocation/bbbb").await;
    assert!(
        html.contains("The agent has not reported any task yet."),
        "{html}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn job_and_allocation_pages_show_their_services_and_health() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    for (id, alloc, port, healthy) in [
        ("i1", "aaaa1111-0000", 20001, true),
        ("i2", "aaaa2222-0000", 20002, false),
    ] {
        let reg = serde_json::json!({"id": id, "service_name": "web-http", "namespace": "default",
            "job_id": "web", "alloc_id": alloc, "address": "10.0.0.1", "port": port,
            "tags": ["v1"], "healthy": healthy});
        srv.put_json(&format!("/nomos/services/default/web-http/{id}"), &reg)
            .await;
    }
    let html = page(&srv, "/ui/job/web").await;
    assert!(html.contains("<h2>Services</h2>"), "{html}");
    assert!(html.contains("<td>web-http</td>"), "{html}");
    assert!(html.contains("1/2"), "one of two instances healthy: {html}");
    let html = page(&srv, "/ui/allocation/aaaa1111").await;
    assert!(
        html.contains(r#"<td class="mono">10.0.0.1:20001</td>"#),
        "{html}"
    );
    assert!(
        !html.contains("20002"),
        "another allocation's instance: {html}"
    );
    assert!(html.contains("s-passing"), "{html}");
    let html = page(&srv, "/ui/allocation/bbbb").await;
    assert!(
        !html.contains("<h2>Services</h2>"),
        "no instances, no section: {html}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn unknown_objects_and_paths_get_html_404_pages() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    for path in [
        "/ui/job/nope",
        "/ui/node/nope",
        "/ui/allocation/zzzz",
        "/ui/fragments/job/nope",
        "/ui/fragments/node/nope",
        "/ui/fragments/allocation/zzzz",
        "/ui/assets/nope.js",
        "/ui/nothing/here",
    ] {
        let (code, ct, body) = fetch(&srv, path).await;
        assert_eq!(code, 404, "{path}: {body}");
        assert!(ct.starts_with("text/html"), "{path}: {ct}");
        assert!(body.contains("404 · Not Found"), "{path}: {body}");
        assert!(body.contains("Back to the overview"), "{path}: {body}");
    }
    // An ambiguous prefix says so.
    let (code, _, body) = fetch(&srv, "/ui/allocation/aaaa").await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("matches 2"), "{body}");
    // The API keeps its JSON 404.
    let (code, body) = srv.get("/v1/job/nope").await;
    assert_eq!(code, 404);
    assert!(body.is_string(), "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn a_spec_that_does_not_decode_gets_a_page_with_its_errors_and_is_listed_invalid() {
    let srv = TestServer::start().await;
    srv.store
        .put(
            b"/nomos/jobs/default/broken".to_vec(),
            b"{ not json".to_vec(),
            Default::default(),
        )
        .await
        .unwrap();
    let (code, ct, body) = fetch(&srv, "/ui/job/broken").await;
    assert_eq!(code, 200, "{body}");
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(
        body.contains("no version of it was ever accepted: nothing runs"),
        "{body}"
    );
    assert!(
        body.contains("&#x2f;nomos&#x2f;jobs&#x2f;default&#x2f;broken"),
        "the error names the key: {body}"
    );
    let html = page(&srv, "/ui").await;
    assert!(
        html.contains(r#"<span class="status s-invalid">invalid</span>"#),
        "{html}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn job_names_and_values_are_html_escaped() {
    let srv = TestServer::start().await;
    // A spec written straight into the store (as GitOps may) with markup in its name.
    srv.put_json(
        "/nomos/jobs/default/xss",
        &json!({"id": "xss", "name": "<script>alert(1)</script>", "namespace": "default",
                "type": "service", "groups": [{"name": "<b>g<b>", "count": 1,
                "tasks": [{"name": "t", "driver": "raw_exec"}]}]}),
    )
    .await;
    srv.put_json(
        "/nomos/jobstatus/default/xss",
        &json!({"status": "running", "summary": {"<b>g<b>": {"running": 1}},
                "errors": ["<img src=x onerror=alert(1)>"]}),
    )
    .await;
    for path in ["/ui", "/ui/job/xss", "/ui/fragments/jobs"] {
        let html = page(&srv, path).await;
        assert!(!html.contains("<script>alert"), "{path}: {html}");
        assert!(!html.contains("<b>g<b>"), "{path}: {html}");
        assert!(!html.contains("<img"), "{path}: {html}");
        assert!(html.contains("&lt;b&gt;g&lt;b&gt;"), "{path}: {html}");
    }
    let html = page(&srv, "/ui/job/xss").await;
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{html}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn assets_are_served_with_their_content_types() {
    let srv = TestServer::start().await;
    for (path, ct, want) in [
        ("/ui/assets/style.css", "text/css", ".bar"),
        ("/ui/assets/ui.js", "text/javascript", "uPlot"),
        (
            "/ui/assets/usage-chart.js",
            "text/javascript",
            "usage-chart",
        ),
        (
            "/ui/assets/vendor/htmx-2.0.11/htmx.min.js",
            "text/javascript",
            "htmx",
        ),
        (
            "/ui/assets/vendor/uplot-1.6.32/uPlot.iife.min.js",
            "text/javascript",
            "uPlot",
        ),
        (
            "/ui/assets/vendor/uplot-1.6.32/uPlot.min.css",
            "text/css",
            ".uplot",
        ),
        ("/ui/assets/vendor/htmx-2.0.11/LICENSE", "text/plain", "BSD"),
        (
            "/ui/assets/vendor/uplot-1.6.32/LICENSE",
            "text/plain",
            "MIT",
        ),
    ] {
        let (code, got, body) = fetch(&srv, path).await;
        assert_eq!(code, 200, "{path}");
        assert!(got.starts_with(ct), "{path}: {got}");
        assert!(body.contains(want), "{path}");
    }
    let resp = srv
        .client
        .get(srv.url("/ui/assets/vendor/htmx-2.0.11/htmx.min.js"))
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    srv.stop().await;
}

#[tokio::test]
async fn the_root_redirects_to_the_ui() {
    let srv = TestServer::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/", "/ui/"] {
        let resp = client.get(srv.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 303, "{path}");
        assert_eq!(resp.headers()["location"], "/ui", "{path}");
    }
    srv.stop().await;
}

/// A usage report as n1's agent writes it: two samples of allocation `aaaa1111-0000` (web).
fn usage_report(t: i64) -> Value {
    let point = |t: i64, cpu: u64| json!({"t": t, "cpu_mhz": cpu, "memory_bytes": 64u64 << 20});
    let node_point = |t: i64, cpu: u64| {
        json!({"t": t, "cpu_mhz": cpu, "memory_bytes": 64u64 << 20,
        "cpu_mhz_allocated": 200, "memory_bytes_allocated": 128u64 << 20,
        "cpu_mhz_capacity": 4000, "memory_bytes_capacity": 4096u64 << 20, "running_allocs": 1})
    };
    json!({"node": "n1", "interval_secs": 10, "t": t,
           "allocs": {"aaaa1111-0000": {"namespace": "default", "job": "web", "group": "frontend",
                "cpu_mhz_allocated": 200, "memory_mb_allocated": 128,
                "tasks": {"server": {"cpu_seconds": 12.5, "cpu_percent": 10.0, "cpu_mhz": 300,
                                     "memory_bytes": 64u64 << 20, "source": "procfs"}},
                "history": [point(t - 10, 250), point(t, 300)]}},
           "history": [node_point(t - 10, 250), node_point(t, 300)]})
}

#[tokio::test]
async fn the_charts_are_computed_from_the_usage_reports_in_the_store() {
    let srv = TestServer::start_with(
        |mut s| {
            s.ui = nomos_server::ui::UiState::sampling_every(Duration::from_millis(50));
            s
        },
        nomos_server::DEFAULT_BODY_LIMIT,
    )
    .await;
    seed(&srv).await;
    let (code, body) = srv.get("/ui/series").await;
    assert_eq!(
        (code, &body["points"]),
        (200, &json!([])),
        "no report yet: {body}"
    );
    let t = nomos_api::now_ms() / 1000 / 10 * 10;
    srv.put_json("/nomos/usage/n1", &usage_report(t)).await;

    let (code, body) = srv.get("/ui/series").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["interval_ms"], 50, "{body}");
    let point = body["points"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(point["t"], t, "{point}");
    assert_eq!(point["cpu_measured_mhz"], 300, "{point}");
    assert_eq!(point["memory_measured_mb"], 64, "{point}");
    assert_eq!(point["cpu_used_mhz"], 200, "{point}");
    assert_eq!(point["cpu_total_mhz"], 4000, "{point}");
    assert_eq!(point["memory_total_mb"], 4096, "{point}");
    assert_eq!(point["running_allocs"], 1, "{point}");

    let (code, node) = srv.get("/ui/series/node/n1").await;
    assert_eq!(
        (code, node["points"].as_array().unwrap().len()),
        (200, 2),
        "{node}"
    );
    let (code, alloc) = srv.get("/ui/series/allocation/aaaa1111").await;
    assert_eq!(code, 200, "{alloc}");
    assert_eq!(alloc["points"][1]["cpu_mhz"], 300, "{alloc}");
    let (code, job) = srv.get("/ui/series/job/web?namespace=default").await;
    assert_eq!(code, 200, "{job}");
    assert_eq!(job["points"][1]["memory_bytes"], 64u64 << 20, "{job}");

    for path in [
        "/ui/series/node/nope",
        "/ui/series/allocation/ffffffff",
        "/ui/series/job/nope",
    ] {
        assert_eq!(srv.get(path).await.0, 404, "{path}");
    }
    for path in ["/ui/node/n1", "/ui/allocation/aaaa1111-0000", "/ui/job/web"] {
        let html = page(&srv, path).await;
        assert!(html.contains("class=\"usage-chart\""), "{path}: {html}");
        assert!(html.contains("/ui/series/"), "{path}: {html}");
    }
    srv.stop().await;
}
