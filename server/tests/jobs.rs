//! The job endpoints over real HTTP: register, re-register, the enforced index, validation
//! errors, plan, stop, purge, versions and revert. (Nomad's shapes in detail:
//! tests/nomad_jobs.rs.)

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn apply_creates_the_spec_key_and_reapplying_is_a_no_op() {
    let srv = TestServer::start().await;
    let (code, body) = apply_source(&srv, "web.hcl", WEB_HCL).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["Outcome"], "created");
    assert_eq!(body["JobID"], "web");
    let first_index = body["JobModifyIndex"].as_i64().unwrap();

    let stored = srv
        .read_json("/nomos/jobs/default/web")
        .await
        .expect("spec key written");
    assert_eq!(stored["id"], "web");
    assert_eq!(stored["groups"][0]["count"], 2);

    let (code, body) = apply_source(&srv, "web.hcl", WEB_HCL).await;
    assert_eq!(code, 200);
    assert_eq!(body["Outcome"], "unchanged");
    assert_eq!(body["JobModifyIndex"].as_i64().unwrap(), first_index);
    assert!(body["Changes"].as_array().unwrap().is_empty());

    let changed = WEB_HCL.replace("count = 2", "count = 3");
    let (code, body) = apply_source(&srv, "web.hcl", &changed).await;
    assert_eq!(code, 200);
    assert_eq!(body["Outcome"], "updated");
    let changes = body["Changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["Path"], "groups[frontend].count");
    assert_eq!(changes[0]["Old"], 2);
    assert_eq!(changes[0]["New"], 3);
    srv.stop().await;
}

#[tokio::test]
async fn list_and_get_show_the_job_with_its_modify_index() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.hcl", WEB_HCL).await;
    let (code, list) = srv.get("/v1/jobs").await;
    assert_eq!(code, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["ID"], "web");
    assert_eq!(list[0]["Type"], "service");
    assert_eq!(list[0]["Status"], "pending");

    let (code, detail) = srv.get("/v1/job/web").await;
    assert_eq!(code, 200);
    assert_eq!(detail["TaskGroups"][0]["Name"], "frontend");
    assert_eq!(detail["JobModifyIndex"], list[0]["JobModifyIndex"]);

    let (code, by_prefix) = srv.get("/v1/job/we").await;
    assert_eq!(code, 200, "{by_prefix}");
    assert_eq!(by_prefix["ID"], "web");

    let (code, missing) = srv.get("/v1/job/nope").await;
    assert_eq!(code, 404);
    assert!(missing.as_str().unwrap().contains("nope"));

    // A periodic child answers to Nomad's spelling of its name as well as to its id.
    let child = WEB_HCL.replace("job \"web\"", "job \"web-periodic-1700000000\"");
    apply_source(&srv, "child.hcl", &child).await;
    for spelling in ["web-periodic-1700000000", "web%2Fperiodic-1700000000"] {
        let (code, found) = srv.get(&format!("/v1/job/{spelling}")).await;
        assert_eq!(code, 200, "{spelling}: {found}");
        assert_eq!(found["ID"], "web-periodic-1700000000");
    }
    srv.stop().await;
}

/// The register request of a job file's text.
fn body_of(source: &str) -> serde_json::Value {
    let parsed = nomos_api::parse_source("web.hcl", source, &Default::default()).unwrap();
    register_body(&parsed.jobs[0], source)
}

