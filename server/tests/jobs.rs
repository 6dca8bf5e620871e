//! The job endpoints over real HTTP: apply, re-apply, check-index, validation errors with
//! positions, plan, stop, purge, versions and revert.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn apply_creates_the_spec_key_and_reapplying_is_a_no_op() {
    let srv = TestServer::start().await;
    let (code, body) = apply_source(&srv, "web.hcl", WEB_HCL).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["jobs"][0]["outcome"], "created");
    assert_eq!(body["jobs"][0]["id"], "web");
    let first_index = body["jobs"][0]["modify_index"].as_i64().unwrap();

    let stored = srv
        .read_json("/nomos/jobs/default/web")
        .await
        .expect("spec key written");
    assert_eq!(stored["id"], "web");
    assert_eq!(stored["groups"][0]["count"], 2);

    let (code, body) = apply_source(&srv, "web.hcl", WEB_HCL).await;
    assert_eq!(code, 200);
    assert_eq!(body["jobs"][0]["outcome"], "unchanged");
    assert_eq!(
        body["jobs"][0]["modify_index"].as_i64().unwrap(),
        first_index
    );
    assert!(body["jobs"][0]["changes"].as_array().unwrap().is_empty());

    let changed = WEB_HCL.replace("count = 2", "count = 3");
    let (code, body) = apply_source(&srv, "web.hcl", &changed).await;
    assert_eq!(code, 200);
    assert_eq!(body["jobs"][0]["outcome"], "updated");
    let changes = body["jobs"][0]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["path"], "groups[frontend].count");
    assert_eq!(changes[0]["old"], 2);
    assert_eq!(changes[0]["new"], 3);
    srv.stop().await;
}

#[tokio::test]
async fn list_and_get_show_the_job_with_its_modify_index() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.hcl", WEB_HCL).await;
    let (code, list) = srv.get("/v1/jobs").await;
    assert_eq!(code, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], "web");
    assert_eq!(list[0]["type"], "service");
    assert_eq!(list[0]["status"], "pending");

    let (code, detail) = srv.get("/v1/job/web").await;
    assert_eq!(code, 200);
    assert_eq!(detail["job"]["groups"][0]["name"], "frontend");
    assert_eq!(detail["modify_index"], list[0]["modify_index"]);

    let (code, by_prefix) = srv.get("/v1/job/we").await;
    assert_eq!(code, 200, "{by_prefix}");
    assert_eq!(by_prefix["job"]["id"], "web");

    let (code, missing) = srv.get("/v1/job/nope").await;
    assert_eq!(code, 404);
    assert!(missing["error"].as_str().unwrap().contains("nope"));

    // A periodic child answers to Nomad's spelling of its name as well as to its id.
    let child = WEB_HCL.replace("job \"web\"", "job \"web-periodic-1700000000\"");
    apply_source(&srv, "child.hcl", &child).await;
    for spelling in ["web-periodic-1700000000", "web%2Fperiodic-1700000000"] {
        let (code, found) = srv.get(&format!("/v1/job/{spelling}")).await;
        assert_eq!(code, 200, "{spelling}: {found}");
        assert_eq!(found["job"]["id"], "web-periodic-1700000000");
    }
    srv.stop().await;
}

#[tokio::test]
async fn check_index_guards_concurrent_writers() {
    let srv = TestServer::start().await;
    let (_, body) = srv
        .post(
            "/v1/jobs",
            json!({"source": WEB_HCL, "filename": "web.hcl", "check_index": 0}),
        )
        .await;
    assert_eq!(body["jobs"][0]["outcome"], "created");
    let index = body["jobs"][0]["modify_index"].as_i64().unwrap();

    let changed = WEB_HCL.replace("count = 2", "count = 5");
    let (code, body) = srv
        .post(
            "/v1/jobs",
            json!({"source": changed, "filename": "web.hcl", "check_index": index + 100}),
        )
        .await;
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("check-index"));
    assert_eq!(
        srv.read_json("/nomos/jobs/default/web").await.unwrap()["groups"][0]["count"],
        2
    );

    let (code, body) = srv
        .post(
            "/v1/jobs",
            json!({"source": changed, "filename": "web.hcl", "check_index": index}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["jobs"][0]["outcome"], "updated");
    srv.stop().await;
}

#[tokio::test]
async fn an_invalid_job_file_is_refused_with_positions_and_nothing_is_written() {
    let srv = TestServer::start().await;
    let bad = WEB_HCL.replace("driver = \"raw_exec\"", "drvier = \"raw_exec\"");
    let (code, body) = apply_source(&srv, "web.hcl", &bad).await;
    assert_eq!(code, 400, "{body}");
    let diags = body["diagnostics"].as_array().expect("diagnostics");
    assert!(!diags.is_empty());
    let d = diags
        .iter()
        .find(|d| d["message"].as_str().unwrap().contains("drvier"))
        .unwrap_or_else(|| panic!("an error naming the misspelt attribute: {body}"));
    assert_eq!(d["severity"], "error");
    assert_eq!(d["file"], "web.hcl");
    assert_eq!(d["line"], 14, "{d}");
    assert_eq!(d["column"], 7, "{d}");
    assert!(
        body["error"].as_str().unwrap().starts_with("web.hcl:"),
        "{body}"
    );
    assert!(srv.read_json("/nomos/jobs/default/web").await.is_none());
    srv.stop().await;
}

