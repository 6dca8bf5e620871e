//! The remaining writes of Nomad's API over real HTTP: a version marked stable, a node purged
//! (with the real jobs controller replacing what ran there, and a real agent registering its
//! node again), the scheduler configuration stored (and placements following it), and node
//! pools written and deleted. Each with its refusals: bad bodies, unknown IDs, wrong methods,
//! a `cas` that does not hold, built-in pools.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use nomos_store::{keys, PutOptions, Store};
use serde_json::{json, Value};

/// An error answer's message, whether the body is `{"error": "..."}` or plain text.
fn error_text(body: &Value) -> String {
    match body {
        Value::String(s) => s.clone(),
        other => other["error"].as_str().unwrap_or_default().to_string(),
    }
}

/// Sends `method path` with a JSON body.
async fn send(srv: &TestServer, method: &str, path: &str, body: Value) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let resp = srv
        .client
        .request(method, srv.url(path))
        .json(&body)
        .send()
        .await
        .expect("request");
    decode(resp).await
}

/// Job `web`: `count` instances of a task asking for a quarter of a seeded node.
fn web(count: u32) -> String {
    format!(
        r#"
job "web" {{
  datacenters = ["dc1"]
  group "api" {{
    count = {count}
    task "server" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sleep"
        args    = ["3600"]
      }}
      resources {{
        cpu    = 1000
        memory = 1024
      }}
    }}
  }}
}}
"#
    )
}

/// The allocations of `job` desired to run, as `(id, node name)`.
async fn running_on(srv: &TestServer, job: &str) -> Vec<(String, String)> {
    let (_, allocs) = srv.get(&format!("/v1/job/{job}/allocations")).await;
    allocs
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["DesiredStatus"] == "run")
        .map(|a| {
            let text = |f: &str| a[f].as_str().unwrap_or_default().to_string();
            (text("ID"), text("NodeName"))
        })
        .collect()
}

