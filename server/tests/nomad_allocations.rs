//! Allocations in Nomad's shapes over HTTP, checked against the facts of Nomad's API
//! documentation: the list stub's and the allocation's fields and their types (times in Unix
//! nanoseconds, Go times as RFC 3339, `null` for empty), task states and their events, the job
//! version an allocation runs, `prefix` / `filter` / paging / `namespace=*`, a blocking list
//! woken by a status change, a node's allocations, an allocation's services, and the writes
//! (stop, and restart and signal forwarded to a fake agent) with their client errors.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestServer;
use nomos_api::build;
use nomos_store::keys;
use serde_json::{json, Value};

/// A node whose agent is reached at `http_addr`.
async fn seed_node(srv: &TestServer, name: &str, http_addr: &str) {
    let mut node = build::node(name).datacenter("dc1").build();
    node.id = format!("{name}-0000-id");
    node.http_addr = http_addr.to_string();
    srv.put_json(&keys::node(name), &serde_json::to_value(&node).unwrap())
        .await;
}

/// Job `web` version 0 (group `frontend`, task `server` with a dynamic port `http`), and three
/// allocations: `aaaa1111` running with task events and healthy in a deployment, `aaaa2222`
/// placed and not yet reported (replacing `aaaa1111`), and `cccc3333` in namespace `other`.
async fn seed(srv: &TestServer) {
    let mut job = build::job("web").group("frontend", 2).build();
    job.groups[0].tasks[0].name = "server".into();
    job.groups[0].networks = vec![nomos_api::job::Network {
        ports: vec![nomos_api::job::Port {
            label: "http".into(),
            to: 8080,
            ..Default::default()
        }],
        ..Default::default()
    }];
    let version = keys::job_version("default", "web", 0);
    srv.put_json(&version, &serde_json::to_value(&job).unwrap())
        .await;
    seed_node(srv, "n1", "").await;
    let alloc = |id: &str, ns: &str, previous: &str| {
        json!({"id": id, "namespace": ns, "job_id": "web", "job_version": 0,
               "task_group": "frontend", "name": "web.frontend[0]", "node": "n1",
               "desired_status": "run", "deployment_id": "dep-1", "previous_alloc": previous,
               "created_at_ms": 1_700_000_000_000i64, "modified_at_ms": 1_700_000_001_000i64,
               "ports": [{"label": "http", "value": 20001, "to": 8080, "host_ip": "10.0.0.1"}]})
    };
    srv.put_json(
        "/nomos/allocs/n1/aaaa1111-0000",
        &alloc("aaaa1111-0000", "default", ""),
    )
    .await;
    srv.put_json(
        "/nomos/allocs/n1/aaaa2222-0000",
        &alloc("aaaa2222-0000", "default", "aaaa1111-0000"),
    )
    .await;
    srv.put_json(
        "/nomos/allocs/n1/cccc3333-0000",
        &alloc("cccc3333-0000", "other", ""),
    )
    .await;
    set_status(srv, "aaaa1111-0000", "running").await;
}

async fn set_status(srv: &TestServer, id: &str, client_status: &str) {
    srv.put_json(
        &format!("/nomos/allocstatus/n1/{id}"),
        &json!({"alloc_id": id, "client_status": client_status, "healthy": true,
                "client_description": "Tasks are running",
                "modified_at_ms": 1_700_000_002_000i64,
                "task_states": {"server": {"state": "running", "restarts": 1,
                    "started_at_ms": 1_700_000_001_500i64,
                    "events": [
                        {"time_ms": 1_700_000_001_000i64, "type": "Received"},
                        {"time_ms": 1_700_000_001_200i64, "type": "Terminated",
                         "message": "Exit Code: 2", "exit_code": 2},
                        {"time_ms": 1_700_000_001_300i64, "type": "Restarting"}]}}}),
    )
    .await;
}

