//! Agent configuration files (`nctl server -config FILE`, `nctl agent -config FILE`) in Nomad's
//! HCL, or in YAML or JSON with the same names. Nomad's names are accepted where the meaning
//! matches; settings Nomad has but Nomos does not act on are warnings naming the setting and its
//! line; anything else is an error naming it and its line, so nothing is silently ignored. See
//! `docs/config.md`.
//!
//! Two front ends, one reader: [`from_hcl`] and [`from_yaml`] turn the file into the same tree
//! of settings ([`Entry`]: name, where the name is, value and where it is), and [`read`] checks
//! that tree against the names below and converts it into a [`FileConfig`]. So both syntaxes
//! accept, ignore and reject the same settings with the same messages.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use hcl_edit::expr::{Expression, ObjectKey, UnaryOperator};
use hcl_edit::structure::{BlockLabel, Body, Structure};
use hcl_edit::Span;
use nomos_api::diag::{Diagnostic, LineIndex, Pos};
use nomos_api::manifest::{Node as YamlNode, SNode};
use nomos_api::parse::{detect_format, Format};

mod host_volumes;
mod ignored;
mod limits;
mod plugins;
mod tls;
use ignored::{IGNORED_CLIENT, IGNORED_SERVER, IGNORED_TOP};
pub use limits::LimitsSection;
use plugins::read_plugins;
pub use tls::TlsSection;

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
    /// `plugin "raw_exec" { config { enabled = true } }`: offer the raw_exec driver (off by
    /// default, as in Nomad).
    pub raw_exec_enabled: bool,
    /// `plugin "docker" { config { volumes { enabled = true } } }`: docker tasks may bind host
    /// paths (off by default, as in Nomad).
    pub docker_volumes_enabled: bool,
    /// `plugin "qemu" { config { image_paths = [...] } }`: host directories VM images may
    /// come from, besides the allocation's own directory.
    pub qemu_image_paths: Vec<String>,
    /// `plugin "qemu" { config { args_allowlist = [...] } }`: the only flags a job's `args`
    /// may pass to QEMU; unset, any (as in Nomad).
    pub qemu_args_allowlist: Option<Vec<String>>,
    /// `tls { ... }`: HTTPS on the API, mutual TLS to and from agents.
    pub tls: TlsSection,
    /// `acl { enabled = true }`: the API requires ACL tokens (`docs/security.md`).
    pub acl_enabled: bool,
    /// `limits { ... }`: handshake timeouts and connections per client address.
    pub limits: LimitsSection,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerSection {
    pub enabled: bool,
    pub heartbeat_grace_secs: Option<u64>,
    pub min_heartbeat_ttl_secs: Option<u64>,
    pub max_heartbeats_per_second: Option<f64>,
    /// How often the garbage collector runs (Nomad's `job_gc_interval`).
    pub job_gc_interval_secs: Option<u64>,
    /// Age at which stopped jobs are purged (Nomad's `job_gc_threshold`).
    pub job_gc_threshold_secs: Option<u64>,
    /// Age at which finished evaluations, and finished allocations with them, are collected
    /// (Nomad's `eval_gc_threshold`).
    pub eval_gc_threshold_secs: Option<u64>,
    /// Nomos: `lost_after` for groups that set none (5 minutes).
    pub default_lost_after_secs: Option<u64>,
    /// Nomos: finished children kept per periodic job (5).
    pub periodic_history_limit: Option<u64>,
    /// Versions kept per job (Nomad's `job_tracked_versions`, 6).
    pub job_tracked_versions: Option<u64>,
    /// Nomos: the file holding the key that wraps the keyring's root keys
    /// (`<data_dir>/server/keyring.key` by default; every server on one store shares it).
    pub keyring_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientSection {
    pub enabled: bool,
    /// Store endpoints the agent connects to.
    pub servers: Vec<String>,
    pub node_class: Option<String>,
    pub meta: BTreeMap<String, String>,
    /// `template { disable_file_sandbox = true }`: templates (and artifacts) may read host
    /// paths.
    pub disable_file_sandbox: bool,
    /// `template { wait_bounds { min max } }`: the range templates' `wait` is clamped into.
    pub template_wait_bounds: nomos_agent::config::WaitBounds,
    /// `host_volume "NAME" { path read_only }`: directories published to jobs' `volume`s.
    pub host_volumes: indexmap::IndexMap<String, nomos_api::HostVolume>,
}

impl FileConfig {
    /// The heartbeat settings a server publishes for agents (`/nomos/config/heartbeat`):
    /// Nomad's `server { heartbeat_grace, min_heartbeat_ttl, max_heartbeats_per_second }`, with
    /// Nomad's defaults for what the file leaves out.
    pub fn heartbeat_config(&self) -> nomos_api::heartbeat::HeartbeatConfig {
        let d = nomos_api::heartbeat::HeartbeatConfig::default();
        let ms = |secs: Option<u64>, default: i64| secs.map_or(default, |s| s as i64 * 1000);
        nomos_api::heartbeat::HeartbeatConfig {
            heartbeat_grace_ms: ms(self.server.heartbeat_grace_secs, d.heartbeat_grace_ms),
            min_heartbeat_ttl_ms: ms(self.server.min_heartbeat_ttl_secs, d.min_heartbeat_ttl_ms),
            max_heartbeats_per_second: self
                .server
                .max_heartbeats_per_second
                .unwrap_or(d.max_heartbeats_per_second),
        }
    }

    /// The controllers' settings this config asks for, on top of `base`: gc thresholds, the
    /// cluster-wide `lost_after` default and the periodic history limit.
    pub fn controllers(
        &self,
        base: nomos_controllers::ControllersConfig,
    ) -> nomos_controllers::ControllersConfig {
        let ms = |secs: Option<u64>, default: i64| secs.map_or(default, |s| s as i64 * 1000);
        let s = &self.server;
        let mut c = base;
        c.gc.interval_ms = ms(s.job_gc_interval_secs, c.gc.interval_ms);
        c.gc.job_gc_threshold_ms = ms(s.job_gc_threshold_secs, c.gc.job_gc_threshold_ms);
        c.gc.alloc_gc_threshold_ms = ms(s.eval_gc_threshold_secs, c.gc.alloc_gc_threshold_ms);
        c.gc.eval_gc_threshold_ms = ms(s.eval_gc_threshold_secs, c.gc.eval_gc_threshold_ms);
        c.lifecycle.default_lost_after_ms =
            ms(s.default_lost_after_secs, c.lifecycle.default_lost_after_ms);
        if let Some(n) = s.periodic_history_limit {
            c.periodic.history_limit = n as usize;
        }
        if let Some(n) = s.job_tracked_versions {
            c.gc.job_versions_kept = n as usize;
        }
        c
    }

    /// The heartbeat lease TTL this config asks for: Nomad's `min_heartbeat_ttl` (10s) plus
    /// `heartbeat_grace` (10s), the longest a node may stay silent and still count as alive.
    pub fn heartbeat_ttl_secs(&self) -> i64 {
        let ttl = self.server.min_heartbeat_ttl_secs.unwrap_or(10);
        let grace = self.server.heartbeat_grace_secs.unwrap_or(10);
        (ttl + grace).max(1) as i64
    }
}

/// The settings one section reads, and Nomad's settings in it that are accepted with a warning.
struct Section {
    /// `""` for the top level, else the section's name (`server`).
    name: &'static str,
    known: &'static [&'static str],
    ignored: &'static [&'static str],
}

