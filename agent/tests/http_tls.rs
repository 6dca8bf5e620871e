//! The agent's HTTP endpoint with TLS on (`tls { rpc = true }`): it registers an `https://`
//! address and serves logs and metrics only to callers presenting a certificate signed by the
//! cluster's CA; a caller without one, or with one of another CA, is refused in the handshake.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use nomos_api::{ClientStatus, JobType};
use nomos_store::{EmbeddedStore, Store};
use nomos_tls::generate::{self, CertRequest, Role};
use nomos_tls::{ClientTls, PeerName, ServerTls};

/// A CA with a `-client` certificate (what the agent serves with) and a `-server` one (what a
/// server calls agents with), under `dir/<prefix>-*.pem`.
fn make_certs(dir: &Path, prefix: &str) {
    let ca = generate::ca(30).unwrap();
    let file = |name: &str| dir.join(format!("{prefix}-{name}.pem"));
    generate::write_new(&ca, &file("ca"), &file("ca-key")).unwrap();
    for role in [Role::Client, Role::Server] {
        let pair = generate::cert(&ca, &CertRequest::new(role)).unwrap();
        let name = role.as_str();
        generate::write_new(&pair, &file(name), &file(&format!("{name}-key"))).unwrap();
    }
}

fn pem(dir: &Path, prefix: &str, name: &str) -> PathBuf {
    dir.join(format!("{prefix}-{name}.pem"))
}

/// A client trusting `ca`'s CA (checking only the chain, as servers do without
/// `verify_server_hostname`), presenting the `-server` certificate of `cert` when given.
fn client(dir: &Path, ca: &str, cert: Option<&str>) -> reqwest::Client {
    let tls = ClientTls {
        ca_file: Some(pem(dir, ca, "ca")),
        cert_file: cert.map(|p| pem(dir, p, "server")),
        key_file: cert.map(|p| pem(dir, p, "server-key")),
        peer_name: PeerName::ChainOnly,
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(nomos_tls::client_config(&tls).unwrap())
        .build()
        .unwrap()
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_the_endpoint_serves_only_callers_holding_a_certificate_of_the_ca() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path();
    make_certs(certs, "ours");
    make_certs(certs, "theirs");
    let mut cfg = test_config("t1", dir.path());
    let addr = free_addr();
    cfg.http_addr = Some(addr);
    cfg.http_tls = Some(ServerTls {
        cert_file: pem(certs, "ours", "client"),
        key_file: pem(certs, "ours", "client-key"),
        client_ca: Some(pem(certs, "ours", "ca")),
    });
    let agent = RunningAgent::start(cfg, store.clone());
    let job = job(
        "talk",
        JobType::Service,
        vec![raw_task("t", "sh", &["-c", "echo hello; exec sleep 300"])],
    );
    place(&*store, &alloc("t-1", "t1", &job, 0), &job).await;
    status_where(&store, "t1", "t-1", "running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    let node: nomos_api::Node = serde_json::from_slice(
        &get(&*store, &nomos_store::keys::node("t1"))
            .await
            .expect("the node registered"),
    )
    .unwrap();
    let base = format!("https://{addr}");
    assert_eq!(node.http_addr, base, "the node registers an https address");

    let logs = format!("{base}/v1/client/fs/logs/t-1?task=t&type=stdout");
    let metrics = format!("{base}/metrics");
    let trusted = client(certs, "ours", Some("ours"));
    let body = eventually("the log to hold the task's output", || async {
        let text = trusted.get(&logs).send().await.ok()?.text().await.ok()?;
        text.contains("hello").then_some(text)
    })
    .await;
    assert_eq!(body, "hello\n");
    let resp = trusted
        .get(&metrics)
        .send()
        .await
        .expect("metrics over TLS");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("nomos_agent_tasks_running 1"), "{text}");

    for (who, caller) in [
        ("no certificate", client(certs, "ours", None)),
        (
            "another CA's certificate",
            client(certs, "ours", Some("theirs")),
        ),
    ] {
        for url in [&logs, &metrics] {
            let refused = caller.get(url).send().await;
            assert!(refused.is_err(), "{who} is refused {url}: {refused:?}");
        }
    }
    // Plain HTTP gets no answer either.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP is not served"
    );
    agent.shutdown().await;
    nomos_agent::purge(dir.path().join("t1")).await.unwrap();
}