async fn get_full(srv: &TestServer, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = srv.client.get(srv.url(path)).send().await.expect("GET");
    let headers = resp.headers().clone();
    let (code, body) = common::decode(resp).await;
    (code, headers, body)
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|a| a["ID"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_list_stub_has_nomads_fields_and_types() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let (code, headers, list) = get_full(&srv, "/v1/allocations").await;
    assert_eq!(code, 200, "{list}");
    assert!(headers.contains_key("x-nomad-index"));
    assert_eq!(ids(&list), ["aaaa1111-0000", "aaaa2222-0000"]);
    let a = &list[0];
    for (field, want) in [
        ("Name", "web.frontend[0]"),
        ("Namespace", "default"),
        ("NodeID", "n1-0000-id"),
        ("NodeName", "n1"),
        ("JobID", "web"),
        ("JobType", "service"),
        ("TaskGroup", "frontend"),
        ("DesiredStatus", "run"),
        ("ClientStatus", "running"),
        ("ClientDescription", "Tasks are running"),
        ("EvalID", ""),
        ("NextAllocation", "aaaa2222-0000"),
    ] {
        assert_eq!(a[field], want, "{field}: {a}");
    }
    assert_eq!(a["JobVersion"], 0);
    assert!(a["CreateIndex"].as_i64().unwrap() > 0);
    assert!(a["ModifyIndex"].as_i64().unwrap() >= a["CreateIndex"].as_i64().unwrap());
    assert_eq!(a["CreateTime"], 1_700_000_000_000_000_000i64);
    assert_eq!(a["ModifyTime"], 1_700_000_002_000_000_000i64);
    assert_eq!(a["DeploymentStatus"]["Healthy"], true);
    assert_eq!(a["DeploymentStatus"]["Canary"], false);
    assert!(a["DeploymentStatus"]["Timestamp"].is_string());
    assert!(a["PreemptedAllocations"].is_null());
    assert!(a["RescheduleTracker"].is_null());
    assert!(
        a.get("AllocatedResources").is_none(),
        "only with resources=true"
    );
    let pending = &list[1];
    assert_eq!(pending["ClientStatus"], "pending");
    assert!(pending["TaskStates"].is_null());

    let (_, _, with) = get_full(&srv, "/v1/allocations?resources=true&task_states=false").await;
    let shared = &with[0]["AllocatedResources"]["Shared"];
    assert_eq!(
        shared["Ports"][0],
        json!({"Label": "http", "Value": 20001, "To": 8080, "HostIP": "10.0.0.1"})
    );
    assert_eq!(shared["Networks"][0]["DynamicPorts"][0]["Value"], 20001);
    assert!(with[0]["TaskStates"].is_null());
    srv.stop().await;
}

#[tokio::test]
async fn task_states_and_events_are_in_nomads_units() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let (_, _, list) = get_full(&srv, "/v1/allocations?prefix=aaaa1").await;
    let ts = &list[0]["TaskStates"]["server"];
    assert_eq!(ts["State"], "running");
    assert_eq!(ts["Failed"], false);
    assert_eq!(ts["Restarts"], 1);
    assert_eq!(ts["StartedAt"], "2023-11-14T22:13:21.5Z");
    assert_eq!(ts["FinishedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(ts["LastRestart"], "2023-11-14T22:13:21.3Z");
    let events = ts["Events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["Type"], "Received");
    assert_eq!(events[0]["Time"], 1_700_000_001_000_000_000i64);
    assert!(events[0]["Details"].is_null());
    assert_eq!(events[1]["ExitCode"], 2);
    assert_eq!(events[1]["DisplayMessage"], "Exit Code: 2");
    assert_eq!(events[1]["Details"]["exit_code"], "2");
    srv.stop().await;
}

#[tokio::test]
async fn one_allocation_carries_its_job_version_and_resources() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let (code, headers, a) = get_full(&srv, "/v1/allocation/aaaa2").await;
    assert_eq!(code, 200, "{a}");
    assert!(headers.contains_key("x-nomad-index"));
    assert_eq!(a["ID"], "aaaa2222-0000");
    assert_eq!(a["PreviousAllocation"], "aaaa1111-0000");
    assert_eq!(a["DeploymentID"], "dep-1");
    assert!(a["Metrics"].is_null());
    assert_eq!(a["Job"]["ID"], "web");
    assert_eq!(a["Job"]["Type"], "service");
    assert_eq!(a["Job"]["TaskGroups"][0]["Name"], "frontend");
    let tasks = &a["AllocatedResources"]["Tasks"];
    assert_eq!(tasks["server"]["Cpu"]["CpuShares"], 100);
    assert_eq!(tasks["server"]["Memory"]["MemoryMB"], 64);
    assert_eq!(
        a["AllocatedResources"]["Shared"]["Ports"][0]["Value"],
        20001
    );
    assert!(a["AllocModifyIndex"].as_i64().unwrap() > 0);

    let (code, _, _) = get_full(&srv, "/v1/allocation/aaaa").await;
    assert_eq!(code, 409, "an ambiguous prefix");
    let (code, _, _) = get_full(&srv, "/v1/allocation/ffff").await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn lists_take_prefix_filter_paging_and_every_namespace() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let table: &[(&str, &[&str])] = &[
        ("", &["aaaa1111-0000", "aaaa2222-0000"]),
        ("namespace=other", &["cccc3333-0000"]),
        (
            "namespace=*",
            &["aaaa1111-0000", "aaaa2222-0000", "cccc3333-0000"],
        ),
        ("prefix=aaaa2", &["aaaa2222-0000"]),
        (
            "namespace=*&filter=ClientStatus%20%3D%3D%20%22pending%22",
            &["aaaa2222-0000", "cccc3333-0000"],
        ),
        (
            "job=web&node=n1-0000-id",
            &["aaaa1111-0000", "aaaa2222-0000"],
        ),
        ("job=nope", &[]),
        ("node=n2", &[]),
    ];
    for (query, want) in table {
        let (code, _, list) = get_full(&srv, &format!("/v1/allocations?{query}")).await;
        assert_eq!(code, 200, "{query}: {list}");
        assert_eq!(&ids(&list), want, "{query}");
    }
    let (_, headers, page) = get_full(&srv, "/v1/allocations?namespace=*&per_page=2").await;
    assert_eq!(ids(&page), ["aaaa1111-0000", "aaaa2222-0000"]);
    let next = headers["x-nomad-nexttoken"].to_str().unwrap().to_string();
    let (_, headers, rest) = get_full(
        &srv,
        &format!("/v1/allocations?namespace=*&per_page=2&next_token={next}"),
    )
    .await;
    assert_eq!(ids(&rest), ["cccc3333-0000"]);
    assert!(!headers.contains_key("x-nomad-nexttoken"));
    let (code, _, _) = get_full(&srv, "/v1/allocations?filter=ClientStatus%20%3D%3D").await;
    assert_eq!(code, 400);
    srv.stop().await;
}

#[tokio::test]
async fn a_blocking_list_wakes_when_a_status_changes() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let (_, headers, _) = get_full(&srv, "/v1/allocations").await;
    let index: i64 = headers["x-nomad-index"].to_str().unwrap().parse().unwrap();
    let url = srv.url(&format!("/v1/allocations?index={index}&wait=20s"));
    let client = srv.client.clone();
    let started = Instant::now();
    let blocked = tokio::spawn(async move { client.get(url).send().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !blocked.is_finished(),
        "a quiet store keeps the query waiting"
    );
    set_status(&srv, "aaaa2222-0000", "running").await;
    let resp = tokio::time::timeout(Duration::from_secs(10), blocked)
        .await
        .expect("woken before its wait ran out")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let after: i64 = resp.headers()["x-nomad-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after > index);
    let list: Value = resp.json().await.unwrap();
    assert_eq!(list[1]["ClientStatus"], "running");
    srv.stop().await;
}

#[tokio::test]
async fn a_nodes_allocations_are_whole_allocations_in_every_namespace() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    for node in ["n1", "n1-0000-id"] {
        let (code, _, list) = get_full(&srv, &format!("/v1/node/{node}/allocations")).await;
        assert_eq!(code, 200, "{list}");
        assert_eq!(
            ids(&list),
            ["aaaa1111-0000", "aaaa2222-0000", "cccc3333-0000"]
        );
        assert_eq!(list[0]["Job"]["ID"], "web");
    }
    let (code, _, _) = get_full(&srv, "/v1/node/nope/allocations").await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn an_allocations_services_are_its_registrations() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    for (id, alloc) in [("s1", "aaaa1111-0000"), ("s2", "aaaa2222-0000")] {
        srv.put_json(
            &keys::service("default", "web", id),
            &json!({"id": id, "service_name": "web", "namespace": "default",
                    "alloc_id": alloc, "job_id": "web", "address": "10.0.0.1", "port": 20001}),
        )
        .await;
    }
    let (code, headers, regs) = get_full(&srv, "/v1/allocation/aaaa1/services").await;
    assert_eq!(code, 200, "{regs}");
    assert!(headers.contains_key("x-nomad-index"));
    assert_eq!(ids(&regs), ["s1"]);
    assert_eq!(regs[0]["AllocID"], "aaaa1111-0000");
    assert_eq!(regs[0]["Port"], 20001);
    let (code, _, _) = get_full(&srv, "/v1/allocation/ffff/services").await;
    assert_eq!(code, 404);
    srv.stop().await;
}

#[tokio::test]
async fn stop_marks_the_allocation_and_answers_an_index() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let resp = srv
        .client
        .put(srv.url("/v1/allocation/aaaa1111-0000/stop"))
        .send()
        .await
        .unwrap();
    let (code, body) = common::decode(resp).await;
    assert_eq!(code, 200, "{body}");
    assert!(body["Index"].as_i64().unwrap() > 0);
    let eval_id = body["EvalID"].as_str().unwrap();
    let (code, _, eval) = get_full(&srv, &format!("/v1/evaluation/{eval_id}")).await;
    assert_eq!(code, 200, "{eval}");
    assert_eq!(eval["TriggeredBy"], "alloc-stop");
    assert_eq!(eval["JobID"], "web");
    let stored = srv
        .read_json("/nomos/allocs/n1/aaaa1111-0000")
        .await
        .unwrap();
    assert_eq!(stored["desired_status"], "stop");
    let (_, _, a) = get_full(&srv, "/v1/allocation/aaaa1111-0000").await;
    assert_eq!(a["DesiredStatus"], "stop");
    let (code, _) = srv.post("/v1/allocation/ffff/stop", json!({})).await;
    assert_eq!(code, 404);
    srv.stop().await;
}

/// What the fake agent was sent: (path, body).
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// An agent that takes restarts and signals, answering 200 (or 409 for task `busy`).
async fn fake_agent() -> (String, Seen) {
    use axum::extract::{Path, State};
    let seen: Seen = Arc::default();
    async fn take(
        State(seen): State<Seen>,
        Path((id, action)): Path<(String, String)>,
        axum::Json(body): axum::Json<Value>,
    ) -> (axum::http::StatusCode, String) {
        let busy = body["TaskName"] == "busy" || body["Task"] == "busy";
        seen.lock()
            .unwrap()
            .push((format!("/v1/client/allocation/{id}/{action}"), body));
        if busy {
            return (axum::http::StatusCode::CONFLICT, "not running".into());
        }
        (axum::http::StatusCode::OK, "{}".into())
    }
    let app = axum::Router::new()
        .route(
            "/v1/client/allocation/{id}/{action}",
            axum::routing::post(take),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr.to_string(), seen)
}

#[tokio::test]
async fn restart_and_signal_are_forwarded_to_the_allocations_agent() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let (agent, seen) = fake_agent().await;
    seed_node(&srv, "n1", &agent).await;
    let (code, body) = srv
        .post(
            "/v1/client/allocation/aaaa1/restart",
            json!({"TaskName": "server"}),
        )
        .await;
    assert_eq!((code, &body), (200, &json!({})));
    let (code, body) = srv
        .post(
            "/v1/client/allocation/aaaa1111-0000/signal",
            json!({"Signal": "SIGHUP", "Task": "server"}),
        )
        .await;
    assert_eq!((code, &body), (200, &json!({})));
    let (code, _) = srv
        .post("/v1/client/allocation/aaaa1111-0000/restart", json!({}))
        .await;
    assert_eq!(code, 200, "no task: every running task");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (
                "/v1/client/allocation/aaaa1111-0000/restart".to_string(),
                json!({"TaskName": "server"})
            ),
            (
                "/v1/client/allocation/aaaa1111-0000/signal".to_string(),
                json!({"Signal": "SIGHUP", "Task": "server"})
            ),
            (
                "/v1/client/allocation/aaaa1111-0000/restart".to_string(),
                json!({"TaskName": ""})
            ),
        ]
    );
    srv.stop().await;
}

