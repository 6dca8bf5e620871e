//! The fault tests' cluster: a three-member etcd cluster, two `nctl server`s and three
//! `nctl agent`s, each on its own host (a network namespace on a private bridge, see
//! [`super::hosts`]), and a [`Recorder`] that watches the whole store and keeps writing
//! acknowledged keys while a fault runs, for the history checker (`nomos_e2e::history`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nomos_e2e::history::{Ack, Observations, Observed};
use nomos_store::test_util::{EtcdCluster, MemberHost};
use nomos_store::{
    EtcdConfig, EtcdStore, EventKind, KeySelector, PutOptions, RangeOptions, Store, WatchOptions,
};
use serde_json::Value;

use super::hosts::{Bridge, Host};
use super::{nctl_bin, Cluster, Mode};

/// API port of every server (each has a host of its own).
const API_PORT: u16 = 4747;

/// One `nctl agent` on a host of its own; killed and purged (its tasks stopped) when dropped.
pub struct HaAgent {
    pub name: String,
    child: Option<Child>,
    data_dir: PathBuf,
    pub log_path: PathBuf,
}

impl HaAgent {
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for HaAgent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new(nctl_bin())
            .args(["agent", "purge", "--data-dir"])
            .arg(&self.data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The whole cluster. Fields drop in order: agents (stopping their tasks), servers, etcd,
/// then the hosts and the bridge.
pub struct HaCluster {
    pub agents: Vec<HaAgent>,
    pub servers: Vec<Cluster>,
    pub etcd: EtcdCluster,
    pub agent_hosts: Vec<Host>,
    pub server_hosts: Vec<Host>,
    pub etcd_hosts: Vec<Host>,
    pub bridge: Bridge,
    pub dir: tempfile::TempDir,
}

impl HaCluster {
    /// Starts everything and waits until the three nodes are ready.
    pub fn start(name: &str) -> HaCluster {
        let bridge = Bridge::create();
        let etcd_hosts: Vec<Host> = (0..3).map(|_| bridge.host()).collect();
        let server_hosts: Vec<Host> = (0..2).map(|_| bridge.host()).collect();
        let agent_hosts: Vec<Host> = (0..3).map(|_| bridge.host()).collect();
        let etcd = EtcdCluster::start_on(
            etcd_hosts
                .iter()
                .map(|h| MemberHost {
                    ip: h.ip.clone(),
                    netns: Some(h.netns.clone()),
                })
                .collect(),
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = HaCluster {
            agents: Vec::new(),
            servers: Vec::new(),
            etcd,
            agent_hosts,
            server_hosts,
            etcd_hosts,
            bridge,
            dir,
        };
        for k in 0..2 {
            let server = cluster.start_server(name, k);
            cluster.servers.push(server);
        }
        for k in 0..3 {
            let agent = cluster.start_agent(name, k);
            cluster.agents.push(agent);
        }
        let names: Vec<String> = cluster.agents.iter().map(|a| a.name.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        cluster.servers[0].wait_nodes_ready(&names);
        cluster
    }

    fn endpoints(&self) -> String {
        self.etcd.endpoints().join(",")
    }

    fn start_server(&self, name: &str, k: usize) -> Cluster {
        let host = &self.server_hosts[k];
        let endpoints = self.endpoints();
        let keyring = self.dir.path().join("keyring.key");
        let http_addr = format!("{}:{API_PORT}", host.ip);
        let netns = host.netns.clone();
        Cluster::start_prepared(&format!("{name}-s{k}"), Mode::Server, move |c| {
            c.netns = Some(netns);
            c.http_addr = http_addr.clone();
            vec![
                "server".into(),
                "--data-dir".into(),
                c.data_dir.display().to_string(),
                "--http-addr".into(),
                http_addr,
                "--etcd-endpoints".into(),
                endpoints,
                "--keyring-key-file".into(),
                keyring.display().to_string(),
                // A test cluster on a private bridge: no TLS, so say so.
                "--insecure".into(),
            ]
        })
    }

    fn start_agent(&self, name: &str, k: usize) -> HaAgent {
        let host = &self.agent_hosts[k];
        let node = format!("{name}-a{k}");
        let data_dir = self.dir.path().join(format!("agent-{k}"));
        let log_path = self.dir.path().join(format!("agent-{k}.log"));
        let log = std::fs::File::create(&log_path).expect("agent log");
        let child = Command::new("ip")
            .args(["netns", "exec", &host.netns])
            .arg(nctl_bin())
            .args(["agent", "--no-docker", "--enable-raw-exec", "--insecure"])
            .args(["--name", &node, "--store-endpoints", &self.endpoints()])
            .args(["--http-addr", &format!("{}:4749", host.ip)])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nctl agent");
        HaAgent {
            name: node,
            child: Some(child),
            data_dir,
            log_path,
        }
    }

    /// Whether server `k` leads the controllers (its `/metrics`); false when it cannot be reached.
    pub fn leads(&self, k: usize) -> bool {
        http_get(&self.server_hosts[k].ip, API_PORT, "/metrics")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("nomos_controller_leader") && l.ends_with(" 1"))
    }

    /// The server that leads, once exactly one does (waits up to 60 s).
    pub fn leading_server(&self) -> usize {
        let mut last = String::new();
        for _ in 0..240 {
            let (a, b) = (self.leads(0), self.leads(1));
            if a != b {
                return if a { 0 } else { 1 };
            }
            last = format!("server 0 leads: {a}, server 1 leads: {b}");
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("no single leading server after 60 s: {last}");
    }

    /// Logs of every process, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (k, s) in self.servers.iter().enumerate() {
            out.push_str(&format!("--- server {k}\n{}\n", s.log_tail()));
        }
        for a in &self.agents {
            out.push_str(&format!("--- agent {}\n{}\n", a.name, a.log_tail()));
        }
        out
    }

    /// Each running allocation of `job` (seen through server `via`) with its task's pids.
    pub fn task_pids(&self, via: usize, job: &str) -> BTreeMap<String, Vec<i32>> {
        self.servers[via]
            .running(job)
            .iter()
            .map(|a| {
                let id = a["ID"].as_str().unwrap_or_default().to_string();
                let pids = shell_pids(&id);
                (id, pids)
            })
            .collect()
    }

    /// Waits until `job` has exactly `count` running allocations with distinct names, seen
    /// through server `via`.
    pub fn wait_converged(&self, via: usize, job: &str, count: usize) -> Vec<Value> {
        let mut last = String::new();
        for _ in 0..480 {
            let running = self.servers[via].running(job);
            let mut names: Vec<&str> = running
                .iter()
                .map(|a| a["Name"].as_str().unwrap_or_default())
                .collect();
            names.sort_unstable();
            names.dedup();
            if running.len() == count && names.len() == count {
                return running;
            }
            last = format!("{} running, names {names:?}", running.len());
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "job {job} did not converge to {count} running within 120 s: {last}\n{}",
            self.logs()
        );
    }
}

/// The long-lived shell of an allocation's loop task: its `sleep 1` children come and go, and
/// show as `/bin/sh` for a moment after each fork, so only a shell whose parent is not one of
/// the allocation's shells counts.
pub fn shell_pids(alloc_id: &str) -> Vec<i32> {
    let shells: Vec<i32> = super::pids_of_alloc(alloc_id)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with("/bin/sh"))
        })
        .collect();
    shells
        .iter()
        .copied()
        .filter(|p| parent_of(*p).is_none_or(|parent| !shells.contains(&parent)))
        .collect()
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A plain HTTP GET; the body, or `None` when nothing answers within a few seconds.
pub fn http_get(ip: &str, port: u16, path: &str) -> Option<String> {
    let addr = format!("{ip}:{port}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Watches the whole store and writes an acknowledged key every 200 ms until stopped.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(Observations, Vec<String>)>>,
}

impl Recorder {
    pub fn start(endpoints: Vec<String>) -> Recorder {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(record(endpoints, stopping, ready_tx))
        });
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the recorder's watch started");
        Recorder {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops writing, reads the final state, waits for the watch to catch up, and returns
    /// what was observed and the writes that failed.
    pub fn finish(mut self) -> (Observations, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("the recorder panicked")
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn record(
    endpoints: Vec<String>,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<()>,
) -> (Observations, Vec<String>) {
    let store = EtcdStore::connect(EtcdConfig::new(endpoints))
        .await
        .expect("the recorder connects");
    let start = store.status().await.expect("status").revision;
    let options = WatchOptions {
        start_revision: start + 1,
        ..Default::default()
    };
    let mut watch = store
        .watch(KeySelector::Prefix(Vec::new()), options)
        .await
        .expect("the recorder's watch");
    let _ = ready.send(());
    let mut seen = Observations {
        start_revision: start,
        ..Default::default()
    };
    let mut failures = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            event = watch.next() => observe(&mut seen, event),
            _ = tick.tick() => {
                let key = format!("/nomos-test/acks/{n:08}").into_bytes();
                n += 1;
                match store.put(key.clone(), b"ack".to_vec(), PutOptions::default()).await {
                    Ok(put) => seen.acks.push(Ack { key, revision: put.revision }),
                    Err(e) => failures.push(format!("write {n} failed: {e}")),
                }
            }
        }
    }
    let all = store
        .range(KeySelector::Prefix(Vec::new()), RangeOptions::default())
        .await
        .expect("the final read");
    seen.final_revision = all.revision;
    seen.final_keys = all
        .kvs
        .iter()
        .map(|kv| (kv.key.clone(), kv.mod_revision))
        .collect();
    // A marker after the final read: once the watch shows it, it has shown everything before.
    let marker = store
        .put(
            b"/nomos-test/marker".to_vec(),
            b"end".to_vec(),
            PutOptions::default(),
        )
        .await
        .expect("the marker write")
        .revision;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !seen.events.iter().any(|e| e.revision >= marker) {
        match tokio::time::timeout_at(deadline, watch.next()).await {
            Ok(event) => observe(&mut seen, event),
            Err(_) => panic!("the recorder's watch did not reach revision {marker} in 60 s"),
        }
    }
    (seen, failures)
}

fn observe(
    seen: &mut Observations,
    event: Option<nomos_store::Result<nomos_store::WatchResponse>>,
) {
    let response = match event {
        Some(Ok(response)) => response,
        Some(Err(e)) => panic!("the recorder's watch failed: {e}"),
        None => panic!("the recorder's watch ended"),
    };
    for e in response.events {
        seen.events.push(Observed {
            revision: e.kv.mod_revision,
            deleted: e.kind == EventKind::Delete,
            key: e.kv.key,
        });
    }
}
