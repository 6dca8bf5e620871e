//! Evaluations over real HTTP, with the real jobs controller where a reconcile records them:
//! a registered job's evaluation completes with the allocations it placed; a job that cannot
//! be placed gets `FailedTGAllocs` and a blocked evaluation that completes once a node
//! appears; a drain and a node evaluation record one per job on the node; an idle cluster
//! records nothing more; a system job's placements name the evaluation of the system loop's
//! pass. Without a controller: list filters and pages, related evaluations,
//! unknown IDs, bad bodies, and the collector.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn error_of(body: &Value) -> &str {
    body.as_str().unwrap_or_default()
}

fn with_status<'a>(evals: &'a Value, status: &str) -> Vec<&'a Value> {
    evals
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["Status"] == status)
        .collect()
}

/// Job `web`: one `api` instance of a small raw_exec task in dc1.
const WEB: &str = r#"
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
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
"#;

#[tokio::test]
async fn a_registered_jobs_evaluation_completes_with_the_allocations_it_placed() {
    let (srv, stop) = with_controller().await;
    seed_node(&srv, "n1", true).await;
    let (code, answer) = apply_source(&srv, "web.nomad", WEB).await;
    assert_eq!(code, 200, "{answer}");

    // The register's own evaluation completes with what it placed, and it is the only one.
    let register_eval = answer["EvalID"].as_str().unwrap().to_string();
    let eval = until(&srv, &format!("/v1/evaluation/{register_eval}"), |e| {
        e["Status"] == "complete"
    })
    .await;
    let (_, all) = srv.get("/v1/job/web/evaluations").await;
    assert_eq!(ids(&all), vec![register_eval.as_str()], "{all}");
    assert_eq!(eval["PlacedAllocs"].as_array().map(Vec::len), Some(1));
    assert_eq!(eval["TriggeredBy"], "job-register", "{eval}");
    assert_eq!(eval["Type"], "service");
    assert_eq!(eval["Namespace"], "default");
    assert_eq!(eval["FailedTGAllocs"], Value::Null);
    assert!(eval["JobModifyIndex"].as_i64().unwrap() > 0, "{eval}");
    assert!(eval["ModifyIndex"].as_i64() >= eval["CreateIndex"].as_i64());
    let id = eval["ID"].as_str().unwrap();

    let (code, allocs) = srv.get(&format!("/v1/evaluation/{id}/allocations")).await;
    assert_eq!(code, 200, "{allocs}");
    assert_eq!(allocs.as_array().unwrap().len(), 1, "{allocs}");
    assert_eq!(allocs[0]["TaskGroup"], "api");
    // The allocation names the evaluation that placed it, in every shape it is read in.
    assert_eq!(allocs[0]["EvalID"], id, "{allocs}");
    let alloc_id = allocs[0]["ID"].as_str().unwrap();
    let (_, one) = srv.get(&format!("/v1/allocation/{alloc_id}")).await;
    assert_eq!(one["EvalID"], id, "{one}");
    let (_, listed) = srv.get("/v1/allocations").await;
    assert_eq!(listed[0]["EvalID"], id, "{listed}");

    // Version 0 of a service job (its groups get Nomad's default `update` block) is rolled
    // out under a deployment, which the evaluation names.
    let (code, d) = srv.get("/v1/job/web/deployment").await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(
        (d["JobVersion"].as_u64(), d["Status"].as_str()),
        (Some(0), Some("running"))
    );
    assert_eq!(eval["DeploymentID"], d["ID"], "{eval}");
    assert_eq!(
        allocs[0]["DeploymentStatus"]["Healthy"],
        Value::Null,
        "{allocs}"
    );

    // An idle cluster records nothing more.
    let (_, before) = srv.get("/v1/evaluations").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, again) = srv.get("/v1/evaluations").await;
    assert_eq!(again, before);

    // Forcing an evaluation writes a pending one, which the controller completes.
    let (code, forced) = srv.post("/v1/job/web/evaluate", json!({})).await;
    assert_eq!(code, 200, "{forced}");
    let forced_id = forced["EvalID"].as_str().unwrap().to_string();
    assert!(forced["EvalCreateIndex"].as_i64().unwrap() > 0, "{forced}");
    assert!(forced["JobModifyIndex"].as_i64().unwrap() > 0, "{forced}");
    let done = until(&srv, &format!("/v1/evaluation/{forced_id}"), |e| {
        e["Status"] == "complete"
    })
    .await;
    assert_eq!(done["JobID"], "web");
    let _ = stop.send(());
    srv.stop().await;
}