/// Waits until `job` has `n` allocations desired to run.
async fn until_running(srv: &TestServer, job: &str, n: usize) -> Vec<(String, String)> {
    for _ in 0..200 {
        let now = running_on(srv, job).await;
        if now.len() == n {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{job} never had {n} allocations running");
}

// --- PUT|POST /v1/job/{id}/stable -------------------------------------------------------------

/// A server with the jobs controller, a node, and job `web` accepted as version 0.
async fn web_with_one_version() -> (TestServer, tokio::sync::oneshot::Sender<()>) {
    let (srv, stop) = with_controller().await;
    seed_node(&srv, "n1", true).await;
    let (code, answer) = apply_source(&srv, "web.nomad", &web(1)).await;
    assert_eq!(code, 200, "{answer}");
    until(&srv, "/v1/job/web/versions", |b| {
        b["Versions"].as_array().is_some_and(|v| v.len() == 1)
    })
    .await;
    (srv, stop)
}

#[tokio::test]
async fn a_version_marked_stable_or_not_shows_in_the_job_and_its_versions() {
    let (srv, stop) = web_with_one_version().await;
    let (_, job) = srv.get("/v1/job/web").await;
    assert_eq!(job["Stable"], false, "nothing ran yet: {job}");

    for (method, stable) in [("PUT", true), ("POST", false), ("PUT", true)] {
        let body = json!({"JobID": "web", "JobVersion": 0, "Stable": stable});
        let (code, resp) = send(&srv, method, "/v1/job/web/stable", body).await;
        assert_eq!(code, 200, "{resp}");
        let index = resp["Index"].as_i64().unwrap();
        assert!(index > 0, "{resp}");
        assert_eq!(resp["JobModifyIndex"], index);
        let (_, job) = srv.get("/v1/job/web").await;
        assert_eq!(job["Stable"], stable, "{method}: {job}");
        let (_, versions) = srv.get("/v1/job/web/versions").await;
        assert_eq!(versions["Versions"][0]["Stable"], stable, "{versions}");
    }
    let _ = stop.send(());
    srv.stop().await;
}

#[tokio::test]
async fn marking_stability_refuses_unknown_jobs_versions_bad_bodies_and_reads() {
    let (srv, stop) = web_with_one_version().await;
    let cases = [
        (
            "/v1/job/nope/stable",
            json!({"JobVersion": 0, "Stable": true}),
            404,
            "nope",
        ),
        (
            "/v1/job/web/stable",
            json!({"JobVersion": 7, "Stable": true}),
            404,
            "no version 7",
        ),
        (
            "/v1/job/web/stable",
            json!({"JobID": "db", "Stable": true}),
            400,
            "does not match",
        ),
        ("/v1/job/web/stable", json!({"Stabel": true}), 400, "Stabel"),
        (
            "/v1/job/web/stable",
            json!({"JobVersion": "one"}),
            400,
            "JobVersion",
        ),
    ];
    for (path, body, want, says) in cases {
        let (code, resp) = srv.post(path, body.clone()).await;
        assert_eq!(code, want, "{body}: {resp}");
        assert!(error_text(&resp).contains(says), "{body}: {resp}");
    }
    let (code, _) = srv.get("/v1/job/web/stable").await;
    assert_eq!(code, 405);
    assert!(srv
        .read_json(&keys::job_stability("default", "web"))
        .await
        .is_none());
    let _ = stop.send(());
    srv.stop().await;
}

// --- PUT|POST /v1/node/{id}/purge -------------------------------------------------------------

/// A heartbeat key for `node` on a lease of its own, as an agent keeps it; returns the lease.
async fn heartbeat_on_lease(srv: &TestServer, node: &str) -> i64 {
    let lease = srv.store.lease_grant(60, 0).await.unwrap().id;
    let opts = PutOptions {
        lease,
        ..Default::default()
    };
    srv.store
        .put(keys::heartbeat(node).into_bytes(), b"{}".to_vec(), opts)
        .await
        .unwrap();
    lease
}

#[tokio::test]
async fn a_purged_node_is_forgotten_and_its_allocations_are_lost() {
    let srv = TestServer::start().await;
    seed_node(&srv, "n1", false).await;
    let lease = heartbeat_on_lease(&srv, "n1").await;
    seed_allocs(&srv).await;
    srv.post("/v1/node/n1/drain", json!({"DrainSpec": {"Deadline": 0}}))
        .await;
    srv.put_json(
        &keys::usage("n1"),
        &json!({"node": "n1", "interval_secs": 10, "t": 1}),
    )
    .await;

    let (code, resp) = srv.post("/v1/node/n1-id/purge", json!({})).await;
    assert_eq!(code, 200, "{resp}");
    let evals = resp["EvalIDs"].as_array().unwrap();
    assert_eq!(evals.len(), 1, "one job had allocations there: {resp}");
    let node_index = resp["NodeModifyIndex"].as_i64().unwrap();
    assert!(node_index > 0, "{resp}");
    assert!(
        resp["EvalCreateIndex"].as_i64().unwrap() > node_index,
        "{resp}"
    );
    assert_eq!(resp["Index"], resp["EvalCreateIndex"]);
    let (_, eval) = srv
        .get(&format!("/v1/evaluation/{}", evals[0].as_str().unwrap()))
        .await;
    assert_eq!(eval["TriggeredBy"], "node-update", "{eval}");
    assert_eq!(eval["JobID"], "web");
    assert_eq!(eval["NodeID"], "n1-id-0001");

    let (code, _) = srv.get("/v1/node/n1").await;
    assert_eq!(code, 404);
    for key in [
        keys::node("n1"),
        keys::node_spec("n1"),
        keys::heartbeat("n1"),
        keys::usage("n1"),
    ] {
        assert!(srv.read_json(&key).await.is_none(), "{key} is gone");
    }
    let ttl = srv
        .store
        .lease_time_to_live(lease, false)
        .await
        .map_or(-1, |l| l.ttl);
    assert_eq!(
        ttl, -1,
        "the heartbeat lease is revoked, so a live agent registers again"
    );
    for id in ["aaaa1111-0000", "aaaa2222-0000"] {
        let status = srv.read_json(&keys::alloc_status("n1", id)).await.unwrap();
        assert_eq!(status["client_status"], "lost", "{id}: {status}");
        assert_eq!(status["client_description"], "node n1 purged");
        let alloc = srv.read_json(&keys::alloc("n1", id)).await.unwrap();
        assert_eq!(alloc["desired_status"], "stop", "{id}: {alloc}");
        assert_eq!(
            alloc["desired_description"],
            "node n1 purged; allocation lost"
        );
    }
    assert!(
        srv.read_json(&keys::alloc_status("n2", "bbbb3333-0000"))
            .await
            .is_none(),
        "another node's allocations are left alone"
    );

    let (code, resp) = srv.post("/v1/node/n1/purge", json!({})).await;
    assert_eq!(code, 404, "a purged node is unknown: {resp}");
    assert!(error_text(&resp).contains("n1"), "{resp}");
    let (code, _) = srv.get("/v1/node/n2/purge").await;
    assert_eq!(code, 405);
    srv.stop().await;
}

/// `n` allocations of job `web` desired to run on node `n1`.
async fn many_allocs_on_n1(srv: &TestServer, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("cccc{i:04}-0000")).collect();
    for (i, id) in ids.iter().enumerate() {
        srv.put_json(
            &keys::alloc("n1", id),
            &json!({"id": id, "namespace": "default", "job_id": "web", "task_group": "frontend",
                    "name": format!("web.frontend[{i}]"), "node": "n1", "desired_status": "run"}),
        )
        .await;
    }
    ids
}

#[tokio::test]
async fn a_node_with_many_allocations_is_purged_whole() {
    let srv = TestServer::start().await;
    seed_node(&srv, "n1", true).await;
    let ids = many_allocs_on_n1(&srv, 120).await;
    let (code, resp) = srv.post("/v1/node/n1/purge", json!({})).await;
    assert_eq!(code, 200, "{resp}");
    for id in &ids {
        let alloc = srv.read_json(&keys::alloc("n1", id)).await.unwrap();
        assert_eq!(alloc["desired_status"], "stop", "{id}: {alloc}");
        let status = srv.read_json(&keys::alloc_status("n1", id)).await.unwrap();
        assert_eq!(status["client_status"], "lost", "{id}: {status}");
    }
    assert!(srv.read_json(&keys::node("n1")).await.is_none());
    srv.stop().await;
}

#[tokio::test]
async fn a_purge_cut_short_runs_again_to_the_end() {
    let srv = TestServer::start().await;
    seed_node(&srv, "n1", true).await;
    let ids = many_allocs_on_n1(&srv, 70).await;
    // As a purge leaves it after its first batch: some allocations stopped and lost, the node
    // still known (its keys go last).
    for id in &ids[..50] {
        srv.put_json(
            &keys::alloc("n1", id),
            &json!({"id": id, "namespace": "default", "job_id": "web", "task_group": "frontend",
                    "name": "web.frontend[0]", "node": "n1", "desired_status": "stop",
                    "desired_description": "node n1 purged; allocation lost"}),
        )
        .await;
        srv.put_json(
            &keys::alloc_status("n1", id),
            &json!({"alloc_id": id, "client_status": "lost", "client_description": "node n1 purged"}),
        )
        .await;
    }
    let before = srv.read_json(&keys::alloc("n1", &ids[0])).await.unwrap();
    let (code, resp) = srv.post("/v1/node/n1/purge", json!({})).await;
    assert_eq!(
        code, 200,
        "the node is still known, so it purges again: {resp}"
    );
    for id in &ids {
        let alloc = srv.read_json(&keys::alloc("n1", id)).await.unwrap();
        assert_eq!(alloc["desired_status"], "stop", "{id}: {alloc}");
    }
    assert_eq!(
        srv.read_json(&keys::alloc("n1", &ids[0])).await.unwrap(),
        before,
        "what the first run stopped is left as it was"
    );
    assert!(srv.read_json(&keys::node("n1")).await.is_none());
    srv.stop().await;
}

#[tokio::test]
async fn a_purge_that_fails_midway_leaves_the_node_to_purge_again() {
    let srv = TestServer::start().await;
    seed_node(&srv, "n1", true).await;
    let ids = many_allocs_on_n1(&srv, 50).await;
    // Twenty more that sort after them, each so large that their batch is over the store's
    // request limit: the purge's second transaction fails.
    for i in 0..20 {
        let id = format!("dddd{i:04}-0000");
        srv.put_json(
            &keys::alloc("n1", &id),
            &json!({"id": id, "namespace": "default", "job_id": "web", "task_group": "frontend",
                    "name": "x".repeat(100_000), "node": "n1", "desired_status": "run"}),
        )
        .await;
    }
    let (code, resp) = srv.post("/v1/node/n1/purge", json!({})).await;
    assert_ne!(code, 200, "{resp}");
    let (code, _) = srv.get("/v1/node/n1").await;
    assert_eq!(code, 200, "the node's keys go last: it can be purged again");
    let first = srv.read_json(&keys::alloc("n1", &ids[0])).await.unwrap();
    assert_eq!(first["desired_status"], "stop", "the first batch is done");
    srv.stop().await;
}

#[tokio::test]
async fn the_jobs_controller_replaces_what_ran_on_a_purged_node() {
    let (srv, stop) = with_controller().await;
    seed_node(&srv, "n1", true).await;
    apply_source(&srv, "web.nomad", &web(1)).await;
    let before = until_running(&srv, "web", 1).await;
    assert_eq!(before[0].1, "n1");
    seed_node(&srv, "n2", true).await;

    let (code, resp) = send(&srv, "PUT", "/v1/node/n1/purge", json!({})).await;
    assert_eq!(code, 200, "{resp}");
    let after = until(&srv, "/v1/job/web/allocations", |b| {
        b.as_array().unwrap().iter().any(|a| a["NodeName"] == "n2")
    })
    .await;
    let original = after
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ID"] == before[0].0.as_str())
        .unwrap();
    assert_eq!(original["ClientStatus"], "lost", "{original}");
    assert_eq!(original["DesiredStatus"], "stop", "{original}");
    assert_eq!(until_running(&srv, "web", 1).await[0].1, "n2");
    let _ = stop.send(());
    srv.stop().await;
}

#[tokio::test]
async fn a_purged_node_whose_agent_runs_registers_again() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = nomos_agent::AgentConfig::new("n1", dir.path().join("n1"));
    config.heartbeat_ttl_secs = 2;
    config.enable_docker = false;
    config.enable_raw_exec = true;
    config.max_retry_backoff_ms = 500;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let store: Arc<dyn Store> = srv.store.clone();
    let agent = tokio::spawn(nomos_agent::run(config, store, async move {
        let _ = rx.await;
    }));
    let first = until(&srv, "/v1/node/n1", |n| n["Status"] == "ready").await;

    let (code, resp) = srv.post("/v1/node/n1/purge", json!({})).await;
    assert_eq!(code, 200, "{resp}");
    let again = until(&srv, "/v1/node/n1", |n| n["Status"] == "ready").await;
    assert_eq!(again["ID"], first["ID"], "the same node, registered again");
    assert!(
        again["CreateIndex"].as_i64() > first["CreateIndex"].as_i64(),
        "a new registration: {first} then {again}"
    );
    let _ = tx.send(());
    agent.await.unwrap().unwrap();
    srv.stop().await;
}

