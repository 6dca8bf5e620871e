//! The service catalogue end to end below the agents: allocations, statuses and job versions in
//! the store, the real services loop deriving `/nomos/services/`, and the Nomad-shaped reads
//! over HTTP (shapes, filter, choose, namespaces, blocking queries, deletes, bad input).

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use nomos_api::{
    build, AllocStatus, AllocatedPort, Allocation, ClientStatus, DesiredStatus, Service,
};
use nomos_controllers::loops::{self, Ctx, LoopMetrics, LoopName, LoopsConfig};
use nomos_store::keys;
use serde_json::Value;

fn web_job(namespace: &str) -> nomos_api::Job {
    let mut g = build::group("g", 2);
    g.tasks = vec![build::task("t", 100, 64)];
    g.services = vec![Service {
        name: "web".into(),
        port: "http".into(),
        provider: "nomad".into(),
        tags: vec!["v1".into(), format!("ns-{namespace}")],
        ..Default::default()
    }];
    let mut job = build::job("web").with_group(g).build();
    job.namespace = namespace.into();
    job
}

fn alloc(id: &str, namespace: &str, port: u16) -> Allocation {
    Allocation {
        id: id.into(),
        namespace: namespace.into(),
        job_id: "web".into(),
        task_group: "g".into(),
        name: "web.g[0]".into(),
        node: "n1".into(),
        desired_status: DesiredStatus::Run,
        ports: vec![AllocatedPort {
            label: "http".into(),
            value: port,
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn put<T: serde::Serialize>(srv: &TestServer, key: &str, v: &T) {
    srv.put_json(key, &serde_json::to_value(v).unwrap()).await;
}

async fn set_status(srv: &TestServer, id: &str, client_status: ClientStatus) {
    let st = AllocStatus {
        alloc_id: id.into(),
        client_status,
        ..Default::default()
    };
    put(srv, &keys::alloc_status("n1", id), &st).await;
}

/// Two running instances of `web` in `default`, one in `team-a`, before the loop has run.
async fn seed(srv: &TestServer) {
    let node = build::node("n1")
        .address("10.1.2.3")
        .datacenter("dc1")
        .build();
    put(srv, &keys::node("n1"), &node).await;
    for ns in ["default", "team-a"] {
        put(srv, &keys::job_version(ns, "web", 0), &web_job(ns)).await;
    }
    for (id, ns, port) in [
        ("a1", "default", 20001),
        ("a2", "default", 20002),
        ("a3", "team-a", 20003),
    ] {
        put(srv, &keys::alloc("n1", id), &alloc(id, ns, port)).await;
        set_status(srv, id, ClientStatus::Running).await;
    }
}

/// One pass of the real services loop (unfenced, as `nctl plan` reads).
async fn services_pass(srv: &TestServer) {
    let mut registry = prometheus_client::registry::Registry::default();
    let ctx = Ctx {
        store: srv.store.clone(),
        leadership: None,
        config: LoopsConfig::default(),
        metrics: LoopMetrics::register(&mut registry),
        name: LoopName::Services,
    };
    loops::pass(&ctx).await.expect("services pass");
}

async fn get_indexed(srv: &TestServer, path: &str) -> (u16, Value, i64) {
    let resp = srv.client.get(srv.url(path)).send().await.expect("GET");
    let index = resp
        .headers()
        .get("x-nomad-index")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(-1);
    let (code, body) = common::decode(resp).await;
    (code, body, index)
}

fn ports(list: &Value) -> Vec<i64> {
    let mut p: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Port"].as_i64().unwrap())
        .collect();
    p.sort();
    p
}

#[tokio::test]
async fn running_allocations_are_listed_in_nomads_shapes() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    let (code, empty, _) = get_indexed(&srv, "/v1/services").await;
    assert_eq!(
        (code, empty),
        (200, serde_json::json!([])),
        "nothing registered before the loop"
    );
    services_pass(&srv).await;

    let (code, list, index) = get_indexed(&srv, "/v1/services").await;
    assert_eq!(code, 200, "{list}");
    assert!(index > 1, "X-Nomad-Index: {index}");
    assert_eq!(
        list,
        serde_json::json!([{"Namespace": "default",
            "Services": [{"ServiceName": "web", "Tags": ["ns-default", "v1"]}]}])
    );
    let (_, all, _) = get_indexed(&srv, "/v1/services?namespace=*").await;
    let namespaces: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, vec!["default", "team-a"]);

    let (code, web, _) = get_indexed(&srv, "/v1/service/web").await;
    assert_eq!(code, 200, "{web}");
    assert_eq!(ports(&web), vec![20001, 20002]);
    let one = &web[0];
    for field in [
        "ID",
        "ServiceName",
        "Namespace",
        "NodeID",
        "Datacenter",
        "JobID",
        "AllocID",
        "Tags",
        "Address",
        "Port",
        "CreateIndex",
        "ModifyIndex",
    ] {
        assert!(one.get(field).is_some(), "{field} missing: {one}");
    }
    assert_eq!(one["ID"], "_nomad-task-a1-group-g-web-http");
    assert_eq!(
        (one["Address"].as_str(), one["Datacenter"].as_str()),
        (Some("10.1.2.3"), Some("dc1"))
    );
    let (_, team, _) = get_indexed(&srv, "/v1/service/web?namespace=team-a").await;
    assert_eq!(ports(&team), vec![20003]);
    let (_, everywhere, _) = get_indexed(&srv, "/v1/service/web?namespace=*").await;
    assert_eq!(ports(&everywhere), vec![20001, 20002, 20003]);
    let (code, none, _) = get_indexed(&srv, "/v1/service/db").await;
    assert_eq!((code, none), (200, serde_json::json!([])));
}

/// What Nomad's Go API client (Prometheus's `nomad_sd_configs`) sends and parses: its query
/// parameters (`region`, `namespace`, an empty `stale`) and, on every answer, `X-Nomad-Index`
/// and `X-Nomad-LastContact` as unsigned integers (a missing one fails the query) and
/// `X-Nomad-KnownLeader`.
#[tokio::test]
async fn reads_carry_the_query_headers_nomads_go_client_parses() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    services_pass(&srv).await;
    for path in [
        "/v1/services?namespace=default&region=global&stale=",
        "/v1/service/web?namespace=default&region=global&stale=",
    ] {
        let resp = srv.client.get(srv.url(path)).send().await.expect("GET");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .unwrap_or_else(|| panic!("{path}: no {name} in {:?}", resp.headers()))
        };
        let index: u64 = header("X-Nomad-Index").parse().expect("X-Nomad-Index");
        assert!(index > 1, "{path}: X-Nomad-Index {index}");
        let last: u64 = header("X-Nomad-LastContact")
            .parse()
            .expect("X-Nomad-LastContact");
        assert_eq!(last, 0, "{path}");
        assert_eq!(header("X-Nomad-KnownLeader"), "true", "{path}");
        let (code, body) = common::decode(resp).await;
        assert_eq!(code, 200, "{path}: {body}");
        assert!(!body.as_array().unwrap().is_empty(), "{path}: {body}");
    }
}

