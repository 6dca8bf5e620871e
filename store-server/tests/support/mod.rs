//! Shared test helpers: a store server on a free port over an in-memory embedded store, a real
//! etcd beside it, and a runner for the real `etcdctl` binary.

#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nomos_store::test_util::EtcdProcess;
use nomos_store::{EmbeddedOptions, EmbeddedStore, Store};
use nomos_store_server::{StoreServer, StoreServerConfig, StoreServerError};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// A running store server; stopped when dropped.
pub struct TestServer {
    pub endpoint: String,
    pub store: Arc<dyn Store>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), StoreServerError>>>,
}

impl TestServer {
    /// Serves a fresh in-memory embedded store (progress notifications every second).
    pub async fn embedded() -> TestServer {
        let options = EmbeddedOptions {
            progress_notify_interval: Duration::from_secs(1),
            ..Default::default()
        };
        TestServer::start(Arc::new(EmbeddedStore::in_memory_with(options))).await
    }

    pub async fn start(store: Arc<dyn Store>) -> TestServer {
        let mut config = StoreServerConfig::new("127.0.0.1:0".parse().unwrap());
        // The name the test etcd processes use, so both list the same member name.
        config.name = "nomos-test".to_string();
        TestServer::start_with(config, store).await
    }

    pub async fn start_with(config: StoreServerConfig, store: Arc<dyn Store>) -> TestServer {
        let server = StoreServer::bind(config)
            .await
            .expect("binding the store server");
        let endpoint = server.client_url();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(store.clone(), async move {
            let _ = stopped.await;
        }));
        TestServer {
            endpoint,
            store,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops serving and waits for the server to return.
    pub async fn shutdown(mut self) -> Result<(), StoreServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("server task");
        task.await.expect("server task panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A real etcd (the reference); panics clearly when `/usr/bin/etcd` is missing.
pub async fn real_etcd() -> EtcdProcess {
    tokio::task::spawn_blocking(EtcdProcess::start)
        .await
        .expect("starting etcd")
}

fn check_etcdctl() {
    assert!(
        Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing: these tests run the real etcdctl (Debian's `etcd-client` package)"
    );
}

/// What one etcdctl run printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `etcdctl --endpoints=<endpoint> <args>` with `stdin`, waiting for it to exit.
pub async fn etcdctl(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    check_etcdctl();
    let mut cmd = tokio::process::Command::new(ETCDCTL);
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--dial-timeout=5s")
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {ETCDCTL}: {e}"));
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input.as_bytes())
            .await
            .expect("writing etcdctl's stdin");
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("etcdctl {args:?} did not finish within 30 s"))
        .expect("waiting for etcdctl");
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a long-lived `etcdctl watch ...` and returns the first `lines` lines of its stdout (and
/// whatever it wrote to stderr if it exited first). `during` runs while the watch is open.
pub async fn etcdctl_watch<F, Fut>(
    endpoint: &str,
    args: &[&str],
    lines: usize,
    during: F,
) -> (Vec<String>, String)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    check_etcdctl();
    let mut child = tokio::process::Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("watch")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {ETCDCTL}: {e}"));
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = child.stderr.take().expect("stderr");
    during().await;
    let mut got = Vec::new();
    let read = async {
        while got.len() < lines {
            match stdout
                .next_line()
                .await
                .expect("reading etcdctl watch output")
            {
                Some(line) => got.push(line),
                None => break,
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .is_err()
    {
        panic!("etcdctl watch {args:?} printed only {got:?} within 20 s, expected {lines} lines");
    }
    let mut err = String::new();
    if got.len() < lines {
        use tokio::io::AsyncReadExt;
        let _ = tokio::time::timeout(Duration::from_secs(5), stderr.read_to_string(&mut err)).await;
    }
    let _ = child.kill().await;
    (got, err)
}
