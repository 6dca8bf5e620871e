//! Test helpers for every crate that needs a store in its tests (feature `test-util`):
//! [`EtcdProcess`] runs a real `/usr/bin/etcd` on free loopback ports with a temporary data
//! directory, and [`TestStore`] builds a fresh store of either backend by name, so one suite can
//! run against both; [`EtcdCluster`] runs several members for fault tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{EmbeddedOptions, EmbeddedStore, EtcdConfig, EtcdStore, Store};

mod cluster;
pub use cluster::{EtcdCluster, EtcdMember, MemberHost};

/// Where the etcd binary is expected (Debian's `etcd-server` package).
pub const ETCD_BIN: &str = "/usr/bin/etcd";
/// Progress-notification interval of test etcd processes and test embedded stores.
pub const TEST_PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// A real etcd server for tests; killed when dropped.
pub struct EtcdProcess {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    tls: Option<TestCerts>,
}

/// PEM files of a throw-away CA, a server certificate for `127.0.0.1` and a client certificate.
#[derive(Debug, Clone)]
pub struct TestCerts {
    pub ca_file: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestCerts {
    /// Generates the certificates in `dir` with the `openssl` command (panics if it is missing).
    pub fn generate(dir: &Path) -> TestCerts {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap_or_else(|e| panic!("cannot run openssl (install Debian's `openssl`): {e}"));
            assert!(
                out.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=nomos-test-ca",
        ]);
        for (name, usage) in [
            ("server", "serverAuth,clientAuth"),
            ("client", "clientAuth"),
        ] {
            std::fs::write(
                dir.join(format!("{name}.ext")),
                format!("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"),
            )
            .expect("writing the openssl extension file");
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ]);
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ]);
        }
        TestCerts {
            ca_file: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        }
    }
}

/// Runs `etcdctl ARGS` (`command` names the endpoints and credentials); its stdout, or a
/// panic with its stderr.
fn run_etcdctl(mut command: Command, args: &[&str]) -> String {
    let out = command
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run /usr/bin/etcdctl: {e}"));
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a free loopback port")
}

impl EtcdProcess {
    /// Starts etcd and waits until it reports healthy. Panics with a clear message if
    /// `/usr/bin/etcd` is missing or does not come up.
    pub fn start() -> EtcdProcess {
        Self::start_with(None)
    }

    /// Starts etcd serving clients over TLS with client-certificate authentication.
    pub fn start_tls(certs: TestCerts) -> EtcdProcess {
        Self::start_with(Some(certs))
    }

    fn start_with(tls: Option<TestCerts>) -> EtcdProcess {
        assert!(
            Path::new(ETCD_BIN).exists(),
            "{ETCD_BIN} is missing: these tests need a real etcd (install Debian's `etcd-server` package)"
        );
        let dir = tempfile::tempdir().expect("creating a temp dir for etcd");
        let mut etcd = EtcdProcess {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            tls,
        };
        // A port picked as free can be taken before etcd binds it: retry with fresh ones.
        for _ in 0..5 {
            match etcd.spawn() {
                Ok(()) => return etcd,
                Err(log) if log.contains("address already in use") => {
                    etcd.client_port = free_port();
                    etcd.peer_port = free_port();
                }
                Err(log) => panic!("etcd exited during start-up; its log:\n{log}"),
            }
        }
        panic!("etcd could not find free ports in 5 attempts");
    }

    /// `http://127.0.0.1:<port>` (`https` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// A configuration for this server (with the client certificate when it serves TLS).
    pub fn config(&self) -> EtcdConfig {
        let mut config = EtcdConfig::new([self.endpoint()]);
        if let Some(certs) = &self.tls {
            config.ca_file = Some(certs.ca_file.clone());
            config.cert_file = Some(certs.client_cert.clone());
            config.key_file = Some(certs.client_key.clone());
        }
        config
    }