// --- /v1/operator/scheduler/configuration -----------------------------------------------------

#[tokio::test]
async fn the_scheduler_configuration_is_stored_with_cas_and_read_back() {
    let srv = TestServer::start().await;
    let path = "/v1/operator/scheduler/configuration";
    let (code, before) = srv.get(path).await;
    assert_eq!(code, 200, "{before}");
    let config = &before["SchedulerConfig"];
    assert_eq!(config["SchedulerAlgorithm"], "binpack", "{before}");
    assert_eq!(config["ModifyIndex"], 0, "the servers' default: {before}");

    let (code, resp) = send(&srv, "PUT", path, json!({"SchedulerAlgorithm": "spread"})).await;
    assert_eq!(code, 200, "{resp}");
    assert_eq!(resp["Updated"], true, "{resp}");
    let written = resp["Index"].as_i64().unwrap();
    let (_, after) = srv.get(path).await;
    let config = &after["SchedulerConfig"];
    assert_eq!(config["SchedulerAlgorithm"], "spread", "{after}");
    assert_eq!(config["ModifyIndex"], written, "{after}");
    assert_eq!(config["CreateIndex"], written, "{after}");
    assert_eq!(config["PreemptionConfig"]["ServiceSchedulerEnabled"], false);

    // A client's round trip: what it read (indexes included) goes back with a cas.
    let mut back = config.clone();
    back["SchedulerAlgorithm"] = json!("binpack");
    let stale = format!("{path}?cas={}", written - 1);
    let (code, resp) = srv.post(&stale, back.clone()).await;
    assert_eq!(code, 200, "{resp}");
    assert_eq!(resp["Updated"], false, "a cas that does not hold: {resp}");
    let (_, still) = srv.get(path).await;
    assert_eq!(still["SchedulerConfig"]["SchedulerAlgorithm"], "spread");
    let (code, resp) = srv.post(&format!("{path}?cas={written}"), back).await;
    assert_eq!(code, 200, "{resp}");
    assert_eq!(resp["Updated"], true, "{resp}");
    let (_, now) = srv.get(path).await;
    assert_eq!(now["SchedulerConfig"]["SchedulerAlgorithm"], "binpack");
    assert_eq!(now["SchedulerConfig"]["CreateIndex"], written);
    srv.stop().await;
}

