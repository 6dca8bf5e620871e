//! Strict input over real HTTP: every JSON body refuses a field it does not know (400 naming
//! it), names that would become odd store keys are refused (a job in namespace `evil/ns`),
//! a value under a key that is not UTF-8 is never read as another job, and hostile bodies,
//! ids and query strings answer 4xx, never 5xx.

mod acl_support;
mod common;

use common::{seed_node, TestServer, WEB_HCL};
use nomos_store::PutOptions;
use serde_json::{json, Value};

fn error_of(body: &Value) -> String {
    body.as_str().unwrap_or_default().to_string()
}

/// A server with ACLs on (so the ACL endpoints answer too) and its management token.
struct Probe {
    srv: TestServer,
    root: String,
}

impl Probe {
    async fn start() -> Probe {
        let srv = acl_support::acl_server().await;
        let root = acl_support::bootstrap(&srv).await;
        Probe { srv, root }
    }

    /// `method path` with the management token and `body` as it is.
    async fn send_raw(&self, method: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .srv
            .client
            .request(method, self.srv.url(path))
            .header("X-Nomad-Token", &self.root)
            .header("content-type", "application/json")
            .body(body)
            .timeout(std::time::Duration::from_secs(20))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        common::decode(resp).await
    }

    async fn send(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        self.send_raw(method, path, serde_json::to_vec(body).unwrap())
            .await
    }

    /// `GET path`'s response, headers read, body not yet (streams never end).
    async fn get_response(&self, path: &str) -> reqwest::Response {
        self.srv
            .client
            .get(self.srv.url(path))
            .header("X-Nomad-Token", &self.root)
            .timeout(std::time::Duration::from_secs(20))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        common::decode(self.get_response(path).await).await
    }

    async fn status_of(&self, path: &str) -> u16 {
        self.get_response(path).await.status().as_u16()
    }

    async fn apply(&self, source: &str) -> (u16, Value) {
        self.send("POST", "/v1/jobs", &register(source)).await
    }
}

/// The register request of a job file's text.
fn register(source: &str) -> Value {
    let parsed = nomos_api::parse_source("web.hcl", source, &Default::default()).expect("parses");
    common::register_body(&parsed.jobs[0], source)
}

/// `body` with one more field.
fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

