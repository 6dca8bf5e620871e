//! `GET /v1/event/stream` over HTTP: newline-delimited batches `{"Index", "Events"}` with
//! Nomad's topics, types and payloads; `topic=Topic:Key` filters (by key and filter keys),
//! `namespace` (one or `*`), resuming with `index`, `{}` heartbeats, and the client errors
//! (an unknown topic, a compacted index, too many open streams). ACL filtering of the stream
//! is in `acl_filtering.rs`.

mod common;

use std::time::Duration;

use common::TestServer;
use nomos_server::nomad::StreamConfig;
use serde_json::{json, Value};

/// Opens a stream; panics unless it answers 200 with JSON.
async fn open(srv: &TestServer, query: &str) -> reqwest::Response {
    let resp = srv
        .client
        .get(srv.url(&format!("/v1/event/stream{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{query}");
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp
}

/// Reads lines until one satisfies `done` (or five seconds pass); answers every line read.
async fn read_until(resp: &mut reqwest::Response, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut lines = Vec::new();
    let mut pending = String::new();
    loop {
        let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, resp.chunk()).await else {
            return lines;
        };
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            let line: Value = serde_json::from_str(&pending[..end]).expect("each line is JSON");
            pending.drain(..=end);
            let finished = done(&line);
            lines.push(line);
            if finished {
                return lines;
            }
        }
    }
}

/// Every event in `lines`.
fn events(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .flat_map(|l| l["Events"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn has_event(line: &Value, topic: &str, key: &str) -> bool {
    line["Events"].as_array().is_some_and(|evs| {
        evs.iter()
            .any(|e| e["Topic"] == topic && e["Key"].as_str() == Some(key))
    })
}

/// Writes job `id` into namespace `ns` as a GitOps pipeline would (canonical JSON).
async fn put_job(srv: &TestServer, ns: &str, id: &str) {
    let source = format!(
        r#"job "{id}" {{
  namespace   = "{ns}"
  datacenters = ["dc1"]
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/true"
      }}
    }}
  }}
}}"#
    );
    let parsed =
        nomos_api::parse_source("job.hcl", &source, &Default::default()).expect("a valid job");
    let job = &parsed.jobs[0];
    srv.put_json(
        &nomos_store::keys::job(ns, id),
        &serde_json::to_value(job).unwrap(),
    )
    .await;
}

async fn put_alloc(srv: &TestServer, id: &str, job: &str) {
    srv.put_json(
        &format!("/nomos/allocs/n1/{id}"),
        &json!({"id": id, "namespace": "default", "job_id": job, "task_group": "g",
                "name": format!("{job}.g[0]"), "node": "n1", "desired_status": "run",
                "deployment_id": format!("{job}-dep")}),
    )
    .await;
}

#[tokio::test]
async fn jobs_allocations_and_nodes_arrive_in_nomads_shapes() {
    let srv = TestServer::start().await;
    let mut all = open(&srv, "").await;
    put_job(&srv, "default", "web").await;
    common::seed_node(&srv, "n1", true).await;
    put_alloc(&srv, "aaaa0001", "web").await;
    srv.put_json(
        "/nomos/allocstatus/n1/aaaa0001",
        &json!({"alloc_id": "aaaa0001", "client_status": "running"}),
    )
    .await;
    let lines = read_until(&mut all, |l| l["Events"][0]["Type"] == "AllocationUpdated").await;
    let evs = events(&lines);
    let kinds: Vec<&str> = evs.iter().filter_map(|e| e["Type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "JobRegistered",
            "NodeRegistration",
            // The node's heartbeat key: it is ready.
            "NodeStreamEvent",
            "AllocationCreated",
            "AllocationUpdated"
        ],
        "{lines:?}"
    );
    let job = &evs[0];
    assert_eq!(job["Topic"], "Job");
    assert_eq!(job["Key"], "web");
    assert_eq!(job["Namespace"], "default");
    assert_eq!(job["Payload"]["Job"]["ID"], "web");
    assert_eq!(job["Payload"]["Job"]["TaskGroups"][0]["Name"], "g");
    assert_eq!(
        job["Payload"]["Job"]["Status"], "pending",
        "no controller ran"
    );
    assert!(job["Index"].as_i64().unwrap() > 0);
    assert_eq!(lines[0]["Index"], job["Index"]);
    let node = &evs[1];
    assert_eq!(node["Key"], "n1-id-0001");
    assert_eq!(node["Namespace"], "");
    assert_eq!(node["Payload"]["Node"]["Name"], "n1");
    assert_eq!(evs[2]["Payload"]["Node"]["Status"], "ready");
    let alloc = &evs[4];
    assert_eq!(alloc["FilterKeys"], json!(["web", "web-dep"]));
    assert_eq!(alloc["Payload"]["Allocation"]["ID"], "aaaa0001");
    assert_eq!(alloc["Payload"]["Allocation"]["ClientStatus"], "running");
    assert_eq!(alloc["Payload"]["Allocation"]["NodeID"], "n1-id-0001");
    assert_eq!(alloc["Payload"]["Allocation"]["Job"], Value::Null);
    srv.stop().await;
}