#[tokio::test]
async fn a_scheduler_configuration_nomos_cannot_honour_is_refused() {
    let srv = TestServer::start().await;
    let path = "/v1/operator/scheduler/configuration";
    let cases = [
        (path, json!({"SchedulerAlgorithm": "random"}), "\"random\""),
        (
            path,
            json!({"PreemptionConfig": {"ServiceSchedulerEnabled": true}}),
            "ServiceSchedulerEnabled: Nomos has no preemption",
        ),
        (
            path,
            json!({"PreemptionConfig": {"SystemSchedulerEnabled": true, "BatchSchedulerEnabled": true}}),
            "BatchSchedulerEnabled",
        ),
        (
            path,
            json!({"MemoryOversubscriptionEnabled": true}),
            "MemoryOversubscriptionEnabled",
        ),
        (path, json!({"PauseEvalBroker": true}), "PauseEvalBroker"),
        (
            path,
            json!({"RejectJobRegistration": true}),
            "RejectJobRegistration",
        ),
        (
            path,
            json!({"SchedulerAlgoritm": "spread"}),
            "SchedulerAlgoritm",
        ),
        (
            path,
            json!({"PreemptionConfig": {"Everything": true}}),
            "Everything",
        ),
        (
            "/v1/operator/scheduler/configuration?cas=soon",
            json!({}),
            "cas",
        ),
    ];
    for (path, body, says) in cases {
        let (code, resp) = send(&srv, "PUT", path, body.clone()).await;
        assert_eq!(code, 400, "{body}: {resp}");
        assert!(error_text(&resp).contains(says), "{body}: {resp}");
    }
    assert!(
        srv.read_json(keys::SCHEDULER_CONFIG).await.is_none(),
        "nothing stored"
    );
    let (code, _) = srv.delete(path).await;
    assert_eq!(code, 405);
    srv.stop().await;
}