const TOP: Section = Section {
    name: "",
    known: &[
        "data_dir",
        "datacenter",
        "name",
        "bind_addr",
        "ports",
        "server",
        "client",
        "plugin",
        "tls",
        "acl",
        "limits",
    ],
    ignored: IGNORED_TOP,
};
const ACL: Section = Section {
    name: "acl",
    known: &["enabled"],
    ignored: &[
        "token_ttl",
        "policy_ttl",
        "role_ttl",
        "token_min_expiration_ttl",
        "token_max_expiration_ttl",
        "replication_token",
    ],
};
const PORTS: Section = Section {
    name: "ports",
    known: &["http"],
    ignored: &["rpc", "serf"],
};
const SERVER: Section = Section {
    name: "server",
    known: &[
        "enabled",
        "heartbeat_grace",
        "min_heartbeat_ttl",
        "max_heartbeats_per_second",
        "job_gc_interval",
        "job_gc_threshold",
        "eval_gc_threshold",
        "default_lost_after",
        "periodic_history_limit",
        "job_tracked_versions",
        "keyring_key_file",
    ],
    ignored: IGNORED_SERVER,
};
const CLIENT: Section = Section {
    name: "client",
    known: &[
        "enabled",
        "servers",
        "node_class",
        "meta",
        "template",
        "host_volume",
    ],
    ignored: IGNORED_CLIENT,
};
const CLIENT_TEMPLATE_WAIT_BOUNDS: Section = Section {
    name: "client.template.wait_bounds",
    known: &["min", "max"],
    ignored: &[],
};
const CLIENT_TEMPLATE: Section = Section {
    name: "client.template",
    known: &["disable_file_sandbox", "wait_bounds"],
    ignored: &[
        "function_denylist",
        "function_blacklist",
        "max_stale",
        "block_query_wait",
        "wait",
        "consul_retry",
        "vault_retry",
        "nomad_retry",
    ],
};

/// One setting as written, in either syntax: its name and where the name is, and its value.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    key: String,
    at: Pos,
    value: Node,
}

/// A setting's value and where it starts.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    at: Pos,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Null,
    Bool(bool),
    Number(f64),
    Str(String),
    List(Vec<Node>),
    /// An HCL block or object, or a YAML/JSON mapping, entries in source order.
    Map(Vec<Entry>),
    /// An HCL expression that is not a literal (`var.x`, `"${a}"`, `f(x)`): not evaluated.
    Expression,
}

impl Kind {
    /// How an error names what it found.
    fn found(&self) -> String {
        match self {
            Kind::Null => "null".into(),
            Kind::Bool(b) => b.to_string(),
            Kind::Number(n) => n.to_string(),
            Kind::Str(s) => format!("{s:?}"),
            Kind::List(_) => "a list".into(),
            Kind::Map(_) => "a map".into(),
            Kind::Expression => "an expression (only literal values are read)".into(),
        }
    }
}

/// Which syntax a file is in. The content decides when it can only be one (`{` or `[` first is
/// JSON; `---` or a first line `name:` is YAML), then the name (`.yaml`, `.yml`, `.json`), then
/// HCL. JSON is read as YAML, which it is a subset of.
fn is_yaml(file: &str, text: &str) -> bool {
    match detect_format(file, text) {
        Format::Yaml | Format::Json => true,
        Format::Hcl => {
            // HCL's first setting is `name = ...` or `name {`; YAML's is `name: ...`.
            let first = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("//"))
                .unwrap_or("");
            let rest =
                first.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_' || c == '-');
            rest.len() < first.len() && rest.trim_start().starts_with(':')
        }
    }
}

/// The HCL front end: the body's attributes and blocks as settings. A labelled block
/// (`plugin "docker" { ... }`) is a setting whose value maps each label to what follows it.
fn from_hcl(
    file: &str,
    text: &str,
    errors: &mut Vec<Diagnostic>,
) -> Result<Vec<Entry>, Vec<Diagnostic>> {
    let body = hcl_edit::parser::parse_body(text).map_err(|e| {
        let loc = e.location();
        vec![Diagnostic::error(
            file,
            Pos::new(loc.line() as u32, loc.column() as u32),
            e.message().to_string(),
        )]
    })?;
    let mut hcl = Hcl {
        file,
        index: LineIndex::new(text),
        errors,
    };
    Ok(hcl.body(&body))
}

struct Hcl<'a> {
    file: &'a str,
    index: LineIndex<'a>,
    errors: &'a mut Vec<Diagnostic>,
}

