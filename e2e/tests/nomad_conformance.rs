//! A conformance suite for Nomad's HTTP API (issue 17), written from Nomad's API documentation
//! and run against a real `nctl dev`: the conventions every endpoint shares (query headers,
//! blocking queries, `pretty`, gzip, `region`, status codes for a wrong path, method, body or
//! index) and the shape of each endpoint's answer (the fields Nomad's clients read), then a
//! job's whole life through the API alone: register, read, list, allocations, evaluations,
//! deployments, versions, logs, a stale `EnforceIndex`, deregister with purge.
//!
//! It asserts what Nomad documents, not how Nomos builds it; the server tests in
//! `server/tests/nomad_*.rs` cover each endpoint's edge cases.

use std::io::Read;
use std::time::{Duration, Instant};

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// One answer: status, the headers Nomad's clients read, and the body (JSON when it parses).
struct Reply {
    status: StatusCode,
    index: Option<i64>,
    last_contact: Option<String>,
    known_leader: Option<String>,
    content_encoding: Option<String>,
    content_type: Option<String>,
    text: String,
    json: Value,
}

/// A client of one cluster's API.
struct Api {
    base: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Api {
    fn new(c: &Cluster) -> Api {
        Api {
            base: c.addr.clone(),
            rt: tokio::runtime::Runtime::new().expect("runtime"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        }
    }

    fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.call_with(method, path, body, &[])
    }

    fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.rt.block_on(async {
            let mut req = self.http.request(method, format!("{}{path}", self.base));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.expect("request");
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let status = resp.status();
            let index = header("x-nomad-index").and_then(|v| v.parse().ok());
            let last_contact = header("x-nomad-lastcontact");
            let known_leader = header("x-nomad-knownleader");
            let content_encoding = header("content-encoding");
            let content_type = header("content-type");
            let bytes = resp.bytes().await.expect("body");
            let text = if content_encoding.as_deref() == Some("gzip") {
                gunzip(&bytes)
            } else {
                String::from_utf8_lossy(&bytes).into_owned()
            };
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            Reply {
                status,
                index,
                last_contact,
                known_leader,
                content_encoding,
                content_type,
                text,
                json,
            }
        })
    }

    fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None)
    }

    /// A GET that must answer 200 with Nomad's query headers; its JSON.
    fn read(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.text);
        assert!(r.index.is_some_and(|i| i > 0), "GET {path}: X-Nomad-Index");
        assert_eq!(r.last_contact.as_deref(), Some("0"), "GET {path}");
        assert_eq!(r.known_leader.as_deref(), Some("true"), "GET {path}");
        r.json
    }

    /// A GET of an endpoint that is no query in Nomad (agent, status, regions, metrics): 200
    /// and its JSON, no query headers required.
    fn fetch(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.text);
        r.json
    }

    fn write(&self, method: Method, path: &str, body: &Value) -> Value {
        let r = self.call(method.clone(), path, Some(body));
        assert_eq!(r.status, StatusCode::OK, "{method} {path}: {}", r.text);
        r.json
    }
}

/// Decompresses a gzip body with the system's `gzip` (no crate needed for one test).
fn gunzip(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write");
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    child.wait().expect("gzip exit");
    out
}

/// Asserts `value` has every one of `fields` (top-level keys).
fn has_fields(what: &str, value: &Value, fields: &[&str]) {
    for f in fields {
        assert!(value.get(f).is_some(), "{what}: no field {f:?} in {value}");
    }
}

/// The first element of a list answer.
fn first<'a>(what: &str, list: &'a Value) -> &'a Value {
    list.as_array()
        .and_then(|a| a.first())
        .unwrap_or_else(|| panic!("{what}: expected a non-empty list, got {list}"))
}

/// A raw_exec job in Nomad's JSON format that prints a line and sleeps.
fn job(id: &str, line: &str) -> Value {
    json!({
        "ID": id,
        "Name": id,
        "Type": "service",
        "Datacenters": ["*"],
        "TaskGroups": [{
            "Name": "g",
            "Count": 1,
            "Tasks": [{
                "Name": "t",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sh", "args": ["-c", format!("echo {line}; exec sleep 600")]},
                "Resources": {"CPU": 20, "MemoryMB": 16}
            }]
        }]
    })
}

