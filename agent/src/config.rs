//! The agent's configuration, with the defaults `nctl agent` and `nctl dev` start from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;

/// How an agent runs: where it keeps its state, how it names and describes its node, how often
/// it proves it is alive.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub data_dir: PathBuf,
    /// Node name, unique in the cluster; allocations are placed under it.
    pub name: String,
    pub datacenter: String,
    pub region: String,
    pub node_class: String,
    pub node_pool: String,
    pub meta: IndexMap<String, String>,
    /// Time to live of the heartbeat lease; keep-alives go out every third of it.
    pub heartbeat_ttl_secs: i64,
    /// Size the lease from the servers' settings at `/nomos/config/heartbeat` and the node
    /// count instead ([`nomos_api::heartbeat::lease_timing`]), whenever the agent registers;
    /// `heartbeat_ttl_secs` stays the fallback while no server published settings.
    pub heartbeat_from_cluster: bool,
    /// Where to serve logs, `/metrics` and restarts; `None` for no HTTP endpoint (then the
    /// servers can neither show this node's logs nor restart its tasks). Port 0 picks a free
    /// port. The node registers the bound address, see [`advertised_http_addr`].
    /// `nctl agent` listens on [`DEFAULT_HTTP_PORT`] unless told otherwise.
    pub http_addr: Option<SocketAddr>,
    /// The address other hosts reach this node's ports on (its allocations' `host_ip`, its
    /// services' address); `None`: the fingerprinted primary address. `nctl dev` uses
    /// 127.0.0.1, as `nomad agent -dev` does.
    pub node_address: Option<String>,
    /// Serve the HTTP endpoint over TLS with this certificate, requiring every caller to
    /// present a certificate signed by its `client_ca` (Nomad's `tls { rpc = true }`): only
    /// servers and operators holding one may read logs, restart tasks or scrape metrics. The
    /// node then registers an `https://` address.
    pub http_tls: Option<nomos_tls::ServerTls>,
    /// Inclusive range of host ports the scheduler may hand out as dynamic ports.
    pub min_dynamic_port: u16,
    pub max_dynamic_port: u16,
    pub reserved_cpu_mhz: u32,
    pub reserved_memory_mb: u32,
    /// Try the Docker daemon at start (the fingerprint says whether it answered).
    pub enable_docker: bool,
    /// Health time for groups without an `update` block (Nomad's `min_healthy_time`, 10s).
    pub default_min_healthy_time_ms: u64,
    /// Longest wait between retries when the store is unreachable.
    pub max_retry_backoff_ms: u64,
    /// Let template and artifact `source`s name host paths: absolute paths, paths leaving the
    /// task directory and `file://` URLs (Nomad's `template { disable_file_sandbox = true }`
    /// and artifact host paths). Off by default: the agent runs as root, so a job could read
    /// any file of the host. Destinations stay inside the task directory either way.
    pub allow_host_paths: bool,
    /// Offer the `raw_exec` driver, which runs tasks unisolated as the agent's own user (root):
    /// anyone who may submit a job then owns the node. Off by default, as in Nomad (`plugin
    /// "raw_exec" { config { enabled = true } }`); `nctl dev` turns it on.
    pub enable_raw_exec: bool,
    /// How often running tasks' usage is sampled and the node's usage report written
    /// ([`crate::usage`]); Nomad's `collection_interval`.
    pub usage_interval: std::time::Duration,
    /// Let docker tasks bind host paths in their `volumes` (Nomad's docker plugin `volumes {
    /// enabled = true }`); off by default. Paths inside the task directory are always allowed.
    pub docker_host_volumes: bool,
    /// What jobs may hand QEMU: images only from the allocation's directory or `image_paths`,
    /// and the flags of `args_allowlist` when set (Nomad's qemu plugin config).
    pub qemu: crate::driver::qemu::QemuPolicy,
    /// Base URLs of the servers' HTTP API (`http://10.0.0.1:4747`), which templates read
    /// Variables from with the task's identity (Nomad's `client { servers = [...] }`). Empty:
    /// the addresses the servers advertise at `/nomos/servers/`.
    pub servers: Vec<String>,
    /// How to reach the servers' API over TLS (their CA, this node's certificate), when the
    /// servers serve it with `tls { http = true }`.
    pub servers_tls: Option<nomos_tls::ClientTls>,
    /// The range each template's `wait { min max }` is clamped into (Nomad's client
    /// `template { wait_bounds { min max } }`).
    pub template_wait_bounds: WaitBounds,
    /// Directories published to jobs by name (Nomad's `client { host_volume "name" { path
    /// read_only } }`); each must exist and be a directory when the agent starts
    /// ([`check_host_volumes`]).
    pub host_volumes: IndexMap<String, nomos_api::HostVolume>,
}

/// Every host volume's path is absolute and names an existing directory (followed through
/// symbolic links); the first that is not is the error.
pub fn check_host_volumes(
    volumes: &IndexMap<String, nomos_api::HostVolume>,
) -> Result<(), crate::AgentError> {
    for (name, volume) in volumes {
        let bad = |why: String| {
            crate::AgentError::Config(format!(
                "host_volume {name:?}: path {:?} {why}",
                volume.path
            ))
        };
        let path = std::path::Path::new(&volume.path);
        if !path.is_absolute() {
            return Err(bad("must be an absolute path".into()));
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(bad("is not a directory".into())),
            Err(e) => return Err(bad(format!("cannot be used: {e}"))),
        }
    }
    Ok(())
}

