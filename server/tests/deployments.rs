//! The deployment endpoints over real HTTP: list, get by unique prefix, and the user's requests
//! (promote all or some groups, fail, pause, resume) with their failure paths: unknown and
//! ambiguous IDs, deployments that are no longer active, unknown groups, groups without
//! canaries, canaries not all healthy, and bodies of the wrong shape. Deployments are written
//! straight into the store as the jobs controller writes them.

mod common;

use common::*;
use nomos_api::{deployment_status as ds, DeploymentState};
use serde_json::{json, Value};

/// A deployment of job `web` in `status`: group `api` wants one canary (`placed` of them
/// placed, `healthy` healthy), group `db` has no canaries.
fn deployment(id: &str, status: DeploymentState, placed: usize, healthy: u32) -> Value {
    let canaries: Vec<String> = (0..placed).map(|i| format!("canary-{i}")).collect();
    json!({"id": id, "namespace": "default", "job_id": "web", "job_version": 1,
           "status": status.as_str(), "status_description": "",
           "groups": {
               "api": {"desired_total": 3, "desired_canaries": 1, "placed_canaries": canaries,
                       "placed": placed, "healthy": healthy},
               "db": {"desired_total": 1, "placed": 1, "healthy": 1}}})
}

async fn put_deployment(srv: &TestServer, d: &Value) {
    let key = format!(
        "/nomos/deployments/default/web/{}",
        d["id"].as_str().unwrap()
    );
    srv.put_json(&key, d).await;
}

