//! Agent configuration files in Nomad's HCL form (`nctl server -config FILE`, `nctl agent
//! -config FILE`). Nomad's names are accepted where the meaning matches; settings Nomad has but
//! Nomos does not act on are warnings naming the setting and its line; anything else is an
//! error naming it and its line, so nothing is silently ignored. See `docs/config.md`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Body, Structure};
use hcl_edit::Span;
use nomos_api::diag::{Diagnostic, LineIndex, Pos};

/// What a Nomad-style config file says, in Nomos's terms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub datacenter: Option<String>,
    pub name: Option<String>,
    pub bind_addr: Option<IpAddr>,
    /// `ports { http = N }`.
    pub http_port: Option<u16>,
    pub server: ServerSection,
    pub client: ClientSection,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerSection {
    pub enabled: bool,
    pub heartbeat_grace_secs: Option<u64>,
    pub min_heartbeat_ttl_secs: Option<u64>,
    pub max_heartbeats_per_second: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientSection {
    pub enabled: bool,
    /// Store endpoints the agent connects to.
    pub servers: Vec<String>,
    pub node_class: Option<String>,
    pub meta: BTreeMap<String, String>,
}

impl FileConfig {
    /// The heartbeat lease TTL this config asks for: Nomad's `min_heartbeat_ttl` (10s) plus
    /// `heartbeat_grace` (10s), the longest a node may stay silent and still count as alive.
    pub fn heartbeat_ttl_secs(&self) -> i64 {
        let ttl = self.server.min_heartbeat_ttl_secs.unwrap_or(10);
        let grace = self.server.heartbeat_grace_secs.unwrap_or(10);
        (ttl + grace).max(1) as i64
    }
}

/// Nomad settings that are understood but not acted on (warned about, with their line).
const IGNORED_TOP: &[&str] = &[
    "region",
    "log_level",
    "log_json",
    "log_file",
    "enable_debug",
    "leave_on_interrupt",
    "leave_on_terminate",
    "disable_update_check",
    "plugin_dir",
    "plugin",
    "addresses",
    "advertise",
    "telemetry",
    "acl",
    "consul",
    "vault",
    "tls",
    "ui",
    "limits",
    "audit",
    "autopilot",
    "sentinel",
    "enable_syslog",
    "syslog_facility",
];
const IGNORED_SERVER: &[&str] = &[
    "bootstrap_expect",
    "server_join",
    "retry_join",
    "encrypt",
    "raft_protocol",
    "raft_multiplier",
    "num_schedulers",
    "enabled_schedulers",
    "node_gc_threshold",
    "job_gc_threshold",
    "eval_gc_threshold",
    "deployment_gc_threshold",
    "rejoin_after_leave",
    "default_scheduler_config",
    "license_path",
    "authoritative_region",
    "data_dir",
];
const IGNORED_CLIENT: &[&str] = &[
    "network_interface",
    "cpu_total_compute",
    "memory_total_mb",
    "reserved",
    "host_volume",
    "options",
    "gc_interval",
    "gc_disk_usage_threshold",
    "gc_max_allocs",
    "server_join",
    "node_pool",
    "drain_on_shutdown",
    "state_dir",
    "alloc_dir",
    "host_network",
    "cni_path",
    "bridge_network_name",
    "artifact",
    "template",
    "chroot_env",
];

struct Reader<'a> {
    file: &'a str,
    index: LineIndex<'a>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl<'a> Reader<'a> {
    fn pos(&self, span: Option<std::ops::Range<usize>>) -> Pos {
        span.map(|r| self.index.pos(r.start)).unwrap_or_default()
    }
    fn error(&mut self, span: Option<std::ops::Range<usize>>, msg: String) {
        let pos = self.pos(span);
        self.errors.push(Diagnostic::error(self.file, pos, msg));
    }
    fn warn(&mut self, span: Option<std::ops::Range<usize>>, msg: String) {
        let pos = self.pos(span);
        self.warnings.push(Diagnostic::warning(self.file, pos, msg));
    }

    fn string(&mut self, name: &str, e: &Expression) -> Option<String> {
        match e {
            Expression::String(s) => Some(s.value().to_string()),
            _ => {
                self.error(e.span(), format!("{name}: expected a string"));
                None
            }
        }
    }

    fn boolean(&mut self, name: &str, e: &Expression) -> bool {
        match e {
            Expression::Bool(b) => *b.value(),
            _ => {
                self.error(e.span(), format!("{name}: expected true or false"));
                false
            }
        }
    }

    fn number(&mut self, name: &str, e: &Expression) -> Option<f64> {
        match e {
            Expression::Number(n) => n.value().as_f64(),
            _ => {
                self.error(e.span(), format!("{name}: expected a number"));
                None
            }
        }
    }

    /// A Go duration (`"10s"`, `"1m30s"`) or a number of seconds.
    fn seconds(&mut self, name: &str, e: &Expression) -> Option<u64> {
        match e {
            Expression::Number(n) => n.value().as_u64(),
            Expression::String(s) => match nomos_api::duration::parse_duration(s.value()) {
                Ok(ns) => Some(ns / 1_000_000_000),
                Err(why) => {
                    self.error(e.span(), format!("{name}: {why}"));
                    None
                }
            },
            _ => {
                self.error(
                    e.span(),
                    format!("{name}: expected a duration such as \"10s\""),
                );
                None
            }
        }
    }

    fn strings(&mut self, name: &str, e: &Expression) -> Vec<String> {
        match e {
            Expression::Array(a) => a.iter().filter_map(|v| self.string(name, v)).collect(),
            _ => {
                self.error(e.span(), format!("{name}: expected a list of strings"));
                vec![]
            }
        }
    }

    fn map(&mut self, name: &str, e: &Expression) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        match e {
            Expression::Object(o) => {
                for (k, v) in o.iter() {
                    let key = match k {
                        ObjectKey::Ident(i) => i.value().as_str().to_string(),
                        ObjectKey::Expression(Expression::String(s)) => s.value().to_string(),
                        ObjectKey::Expression(other) => {
                            self.error(
                                other.span(),
                                format!("{name}: keys must be names or strings"),
                            );
                            continue;
                        }
                    };
                    if let Some(v) = self.string(&format!("{name}.{key}"), v.expr()) {
                        out.insert(key, v);
                    }
                }
            }
            _ => self.error(e.span(), format!("{name}: expected a map of strings")),
        }
        out
    }

    fn body_map(&mut self, name: &str, body: &Body) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => {
                    let key = a.key.value().as_str().to_string();
                    if let Some(v) = self.string(&format!("{name}.{key}"), &a.value) {
                        out.insert(key, v);
                    }
                }
                Structure::Block(b) => self.error(
                    b.span(),
                    format!("{name}: unexpected block {:?}", b.ident.value().as_str()),
                ),
            }
        }
        out
    }

    fn unknown(
        &mut self,
        section: &str,
        name: &str,
        span: Option<std::ops::Range<usize>>,
        ignored: &[&str],
        known: &[&str],
    ) {
        let full = if section.is_empty() {
            name.to_string()
        } else {
            format!("{section}.{name}")
        };
        if ignored.contains(&name) {
            self.warn(
                span,
                format!("{full}: Nomad setting not supported by Nomos; ignored"),
            );
        } else {
            let hint = nomos_api::diag::did_you_mean(name, known.iter().copied())
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            self.error(span, format!("unknown setting {full:?}{hint}"));
        }
    }
}

