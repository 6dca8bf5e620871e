//! The `nctl dev` under test: started from the real binary in a private temporary
//! `XDG_DATA_HOME` (its data dir inside), its API on a free loopback port, its store endpoint
//! off, in a process group of its own (so a Ctrl-C reaches the bench, which then stops it in
//! order) and told to exit if the bench dies. [`Dev::shutdown`] (also run on drop) stops it,
//! purges its agent's data dir as `nctl agent purge` does, which stops every task it started,
//! and kills any process still carrying the bench's marker.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::api::Api;
use crate::error::LatencyError;
use crate::procs;

/// The node name the dev agent registers.
pub const NODE: &str = "nomos-latency";

/// How long `nctl dev` gets to exit after SIGINT before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(15);

/// Where `nctl` is: `explicit`, else `nctl` next to this executable (`target/release/nctl`
/// for `target/release/nomos-latency`).
pub fn locate(explicit: Option<PathBuf>) -> Result<PathBuf, LatencyError> {
    let path = match explicit {
        Some(p) => p,
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("nctl")))
            .unwrap_or_else(|| PathBuf::from("target/release/nctl")),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(LatencyError::NctlMissing { path })
    }
}

/// A running `nctl dev` and the temp dir it keeps its data in.
pub struct Dev {
    child: Option<Child>,
    pub pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub api: String,
    nctl: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    marker: String,
    dir: Option<tempfile::TempDir>,
}

impl Dev {
    /// Starts `nctl dev` and waits (up to `timeout`) for the banner that names its API.
    pub fn start(nctl: &Path, marker: &str, timeout: Duration) -> Result<Dev, LatencyError> {
        let dir = tempfile::Builder::new()
            .prefix("nomos-latency-")
            .tempdir()
            .map_err(|source| LatencyError::Spawn {
                what: "a temp dir".into(),
                source,
            })?;
        let data_dir = dir.path().join("nomos/dev");
        let log = dir.path().join("dev.log");
        let child = spawn(nctl, dir.path(), &data_dir, &log)?;
        let mut dev = Dev {
            pid: child.id(),
            child: Some(child),
            api: String::new(),
            nctl: nctl.to_path_buf(),
            data_dir,
            log,
            marker: marker.to_string(),
            dir: Some(dir),
        };
        dev.api = dev.read_banner(timeout)?;
        Ok(dev)
    }

    /// Reads stdout until `export NOMOS_ADDR=…`; the rest of stdout is drained by a thread
    /// until the process exits.
    fn read_banner(&mut self, timeout: Duration) -> Result<String, LatencyError> {
        let stdout = self.child.as_mut().and_then(|c| c.stdout.take());
        let (tx, rx) = mpsc::channel();
        if let Some(out) = stdout {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.trim().strip_prefix("export NOMOS_ADDR=") {
                        return Ok(addr.to_string());
                    }
                }
                Err(e) => {
                    let what = match e {
                        mpsc::RecvTimeoutError::Timeout => "it printed no API address",
                        mpsc::RecvTimeoutError::Disconnected => "it exited",
                    };
                    return Err(self.not_ready(timeout, what));
                }
            }
        }
    }

    fn not_ready(&self, timeout: Duration, what: &str) -> LatencyError {
        LatencyError::NotReady {
            secs: timeout.as_secs(),
            what: what.to_string(),
            log: self.log_tail(40),
        }
    }

    /// Waits (up to `timeout`) until the local node reports `ready`.
    pub async fn wait_ready(&self, api: &Api, timeout: Duration) -> Result<(), LatencyError> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            match api.node_status(NODE).await {
                Ok(Some(s)) if s == "ready" => return Ok(()),
                Ok(s) => last = format!("node {NODE} is {}", s.as_deref().unwrap_or("missing")),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(self.not_ready(timeout, &format!("the node is not ready ({last})")))
    }

    /// The last `n` lines `nctl dev` logged.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Stops `nctl dev` (SIGINT, then SIGKILL after a grace period), purges its agent's data
    /// dir (stopping every task it started), kills any marked process left, and removes the
    /// temp dir. Returns what it did, for the report. Does nothing the second time.
    pub fn shutdown(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        stop(&mut child);
        let agent_dir = self.data_dir.join("agent");
        let purge = Command::new(&self.nctl)
            .args(["agent", "purge", "--data-dir"])
            .arg(&agent_dir)
            .stdin(Stdio::null())
            .output();
        let purged = match purge {
            Ok(out) if out.status.success() => {
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            }
            Ok(out) => format!(
                "`nctl agent purge` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => format!("`nctl agent purge` did not run: {e}"),
        };
        let left = procs::kill_marked(&self.marker);
        self.dir.take();
        Some(format!(
            "cleanup: nctl dev stopped; {purged}; task processes left after the purge: {left}"
        ))
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(report) = self.shutdown() {
            eprintln!("{report}");
        }
    }
}

/// `nctl dev --no-example --no-docker` with its data in `xdg`, the API on a free loopback
/// port and no store endpoint; stderr to `log`.
fn spawn(nctl: &Path, xdg: &Path, data_dir: &Path, log: &Path) -> Result<Child, LatencyError> {
    let spawn_err = |source| LatencyError::Spawn {
        what: format!("{} dev", nctl.display()),
        source,
    };
    let log = std::fs::File::create(log).map_err(spawn_err)?;
    let mut cmd = Command::new(nctl);
    cmd.args(["dev", "--no-example", "--no-docker", "--data-dir"])
        .arg(data_dir)
        .args(["--http-addr", "127.0.0.1:0", "--store-addr", "off"])
        .args(["--agent-http-addr", "127.0.0.1:0", "--name", NODE])
        .env("XDG_DATA_HOME", xdg)
        .env_remove("RUST_LOG")
        .env_remove("NOMOS_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(spawn_err)
}

/// SIGINT, then SIGKILL if it has not exited within [`EXIT_GRACE`]; reaps it.
fn stop(child: &mut Child) {
    // SAFETY: kill(2) on the pid of a child we own and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + EXIT_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_nctl_says_how_to_build_it() {
        let err = locate(Some(PathBuf::from("/nonexistent/nctl"))).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/nctl"), "{msg}");
        assert!(msg.contains("cargo build --release -p nctl"), "{msg}");
    }
}