async fn stored(srv: &TestServer, id: &str) -> Value {
    srv.read_json(&format!("/nomos/deployments/default/web/{id}"))
        .await
        .expect("the deployment key")
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn deployments_are_listed_by_job_and_found_by_unique_prefix() {
    let srv = TestServer::start().await;
    put_deployment(&srv, &deployment("web-v1", ds::SUCCESSFUL, 1, 1)).await;
    put_deployment(&srv, &deployment("web-v12", ds::RUNNING, 0, 0)).await;
    let mut other = deployment("db-v3", ds::RUNNING, 0, 0);
    other["job_id"] = json!("db");
    srv.put_json("/nomos/deployments/default/db/db-v3", &other)
        .await;

    let (code, list) = srv.get("/v1/deployments?job=web").await;
    assert_eq!(code, 200, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deployment"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(
        ids.contains(&"web-v1") && ids.contains(&"web-v12"),
        "{list}"
    );

    // An exact ID wins over the longer one it prefixes; a unique prefix finds one.
    let (code, d) = srv.get("/v1/deployment/web-v1").await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["deployment"]["id"], "web-v1");
    let (code, d) = srv.get("/v1/deployment/web-v12").await;
    assert_eq!(code, 200, "{d}");
    let (code, d) = srv.get("/v1/deployment/db").await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["deployment"]["id"], "db-v3");

    let (code, body) = srv.get("/v1/deployment/web-v").await;
    assert_eq!(code, 409, "an ambiguous prefix: {body}");
    assert!(error_of(&body).contains("matches 2 deployments"), "{body}");
    let (code, body) = srv.post("/v1/deployment/web-v/fail", json!({})).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(
        stored(&srv, "web-v12").await["status"],
        ds::RUNNING.as_str()
    );

    for hostile in ["nope", "..%2F..%2Fjobs", "%00", "web-v1%20OR%201%3D1"] {
        let (code, body) = srv.get(&format!("/v1/deployment/{hostile}")).await;
        assert_eq!(code, 404, "{hostile}: {body}");
        let (code, body) = srv
            .post(
                &format!("/v1/deployment/{hostile}/pause"),
                json!({"pause": true}),
            )
            .await;
        assert_eq!(code, 404, "{hostile}: {body}");
    }
    let (_, body) = srv.get("/v1/deployment/nope").await;
    assert!(error_of(&body).contains("nope"), "{body}");
    let (code, _) = srv.post("/v1/deployment/nope/promote", json!({})).await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn promote_takes_every_group_with_canaries_or_only_the_named_ones() {
    let srv = TestServer::start().await;
    put_deployment(&srv, &deployment("web-v1", ds::RUNNING, 1, 1)).await;
    // No body at all: every group that has canaries.
    let (code, d) = srv.post_raw("/v1/deployment/web-v1/promote", "").await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["deployment"]["groups"]["api"]["promoted"], true, "{d}");
    assert_eq!(d["deployment"]["groups"]["db"]["promoted"], false, "{d}");
    assert_eq!(
        stored(&srv, "web-v1").await["groups"]["api"]["promoted"],
        true
    );
    assert_eq!(
        d["modify_index"].as_i64(),
        Some(
            srv.get("/v1/deployment/web-v1").await.1["modify_index"]
                .as_i64()
                .unwrap()
        )
    );

    // Named groups, in our spelling and in Nomad's.
    for body in [
        json!({"groups": ["api"]}),
        json!({"Groups": ["api"], "All": false}),
    ] {
        put_deployment(&srv, &deployment("web-v2", ds::RUNNING, 1, 1)).await;
        let (code, d) = srv
            .post("/v1/deployment/web-v2/promote", body.clone())
            .await;
        assert_eq!(code, 200, "{body}: {d}");
        assert_eq!(
            stored(&srv, "web-v2").await["groups"]["api"]["promoted"],
            true
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn promote_refuses_unknown_groups_groups_without_canaries_and_unhealthy_canaries() {
    let srv = TestServer::start().await;
    put_deployment(&srv, &deployment("web-v1", ds::RUNNING, 1, 0)).await;
    let cases = [
        (json!({"groups": ["nope"]}), "has no group \"nope\""),
        (
            json!({"groups": ["db"]}),
            "group \"db\" of deployment web-v1 has no canaries",
        ),
        (json!({}), "group \"api\" has 0/1 healthy canaries"),
        (
            json!({"groups": ["api"]}),
            "group \"api\" has 0/1 healthy canaries",
        ),
        (json!({"groups": "api"}), "invalid request body"),
        (json!({"groups": [1]}), "invalid request body"),
    ];
    for (body, want) in cases {
        let (code, answer) = srv
            .post("/v1/deployment/web-v1/promote", body.clone())
            .await;
        assert_eq!(code, 400, "{body}: {answer}");
        assert!(error_of(&answer).contains(want), "{body}: {answer}");
    }
    let (code, answer) = srv
        .post_raw("/v1/deployment/web-v1/promote", "{\"groups\": [")
        .await;
    assert_eq!(code, 400, "{answer}");
    assert!(error_of(&answer).contains("malformed JSON"), "{answer}");
    assert_ne!(
        stored(&srv, "web-v1").await["groups"]["api"]["promoted"],
        true,
        "nothing was promoted"
    );

    // A deployment without any canary has nothing to promote.
    let mut plain = deployment("web-v2", ds::RUNNING, 0, 0);
    plain["groups"]["api"]["desired_canaries"] = json!(0);
    put_deployment(&srv, &plain).await;
    let (code, answer) = srv.post("/v1/deployment/web-v2/promote", json!({})).await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        error_of(&answer).contains("no canaries to promote"),
        "{answer}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn fail_marks_an_active_deployment_failed_by_the_user() {
    let srv = TestServer::start().await;
    for (id, status) in [("web-v1", ds::RUNNING), ("web-v2", ds::PAUSED)] {
        put_deployment(&srv, &deployment(id, status, 0, 0)).await;
        let (code, d) = srv
            .post(&format!("/v1/deployment/{id}/fail"), json!({}))
            .await;
        assert_eq!(code, 200, "{status}: {d}");
        let s = stored(&srv, id).await;
        assert_eq!(s["status"], ds::FAILED.as_str(), "{status}");
        assert_eq!(s["status_description"], ds::DESC_FAILED_BY_USER, "{status}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn requests_on_a_deployment_that_is_not_active_answer_409_and_write_nothing() {
    let srv = TestServer::start().await;
    for status in [ds::SUCCESSFUL, ds::FAILED, ds::CANCELLED] {
        put_deployment(&srv, &deployment("web-v1", status, 1, 1)).await;
        let before = srv.get("/v1/deployment/web-v1").await.1["modify_index"].clone();
        for (path, body) in [
            ("promote", json!({})),
            ("fail", json!({})),
            ("pause", json!({"pause": true})),
            ("pause", json!({"pause": false})),
        ] {
            let (code, answer) = srv
                .post(&format!("/v1/deployment/web-v1/{path}"), body.clone())
                .await;
            assert_eq!(code, 409, "{status} {path} {body}: {answer}");
            assert!(
                error_of(&answer).contains(&format!("deployment web-v1 is {status}")),
                "{status} {path}: {answer}"
            );
        }
        let after = srv.get("/v1/deployment/web-v1").await.1["modify_index"].clone();
        assert_eq!(before, after, "{status}: nothing was written");
        assert_eq!(stored(&srv, "web-v1").await["status"], status.as_str());
    }
    srv.stop().await;
}

#[tokio::test]
async fn pause_and_resume_switch_between_running_and_paused() {
    let srv = TestServer::start().await;
    put_deployment(&srv, &deployment("web-v1", ds::RUNNING, 0, 0)).await;
    let (code, d) = srv
        .post("/v1/deployment/web-v1/pause", json!({"pause": true}))
        .await;
    assert_eq!(code, 200, "{d}");
    let s = stored(&srv, "web-v1").await;
    assert_eq!(s["status"], ds::PAUSED.as_str());
    assert_eq!(s["status_description"], ds::DESC_PAUSED);

    // Pausing again changes nothing (and writes nothing).
    let index = d["modify_index"].clone();
    let (code, d) = srv
        .post("/v1/deployment/web-v1/pause", json!({"Pause": true}))
        .await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["modify_index"], index);

    let (code, d) = srv
        .post("/v1/deployment/web-v1/pause", json!({"pause": false}))
        .await;
    assert_eq!(code, 200, "{d}");
    let s = stored(&srv, "web-v1").await;
    assert_eq!(s["status"], ds::RUNNING.as_str());
    assert_eq!(s["status_description"], ds::DESC_RUNNING);

    for body in ["", "{}", "{\"pause\": \"yes\"}", "null", "[]"] {
        let (code, answer) = srv.post_raw("/v1/deployment/web-v1/pause", body).await;
        assert_eq!(code, 400, "{body:?}: {answer}");
    }
    srv.stop().await;
}
