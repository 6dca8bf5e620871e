//! Dispatching a parameterized job over Nomad's `POST /v1/job/{id}/dispatch`: the child in
//! Nomad's shape (its parent, payload and merged meta), one child per idempotency token even
//! when many dispatches race, and every refusal (a job that is not parameterized, meta and
//! payload rules, sizes, bad bodies) leaving nothing written.

mod common;

use base64::Engine;
use common::{apply_source, TestServer};
use serde_json::{json, Value};

const ENCODE_HCL: &str = r#"
job "encode" {
  datacenters = ["dc1"]
  type        = "batch"
  meta { owner = "ops" }

  parameterized {
    payload       = "optional"
    meta_required = ["input"]
    meta_optional = ["preset"]
  }

  group "g" {
    task "t" {
      driver = "raw_exec"
      dispatch_payload {
        file = "in/payload.txt"
      }
      config {
        command = "/bin/cat"
        args    = ["local/in/payload.txt"]
      }
    }
  }
}
"#;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn started() -> TestServer {
    let srv = TestServer::start().await;
    let (code, body) = apply_source(&srv, "encode.hcl", ENCODE_HCL).await;
    assert_eq!(code, 200, "{body}");
    srv
}

/// The IDs of the jobs whose parent is `parent`.
async fn children(srv: &TestServer, parent: &str) -> Vec<String> {
    let (code, list) = srv.get("/v1/jobs").await;
    assert_eq!(code, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .filter(|j| j["ParentID"] == parent)
        .map(|j| j["ID"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_dispatch_makes_a_child_with_the_payload_and_merged_meta() {
    let srv = started().await;
    let body = json!({"Payload": b64(b"frame 1\n"), "Meta": {"input": "a.mp4", "owner": "x"}});
    let (code, answer) = srv.post("/v1/job/encode/dispatch", body.clone()).await;
    // `owner` is the job's own meta but neither required nor optional: refused.
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer
            .as_str()
            .unwrap()
            .contains("unpermitted metadata keys: owner"),
        "{answer}"
    );

    let body = json!({"Payload": b64(b"frame 1\n"), "Meta": {"input": "a.mp4", "preset": "fast"}});
    let (code, answer) = srv.post("/v1/job/encode/dispatch", body).await;
    assert_eq!(code, 200, "{answer}");
    let child = answer["DispatchedJobID"].as_str().unwrap().to_string();
    assert!(child.starts_with("encode-dispatch-"), "{child}");
    assert!(!answer["EvalID"].as_str().unwrap().is_empty(), "{answer}");
    assert!(answer["JobCreateIndex"].as_i64().unwrap() > 0, "{answer}");

    let (code, job) = srv.get(&format!("/v1/job/{child}")).await;
    assert_eq!(code, 200, "{job}");
    assert_eq!(job["ParentID"], "encode");
    assert_eq!(job["Dispatched"], true);
    assert_eq!(job["Payload"], b64(b"frame 1\n"));
    assert_eq!(job["ParameterizedJob"], Value::Null, "{job}");
    assert_eq!(job["Meta"]["input"], "a.mp4");
    assert_eq!(job["Meta"]["owner"], "ops", "the job's meta stays");
    assert!(job["Name"]
        .as_str()
        .unwrap()
        .starts_with("encode/dispatch-"));
    let task = &job["TaskGroups"][0]["Tasks"][0];
    assert_eq!(task["DispatchPayload"]["File"], "in/payload.txt");

    // Nomad's spelling of the child's id (escaped, as its clients send it) finds it too; its
    // evaluation is pending for it.
    let nomad_name = job["Name"].as_str().unwrap().replace('/', "%2F");
    let (code, _) = srv.get(&format!("/v1/job/{nomad_name}")).await;
    assert_eq!(code, 200);
    let (code, evals) = srv.get(&format!("/v1/job/{child}/evaluations")).await;
    assert_eq!(code, 200, "{evals}");
    assert_eq!(evals[0]["Type"], "batch", "{evals}");
    assert_eq!(evals[0]["TriggeredBy"], "job-register");

    assert_eq!(children(&srv, "encode").await, vec![child]);
    let (_, parent) = srv.get("/v1/job/encode").await;
    assert_eq!(parent["Dispatched"], false);
    srv.stop().await;
}

#[tokio::test]
async fn one_idempotency_token_makes_one_child_even_when_dispatches_race() {
    let srv = started().await;
    let path = "/v1/job/encode/dispatch?idempotency_token=nightly-42";
    let body = json!({"Meta": {"input": "b.mp4"}});
    let mut racing = Vec::new();
    for _ in 0..8 {
        let client = srv.client.clone();
        let url = srv.url(path);
        let body = body.clone();
        racing.push(tokio::spawn(async move {
            let resp = client.post(url).json(&body).send().await.expect("POST");
            common::decode(resp).await
        }));
    }
    let mut ids = Vec::new();
    let mut evals = 0;
    for r in racing {
        let (code, answer) = r.await.unwrap();
        assert_eq!(code, 200, "{answer}");
        ids.push(answer["DispatchedJobID"].as_str().unwrap().to_string());
        if !answer["EvalID"].as_str().unwrap().is_empty() {
            evals += 1;
        }
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every dispatch names the same child: {ids:?}");
    assert_eq!(
        evals, 1,
        "only the dispatch that made the child has an evaluation"
    );
    assert_eq!(children(&srv, "encode").await, ids);

    // The token in the body, as python-nomad sends it, is the same token.
    let (code, same) = srv
        .post(
            "/v1/job/encode/dispatch",
            json!({"Meta": {"input": "b.mp4"}, "idempotency_token": "nightly-42"}),
        )
        .await;
    assert_eq!(code, 200, "{same}");
    assert_eq!(same["DispatchedJobID"], ids[0].as_str());
    assert_eq!(same["EvalID"], "");

    // Another token is another child; no token is a new child every time.
    let (_, other) = srv
        .post(
            "/v1/job/encode/dispatch?idempotency_token=other",
            body.clone(),
        )
        .await;
    assert_ne!(other["DispatchedJobID"], ids[0].as_str());
    srv.post("/v1/job/encode/dispatch", body.clone()).await;
    srv.post("/v1/job/encode/dispatch", body).await;
    assert_eq!(children(&srv, "encode").await.len(), 4);
    srv.stop().await;
}

#[tokio::test]
async fn refused_dispatches_answer_4xx_and_write_nothing() {
    let srv = started().await;
    let plain = r#"job "plain" {
  datacenters = ["dc1"]
  type = "batch"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
    }
  }
}"#;
    let (code, body) = apply_source(&srv, "plain.hcl", plain).await;
    assert_eq!(code, 200, "{body}");
    let big = vec![b'x'; 16 * 1024 + 1];
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/v1/job/plain/dispatch",
            json!({}),
            400,
            "not a parameterized job",
        ),
        (
            "/v1/job/encode/dispatch",
            json!({}),
            400,
            "required meta keys: input",
        ),
        (
            "/v1/job/encode/dispatch",
            json!({"Meta": {"input": "a", "zzz": "b"}}),
            400,
            "unpermitted metadata keys: zzz",
        ),
        (
            "/v1/job/encode/dispatch",
            json!({"Meta": {"input": "a"}, "Payload": b64(&big)}),
            400,
            "maximum size",
        ),
        (
            "/v1/job/encode/dispatch",
            json!({"Meta": {"input": "a"}, "Payload": "%%% not base64"}),
            400,
            "not base64",
        ),
        (
            "/v1/job/encode/dispatch",
            json!({"Meta": {"input": "a"}, "Paylod": "eA=="}),
            400,
            "Paylod",
        ),
        (
            "/v1/job/encode/dispatch",
            json!({"Meta": {"input": "a"}, "JobID": "other"}),
            400,
            "does not match the job of the path",
        ),
        (
            "/v1/job/encode/dispatch",
            json!({"Meta": {"input": "a"}, "IdPrefixTemplate": "../up"}),
            400,
            "id prefix template",
        ),
        (
            "/v1/job/encode/dispatch",
            json!({"Meta": {"input": "a"}, "Priority": 500}),
            400,
            "Priority",
        ),
        ("/v1/job/nope/dispatch", json!({}), 404, "nope"),
    ];
    for (path, body, want, says) in cases {
        let (code, answer) = srv.post(path, body.clone()).await;
        assert_eq!(code, want, "{path} {body}: {answer}");
        let text = answer.as_str().unwrap_or_default();
        assert!(
            text.contains(says),
            "{path} {body}: {says:?} not in {text:?}"
        );
    }
    let token = format!(
        "/v1/job/encode/dispatch?idempotency_token={}",
        "t".repeat(300)
    );
    let (code, _) = srv.post(&token, json!({"Meta": {"input": "a"}})).await;
    assert_eq!(code, 400, "an idempotency token over its limit");
    assert!(children(&srv, "encode").await.is_empty());
    assert!(children(&srv, "plain").await.is_empty());

    // A stopped parameterized job dispatches nothing.
    let (code, _) = srv.delete("/v1/job/encode").await;
    assert_eq!(code, 200);
    let (code, answer) = srv
        .post("/v1/job/encode/dispatch", json!({"Meta": {"input": "a"}}))
        .await;
    assert_eq!(code, 400, "{answer}");
    assert!(children(&srv, "encode").await.is_empty());
    srv.stop().await;
}