/// Parses a config file. Errors (and warnings) read `FILE:LINE:COL: message`.
pub fn parse(file: &str, text: &str) -> Result<(FileConfig, Vec<Diagnostic>), Vec<Diagnostic>> {
    let body = hcl_edit::parser::parse_body(text).map_err(|e| {
        let loc = e.location();
        vec![Diagnostic::error(
            file,
            Pos::new(loc.line() as u32, loc.column() as u32),
            e.message().to_string(),
        )]
    })?;
    let mut r = Reader {
        file,
        index: LineIndex::new(text),
        errors: vec![],
        warnings: vec![],
    };
    let mut cfg = FileConfig::default();
    const TOP: &[&str] = &[
        "data_dir",
        "datacenter",
        "name",
        "bind_addr",
        "ports",
        "server",
        "client",
    ];
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => {
                let key = a.key.value().as_str();
                match key {
                    "data_dir" => cfg.data_dir = r.string(key, &a.value).map(PathBuf::from),
                    "datacenter" => cfg.datacenter = r.string(key, &a.value),
                    "name" => cfg.name = r.string(key, &a.value),
                    "bind_addr" => {
                        if let Some(v) = r.string(key, &a.value) {
                            match v.parse() {
                                Ok(ip) => cfg.bind_addr = Some(ip),
                                Err(_) => r.error(
                                    a.value.span(),
                                    format!("bind_addr: expected an IP address, found {v:?}"),
                                ),
                            }
                        }
                    }
                    other => r.unknown("", other, a.span(), IGNORED_TOP, TOP),
                }
            }
            Structure::Block(b) => {
                let ident = b.ident.value().as_str();
                match ident {
                    "ports" => {
                        for s in b.body.iter() {
                            match s {
                                Structure::Attribute(a) if a.key.value().as_str() == "http" => {
                                    cfg.http_port =
                                        r.number("ports.http", &a.value).map(|n| n as u16)
                                }
                                Structure::Attribute(a)
                                    if ["rpc", "serf"].contains(&a.key.value().as_str()) =>
                                {
                                    r.warn(
                                        a.span(),
                                        format!(
                                            "ports.{}: not used by Nomos; ignored",
                                            a.key.value().as_str()
                                        ),
                                    )
                                }
                                Structure::Attribute(a) => r.unknown(
                                    "ports",
                                    a.key.value().as_str(),
                                    a.span(),
                                    &[],
                                    &["http"],
                                ),
                                Structure::Block(bb) => r.unknown(
                                    "ports",
                                    bb.ident.value().as_str(),
                                    bb.span(),
                                    &[],
                                    &["http"],
                                ),
                            }
                        }
                    }
                    "server" => read_server(&mut r, &b.body, &mut cfg.server),
                    "client" => read_client(&mut r, &b.body, &mut cfg.client),
                    other => r.unknown("", other, b.span(), IGNORED_TOP, TOP),
                }
            }
        }
    }
    if r.errors.is_empty() {
        Ok((cfg, r.warnings))
    } else {
        let mut all = r.errors;
        all.extend(r.warnings);
        nomos_api::diag::sort_diagnostics(&mut all);
        Err(all)
    }
}

