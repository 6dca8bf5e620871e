//! Jobs in Nomad's shapes over HTTP: the list (`JobListStub`s with namespace, prefix, filter
//! and pages), one job (Nomad's `Job` with Nomos's extras), blocking queries on both, register
//! with its enforced index and submission, deregister (stop and purge), and the submission of
//! an accepted version; each with its failure paths.

mod common;

use std::time::{Duration, Instant};

use common::{register_body, TestServer, WEB_HCL};
use nomos_api::{parse_source, Job, ParseOptions};
use nomos_store::keys;
use serde_json::{json, Value};

fn web() -> Job {
    job_from(WEB_HCL)
}

fn job_from(source: &str) -> Job {
    let parsed = parse_source("web.hcl", source, &ParseOptions::default()).expect("parses");
    parsed.jobs.into_iter().next().expect("one job")
}

/// WEB_HCL with another ID and type.
fn other(id: &str, kind: &str) -> Job {
    let mut job = web();
    job.id = id.into();
    job.name = id.into();
    job.job_type = serde_json::from_value(json!(kind)).unwrap();
    job
}

async fn register(srv: &TestServer, job: &Job) -> Value {
    let (code, body) = srv.post("/v1/jobs", register_body(job, WEB_HCL)).await;
    assert_eq!(code, 200, "{body}");
    body
}