#[tokio::test]
async fn an_enforced_index_guards_concurrent_writers() {
    let srv = TestServer::start().await;
    let mut body = body_of(WEB_HCL);
    body["EnforceIndex"] = json!(true);
    let (_, answer) = srv.post("/v1/jobs", body).await;
    assert_eq!(answer["Outcome"], "created", "{answer}");
    let index = answer["JobModifyIndex"].as_i64().unwrap();

    let mut body = body_of(&WEB_HCL.replace("count = 2", "count = 5"));
    body["EnforceIndex"] = json!(true);
    body["JobModifyIndex"] = json!(index + 100);
    let (code, answer) = srv.post("/v1/jobs", body.clone()).await;
    assert_eq!(code, 409, "{answer}");
    assert!(answer
        .as_str()
        .unwrap()
        .contains("Enforcing job modify index"));
    assert_eq!(
        srv.read_json("/nomos/jobs/default/web").await.unwrap()["groups"][0]["count"],
        2
    );

    body["JobModifyIndex"] = json!(index);
    let (code, answer) = srv.post("/v1/jobs", body).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["Outcome"], "updated");
    srv.stop().await;
}

#[tokio::test]
async fn an_invalid_job_is_refused_with_its_diagnostics_and_nothing_is_written() {
    let srv = TestServer::start().await;
    let mut body = body_of(WEB_HCL);
    body["Job"]["TaskGroups"][0]["Tasks"][0]["Driver"] = json!("");
    let (code, answer) = srv.post("/v1/jobs", body).await;
    assert_eq!(code, 400, "{answer}");
    // Plain text, one positioned diagnostic per line, errors first.
    let first = answer.as_str().expect("plain text").lines().next().unwrap();
    assert!(first.starts_with("job.json:"), "{answer}");
    assert!(!first.contains("warning:"), "{answer}");
    assert!(srv.read_json("/nomos/jobs/default/web").await.is_none());
    srv.stop().await;
}

#[tokio::test]
async fn a_canonical_job_or_a_job_file_as_the_body_is_refused() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.hcl", WEB_HCL).await;
    let job = srv.read_json("/nomos/jobs/default/web").await.unwrap();
    let (code, body) = srv.post("/v1/jobs", job.clone()).await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = srv
        .post(
            "/v1/jobs",
            json!({"source": WEB_HCL, "filename": "web.hcl"}),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn malformed_json_says_where_it_broke() {
    let srv = TestServer::start().await;
    let (code, body) = srv
        .post_raw("/v1/jobs", "{\n  \"Job\": \"x\",\n  oops\n}")
        .await;
    assert_eq!(code, 400);
    let msg = body.as_str().unwrap();
    assert!(msg.contains("malformed JSON at line 3 column"), "{msg}");
    srv.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let srv = TestServer::start_with(|s| s, 1024).await;
    let big = format!("{{\"Job\": \"{}\"}}", "x".repeat(4096));
    let (code, body) = srv.post_raw("/v1/jobs", big).await;
    assert_eq!(code, 413, "{body}");
    assert!(body.as_str().unwrap().contains("larger"));
    srv.stop().await;
}

#[tokio::test]
async fn plan_reports_changes_without_writing() {
    let srv = TestServer::start().await;
    let (code, plan) = srv
        .post("/v1/job/web/plan", plan_body("web.hcl", WEB_HCL))
        .await;
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["Outcome"], "created");
    assert_eq!(plan["Diff"]["Type"], "Added", "{plan}");
    let desired = &plan["Annotations"]["DesiredTGUpdates"]["frontend"];
    assert_eq!(desired["Place"], 0, "no node: {plan}");
    let group = &plan["NomosGroups"]["frontend"];
    assert_eq!(group["Failed"], group["Count"], "{group}");
    assert!(
        plan["FailedTGAllocs"]["frontend"]["Reason"].is_string(),
        "{plan}"
    );
    assert!(srv.read_json("/nomos/jobs/default/web").await.is_none());

    apply_source(&srv, "web.hcl", WEB_HCL).await;
    let changed = WEB_HCL.replace("\"1000\"", "\"2000\"");
    let (_, plan) = srv
        .post("/v1/job/web/plan", plan_body("web.hcl", &changed))
        .await;
    assert_eq!(plan["Outcome"], "updated");
    assert_eq!(
        plan["Changes"][0]["Path"],
        "groups[frontend].tasks[server].config.args[0]"
    );
    let task = &plan["Diff"]["TaskGroups"][0]["Tasks"][0];
    assert_eq!(
        (&task["Name"], &task["Type"]),
        (&json!("server"), &json!("Edited"))
    );
    assert!(task["Fields"].is_null(), "{plan}");
    let config = &task["Objects"][0];
    assert_eq!(
        (&config["Type"], &config["Name"]),
        (&json!("Edited"), &json!("Config")),
        "{plan}"
    );
    assert_eq!(
        config["Fields"],
        json!([{"Type": "Edited", "Name": "args[0]", "Old": "1000", "New": "2000",
                "Annotations": null}]),
        "{plan}"
    );
    let (_, plan) = srv
        .post("/v1/job/web/plan", plan_body("web.hcl", WEB_HCL))
        .await;
    assert_eq!(plan["Outcome"], "unchanged");
    assert_eq!(plan["Diff"]["Type"], "None");
    let mut other_id = plan_body("web.hcl", WEB_HCL);
    other_id["Job"]["ID"] = json!("db");
    let (code, _) = srv.post("/v1/job/web/plan", other_id).await;
    assert_eq!(code, 400, "the path names the job");
    let (code, _) = srv.post("/v1/jobs/plan", json!({"source": WEB_HCL})).await;
    assert_eq!(code, 404, "the old plan endpoint is gone");
    srv.stop().await;
}