#[tokio::test]
async fn topics_and_keys_choose_what_a_stream_delivers() {
    let srv = TestServer::start().await;
    let mut jobs_web = open(&srv, "?topic=Job:web").await;
    let mut allocs_of_api = open(&srv, "?topic=Allocation:api").await;
    let mut nodes = open(&srv, "?topic=Node").await;
    put_job(&srv, "default", "api").await;
    put_alloc(&srv, "aaaa0002", "web").await;
    put_alloc(&srv, "aaaa0003", "api").await;
    put_job(&srv, "default", "web").await;
    common::seed_node(&srv, "n1", false).await;

    let seen = events(&read_until(&mut jobs_web, |l| has_event(l, "Job", "web")).await);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["Key"], "web");
    let seen = events(
        &read_until(&mut allocs_of_api, |l| {
            has_event(l, "Allocation", "aaaa0003")
        })
        .await,
    );
    assert_eq!(
        seen.len(),
        1,
        "only api's allocation, by its filter key: {seen:?}"
    );
    let seen = events(&read_until(&mut nodes, |l| has_event(l, "Node", "n1-id-0001")).await);
    assert!(seen.iter().all(|e| e["Topic"] == "Node"), "{seen:?}");
    assert!(!seen.is_empty());
    // The node's heartbeat key appears: it is ready now.
    srv.put_json("/nomos/heartbeats/n1", &json!({})).await;
    let lines = read_until(&mut nodes, |l| l["Events"][0]["Type"] == "NodeStreamEvent").await;
    let status = events(&lines)
        .last()
        .map(|e| e["Payload"]["Node"]["Status"].clone());
    assert_eq!(status, Some(json!("ready")), "{lines:?}");
    srv.stop().await;
}

#[tokio::test]
async fn a_stream_covers_its_namespace_or_every_one_with_a_star() {
    let srv = TestServer::start().await;
    let mut default_only = open(&srv, "?topic=Job").await;
    let mut other = open(&srv, "?topic=Job&namespace=other").await;
    let mut every = open(&srv, "?topic=Job&namespace=*").await;
    put_job(&srv, "other", "batch").await;
    put_job(&srv, "default", "web").await;

    let seen = events(&read_until(&mut default_only, |l| has_event(l, "Job", "web")).await);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let seen = events(&read_until(&mut other, |l| has_event(l, "Job", "batch")).await);
    assert_eq!(seen[0]["Namespace"], "other");
    let seen = events(&read_until(&mut every, |l| has_event(l, "Job", "web")).await);
    let keys: Vec<&str> = seen.iter().filter_map(|e| e["Key"].as_str()).collect();
    assert_eq!(keys, ["batch", "web"]);
    srv.stop().await;
}