    fn etcdctl_command(&self) -> Command {
        let mut cmd = Command::new("/usr/bin/etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()));
        if let Some(certs) = &self.tls {
            cmd.arg(format!("--cacert={}", certs.ca_file.display()))
                .arg(format!("--cert={}", certs.client_cert.display()))
                .arg(format!("--key={}", certs.client_key.display()));
        }
        cmd
    }

    /// Runs `etcdctl` against this server with the given arguments; returns its stdout.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        run_etcdctl(self.etcdctl_command(), args)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Connects an [`EtcdStore`] to this server.
    pub async fn connect(&self) -> EtcdStore {
        EtcdStore::connect(self.config())
            .await
            .expect("connecting to the test etcd")
    }

    /// Starts the process and waits until it is healthy; `Err` carries its log if it exits.
    fn spawn(&mut self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.dir.path().join("etcd.log"));
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("opening the etcd log");
        let mut cmd = Command::new(ETCD_BIN);
        if let Some(certs) = &self.tls {
            cmd.arg(format!("--cert-file={}", certs.server_cert.display()))
                .arg(format!("--key-file={}", certs.server_key.display()))
                .arg(format!("--trusted-ca-file={}", certs.ca_file.display()))
                .arg("--client-cert-auth");
        }
        let child = cmd
            .arg("--name=nomos-test")
            .arg(format!("--data-dir={}", self.data_dir().display()))
            .arg(format!("--listen-client-urls={}", self.endpoint()))
            .arg(format!("--advertise-client-urls={}", self.endpoint()))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=nomos-test={peer}"))
            .arg(format!(
                "--experimental-watch-progress-notify-interval={}s",
                TEST_PROGRESS_INTERVAL.as_secs()
            ))
            .arg("--logger=zap")
            .arg("--log-level=error")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {ETCD_BIN}: {e}"));
        self.child = Some(child);
        self.wait_healthy()
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log =
                    std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
                self.child = None;
                return Err(format!("exit status {status}\n{log}"));
            }
            if self.healthy() {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "etcd on {} did not become healthy within 30 s",
                self.endpoint()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether etcd answers `GET /health` with `"health":"true"`.
    pub fn healthy(&self) -> bool {
        if self.tls.is_some() {
            return self
                .etcdctl_command()
                .args(["--command-timeout=2s", "endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        }
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.client_port)) else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        if conn
            .write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut body = String::new();
        let _ = conn.read_to_string(&mut body);
        body.contains("\"health\":\"true\"")
    }

    /// Kills etcd (SIGKILL) and waits for it to exit; the data dir is kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data dir (stopping it first if running).
    pub fn restart(&mut self) {
        self.stop();
        for attempt in 0..10 {
            match self.spawn() {
                Ok(()) => return,
                Err(log) if log.contains("address already in use") && attempt < 9 => {
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(log) => panic!("etcd did not restart; its log:\n{log}"),
            }
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Which backend a [`TestStore`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store on disk in a temp dir.
    Embedded,
    /// The embedded store in memory.
    Memory,
    /// A fresh real etcd.
    Etcd,
}

impl Backend {
    /// `"embedded"`, `"memory"` or `"etcd"`.
    pub fn from_name(name: &str) -> Option<Backend> {
        match name {
            "embedded" => Some(Backend::Embedded),
            "memory" => Some(Backend::Memory),
            "etcd" => Some(Backend::Etcd),
            _ => None,
        }
    }
}

/// A fresh, empty store of one backend, with whatever keeps it alive.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub backend: Backend,
    /// The etcd server behind an [`Backend::Etcd`] store.
    pub etcd: Option<EtcdProcess>,
    /// The data dir of a [`Backend::Embedded`] store.
    pub dir: Option<tempfile::TempDir>,
}

impl TestStore {
    pub async fn new(backend: Backend) -> TestStore {
        let options = EmbeddedOptions {
            progress_notify_interval: TEST_PROGRESS_INTERVAL,
            ..Default::default()
        };
        match backend {
            Backend::Embedded => {
                let dir = tempfile::tempdir().expect("creating a temp dir for the embedded store");
                let store = EmbeddedStore::open_with(dir.path(), options)
                    .expect("opening the embedded store");
                TestStore {
                    store: Arc::new(store),
                    backend,
                    etcd: None,
                    dir: Some(dir),
                }
            }
            Backend::Memory => TestStore {
                store: Arc::new(EmbeddedStore::in_memory_with(options)),
                backend,
                etcd: None,
                dir: None,
            },
            Backend::Etcd => {
                let etcd = tokio::task::spawn_blocking(EtcdProcess::start)
                    .await
                    .expect("starting etcd");
                let store = etcd.connect().await;
                TestStore {
                    store: Arc::new(store),
                    backend,
                    etcd: Some(etcd),
                    dir: None,
                }
            }
        }
    }

    /// Builds a store from a backend name (`"embedded"`, `"memory"`, `"etcd"`); panics on others.
    pub async fn named(name: &str) -> TestStore {
        let backend =
            Backend::from_name(name).unwrap_or_else(|| panic!("unknown store backend {name:?}"));
        TestStore::new(backend).await
    }
}
