//! `/metrics` (the server's and the controllers' metrics) passes `promtool check metrics` (Debian's `prometheus` package ships promtool).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

#[tokio::test]
async fn metrics_pass_promtool_check_metrics() {
    // The controllers register their metrics into the same registry, as in `nctl dev`.
    let srv = TestServer::start_with(
        |s| {
            {
                let mut reg = s.registry.lock().unwrap();
                drop(nomos_controllers::run(
                    Default::default(),
                    s.store.clone(),
                    &mut reg,
                    async {},
                ));
            }
            s
        },
        nomos_server::DEFAULT_BODY_LIMIT,
    )
    .await;
    srv.get("/v1/jobs").await;
    srv.get("/v1/job/missing").await;
    apply_source(&srv, "web.hcl", WEB_HCL).await;
    let text = srv
        .client
        .get(srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    srv.stop().await;

    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool must be installed (Debian package `prometheus`): {e}")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\nstdout: {}\nstderr: {}\nmetrics:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