impl Hcl<'_> {
    fn pos(&self, span: Option<std::ops::Range<usize>>) -> Pos {
        span.map(|r| self.index.pos(r.start)).unwrap_or_default()
    }

    fn body(&mut self, body: &Body) -> Vec<Entry> {
        body.iter()
            .map(|s| match s {
                Structure::Attribute(a) => Entry {
                    key: a.key.value().to_string(),
                    at: self.pos(a.span()),
                    value: self.expr(&a.value),
                },
                Structure::Block(b) => {
                    let at = self.pos(b.span());
                    let mut value = Node {
                        at,
                        kind: Kind::Map(self.body(&b.body)),
                    };
                    for label in b.labels.iter().rev() {
                        let (key, at) = match label {
                            BlockLabel::Ident(i) => (i.value().to_string(), self.pos(i.span())),
                            BlockLabel::String(s) => (s.value().to_string(), self.pos(s.span())),
                        };
                        value = Node {
                            at,
                            kind: Kind::Map(vec![Entry { key, at, value }]),
                        };
                    }
                    Entry {
                        key: b.ident.value().to_string(),
                        at,
                        value,
                    }
                }
            })
            .collect()
    }

    fn expr(&mut self, e: &Expression) -> Node {
        let at = self.pos(e.span());
        let kind = match e {
            Expression::Null(_) => Kind::Null,
            Expression::Bool(b) => Kind::Bool(*b.value()),
            Expression::Number(n) => n.value().as_f64().map_or(Kind::Expression, Kind::Number),
            Expression::String(s) => Kind::Str(s.value().to_string()),
            Expression::Array(a) => Kind::List(a.iter().map(|v| self.expr(v)).collect()),
            Expression::Object(o) => {
                let mut entries = Vec::new();
                for (k, v) in o.iter() {
                    let key = match k {
                        ObjectKey::Ident(i) => i.value().to_string(),
                        ObjectKey::Expression(Expression::String(s)) => s.value().to_string(),
                        ObjectKey::Expression(other) => {
                            let pos = self.pos(other.span());
                            self.errors.push(Diagnostic::error(
                                self.file,
                                pos,
                                "object keys must be names or strings",
                            ));
                            continue;
                        }
                    };
                    entries.push(Entry {
                        key,
                        at: self.pos(k.span()),
                        value: self.expr(v.expr()),
                    });
                }
                Kind::Map(entries)
            }
            Expression::Parenthesis(p) => return self.expr(p.inner()),
            // `-5` is an operator applied to a number.
            Expression::UnaryOp(op) if *op.operator.value() == UnaryOperator::Neg => {
                match self.expr(&op.expr).kind {
                    Kind::Number(n) => Kind::Number(-n),
                    _ => Kind::Expression,
                }
            }
            _ => Kind::Expression,
        };
        Node { at, kind }
    }
}

/// The YAML/JSON front end: one document holding a map of settings (an empty file is an empty
/// config).
fn from_yaml(file: &str, text: &str) -> Result<Vec<Entry>, Vec<Diagnostic>> {
    let mut docs = nomos_api::manifest::read_yaml_tree(file, text)?;
    if let Some(second) = docs.get(1) {
        return Err(vec![Diagnostic::error(
            file,
            second.pos,
            format!(
                "a configuration file holds one YAML document, found {} (the second starts here)",
                docs.len()
            ),
        )]);
    }
    let Some(doc) = docs.pop() else {
        return Ok(vec![]);
    };
    match yaml_node(doc) {
        Node {
            kind: Kind::Map(entries),
            ..
        } => Ok(entries),
        other => Err(vec![Diagnostic::error(
            file,
            other.at,
            format!("expected a map of settings, found {}", other.kind.found()),
        )]),
    }
}

fn yaml_node(n: SNode) -> Node {
    let kind = match n.node {
        YamlNode::Null => Kind::Null,
        YamlNode::Bool(b) => Kind::Bool(b),
        YamlNode::Int(i) => Kind::Number(i as f64),
        YamlNode::UInt(u) => Kind::Number(u as f64),
        YamlNode::Float(f) => Kind::Number(f),
        YamlNode::Str(s) => Kind::Str(s),
        YamlNode::Seq(items) => Kind::List(items.into_iter().map(yaml_node).collect()),
        YamlNode::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(key, at, value)| Entry {
                    key,
                    at,
                    value: yaml_node(value),
                })
                .collect(),
        ),
    };
    Node { at: n.pos, kind }
}