#[tokio::test]
async fn filter_and_choose_narrow_the_instances() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    services_pass(&srv).await;
    let q = |f: &str| format!("/v1/service/web?namespace=*&filter={}", urlencode(f));
    let (code, tagged, _) = get_indexed(&srv, &q(r#"Tags contains "ns-team-a""#)).await;
    assert_eq!(code, 200, "{tagged}");
    assert_eq!(ports(&tagged), vec![20003]);
    let (_, by_port, _) = get_indexed(&srv, &q("Port == 20002 or AllocID == a1")).await;
    assert_eq!(ports(&by_port), vec![20001, 20002]);
    let (code, err, _) = get_indexed(&srv, &q("Tags contains")).await;
    assert_eq!(code, 400, "{err}");
    assert!(err.to_string().contains("filter"), "{err}");

    let (_, a, _) = get_indexed(&srv, "/v1/service/web?namespace=*&choose=2|client-1").await;
    let (_, b, _) = get_indexed(&srv, "/v1/service/web?namespace=*&choose=2|client-1").await;
    assert_eq!(a.as_array().unwrap().len(), 2);
    assert_eq!(a, b, "the same key chooses the same instances");
    let (code, _, _) = get_indexed(&srv, "/v1/service/web?choose=two").await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn a_services_instances_come_in_pages() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    services_pass(&srv).await;
    let resp = reqwest::get(format!(
        "{}/v1/service/web?namespace=*&per_page=2",
        srv.base
    ))
    .await
    .expect("GET");
    let token = resp.headers()["x-nomad-nexttoken"]
        .to_str()
        .unwrap()
        .to_string();
    let first: Value = resp.json().await.unwrap();
    let url = format!(
        "/v1/service/web?namespace=*&per_page=2&next_token={}",
        urlencode(&token)
    );
    let (code, second, _) = get_indexed(&srv, &url).await;
    assert_eq!(code, 200, "{second}");
    let mut all = ports(&first);
    all.extend(ports(&second));
    all.sort();
    assert_eq!(all, vec![20001, 20002, 20003], "{first} then {second}");
    let (code, err, _) = get_indexed(&srv, "/v1/service/web?per_page=many").await;
    assert_eq!(code, 400, "{err}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_blocking_query_returns_when_the_catalogue_changes_or_its_wait_ends() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    services_pass(&srv).await;
    let (_, _, index) = get_indexed(&srv, "/v1/service/web").await;

    // Nothing changes: the query waits about its `wait`, and the index stays.
    let started = Instant::now();
    let (code, same, same_index) =
        get_indexed(&srv, &format!("/v1/service/web?index={index}&wait=1s")).await;
    let waited = started.elapsed();
    assert_eq!(code, 200);
    assert!(
        waited >= Duration::from_millis(900),
        "returned after {waited:?}"
    );
    assert_eq!((ports(&same), same_index), (vec![20001, 20002], index));

    // A write elsewhere in the store does not wake it; a registration change does.
    let base = srv.base.clone();
    let waiter = tokio::spawn(async move {
        let resp = reqwest::get(format!("{base}/v1/service/web?index={index}&wait=20s"))
            .await
            .expect("GET");
        let idx: i64 = resp.headers()["x-nomad-index"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        (idx, resp.json::<Value>().await.unwrap(), Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.put_json("/nomos/unrelated", &serde_json::json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "an unrelated write woke the query");
    set_status(&srv, "a2", ClientStatus::Complete).await;
    services_pass(&srv).await;
    let changed_at = Instant::now();
    let (new_index, list, returned_at) = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the query returns once the catalogue changes")
        .unwrap();
    assert!(returned_at.duration_since(changed_at) < Duration::from_secs(2));
    assert!(new_index > index, "{new_index} > {index}");
    assert_eq!(
        ports(&list),
        vec![20001],
        "the completed allocation is gone"
    );

    let (code, err, _) =
        get_indexed(&srv, &format!("/v1/service/web?index={index}&wait=soon")).await;
    assert_eq!(code, 400, "{err}");
}

#[tokio::test]
async fn a_deleted_registration_comes_back_while_its_allocation_runs() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    services_pass(&srv).await;
    let (_, _, before) = get_indexed(&srv, "/v1/service/web").await;
    let (code, _) = srv
        .delete("/v1/service/web/_nomad-task-a1-group-g-web-http")
        .await;
    assert_eq!(code, 200);
    let (_, after, index) = get_indexed(&srv, "/v1/service/web").await;
    assert_eq!(ports(&after), vec![20002]);
    assert!(index > before, "a delete moves the index");
    let (code, _) = srv.delete("/v1/service/web/no-such-id").await;
    assert_eq!(code, 404);
    services_pass(&srv).await;
    let (_, back, _) = get_indexed(&srv, "/v1/service/web").await;
    assert_eq!(ports(&back), vec![20001, 20002]);

    // The job is stopped: every instance goes.
    for id in ["a1", "a2"] {
        let mut a = alloc(id, "default", 0);
        a.desired_status = DesiredStatus::Stop;
        put(&srv, &keys::alloc("n1", id), &a).await;
    }
    services_pass(&srv).await;
    let (_, gone, _) = get_indexed(&srv, "/v1/service/web").await;
    assert_eq!(gone, serde_json::json!([]));
}

#[tokio::test]
async fn a_registration_that_does_not_decode_is_skipped_and_bad_names_are_refused() {
    let srv = TestServer::start().await;
    seed(&srv).await;
    services_pass(&srv).await;
    srv.put_raw(&keys::service("default", "web", "junk"), b"{not json")
        .await;
    let (code, web, _) = get_indexed(&srv, "/v1/service/web").await;
    assert_eq!((code, ports(&web)), (200, vec![20001, 20002]));
    let (code, _, _) = get_indexed(&srv, "/v1/service/web_api").await;
    assert_eq!(code, 400);
    // The loop removes what it did not write.
    services_pass(&srv).await;
    assert!(srv
        .read_json(&keys::service("default", "web", "junk"))
        .await
        .is_none());
}
