//! Test harness: the real router on a loopback port 0 over an in-memory embedded store, and a
//! small JSON client.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use nomos_server::{AppState, ServerConfig};
use nomos_store::{EmbeddedStore, PutOptions, Store};
use serde_json::{json, Value};

pub struct TestServer {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|s| s, nomos_server::DEFAULT_BODY_LIMIT).await
    }

    pub async fn start_with(configure: impl FnOnce(AppState) -> AppState, limit: usize) -> Self {
        let config = ServerConfig {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            body_limit: limit,
            ..ServerConfig::default()
        };
        Self::start_with_config(configure, config).await
    }

    /// A server on `config.http_addr` (port 0 picks a free one) with `config`'s body limit and
    /// browser guard.
    pub async fn start_with_config(
        configure: impl FnOnce(AppState) -> AppState,
        config: ServerConfig,
    ) -> Self {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        let state = configure(AppState::with_store(store.clone()));
        let listener = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .expect("bind the test server");
        let mut addr = listener.local_addr().unwrap();
        if addr.ip().is_unspecified() {
            addr.set_ip([127, 0, 0, 1].into());
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            nomos_server::serve(listener, state, config, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        TestServer {
            base: format!("http://{addr}"),
            store,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.client.get(self.url(path)).send().await.expect("GET");
        decode(resp).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST");
        decode(resp).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        decode(resp).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE");
        decode(resp).await
    }

    pub async fn put_json(&self, key: &str, value: &Value) {
        self.store
            .put(
                key.as_bytes().to_vec(),
                serde_json::to_vec(value).unwrap(),
                PutOptions::default(),
            )
            .await
            .expect("store put");
    }

    /// Writes raw bytes under `key`, as `etcdctl put` or a GitOps pipeline would.
    pub async fn put_raw(&self, key: &str, value: &[u8]) {
        self.store
            .put(
                key.as_bytes().to_vec(),
                value.to_vec(),
                PutOptions::default(),
            )
            .await
            .expect("store put");
    }

    pub async fn read_json(&self, key: &str) -> Option<Value> {
        let resp = self
            .store
            .range(nomos_store::KeySelector::key(key), Default::default())
            .await
            .expect("store range");
        resp.kvs
            .first()
            .map(|kv| serde_json::from_slice(&kv.value).expect("stored JSON"))
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .expect("server shuts down within 10s")
                .expect("server task");
        }
    }
}

pub async fn decode(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub const WEB_HCL: &str = r#"
job "web" {
  datacenters = ["dc1"]
  type = "service"

  group "frontend" {
    count = 2

    network {
      port "http" {}
    }

    task "server" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["1000"]
      }
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
"#;

/// Applies a job file's text through the API as Nomad's CLI does: parsed here, registered as
/// Nomad's JSON job with the text as its submission. Answers the last job's register (a file
/// that does not parse answers 400 with its diagnostics, without a request).
pub async fn apply_source(srv: &TestServer, filename: &str, source: &str) -> (u16, Value) {
    let parsed = match nomos_api::parse_source(filename, source, &Default::default()) {
        Ok(parsed) => parsed,
        Err(diags) => {
            let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
            return (400, Value::String(lines.join("\n")));
        }
    };
    let mut answer = (400, Value::String("the file holds no job".into()));
    for job in &parsed.jobs {
        answer = srv.post("/v1/jobs", register_body(job, source)).await;
    }
    answer
}

/// A register request for `job`, with `source` as its submission.
pub fn register_body(job: &nomos_api::Job, source: &str) -> Value {
    let meta = nomos_api::nomad_out::JobMeta::default();
    serde_json::json!({
        "Job": nomos_api::nomad_out::job_to_nomad(job, &meta),
        "Submission": {"Source": source, "Format": "hcl2"},
    })
}

/// A plan request (`POST /v1/job/{id}/plan`) of a job file's text, with Nomad's diff.
pub fn plan_body(filename: &str, source: &str) -> Value {
    let parsed = nomos_api::parse_source(filename, source, &Default::default()).expect("parses");
    let meta = nomos_api::nomad_out::JobMeta::default();
    serde_json::json!({
        "Job": nomos_api::nomad_out::job_to_nomad(&parsed.jobs[0], &meta),
        "Diff": true,
    })
}

/// Three allocations as the jobs controller writes them (`web` twice on `n1`, `db` on `n2`), the
/// first reported running by its agent.
pub async fn seed_allocs(srv: &TestServer) {
    for (node, id, job, group) in [
        ("n1", "aaaa1111-0000", "web", "frontend"),
        ("n1", "aaaa2222-0000", "web", "frontend"),
        ("n2", "bbbb3333-0000", "db", "main"),
    ] {
        srv.put_json(
            &format!("/nomos/allocs/{node}/{id}"),
            &json!({"id": id, "namespace": "default", "job_id": job, "task_group": group,
                    "name": format!("{job}.{group}[0]"), "node": node, "desired_status": "run"}),
        )
        .await;
    }
    srv.put_json(
        "/nomos/allocstatus/n1/aaaa1111-0000",
        &json!({"alloc_id": "aaaa1111-0000", "client_status": "running",
                "task_states": {"server": {"state": "running"}}}),
    )
    .await;
}

/// A node as its agent registers it (4 GHz, 4 GiB, raw_exec), with a live heartbeat if `alive`.
pub async fn seed_node(srv: &TestServer, name: &str, alive: bool) {
    srv.put_json(
        &format!("/nomos/nodes/{name}"),
        &json!({"name": name, "id": format!("{name}-id-0001"), "datacenter": "dc1",
                "resources": {"cpu_mhz": 4000, "cores": 2, "memory_mb": 4096, "disk_mb": 10000,
                              "min_dynamic_port": 20000, "max_dynamic_port": 20100},
                "drivers": {"raw_exec": {"detected": true, "healthy": true}}}),
    )
    .await;
    if alive {
        srv.put_json(&format!("/nomos/heartbeats/{name}"), &json!({}))
            .await;
    }
}

/// A server with the jobs controller running on its store.
pub async fn with_controller() -> (TestServer, tokio::sync::oneshot::Sender<()>) {
    let srv = TestServer::start().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let store: Arc<dyn Store> = srv.store.clone();
    tokio::spawn(async move {
        let config = nomos_controllers::jobs::JobsConfig::default();
        let shutdown = async {
            let _ = stopped.await;
        };
        let _ = nomos_controllers::jobs::run(store, config, None, None, shutdown).await;
    });
    (srv, stop)
}

/// Reads `path` until `done` holds for its answer (10 s at most).
pub async fn until(srv: &TestServer, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (code, body) = srv.get(path).await;
        if code == 200 && done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never got there; last answer: {last}");
}

/// The real agent HTTP endpoint over `data`, on a free port.
pub async fn agent_over(data: &std::path::Path) -> String {
    let app = nomos_agent::http::router(
        data.to_path_buf(),
        Arc::default(),
        nomos_agent::runner::LiveAllocs::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

/// Node `n1` (ID `n1-0000-id`) reached at `http_addr`, and allocation `alloc` of job `web`,
/// group `g`, on it, desired to run, with `client_status` and its task `task` running.
pub async fn seed_alloc_on_n1(
    srv: &TestServer,
    http_addr: &str,
    alloc: &str,
    task: &str,
    client_status: &str,
) {
    let mut node = nomos_api::build::node("n1").datacenter("dc1").build();
    node.id = "n1-0000-id".into();
    node.http_addr = http_addr.into();
    srv.put_json(
        &nomos_store::keys::node("n1"),
        &serde_json::to_value(&node).unwrap(),
    )
    .await;
    srv.put_json(
        &format!("/nomos/allocs/n1/{alloc}"),
        &json!({"id": alloc, "namespace": "default", "job_id": "web", "task_group": "g",
                "name": "web.g[0]", "node": "n1", "desired_status": "run"}),
    )
    .await;
    srv.put_json(
        &format!("/nomos/allocstatus/n1/{alloc}"),
        &json!({"alloc_id": alloc, "client_status": client_status,
                "task_states": {task: {"state": "running"}}}),
    )
    .await;
}