/// Checks the settings and converts them, collecting every finding.
struct Reader<'a> {
    file: &'a str,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn error(&mut self, at: Pos, msg: String) {
        self.errors.push(Diagnostic::error(self.file, at, msg));
    }

    fn expected(&mut self, name: &str, what: &str, v: &Node) {
        self.error(
            v.at,
            format!("{name}: expected {what}, found {}", v.kind.found()),
        );
    }

    fn string(&mut self, name: &str, v: &Node) -> Option<String> {
        match &v.kind {
            Kind::Str(s) => Some(s.clone()),
            _ => {
                self.expected(name, "a string", v);
                None
            }
        }
    }

    fn boolean(&mut self, name: &str, v: &Node) -> bool {
        match v.kind {
            Kind::Bool(b) => b,
            _ => {
                self.expected(name, "true or false", v);
                false
            }
        }
    }

    fn number(&mut self, name: &str, v: &Node) -> Option<f64> {
        match v.kind {
            Kind::Number(n) => Some(n),
            _ => {
                self.expected(name, "a number", v);
                None
            }
        }
    }

    /// A whole number of at least `min`.
    fn whole(&mut self, name: &str, v: &Node, min: u64) -> Option<u64> {
        let n = self.number(name, v)?;
        if n.fract() == 0.0 && n >= min as f64 {
            return Some(n as u64);
        }
        let wanted = if min == 0 {
            "a whole number".to_string()
        } else {
            format!("a whole number of at least {min}")
        };
        self.error(v.at, format!("{name}: expected {wanted}, found {n}"));
        None
    }

    fn port(&mut self, name: &str, v: &Node) -> Option<u16> {
        match v.kind {
            Kind::Number(n) if n.fract() == 0.0 && (0.0..=65535.0).contains(&n) => Some(n as u16),
            _ => {
                self.expected(name, "a port number (0 to 65535)", v);
                None
            }
        }
    }

    /// A Go duration (`"500ms"`, `"1m30s"`) or a whole number of seconds.
    fn duration(&mut self, name: &str, v: &Node) -> Option<std::time::Duration> {
        match &v.kind {
            Kind::Str(s) => match nomos_api::duration::parse_duration(s) {
                Ok(ns) => Some(std::time::Duration::from_nanos(ns)),
                Err(why) => {
                    self.error(v.at, format!("{name}: {why}"));
                    None
                }
            },
            _ => self.seconds(name, v).map(std::time::Duration::from_secs),
        }
    }

    /// A Go duration (`"10s"`, `"1m30s"`) or a whole number of seconds.
    fn seconds(&mut self, name: &str, v: &Node) -> Option<u64> {
        match &v.kind {
            Kind::Number(n) if n.fract() == 0.0 && *n >= 0.0 => Some(*n as u64),
            Kind::Str(s) => match nomos_api::duration::parse_duration(s) {
                Ok(ns) => Some(ns / 1_000_000_000),
                Err(why) => {
                    self.error(v.at, format!("{name}: {why}"));
                    None
                }
            },
            _ => {
                self.expected(name, "a duration such as \"10s\"", v);
                None
            }
        }
    }

    fn strings(&mut self, name: &str, v: &Node) -> Vec<String> {
        match &v.kind {
            Kind::List(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.string(&format!("{name}[{i}]"), item))
                .collect(),
            _ => {
                self.expected(name, "a list of strings", v);
                vec![]
            }
        }
    }

    fn string_map(&mut self, name: &str, v: &Node) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        match &v.kind {
            Kind::Map(entries) => {
                for e in entries {
                    if let Some(s) = self.string(&format!("{name}.{}", e.key), &e.value) {
                        out.insert(e.key.clone(), s);
                    }
                }
            }
            _ => self.expected(name, "a map of strings", v),
        }
        out
    }

    /// The settings of a section (a block, or a map; empty when written as `null`).
    fn section<'v>(&mut self, name: &str, v: &'v Node) -> &'v [Entry] {
        match &v.kind {
            Kind::Map(entries) => entries,
            Kind::Null => &[],
            _ => {
                self.expected(name, "a block or map of settings", v);
                &[]
            }
        }
    }

    /// A Nomad setting Nomos understands but does not act on: a warning at its name.
    fn ignored(&mut self, full: &str, at: Pos) {
        self.warnings.push(Diagnostic::warning(
            self.file,
            at,
            format!("{full}: Nomad setting not supported by Nomos; ignored"),
        ));
    }

    /// A setting the section does not read: a warning if Nomad has it, else an error.
    fn unknown(&mut self, section: &Section, e: &Entry) {
        let full = if section.name.is_empty() {
            e.key.clone()
        } else {
            format!("{}.{}", section.name, e.key)
        };
        if section.ignored.contains(&e.key.as_str()) {
            self.ignored(&full, e.at);
        } else {
            let hint = nomos_api::diag::did_you_mean(&e.key, section.known.iter().copied())
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            self.error(e.at, format!("unknown setting {full:?}{hint}"));
        }
    }
}

/// Parses a config file: YAML or JSON (see [`is_yaml`]), else HCL. Errors (and warnings) read
/// `FILE:LINE:COL: message`, the position being the setting's name, or its value when the value
/// is wrong.
pub fn parse(file: &str, text: &str) -> Result<(FileConfig, Vec<Diagnostic>), Vec<Diagnostic>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut errors = Vec::new();
    let settings = if is_yaml(file, text) {
        from_yaml(file, text)?
    } else {
        from_hcl(file, text, &mut errors)?
    };
    let mut r = Reader {
        file,
        errors,
        warnings: vec![],
    };
    let cfg = read(&mut r, &settings);
    if r.errors.is_empty() {
        Ok((cfg, r.warnings))
    } else {
        let mut all = r.errors;
        all.extend(r.warnings);
        nomos_api::diag::sort_diagnostics(&mut all);
        Err(all)
    }
}

/// Reads the top-level settings.
fn read(r: &mut Reader<'_>, settings: &[Entry]) -> FileConfig {
    let mut cfg = FileConfig::default();
    for e in settings {
        let (key, v) = (e.key.as_str(), &e.value);
        match key {
            "data_dir" => cfg.data_dir = r.string(key, v).map(PathBuf::from),
            "datacenter" => cfg.datacenter = r.string(key, v),
            "name" => cfg.name = r.string(key, v),
            "bind_addr" => {
                if let Some(s) = r.string(key, v) {
                    match s.parse() {
                        Ok(ip) => cfg.bind_addr = Some(ip),
                        Err(_) => r.expected(key, "an IP address", v),
                    }
                }
            }
            "ports" => {
                for p in r.section(key, v) {
                    match p.key.as_str() {
                        "http" => cfg.http_port = r.port("ports.http", &p.value),
                        _ => r.unknown(&PORTS, p),
                    }
                }
            }
            "server" => {
                let entries = r.section(key, v);
                read_server(r, entries, &mut cfg.server)
            }
            "client" => {
                let entries = r.section(key, v);
                read_client(r, entries, &mut cfg.client)
            }
            "plugin" => {
                let plugins = r.section(key, v);
                read_plugins(r, plugins, &mut cfg)
            }
            "tls" => {
                let entries = r.section(key, v);
                tls::read(r, entries, &mut cfg.tls)
            }
            "limits" => {
                let entries = r.section(key, v);
                limits::read(r, entries, &mut cfg.limits)
            }
            "acl" => {
                for a in r.section(key, v) {
                    match a.key.as_str() {
                        "enabled" => cfg.acl_enabled = r.boolean("acl.enabled", &a.value),
                        _ => r.unknown(&ACL, a),
                    }
                }
            }
            _ => r.unknown(&TOP, e),
        }
    }
    cfg
}