/// `WEB` with `count` instances.
fn web_with(count: u32) -> String {
    WEB.replace("count = 1", &format!("count = {count}"))
}

#[tokio::test]
async fn registers_in_a_row_each_record_one_evaluation_linked_to_what_it_placed() {
    let (srv, stop) = with_controller().await;
    seed_node(&srv, "n1", true).await;
    let mut registered = Vec::new();
    for count in 1..=6 {
        let (code, answer) = apply_source(&srv, "web.nomad", &web_with(count)).await;
        assert_eq!(code, 200, "{answer}");
        registered.push(answer["EvalID"].as_str().unwrap().to_string());
    }
    until(&srv, "/v1/job/web/allocations", |a| {
        a.as_array().is_some_and(|a| a.len() == 6)
    })
    .await;
    let evals = until(&srv, "/v1/job/web/evaluations", |b| {
        with_status(b, "complete").len() >= registered.len()
    })
    .await;
    // Late watch events and resyncs add none.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, evals_after) = srv.get("/v1/job/web/evaluations").await;
    assert_eq!(evals_after, evals);
    let mut got: Vec<&str> = ids(&evals);
    got.sort();
    let mut want: Vec<&str> = registered.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(got, want, "one evaluation per register, no other: {evals}");
    // Each version answers the time of its register (Unix nanoseconds), as the job does.
    let (_, versions) = srv.get("/v1/job/web/versions").await;
    let times: Vec<i64> = versions["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["SubmitTime"].as_i64().unwrap())
        .collect();
    let now_ns = nomos_api::now_ms() * 1_000_000;
    assert!(!times.is_empty(), "{versions}");
    assert!(
        times
            .iter()
            .all(|t| *t > now_ns - 60_000_000_000 && *t <= now_ns),
        "{times:?}"
    );
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let (_, job) = srv.get("/v1/job/web").await;
    assert_eq!(job["SubmitTime"].as_i64(), Some(times[0]), "{job}");
    let (_, list) = srv.get("/v1/jobs").await;
    assert_eq!(list[0]["SubmitTime"].as_i64(), Some(times[0]), "{list}");
    // Each allocation names an evaluation of the job that lists it, and the evaluation's
    // allocations are those that name it (or that it changed).
    let (_, allocs) = srv.get("/v1/job/web/allocations").await;
    for a in allocs.as_array().unwrap() {
        let eval_id = a["EvalID"].as_str().unwrap();
        let eval = evals
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["ID"] == eval_id)
            .unwrap_or_else(|| panic!("{} names no evaluation of the job: {evals}", a["ID"]));
        assert!(
            eval["PlacedAllocs"]
                .as_array()
                .is_some_and(|p| p.contains(&a["ID"])),
            "{eval} does not list {}",
            a["ID"]
        );
        let (_, of_eval) = srv
            .get(&format!("/v1/evaluation/{eval_id}/allocations"))
            .await;
        assert!(
            of_eval
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["ID"] == a["ID"]),
            "{of_eval}"
        );
    }
    let _ = stop.send(());
    srv.stop().await;
}

