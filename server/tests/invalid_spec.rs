//! A job whose spec key holds something that is not a valid job (written straight into the
//! store, as GitOps or `etcdctl put` can): the last accepted version keeps running, reads show
//! it with the spec's errors marked, and the job can still be stopped, purged, reverted and
//! applied over. Each test writes the garbage directly into the spec key.

mod common;

use common::*;
use serde_json::{json, Value};

const SPEC_KEY: &str = "/nomos/jobs/default/web";

/// Values a spec key can be left holding that are not a valid job.
const GARBAGE: &[&[u8]] = &[
    b"not a job",
    b"",
    b"\xff\xfe\x00binary",
    br#"{"id": "someone-else", "groups": []}"#,
    br#"{"groups": 5}"#,
    b"[1, 2, 3]",
];

/// Job `web` applied (count 2) and accepted by the controllers as version 0, then version 1
/// (count 4) when `two_versions`; the spec key then overwritten with `garbage`, and the job
/// status written as the controllers record such a spec.
async fn running_then_garbage(srv: &TestServer, two_versions: bool, garbage: &[u8]) -> Value {
    let (code, body) = apply_source(srv, "web.hcl", WEB_HCL).await;
    assert_eq!(code, 200, "{body}");
    let v0 = srv.read_json(SPEC_KEY).await.expect("the spec");
    srv.put_json("/nomos/jobversions/default/web/00000000000000000000", &v0)
        .await;
    let mut version = 0;
    if two_versions {
        let mut v1 = v0.clone();
        v1["groups"][0]["count"] = json!(4);
        srv.put_json("/nomos/jobversions/default/web/00000000000000000001", &v1)
            .await;
        version = 1;
    }
    srv.put_raw(SPEC_KEY, garbage).await;
    srv.put_json(
        "/nomos/jobstatus/default/web",
        &json!({"status": "running", "version": version,
                "errors": ["/nomos/jobs/default/web:1:1: expected a job spec"],
                "summary": {"frontend": {"running": 2}}}),
    )
    .await;
    v0
}

#[tokio::test]
async fn get_answers_the_last_accepted_version_with_the_spec_errors_marked() {
    for garbage in GARBAGE {
        let srv = TestServer::start().await;
        running_then_garbage(&srv, true, garbage).await;
        let what = String::from_utf8_lossy(garbage).into_owned();
        for path in ["/v1/job/web", "/v1/job/we"] {
            let (code, d) = srv.get(path).await;
            assert_eq!(code, 200, "{what:?} {path}: {d}");
            assert_eq!(d["ID"], "web", "{what:?}: {d}");
            assert_eq!(d["TaskGroups"][0]["Count"], 4, "version 1 runs: {d}");
            assert_eq!(d["InvalidSpec"]["RunningVersion"], 1, "{what:?}: {d}");
            let errors = d["InvalidSpec"]["Errors"].as_array().expect("errors");
            assert!(!errors.is_empty(), "{what:?}: {d}");
            assert!(
                errors
                    .iter()
                    .all(|e| e.as_str().unwrap().contains(SPEC_KEY)),
                "each error names the key: {d}"
            );
            assert_eq!(
                d["NomosStatus"]["Errors"][0], "/nomos/jobs/default/web:1:1: expected a job spec",
                "the controllers' errors: {d}"
            );
        }
        for rest in ["/allocations", "/deployments", "/versions"] {
            let (code, body) = srv.get(&format!("/v1/job/web{rest}")).await;
            assert_eq!(code, 200, "{what:?} {rest}: {body}");
        }
        let (_, list) = srv.get("/v1/jobs").await;
        assert_eq!(list[0]["InvalidSpec"]["RunningVersion"], 1, "{list}");
        srv.stop().await;
    }
}

#[tokio::test]
async fn a_valid_spec_is_read_without_an_invalid_spec_marker() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.hcl", WEB_HCL).await;
    let (code, d) = srv.get("/v1/job/web").await;
    assert_eq!(code, 200, "{d}");
    assert!(d.get("InvalidSpec").is_none(), "{d}");
    srv.stop().await;
}