/// Every endpoint that takes a JSON body, each with a body holding one field it does not take:
/// (method, path, body, the unknown field's path as the error names it).
fn bodies_with_an_unknown_field() -> Vec<(&'static str, &'static str, Value, &'static str)> {
    let policy_link = json!([{"Name": "readers"}]);
    vec![
        (
            "POST",
            "/v1/jobs",
            with(register(WEB_HCL), "EnforceIndx", json!(true)),
            "EnforceIndx",
        ),
        (
            "POST",
            "/v1/job/web/plan",
            with(common::plan_body("web.hcl", WEB_HCL), "Dif", json!(true)),
            "Dif",
        ),
        (
            "PUT",
            "/v1/job/web",
            with(register(WEB_HCL), "JobModifyIdx", json!(3)),
            "JobModifyIdx",
        ),
        (
            "POST",
            "/v1/job/web/revert",
            json!({"JobID": "web", "JobVersion": 1, "EnforcePriorVrsion": 2}),
            "EnforcePriorVrsion",
        ),
        (
            "POST",
            "/v1/job/web/stable",
            json!({"JobVersion": 0, "Stabel": true}),
            "Stabel",
        ),
        (
            "PUT",
            "/v1/operator/scheduler/configuration",
            json!({"SchedulerAlgorithm": "spread",
                   "PreemptionConfig": {"SystemSchedulerEnabld": true}}),
            "PreemptionConfig.SystemSchedulerEnabld",
        ),
        (
            "POST",
            "/v1/node/pools",
            json!({"Name": "edge", "SchedulerConfiguration": {"SchedulerAlgorithim": "spread"}}),
            "SchedulerConfiguration.SchedulerAlgorithim",
        ),
        (
            "POST",
            "/v1/node/n1/eligibility",
            json!({"Eligibility": "eligible", "Eligble": false}),
            "Eligble",
        ),
        (
            "POST",
            "/v1/node/n1/drain",
            json!({"DrainSpec": {"Deadline": 60, "IgnoreSystemJob": true}}),
            "IgnoreSystemJob",
        ),
        (
            "POST",
            "/v1/deployment/promote/web-v1",
            json!({"DeploymentID": "web-v1", "Group": ["api"]}),
            "Group",
        ),
        (
            "POST",
            "/v1/deployment/pause/web-v1",
            json!({"DeploymentID": "web-v1", "Pause": true, "paused": true}),
            "paused",
        ),
        (
            "POST",
            "/v1/namespace/team-a",
            json!({"Name": "team-a", "Descripton": "x"}),
            "Descripton",
        ),
        (
            "PUT",
            "/v1/namespace",
            json!({"Name": "team-a", "Quotas": "q"}),
            "Quotas",
        ),
        (
            "POST",
            "/v1/quota/q",
            json!({"Name": "q", "Limits": [{"Region": "global",
                   "RegionLimit": {"CPU": 100, "Cores": 2}}]}),
            "Limits[0].RegionLimit.Cores",
        ),
        (
            "PUT",
            "/v1/var/app/db",
            json!({"Items": {"k": "v"}, "Itemz": {}}),
            "Itemz",
        ),
        (
            "PUT",
            "/v1/var/app/db?lock-acquire",
            json!({"Lock": {"TTL": "15s", "Delay": "1s"}}),
            "Lock.Delay",
        ),
        (
            "POST",
            "/v1/acl/token",
            json!({"Name": "t", "Type": "client", "Policies": ["p"], "Polices": ["q"]}),
            "Polices",
        ),
        (
            "POST",
            "/v1/acl/policy/readers",
            json!({"Name": "readers", "Rulez": ""}),
            "Rulez",
        ),
        (
            "POST",
            "/v1/acl/role",
            json!({"Name": "r", "Policies": policy_link, "Policy": 1}),
            "Policy",
        ),
        (
            "POST",
            "/v1/node/join-tokens",
            json!({"node": "n1", "ttl": 60}),
            "ttl",
        ),
        (
            "POST",
            "/v1/node/join",
            json!({"token": "t", "node": "n1", "nodes": []}),
            "nodes",
        ),
    ]
}

#[tokio::test]
async fn every_body_with_an_unknown_field_answers_400_naming_the_field() {
    let srv = Probe::start().await;
    for (method, path, body, field) in bodies_with_an_unknown_field() {
        let (code, answer) = srv.send(method, path, &body).await;
        let error = error_of(&answer);
        assert_eq!(code, 400, "{method} {path}: {answer}");
        assert!(error.contains(field), "{method} {path}: {error}");
    }
    // Nothing was written: the misspelled check-index did not become a plain write.
    assert_eq!(srv.srv.read_json("/nomos/jobs/default/web").await, None);
    assert_eq!(srv.srv.read_json("/nomos/namespaces/team-a").await, None);
    assert_eq!(srv.srv.read_json("/nomos/config/scheduler").await, None);
    assert_eq!(srv.srv.read_json("/nomos/nodepools/edge").await, None);
}

#[tokio::test]
async fn a_misspelled_check_index_does_not_overwrite_a_job() {
    let srv = Probe::start().await;
    let (code, first) = srv.apply(WEB_HCL).await;
    assert_eq!(code, 200, "{first}");
    let changed = WEB_HCL.replace("count = 2", "count = 3");
    let body = with(register(&changed), "EnforceIdx", json!(true));
    let (code, answer) = srv.send("POST", "/v1/jobs", &body).await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        error_of(&answer).contains("unknown field `EnforceIdx`"),
        "{answer}"
    );
    let stored = srv.srv.read_json("/nomos/jobs/default/web").await.unwrap();
    assert_eq!(stored["groups"][0]["count"], 2, "{stored}");
}