#[tokio::test]
async fn a_job_that_cannot_be_placed_blocks_until_a_node_appears() {
    let (srv, stop) = with_controller().await;
    let (code, answer) = apply_source(&srv, "web.nomad", WEB).await;
    assert_eq!(code, 200, "{answer}");

    let evals = until(&srv, "/v1/job/web/evaluations", |b| {
        !with_status(b, "blocked").is_empty()
            && with_status(b, "complete")
                .iter()
                .any(|e| e["BlockedEval"].as_str().is_some_and(|id| !id.is_empty()))
    })
    .await;
    let failed = with_status(&evals, "complete")
        .into_iter()
        .find(|e| e["BlockedEval"].as_str().is_some_and(|id| !id.is_empty()))
        .unwrap_or_else(|| panic!("a completed evaluation with its failures: {evals}"))
        .clone();
    let blocked = with_status(&evals, "blocked")[0].clone();
    assert_eq!(failed["BlockedEval"], blocked["ID"], "{evals}");
    assert_eq!(blocked["PreviousEval"], failed["ID"], "{evals}");
    let metric = &failed["FailedTGAllocs"]["api"];
    assert_eq!(metric["NodesEvaluated"], 0, "{failed}");
    assert_eq!(blocked["QueuedAllocations"]["api"], 1, "{blocked}");

    let id = failed["ID"].as_str().unwrap();
    let (code, with_related) = srv.get(&format!("/v1/evaluation/{id}?related=true")).await;
    assert_eq!(code, 200, "{with_related}");
    let related = with_related["RelatedEvals"].as_array().unwrap();
    assert!(
        related.iter().any(|e| e["ID"] == blocked["ID"]),
        "{with_related}"
    );

    seed_node(&srv, "n1", true).await;
    let blocked_id = blocked["ID"].as_str().unwrap();
    let done = until(&srv, &format!("/v1/evaluation/{blocked_id}"), |e| {
        e["Status"] == "complete"
    })
    .await;
    assert_eq!(
        done["PlacedAllocs"].as_array().map(Vec::len),
        Some(1),
        "{done}"
    );
    let _ = stop.send(());
    srv.stop().await;
}

#[tokio::test]
async fn a_drain_and_a_node_evaluation_record_one_per_job_on_the_node() {
    let (srv, stop) = with_controller().await;
    seed_node(&srv, "n1", true).await;
    apply_source(&srv, "web.nomad", WEB).await;
    until(&srv, "/v1/allocations", |b| {
        b.as_array().unwrap().len() == 1
    })
    .await;

    let (code, resp) = srv.post("/v1/node/n1/evaluate", json!({})).await;
    assert_eq!(code, 200, "{resp}");
    assert_eq!(resp["EvalIDs"].as_array().unwrap().len(), 1, "{resp}");
    assert!(resp["NodeModifyIndex"].as_i64().unwrap() > 0, "{resp}");
    let id = resp["EvalIDs"][0].as_str().unwrap();
    let (_, eval) = srv.get(&format!("/v1/evaluation/{id}")).await;
    assert_eq!(eval["TriggeredBy"], "node-update");
    assert_eq!(eval["NodeID"], "n1-id-0001");

    let (code, resp) = srv
        .post("/v1/node/n1/drain", json!({"DrainSpec": {"Deadline": 0}}))
        .await;
    assert_eq!(code, 200, "{resp}");
    let id = resp["EvalIDs"][0].as_str().unwrap().to_string();
    assert_eq!(resp["EvalCreateIndex"], resp["Index"]);
    let eval = until(&srv, &format!("/v1/evaluation/{id}"), |e| {
        e["Status"] == "complete"
    })
    .await;
    assert_eq!(eval["TriggeredBy"], "node-drain");
    assert_eq!(eval["JobID"], "web");

    let (code, body) = srv.post("/v1/node/nope/evaluate", json!({})).await;
    assert_eq!(code, 404, "{body}");
    let _ = stop.send(());
    srv.stop().await;
}

/// An evaluation as the store holds it.
fn stored_eval(id: &str, ns: &str, job: &str, status: &str, modify_time: i64) -> Value {
    json!({"ID": id, "Namespace": ns, "JobID": job, "Status": status, "Type": "service",
           "TriggeredBy": "job-register", "Priority": 50,
           "CreateTime": modify_time, "ModifyTime": modify_time})
}