#[tokio::test]
async fn deregister_sets_the_stop_flag_and_purge_deletes_the_spec() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.hcl", WEB_HCL).await;
    let (code, body) = srv.delete("/v1/job/web").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["Outcome"], "updated");
    assert_eq!(
        srv.read_json("/nomos/jobs/default/web").await.unwrap()["stop"],
        true
    );
    let (_, again) = srv.delete("/v1/job/web").await;
    assert_eq!(again["Outcome"], "unchanged");

    let (code, _) = apply_source(&srv, "web.hcl", WEB_HCL).await;
    assert_eq!(code, 200);
    assert_eq!(
        srv.read_json("/nomos/jobs/default/web").await.unwrap()["stop"],
        false
    );

    let (code, body) = srv.delete("/v1/job/web?purge=true").await;
    assert_eq!(code, 200, "{body}");
    assert!(srv.read_json("/nomos/jobs/default/web").await.is_none());
    let (code, _) = srv.get("/v1/job/web").await;
    assert_eq!(code, 404);
    let (code, _) = srv.post("/v1/job/web/stop", json!({})).await;
    assert_eq!(code, 404, "the old stop endpoint is gone");
    srv.stop().await;
}

#[tokio::test]
async fn versions_list_what_the_controller_stored_and_revert_writes_one_back() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.hcl", WEB_HCL).await;
    let v0 = srv.read_json("/nomos/jobs/default/web").await.unwrap();
    srv.put_json("/nomos/jobversions/default/web/00000000000000000000", &v0)
        .await;
    let changed = WEB_HCL.replace("count = 2", "count = 4");
    apply_source(&srv, "web.hcl", &changed).await;
    let v1 = srv.read_json("/nomos/jobs/default/web").await.unwrap();
    srv.put_json(
        "/nomos/jobversions/default/web/00000000000000000001",
        &json!({ "job": v1 }),
    )
    .await;
    srv.put_json(
        "/nomos/jobstatus/default/web",
        &json!({"status": "running", "version": 1, "stable_version": 0}),
    )
    .await;

    let (code, answer) = srv.get("/v1/job/web/versions?diffs=true").await;
    assert_eq!(code, 200, "{answer}");
    let versions = answer["Versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1]["Version"], 0, "newest first");
    assert_eq!(versions[1]["Stable"], true);
    assert_eq!(versions[0]["TaskGroups"][0]["Count"], 4);
    let diff = &answer["Diffs"][0];
    assert_eq!(diff["Type"], "Edited", "{answer}");
    assert!(diff["Fields"].is_null(), "{answer}");
    let group = &diff["TaskGroups"][0];
    assert_eq!(
        (&group["Name"], &group["Type"]),
        (&json!("frontend"), &json!("Edited"))
    );
    assert_eq!(
        group["Fields"][0],
        json!({"Type": "Edited", "Name": "Count", "Old": "2", "New": "4", "Annotations": null}),
        "{answer}"
    );
    assert!(srv.get("/v1/job/web/versions").await.1["Diffs"].is_null());

    let revert = |version: u64| json!({"JobID": "web", "JobVersion": version});
    let mut enforced = revert(0);
    enforced["EnforcePriorVersion"] = json!(0);
    let (code, body) = srv.post("/v1/job/web/revert", enforced).await;
    assert_eq!(code, 409, "version 1 is the current one: {body}");
    let (code, body) = srv
        .post(
            "/v1/job/web/revert",
            json!({"JobID": "db", "JobVersion": 0}),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = srv
        .post("/v1/job/web/revert", json!({"JobVersion": 0, "Version": 0}))
        .await;
    assert_eq!(code, 400, "an unknown field: {body}");
    let mut enforced = revert(0);
    enforced["EnforcePriorVersion"] = json!(1);
    let (code, body) = srv.post("/v1/job/web/revert", enforced).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["Outcome"], "updated");
    assert!(body["EvalID"].is_string() && body["JobModifyIndex"].as_i64() > Some(0));
    assert_eq!(
        srv.read_json("/nomos/jobs/default/web").await.unwrap()["groups"][0]["count"],
        2
    );

    let (code, _) = srv.post("/v1/job/web/revert", revert(9)).await;
    assert_eq!(code, 404);

    let (_, list) = srv.get("/v1/jobs").await;
    assert_eq!(list[0]["Status"], "running");
    assert_eq!(list[0]["Version"], 1);
    srv.stop().await;
}