fn read_server(r: &mut Reader<'_>, body: &Body, out: &mut ServerSection) {
    const KNOWN: &[&str] = &[
        "enabled",
        "heartbeat_grace",
        "min_heartbeat_ttl",
        "max_heartbeats_per_second",
    ];
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => {
                let key = a.key.value().as_str();
                let name = format!("server.{key}");
                match key {
                    "enabled" => out.enabled = r.boolean(&name, &a.value),
                    "heartbeat_grace" => out.heartbeat_grace_secs = r.seconds(&name, &a.value),
                    "min_heartbeat_ttl" => out.min_heartbeat_ttl_secs = r.seconds(&name, &a.value),
                    "max_heartbeats_per_second" => {
                        out.max_heartbeats_per_second = r.number(&name, &a.value)
                    }
                    other => r.unknown("server", other, a.span(), IGNORED_SERVER, KNOWN),
                }
            }
            Structure::Block(b) => r.unknown(
                "server",
                b.ident.value().as_str(),
                b.span(),
                IGNORED_SERVER,
                KNOWN,
            ),
        }
    }
}

fn read_client(r: &mut Reader<'_>, body: &Body, out: &mut ClientSection) {
    const KNOWN: &[&str] = &["enabled", "servers", "node_class", "meta"];
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => {
                let key = a.key.value().as_str();
                let name = format!("client.{key}");
                match key {
                    "enabled" => out.enabled = r.boolean(&name, &a.value),
                    "servers" => out.servers = r.strings(&name, &a.value),
                    "node_class" => out.node_class = r.string(&name, &a.value),
                    "meta" => out.meta = r.map(&name, &a.value),
                    other => r.unknown("client", other, a.span(), IGNORED_CLIENT, KNOWN),
                }
            }
            Structure::Block(b) if b.ident.value().as_str() == "meta" => {
                out.meta = r.body_map("client.meta", &b.body)
            }
            Structure::Block(b) => r.unknown(
                "client",
                b.ident.value().as_str(),
                b.span(),
                IGNORED_CLIENT,
                KNOWN,
            ),
        }
    }
}