#[tokio::test]
async fn unknown_fields_holding_null_carry_nothing_and_are_accepted() {
    let srv = Probe::start().await;
    let body = json!({"Name": "team-a", "Capabilities": null, "NodePoolConfiguration": null});
    let (code, answer) = srv.send("POST", "/v1/namespace/team-a", &body).await;
    assert_eq!(code, 200, "{answer}");
    let body = json!({"Name": "q", "Limits": [{"Region": "global", "Hash": null,
                      "RegionLimit": {"CPU": 100, "Networks": null, "Devices": null}}]});
    let (code, answer) = srv.send("POST", "/v1/quota/q", &body).await;
    assert_eq!(code, 200, "{answer}");
    // Nomad's clients send back what they read: the read-only token fields are taken.
    let body = json!({"Name": "ops", "Type": "management", "AccessorID": "", "SecretID": "",
                      "CreateTime": "0001-01-01T00:00:00Z", "CreateIndex": 0, "ModifyIndex": 0});
    let (code, answer) = srv.send("POST", "/v1/acl/token", &body).await;
    assert_eq!(code, 200, "{answer}");
    let body = json!({"Name": "ops", "Type": "management", "SecretID": "mine"});
    let (code, answer) = srv.send("POST", "/v1/acl/token", &body).await;
    assert_eq!(
        code, 400,
        "a chosen secret is refused, not ignored: {answer}"
    );
}

#[tokio::test]
async fn a_job_in_namespace_evil_ns_is_refused_with_400_naming_it() {
    let srv = Probe::start().await;
    let mut body = register(WEB_HCL);
    body["Job"]["Namespace"] = json!("evil/ns");
    let (code, answer) = srv.send("POST", "/v1/jobs", &body).await;
    assert_eq!(code, 400, "{answer}");
    assert!(answer.as_str().unwrap().contains("evil/ns"), "{answer}");
    let (code, answer) = srv
        .send("POST", "/v1/namespace", &json!({"Name": "evil/ns"}))
        .await;
    assert_eq!(code, 400, "{answer}");
    for path in [
        "/v1/jobs?namespace=evil/ns",
        "/v1/job/web?namespace=evil%2Fns",
    ] {
        let (code, answer) = srv.get(path).await;
        assert_eq!(code, 400, "{path}: {answer}");
    }
    let stored = srv
        .srv
        .store
        .range(
            nomos_store::KeySelector::prefix("/nomos/jobs/"),
            Default::default(),
        )
        .await
        .unwrap();
    assert!(stored.kvs.is_empty(), "nothing is written");
}

#[tokio::test]
async fn names_with_invisible_characters_are_refused_naming_the_field() {
    let srv = Probe::start().await;
    let cases: [(&str, &str, &str); 3] = [
        ("/TaskGroups/0/Tasks/0/Name", "ser\u{200B}ver", "task name"),
        ("/TaskGroups/0/Name", "..", "group name"),
        ("/ID", "w\u{202E}eb", "job id"),
    ];
    for (pointer, name, what) in cases {
        let mut body = register(WEB_HCL);
        *body["Job"].pointer_mut(pointer).unwrap() = json!(name);
        let (code, answer) = srv.send("POST", "/v1/jobs", &body).await;
        assert_eq!(code, 400, "{what}: {answer}");
        let found = answer.as_str().unwrap().lines().any(|d| d.contains(what));
        assert!(found, "{what}: {answer}");
    }
}

