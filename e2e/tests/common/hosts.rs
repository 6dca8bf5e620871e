//! Several hosts on one machine: a private Linux bridge with one network namespace per host,
//! each joined to the bridge by a veth pair, on an address of 10.232.0.0/16. A host can be cut
//! off (its link goes down: packets are dropped, connections hang) and reconnected. Needs root,
//! `ip` (iproute2) and `iptables` (Docker's FORWARD policy drops bridged traffic, so the
//! bridge gets an accept rule of its own, removed with it).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU8, Ordering};

/// A private bridge; removed, with its rule, when dropped (after its hosts).
pub struct Bridge {
    pub name: String,
    /// The first three octets of its /24 (`10.232.N`).
    pub subnet: String,
    tag: String,
    hosts: AtomicU8,
}

/// One host: a network namespace on the bridge.
pub struct Host {
    /// The namespace (`ip netns exec NAME ...`).
    pub netns: String,
    pub ip: String,
    link: String,
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (iproute2 / iptables): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_quietly(program: &str, args: &[&str]) {
    let _ = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Bridge {
    /// A new bridge for this test; each call in a process gets its own name and subnet.
    pub fn create() -> Bridge {
        assert!(
            unsafe { libc::geteuid() } == 0,
            "this test needs root to create network namespaces and a bridge (it runs as root in CI)"
        );
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{}{k}", pid % 10_000);
        let name = format!("nb{tag}");
        let subnet = format!("10.232.{}", (pid * 8 + u32::from(k)) % 250 + 1);
        run_quietly("ip", &["link", "del", &name]);
        run("ip", &["link", "add", &name, "type", "bridge"]);
        run(
            "ip",
            &["addr", "add", &format!("{subnet}.1/24"), "dev", &name],
        );
        run("ip", &["link", "set", &name, "up"]);
        run(
            "iptables",
            &["-I", "FORWARD", "-i", &name, "-o", &name, "-j", "ACCEPT"],
        );
        Bridge {
            name,
            subnet,
            tag,
            hosts: AtomicU8::new(0),
        }
    }

    /// The host's own address on the bridge.
    pub fn host_ip(&self) -> String {
        format!("{}.1", self.subnet)
    }

    /// A new host on the bridge.
    pub fn host(&self) -> Host {
        let k = self.hosts.fetch_add(1, Ordering::SeqCst);
        let netns = format!("nomos-ha-{}-{k}", self.tag);
        let link = format!("hv{}x{k}", self.tag);
        let inner = format!("hn{}x{k}", self.tag);
        let ip = format!("{}.{}", self.subnet, 10 + k);
        run_quietly("ip", &["netns", "del", &netns]);
        run("ip", &["netns", "add", &netns]);
        run(
            "ip",
            &["link", "add", &link, "type", "veth", "peer", "name", &inner],
        );
        run("ip", &["link", "set", &inner, "netns", &netns]);
        run("ip", &["link", "set", &link, "master", &self.name]);
        run("ip", &["link", "set", &link, "up"]);
        let cidr = format!("{ip}/24");
        for args in [
            vec!["addr", "add", cidr.as_str(), "dev", inner.as_str()],
            vec!["link", "set", inner.as_str(), "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let mut full = vec!["netns", "exec", netns.as_str(), "ip"];
            full.extend(args);
            run("ip", &full);
        }
        Host { netns, ip, link }
    }
}

impl Host {
    /// Cuts the host off from every other host.
    pub fn cut(&self) {
        run("ip", &["link", "set", &self.link, "down"]);
    }

    /// Reconnects it.
    pub fn heal(&self) {
        run("ip", &["link", "set", &self.link, "up"]);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        run_quietly("ip", &["link", "del", &self.link]);
        run_quietly("ip", &["netns", "del", &self.netns]);
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        run_quietly(
            "iptables",
            &[
                "-D", "FORWARD", "-i", &self.name, "-o", &self.name, "-j", "ACCEPT",
            ],
        );
        run_quietly("ip", &["link", "del", &self.name]);
    }
}