#[tokio::test]
async fn a_stream_resumes_from_an_index_and_a_deleted_job_is_deregistered() {
    let srv = TestServer::start().await;
    let mut first = open(&srv, "?topic=Job").await;
    put_job(&srv, "default", "web").await;
    let lines = read_until(&mut first, |l| has_event(l, "Job", "web")).await;
    let index = lines[0]["Index"].as_i64().unwrap();
    drop(first);
    srv.store
        .delete(
            nomos_store::KeySelector::key(nomos_store::keys::job("default", "web")),
            Default::default(),
        )
        .await
        .unwrap();

    let mut resumed = open(&srv, &format!("?topic=Job&index={index}")).await;
    let lines = read_until(&mut resumed, |l| {
        l["Events"][0]["Type"] == "JobDeregistered"
    })
    .await;
    let evs = events(&lines);
    let kinds: Vec<&str> = evs.iter().filter_map(|e| e["Type"].as_str()).collect();
    assert_eq!(
        kinds,
        ["JobRegistered", "JobDeregistered"],
        "from {index} on"
    );
    assert_eq!(evs[0]["Index"], index);
    assert!(evs[1]["Index"].as_i64().unwrap() > index);
    assert_eq!(evs[1]["Payload"]["Job"]["ID"], "web");
    assert_eq!(evs[1]["Payload"]["Job"]["Status"], "dead");
    srv.stop().await;
}

#[tokio::test]
async fn an_idle_stream_writes_heartbeats() {
    let srv = TestServer::start_with(
        |mut s| {
            s.streams = StreamConfig::new(8, Duration::from_millis(100));
            s
        },
        nomos_server::DEFAULT_BODY_LIMIT,
    )
    .await;
    let mut idle = open(&srv, "?topic=Deployment").await;
    let lines = read_until(&mut idle, |_| true).await;
    assert_eq!(lines, [json!({})]);
    srv.stop().await;
}

#[tokio::test]
async fn streams_beyond_the_budget_answer_429() {
    let srv = TestServer::start_with(
        |mut s| {
            s.streams = StreamConfig::new(1, Duration::from_secs(10));
            s
        },
        nomos_server::DEFAULT_BODY_LIMIT,
    )
    .await;
    let held = open(&srv, "").await;
    let (code, body) = srv.get("/v1/event/stream").await;
    assert_eq!(code, 429, "{body}");
    assert!(
        body.to_string().contains("too many event streams"),
        "{body}"
    );
    drop(held);
    // The budget comes back once the stream is closed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let resp = srv
            .client
            .get(srv.url("/v1/event/stream"))
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the budget never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    srv.stop().await;
}

#[tokio::test]
async fn bad_topics_and_compacted_indexes_are_client_errors() {
    let srv = TestServer::start().await;
    for (query, want, says) in [
        ("?topic=Jobs", 400, "unknown topic \\\"Jobs\\\""),
        ("?topic=ACLToken", 400, "unknown topic"),
        ("?topic=Job:", 400, "the key after ':'"),
        ("?index=x", 400, "index"),
    ] {
        let (code, body) = srv.get(&format!("/v1/event/stream{query}")).await;
        assert_eq!(code, want, "{query}: {body}");
        assert!(body.to_string().contains(says), "{query}: {body}");
    }
    for i in 0..5 {
        put_job(&srv, "default", &format!("j{i}")).await;
    }
    let revision = srv.store.status().await.unwrap().revision;
    srv.store.compact(revision).await.unwrap();
    let (code, body) = srv.get("/v1/event/stream?index=2").await;
    assert_eq!(code, 410, "{body}");
    assert!(body.to_string().contains("compacted"), "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn a_removed_allocation_is_told_as_deleted() {
    let srv = TestServer::start().await;
    let mut stream = open(&srv, "?topic=Allocation").await;
    put_alloc(&srv, "a-gone", "web").await;
    read_until(&mut stream, |l| has_event(l, "Allocation", "a-gone")).await;
    srv.store
        .delete(
            nomos_store::KeySelector::key("/nomos/allocs/n1/a-gone"),
            Default::default(),
        )
        .await
        .unwrap();
    let lines = read_until(&mut stream, |l| {
        l["Events"][0]["Type"] == "AllocationDeleted"
    })
    .await;
    let evs = events(&lines);
    let gone = evs.last().expect("an event");
    assert_eq!(gone["Type"], "AllocationDeleted", "{lines:?}");
    assert_eq!(gone["Key"], "a-gone");
    assert_eq!(gone["Payload"]["Allocation"]["JobID"], "web");
    assert_eq!(gone["Payload"]["Allocation"]["DesiredStatus"], "stop");
    srv.stop().await;
}