#[tokio::test]
async fn nomads_default_scheduler_configuration_is_stored_with_a_note_on_preemption() {
    let srv = TestServer::start().await;
    let path = "/v1/operator/scheduler/configuration";
    // The body Nomad's tools send by default (`nomad operator scheduler set-config` with no
    // flag changed, the Go api's defaults).
    let nomads_default = json!({
        "SchedulerAlgorithm": "binpack",
        "MemoryOversubscriptionEnabled": false,
        "RejectJobRegistration": false,
        "PauseEvalBroker": false,
        "PreemptionConfig": {
            "SystemSchedulerEnabled": true,
            "SysBatchSchedulerEnabled": false,
            "BatchSchedulerEnabled": false,
            "ServiceSchedulerEnabled": false,
        },
    });
    let (code, resp) = send(&srv, "PUT", path, nomads_default).await;
    assert_eq!(code, 200, "{resp}");
    assert_eq!(resp["Updated"], true, "{resp}");
    let warning = resp["Warnings"].as_str().unwrap();
    assert!(
        warning.contains("SystemSchedulerEnabled: recorded, has no effect"),
        "{resp}"
    );
    let (_, read) = srv.get(path).await;
    let preemption = &read["SchedulerConfig"]["PreemptionConfig"];
    assert_eq!(
        preemption["SystemSchedulerEnabled"], true,
        "as written: {read}"
    );
    assert_eq!(preemption["ServiceSchedulerEnabled"], false);
    assert_eq!(read["Warnings"], resp["Warnings"], "{read}");
    let stored = srv.read_json(keys::SCHEDULER_CONFIG).await.unwrap();
    assert_eq!(stored["PreemptionConfig"]["SystemSchedulerEnabled"], true);

    let (code, resp) = send(&srv, "PUT", path, json!({"SchedulerAlgorithm": "spread"})).await;
    assert_eq!((code, &resp["Warnings"]), (200, &json!("")), "{resp}");
    let (_, read) = srv.get(path).await;
    assert_eq!(read["Warnings"], "", "nothing to note: {read}");
    srv.stop().await;
}