#[tokio::test]
async fn the_ui_job_page_shows_what_runs_and_the_errors() {
    let srv = TestServer::start().await;
    running_then_garbage(&srv, true, b"not a job").await;
    for path in ["/ui/job/web", "/ui/fragments/job/web"] {
        let resp = srv.client.get(srv.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let html = resp.text().await.unwrap();
        assert!(
            html.contains("version 1, the last accepted one, keeps running"),
            "{path}: {html}"
        );
        assert!(html.contains("class=\"spec-errors\""), "{html}");
        assert!(
            html.contains("web:1:1: expected a job (a mapping with apiVersion"),
            "the spec's own error: {html}"
        );
        assert!(
            html.contains("expected a job spec"),
            "the controllers' error: {html}"
        );
        assert!(
            html.contains("server (raw_exec)"),
            "the running version's tasks: {html}"
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn stop_writes_the_last_accepted_version_back_stopped() {
    let srv = TestServer::start().await;
    running_then_garbage(&srv, true, b"not a job").await;
    let (code, body) = srv.delete("/v1/job/web").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["Outcome"], "updated");
    let paths: Vec<&str> = body["Changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["spec", "stop"], "{body}");
    let stored = srv.read_json(SPEC_KEY).await.expect("a valid spec again");
    assert_eq!(stored["stop"], true);
    assert_eq!(
        stored["groups"][0]["count"], 4,
        "based on version 1: {stored}"
    );
    let (code, d) = srv.get("/v1/job/web").await;
    assert_eq!(code, 200);
    assert!(d.get("InvalidSpec").is_none(), "{d}");
    srv.stop().await;
}

#[tokio::test]
async fn purge_deletes_an_invalid_spec() {
    let srv = TestServer::start().await;
    running_then_garbage(&srv, false, b"\xff\xfe garbage").await;
    let (code, body) = srv.delete("/v1/job/web?purge=true").await;
    assert_eq!(code, 200, "{body}");
    let gone = srv
        .store
        .range(nomos_store::KeySelector::key(SPEC_KEY), Default::default())
        .await
        .unwrap();
    assert!(gone.kvs.is_empty(), "the spec key is deleted");
    srv.stop().await;
}

#[tokio::test]
async fn revert_replaces_an_invalid_spec_with_the_version_asked_for() {
    let srv = TestServer::start().await;
    running_then_garbage(&srv, true, b"not a job").await;
    let revert = |version: u64| json!({"JobID": "web", "JobVersion": version});
    let (code, body) = srv.post("/v1/job/web/revert", revert(0)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["Outcome"], "updated");
    let changes = body["Changes"].as_array().unwrap();
    assert_eq!(changes[0]["Path"], "spec", "{body}");
    let count = changes
        .iter()
        .find(|c| c["Path"] == "groups[frontend].count")
        .unwrap_or_else(|| panic!("diffed against what runs (version 1): {body}"));
    assert_eq!(
        (count["Old"].clone(), count["New"].clone()),
        (json!(4), json!(2))
    );
    let stored = srv.read_json(SPEC_KEY).await.expect("a valid spec again");
    assert_eq!(stored["groups"][0]["count"], 2);
    assert_eq!(stored["stop"], false);

    let (code, _) = srv.post("/v1/job/web/revert", revert(7)).await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn applying_over_an_invalid_spec_always_writes_and_diffs_against_what_runs() {
    let srv = TestServer::start().await;
    running_then_garbage(&srv, false, b"not a job").await;
    // The very job that runs: still written, since the key holds garbage.
    let (code, body) = apply_source(&srv, "web.hcl", WEB_HCL).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["Outcome"], "updated", "{body}");
    let paths: Vec<&str> = body["Changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["spec"], "{body}");
    assert_eq!(srv.read_json(SPEC_KEY).await.unwrap()["id"], "web");
    srv.stop().await;
}

#[tokio::test]
async fn an_invalid_spec_that_was_never_accepted_shows_that_nothing_runs() {
    let srv = TestServer::start().await;
    srv.put_raw("/nomos/jobs/default/ghost", b"not a job").await;
    let (code, d) = srv.get("/v1/job/ghost").await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["ID"], "ghost");
    assert_eq!(d["InvalidSpec"]["RunningVersion"], Value::Null, "{d}");
    assert!(d["TaskGroups"].is_null(), "{d}");

    let (code, body) = srv.delete("/v1/job/ghost").await;
    assert_eq!(code, 409, "{body}");
    let error = body.as_str().unwrap();
    assert!(error.contains("no accepted version to stop"), "{body}");
    assert!(error.contains("purge"), "says what helps: {body}");

    let (code, body) = srv.delete("/v1/job/ghost?purge=true").await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = srv.get("/v1/job/ghost").await;
    assert_eq!(code, 404);
    srv.stop().await;
}