/// Bounds for templates' `wait`: each of its `min` and `max` is raised to `min` and lowered to
/// `max` here, where set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitBounds {
    pub min: Option<Duration>,
    pub max: Option<Duration>,
}

impl WaitBounds {
    /// `d` within the bounds (when the bounds cross, `max` wins).
    pub fn clamp(&self, d: Duration) -> Duration {
        let d = self.min.map_or(d, |min| d.max(min));
        self.max.map_or(d, |max| d.min(max))
    }
}

/// The port `nctl agent` serves its HTTP endpoint on by default, next to the server's API
/// (4747) and store endpoint (4748).
pub const DEFAULT_HTTP_PORT: u16 = 4749;

/// The address a node registers as its `http_addr`, for servers to fetch logs and ask for
/// restarts: the bound address, except that a wildcard IP (`0.0.0.0`, `::`), which no other
/// host can dial, becomes the node's own address (`node_address`, the fingerprinted source
/// address of the default route), or loopback when that is not an IP of the same family.
pub fn advertised_http_addr(bound: SocketAddr, node_address: &str) -> SocketAddr {
    if !bound.ip().is_unspecified() {
        return bound;
    }
    let ip = match (node_address.parse::<IpAddr>(), bound.ip()) {
        (Ok(ip @ IpAddr::V4(_)), IpAddr::V4(_)) | (Ok(ip @ IpAddr::V6(_)), IpAddr::V6(_))
            if !ip.is_unspecified() =>
        {
            ip
        }
        (_, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (_, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    SocketAddr::new(ip, bound.port())
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            data_dir: PathBuf::from("/var/lib/nomos/agent"),
            name: String::new(),
            datacenter: "dc1".into(),
            region: "global".into(),
            node_class: String::new(),
            node_pool: "default".into(),
            node_address: None,
            meta: IndexMap::new(),
            heartbeat_ttl_secs: 10,
            heartbeat_from_cluster: false,
            http_addr: None,
            http_tls: None,
            min_dynamic_port: 20000,
            max_dynamic_port: 32000,
            reserved_cpu_mhz: 0,
            reserved_memory_mb: 0,
            enable_docker: true,
            default_min_healthy_time_ms: 10_000,
            max_retry_backoff_ms: 5_000,
            allow_host_paths: false,
            enable_raw_exec: false,
            usage_interval: std::time::Duration::from_secs(nomos_api::usage::DEFAULT_INTERVAL_SECS),
            docker_host_volumes: false,
            qemu: Default::default(),
            servers: Vec::new(),
            servers_tls: None,
            template_wait_bounds: WaitBounds::default(),
            host_volumes: IndexMap::new(),
        }
    }
}

impl AgentConfig {
    /// A config with defaults for a node `name` keeping its state in `data_dir`.
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        AgentConfig {
            name: name.into(),
            data_dir: data_dir.into(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_wildcard_listener_registers_the_nodes_own_address() {
        assert_eq!(
            advertised_http_addr(addr("0.0.0.0:4749"), "192.0.2.7"),
            addr("192.0.2.7:4749")
        );
        assert_eq!(
            advertised_http_addr(addr("[::]:4749"), "2001:db8::7"),
            addr("[2001:db8::7]:4749")
        );
    }

    #[test]
    fn a_specific_listener_registers_itself() {
        for bound in ["127.0.0.1:31000", "192.0.2.9:4749", "[::1]:4749"] {
            assert_eq!(advertised_http_addr(addr(bound), "192.0.2.7"), addr(bound));
        }
    }

    #[test]
    fn a_wildcard_listener_without_a_usable_node_address_registers_loopback() {
        for node_address in ["", "not an ip", "0.0.0.0", "2001:db8::7"] {
            assert_eq!(
                advertised_http_addr(addr("0.0.0.0:4749"), node_address),
                addr("127.0.0.1:4749"),
                "{node_address:?}"
            );
        }
        assert_eq!(
            advertised_http_addr(addr("[::]:4749"), "192.0.2.7"),
            addr("[::1]:4749")
        );
    }

    #[test]
    fn host_volumes_must_be_existing_absolute_directories() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let at = |p: &std::path::Path| p.display().to_string();
        let cases = [
            ("an existing directory", at(dir.path()), None),
            (
                "a relative path",
                "data".to_string(),
                Some("must be an absolute path"),
            ),
            (
                "a missing directory",
                at(&dir.path().join("gone")),
                Some("cannot be used"),
            ),
            ("a file", at(&file), Some("is not a directory")),
        ];
        for (what, path, error) in cases {
            let volume = nomos_api::HostVolume {
                path,
                read_only: false,
            };
            let volumes = IndexMap::from([("data".to_string(), volume)]);
            match (check_host_volumes(&volumes), error) {
                (Ok(()), None) => {}
                (Err(e), Some(text)) => {
                    let e = e.to_string();
                    assert!(
                        e.contains("host_volume \"data\"") && e.contains(text),
                        "{what}: {e}"
                    );
                }
                (got, _) => panic!("{what}: {got:?}"),
            }
        }
    }
}