/// Registers job `a`, then job `b`, one instance each in `pool`, and answers whether they share a node
/// (job anti-affinity keeps one job's instances apart under either algorithm, so two jobs
/// show the difference); then purges both.
async fn second_job_joins_the_first(srv: &TestServer, pool: &str) -> bool {
    let mut nodes = Vec::new();
    for job in ["a", "b"] {
        let src = web(1).replacen(
            "job \"web\" {",
            &format!("job \"{job}\" {{\n  node_pool = \"{pool}\""),
            1,
        );
        let (code, answer) = apply_source(srv, &format!("{job}.nomad"), &src).await;
        assert_eq!(code, 200, "{answer}");
        nodes.push(until_running(srv, job, 1).await[0].1.clone());
    }
    for job in ["a", "b"] {
        let (code, _) = srv.delete(&format!("/v1/job/{job}?purge=true")).await;
        assert_eq!(code, 200);
    }
    until(srv, "/v1/allocations", |b| {
        b.as_array().is_some_and(Vec::is_empty)
    })
    .await;
    nodes[0] == nodes[1]
}

#[tokio::test]
async fn placements_follow_the_stored_algorithm() {
    let (srv, stop) = with_controller().await;
    seed_node(&srv, "n1", true).await;
    seed_node(&srv, "n2", true).await;
    assert!(
        second_job_joins_the_first(&srv, "default").await,
        "the default: binpack"
    );
    let path = "/v1/operator/scheduler/configuration";
    let (code, _) = send(&srv, "PUT", path, json!({"SchedulerAlgorithm": "spread"})).await;
    assert_eq!(code, 200);
    assert!(!second_job_joins_the_first(&srv, "default").await, "spread");
    let (code, _) = send(&srv, "PUT", path, json!({"SchedulerAlgorithm": "binpack"})).await;
    assert_eq!(code, 200);
    assert!(
        second_job_joins_the_first(&srv, "default").await,
        "binpack again"
    );
    let _ = stop.send(());
    srv.stop().await;
}

// --- Node pools -------------------------------------------------------------------------------

#[tokio::test]
async fn a_pool_is_written_read_back_updated_and_deleted() {
    let srv = TestServer::start().await;
    let pool = json!({"Name": "prod-eng", "Description": "Production workloads",
                      "Meta": {"team": "eng"},
                      "SchedulerConfiguration": {"SchedulerAlgorithm": "spread"}});
    let (code, resp) = send(&srv, "PUT", "/v1/node/pools", pool).await;
    assert_eq!(code, 200, "{resp}");
    let (code, got) = srv.get("/v1/node/pool/prod-eng").await;
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["Description"], "Production workloads");
    assert_eq!(got["Meta"]["team"], "eng");
    assert_eq!(
        got["SchedulerConfiguration"]["SchedulerAlgorithm"],
        "spread"
    );
    assert!(got["ModifyIndex"].as_i64().unwrap() > 1, "{got}");
    let (_, list) = srv.get("/v1/node/pools").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["all", "default", "prod-eng"]);

    // Updated through the pool's own path, from what was read.
    let mut back = got.clone();
    back["Description"] = json!("Prod");
    let (code, resp) = srv.post("/v1/node/pool/prod-eng", back).await;
    assert_eq!(code, 200, "{resp}");
    let (_, got) = srv.get("/v1/node/pool/prod-eng").await;
    assert_eq!(got["Description"], "Prod");
    let (_, nodes) = srv.get("/v1/node/pool/prod-eng/nodes").await;
    assert_eq!(nodes, json!([]));

    let (code, resp) = srv.delete("/v1/node/pool/prod-eng").await;
    assert_eq!(code, 200, "{resp}");
    let (code, _) = srv.get("/v1/node/pool/prod-eng").await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn pool_writes_refuse_bad_names_built_ins_and_what_nomos_cannot_honour() {
    let srv = TestServer::start().await;
    let cases = [
        ("/v1/node/pools", json!({"Name": "a b"}), "node pool name"),
        ("/v1/node/pools", json!({}), "node pool name"),
        (
            "/v1/node/pools",
            json!({"Name": "x".repeat(129)}),
            "node pool name",
        ),
        ("/v1/node/pools", json!({"Name": "all"}), "built in"),
        (
            "/v1/node/pools",
            json!({"Name": "default", "Description": "mine"}),
            "built in",
        ),
        (
            "/v1/node/pools",
            json!({"Name": "p", "SchedulerConfiguration": {"SchedulerAlgorithm": "fast"}}),
            "\"fast\"",
        ),
        (
            "/v1/node/pools",
            json!({"Name": "p", "SchedulerConfiguration": {"MemoryOversubscriptionEnabled": true}}),
            "MemoryOversubscriptionEnabled",
        ),
        (
            "/v1/node/pools",
            json!({"Name": "p", "Colour": "red"}),
            "Colour",
        ),
        (
            "/v1/node/pools",
            json!({"Name": "p", "Description": "d".repeat(257)}),
            "Description",
        ),
        ("/v1/node/pool/p", json!({"Name": "q"}), "differs"),
    ];
    for (path, body, says) in cases {
        let (code, resp) = srv.post(path, body.clone()).await;
        assert_eq!(code, 400, "{body}: {resp}");
        assert!(error_text(&resp).contains(says), "{body}: {resp}");
    }
    let (_, list) = srv.get("/v1/node/pools").await;
    assert_eq!(list.as_array().unwrap().len(), 2, "nothing written: {list}");
    for builtin in ["all", "default"] {
        let (code, resp) = srv.delete(&format!("/v1/node/pool/{builtin}")).await;
        assert_eq!(code, 400, "{resp}");
        assert!(error_text(&resp).contains("built in"), "{resp}");
    }
    let (code, _) = srv.delete("/v1/node/pool/nope").await;
    assert_eq!(code, 404);
    let (code, _) = srv.delete("/v1/node/pools").await;
    assert_eq!(code, 405);
    srv.stop().await;
}