#[tokio::test]
async fn unknown_paths_answer_json_404() {
    let srv = TestServer::start().await;
    let (code, body) = srv.get("/v1/nothing-here").await;
    assert_eq!(code, 404);
    assert!(body.as_str().unwrap().contains("/v1/nothing-here"));
    srv.stop().await;
}

#[tokio::test]
async fn periodic_force_launches_a_child_once_per_second_and_refuses_other_jobs() {
    let srv = TestServer::start().await;
    let periodic = r#"job "nightly" {
  type = "batch"
  periodic {
    crons            = ["0 3 * * *"]
    prohibit_overlap = false
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
    let (code, body) = apply_source(&srv, "nightly.hcl", periodic).await;
    assert_eq!(code, 200, "{body}");
    // The controllers are not running here: force needs an accepted version, as it launches
    // the version the controllers accepted.
    let (code, body) = srv.post("/v1/job/nightly/periodic/force", json!({})).await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body.as_str()
            .unwrap_or_default()
            .contains("no accepted version"),
        "{body}"
    );
    let spec = srv.read_json("/nomos/jobs/default/nightly").await.unwrap();
    srv.put_json(
        &format!("/nomos/jobversions/default/nightly/{:020}", 0),
        &spec,
    )
    .await;
    let (code, body) = srv.post("/v1/job/nightly/periodic/force", json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["EvalID"].is_string() && body["Index"].as_i64() > Some(0),
        "{body}"
    );
    let child = body["ChildJobID"].as_str().unwrap().to_string();
    assert!(child.starts_with("nightly-periodic-"), "{child}");
    let stored = srv
        .read_json(&format!("/nomos/jobs/default/{child}"))
        .await
        .expect("the child's spec is written");
    assert_eq!(stored["type"], "batch");
    assert!(
        stored["periodic"].is_null(),
        "a child is not periodic itself"
    );

    let (code, body) = apply_source(&srv, "web.hcl", WEB_HCL).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = srv.post("/v1/job/web/periodic/force", json!({})).await;
    assert_eq!(code, 409, "{body}");
    assert!(body.as_str().unwrap().contains("not periodic"));
    srv.stop().await;
}