/// Reads and parses a config file, printing warnings; errors become one message of
/// `FILE:LINE:COL` lines.
pub fn load(path: &std::path::Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    match parse(&path.display().to_string(), &text) {
        Ok((cfg, warnings)) => {
            for w in warnings {
                eprintln!("{w}");
            }
            Ok(cfg)
        }
        Err(diags) => {
            let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            anyhow::bail!("invalid configuration:\n{}", lines.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOMAD: &str = r#"
# A Nomad single-node agent config.
data_dir   = "/opt/nomad/data"
datacenter = "home"
bind_addr  = "0.0.0.0"
log_level  = "INFO"

ports {
  http = 4646
  rpc  = 4647
}

server {
  enabled           = true
  bootstrap_expect  = 1
  heartbeat_grace   = "30s"
  min_heartbeat_ttl = "15s"
  max_heartbeats_per_second = 50.0
}

client {
  enabled    = true
  servers    = ["http://127.0.0.1:4748"]
  node_class = "pi"
  meta {
    rack = "r1"
  }
}
"#;

    #[test]
    fn a_nomad_agent_config_is_read_with_warnings_for_what_nomos_ignores() {
        let (cfg, warnings) = parse("nomad.hcl", NOMAD).expect("valid");
        assert_eq!(cfg.data_dir, Some(PathBuf::from("/opt/nomad/data")));
        assert_eq!(cfg.datacenter.as_deref(), Some("home"));
        assert_eq!(cfg.bind_addr, Some("0.0.0.0".parse().unwrap()));
        assert_eq!(cfg.http_port, Some(4646));
        assert!(cfg.server.enabled && cfg.client.enabled);
        assert_eq!(cfg.server.heartbeat_grace_secs, Some(30));
        assert_eq!(cfg.server.min_heartbeat_ttl_secs, Some(15));
        assert_eq!(cfg.server.max_heartbeats_per_second, Some(50.0));
        assert_eq!(cfg.heartbeat_ttl_secs(), 45);
        assert_eq!(cfg.client.servers, vec!["http://127.0.0.1:4748"]);
        assert_eq!(cfg.client.node_class.as_deref(), Some("pi"));
        assert_eq!(cfg.client.meta.get("rack").map(String::as_str), Some("r1"));
        let w: Vec<String> = warnings.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            w,
            vec![
                "nomad.hcl:6:1: warning: log_level: Nomad setting not supported by Nomos; ignored",
                "nomad.hcl:10:3: warning: ports.rpc: not used by Nomos; ignored",
                "nomad.hcl:15:3: warning: server.bootstrap_expect: Nomad setting not supported by Nomos; ignored",
            ]
        );
    }

    #[test]
    fn unknown_settings_are_errors_with_their_line() {
        let cases = [
            (
                "datacentre = \"x\"\n",
                "cfg.hcl:1:1: unknown setting \"datacentre\" (did you mean \"datacenter\"?)",
            ),
            (
                "server {\n  enabeld = true\n}\n",
                "cfg.hcl:2:3: unknown setting \"server.enabeld\" (did you mean \"enabled\"?)",
            ),
            (
                "client {\n  enabled = \"yes\"\n}\n",
                "cfg.hcl:2:13: client.enabled: expected true or false",
            ),
            (
                "bind_addr = \"nope\"\n",
                "cfg.hcl:1:13: bind_addr: expected an IP address, found \"nope\"",
            ),
            (
                "server {\n  heartbeat_grace = \"soon\"\n}\n",
                "cfg.hcl:2:21:",
            ),
        ];
        for (text, want) in cases {
            let errs = parse("cfg.hcl", text).expect_err(text);
            let first = errs[0].to_string();
            assert!(
                first.starts_with(want),
                "{text:?}: got {first:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let errs = parse("cfg.hcl", "server {\n  enabled = \n").expect_err("broken");
        assert!(errs[0].line >= 2, "{}", errs[0]);
    }
}