#[tokio::test]
async fn a_value_under_a_key_that_is_not_utf8_is_not_read_as_another_job() {
    let srv = Probe::start().await;
    let (code, _) = srv.apply(WEB_HCL).await;
    assert_eq!(code, 200);
    let web = srv.srv.read_json("/nomos/jobs/default/web").await.unwrap();
    let mut key = b"/nomos/jobs/default/w".to_vec();
    key.extend_from_slice(b"\xffeb");
    let value = serde_json::to_vec(&web).unwrap();
    srv.srv
        .store
        .put(key, value, PutOptions::default())
        .await
        .unwrap();

    let (code, list) = srv.get("/v1/jobs").await;
    assert_eq!(code, 200, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["ID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["web"], "the mangled key lists nothing");
    let (code, answer) = srv.get("/v1/job/w%EF%BF%BDeb").await;
    assert_eq!(code, 400, "U+FFFD is no job id's: {answer}");
    let (code, answer) = srv.get("/v1/job/w").await;
    assert_eq!(code, 200, "the prefix finds web alone: {answer}");
    assert_eq!(answer["ID"], "web");
}

/// Bodies no client should send, for every body-taking endpoint.
fn hostile_bodies() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        "",
        "{",
        "}",
        "[]",
        "null",
        "true",
        "0",
        "\"text\"",
        "{\"a\":",
        "{\"a\" 1}",
        "{\"source\": 5}",
        "{\"source\": \"\"}",
        "{\"job\": null}",
        "{\"job\": []}",
        "{\"source\": \"job \\\"\\\" {}\"}",
        "{\"version\": -1}",
        "{\"version\": 1e400}",
        "{\"version\": 18446744073709551616}",
        "{\"deadline_secs\": 18446744073709551615}",
        "{\"enable\": true, \"deadline_secs\": 9223372036854775807}",
        "{\"eligible\": \"yes\"}",
        "{\"groups\": [1, 2]}",
        "{\"pause\": null}",
        "{\"Name\": \"\"}",
        "{\"Name\": \"..\"}",
        "{\"Name\": \"a/b\"}",
        "{\"Name\": \"\\u0000\"}",
        "{\"Name\": \"\\u200b\"}",
        "{\"Name\": 7}",
        "{\"Limits\": {}}",
        "{\"Items\": []}",
        "{\"Items\": {\"k\": 1}}",
        "{\"Type\": \"root\"}",
        "{\"ExpirationTTL\": 1e30}",
        "{\"ExpirationTTL\": -5}",
        "{\"ExpirationTime\": \"tomorrow\"}",
        "{\"ttl_secs\": 18446744073709551615}",
        "{\"node\": \"\"}",
        "{\"token\": \"\", \"node\": \"../x\"}",
        "{\"Rules\": \"namespace {\"}",
        "{\"check_index\": 9223372036854775807, \"source\": \"x\"}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    out.push(b"{\"Name\": \"\xff\"}".to_vec());
    out.push(format!("{{\"Name\": \"{}\"}}", "x".repeat(100_000)).into_bytes());
    out.push(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes());
    out
}

/// Body-taking endpoints, with ids that exist (`web`, `n1`, `web-v1`) and ids that do not.
const BODY_ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/v1/jobs"),
    ("PUT", "/v1/job/web"),
    ("PUT", "/v1/job/nope"),
    ("PUT", "/v1/job/web/plan"),
    ("POST", "/v1/job/web/revert"),
    ("POST", "/v1/node/n1/eligibility"),
    ("POST", "/v1/node/n1/drain"),
    ("POST", "/v1/node/%00/drain"),
    ("POST", "/v1/deployment/promote/web-v1"),
    ("POST", "/v1/deployment/pause/web-v1"),
    ("POST", "/v1/deployment/allocation-health/web-v1"),
    ("POST", "/v1/job/web/evaluate"),
    ("POST", "/v1/node/n1/evaluate"),
    ("POST", "/v1/namespace"),
    ("POST", "/v1/namespace/team-a"),
    ("POST", "/v1/namespace/..%2Fx"),
    ("POST", "/v1/quota"),
    ("POST", "/v1/quota/q"),
    ("PUT", "/v1/var/app/db"),
    ("PUT", "/v1/var/app/db?lock-acquire"),
    ("PUT", "/v1/var/..%2F..?cas=-1"),
    ("POST", "/v1/acl/token"),
    ("POST", "/v1/acl/policy/readers"),
    ("POST", "/v1/acl/policy/.."),
    ("POST", "/v1/acl/role"),
    ("POST", "/v1/node/join-tokens"),
    ("POST", "/v1/node/join"),
];

