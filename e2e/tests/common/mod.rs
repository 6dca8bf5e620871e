//! The end-to-end harness (shared by every test file): runs the real `nctl dev` (or `nctl server`
//! with separate `nctl agent` processes, each with its own data dir and node name) in a temp dir on
//! free ports and drives it with the real `nctl`. Every wait is bounded and fails with what it was waiting for and what
//! it saw last.
//!
//! The binary: this package compiles nctl's own sources as its binary `nctl-e2e` (see
//! `Cargo.toml`), so `cargo test -p nomos-e2e` always runs the current code; `NCTL_BIN` points
//! the tests at another build.

#![allow(dead_code)]

pub mod browser;
pub mod files;
pub mod ha;
pub mod hosts;
pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The workspace root (this crate's parent).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The `nctl` binary under test: `NCTL_BIN`, or this package's build of nctl's sources.
pub fn nctl_bin() -> PathBuf {
    match std::env::var_os("NCTL_BIN") {
        Some(p) => {
            let bin = PathBuf::from(p);
            assert!(bin.exists(), "NCTL_BIN={} does not exist", bin.display());
            bin
        }
        None => PathBuf::from(env!("CARGO_BIN_EXE_nctl-e2e")),
    }
}

/// A free loopback TCP port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .unwrap()
        .port()
}

/// A distinct dynamic-port range per cluster in this process, so parallel tests never collide.
fn port_range() -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slot = NEXT.fetch_add(1, Ordering::SeqCst);
    let base = 33000 + (std::process::id() % 50) as u16 * 400 + slot * 40;
    (base, base + 39)
}

/// What runs the API and the controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `nctl dev`: store, API, controllers and a local agent in one process.
    Dev,
    /// `nctl server` on its embedded store, served on a fixed store port so agents reconnect
    /// after a restart; no local agent.
    Server,
}

/// One `nctl dev` or `nctl server` process and the temp dir it lives in.
pub struct Cluster {
    pub mode: Mode,
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub addr: String,
    pub node: String,
    /// The store's etcd-protocol endpoint (`nctl agent --store-endpoints`).
    pub store_url: String,
    /// Where `nctl dev` serves DNS (its banner's `DNS:` line; empty when off or not dev).
    pub dns_addr: String,
    bin: PathBuf,
    pub http_addr: String,
    ports: (u16, u16),
    child: Option<Child>,
    log_path: PathBuf,
    /// Agents started so far (each gets its own port range).
    agents: AtomicU16,
    /// `nctl` arguments replacing the mode's own command line ([`Cluster::start_custom`]).
    custom_args: Vec<String>,
    /// What the process printed on stdout after its address, and the thread collecting it.
    stdout: Arc<Mutex<Vec<String>>>,
    stdout_reader: Option<std::thread::JoinHandle<()>>,
    /// Environment every `nctl` run against this cluster gets (e.g. `NOMOS_CACERT`), set per
    /// command rather than process-wide since tests run in parallel.
    pub env: Vec<(String, String)>,
    /// Environment the cluster's own process and the agents it starts get (e.g. a `PATH` with
    /// a fake `nvidia-smi`), set with [`Cluster::start_prepared`].
    pub process_env: Vec<(String, String)>,
    /// The network namespace the process runs in ([`hosts::Host`]), if not this host's.
    pub netns: Option<String>,
}

impl Cluster {
    /// Starts `nctl dev --no-example` on a free API port and waits until the API and the node
    /// are ready.
    pub fn start(name: &str) -> Cluster {
        Cluster::start_mode(name, Mode::Dev, |_| vec![])
    }

    /// Starts `nctl server` on its embedded store (no local agent; add nodes with
    /// [`Cluster::start_agent`]) and waits until the API answers.
    pub fn start_server(name: &str) -> Cluster {
        Cluster::start_mode(name, Mode::Server, |_| vec![])
    }

    /// Starts `nctl server --acl-enabled` on its embedded store, serving the store on a free
    /// port for agents to join ([`Cluster::start_agent`]); ACLs are not bootstrapped yet.
    pub fn start_acl_server(name: &str) -> Cluster {
        Cluster::start_custom(name, Mode::Server, |c| {
            let store_port = c.store_url.rsplit(':').next().unwrap_or_default();
            [
                "server",
                "--acl-enabled",
                "--data-dir",
                &c.data_dir.display().to_string(),
                "--http-addr",
                &c.http_addr,
                "--store-addr",
                &format!("127.0.0.1:{store_port}"),
                "--dns-addr",
                "127.0.0.1:0",
            ]
            .map(String::from)
            .to_vec()
        })
    }