#[tokio::test]
async fn a_pool_with_nodes_or_jobs_is_not_deleted() {
    let srv = TestServer::start().await;
    srv.post("/v1/node/pools", json!({"Name": "edge"})).await;
    seed_node(&srv, "n1", true).await;
    let mut node = srv.read_json(&keys::node("n1")).await.unwrap();
    node["node_pool"] = json!("edge");
    srv.put_json(&keys::node("n1"), &node).await;
    let (code, resp) = srv.delete("/v1/node/pool/edge").await;
    assert_eq!(code, 409, "{resp}");
    assert!(error_text(&resp).contains("has nodes: n1"), "{resp}");

    // A pool only a node names is shown, and is not a stored pool to delete.
    node["node_pool"] = json!("rack7");
    srv.put_json(&keys::node("n1"), &node).await;
    let (code, got) = srv.get("/v1/node/pool/rack7").await;
    assert_eq!(code, 200, "{got}");
    let (code, resp) = srv.delete("/v1/node/pool/rack7").await;
    assert_eq!(code, 409, "{resp}");
    assert!(
        error_text(&resp).contains("nodes registered in it"),
        "{resp}"
    );

    let src = web(1).replacen("group", "node_pool = \"edge\"\n  group", 1);
    let (code, resp) = apply_source(&srv, "web.nomad", &src).await;
    assert_eq!(code, 200, "{resp}");
    let (code, resp) = srv.delete("/v1/node/pool/edge").await;
    assert_eq!(code, 409, "{resp}");
    assert!(error_text(&resp).contains("default/web"), "{resp}");
    srv.delete("/v1/job/web?purge=true").await;
    let (code, resp) = srv.delete("/v1/node/pool/edge").await;
    assert_eq!(code, 200, "{resp}");
    srv.stop().await;
}

#[tokio::test]
async fn a_pools_algorithm_places_its_jobs() {
    let (srv, stop) = with_controller().await;
    let pool = json!({"Name": "edge", "SchedulerConfiguration": {"SchedulerAlgorithm": "spread"}});
    let (code, _) = srv.post("/v1/node/pools", pool).await;
    assert_eq!(code, 200);
    for name in ["n1", "n2", "n3", "n4"] {
        seed_node(&srv, name, true).await;
    }
    for name in ["n3", "n4"] {
        let mut node = srv.read_json(&keys::node(name)).await.unwrap();
        node["node_pool"] = json!("edge");
        srv.put_json(&keys::node(name), &node).await;
    }
    assert!(
        !second_job_joins_the_first(&srv, "edge").await,
        "the pool spreads"
    );
    assert!(
        second_job_joins_the_first(&srv, "default").await,
        "while the cluster binpacks"
    );
    let _ = stop.send(());
    srv.stop().await;
}