#[tokio::test]
async fn restart_and_signal_mistakes_are_client_errors() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let (agent, seen) = fake_agent().await;
    seed_node(&srv, "n1", &agent).await;
    let restart = "/v1/client/allocation/aaaa1111-0000/restart";
    let signal = "/v1/client/allocation/aaaa1111-0000/signal";
    let cases: &[(&str, Value, u16)] = &[
        ("/v1/client/allocation/ffff/restart", json!({}), 404),
        (
            "/v1/client/allocation/ffff/signal",
            json!({"Signal": "HUP"}),
            404,
        ),
        (restart, json!({"TaskName": "nosuch"}), 404),
        (signal, json!({"Signal": "SIGHUP", "Task": "nosuch"}), 404),
        (signal, json!({"Signal": "SIGNOPE"}), 400),
        (signal, json!({}), 400),
        (restart, json!({"TaskNam": "server"}), 400),
        (signal, json!({"Signal": "HUP", "Tsk": "server"}), 400),
        (
            restart,
            json!({"TaskName": "server", "AllTasks": true}),
            400,
        ),
    ];
    for (path, body, want) in cases {
        let (code, answer) = srv.post(path, body.clone()).await;
        assert_eq!(code, *want, "{path} {body}: {answer}");
    }
    assert!(seen.lock().unwrap().is_empty(), "none reached the agent");
    srv.stop().await;
}

#[tokio::test]
async fn an_agents_refusal_comes_back_as_a_conflict() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let mut job = build::job("web").group("frontend", 2).build();
    job.groups[0].tasks[0].name = "busy".into();
    srv.put_json(
        &keys::job_version("default", "web", 0),
        &serde_json::to_value(&job).unwrap(),
    )
    .await;
    let (agent, _) = fake_agent().await;
    seed_node(&srv, "n1", &agent).await;
    let (code, body) = srv
        .post(
            "/v1/client/allocation/aaaa2222-0000/restart",
            json!({"TaskName": "busy"}),
        )
        .await;
    assert_eq!(code, 409, "{body}");
    srv.stop().await;
}