fn read_server(r: &mut Reader<'_>, settings: &[Entry], out: &mut ServerSection) {
    for e in settings {
        let name = format!("server.{}", e.key);
        let v = &e.value;
        match e.key.as_str() {
            "enabled" => out.enabled = r.boolean(&name, v),
            "heartbeat_grace" => out.heartbeat_grace_secs = r.seconds(&name, v),
            "min_heartbeat_ttl" => out.min_heartbeat_ttl_secs = r.seconds(&name, v),
            "max_heartbeats_per_second" => out.max_heartbeats_per_second = r.number(&name, v),
            "job_gc_interval" => out.job_gc_interval_secs = r.seconds(&name, v),
            "job_gc_threshold" => out.job_gc_threshold_secs = r.seconds(&name, v),
            "eval_gc_threshold" => out.eval_gc_threshold_secs = r.seconds(&name, v),
            "default_lost_after" => out.default_lost_after_secs = r.seconds(&name, v),
            "periodic_history_limit" => out.periodic_history_limit = r.whole(&name, v, 0),
            "job_tracked_versions" => out.job_tracked_versions = r.whole(&name, v, 1),
            "keyring_key_file" => out.keyring_key_file = r.string(&name, v).map(PathBuf::from),
            _ => r.unknown(&SERVER, e),
        }
    }
}

fn read_client(r: &mut Reader<'_>, settings: &[Entry], out: &mut ClientSection) {
    for e in settings {
        let name = format!("client.{}", e.key);
        let v = &e.value;
        match e.key.as_str() {
            "enabled" => out.enabled = r.boolean(&name, v),
            "servers" => out.servers = r.strings(&name, v),
            "node_class" => out.node_class = r.string(&name, v),
            // A block (`meta { rack = "r1" }`) or a map (`meta = { ... }`, YAML's `meta:`).
            "meta" => out.meta = r.string_map(&name, v),
            "host_volume" => host_volumes::read_host_volume(r, e, &mut out.host_volumes),
            "template" => {
                for t in r.section(&name, v) {
                    match t.key.as_str() {
                        "disable_file_sandbox" => {
                            out.disable_file_sandbox =
                                r.boolean("client.template.disable_file_sandbox", &t.value)
                        }
                        "wait_bounds" => out.template_wait_bounds = read_wait_bounds(r, t),
                        _ => r.unknown(&CLIENT_TEMPLATE, t),
                    }
                }
            }
            _ => r.unknown(&CLIENT, e),
        }
    }
}