/// Reads with hostile ids and query strings.
const HOSTILE_READS: &[&str] = &[
    "/v1/jobs?namespace=%00",
    "/v1/jobs?namespace=*&prefix=%FF",
    "/v1/job/%00",
    "/v1/job/..",
    "/v1/job/web?namespace=..",
    "/v1/job/web/versions?namespace=a%2Fb",
    "/v1/job/%E2%80%8B/allocations",
    "/v1/allocations?namespace=%00",
    "/v1/allocation/%00",
    "/v1/client/fs/logs/x?offset=-1",
    "/v1/client/fs/logs/x?offset=99999999999999999999999",
    "/v1/client/fs/cat/x?path=../../etc/passwd",
    "/v1/client/fs/readat/x?path=%00&limit=-1",
    "/v1/node/..",
    "/v1/deployments?namespace=%00",
    "/v1/deployment/..",
    "/v1/deployment/allocations/%00",
    "/v1/job/%00/deployment",
    "/v1/evaluations?namespace=%00&per_page=-1",
    "/v1/evaluation/%00",
    "/v1/evaluation/..?related=true",
    "/v1/evaluation/x/allocations",
    "/v1/job/%00/evaluations",
    "/v1/namespace/%00",
    "/v1/quota/usage/..",
    "/v1/var/..?namespace=%00",
    "/v1/vars?per_page=-1",
    "/v1/vars?per_page=99999999999999999999",
    "/v1/vars?next_token=%FF",
    "/v1/services?namespace=..",
    "/v1/service/%00",
    "/v1/service/web?index=-5&wait=99999999999h",
    "/v1/event/stream?index=-1",
    "/v1/event/stream?index=x",
    "/v1/event/stream?topic=Nope",
    "/v1/client/fs/logs/aaaa?follow=yes&origin=x",
    "/v1/acl/token/%00",
    "/v1/acl/policy/..",
    "/v1/acl/role/%00",
];

/// A cluster with something behind each id the probes use.
async fn seeded() -> Probe {
    let srv = Probe::start().await;
    seed_node(&srv.srv, "n1", true).await;
    let (code, answer) = srv.apply(WEB_HCL).await;
    assert_eq!(code, 200, "{answer}");
    srv.srv
        .put_json(
            "/nomos/deployments/default/web/web-v1",
            &json!({"id": "web-v1", "namespace": "default", "job_id": "web", "job_version": 1,
                "status": "running", "status_description": "",
                "groups": {"api": {"desired_total": 1, "desired_canaries": 1}}}),
        )
        .await;
    srv
}

#[tokio::test]
async fn hostile_bodies_ids_and_queries_never_answer_5xx() {
    let srv = seeded().await;
    for (method, path) in BODY_ENDPOINTS {
        for body in hostile_bodies() {
            let (code, answer) = srv.send_raw(method, path, body.clone()).await;
            let shown = String::from_utf8_lossy(&body);
            let shown: String = shown.chars().take(120).collect();
            assert!(code < 500, "{method} {path} {shown}: {code} {answer}");
        }
    }
    for path in HOSTILE_READS {
        let code = srv.status_of(path).await;
        assert!(code < 500, "GET {path}: {code}");
    }
}

mod random_bodies {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use serde_json::{Map, Value};

    use super::*;

    /// Any JSON value, with the field names the endpoints take mixed in.
    fn any_json() -> impl Strategy<Value = Value> {
        let names = prop_oneof![
            Just("source".to_string()),
            Just("job".to_string()),
            Just("Job".to_string()),
            Just("Submission".to_string()),
            Just("check_index".to_string()),
            Just("Name".to_string()),
            Just("Limits".to_string()),
            Just("Items".to_string()),
            Just("Lock".to_string()),
            Just("version".to_string()),
            Just("deadline_secs".to_string()),
            "[a-zA-Z_]{1,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((names.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    /// Random JSON to every body-taking endpoint, from a fixed seed so a failure replays.
    #[test]
    fn random_json_bodies_never_answer_5xx() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let srv = rt.block_on(seeded());
        let config = Config {
            cases: 48,
            failure_persistence: None,
            ..Config::default()
        };
        let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
        let mut runner = TestRunner::new_with_rng(config, rng);
        runner
            .run(&any_json(), |body| {
                for (method, path) in BODY_ENDPOINTS {
                    let (code, answer) = rt.block_on(srv.send(method, path, &body));
                    prop_assert!(code < 500, "{method} {path} {body}: {code} {answer}");
                }
                Ok(())
            })
            .unwrap();
        rt.block_on(srv.srv.stop());
    }
}
