//! Nomad's API conventions over HTTP, checked against the facts of Nomad's API documentation:
//! the query headers on every read, blocking queries (a change wakes them, a quiet store lets
//! `wait` run out, a full budget answers at once), `prefix` / `filter` / paging, `pretty`,
//! gzip, `region`, bad parameters as 400; the agent, status and region endpoints; and nodes
//! in Nomad's shapes with their drain and eligibility writes (as Nomad's Go client sends
//! them: `PUT` with an untyped JSON body).

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::TestServer;
use nomos_api::build;
use nomos_store::keys;
use serde_json::{json, Value};

async fn get_full(srv: &TestServer, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = srv.client.get(srv.url(path)).send().await.expect("GET");
    let headers = resp.headers().clone();
    let (code, body) = common::decode(resp).await;
    (code, headers, body)
}

fn index_of(headers: &reqwest::header::HeaderMap) -> i64 {
    headers
        .get("x-nomad-index")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("X-Nomad-Index")
}

/// PUT with a JSON body and no Content-Type, as Nomad's Go API client sends writes.
async fn put_untyped(srv: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let resp = srv
        .client
        .put(srv.url(path))
        .body(body.to_string())
        .send()
        .await
        .expect("PUT");
    common::decode(resp).await
}

async fn seed_nodes(srv: &TestServer, names: &[&str]) {
    for name in names {
        let mut node = build::node(name).datacenter("dc1").build();
        node.id = format!("{name}-0000-id");
        node.attributes.insert("os.name".into(), "debian".into());
        node.attributes.insert("kernel.name".into(), "linux".into());
        srv.put_json(&keys::node(name), &serde_json::to_value(&node).unwrap())
            .await;
    }
}