/// `client.template.wait_bounds { min max }`: durations, `min` not above `max`.
fn read_wait_bounds(r: &mut Reader<'_>, e: &Entry) -> nomos_agent::config::WaitBounds {
    let mut b = nomos_agent::config::WaitBounds::default();
    let name = "client.template.wait_bounds";
    for w in r.section(name, &e.value) {
        let v = &w.value;
        match w.key.as_str() {
            "min" => b.min = r.duration(&format!("{name}.min"), v),
            "max" => b.max = r.duration(&format!("{name}.max"), v),
            _ => r.unknown(&CLIENT_TEMPLATE_WAIT_BOUNDS, w),
        }
    }
    if let (Some(min), Some(max)) = (b.min, b.max) {
        if min > max {
            let msg = format!("{name}: min ({min:?}) is above max ({max:?})");
            r.error(e.at, msg);
        }
    }
    b
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
        let published = cfg.heartbeat_config();
        assert_eq!(
            (
                published.heartbeat_grace_ms,
                published.min_heartbeat_ttl_ms,
                published.max_heartbeats_per_second
            ),
            (30_000, 15_000, 50.0)
        );
        let base = nomos_controllers::ControllersConfig::default();
        let unchanged = FileConfig::default().controllers(base.clone());
        assert_eq!(
            (unchanged.gc, unchanged.lifecycle, unchanged.periodic),
            (
                base.gc.clone(),
                base.lifecycle.clone(),
                base.periodic.clone()
            ),
            "a file without these settings keeps the defaults"
        );
        assert_eq!(
            FileConfig::default().heartbeat_config(),
            nomos_api::heartbeat::HeartbeatConfig::default(),
            "Nomad's defaults for what the file leaves out"
        );
        assert_eq!(cfg.client.servers, vec!["http://127.0.0.1:4748"]);
        assert_eq!(cfg.client.node_class.as_deref(), Some("pi"));
        assert_eq!(cfg.client.meta.get("rack").map(String::as_str), Some("r1"));
        let w: Vec<String> = warnings.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            w,
            vec![
                "nomad.hcl:6:1: warning: log_level: Nomad setting not supported by Nomos; ignored",
                "nomad.hcl:10:3: warning: ports.rpc: Nomad setting not supported by Nomos; ignored",
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
            (
                "name = \"${var.host}\"\n",
                "cfg.hcl:1:8: name: expected a string, found an expression",
            ),
            (
                "ports {\n  http = 70000\n}\n",
                "cfg.hcl:2:10: ports.http: expected a port number (0 to 65535), found 70000",
            ),
            (
                "server \"x\" {}\n",
                "cfg.hcl:1:8: unknown setting \"server.x\"",
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

    #[test]
    fn hcl_blocks_may_also_be_written_as_objects() {
        let text = "server = { enabled = true }\nclient = { meta = { rack = \"r1\" } }\nplugin \"podman\" {\n  config {}\n}\n";
        let (cfg, warnings) = parse("cfg.hcl", text).expect("valid");
        assert!(cfg.server.enabled);
        assert_eq!(
            strings(&warnings),
            ["cfg.hcl:3:8: warning: plugin.podman: Nomad setting not supported by Nomos; ignored"]
        );
        assert_eq!(cfg.client.meta.get("rack").map(String::as_str), Some("r1"));
    }

    #[test]
    fn a_java_plugin_block_is_known_and_its_nomad_settings_warned_about() {
        let text = "plugin \"java\" {\n  config {\n    default_pid_mode = \"host\"\n  }\n}\n";
        let (_, warnings) = parse("cfg.hcl", text).expect("valid");
        assert_eq!(
            strings(&warnings),
            ["cfg.hcl:3:5: warning: plugin.java.config.default_pid_mode: Nomad setting not supported by Nomos; ignored"]
        );
        let typo = "plugin \"java\" {\n  config {\n    jvm = \"17\"\n  }\n}\n";
        let errors = strings(&parse("cfg.hcl", typo).expect_err("unknown setting"));
        assert_eq!(
            errors,
            ["cfg.hcl:3:5: unknown setting \"plugin.java.config.jvm\""]
        );
    }

    #[test]
    fn raw_exec_and_the_template_sandbox_are_read_from_nomads_blocks() {
        let text = r#"plugin "raw_exec" {
  config {
    enabled    = true
    no_cgroups = true
  }
}
plugin "docker" {
  config {
    allow_privileged = false
    volumes {
      enabled = true
    }
  }
}
client {
  template {
    disable_file_sandbox = true
    max_stale            = "10s"
  }
}
"#;
        let (cfg, warnings) = parse("cfg.hcl", text).expect("valid");
        assert!(cfg.raw_exec_enabled && cfg.docker_volumes_enabled);
        assert!(cfg.client.disable_file_sandbox);
        let w = strings(&warnings);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].contains("plugin.raw_exec.config.no_cgroups: Nomad setting"),
            "{w:?}"
        );
        assert!(
            w[1].contains("plugin.docker.config.allow_privileged: Nomad"),
            "{w:?}"
        );
        assert!(
            w[2].contains("client.template.max_stale: Nomad setting"),
            "{w:?}"
        );

        let (off, _) = parse("cfg.hcl", "client {\n  enabled = true\n}\n").expect("valid");
        assert!(
            !off.raw_exec_enabled
                && !off.docker_volumes_enabled
                && !off.client.disable_file_sandbox,
            "all are off unless the file turns them on"
        );
        let bad = "plugin \"raw_exec\" {\n  config {\n    enabled = \"yes\"\n  }\n}\n";
        let errors = strings(&parse("cfg.hcl", bad).expect_err("a string is not a bool"));
        assert_eq!(
            errors,
            ["cfg.hcl:3:15: plugin.raw_exec.config.enabled: expected true or false, found \"yes\""]
        );
        let typo = "plugin \"raw_exec\" {\n  config {\n    enable = true\n  }\n}\n";
        let errors = strings(&parse("cfg.hcl", typo).expect_err("unknown setting"));
        assert!(
            errors[0].contains("did you mean \"enabled\"?"),
            "{errors:?}"
        );
    }

    #[test]
    fn qemus_plugin_block_sets_where_images_come_from_and_which_flags_pass() {
        let text = "plugin \"qemu\" {\n  config {\n    image_paths    = [\"/srv/vm\", \"/srv/iso\"]\n    args_allowlist = [\"-drive\"]\n  }\n}\n";
        let (cfg, warnings) = parse("cfg.hcl", text).expect("valid");
        assert!(warnings.is_empty(), "{:?}", strings(&warnings));
        assert_eq!(cfg.qemu_image_paths, ["/srv/vm", "/srv/iso"]);
        assert_eq!(cfg.qemu_args_allowlist, Some(vec!["-drive".to_string()]));
        let (unset, _) = parse("cfg.hcl", "plugin \"qemu\" {}\n").expect("valid");
        assert!(unset.qemu_image_paths.is_empty() && unset.qemu_args_allowlist.is_none());
        let bad = "plugin \"qemu\" {\n  config {\n    args_allowlist = \"-drive\"\n  }\n}\n";
        let errors = strings(&parse("cfg.hcl", bad).expect_err("not a list"));
        assert!(
            errors[0].starts_with(
                "cfg.hcl:3:22: plugin.qemu.config.args_allowlist: expected a list of strings"
            ),
            "{errors:?}"
        );
        let typo = "plugin \"qemu\" {\n  config {\n    image_path = [\"/srv/vm\"]\n  }\n}\n";
        let errors = strings(&parse("cfg.hcl", typo).expect_err("unknown setting"));
        assert!(
            errors[0].contains("unknown setting \"plugin.qemu.config.image_path\""),
            "{errors:?}"
        );
    }

    /// `NOMAD` in YAML.
    const NOMAD_YAML: &str = r#"
# A Nomad single-node agent config.
data_dir: /opt/nomad/data
datacenter: home
bind_addr: 0.0.0.0
log_level: INFO

ports:
  http: 4646
  rpc: 4647

server:
  enabled: true
  bootstrap_expect: 1
  heartbeat_grace: 30s
  min_heartbeat_ttl: "15s"
  max_heartbeats_per_second: 50.0

client:
  enabled: true
  servers: ["http://127.0.0.1:4748"]
  node_class: pi
  meta:
    rack: r1
