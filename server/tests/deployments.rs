//! The deployment endpoints in Nomad's paths and shapes over real HTTP: list, read by unique
//! prefix, a job's deployments and its latest, a deployment's allocations, and the user's
//! requests (promote all or some groups, fail, pause, resume, allocation health) with their
//! failure paths: unknown and ambiguous IDs, a missing or wrong `DeploymentID`, deployments
//! that are no longer active, unknown groups, groups without canaries, canaries not all
//! healthy, allocations of another deployment, and bodies of the wrong shape. Deployments are
//! written straight into the store as the jobs controller writes them; every write answers a
//! `DeploymentUpdateResponse` whose evaluation is recorded.

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
           "created_at_ms": 1_700_000_000_000i64,
           "groups": {
               "api": {"desired_total": 3, "desired_canaries": 1, "placed_canaries": canaries,
                       "placed": placed, "healthy": healthy, "progress_deadline_ms": 600000,
                       "auto_revert": true},
               "db": {"desired_total": 1, "placed": 1, "healthy": 1}}})
}

async fn put_deployment(srv: &TestServer, d: &Value) {
    let key = format!(
        "/nomos/deployments/default/{}/{}",
        d["job_id"].as_str().unwrap(),
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
    body.as_str().unwrap_or_default()
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| d["ID"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn deployments_answer_in_nomads_shape_and_are_found_by_unique_prefix() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.nomad", WEB_JOB).await;
    put_deployment(&srv, &deployment("web-v1", ds::SUCCESSFUL, 1, 1)).await;
    put_deployment(&srv, &deployment("web-v12", ds::RUNNING, 0, 0)).await;
    let mut other = deployment("db-v3", ds::RUNNING, 0, 0);
    other["job_id"] = json!("db");
    put_deployment(&srv, &other).await;

    let (code, list) = srv.get("/v1/deployments").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(ids(&list), ["db-v3", "web-v1", "web-v12"], "sorted by ID");
    let (_, page) = srv.get("/v1/deployments?prefix=web&per_page=1").await;
    assert_eq!(ids(&page), ["web-v1"]);
    let (_, filtered) = srv
        .get("/v1/deployments?filter=Status%20%3D%3D%20%22running%22")
        .await;
    assert_eq!(ids(&filtered), ["db-v3", "web-v12"]);
    let (_, elsewhere) = srv.get("/v1/deployments?namespace=prod").await;
    assert_eq!(elsewhere, json!([]));

    // An exact ID wins over the longer one it prefixes; a unique prefix finds one.
    let (code, d) = srv.get("/v1/deployment/web-v1").await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["ID"], "web-v1");
    assert_eq!(d["JobID"], "web");
    assert_eq!(d["Status"], "successful");
    let api = &d["TaskGroups"]["api"];
    assert_eq!(api["DesiredCanaries"], 1, "{d}");
    assert_eq!(api["PlacedCanaries"], json!(["canary-0"]));
    assert_eq!(api["ProgressDeadline"], 600_000_000_000i64);
    assert_eq!(api["AutoRevert"], true);
    assert_eq!(d["TaskGroups"]["db"]["PlacedCanaries"], Value::Null);
    assert!(d["CreateIndex"].as_i64().unwrap() > 0, "{d}");
    assert!(d["JobCreateIndex"].as_i64().unwrap() > 0, "{d}");
    assert_eq!(d["CreateTime"], 1_700_000_000_000_000_000i64);
    let (code, d) = srv.get("/v1/deployment/db").await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["ID"], "db-v3");

    let (code, body) = srv.get("/v1/deployment/web-v").await;
    assert_eq!(code, 409, "an ambiguous prefix: {body}");
    assert!(error_of(&body).contains("matches 2 deployments"), "{body}");
    for hostile in ["nope", "..%2F..%2Fjobs", "%00", "web-v1%20OR%201%3D1"] {
        let (code, body) = srv.get(&format!("/v1/deployment/{hostile}")).await;
        assert_eq!(code, 404, "{hostile}: {body}");
        let (code, body) = srv
            .post(
                &format!("/v1/deployment/pause/{hostile}"),
                json!({"DeploymentID": hostile, "Pause": true}),
            )
            .await;
        assert_eq!(code, 404, "{hostile}: {body}");
    }
    // The old Nomos paths are gone.
    let (code, _) = srv
        .post("/v1/deployment/web-v12/pause", json!({"Pause": true}))
        .await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn a_jobs_deployments_and_its_latest_resolve_the_job_in_its_namespace() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.nomad", WEB_JOB).await;
    let mut older = deployment("web-v1", ds::SUCCESSFUL, 1, 1);
    older["created_at_ms"] = json!(1_600_000_000_000i64);
    put_deployment(&srv, &older).await;
    put_deployment(&srv, &deployment("web-v2", ds::RUNNING, 0, 0)).await;

    let (code, list) = srv.get("/v1/job/web/deployments").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(ids(&list), ["web-v2", "web-v1"], "newest first");
    let (code, latest) = srv.get("/v1/job/web/deployment").await;
    assert_eq!(code, 200, "{latest}");
    assert_eq!(latest["ID"], "web-v2");

    let (code, body) = srv.get("/v1/job/nope/deployment").await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = srv.get("/v1/job/web/deployments?namespace=prod").await;
    assert_eq!(code, 404, "another namespace's job: {body}");
    srv.stop().await;
}