fn wait_until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn nomads_conventions_hold_on_every_read() {
    let c = Cluster::start("conform-conv");
    let api = Api::new(&c);
    let reads = [
        "/v1/jobs",
        "/v1/nodes",
        "/v1/node/pools",
        "/v1/allocations",
        "/v1/deployments",
        "/v1/evaluations",
        "/v1/namespaces",
        "/v1/services",
        "/v1/vars",
        "/v1/operator/scheduler/configuration",
    ];
    for path in reads {
        api.read(path);
        // `region` names the one region; another has no path.
        let r = api.get(&format!("{path}?region=elsewhere"));
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        // `pretty` indents.
        let r = api.get(&format!("{path}?pretty=true"));
        assert!(
            r.text.contains('\n') || r.text.len() < 3,
            "{path}?pretty: {}",
            r.text
        );
    }
    // Lists take `namespace=*`, `prefix` and `per_page`, and refuse a bad `index` or `wait`.
    for path in [
        "/v1/jobs",
        "/v1/allocations",
        "/v1/deployments",
        "/v1/evaluations",
    ] {
        api.read(&format!("{path}?namespace=*&prefix=zz&per_page=5"));
        let r = api.get(&format!("{path}?index=many"));
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        let r = api.get(&format!("{path}?wait=forever"));
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
    }
    // A blocking query on a quiet list waits out its `wait`, then answers the same index.
    let index = api.get("/v1/nodes").index.expect("index");
    let started = Instant::now();
    let r = api.get(&format!("/v1/nodes?index={index}&wait=1s"));
    assert_eq!(r.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Gzip when asked.
    let r = api.call_with(
        Method::GET,
        "/v1/nodes",
        None,
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(r.content_encoding.as_deref(), Some("gzip"));
    assert!(r.json.is_array(), "{}", r.text);
    // Wrong path 404, wrong method 405, unknown body field 400, non-JSON body 400; errors
    // are plain text, as Nomad's clients print them.
    let r = api.get("/v1/no/such/thing");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_plain_error(&r, "/v1/no/such/thing");
    let r = api.get("/v1/job/no-such-job");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_plain_error(&r, "no-such-job");
    assert_eq!(
        api.call(Method::DELETE, "/v1/nodes", None).status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let r = api.call(
        Method::PUT,
        "/v1/search",
        Some(&json!({"Prefix": "", "Context": "all", "Contxt": "jobs"})),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_plain_error(&r, "Contxt");
    let r = api.rt.block_on(async {
        api.http
            .put(format!("{}/v1/jobs", api.base))
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("request")
            .status()
    });
    assert_eq!(r, StatusCode::BAD_REQUEST);
}

/// An error answer is `text/plain` and says what went wrong (naming `names`), not JSON.
fn assert_plain_error(r: &Reply, names: &str) {
    assert!(
        r.content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}: {}",
        r.content_type,
        r.text
    );
    assert!(r.json.is_null(), "not plain text: {}", r.text);
    assert!(r.text.contains(names), "{names} not in {:?}", r.text);
}

#[test]
fn every_endpoint_answers_in_nomads_shape() {
    let c = Cluster::start("conform-shape");
    let api = Api::new(&c);
    has_fields(
        "agent/self",
        &api.fetch("/v1/agent/self"),
        &["config", "member", "stats"],
    );
    has_fields(
        "agent/members",
        &api.fetch("/v1/agent/members"),
        &["ServerName", "ServerRegion", "ServerDC", "Members"],
    );
    assert!(api.fetch("/v1/agent/servers").is_array());
    has_fields("agent/health", &api.fetch("/v1/agent/health"), &["server"]);
    assert!(api.fetch("/v1/status/leader").is_string());
    assert!(api.fetch("/v1/status/peers").is_array());
    assert_eq!(api.fetch("/v1/regions"), json!(["global"]));

    let nodes = api.read("/v1/nodes?resources=true");
    let node = first("nodes", &nodes);
    has_fields(
        "node stub",
        node,
        &[
            "ID",
            "Name",
            "Datacenter",
            "NodePool",
            "Status",
            "SchedulingEligibility",
            "Drain",
            "Drivers",
            "NodeResources",
            "CreateIndex",
            "ModifyIndex",
        ],
    );
    let id = node["ID"].as_str().expect("node ID");
    has_fields(
        "node",
        &api.read(&format!("/v1/node/{id}")),
        &[
            "ID",
            "Name",
            "Attributes",
            "NodeResources",
            "Status",
            "Drain",
        ],
    );
    assert!(api.read(&format!("/v1/node/{id}/allocations")).is_array());
    has_fields(
        "node pool",
        first("pools", &api.read("/v1/node/pools")),
        &["Name"],
    );
    has_fields(
        "namespace",
        first("namespaces", &api.read("/v1/namespaces")),
        &["Name", "Description"],
    );
    has_fields(
        "metrics",
        &api.fetch("/v1/metrics"),
        &["Timestamp", "Gauges", "Counters", "Samples"],
    );
    let prom = api.get("/v1/metrics?format=prometheus");
    assert_eq!(prom.status, StatusCode::OK);
    assert!(prom.text.contains("# TYPE"), "{}", prom.text);
    has_fields(
        "scheduler configuration",
        &api.read("/v1/operator/scheduler/configuration")["SchedulerConfig"],
        &["SchedulerAlgorithm", "PreemptionConfig"],
    );
    let search = api.write(
        Method::PUT,
        "/v1/search",
        &json!({"Prefix": "", "Context": "nodes"}),
    );
    has_fields("search", &search, &["Matches", "Truncations"]);

    let parsed = api.write(
        Method::PUT,
        "/v1/jobs/parse",
        &json!({"JobHCL": "job \"p\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n      config {\n        command = \"/bin/true\"\n      }\n    }\n  }\n}\n", "Canonicalize": true}),
    );
    has_fields("parsed job", &parsed, &["ID", "TaskGroups", "Type"]);
    let r = api.call(
        Method::PUT,
        "/v1/jobs/parse",
        Some(&json!({"JobHCL": "job \"p\" {\n  group \"g\" {\n"})),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let validated = api.write(
        Method::PUT,
        "/v1/validate/job",
        &json!({"Job": job("v", "x")}),
    );
    has_fields(
        "validate",
        &validated,
        &[
            "DriverConfigValidated",
            "ValidationErrors",
            "Error",
            "Warnings",
        ],
    );
    let var = api.write(
        Method::PUT,
        "/v1/var/conformance/a",
        &json!({"Items": {"k": "v"}}),
    );
    has_fields(
        "variable",
        &var,
        &["Path", "Namespace", "CreateIndex", "ModifyIndex"],
    );
    assert_eq!(
        api.read("/v1/var/conformance/a")["Items"],
        json!({"k": "v"})
    );
}

#[test]
fn a_job_lives_its_whole_life_through_the_api() {
    require_busybox();
    let c = Cluster::start("conform-job");
    let api = Api::new(&c);
    let spec = job("conf", "conformance-line");

    // Register: an evaluation and the job's modify index come back.
    let reg = api.write(Method::PUT, "/v1/jobs", &json!({"Job": spec}));
    has_fields(
        "register",
        &reg,
        &["EvalID", "EvalCreateIndex", "JobModifyIndex"],
    );
    let modify_index = reg["JobModifyIndex"].as_i64().expect("JobModifyIndex");

    // A stale EnforceIndex is refused, and nothing changes.
    let r = api.call(
        Method::POST,
        "/v1/job/conf",
        Some(&json!({"Job": job("conf", "other"), "EnforceIndex": true, "JobModifyIndex": modify_index + 1000})),
    );
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_plain_error(&r, "Enforcing job modify index");
    // A body naming another job than the path is refused.
    let r = api.call(
        Method::POST,
        "/v1/job/conf",
        Some(&json!({"Job": job("other", "x")})),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    let read = api.read("/v1/job/conf");
    has_fields(
        "job",
        &read,
        &[
            "ID",
            "Name",
            "Namespace",
            "Type",
            "Priority",
            "TaskGroups",
            "Status",
            "Version",
            "Stop",
            "SubmitTime",
            "CreateIndex",
            "ModifyIndex",
            "JobModifyIndex",
        ],
    );
    assert_eq!(read["TaskGroups"][0]["Tasks"][0]["Driver"], "raw_exec");
    let listed = api.read("/v1/jobs");
    let stub = first("jobs", &listed);
    has_fields(
        "job stub",
        stub,
        &["ID", "Name", "Type", "Status", "JobSummary", "ModifyIndex"],
    );
    has_fields(
        "summary",
        &api.read("/v1/job/conf/summary"),
        &["JobID", "Namespace", "Summary", "Children"],
    );

    // It runs: its allocation and evaluation read back.
    let alloc = wait_until("the allocation running", Duration::from_secs(60), || {
        let allocs = api.read("/v1/job/conf/allocations");
        allocs
            .as_array()?
            .iter()
            .find(|a| a["ClientStatus"] == "running")
            .cloned()
    });
    has_fields(
        "alloc stub",
        &alloc,
        &[
            "ID",
            "EvalID",
            "Name",
            "NodeID",
            "JobID",
            "TaskGroup",
            "DesiredStatus",
            "ClientStatus",
            "TaskStates",
        ],
    );
    let alloc_id = alloc["ID"].as_str().expect("alloc ID").to_string();
    has_fields(
        "allocation",
        &api.read(&format!("/v1/allocation/{alloc_id}")),
        &["ID", "Job", "TaskStates", "AllocatedResources"],
    );
    let evals = api.read("/v1/job/conf/evaluations");
    let eval = first("evaluations", &evals);
    has_fields(
        "evaluation",
        eval,
        &[
            "ID",
            "Namespace",
            "Priority",
            "Type",
            "TriggeredBy",
            "JobID",
            "Status",
            "CreateIndex",
            "ModifyIndex",
        ],
    );
    let eval_id = reg["EvalID"].as_str().expect("EvalID");
    let done = wait_until(
        "the register evaluation complete",
        Duration::from_secs(30),
        || {
            let e = api.read(&format!("/v1/evaluation/{eval_id}"));
            (e["Status"] == "complete").then_some(e)
        },
    );
    assert_eq!(done["TriggeredBy"], "job-register", "{done}");
    assert!(api
        .read(&format!("/v1/evaluation/{eval_id}/allocations"))
        .is_array());
    // Its logs, plain and framed.
    let logs = wait_until("the task's line", Duration::from_secs(30), || {
        let r = api.get(&format!(
            "/v1/client/fs/logs/{alloc_id}?task=t&type=stdout&plain=true"
        ));
        (r.status == StatusCode::OK && r.text.contains("conformance-line")).then_some(r.text)
    });
    assert!(logs.contains("conformance-line"));
    let r = api.get(&format!("/v1/client/fs/logs/{alloc_id}?task=t&type=stdout"));
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("\"Data\""), "framed: {}", r.text);

    // A second version rolls out under a deployment; then the versions list.
    api.write(
        Method::PUT,
        "/v1/job/conf",
        &json!({"Job": job("conf", "second")}),
    );
    let deployment = wait_until("the deployment", Duration::from_secs(60), || {
        let d = api.read("/v1/job/conf/deployment");
        d.is_object().then_some(d)
    });
    has_fields(
        "deployment",
        &deployment,
        &[
            "ID",
            "Namespace",
            "JobID",
            "JobVersion",
            "Status",
            "StatusDescription",
            "TaskGroups",
        ],
    );
    let listed = api.read("/v1/job/conf/deployments");
    has_fields(
        "job deployments",
        first("deployments", &listed),
        &["ID", "Status"],
    );
    let versions = api.read("/v1/job/conf/versions");
    let listed = versions["Versions"].as_array().expect("Versions");
    assert!(!listed.is_empty(), "{versions}");

    // Deregister with purge: an evaluation, then the job is gone.
    let r = api.call(Method::DELETE, "/v1/job/conf?purge=true", None);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    has_fields(
        "deregister",
        &r.json,
        &["EvalID", "EvalCreateIndex", "JobModifyIndex"],
    );
    wait_until("the job gone", Duration::from_secs(30), || {
        (api.get("/v1/job/conf").status == StatusCode::NOT_FOUND).then_some(())
    });
    assert_eq!(api.get("/v1/job/none").status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.get("/v1/evaluation/00000000-0000-0000-0000-000000000000")
            .status,
        StatusCode::NOT_FOUND
    );
}