async fn get_index(srv: &TestServer, path: &str) -> (u16, i64, Value) {
    let resp = srv.client.get(srv.url(path)).send().await.expect("GET");
    let index = resp
        .headers()
        .get("x-nomad-index")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let (code, body) = common::decode(resp).await;
    (code, index, body)
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|j| j["ID"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn register_then_read_answers_nomads_job_and_list_stub() {
    let srv = TestServer::start().await;
    let answer = register(&srv, &web()).await;
    assert_eq!(answer["Outcome"], "created", "{answer}");
    assert_eq!(answer["KnownLeader"], true);
    let index = answer["JobModifyIndex"].as_i64().unwrap();
    assert!(index > 0 && answer["EvalCreateIndex"] == index, "{answer}");
    assert_eq!(answer["EvalID"].as_str().unwrap().len(), 36, "{answer}");

    let (code, _, list) = get_index(&srv, "/v1/jobs").await;
    assert_eq!(code, 200, "{list}");
    let stub = &list[0];
    assert_eq!(stub["ID"], "web");
    assert_eq!(stub["Type"], "service");
    assert_eq!(stub["Status"], "pending");
    assert_eq!(stub["JobModifyIndex"], index);
    assert!(
        stub["JobSummary"]["Summary"]["frontend"].is_object(),
        "{stub}"
    );

    let (code, header_index, job) = get_index(&srv, "/v1/job/web").await;
    assert_eq!(code, 200, "{job}");
    assert!(header_index >= index);
    assert_eq!(job["ID"], "web");
    assert_eq!(job["TaskGroups"][0]["Name"], "frontend");
    assert_eq!(job["TaskGroups"][0]["Count"], 2);
    assert_eq!(job["JobModifyIndex"], index);
    assert!(job.get("InvalidSpec").is_none(), "{job}");
    // A prefix of the ID finds the job, as the old endpoint did.
    assert_eq!(srv.get("/v1/job/we").await.1["ID"], "web");
}

#[tokio::test]
async fn list_takes_prefix_filter_pages_and_every_namespace() {
    let srv = TestServer::start().await;
    for (id, kind) in [("web", "service"), ("worker", "batch"), ("api", "service")] {
        register(&srv, &other(id, kind)).await;
    }
    let (_, list) = srv.get("/v1/jobs?prefix=w").await;
    assert_eq!(ids(&list), ["web", "worker"]);
    let filter = "filter=Type%20%3D%3D%20%22batch%22";
    assert_eq!(
        ids(&srv.get(&format!("/v1/jobs?{filter}")).await.1),
        ["worker"]
    );
    let resp = srv
        .client
        .get(srv.url("/v1/jobs?per_page=2"))
        .send()
        .await
        .unwrap();
    let next = resp.headers()["x-nomad-nexttoken"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(next, "default.worker");
    let (_, page) = common::decode(resp).await;
    assert_eq!(ids(&page), ["api", "web"]);
    let (_, rest) = srv
        .get(&format!("/v1/jobs?per_page=2&next_token={next}"))
        .await;
    assert_eq!(ids(&rest), ["worker"]);
    assert_eq!(ids(&srv.get("/v1/jobs?namespace=*").await.1).len(), 3);
    assert_eq!(ids(&srv.get("/v1/jobs?namespace=other").await.1).len(), 0);
}

#[tokio::test]
async fn reads_refuse_a_bad_namespace_and_a_missing_job() {
    let srv = TestServer::start().await;
    let (code, body) = srv.get("/v1/jobs?namespace=a/b").await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = srv.get("/v1/job/web?namespace=a/b").await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = srv.get("/v1/job/nope").await;
    assert_eq!(code, 404, "{body}");
}

#[tokio::test]
async fn a_blocking_read_of_a_job_wakes_on_its_change() {
    let srv = TestServer::start().await;
    register(&srv, &web()).await;
    let (_, index, _) = get_index(&srv, "/v1/job/web").await;
    let url = srv.url(&format!("/v1/job/web?index={index}&wait=20s"));
    let client = srv.client.clone();
    let started = Instant::now();
    let blocked = tokio::spawn(async move { client.get(url).send().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut changed = web();
    changed.groups[0].count = 3;
    register(&srv, &changed).await;
    let resp = blocked.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let woke_at: i64 = resp.headers()["x-nomad-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(woke_at > index);
    let (_, job) = common::decode(resp).await;
    assert_eq!(job["TaskGroups"][0]["Count"], 3, "{job}");
    // The list blocks the same way, and a quiet store lets its wait run out.
    let (_, index, _) = get_index(&srv, "/v1/jobs").await;
    let started = Instant::now();
    let (code, _, _) = get_index(&srv, &format!("/v1/jobs?index={index}&wait=1s")).await;
    assert_eq!(code, 200);
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn register_enforces_the_job_modify_index_in_nomads_words() {
    let srv = TestServer::start().await;
    let mut body = register_body(&web(), WEB_HCL);
    body["EnforceIndex"] = json!(true);
    body["JobModifyIndex"] = json!(5);
    let (code, answer) = srv.post("/v1/jobs", body.clone()).await;
    assert_eq!(code, 409, "{answer}");
    assert!(
        answer.to_string().contains("job does not exist"),
        "{answer}"
    );
    body["JobModifyIndex"] = json!(0);
    let (code, answer) = srv.post("/v1/jobs", body.clone()).await;
    assert_eq!(code, 200, "{answer}");
    let index = answer["JobModifyIndex"].as_i64().unwrap();
    let (code, answer) = srv.post("/v1/jobs", body.clone()).await;
    assert_eq!(code, 409, "{answer}");
    assert!(
        answer.to_string().contains("job already exists"),
        "{answer}"
    );
    body["JobModifyIndex"] = json!(index + 7);
    let (code, answer) = srv.post("/v1/jobs", body.clone()).await;
    assert_eq!(code, 409, "{answer}");
    let want = format!(
        "Enforcing job modify index {}: job exists with conflicting job modify index: {index}",
        index + 7
    );
    assert!(answer.to_string().contains(&want), "{answer}");
    body["JobModifyIndex"] = json!(index);
    let (code, answer) = srv.post("/v1/jobs", body).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["Outcome"], "unchanged");
}

#[tokio::test]
async fn a_job_read_and_sent_back_registers_unchanged() {
    let srv = TestServer::start().await;
    register(&srv, &web()).await;
    let (code, mut job) = srv.get("/v1/job/web").await;
    assert_eq!(code, 200, "{job}");
    // What Nomos adds to a read (python-nomad sends back whatever it read).
    job["NomosStatus"] = json!({"Status": "running", "Version": 0});
    job["InvalidSpec"] = json!({"Errors": ["x"], "RunningVersion": 0});
    let (code, answer) = srv.post("/v1/job/web", json!({ "Job": job })).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["Outcome"], "unchanged", "{answer}");
    assert_eq!(answer["Warnings"], "", "{answer}");
}

#[tokio::test]
async fn register_reports_what_changed_and_keeps_counts_when_asked() {
    let srv = TestServer::start().await;
    register(&srv, &web()).await;
    let mut changed = web();
    changed.groups[0].count = 5;
    let answer = register(&srv, &changed).await;
    assert_eq!(answer["Outcome"], "updated");
    assert_eq!(
        answer["Changes"][0]["Path"], "groups[frontend].count",
        "{answer}"
    );
    let mut body = register_body(&web(), WEB_HCL);
    body["Job"]["TaskGroups"][0]["Count"] = json!(1);
    body["Job"]["Meta"] = json!({"release": "2"});
    body["PreserveCounts"] = json!(true);
    let (code, answer) = srv.post("/v1/job/web", body).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(srv.get("/v1/job/web").await.1["TaskGroups"][0]["Count"], 5);
}

#[tokio::test]
async fn register_refuses_bad_bodies() {
    let srv = TestServer::start().await;
    let mut body = register_body(&web(), WEB_HCL);
    body["Bogus"] = json!(1);
    let (code, answer) = srv.post("/v1/jobs", body).await;
    assert_eq!(code, 400, "{answer}");
    assert!(answer.to_string().contains("Bogus"), "{answer}");

    let mut body = register_body(&web(), WEB_HCL);
    body["Submission"]["Extra"] = json!("x");
    let (code, answer) = srv.post("/v1/jobs", body).await;
    assert_eq!(code, 400, "{answer}");

    let (code, answer) = srv
        .post("/v1/job/other", register_body(&web(), WEB_HCL))
        .await;
    assert_eq!(code, 400, "{answer}");
    assert!(answer.to_string().contains("does not match"), "{answer}");

    let mut body = register_body(&web(), WEB_HCL);
    body["Job"]["TaskGroups"][0]["Count"] = json!(-1);
    let (code, answer) = srv.post("/v1/jobs", body).await;
    assert_eq!(code, 400, "{answer}");

    let (code, answer) = srv.post("/v1/jobs", json!({"Job": "web"})).await;
    assert_eq!(code, 400, "{answer}");

    let mut body = register_body(&web(), WEB_HCL);
    body["Submission"]["Source"] = json!("x".repeat(300 * 1024));
    let (code, answer) = srv.post("/v1/jobs", body).await;
    assert_eq!(code, 400, "{answer}");
    assert!(answer.to_string().contains("Submission"), "{answer}");

    let mut body = register_body(&web(), WEB_HCL);
    body["Job"]["Namespace"] = json!("missing");
    let (code, answer) = srv.post("/v1/jobs", body).await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer.to_string().contains("nonexistent namespace"),
        "{answer}"
    );
    assert_eq!(srv.get("/v1/jobs?namespace=*").await.1, json!([]));
}

#[tokio::test]
async fn an_accepted_versions_submission_is_its_source() {
    let srv = TestServer::start().await;
    let job = web();
    let mut body = register_body(&job, WEB_HCL);
    body["Submission"]["VariableFlags"] = json!({"image": "nginx"});
    let (code, answer) = srv.post("/v1/jobs", body).await;
    assert_eq!(code, 200, "{answer}");
    // The controllers accept the spec as version 0.
    let canonical: Value = serde_json::from_str(&nomos_api::to_canonical_json(&job)).unwrap();
    srv.put_json(&keys::job_version("default", "web", 0), &canonical)
        .await;
    let (code, sub) = srv.get("/v1/job/web/submission?version=0").await;
    assert_eq!(code, 200, "{sub}");
    assert_eq!(sub["Source"], WEB_HCL);
    assert_eq!(sub["Format"], "hcl2");
    assert_eq!(sub["VariableFlags"]["image"], "nginx");
    assert_eq!(sub["JobID"], "web");
    assert_eq!(sub["Version"], 0);
    assert_eq!(sub["JobModifyIndex"], answer["JobModifyIndex"]);
    assert_eq!(srv.get("/v1/job/web/submission?version=1").await.0, 404);
    assert_eq!(srv.get("/v1/job/web/submission").await.0, 400);
    assert_eq!(srv.get("/v1/job/nope/submission?version=0").await.0, 404);
}

#[tokio::test]
async fn deregister_stops_and_purge_removes_the_spec_and_its_submissions() {
    let srv = TestServer::start().await;
    register(&srv, &web()).await;
    let (code, answer) = srv.delete("/v1/job/web").await;
    assert_eq!(code, 200, "{answer}");
    assert!(answer["EvalID"].is_string() && answer["JobModifyIndex"].as_i64() > Some(0));
    let (_, job) = srv.get("/v1/job/web").await;
    assert_eq!(job["Stop"], true, "{job}");
    let (code, answer) = srv.delete("/v1/job/web?purge=true").await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(srv.get("/v1/job/web").await.0, 404);
    let left = srv
        .store
        .range(
            nomos_store::KeySelector::prefix(keys::JOB_SUBMISSIONS_PREFIX.as_bytes().to_vec()),
            Default::default(),
        )
        .await
        .unwrap();
    assert!(left.kvs.is_empty(), "submissions are purged with the job");
    assert_eq!(srv.delete("/v1/job/web").await.0, 404);
}

#[tokio::test]
async fn an_invalid_stored_spec_reads_as_its_running_version_with_its_errors() {
    let srv = TestServer::start().await;
    let job = web();
    let canonical: Value = serde_json::from_str(&nomos_api::to_canonical_json(&job)).unwrap();
    srv.put_json(&keys::job_version("default", "web", 0), &canonical)
        .await;
    srv.put_raw(&keys::job("default", "web"), b"not a job")
        .await;
    let (code, got) = srv.get("/v1/job/web").await;
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["InvalidSpec"]["RunningVersion"], 0, "{got}");
    assert!(!got["InvalidSpec"]["Errors"].as_array().unwrap().is_empty());
    assert_eq!(got["TaskGroups"][0]["Count"], 2);
    let (_, list) = srv.get("/v1/jobs").await;
    assert!(list[0]["InvalidSpec"].is_object(), "{list}");
}

#[tokio::test]
async fn gc_removes_the_submissions_of_the_versions_it_collects() {
    let srv = TestServer::start_with(
        |mut st| {
            st.gc.job_versions_kept = 1;
            st
        },
        nomos_server::DEFAULT_BODY_LIMIT,
    )
    .await;
    // Versions 0 and 1 differ; version 2 is version 0 again (a revert), so version 0's
    // submission stays while version 2 is kept.
    for (version, count) in [(0u64, 2u32), (1, 3), (2, 2), (3, 4)] {
        let mut job = web();
        job.groups[0].count = count;
        register(&srv, &job).await;
        let canonical: Value = serde_json::from_str(&nomos_api::to_canonical_json(&job)).unwrap();
        srv.put_json(&keys::job_version("default", "web", version), &canonical)
            .await;
    }
    srv.put_json(
        &keys::job_status("default", "web"),
        &json!({"status": "running", "version": 3, "stable_version": 2}),
    )
    .await;
    let (code, body) = srv.post("/v1/system/gc", json!({})).await;
    assert_eq!(code, 200, "{body}");
    let mut kept = Vec::new();
    for v in 0..4u64 {
        if srv
            .read_json(&keys::job_version("default", "web", v))
            .await
            .is_some()
        {
            kept.push(v);
        }
    }
    assert_eq!(kept, [2, 3], "the newest and the stable version are kept");
    for (version, found) in [(2u64, 200u16), (3, 200)] {
        let path = format!("/v1/job/web/submission?version={version}");
        assert_eq!(srv.get(&path).await.0, found, "{path}");
    }
    let left = srv
        .store
        .range(
            nomos_store::KeySelector::prefix(keys::JOB_SUBMISSIONS_PREFIX.as_bytes().to_vec()),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(left.kvs.len(), 2, "version 1's submission is collected");
}

#[tokio::test]
async fn scale_sets_a_groups_count_and_reports_its_status() {
    let srv = TestServer::start().await;
    register(&srv, &web()).await;
    let scale = |count: Value, group: &str| json!({"Count": count, "Target": {"Group": group}, "Message": "by hand", "Meta": {"who": "ops"}});
    let (code, answer) = srv
        .post("/v1/job/web/scale", scale(json!(5), "frontend"))
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["Outcome"], "updated");
    assert!(answer["EvalID"].is_string());
    assert_eq!(srv.get("/v1/job/web").await.1["TaskGroups"][0]["Count"], 5);
    let (code, status) = srv.get("/v1/job/web/scale").await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["JobID"], "web");
    assert_eq!(status["JobStopped"], false);
    assert_eq!(status["TaskGroups"]["frontend"]["Desired"], 5, "{status}");
    assert_eq!(status["JobModifyIndex"], answer["JobModifyIndex"]);

    for (body, code) in [
        (scale(json!(-1), "frontend"), 400),
        (scale(json!(2), "nope"), 400),
        (json!({"Count": 2, "Target": {}}), 400),
        (
            json!({"Count": 2, "Target": {"Group": "frontend"}, "Cnt": 1}),
            400,
        ),
    ] {
        let (got, answer) = srv.post("/v1/job/web/scale", body.clone()).await;
        assert_eq!(got, code, "{body}: {answer}");
    }
    let (code, _) = srv
        .post("/v1/job/nope/scale", scale(json!(1), "frontend"))
        .await;
    assert_eq!(code, 404);
    // Without a count nothing changes, as Nomad only records an event then.
    let (code, answer) = srv
        .post(
            "/v1/job/web/scale",
            json!({"Target": {"Group": "frontend"}}),
        )
        .await;
    assert_eq!(
        (code, answer["Outcome"].as_str()),
        (200, Some("unchanged")),
        "{answer}"
    );
}
