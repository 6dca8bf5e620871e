//! A real etcd cluster of several members for fault tests: each member is a `/usr/bin/etcd`
//! process with its own data directory, on loopback ports or inside a network namespace on
//! a private bridge (the e2e tests' hosts). Members can be killed, restarted and asked who
//! leads.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, ETCD_BIN, TEST_PROGRESS_INTERVAL};
use crate::{EtcdConfig, EtcdStore};

/// Where one member runs: its address and, when it is not this host's, the network namespace
/// (`ip netns exec NAME`) it is started in.
#[derive(Debug, Clone)]
pub struct MemberHost {
    pub ip: String,
    pub netns: Option<String>,
}

/// One member of an [`EtcdCluster`].
pub struct EtcdMember {
    pub name: String,
    pub host: MemberHost,
    pub client_port: u16,
    pub peer_port: u16,
    child: Option<Child>,
    data_dir: PathBuf,
    log: PathBuf,
}

impl EtcdMember {
    /// `http://ip:port` of its client listener.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.host.ip, self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://{}:{}", self.host.ip, self.peer_port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A cluster of etcd members; every member is killed when dropped.
pub struct EtcdCluster {
    pub members: Vec<EtcdMember>,
    initial_cluster: String,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// `size` members on loopback ports.
    pub fn start(size: usize) -> EtcdCluster {
        let hosts = (0..size)
            .map(|_| MemberHost {
                ip: "127.0.0.1".into(),
                netns: None,
            })
            .collect();
        Self::start_on(hosts)
    }