#[tokio::test]
async fn a_deployments_allocations_are_those_that_name_it() {
    let srv = TestServer::start().await;
    put_deployment(&srv, &deployment("web-v1", ds::RUNNING, 1, 0)).await;
    seed_allocs(&srv).await;
    let mut a = srv
        .read_json("/nomos/allocs/n1/aaaa1111-0000")
        .await
        .unwrap();
    a["deployment_id"] = json!("web-v1");
    srv.put_json("/nomos/allocs/n1/aaaa1111-0000", &a).await;

    let (code, allocs) = srv.get("/v1/deployment/allocations/web-v").await;
    assert_eq!(code, 200, "{allocs}");
    assert_eq!(ids(&allocs), ["aaaa1111-0000"]);
    let (code, _) = srv.get("/v1/deployment/allocations/nope").await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn promote_takes_every_group_with_canaries_or_only_the_named_ones() {
    let srv = TestServer::start().await;
    put_deployment(&srv, &deployment("web-v1", ds::RUNNING, 1, 1)).await;
    let (code, resp) = srv
        .post(
            "/v1/deployment/promote/web-v1",
            json!({"DeploymentID": "web-v1", "All": true}),
        )
        .await;
    assert_eq!(code, 200, "{resp}");
    assert_eq!(
        stored(&srv, "web-v1").await["groups"]["api"]["promoted"],
        true
    );
    let (_, d) = srv.get("/v1/deployment/web-v1").await;
    assert_eq!(resp["DeploymentModifyIndex"], d["ModifyIndex"], "{resp}");
    assert_eq!(resp["RevertedJobVersion"], Value::Null);
    let eval_id = resp["EvalID"].as_str().unwrap();
    let (code, eval) = srv.get(&format!("/v1/evaluation/{eval_id}")).await;
    assert_eq!(code, 200, "{eval}");
    assert_eq!(eval["TriggeredBy"], "deployment-watcher");
    assert_eq!(eval["DeploymentID"], "web-v1");
    assert_eq!(eval["Status"], "pending");
    assert_eq!(resp["EvalCreateIndex"], eval["CreateIndex"]);

    // Named groups, with PUT as well as POST.
    put_deployment(&srv, &deployment("web-v2", ds::RUNNING, 1, 1)).await;
    let resp = srv
        .client
        .put(srv.url("/v1/deployment/promote/web-v2"))
        .json(&json!({"DeploymentID": "web-v2", "Groups": ["api"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        stored(&srv, "web-v2").await["groups"]["api"]["promoted"],
        true
    );
    srv.stop().await;
}

#[tokio::test]
async fn promote_refuses_bad_bodies_unknown_groups_and_unhealthy_canaries() {
    let srv = TestServer::start().await;
    put_deployment(&srv, &deployment("web-v1", ds::RUNNING, 1, 0)).await;
    let cases = [
        (json!({"All": true}), "DeploymentID must be set"),
        (
            json!({"DeploymentID": "web-v2", "All": true}),
            "does not match deployment",
        ),
        (json!({"DeploymentID": "web-v1"}), "name the groups"),
        (
            json!({"DeploymentID": "web-v1", "Groups": ["nope"]}),
            "has no group \"nope\"",
        ),
        (
            json!({"DeploymentID": "web-v1", "Groups": ["db"]}),
            "group \"db\" of deployment web-v1 has no canaries",
        ),
        (
            json!({"DeploymentID": "web-v1", "All": true}),
            "group \"api\" has 0/1 healthy canaries",
        ),
        (
            json!({"DeploymentID": "web-v1", "groups": ["api"]}),
            "groups",
        ),
        (
            json!({"DeploymentID": "web-v1", "Groups": "api"}),
            "invalid request body",
        ),
    ];
    for (body, want) in cases {
        let (code, answer) = srv
            .post("/v1/deployment/promote/web-v1", body.clone())
            .await;
        assert_eq!(code, 400, "{body}: {answer}");
        assert!(error_of(&answer).contains(want), "{body}: {answer}");
    }
    assert_ne!(
        stored(&srv, "web-v1").await["groups"]["api"]["promoted"],
        true,
        "nothing was promoted"
    );

    // A deployment without any canary has nothing to promote.
    let mut plain = deployment("web-v2", ds::RUNNING, 0, 0);
    plain["groups"]["api"]["desired_canaries"] = json!(0);
    put_deployment(&srv, &plain).await;
    let (code, answer) = srv
        .post(
            "/v1/deployment/promote/web-v2",
            json!({"DeploymentID": "web-v2", "All": true}),
        )
        .await;
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
        let (code, resp) = srv.post_raw(&format!("/v1/deployment/fail/{id}"), "").await;
        assert_eq!(code, 200, "{status}: {resp}");
        assert!(!resp["EvalID"].as_str().unwrap().is_empty(), "{resp}");
        let s = stored(&srv, id).await;
        assert_eq!(s["status"], ds::FAILED.as_str(), "{status}");
        assert_eq!(s["status_description"], ds::DESC_FAILED_BY_USER, "{status}");
    }
    put_deployment(&srv, &deployment("web-v3", ds::RUNNING, 0, 0)).await;
    for (body, want) in [
        (json!({"DeploymentID": "web-v1"}), "does not match"),
        (json!({"DeploymentId": "web-v3"}), "DeploymentId"),
    ] {
        let (code, answer) = srv.post("/v1/deployment/fail/web-v3", body.clone()).await;
        assert_eq!(code, 400, "{body}: {answer}");
        assert!(error_of(&answer).contains(want), "{body}: {answer}");
    }
    let (code, answer) = srv
        .post(
            "/v1/deployment/fail/web-v3",
            json!({"DeploymentID": "web-v3"}),
        )
        .await;
    assert_eq!(code, 200, "Nomad's client body: {answer}");
    srv.stop().await;
}

#[tokio::test]
async fn requests_on_a_deployment_that_is_not_active_answer_409_and_write_nothing() {
    let srv = TestServer::start().await;
    for status in [ds::SUCCESSFUL, ds::FAILED, ds::CANCELLED] {
        put_deployment(&srv, &deployment("web-v1", status, 1, 1)).await;
        let before = srv.get("/v1/deployment/web-v1").await.1["ModifyIndex"].clone();
        for (path, body) in [
            ("promote", json!({"DeploymentID": "web-v1", "All": true})),
            ("fail", json!({})),
            ("pause", json!({"DeploymentID": "web-v1", "Pause": true})),
            ("pause", json!({"DeploymentID": "web-v1", "Pause": false})),
            (
                "allocation-health",
                json!({"DeploymentID": "web-v1", "HealthyAllocationIDs": ["a"]}),
            ),
        ] {
            let (code, answer) = srv
                .post(&format!("/v1/deployment/{path}/web-v1"), body.clone())
                .await;
            assert_eq!(code, 409, "{status} {path} {body}: {answer}");
            assert!(
                error_of(&answer).contains(&format!("deployment web-v1 is {status}")),
                "{status} {path}: {answer}"
            );
        }
        let after = srv.get("/v1/deployment/web-v1").await.1["ModifyIndex"].clone();
        assert_eq!(before, after, "{status}: nothing was written");
    }
    let (_, evals) = srv.get("/v1/evaluations").await;
    assert_eq!(evals, json!([]), "a refused request asks for no evaluation");
    srv.stop().await;
}

#[tokio::test]
async fn pause_and_resume_switch_between_running_and_paused() {
    let srv = TestServer::start().await;
    put_deployment(&srv, &deployment("web-v1", ds::RUNNING, 0, 0)).await;
    let pause = |on: bool| json!({"DeploymentID": "web-v1", "Pause": on});
    let (code, resp) = srv.post("/v1/deployment/pause/web-v1", pause(true)).await;
    assert_eq!(code, 200, "{resp}");
    let s = stored(&srv, "web-v1").await;
    assert_eq!(s["status"], ds::PAUSED.as_str());
    assert_eq!(s["status_description"], ds::DESC_PAUSED);

    // Pausing again changes nothing (and writes nothing).
    let index = resp["DeploymentModifyIndex"].clone();
    let (code, again) = srv.post("/v1/deployment/pause/web-v1", pause(true)).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["DeploymentModifyIndex"], index);

    let (code, _) = srv.post("/v1/deployment/pause/web-v1", pause(false)).await;
    assert_eq!(code, 200);
    let s = stored(&srv, "web-v1").await;
    assert_eq!(s["status"], ds::RUNNING.as_str());
    assert_eq!(s["status_description"], ds::DESC_RUNNING);

    for body in [
        "",
        "{\"DeploymentID\": \"web-v1\", \"Pause\": \"yes\"}",
        "{\"DeploymentID\": \"web-v1\", \"Pause\": true, \"Paused\": true}",
        "{\"DeploymentID\": \"other\", \"Pause\": true}",
        "null",
        "[]",
    ] {
        let (code, answer) = srv.post_raw("/v1/deployment/pause/web-v1", body).await;
        assert_eq!(code, 400, "{body:?}: {answer}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn allocation_health_is_set_by_hand_for_the_deployments_own_allocations() {
    let srv = TestServer::start().await;
    put_deployment(&srv, &deployment("web-v1", ds::RUNNING, 1, 0)).await;
    seed_allocs(&srv).await;
    for (node, id) in [("n1", "aaaa1111-0000"), ("n1", "aaaa2222-0000")] {
        let key = format!("/nomos/allocs/{node}/{id}");
        let mut a = srv.read_json(&key).await.unwrap();
        a["deployment_id"] = json!("web-v1");
        srv.put_json(&key, &a).await;
    }
    let body = json!({"DeploymentID": "web-v1",
                      "HealthyAllocationIDs": ["aaaa1111-0000"],
                      "UnhealthyAllocationIDs": ["aaaa2222-0000"]});
    let (code, resp) = srv
        .post("/v1/deployment/allocation-health/web-v1", body)
        .await;
    assert_eq!(code, 200, "{resp}");
    let s = stored(&srv, "web-v1").await;
    assert_eq!(
        s["manual_health"],
        json!({"aaaa1111-0000": true, "aaaa2222-0000": false})
    );

    let cases = [
        (
            json!({"DeploymentID": "web-v1", "HealthyAllocationIDs": ["bbbb3333-0000"]}),
            "is not part of deployment web-v1",
        ),
        (
            json!({"DeploymentID": "web-v1", "HealthyAllocationIDs": ["aaaa1111-0000"],
                   "UnhealthyAllocationIDs": ["aaaa1111-0000"]}),
            "both healthy and unhealthy",
        ),
        (json!({"DeploymentID": "web-v1"}), "both empty"),
        (
            json!({"HealthyAllocationIDs": ["aaaa1111-0000"]}),
            "DeploymentID must be set",
        ),
        (
            json!({"DeploymentID": "web-v1", "HealthyAllocationIds": ["aaaa1111-0000"]}),
            "HealthyAllocationIds",
        ),
    ];
    for (body, want) in cases {
        let (code, answer) = srv
            .post("/v1/deployment/allocation-health/web-v1", body.clone())
            .await;
        assert_eq!(code, 400, "{body}: {answer}");
        assert!(error_of(&answer).contains(want), "{body}: {answer}");
    }
    let too_many: Vec<String> = (0..2000).map(|i| format!("a{i}")).collect();
    let (code, answer) = srv
        .post(
            "/v1/deployment/allocation-health/web-v1",
            json!({"DeploymentID": "web-v1", "HealthyAllocationIDs": too_many}),
        )
        .await;
    assert_eq!(code, 400, "{answer}");
    assert!(error_of(&answer).contains("at most 1024"), "{answer}");
    srv.stop().await;
}

/// A small service job (`web`, group `api`) for the job-scoped reads.
const WEB_JOB: &str = r#"
job "web" {
  datacenters = ["dc1"]
  group "api" {
    count = 1
    task "server" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }
    }
  }
}
"#;
