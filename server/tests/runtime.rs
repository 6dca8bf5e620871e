//! Allocations and nodes over real HTTP, with the controllers' and agents' keys written straight
//! into the store as they would write them (deployments have their own file, `deployments.rs`).

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn allocations_list_by_job_and_node_joined_with_their_status() {
    let srv = TestServer::start().await;
    seed_allocs(&srv).await;
    let (code, all) = srv.get("/v1/allocations").await;
    assert_eq!(code, 200);
    assert_eq!(all.as_array().unwrap().len(), 3);

    let (_, web) = srv.get("/v1/allocations?job=web").await;
    assert_eq!(web.as_array().unwrap().len(), 2);
    let running = web
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ID"] == "aaaa1111-0000")
        .unwrap();
    assert_eq!(running["ClientStatus"], "running");
    let pending = web
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ID"] == "aaaa2222-0000")
        .unwrap();
    assert_eq!(pending["ClientStatus"], "pending");
    assert!(pending["TaskStates"].is_null());

    let (_, on_n2) = srv.get("/v1/allocations?node=n2").await;
    assert_eq!(on_n2.as_array().unwrap().len(), 1);
    assert_eq!(on_n2[0]["JobID"], "db");
    srv.stop().await;
}

#[tokio::test]
async fn allocations_are_found_by_unique_prefix() {
    let srv = TestServer::start().await;
    seed_allocs(&srv).await;
    let (code, one) = srv.get("/v1/allocation/aaaa1").await;
    assert_eq!(code, 200, "{one}");
    assert_eq!(one["ID"], "aaaa1111-0000");
    let (code, amb) = srv.get("/v1/allocation/aaaa").await;
    assert_eq!(code, 409);
    assert!(amb.as_str().unwrap().contains("matches 2"), "{amb}");
    let (code, _) = srv.get("/v1/allocation/zzz").await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn stopping_an_allocation_marks_it_desired_stop() {
    let srv = TestServer::start().await;
    seed_allocs(&srv).await;
    let (code, body) = srv.post("/v1/allocation/bbbb/stop", json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert!(body["Index"].as_i64().unwrap() > 0, "{body}");
    let stored = srv
        .read_json("/nomos/allocs/n2/bbbb3333-0000")
        .await
        .unwrap();
    assert_eq!(stored["desired_status"], "stop");
    assert_eq!(stored["desired_description"], "stopped by user");
    srv.stop().await;
}

#[tokio::test]
async fn nodes_show_liveness_eligibility_and_drain() {
    let srv = TestServer::start().await;
    seed_node(&srv, "n1", true).await;
    seed_node(&srv, "n2", false).await;
    seed_allocs(&srv).await;
    let (code, nodes) = srv.get("/v1/nodes").await;
    assert_eq!(code, 200);
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["Status"], "ready");
    assert_eq!(nodes[0]["RunningAllocs"], 2);
    assert_eq!(nodes[0]["SchedulingEligibility"], "eligible");
    assert_eq!(nodes[1]["Status"], "disconnected");

    let (code, n) = srv
        .post(
            "/v1/node/n1/eligibility",
            json!({"Eligibility": "ineligible"}),
        )
        .await;
    assert_eq!(code, 200, "{n}");
    assert_eq!(n["Node"]["SchedulingEligibility"], "ineligible");
    assert_eq!(
        srv.read_json("/nomos/nodespec/n1").await.unwrap()["eligible"],
        false
    );

    let (code, n) = srv
        .post(
            "/v1/node/n2/drain",
            json!({"DrainSpec": {"Deadline": 60_000_000_000_i64}}),
        )
        .await;
    assert_eq!(code, 200, "{n}");
    assert_eq!(n["Node"]["Drain"], true);
    let spec = srv.read_json("/nomos/nodespec/n2").await.unwrap();
    assert!(spec["drain"]["deadline_ms"].as_i64().unwrap() > 0);
    assert_eq!(spec["eligible"], false);

    let (_, n) = srv
        .post(
            "/v1/node/n2/drain",
            json!({"DrainSpec": null, "MarkEligible": true}),
        )
        .await;
    assert_eq!(n["Node"]["Drain"], false);
    assert_eq!(
        n["Node"]["SchedulingEligibility"], "eligible",
        "cancelling a drain with MarkEligible makes the node eligible again"
    );

    srv.post("/v1/node/n2/drain", json!({"DrainSpec": {}}))
        .await;
    let (_, n) = srv
        .post("/v1/node/n2/drain", json!({"DrainSpec": null}))
        .await;
    assert_eq!(
        (
            n["Node"]["Drain"].as_bool(),
            n["Node"]["SchedulingEligibility"].as_str()
        ),
        (Some(false), Some("ineligible"))
    );

    let (code, by_id) = srv.get("/v1/node/n1-id").await;
    assert_eq!(code, 200, "{by_id}");
    assert_eq!(by_id["Name"], "n1");
    let (code, _) = srv.get("/v1/node/n").await;
    assert_eq!(code, 409);
    srv.stop().await;
}

#[tokio::test]
async fn plan_places_as_the_controller_would() {
    let srv = TestServer::start().await;
    seed_node(&srv, "n1", true).await;
    seed_node(&srv, "n2", false).await;
    let (code, plan) = srv
        .post("/v1/job/web/plan", plan_body("web.hcl", WEB_HCL))
        .await;
    assert_eq!(code, 200, "{plan}");
    assert_eq!(
        plan["Annotations"]["DesiredTGUpdates"]["frontend"]["Place"], 2,
        "{plan}"
    );
    assert!(plan["FailedTGAllocs"].is_null(), "{plan}");
    let group = &plan["NomosGroups"]["frontend"];
    assert_eq!(group["Failed"], 0, "{group}");
    assert_eq!(group["Placements"]["n1"], 2, "{group}");
    assert!(group["PlacementFailure"].is_null());

    let huge = WEB_HCL.replace("memory = 64", "memory = 99999");
    let (_, plan) = srv
        .post("/v1/job/web/plan", plan_body("web.hcl", &huge))
        .await;
    assert_eq!(
        plan["Annotations"]["DesiredTGUpdates"]["frontend"]["Place"], 0,
        "{plan}"
    );
    assert_eq!(
        plan["FailedTGAllocs"]["frontend"]["CoalescedFailures"], 1,
        "{plan}"
    );
    let group = &plan["NomosGroups"]["frontend"];
    assert_eq!(group["Failed"], 2, "{group}");
    assert!(
        group["PlacementFailure"]
            .as_str()
            .unwrap()
            .contains("memory"),
        "{group}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_forced_gc_collects_a_stopped_jobs_finished_allocations() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.hcl", WEB_HCL).await;
    srv.delete("/v1/job/web").await;
    srv.put_json(
        "/nomos/allocs/n1/dead-0001",
        &json!({"id": "dead-0001", "namespace": "default", "job_id": "web", "task_group": "frontend",
                "node": "n1", "desired_status": "stop"}),
    )
    .await;
    srv.put_json(
        "/nomos/allocstatus/n1/dead-0001",
        &json!({"alloc_id": "dead-0001", "client_status": "complete"}),
    )
    .await;
    let (code, body) = srv.post("/v1/system/gc", json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert!(body["collected"].as_u64().unwrap() >= 1, "{body}");
    assert!(srv.read_json("/nomos/allocs/n1/dead-0001").await.is_none());
}

#[tokio::test]
async fn a_forced_gc_keeps_as_many_versions_as_the_server_is_configured_to() {
    let srv = TestServer::start_with(
        |mut st| {
            st.gc.job_versions_kept = 2;
            st
        },
        nomos_server::DEFAULT_BODY_LIMIT,
    )
    .await;
    apply_source(&srv, "web.hcl", WEB_HCL).await;
    let job = srv.read_json("/nomos/jobs/default/web").await.unwrap();
    for v in 0..5u64 {
        srv.put_json(&format!("/nomos/jobversions/default/web/{v:020}"), &job)
            .await;
    }
    srv.put_json(
        "/nomos/jobstatus/default/web",
        &json!({"status": "running", "version": 4}),
    )
    .await;
    let (code, body) = srv.post("/v1/system/gc", json!({})).await;
    assert_eq!(code, 200, "{body}");
    for v in 0..5u64 {
        let kept = srv
            .read_json(&format!("/nomos/jobversions/default/web/{v:020}"))
            .await
            .is_some();
        assert_eq!(
            kept,
            v >= 3,
            "version {v}: job_versions_kept = 2 keeps 3 and 4"
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_http_counters() {
    let srv = TestServer::start().await;
    srv.get("/v1/jobs").await;
    let resp = srv.client.get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("# TYPE nomos_http_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains(
            "nomos_http_requests_total{route=\"/v1/jobs\",method=\"GET\",code=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("nomos_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        !text.contains("# EOF"),
        "plain clients get the Prometheus text format"
    );
    let om = srv
        .client
        .get(srv.url("/metrics"))
        .header("accept", "application/openmetrics-text")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(om.trim_end().ends_with("# EOF"), "{om}");
    srv.stop().await;
}

#[tokio::test]
async fn a_node_shows_the_drain_report_and_the_lifecycle_status() {
    let srv = TestServer::start().await;
    seed_node(&srv, "n1", true).await;
    let (_, n) = srv.get("/v1/node/n1").await;
    assert!(n["DrainReport"].is_null(), "no drain yet: {n}");
    assert!(n["LastDrain"].is_null(), "no drain yet: {n}");
    srv.put_json(
        "/nomos/drainstatus/n1",
        &json!({"state": "blocked", "started_at_ms": 5, "remaining": 2, "migrating": 1,
                "nowhere_to_go": ["a1: no node has room"]}),
    )
    .await;
    let (code, n) = srv.get("/v1/node/n1").await;
    assert_eq!(code, 200, "{n}");
    assert_eq!(n["DrainReport"]["State"], "blocked");
    assert_eq!(n["DrainReport"]["Remaining"], 2);
    assert_eq!(n["DrainReport"]["StartedAt"], 5_000_000, "Unix ns");
    assert_eq!(n["DrainReport"]["NowhereToGo"][0], "a1: no node has room");
    assert_eq!(n["LastDrain"]["Status"], "draining");
    let (_, all) = srv.get("/v1/nodes").await;
    assert_eq!(all[0]["LastDrain"]["Status"], "draining");

    // A node without a heartbeat is disconnected, and down once the lifecycle loop says so.
    seed_node(&srv, "gone", false).await;
    let (_, n) = srv.get("/v1/node/gone").await;
    assert_eq!(n["Status"], "disconnected");
    srv.put_json(
        "/nomos/nodestatus/gone",
        &json!({"status": "down", "since_ms": 5}),
    )
    .await;
    let (_, n) = srv.get("/v1/node/gone").await;
    assert_eq!(n["Status"], "down");
    srv.stop().await;
}