#[tokio::test]
async fn reads_carry_nomads_headers_and_take_its_parameters() {
    let srv = TestServer::start().await;
    seed_nodes(&srv, &["n1"]).await;
    let (code, headers, body) = get_full(&srv, "/v1/nodes").await;
    assert_eq!(code, 200, "{body}");
    assert!(index_of(&headers) > 1);
    assert_eq!(headers["x-nomad-lastcontact"], "0");
    assert_eq!(headers["x-nomad-knownleader"], "true");
    assert_eq!(headers["content-type"], "application/json");

    let pretty = srv
        .client
        .get(srv.url("/v1/nodes?pretty"))
        .send()
        .await
        .unwrap();
    let text = pretty.text().await.unwrap();
    assert!(
        text.contains("\n  {"),
        "pretty answers are indented: {text}"
    );

    for (path, needle) in [
        ("/v1/nodes?region=mars", "region"),
        ("/v1/nodes?index=x", "index"),
        ("/v1/nodes?wait=soon", "wait"),
        ("/v1/nodes?per_page=-1", "per_page"),
        ("/v1/nodes?filter=Name%20%3D%3D", "filter"),
    ] {
        let (code, _, body) = get_full(&srv, path).await;
        assert_eq!(code, 400, "{path}: {body}");
        assert!(body.to_string().contains(needle), "{path}: {body}");
    }
    let (code, _, _) = get_full(&srv, "/v1/nodes?region=global&stale").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn answers_are_gzipped_when_the_client_asks() {
    let srv = TestServer::start().await;
    seed_nodes(&srv, &["n1", "n2", "n3"]).await;
    let resp = srv
        .client
        .get(srv.url("/v1/nodes"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let bytes = resp.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .expect("a gzip body");
    let nodes: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 3);
    let plain = srv.client.get(srv.url("/v1/nodes")).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn a_blocking_query_wakes_on_a_change_and_otherwise_waits_out_its_wait() {
    let srv = TestServer::start().await;
    seed_nodes(&srv, &["n1"]).await;
    let (_, headers, _) = get_full(&srv, "/v1/nodes").await;
    let index = index_of(&headers);

    // Nothing changes: the answer comes after `wait` (plus at most a sixteenth).
    let started = Instant::now();
    let (code, headers, _) = get_full(&srv, &format!("/v1/nodes?index={index}&wait=400ms")).await;
    let waited = started.elapsed();
    assert_eq!(code, 200);
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    assert_eq!(index_of(&headers), index, "no change, same index");

    // A write elsewhere does not wake it; a node's change does.
    let path = format!("/v1/nodes?index={index}&wait=20s");
    let waiting = tokio::spawn({
        let url = srv.url(&path);
        async move {
            let started = Instant::now();
            let resp = reqwest::get(url).await.unwrap();
            let index = resp.headers()["x-nomad-index"]
                .to_str()
                .unwrap()
                .parse::<i64>()
                .unwrap();
            let body: Value = resp.json().await.unwrap();
            (started.elapsed(), index, body)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.put_json("/nomos/kv/unrelated", &json!(1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "an unrelated write woke the query");
    seed_nodes(&srv, &["n2"]).await;
    let (took, new_index, body) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the change wakes the query")
        .unwrap();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(new_index > index, "{new_index} > {index}");
    assert_eq!(body.as_array().unwrap().len(), 2, "{body}");
}

#[tokio::test]
async fn past_the_budget_of_waiting_queries_a_query_answers_at_once() {
    let srv = TestServer::start_with(
        |mut st| {
            st.blocking = nomos_server::nomad::BlockingBudget::with_capacity(0);
            st
        },
        nomos_server::DEFAULT_BODY_LIMIT,
    )
    .await;
    seed_nodes(&srv, &["n1"]).await;
    let started = Instant::now();
    let (code, _, _) = get_full(&srv, "/v1/nodes?index=999999&wait=30s").await;
    assert_eq!(code, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn node_lists_filter_and_page_by_id() {
    let srv = TestServer::start().await;
    seed_nodes(&srv, &["a", "b", "c"]).await;
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n["ID"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, headers, page) = get_full(&srv, "/v1/nodes?per_page=2").await;
    assert_eq!(ids(&page), ["a-0000-id", "b-0000-id"]);
    let next = headers["x-nomad-nexttoken"].to_str().unwrap().to_string();
    assert_eq!(next, "c-0000-id");
    let (_, headers, rest) =
        get_full(&srv, &format!("/v1/nodes?per_page=2&next_token={next}")).await;
    assert_eq!(ids(&rest), ["c-0000-id"]);
    assert!(headers.get("x-nomad-nexttoken").is_none());
    let (_, _, some) = get_full(&srv, "/v1/nodes?prefix=b").await;
    assert_eq!(ids(&some), ["b-0000-id"]);
    let (_, _, filtered) = get_full(&srv, "/v1/nodes?filter=Name%20%3D%3D%20%22c%22").await;
    assert_eq!(ids(&filtered), ["c-0000-id"]);
}

#[tokio::test]
async fn nodes_answer_in_nomads_shapes() {
    let srv = TestServer::start().await;
    seed_nodes(&srv, &["n1"]).await;
    let (_, _, list) = get_full(&srv, "/v1/nodes").await;
    let stub = &list[0];
    for field in [
        "Address",
        "ID",
        "Datacenter",
        "Name",
        "NodeClass",
        "NodePool",
        "Version",
        "Drain",
        "SchedulingEligibility",
        "Status",
        "StatusDescription",
        "Drivers",
        "LastDrain",
        "CreateIndex",
        "ModifyIndex",
    ] {
        assert!(stub.get(field).is_some(), "stub lacks {field}: {stub}");
    }
    assert!(stub.get("NodeResources").is_none() && stub.get("Attributes").is_none());
    assert_eq!(stub["Status"], "disconnected", "no heartbeat yet");
    assert_eq!(stub["SchedulingEligibility"], "eligible");
    assert_eq!(stub["LastDrain"], Value::Null);

    let (_, _, with) = get_full(&srv, "/v1/nodes?resources=true&os=true").await;
    assert_eq!(with[0]["Attributes"], json!({"os.name": "debian"}));
    assert!(
        with[0]["NodeResources"]["Cpu"]["CpuShares"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert!(
        with[0]["NodeResources"]["Memory"]["MemoryMB"]
            .as_i64()
            .unwrap()
            > 0
    );

    for name in ["n1", "n1-0000-id", "n1-00"] {
        let (code, _, node) = get_full(&srv, &format!("/v1/node/{name}")).await;
        assert_eq!(code, 200, "{name}: {node}");
        assert_eq!(node["Name"], "n1");
        assert_eq!(node["Attributes"]["kernel.name"], "linux");
        assert_eq!(node["DrainStrategy"], Value::Null);
        assert_eq!(node["Meta"], Value::Null, "empty maps are null");
    }
    let (code, _, _) = get_full(&srv, "/v1/node/nope").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn drains_and_eligibility_are_written_as_nomads_client_sends_them() {
    let srv = TestServer::start().await;
    seed_nodes(&srv, &["n1"]).await;
    let hour_ns = 3_600_000_000_000_i64;
    let (code, resp) = put_untyped(
        &srv,
        "/v1/node/n1/drain",
        json!({"NodeID": "n1-0000-id", "DrainSpec": {"Deadline": hour_ns, "IgnoreSystemJobs": true},
               "MarkEligible": false, "Meta": {"by": "test"}}),
    )
    .await;
    assert_eq!(code, 200, "{resp}");
    assert!(resp["NodeModifyIndex"].as_i64().unwrap() > 0);
    assert_eq!(resp["EvalIDs"], Value::Null);
    let (_, _, node) = get_full(&srv, "/v1/node/n1").await;
    assert_eq!(node["Drain"], true);
    assert_eq!(node["SchedulingEligibility"], "ineligible");
    assert_eq!(node["DrainStrategy"]["Deadline"], hour_ns);
    assert_eq!(node["DrainStrategy"]["IgnoreSystemJobs"], true);
    let started = node["DrainStrategy"]["StartedAt"].as_str().unwrap();
    assert!(
        started.ends_with('Z') && !started.starts_with("0001"),
        "{started}"
    );

    // Cancelled and left ineligible, then made eligible by hand.
    let (code, _) = put_untyped(&srv, "/v1/node/n1/drain", json!({"DrainSpec": null})).await;
    assert_eq!(code, 200);
    let (_, _, node) = get_full(&srv, "/v1/node/n1").await;
    assert_eq!(
        (node["Drain"].clone(), node["SchedulingEligibility"].clone()),
        (json!(false), json!("ineligible"))
    );
    let (code, _) = put_untyped(
        &srv,
        "/v1/node/n1/eligibility",
        json!({"Eligibility": "eligible"}),
    )
    .await;
    assert_eq!(code, 200);
    let (_, _, node) = get_full(&srv, "/v1/node/n1").await;
    assert_eq!(node["SchedulingEligibility"], "eligible");

    // A forced drain (negative deadline) stops what remains now.
    let (code, _) = put_untyped(
        &srv,
        "/v1/node/n1/drain",
        json!({"DrainSpec": {"Deadline": -1}}),
    )
    .await;
    assert_eq!(code, 200);
    let (_, _, node) = get_full(&srv, "/v1/node/n1").await;
    assert_eq!(
        node["DrainStrategy"]["ForceDeadline"],
        node["DrainStrategy"]["StartedAt"]
    );

    // Mistakes are 4xx and change nothing.
    let before = srv.read_json(&keys::node_spec("n1")).await;
    for (path, body, want) in [
        (
            "/v1/node/n1/eligibility",
            json!({"Eligibility": "maybe"}),
            400,
        ),
        ("/v1/node/n1/eligibility", json!({"Eligible": true}), 400),
        (
            "/v1/node/n1/drain",
            json!({"DrainSpec": {"Deadlin": 5}}),
            400,
        ),
        (
            "/v1/node/n1/drain",
            json!({"DrainSpec": {"Deadline": "1h"}}),
            400,
        ),
        ("/v1/node/nope/drain", json!({"DrainSpec": null}), 404),
    ] {
        let (code, resp) = put_untyped(&srv, path, body.clone()).await;
        assert_eq!(code, want, "{path} {body}: {resp}");
    }
    assert_eq!(srv.read_json(&keys::node_spec("n1")).await, before);
}

#[tokio::test]
async fn agent_status_and_region_endpoints_describe_this_server() {
    let srv = TestServer::start_with(
        |mut st| {
            st.agent.name = "server-1".into();
            st.agent.datacenter = "dc7".into();
            st
        },
        nomos_server::DEFAULT_BODY_LIMIT,
    )
    .await;
    let own = srv.base.trim_start_matches("http://").to_string();
    let (code, _, regions) = get_full(&srv, "/v1/regions").await;
    assert_eq!((code, regions), (200, json!(["global"])));
    let (_, _, peers) = get_full(&srv, "/v1/status/peers").await;
    assert_eq!(peers, json!([own.clone()]));
    let (_, _, servers) = get_full(&srv, "/v1/agent/servers").await;
    assert_eq!(servers, json!([own.clone()]));
    // Nobody holds the jobs loop's election: no leader.
    let (_, _, leader) = get_full(&srv, "/v1/status/leader").await;
    assert_eq!(leader, json!(""));
    srv.put_raw("/nomos/election/jobs", b"server-1").await;
    let (_, _, leader) = get_full(&srv, "/v1/status/leader").await;
    assert_eq!(leader, json!(own.clone()));

    let (_, _, me) = get_full(&srv, "/v1/agent/self").await;
    assert_eq!(me["config"]["Region"], "global");
    assert_eq!(me["config"]["Datacenter"], "dc7");
    assert_eq!(me["member"]["Name"], "server-1.global");
    assert_eq!(me["member"]["Tags"]["dc"], "dc7");
    assert_eq!(me["stats"]["nomad"]["leader"], "true");
    let (_, _, members) = get_full(&srv, "/v1/agent/members").await;
    assert_eq!(members["ServerName"], "server-1");
    assert_eq!(members["ServerRegion"], "global");
    assert_eq!(members["Members"][0]["Status"], "alive");
    let (code, _, health) = get_full(&srv, "/v1/agent/health").await;
    assert_eq!(
        (code, health),
        (200, json!({"server": {"ok": true, "message": "ok"}}))
    );

    // Another server advertised in the store is a peer too.
    srv.put_json(
        "/nomos/servers/server-2",
        &json!({"http_addr": "https://10.9.9.9:4747"}),
    )
    .await;
    let (_, _, peers) = get_full(&srv, "/v1/status/peers").await;
    assert_eq!(peers, json!([own, "10.9.9.9:4747"]));
}

const PARSE_HCL: &str = r#"
variable "image" {
  type = string
}

job "cache" {
  datacenters = ["dc1"]
  group "redis" {
    count = 2
    task "redis" {
      driver = "docker"
      config {
        image = var.image
      }
      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
"#;

#[tokio::test]
async fn a_job_file_parses_into_nomads_json_job_with_its_variables() {
    let srv = TestServer::start().await;
    let (code, job) = put_untyped(
        &srv,
        "/v1/jobs/parse?namespace=team-a",
        json!({"JobHCL": PARSE_HCL, "Variables": "image = \"redis:7\"\n", "Canonicalize": true}),
    )
    .await;
    assert_eq!(code, 200, "{job}");
    assert_eq!(job["ID"], "cache");
    assert_eq!(job["Namespace"], "team-a");
    assert_eq!(job["Type"], "service");
    assert_eq!(job["TaskGroups"][0]["Count"], 2);
    let task = &job["TaskGroups"][0]["Tasks"][0];
    assert_eq!(task["Config"]["image"], "redis:7");
    assert_eq!(task["Resources"]["MemoryMB"], 128);

    // What parses goes back in through validate unchanged.
    let (code, verdict) = srv
        .post("/v1/validate/job", json!({"Job": job.clone()}))
        .await;
    assert_eq!(code, 200, "{verdict}");
    assert_eq!(verdict["ValidationErrors"], Value::Null, "{verdict}");
    assert_eq!(verdict["Error"], "");

    // A missing variable, a syntax error, two jobs: 400 naming the place; no file is read.
    for (body, needle) in [
        (json!({"JobHCL": PARSE_HCL}), "image"),
        (
            json!({"JobHCL": "job \"x\" {\n  group \"g\" {\n"}),
            "job.nomad.hcl:",
        ),
        (json!({"JobHCL": "job \"a\" {}\njob \"b\" {}\n"}), "job"),
        (
            json!({"JobHCL": PARSE_HCL.replace("var.image", "file(\"/etc/passwd\")")}),
            "cannot read /etc/passwd",
        ),
        (json!({"JobHCL": PARSE_HCL, "Varibles": "x"}), "Varibles"),
        (json!({"JobHCL": PARSE_HCL, "HCLv1": true}), "HCL2"),
    ] {
        let (code, resp) = put_untyped(&srv, "/v1/jobs/parse", body.clone()).await;
        assert_eq!(code, 400, "{body}: {resp}");
        assert!(resp.to_string().contains(needle), "{body}: {resp}");
    }
}

#[tokio::test]
async fn validation_reports_errors_in_nomads_shape_without_writing() {
    let srv = TestServer::start().await;
    let bad = json!({"Job": {"ID": "web", "Type": "service", "TaskGroups": [
        {"Name": "g", "Count": -3, "Tasks": [{"Name": "t", "Driver": "raw_exec",
          "Config": {"command": "/bin/true"}}]}]}});
    let (code, verdict) = srv.post("/v1/validate/job", bad).await;
    assert_eq!(code, 200, "{verdict}");
    let errors = verdict["ValidationErrors"]
        .as_array()
        .expect("errors listed");
    assert!(!errors.is_empty(), "{verdict}");
    assert!(verdict["Error"]
        .as_str()
        .unwrap()
        .contains("error(s) occurred"));
    assert!(srv.read_json(&keys::job("default", "web")).await.is_none());
    let (code, _) = srv.post("/v1/validate/job", json!({"NotAJob": 1})).await;
    assert_eq!(code, 400);
}

/// A job as the API would have accepted it.
fn valid_job(id: &str) -> nomos_api::Job {
    let hcl = format!(
        "job \"{id}\" {{\n  group \"g\" {{\n    task \"t\" {{\n      driver = \"raw_exec\"\n      config {{\n        command = \"/bin/true\"\n      }}\n    }}\n  }}\n}}\n"
    );
    let parsed = nomos_api::parse_source("job.hcl", &hcl, &Default::default()).expect("valid");
    parsed.jobs.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_job_summary_counts_groups_and_a_periodic_jobs_children() {
    let srv = TestServer::start().await;
    let parent = valid_job("nightly");
    srv.put_json(
        &keys::job("default", "nightly"),
        &serde_json::to_value(&parent).unwrap(),
    )
    .await;
    let mut status = nomos_api::JobStatus {
        status: "running".into(),
        ..Default::default()
    };
    status.summary.insert(
        parent.groups[0].name.clone(),
        nomos_api::GroupSummary {
            running: 2,
            failed: 1,
            ..Default::default()
        },
    );
    srv.put_json(
        &keys::job_status("default", "nightly"),
        &serde_json::to_value(&status).unwrap(),
    )
    .await;
    let (_, detail) = srv.get("/v1/job/nightly").await;
    assert!(detail["invalid_spec"].is_null(), "{detail}");
    for (child, child_status) in [
        ("nightly-periodic-1", "dead"),
        ("nightly-periodic-2", "running"),
    ] {
        let mut job = valid_job(child);
        job.labels.insert(
            nomos_controllers::periodic::PARENT_LABEL.into(),
            "nightly".into(),
        );
        srv.put_json(
            &keys::job("default", child),
            &serde_json::to_value(&job).unwrap(),
        )
        .await;
        let st = nomos_api::JobStatus {
            status: child_status.into(),
            ..Default::default()
        };
        srv.put_json(
            &keys::job_status("default", child),
            &serde_json::to_value(&st).unwrap(),
        )
        .await;
    }
    let (code, headers, summary) = get_full(&srv, "/v1/job/nightly/summary").await;
    assert_eq!(code, 200, "{summary}");
    assert!(index_of(&headers) > 1);
    assert_eq!(summary["JobID"], "nightly");
    assert_eq!(summary["Namespace"], "default");
    let group = &summary["Summary"][parent.groups[0].name.as_str()];
    assert_eq!(
        (group["Running"].clone(), group["Failed"].clone()),
        (json!(2), json!(1)),
        "{summary}"
    );
    assert_eq!(
        summary["Children"],
        json!({"Pending": 0, "Running": 1, "Dead": 1})
    );
    let (code, _, _) = get_full(&srv, "/v1/job/nope/summary").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn metrics_answer_in_nomads_json_and_as_prometheus_text() {
    let srv = TestServer::start().await;
    seed_nodes(&srv, &["n1"]).await;
    get_full(&srv, "/v1/nodes").await;
    let (code, _, metrics) = get_full(&srv, "/v1/metrics").await;
    assert_eq!(code, 200, "{metrics}");
    assert!(metrics["Timestamp"].as_str().unwrap().ends_with("UTC"));
    for list in ["Gauges", "Counters", "Samples"] {
        assert!(metrics[list].is_array(), "{list}: {metrics}");
    }
    let names: Vec<&str> = metrics["Counters"]
        .as_array()
        .unwrap()
        .iter()
        .chain(metrics["Samples"].as_array().unwrap())
        .filter_map(|m| m["Name"].as_str())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("nomos.http")),
        "{names:?}"
    );
    let text = srv
        .client
        .get(srv.url("/v1/metrics?format=prometheus"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("# TYPE nomos_http"), "{text}");

    let (code, _, config) = get_full(&srv, "/v1/operator/scheduler/configuration").await;
    assert_eq!(code, 200);
    assert_eq!(config["SchedulerConfig"]["SchedulerAlgorithm"], "binpack");
    assert_eq!(config["KnownLeader"], true);
}

#[tokio::test]
async fn search_finds_by_prefix_and_by_fuzzy_text_and_refuses_bad_requests() {
    let srv = TestServer::start().await;
    seed_nodes(&srv, &["lab-1"]).await;
    let job = valid_job("example-python");
    srv.put_json(
        &keys::job("default", "example-python"),
        &serde_json::to_value(&job).unwrap(),
    )
    .await;
    let (code, found) = srv
        .post("/v1/search", json!({"Prefix": "exa", "Context": "all"}))
        .await;
    assert_eq!(code, 200, "{found}");
    assert_eq!(found["Matches"]["jobs"], json!(["example-python"]));
    assert_eq!(found["Matches"]["evals"], Value::Null);
    assert_eq!(found["Truncations"]["jobs"], "false");
    assert!(found["Index"].as_i64().unwrap() > 1);
    let (code, found) = put_untyped(
        &srv,
        "/v1/search/fuzzy",
        json!({"Text": "lab", "Context": "all"}),
    )
    .await;
    assert_eq!(code, 200, "{found}");
    assert_eq!(
        found["Matches"]["nodes"],
        json!([{"ID": "lab-1", "Scope": ["lab-1-0000-id"]}])
    );
    for body in [
        json!({"Prefix": "a", "Context": "galaxies"}),
        json!({"Text": "a", "Context": "jobs"}),
        json!({"Prefix": "a"}),
        json!({"Prefix": "a", "Context": "all", "Extra": 1}),
        json!({"Prefix": "a".repeat(300), "Context": "all"}),
    ] {
        let path = if body.get("Text").is_some() {
            "/v1/search/fuzzy"
        } else {
            "/v1/search"
        };
        let (code, resp) = srv.post(path, body.clone()).await;
        assert_eq!(code, 400, "{body}: {resp}");
    }
}

#[tokio::test]
async fn node_pools_are_the_built_in_ones_and_those_nodes_registered_in() {
    let srv = TestServer::start().await;
    seed_nodes(&srv, &["n1", "n2"]).await;
    let mut gpu = build::node("g1").datacenter("dc1").build();
    gpu.id = "g1-0000-id".into();
    gpu.node_pool = "gpu".into();
    srv.put_json(&keys::node("g1"), &serde_json::to_value(&gpu).unwrap())
        .await;
    let (code, _, pools) = get_full(&srv, "/v1/node/pools").await;
    assert_eq!(code, 200);
    let names: Vec<&str> = pools
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["all", "default", "gpu"]);
    let (_, _, members) = get_full(&srv, "/v1/node/pool/gpu/nodes").await;
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(members[0]["Name"], "g1");
    let (_, _, everyone) = get_full(&srv, "/v1/node/pool/all/nodes").await;
    assert_eq!(everyone.as_array().unwrap().len(), 3);
    let (_, _, default) = get_full(&srv, "/v1/node/pool/default/nodes").await;
    assert_eq!(default.as_array().unwrap().len(), 2);
    let (code, _, one) = get_full(&srv, "/v1/node/pool/default").await;
    assert_eq!((code, one["Name"].clone()), (200, json!("default")));
    let (code, _, _) = get_full(&srv, "/v1/node/pool/nope").await;
    assert_eq!(code, 404);
    let (code, _, _) = get_full(&srv, "/v1/node/pool/nope/nodes").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn namespace_reads_follow_nomads_conventions_and_block_until_one_is_written() {
    let srv = TestServer::start().await;
    for ns in ["team-a", "team-b"] {
        let (code, body) = srv
            .post(&format!("/v1/namespace/{ns}"), json!({"Description": ns}))
            .await;
        assert_eq!(code, 200, "{body}");
    }
    let (code, headers, list) = get_full(&srv, "/v1/namespaces?prefix=team&per_page=1").await;
    assert_eq!(code, 200);
    assert_eq!(list[0]["Name"], "team-a");
    assert_eq!(headers["x-nomad-nexttoken"], "team-b");
    let index = index_of(&headers);
    let waiting = tokio::spawn({
        let url = srv.url(&format!("/v1/namespaces?index={index}&wait=20s"));
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "nothing changed yet");
    srv.post("/v1/namespace/team-c", json!({})).await;
    let all = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("a new namespace wakes the query")
        .unwrap();
    assert_eq!(
        all.as_array().unwrap().len(),
        4,
        "default and three teams: {all}"
    );
    let (code, headers, one) = get_full(&srv, "/v1/namespace/team-c").await;
    assert_eq!((code, one["Name"].clone()), (200, json!("team-c")));
    assert!(index_of(&headers) > index);
}