"#;

    /// `NOMAD` in JSON (Nomad's own JSON agent config has this shape).
    const NOMAD_JSON: &str = r#"{
  "data_dir": "/opt/nomad/data",
  "datacenter": "home",
  "bind_addr": "0.0.0.0",
  "log_level": "INFO",
  "ports": {"http": 4646, "rpc": 4647},
  "server": {
    "enabled": true,
    "bootstrap_expect": 1,
    "heartbeat_grace": "30s",
    "min_heartbeat_ttl": "15s",
    "max_heartbeats_per_second": 50.0
  },
  "client": {
    "enabled": true,
    "servers": ["http://127.0.0.1:4748"],
    "node_class": "pi",
    "meta": {"rack": "r1"}
  }
}
"#;

    #[test]
    fn the_acl_block_turns_acls_on() {
        let (cfg, warnings) = parse(
            "cfg.hcl",
            "acl {\n  enabled   = true\n  token_ttl = \"30s\"\n}\n",
        )
        .expect("valid");
        assert!(cfg.acl_enabled);
        assert_eq!(
            strings(&warnings),
            ["cfg.hcl:3:3: warning: acl.token_ttl: Nomad setting not supported by Nomos; ignored"]
        );
        let (cfg, _) = parse("cfg.hcl", "datacenter = \"dc1\"\n").expect("valid");
        assert!(!cfg.acl_enabled, "off unless configured");
    }

    #[test]
    fn the_keyring_key_file_is_a_server_setting() {
        let text = "server {\n  enabled          = true\n  keyring_key_file = \"/etc/nomos/keyring.key\"\n}\n";
        let (cfg, warnings) = parse("cfg.hcl", text).expect("valid");
        assert!(warnings.is_empty(), "{:?}", strings(&warnings));
        assert_eq!(
            cfg.server.keyring_key_file,
            Some(PathBuf::from("/etc/nomos/keyring.key"))
        );
        let text = "server {\n  keyring_key_file = 3\n}\n";
        assert!(parse("cfg.hcl", text).is_err(), "a number is not a path");
    }

    fn strings(diags: &[Diagnostic]) -> Vec<String> {
        diags.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn yaml_and_json_configs_read_like_the_same_hcl_config() {
        let (want, _) = parse("nomad.hcl", NOMAD).expect("valid HCL");
        let cases = [
            (
                "nomad.yaml",
                NOMAD_YAML,
                [
                    "nomad.yaml:6:1: warning: log_level: Nomad setting not supported by Nomos; ignored",
                    "nomad.yaml:10:3: warning: ports.rpc: Nomad setting not supported by Nomos; ignored",
                    "nomad.yaml:14:3: warning: server.bootstrap_expect: Nomad setting not supported by Nomos; ignored",
                ],
            ),
            (
                "nomad.json",
                NOMAD_JSON,
                [
                    "nomad.json:5:3: warning: log_level: Nomad setting not supported by Nomos; ignored",
                    "nomad.json:6:27: warning: ports.rpc: Nomad setting not supported by Nomos; ignored",
                    "nomad.json:9:5: warning: server.bootstrap_expect: Nomad setting not supported by Nomos; ignored",
                ],
            ),
        ];
        for (file, text, warnings) in cases {
            let (cfg, got) = parse(file, text).unwrap_or_else(|e| panic!("{file}: {e:?}"));
            assert_eq!(cfg, want, "{file}");
            assert_eq!(strings(&got), warnings, "{file}");
        }
    }

    #[test]
    fn gc_lifecycle_and_periodic_settings_reach_the_controllers() {
        let text = r#"
server {
  enabled                = true
  job_gc_interval        = "1m"
  job_gc_threshold       = "2h"
  eval_gc_threshold      = "30m"
  default_lost_after     = "90s"
  periodic_history_limit = 3
  job_tracked_versions   = 10
}
"#;
        let (cfg, warnings) = parse("srv.hcl", text).expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        let c = cfg.controllers(nomos_controllers::ControllersConfig::default());
        assert_eq!(c.gc.interval_ms, 60_000);
        assert_eq!(c.gc.job_gc_threshold_ms, 7_200_000);
        assert_eq!(c.gc.alloc_gc_threshold_ms, 1_800_000);
        assert_eq!(c.gc.eval_gc_threshold_ms, 1_800_000);
        assert_eq!(c.lifecycle.default_lost_after_ms, 90_000);
        assert_eq!(c.periodic.history_limit, 3);
        assert_eq!(c.gc.job_versions_kept, 10);

        let bad = parse("srv.hcl", "server {\n  periodic_history_limit = 2.5\n}\n")
            .expect_err("a fraction is refused");
        assert_eq!(
            bad[0].to_string(),
            "srv.hcl:2:28: server.periodic_history_limit: expected a whole number, found 2.5"
        );
        let bad = parse("srv.hcl", "server {\n  job_tracked_versions = 0\n}\n")
            .expect_err("at least the current version is kept");
        assert_eq!(
            bad[0].to_string(),
            "srv.hcl:2:26: server.job_tracked_versions: expected a whole number of at least 1, found 0"
        );
    }

    #[test]
    fn the_syntax_comes_from_the_content_then_the_file_name() {
        let cases = [
            ("agent.hcl", "datacenter = \"x\"\n", false),
            ("agent.hcl", "# HCL\nserver {\n}\n", false),
            ("agent", "datacenter = \"x\"\n", false),
            ("agent.yaml", "datacenter: x\n", true),
            ("agent.yml", "", true),
            ("agent.json", "", true),
            ("agent.conf", "# YAML\ndatacenter: x\n", true),
            ("agent.conf", "---\n", true),
            ("agent", "  {\"datacenter\": \"x\"}", true),
            ("agent.hcl", "{\"datacenter\": \"x\"}", true),
        ];
        for (file, text, yaml) in cases {
            assert_eq!(is_yaml(file, text), yaml, "{file}: {text:?}");
            parse(file, text).unwrap_or_else(|e| panic!("{file}: {text:?}: {e:?}"));
        }
    }

    #[test]
    fn template_wait_bounds_are_read_and_checked() {
        use std::time::Duration;
        let text = "client {\n  template {\n    wait_bounds {\n      min = \"500ms\"\n      max = \"1m\"\n    }\n  }\n}\n";
        let (cfg, warnings) = parse("cfg.hcl", text).expect("valid");
        assert!(warnings.is_empty(), "{:?}", strings(&warnings));
        let b = cfg.client.template_wait_bounds;
        assert_eq!(
            (b.min, b.max),
            (
                Some(Duration::from_millis(500)),
                Some(Duration::from_secs(60))
            )
        );
        let yaml = "client:\n  template:\n    wait_bounds: {max: 5}\n";
        let (cfg, _) = parse("cfg.yaml", yaml).expect("valid");
        let b = cfg.client.template_wait_bounds;
        assert_eq!((b.min, b.max), (None, Some(Duration::from_secs(5))));
        // (text, the first diagnostic)
        let bad = [
            (
                "client {\n  template {\n    wait_bounds {\n      min = \"9s\"\n      max = \"2s\"\n    }\n  }\n}\n",
                "cfg.hcl:3:5: client.template.wait_bounds: min (9s) is above max (2s)",
            ),
            (
                "client {\n  template {\n    wait_bounds {\n      min = \"soon\"\n    }\n  }\n}\n",
                "cfg.hcl:4:13: client.template.wait_bounds.min:",
            ),
            (
                "client {\n  template {\n    wait_bounds {\n      mn = \"1s\"\n    }\n  }\n}\n",
                "cfg.hcl:4:7: unknown setting \"client.template.wait_bounds.mn\"",
            ),
        ];
        for (text, want) in bad {
            let e = strings(&parse("cfg.hcl", text).unwrap_err());
            assert!(e[0].starts_with(want), "{text:?}: {e:?}");
        }
    }

    #[test]
    fn yaml_findings_name_the_setting_and_its_position() {
        // (file, text, the first diagnostic)
        let cases = [
            (
                "cfg.yaml",
                "datacentre: x\n",
                "cfg.yaml:1:1: unknown setting \"datacentre\" (did you mean \"datacenter\"?)",
            ),
            (
                "cfg.yaml",
                "server:\n  enabeld: true\n",
                "cfg.yaml:2:3: unknown setting \"server.enabeld\" (did you mean \"enabled\"?)",
            ),
            (
                "cfg.yaml",
                "client:\n  enabled: true\n  meta:\n    rack: r1\n  ports: {http: 1}\n",
                "cfg.yaml:5:3: unknown setting \"client.ports\"",
            ),
            (
                "cfg.json",
                "{\n  \"server\": {\"enabeld\": true}\n}",
                "cfg.json:2:14: unknown setting \"server.enabeld\" (did you mean \"enabled\"?)",
            ),
            (
                "cfg.yaml",
                "region: eu\nclient:\n  network_interface: eth0\n  bogus: 1\n",
                "cfg.yaml:1:1: warning: region: Nomad setting not supported by Nomos; ignored",
            ),
            (
                "cfg.yaml",
                "client:\n  network_interface: eth0\n  bogus: 1\n",
                "cfg.yaml:2:3: warning: client.network_interface: Nomad setting not supported by Nomos; ignored",
            ),
        ];
        for (file, text, want) in cases {
            let errs = parse(file, text).expect_err(text);
            assert_eq!(errs[0].to_string(), want, "{text:?}");
        }
    }

    #[test]
    fn ignored_nomad_settings_in_yaml_warn_with_their_line() {
        let (_, warnings) = parse(
            "cfg.yaml",
            "region: eu\nclient:\n  enabled: true\n  network_interface: eth0\n",
        )
        .expect("valid");
        assert_eq!(
            strings(&warnings),
            [
                "cfg.yaml:1:1: warning: region: Nomad setting not supported by Nomos; ignored",
                "cfg.yaml:4:3: warning: client.network_interface: Nomad setting not supported by Nomos; ignored",
            ]
        );
    }

    #[test]
    fn wrong_types_are_errors_at_the_value() {
        let cases = [
            (
                "server: {enabled: \"yes\"}\n",
                "cfg.yaml:1:19: server.enabled: expected true or false, found \"yes\"",
            ),
            (
                "server: true\n",
                "cfg.yaml:1:9: server: expected a block or map of settings, found true",
            ),
            (
                "server:\n  heartbeat_grace: 10x\n",
                "cfg.yaml:2:20: server.heartbeat_grace: expected a duration such as \"30s\", \"5m\" or \"1h30m\", found \"10x\"",
            ),
            (
                "server:\n  min_heartbeat_ttl: 1.5\n",
                "cfg.yaml:2:22: server.min_heartbeat_ttl: expected a duration such as \"10s\", found 1.5",
            ),
            (
                "server:\n  max_heartbeats_per_second: lots\n",
                "cfg.yaml:2:30: server.max_heartbeats_per_second: expected a number, found \"lots\"",
            ),
            (
                "client:\n  meta:\n    rack: 1\n",
                "cfg.yaml:3:11: client.meta.rack: expected a string, found 1",
            ),
            (
                "client:\n  meta: [rack]\n",
                "cfg.yaml:2:9: client.meta: expected a map of strings, found a list",
            ),
            (
                "client:\n  servers: http://10.0.0.1:4748\n",
                "cfg.yaml:2:12: client.servers: expected a list of strings, found \"http://10.0.0.1:4748\"",
            ),
            (
                "client:\n  servers: [\"http://a:1\", 2]\n",
                "cfg.yaml:2:27: client.servers[1]: expected a string, found 2",
            ),
            (
                "bind_addr: nope\n",
                "cfg.yaml:1:12: bind_addr: expected an IP address, found \"nope\"",
            ),
            (
                "ports:\n  http: -1\n",
                "cfg.yaml:2:9: ports.http: expected a port number (0 to 65535), found -1",
            ),
            (
                "datacenter:\n",
                "cfg.yaml:1:11: datacenter: expected a string, found null",
            ),
        ];
        for (text, want) in cases {
            let errs = parse("cfg.yaml", text).expect_err(text);
            assert_eq!(errs[0].to_string(), want, "{text:?}");
        }
    }

    #[test]
    fn a_yaml_config_is_one_document_holding_a_map() {
        let cases = [
            (
                "datacenter: a\n---\ndatacenter: b\n",
                "cfg.yaml:3:1: a configuration file holds one YAML document, found 2 (the second starts here)",
            ),
            (
                "- datacenter: a\n",
                "cfg.yaml:1:1: expected a map of settings, found a list",
            ),
            ("server:\n  enabled: [\n", "cfg.yaml:"),
        ];
        for (text, want) in cases {
            let errs = parse("cfg.yaml", text).expect_err(text);
            let first = errs[0].to_string();
            assert!(
                first.starts_with(want),
                "{text:?}: got {first:?}, want {want:?}"
            );
            assert!(errs[0].line > 0, "{first}");
        }
        let (cfg, warnings) = parse("cfg.yaml", "# nothing yet\n").expect("empty is valid");
        assert_eq!((cfg, warnings), (FileConfig::default(), vec![]));
    }
}