    /// Starts `nctl ARGS`, ARGS being what `args` makes of the new cluster (its temp dir, data
    /// dir, node name, API address and port range are set), instead of the mode's own command
    /// line. With [`Mode::Dev`] it waits for the node named `node` to be ready.
    pub fn start_custom(
        name: &str,
        mode: Mode,
        args: impl FnOnce(&Cluster) -> Vec<String>,
    ) -> Cluster {
        Cluster::start_mode(name, mode, |c| args(c))
    }

    /// As [`Cluster::start_custom`], but `prepare` may also change the cluster before it starts,
    /// e.g. set [`Cluster::env`] for the readiness checks and every later `nctl`.
    pub fn start_prepared(
        name: &str,
        mode: Mode,
        prepare: impl FnOnce(&mut Cluster) -> Vec<String>,
    ) -> Cluster {
        Cluster::start_mode(name, mode, prepare)
    }

    fn start_mode(
        name: &str,
        mode: Mode,
        args: impl FnOnce(&mut Cluster) -> Vec<String>,
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let node = format!("e2e-{name}-{}", std::process::id());
        let store_url = match mode {
            Mode::Dev => String::new(),
            Mode::Server => format!("http://127.0.0.1:{}", free_port()),
        };
        let mut c = Cluster {
            mode,
            log_path: dir.path().join("dev.log"),
            dir,
            data_dir,
            addr: String::new(),
            node,
            store_url,
            dns_addr: String::new(),
            bin: nctl_bin(),
            http_addr: format!("127.0.0.1:{}", free_port()),
            ports: port_range(),
            child: None,
            agents: AtomicU16::new(0),
            custom_args: vec![],
            stdout: Arc::default(),
            stdout_reader: None,
            env: vec![],
            process_env: vec![],
            netns: None,
        };
        c.custom_args = args(&mut c);
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("dev log");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        match self.mode {
            _ if !self.custom_args.is_empty() => {
                cmd.args(&self.custom_args);
            }
            Mode::Dev => {
                cmd.args(["dev", "--no-example", "--no-docker", "--data-dir"])
                    .arg(&self.data_dir)
                    .args(["--http-addr", &self.http_addr, "--name", &self.node])
                    .args(["--store-addr", "127.0.0.1:0"])
                    // Tests run many clusters at once: each its own free DNS port.
                    .args(["--dns-addr", "127.0.0.1:0"])
                    .args(["--min-dynamic-port", &self.ports.0.to_string()])
                    .args(["--max-dynamic-port", &self.ports.1.to_string()]);
            }
            Mode::Server => {
                // On every address, so agents in network namespaces ([`Netns`]) reach it too.
                let port = self.store_url.rsplit(':').next().unwrap_or_default();
                let store_addr = format!("0.0.0.0:{port}");
                cmd.args(["server", "--data-dir"])
                    .arg(&self.data_dir)
                    .args(["--http-addr", &self.http_addr])
                    .args(["--store-addr", &store_addr])
                    .args(["--dns-addr", "127.0.0.1:0"])
                    // A test cluster on a private bridge: no TLS, so say so.
                    .arg("--insecure");
            }
        }
        let mut child = cmd
            .env("RUST_LOG", "info")
            .envs(self.process_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn nctl {:?}: {e}", self.mode));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.trim().strip_prefix("DNS:") {
                        let addr = rest.split_whitespace().next().unwrap_or("");
                        if addr != "off" {
                            self.dns_addr = addr.to_string();
                        }
                    }
                    if let Some(rest) = line.trim().strip_prefix("Store:") {
                        self.store_url = rest.split_whitespace().next().unwrap_or("").to_string();
                    }
                    if let Some(rest) = line.trim().strip_prefix("export NOMOS_ADDR=") {
                        self.addr = rest.to_string();
                        break;
                    }
                    seen.push(line);
                }
                Err(_) => panic!(
                    "nctl {:?} did not print its address within 60s; stdout: {seen:?}; log:\n{}",
                    self.mode,
                    self.log_tail()
                ),
            }
        }
        let collected = self.stdout.clone();
        self.stdout_reader = Some(std::thread::spawn(move || {
            while let Ok(line) = rx.recv() {
                collected.lock().unwrap().push(line);
            }
        }));
        if self.mode == Mode::Server {
            return;
        }
        let node = self.node.clone();
        self.wait_for("the local node to be ready", Duration::from_secs(60), |c| {
            c.node_has_status(&node, "ready")
        });
    }

    /// Kills `nctl dev` / `nctl server` with SIGKILL (tasks are left running).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGINT (Ctrl-C) to the process and waits up to 60s for it to exit; returns its exit
    /// status and what it printed on stdout after its address.
    pub fn interrupt(&mut self) -> (std::process::ExitStatus, Vec<String>) {
        let mut child = self.child.take().expect("the process runs");
        // SAFETY: kill(2) on the pid of a child this struct owns and has not reaped.
        let rc = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        assert_eq!(rc, 0, "kill({}, SIGINT)", child.id());
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for nctl") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "nctl {:?} did not exit within 60s of SIGINT; log:\n{}",
                    self.mode,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        // The pipe closes with the process (tasks write to their own log files).
        let reader = self.stdout_reader.take().expect("stdout is read");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let printed = std::mem::take(&mut *self.stdout.lock().unwrap());
        (status, printed)
    }

    /// Starts the process again on the same data dir, API port and store port.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// The tail of `nctl dev`'s log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Starts `nctl agent` as another node against this cluster's store endpoint.
    pub fn start_agent(&self, name: &str) -> Agent {
        self.start_agent_with(name, &[])
    }

    /// Starts `nctl agent` with extra flags (e.g. `--heartbeat-ttl 2`) and, as every test agent,
    /// `--enable-raw-exec`. Under `nctl server` each agent gets its own tenth of the cluster's
    /// dynamic-port range (they share one host).
    pub fn start_agent_with(&self, name: &str, extra: &[&str]) -> Agent {
        self.spawn_agent(name, None, &with_raw_exec(extra))
    }

    /// Starts `nctl agent` as a production node would run: without `--enable-raw-exec`.
    pub fn start_agent_without_raw_exec(&self, name: &str) -> Agent {
        self.spawn_agent(name, None, &[])
    }

    /// Starts `nctl agent` inside the network namespace `ns`, reaching the store over its veth
    /// link (which [`Netns::cut`] takes down).
    pub fn start_agent_in(&self, ns: &Netns, name: &str, extra: &[&str]) -> Agent {
        self.spawn_agent(name, Some(ns), &with_raw_exec(extra))
    }

    fn spawn_agent(&self, name: &str, ns: Option<&Netns>, extra: &[&str]) -> Agent {
        assert!(
            !self.store_url.is_empty(),
            "the cluster printed no store endpoint"
        );
        let data_dir = self.dir.path().join(format!("agent-{name}"));
        let log_path = self.dir.path().join(format!("agent-{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("agent log");
        let (lo, hi) = match self.mode {
            Mode::Dev => (self.ports.0 + 20, self.ports.1),
            Mode::Server => {
                let k = self.agents.fetch_add(1, Ordering::SeqCst);
                assert!(k < 4, "at most four agents per cluster");
                let lo = self.ports.0 + k * 10;
                (lo, lo + 9)
            }
        };
        let store_url = match ns {
            Some(ns) => {
                let port = self.store_url.rsplit(':').next().unwrap_or_default();
                format!("http://{}:{port}", ns.host_ip)
            }
            None => self.store_url.clone(),
        };
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        // A free port for the agent's HTTP endpoint (not the default 4749: agents share the
        // host), on an address the server reaches (the namespace's, for an agent inside one).
        let http = if extra.contains(&"--http-addr") {
            vec![]
        } else {
            let ip = ns.map_or("127.0.0.1", |ns| ns.ns_ip.as_str());
            let mut flags = vec!["--http-addr".to_string(), format!("{ip}:0")];
            if ns.is_some() {
                // The namespace's address, reachable from the host only, without TLS.
                flags.push("--insecure".to_string());
            }
            flags
        };
        let child = cmd
            .args([
                "agent",
                "--no-docker",
                "--name",
                name,
                "--store-endpoints",
                &store_url,
                "--data-dir",
            ])
            .arg(&data_dir)
            .args([
                "--min-dynamic-port",
                &lo.to_string(),
                "--max-dynamic-port",
                &hi.to_string(),
            ])
            .args(extra)
            .args(&http)
            .env("RUST_LOG", "info")
            .envs(self.process_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nctl agent");
        Agent {
            child: Some(child),
            data_dir,
            bin: self.bin.clone(),
            log_path,
        }
    }

    /// Whether `nctl get nodes` lists `node` with `status` (`ready`, `disconnected`, `down`);
    /// also returns what it listed, for failure messages.
    pub fn node_has_status(&self, node: &str, status: &str) -> (bool, String) {
        let nodes = self.json(&["get", "nodes", "-o", "json"]);
        let found = nodes.as_array().is_some_and(|ns| {
            ns.iter()
                .any(|n| n["Name"] == node && n["Status"] == status)
        });
        (found, nodes.to_string())
    }

    /// Waits until every node in `names` is registered and `ready`.
    pub fn wait_nodes_ready(&self, names: &[&str]) {
        self.wait_for("the nodes to be ready", Duration::from_secs(60), |c| {
            let mut seen = String::new();
            let ready = names.iter().all(|name| {
                let (ok, listed) = c.node_has_status(name, "ready");
                seen = listed;
                ok
            });
            (ready, seen)
        });
    }

    /// Runs `nctl ARGS` against this cluster.
    pub fn nctl(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env("NOMOS_ADDR", &self.addr)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .output()
            .expect("run nctl")
    }

    /// Starts `nctl ARGS` against this cluster without waiting for it (stdout and stderr piped).
    pub fn spawn_nctl(&self, args: &[&str]) -> Child {
        Command::new(&self.bin)
            .args(args)
            .env("NOMOS_ADDR", &self.addr)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nctl")
    }

    /// Runs `nctl ARGS`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.nctl(args);
        assert!(
            out.status.success(),
            "nctl {args:?} failed ({}):\nstdout: {}\nstderr: {}\nlog:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `nctl ARGS -o json`-style commands and decodes stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("nctl {args:?}: not JSON ({e}): {text}"))
    }

    /// Writes a file in the cluster's temp dir and returns its path.
    pub fn write_file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write job file");
        p.display().to_string()
    }

    /// Polls `check` every 250ms until it says done; panics after `timeout` with `what` and the
    /// last observation.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Cluster) -> (bool, String),
    ) {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            let (done, seen) = check(self);
            last = seen;
            if done {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {}s waiting for {what}; last seen: {last}\nlog:\n{}",
                    timeout.as_secs(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The job's allocations (`nctl get allocs --job JOB -o json`).
    pub fn allocs(&self, job: &str) -> Vec<Value> {
        self.json(&["get", "allocs", "--job", job, "-o", "json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Allocations of `job` that should run and are running.
    pub fn running(&self, job: &str) -> Vec<Value> {
        self.allocs(job)
            .into_iter()
            .filter(|a| a["DesiredStatus"] == "run" && a["ClientStatus"] == "running")
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill9();
        // Leave nothing behind: stop every task this cluster's agent started (`agent/` under
        // `nctl dev`, `client/` under a config file's local agent).
        for dir in ["agent", "client"] {
            let _ = Command::new(&self.bin)
                .args(["agent", "purge", "--data-dir"])
                .arg(self.data_dir.join(dir))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A separate `nctl agent` process; killed and purged on drop.
pub struct Agent {
    child: Option<Child>,
    pub data_dir: PathBuf,
    bin: PathBuf,
    pub log_path: PathBuf,
}

impl Agent {
    /// The agent's pid (to freeze it with SIGSTOP, cutting it off from the store).
    pub fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .map(|c| c.id() as i32)
            .expect("agent runs")
    }

    /// Sends `signal` to the agent process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of a child this struct owns and has not reaped.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// The tail of the agent's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new(&self.bin)
            .args(["agent", "purge", "--data-dir"])
            .arg(&self.data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The host port of `label` in an allocation JSON (its `AllocatedResources`: a whole
/// allocation, or a stub listed with `resources=true` as `nctl get allocs` lists them).
pub fn port_of(alloc: &Value, label: &str) -> u16 {
    alloc["AllocatedResources"]["Shared"]["Ports"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["Label"] == label))
        .and_then(|p| p["Value"].as_u64())
        .unwrap_or_else(|| panic!("allocation has no port {label:?}: {alloc}")) as u16
}

/// A plain HTTP GET of `/` on loopback; `None` when nothing answers.
pub fn http_get(port: u16) -> Option<String> {
    http_get_path(port, "/")
}

/// A plain HTTP GET on loopback; the body, or `None` when nothing answers.
pub fn http_get_path(port: u16, path: &str) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(out);
    Some(body)
}

/// Pids of live processes whose environment names the allocation (`NOMAD_ALLOC_ID=<id>`).
pub fn pids_of_alloc(alloc_id: &str) -> Vec<i32> {
    let needle = format!("NOMAD_ALLOC_ID={alloc_id}");
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) && !is_zombie(pid) {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// A service job with `count` copies of busybox httpd on a dynamic port, answering `message`.
pub fn web_job(id: &str, count: u32, message: &str) -> String {
    format!(
        r#"job "{id}" {{
  datacenters = ["*"]
  type = "service"

  group "web" {{
    count = {count}

    network {{
      port "http" {{}}
    }}

    update {{
      max_parallel     = 1
      min_healthy_time = "1s"
      healthy_deadline = "1m"
    }}

    task "httpd" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args = ["-c", "mkdir -p www && echo \"{message} ${{NOMAD_ALLOC_ID}}\" > www/index.html && exec /bin/busybox httpd -f -p 127.0.0.1:${{NOMAD_PORT_http}} -h www"]
      }}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
  }}
}}
"#
    )
}

/// A system job `id` whose one task loops on `sleep 1` on every node.
pub fn system_job(id: &str) -> String {
    loop_job(id, "system", "")
}

/// A job `id` of `job_type` with one group `g` whose one task loops on `sleep 1`;
/// `group_settings` (HCL, e.g. `count = 3` or an `update` block) go at the top of the group.
pub fn loop_job(id: &str, job_type: &str, group_settings: &str) -> String {
    format!(
        r#"job "{id}" {{
  datacenters = ["*"]
  type        = "{job_type}"

  group "g" {{
    {group_settings}

    task "loop" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "while true; do sleep 1; done"]
      }}
      resources {{
        cpu    = 10
        memory = 10
      }}
    }}
  }}
}}
"#
    )
}