/// Removes every stored evaluation (the one a register wrote), so a test starts from the
/// evaluations it writes itself.
async fn clear_evals(srv: &TestServer) {
    srv.store
        .delete(
            nomos_store::KeySelector::prefix("/nomos/evals/"),
            Default::default(),
        )
        .await
        .unwrap();
}

async fn put_eval(srv: &TestServer, e: &Value) {
    let key = format!(
        "/nomos/evals/{}/{}",
        e["Namespace"].as_str().unwrap(),
        e["ID"].as_str().unwrap()
    );
    srv.put_json(&key, e).await;
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["ID"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn evaluations_list_with_nomads_filters_pages_and_namespaces() {
    let srv = TestServer::start().await;
    put_eval(&srv, &stored_eval("aa01", "default", "web", "complete", 1)).await;
    put_eval(&srv, &stored_eval("aa02", "default", "web", "pending", 2)).await;
    put_eval(&srv, &stored_eval("bb01", "default", "db", "complete", 3)).await;
    put_eval(&srv, &stored_eval("cc01", "prod", "web", "blocked", 4)).await;

    let table: &[(&str, &[&str])] = &[
        ("", &["aa01", "aa02", "bb01"]),
        ("?namespace=*", &["aa01", "aa02", "bb01", "cc01"]),
        ("?namespace=prod", &["cc01"]),
        ("?job=web", &["aa01", "aa02"]),
        ("?status=pending", &["aa02"]),
        ("?prefix=aa", &["aa01", "aa02"]),
        ("?filter=JobID%20%3D%3D%20%22db%22", &["bb01"]),
        ("?per_page=2", &["aa01", "aa02"]),
        ("?per_page=2&next_token=bb01", &["bb01"]),
    ];
    for (query, want) in table {
        let (code, list) = srv.get(&format!("/v1/evaluations{query}")).await;
        assert_eq!(code, 200, "{query}: {list}");
        assert_eq!(&ids(&list), want, "{query}");
    }
    let resp = srv
        .client
        .get(srv.url("/v1/evaluations?per_page=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-nomad-nexttoken"], "bb01");
    assert!(resp.headers().contains_key("x-nomad-index"));

    let (code, list) = srv.get("/v1/job/web/evaluations").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(ids(&list), ["aa02", "aa01"], "newest first");
    let (code, e) = srv.get("/v1/evaluation/bb").await;
    assert_eq!(code, 200, "a unique prefix: {e}");
    assert_eq!(e["ID"], "bb01");
    assert!(e.get("RelatedEvals").is_none(), "only with related=true");
    let (code, body) = srv.get("/v1/evaluation/aa").await;
    assert_eq!(code, 409, "an ambiguous prefix: {body}");
    for missing in ["nope", "%00", "..%2F.."] {
        let (code, body) = srv.get(&format!("/v1/evaluation/{missing}")).await;
        assert_eq!(code, 404, "{missing}: {body}");
        let (code, _) = srv
            .get(&format!("/v1/evaluation/{missing}/allocations"))
            .await;
        assert_eq!(code, 404, "{missing}");
    }
    for bad in ["?per_page=-1", "?filter=Status%20%3D%3D", "?index=x"] {
        let (code, body) = srv.get(&format!("/v1/evaluations{bad}")).await;
        assert_eq!(code, 400, "{bad}: {body}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn a_blocking_list_wakes_when_an_evaluation_is_written() {
    let srv = TestServer::start().await;
    put_eval(&srv, &stored_eval("aa01", "default", "web", "complete", 1)).await;
    let resp = srv
        .client
        .get(srv.url("/v1/evaluations"))
        .send()
        .await
        .unwrap();
    let index: i64 = resp.headers()["x-nomad-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let waiting = {
        let client = srv.client.clone();
        let url = srv.url(&format!("/v1/evaluations?index={index}&wait=10s"));
        tokio::spawn(async move { client.get(url).send().await.unwrap().json::<Value>().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    put_eval(&srv, &stored_eval("aa02", "default", "web", "pending", 2)).await;
    let list = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the write woke the query")
        .unwrap()
        .unwrap();
    assert_eq!(ids(&list), ["aa01", "aa02"]);
    srv.stop().await;
}

#[tokio::test]
async fn forcing_an_evaluation_refuses_unknown_jobs_and_bad_bodies() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.nomad", WEB).await;
    let cases = [
        ("/v1/job/nope/evaluate", json!({}), 404, "nope"),
        (
            "/v1/job/web/evaluate",
            json!({"EvalOptions": {"ForceReschedul": true}}),
            400,
            "ForceReschedul",
        ),
        (
            "/v1/job/web/evaluate",
            json!({"JobID": "other"}),
            400,
            "differs",
        ),
        ("/v1/job/web/evaluate?namespace=prod", json!({}), 404, "web"),
    ];
    for (path, body, want_code, want) in cases {
        let (code, answer) = srv.post(path, body.clone()).await;
        assert_eq!(code, want_code, "{path} {body}: {answer}");
        assert!(error_of(&answer).contains(want), "{path} {body}: {answer}");
    }
    // Only the register's own evaluation: nothing refused was recorded.
    let (_, evals) = srv.get("/v1/evaluations").await;
    let triggers: Vec<&Value> = evals
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["TriggeredBy"])
        .collect();
    assert_eq!(
        triggers,
        [&json!("job-register")],
        "nothing refused was recorded: {evals}"
    );

    let (code, ok) = srv
        .post(
            "/v1/job/web/evaluate",
            json!({"JobID": "web", "EvalOptions": {"ForceReschedule": true}}),
        )
        .await;
    assert_eq!(code, 200, "{ok}");
    let (_, e) = srv
        .get(&format!(
            "/v1/evaluation/{}",
            ok["EvalID"].as_str().unwrap()
        ))
        .await;
    assert_eq!(e["Status"], "pending");
    srv.stop().await;
}

#[tokio::test]
async fn gc_collects_finished_evaluations_and_those_of_jobs_that_are_gone() {
    let srv = TestServer::start().await;
    apply_source(&srv, "web.nomad", WEB).await;
    clear_evals(&srv).await;
    let long_ago = 1_000_000_000i64;
    put_eval(
        &srv,
        &stored_eval("done", "default", "web", "complete", long_ago),
    )
    .await;
    put_eval(
        &srv,
        &stored_eval("open", "default", "web", "pending", long_ago),
    )
    .await;
    put_eval(
        &srv,
        &stored_eval("gone", "default", "purged", "pending", long_ago),
    )
    .await;

    let (code, answer) = srv.post("/v1/system/gc", json!({})).await;
    assert_eq!(code, 200, "{answer}");
    let (_, left) = srv.get("/v1/evaluations").await;
    assert_eq!(
        ids(&left),
        ["open"],
        "an unfinished evaluation of a live job stays"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_job_keeps_at_most_its_cap_of_evaluations() {
    let srv = TestServer::start_with(
        |mut s| {
            s.gc.evals_kept_per_job = 2;
            s
        },
        nomos_server::DEFAULT_BODY_LIMIT,
    )
    .await;
    apply_source(&srv, "web.nomad", WEB).await;
    clear_evals(&srv).await;
    put_eval(&srv, &stored_eval("old1", "default", "web", "complete", 1)).await;
    put_eval(&srv, &stored_eval("old2", "default", "web", "complete", 2)).await;
    let (code, resp) = srv.post("/v1/job/web/evaluate", json!({})).await;
    assert_eq!(code, 200, "{resp}");
    let (_, left) = srv.get("/v1/job/web/evaluations").await;
    let mut kept = ids(&left);
    kept.sort();
    let mut want = vec!["old2", resp["EvalID"].as_str().unwrap()];
    want.sort();
    assert_eq!(kept, want, "the oldest finished one made room");

    // With every kept evaluation still pending, a new one is refused.
    let (code, _) = srv.post("/v1/job/web/evaluate", json!({})).await;
    assert_eq!(code, 200);
    let (code, body) = srv.post("/v1/job/web/evaluate", json!({})).await;
    assert_eq!(code, 409, "{body}");
    assert!(error_of(&body).contains("not finished"), "{body}");

    // A write that asks for an evaluation on the side still happens, without one.
    srv.put_json(
        "/nomos/deployments/default/web/web-v0",
        &json!({"id": "web-v0", "namespace": "default", "job_id": "web", "job_version": 0,
                "status": "running", "status_description": "", "groups": {}}),
    )
    .await;
    let (code, resp) = srv
        .post(
            "/v1/deployment/pause/web-v0",
            json!({"DeploymentID": "web-v0", "Pause": true}),
        )
        .await;
    assert_eq!(code, 200, "{resp}");
    assert_eq!(resp["EvalID"], "");
    assert_eq!(resp["Index"], resp["DeploymentModifyIndex"]);
    srv.stop().await;
}

/// A system job on every node of dc1.
const AGENTD: &str = r#"
job "agentd" {
  datacenters = ["dc1"]
  type        = "system"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
"#;

/// One pass of the real system loop (unfenced).
async fn system_pass(srv: &TestServer) {
    use nomos_controllers::loops::{self, Ctx, LoopMetrics, LoopName, LoopsConfig};
    let mut registry = prometheus_client::registry::Registry::default();
    let ctx = Ctx {
        store: srv.store.clone(),
        leadership: None,
        config: LoopsConfig::default(),
        metrics: LoopMetrics::register(&mut registry),
        name: LoopName::System,
    };
    loops::pass(&ctx).await.expect("system pass");
}

#[tokio::test]
async fn a_system_jobs_placements_name_the_evaluation_the_job_lists() {
    let (srv, stop) = with_controller().await;
    seed_node(&srv, "n1", true).await;
    seed_node(&srv, "n2", true).await;
    let (code, body) = apply_source(&srv, "agentd.hcl", AGENTD).await;
    assert_eq!(code, 200, "{body}");
    // The jobs controller accepts the version; the system loop places on its next pass.
    let mut allocs = Value::Null;
    for _ in 0..100 {
        system_pass(&srv).await;
        allocs = srv.get("/v1/job/agentd/allocations").await.1;
        if allocs.as_array().is_some_and(|a| a.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let allocs = allocs.as_array().expect("allocations").clone();
    assert_eq!(allocs.len(), 2, "{allocs:?}");
    let eval_id = allocs[0]["EvalID"].as_str().unwrap().to_string();
    assert!(!eval_id.is_empty(), "{allocs:?}");
    assert_eq!(
        allocs[1]["EvalID"], allocs[0]["EvalID"],
        "one pass, one evaluation"
    );
    let (_, evals) = srv.get("/v1/job/agentd/evaluations").await;
    let recorded = evals
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["ID"] == eval_id.as_str())
        .unwrap_or_else(|| panic!("{eval_id} is not listed: {evals}"));
    assert_eq!(recorded["Type"], "system", "{recorded}");
    assert_eq!(recorded["Status"], "complete", "{recorded}");
    assert_eq!(recorded["TriggeredBy"], "job-register", "{recorded}");
    let (code, placed) = srv
        .get(&format!("/v1/evaluation/{eval_id}/allocations"))
        .await;
    assert_eq!(code, 200, "{placed}");
    assert_eq!(placed.as_array().map(Vec::len), Some(2), "{placed}");
    let system_evals = |evals: &Value| {
        let listed = evals.as_array().cloned().unwrap_or_default();
        listed.into_iter().filter(|e| e["Type"] == "system").count()
    };
    system_pass(&srv).await;
    let (_, again) = srv.get("/v1/job/agentd/evaluations").await;
    assert_eq!(
        system_evals(&again),
        system_evals(&evals),
        "an idle pass records nothing"
    );
    let _ = stop.send(());
    srv.stop().await;
}