#[tokio::test]
async fn a_canonical_job_body_is_accepted() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.hcl", WEB_HCL).await;
    let (_, detail) = srv.get("/v1/job/web").await;
    let mut job = detail["job"].clone();
    job["id"] = json!("web2");
    job["name"] = json!("web2");
    let (code, body) = srv.post("/v1/jobs", job.clone()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["jobs"][0]["outcome"], "created");
    let (code, body) = srv.post("/v1/jobs", json!({ "job": job })).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["jobs"][0]["outcome"], "unchanged");
    srv.stop().await;
}

#[tokio::test]
async fn malformed_json_says_where_it_broke() {
    let srv = TestServer::start().await;
    let (code, body) = srv
        .post_raw("/v1/jobs", "{\n  \"source\": \"x\",\n  oops\n}")
        .await;
    assert_eq!(code, 400);
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("malformed JSON at line 3 column"), "{msg}");
    srv.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let srv = TestServer::start_with(|s| s, 1024).await;
    let big = format!("{{\"source\": \"{}\"}}", "x".repeat(4096));
    let (code, body) = srv.post_raw("/v1/jobs", big).await;
    assert_eq!(code, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("larger"));
    srv.stop().await;
}

#[tokio::test]
async fn plan_reports_changes_without_writing() {
    let srv = TestServer::start().await;
    let (code, plan) = srv
        .post(
            "/v1/jobs/plan",
            json!({"source": WEB_HCL, "filename": "web.hcl"}),
        )
        .await;
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["jobs"][0]["outcome"], "created");
    let group = &plan["jobs"][0]["groups"][0];
    assert_eq!(group["place"], 0, "no node: {group}");
    assert_eq!(group["failed"], group["count"], "{group}");
    assert!(group["placement_failure"].is_string(), "{group}");
    assert!(srv.read_json("/nomos/jobs/default/web").await.is_none());

    apply_source(&srv, "web.hcl", WEB_HCL).await;
    let changed = WEB_HCL.replace("\"1000\"", "\"2000\"");
    let (_, plan) = srv
        .post(
            "/v1/jobs/plan",
            json!({"source": changed, "filename": "web.hcl"}),
        )
        .await;
    assert_eq!(plan["jobs"][0]["outcome"], "updated");
    assert_eq!(
        plan["jobs"][0]["changes"][0]["path"],
        "groups[frontend].tasks[server].config.args[0]"
    );
    let (_, plan) = srv
        .post(
            "/v1/jobs/plan",
            json!({"source": WEB_HCL, "filename": "web.hcl"}),
        )
        .await;
    assert_eq!(plan["jobs"][0]["outcome"], "unchanged");
    srv.stop().await;
}

#[tokio::test]
async fn stop_sets_the_flag_and_purge_deletes_the_spec() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.hcl", WEB_HCL).await;
    let (code, body) = srv.post("/v1/job/web/stop", json!({})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["outcome"], "updated");
    assert_eq!(
        srv.read_json("/nomos/jobs/default/web").await.unwrap()["stop"],
        true
    );
    let (_, again) = srv.post_raw("/v1/job/web/stop", "").await;
    assert_eq!(again["outcome"], "unchanged");

    let (code, _) = apply_source(&srv, "web.hcl", WEB_HCL).await;
    assert_eq!(code, 200);
    assert_eq!(
        srv.read_json("/nomos/jobs/default/web").await.unwrap()["stop"],
        false
    );

    let (code, body) = srv.delete("/v1/job/web").await;
    assert_eq!(code, 200, "{body}");
    assert!(srv.read_json("/nomos/jobs/default/web").await.is_none());
    let (code, _) = srv.get("/v1/job/web").await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn versions_list_what_the_controller_stored_and_revert_writes_one_back() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.hcl", WEB_HCL).await;
    let (_, v0) = srv.get("/v1/job/web").await;
    let v0 = v0["job"].clone();
    srv.put_json("/nomos/jobversions/default/web/00000000000000000000", &v0)
        .await;
    let changed = WEB_HCL.replace("count = 2", "count = 4");
    apply_source(&srv, "web.hcl", &changed).await;
    let (_, v1) = srv.get("/v1/job/web").await;
    srv.put_json(
        "/nomos/jobversions/default/web/00000000000000000001",
        &json!({"job": v1["job"]}),
    )
    .await;
    srv.put_json(
        "/nomos/jobstatus/default/web",
        &json!({"status": "running", "version": 1, "stable_version": 0}),
    )
    .await;

    let (code, versions) = srv.get("/v1/job/web/versions").await;
    assert_eq!(code, 200, "{versions}");
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 0);
    assert_eq!(versions[0]["stable"], true);
    assert_eq!(versions[1]["job"]["groups"][0]["count"], 4);

    let (code, body) = srv.post("/v1/job/web/revert", json!({"version": 0})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["outcome"], "updated");
    assert_eq!(
        srv.read_json("/nomos/jobs/default/web").await.unwrap()["groups"][0]["count"],
        2
    );

    let (code, _) = srv.post("/v1/job/web/revert", json!({"version": 9})).await;
    assert_eq!(code, 404);

    let (_, list) = srv.get("/v1/jobs").await;
    assert_eq!(list[0]["status"], "running");
    assert_eq!(list[0]["version"], 1);
    srv.stop().await;
}

#[tokio::test]
async fn unknown_paths_answer_json_404() {
    let srv = TestServer::start().await;
    let (code, body) = srv.get("/v1/nothing-here").await;
    assert_eq!(code, 404);
    assert!(body["error"].as_str().unwrap().contains("/v1/nothing-here"));
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
        body["error"]
            .as_str()
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
    let child = body["child"].as_str().unwrap().to_string();
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
    assert!(body["error"].as_str().unwrap().contains("not periodic"));
    srv.stop().await;
}