/// Asserts the machine has what the tests run (busybox for the web job).
pub fn require_busybox() {
    assert!(
        Path::new("/bin/busybox").exists(),
        "these tests need /bin/busybox (Debian's busybox-static package) for the web job"
    );
}

/// A network namespace joined to the host by a veth pair: a separate host for an agent, which
/// the test can cut off from the server and reconnect. Needs root and `ip` (iproute2); removed on
/// drop.
pub struct Netns {
    pub name: String,
    /// The host's end of the link (what the agent dials).
    pub host_ip: String,
    /// The namespace's address.
    pub ns_ip: String,
    host_link: String,
}

impl Netns {
    /// Creates namespace number `k` of this test process (a /30 per namespace in 10.231/16).
    pub fn create(k: u8) -> Netns {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "this test needs root to create network namespaces (it runs as root in CI)"
        );
        let tag = (std::process::id() % 10_000) as u16;
        let name = format!("nomos-e2e-{tag}-{k}");
        let host_link = format!("nh{tag}x{k}");
        let ns_link = format!("nn{tag}x{k}");
        // A /30 out of 10.231.0.0/16 per (process, namespace): 16,384 of them.
        let block = ((tag as u32 * 8 + k as u32) % 16_384) * 4;
        let octets = |host: u32| {
            let a = block + host;
            format!("10.231.{}.{}", a / 256, a % 256)
        };
        let (host_ip, ns_ip) = (octets(1), octets(2));
        let ns = Netns {
            name: name.clone(),
            host_ip: host_ip.clone(),
            ns_ip: ns_ip.clone(),
            host_link: host_link.clone(),
        };
        // Left over from a killed run of the same pid, if any.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_link, "type", "veth", "peer", "name", &ns_link,
        ]);
        ip(&["link", "set", &ns_link, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_link]);
        ip(&["link", "set", &host_link, "up"]);
        let ns_addr = format!("{ns_ip}/30");
        for args in [
            ["addr", "add", ns_addr.as_str(), "dev", ns_link.as_str()].as_slice(),
            ["link", "set", ns_link.as_str(), "up"].as_slice(),
            ["link", "set", "lo", "up"].as_slice(),
        ] {
            let mut full = vec!["netns", "exec", name.as_str(), "ip"];
            full.extend_from_slice(args);
            ip(&full);
        }
        ns
    }

    /// Cuts the namespace off: its link goes down, packets are dropped, connections hang.
    pub fn cut(&self) {
        ip(&["link", "set", &self.host_link, "down"]);
    }

    /// Reconnects it.
    pub fn heal(&self) {
        ip(&["link", "set", &self.host_link, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (Debian's iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `extra` and `--enable-raw-exec`: the tests' jobs are raw_exec tasks.
fn with_raw_exec<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut flags = extra.to_vec();
    flags.push("--enable-raw-exec");
    flags
}

/// Fails unless `promtool check metrics` accepts `metrics` (a `/metrics` answer); promtool
/// comes with Debian's `prometheus` package.
pub fn promtool_check(metrics: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool must be installed (Debian package `prometheus`): {e}")
        });
    let mut stdin = child.stdin.take().expect("promtool's stdin");
    stdin
        .write_all(metrics.as_bytes())
        .expect("writing to promtool");
    drop(stdin);
    let out = child.wait_with_output().expect("promtool's answer");
    assert!(
        out.status.success(),
        "promtool: {}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