    /// One member per host, all started together, and waits until every member is healthy.
    pub fn start_on(hosts: Vec<MemberHost>) -> EtcdCluster {
        assert!(
            std::path::Path::new(ETCD_BIN).exists(),
            "{ETCD_BIN} is missing: these tests need a real etcd (install Debian's `etcd-server` package)"
        );
        let dir = tempfile::tempdir().expect("temp dir for the etcd cluster");
        let members: Vec<EtcdMember> = hosts
            .into_iter()
            .enumerate()
            .map(|(k, host)| {
                let (client_port, peer_port) = match host.netns {
                    // A namespace has its own ports.
                    Some(_) => (2379, 2380),
                    None => (free_port(), free_port()),
                };
                EtcdMember {
                    name: format!("m{k}"),
                    host,
                    client_port,
                    peer_port,
                    child: None,
                    data_dir: dir.path().join(format!("m{k}")),
                    log: dir.path().join(format!("m{k}.log")),
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members,
            initial_cluster,
            _dir: dir,
        };
        // A loopback port picked as free can be taken before etcd binds it: start again on
        // fresh ones.
        for _ in 0..5 {
            match cluster.spawn_all() {
                Ok(()) => return cluster,
                Err(log) if log.contains("address already in use") => cluster.repick_ports(),
                Err(log) => panic!("{log}"),
            }
        }
        panic!("the etcd cluster could not find free ports in 5 attempts");
    }

    /// Starts every member and waits until all are healthy; `Err` with the log of a member
    /// that exited.
    fn spawn_all(&mut self) -> Result<(), String> {
        for k in 0..self.members.len() {
            self.spawn(k);
        }
        for k in 0..self.members.len() {
            self.wait_healthy(k)?;
        }
        Ok(())
    }

    /// Stops every member, forgets their data and logs, and gives loopback members new ports.
    fn repick_ports(&mut self) {
        for k in 0..self.members.len() {
            self.kill(k);
        }
        for member in &mut self.members {
            let _ = std::fs::remove_dir_all(&member.data_dir);
            let _ = std::fs::remove_file(&member.log);
            if member.host.netns.is_none() {
                (member.client_port, member.peer_port) = (free_port(), free_port());
            }
        }
        self.initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdMember::endpoint).collect()
    }

    /// A configuration naming every member.
    pub fn config(&self) -> EtcdConfig {
        EtcdConfig::new(self.endpoints())
    }

    pub async fn connect(&self) -> EtcdStore {
        EtcdStore::connect(self.config())
            .await
            .expect("connecting to the test etcd cluster")
    }

    fn spawn(&mut self, k: usize) {
        let initial_cluster = self.initial_cluster.clone();
        let member = &mut self.members[k];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .expect("opening the member's log");
        let mut cmd = match &member.host.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, ETCD_BIN]);
                c
            }
            None => Command::new(ETCD_BIN),
        };
        let child = cmd
            .arg(format!("--name={}", member.name))
            .arg(format!("--data-dir={}", member.data_dir.display()))
            .arg(format!("--listen-client-urls={}", member.endpoint()))
            .arg(format!("--advertise-client-urls={}", member.endpoint()))
            .arg(format!("--listen-peer-urls={}", member.peer_url()))
            .arg(format!(
                "--initial-advertise-peer-urls={}",
                member.peer_url()
            ))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=nomos-test-cluster")
            .arg(format!(
                "--experimental-watch-progress-notify-interval={}s",
                TEST_PROGRESS_INTERVAL.as_secs()
            ))
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {ETCD_BIN}: {e}"));
        member.child = Some(child);
    }

    fn wait_healthy(&mut self, k: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let member = &mut self.members[k];
            if let Some(status) = member
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                member.child = None;
                return Err(format!(
                    "etcd member {} exited ({status}); its log:\n{}",
                    member.name,
                    member.log()
                ));
            }
            if self.healthy(k) {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "etcd member {} did not become healthy within 60 s; its log:\n{}",
                self.members[k].name,
                self.members[k].log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether member `k` answers and sees a leader (`etcdctl endpoint health`).
    pub fn healthy(&self, k: usize) -> bool {
        self.etcdctl_at(k, &["--command-timeout=2s", "endpoint", "health"])
            .is_ok()
    }

    fn etcdctl_at(&self, k: usize, args: &[&str]) -> Result<String, String> {
        let out = Command::new("/usr/bin/etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.members[k].endpoint()))
            .args(args)
            .output()
            .map_err(|e| format!("cannot run /usr/bin/etcdctl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `etcdctl` against every running member; returns its stdout, panics on failure.
    pub fn etcdctl(&self, args: &[&str]) -> String {
        let endpoints: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.is_running())
            .map(EtcdMember::endpoint)
            .collect();
        let mut command = Command::new("/usr/bin/etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")));
        super::run_etcdctl(command, args)
    }

    /// The index of the member that leads, as the running members report it; waits up to
    /// 30 s for one to be elected.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for (k, member) in self.members.iter().enumerate() {
                if !member.is_running() {
                    continue;
                }
                let Ok(json) = self.etcdctl_at(
                    k,
                    &["--command-timeout=2s", "endpoint", "status", "-w", "json"],
                ) else {
                    continue;
                };
                if let (Some(member_id), Some(leader)) = (
                    json_number(&json, "member_id"),
                    json_number(&json, "leader"),
                ) {
                    if leader != 0 && member_id == leader {
                        return k;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no etcd member leads after 30 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills member `k` with SIGKILL; its data directory is kept.
    pub fn kill(&mut self, k: usize) {
        if let Some(mut child) = self.members[k].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `k` again on its data directory and waits until it is healthy.
    pub fn restart(&mut self, k: usize) {
        self.kill(k);
        self.spawn(k);
        if let Err(log) = self.wait_healthy(k) {
            panic!("{log}");
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for k in 0..self.members.len() {
            self.kill(k);
        }
    }
}

/// The first number after `"field":` in etcdctl's JSON (its numbers exceed what f64 holds,
/// so they are read as text).
fn json_number(json: &str, field: &str) -> Option<u64> {
    let at = json.find(&format!("\"{field}\":"))? + field.len() + 3;
    let digits: String = json[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_are_read_as_text() {
        let json = r#"[{"Endpoint":"x","Status":{"header":{"cluster_id":17,"member_id":12345678901234567890,"revision":5},"leader":12345678901234567890}}]"#;
        assert_eq!(
            super::json_number(json, "member_id"),
            Some(12345678901234567890)
        );
        assert_eq!(
            super::json_number(json, "leader"),
            Some(12345678901234567890)
        );
        assert_eq!(super::json_number(json, "raft_term"), None);
    }
}
