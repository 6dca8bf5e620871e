//! A task's `template` blocks rendered as Nomad renders them: Go `text/template` with
//! consul-template's functions (`nomos-template`), plus the data sources a node offers: `env`
//! (the task's environment), `nomadVar`, `nomadVarList`, `nomadVarExists` (Variables read
//! from the servers' API with the task's workload identity, as Nomad's client does), and
//! `nomadService`, `nomadServices` (the service catalogue, read from the store, in the task's
//! namespace; `nomadService` lists healthy instances only), `key`, `keyOrDefault` and `ls`
//! (the users' key-value space, `/nomos/kv/`), `file` (beneath the task directory) and
//! `sockaddr` (the node's addresses, [`crate::netaddrs`]).
//!
//! A body without the left delimiter is written as it is (after `${...}` interpolation);
//! with one, it must parse and render, or the task does not start: `{{ }}` is never written
//! out unrendered. `key` on a key that does not exist yet, and `nomadVar` on a Variable that
//! does not, do not fail the render: as in consul-template, the template waits for them
//! (`nomadVarExists` and `nomadVarList` answer at once). [`TaskSources::missing`] lists them
//! (`kv.block(<path>)`, `nomad.var.block(<path>@<namespace>)`); the caller discards the render
//! and waits for the key-value space to change, or asks the servers again.

use std::collections::{BTreeMap, BTreeSet};

use nomos_api::service::ServiceRegistration;
use nomos_api::Template as TemplateBlock;
use nomos_template::{Sources, Template, Value};

use crate::workload::ServerLink;

/// The functions that read Variables, so need the task's workload identity.
const VARIABLE_FUNCTIONS: &[&str] = &["nomadVar", "nomadVarList", "nomadVarExists"];

/// A template body parsed, or `None` when it holds no action (written as it is).
pub fn parse(
    name: &str,
    body: &str,
    block: &TemplateBlock,
) -> Result<Option<Template>, nomos_template::TemplateError> {
    let opts = nomos_api::validate::template_options(block);
    if !body.contains(&opts.left_delim) {
        return Ok(None);
    }
    Template::parse(name, body, &opts).map(Some)
}

/// Whether templates calling `used` need the task's workload identity.
pub fn needs_identity(used: &BTreeSet<String>) -> bool {
    VARIABLE_FUNCTIONS.iter().any(|f| used.contains(*f))
}

/// What a task's templates can read: its environment and, with its identity, Variables in its
/// namespace (or the one a path names after `@`).
pub struct TaskSources<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub namespace: &'a str,
    /// The servers and the task's token; `None` when no template reads Variables.
    pub variables: Option<(&'a ServerLink, &'a str)>,
    /// The runtime the blocking render calls the servers through.
    pub runtime: tokio::runtime::Handle,
    /// The store the service catalogue and the key-value space are read from.
    pub catalogue: &'a dyn nomos_store::Store,
    /// The task directory `file` reads beneath (`None`: `file` is refused), and whether host
    /// paths are allowed (`allow_host_paths`).
    pub files: Option<(&'a std::path::Path, bool)>,
    /// What the render waited for and did not find; see [`TaskSources::missing`].
    pub missing: std::cell::RefCell<Missing>,
}

/// What a render read and did not find: keys, with the store revision they were missing at,
/// and Variables, which only asking the servers again finds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missing {
    /// Dependencies in consul-template's spelling (`kv.block(app/color)`,
    /// `nomad.var.block(app/db@default)`), in order.
    pub deps: Vec<String>,
    /// The earliest store revision a key was read missing at (0: no key is missing).
    pub revision: i64,
    /// Whether a Variable is missing.
    pub variables: bool,
}

/// The most missing dependencies a task event names (Nomad names three, then a count).
const MISSING_IN_EVENT: usize = 3;

/// The message of the task event for a template that waits: `Missing: kv.block(a),
/// kv.block(b)`, with `and N more` past three.
pub fn missing_message(deps: &[String]) -> String {
    let shown: Vec<&str> = deps
        .iter()
        .take(MISSING_IN_EVENT)
        .map(String::as_str)
        .collect();
    let mut msg = format!("Missing: {}", shown.join(", "));
    if deps.len() > MISSING_IN_EVENT {
        msg.push_str(&format!(", and {} more", deps.len() - MISSING_IN_EVENT));
    }
    msg
}

impl Sources for TaskSources<'_> {
    fn call(&self, name: &str, args: &[Value]) -> Result<Value, String> {
        match name {
            "env" => {
                let key = one_string(name, args)?;
                Ok(Value::String(
                    self.env.get(key).cloned().unwrap_or_default(),
                ))
            }
            "nomadVar" => {
                let (path, ns) = self.path_and_namespace(one_string(name, args)?);
                match self.fetch(&variable_url(path, ns))? {
                    Some(var) => Ok(Value::from(var.get("Items").cloned().unwrap_or_default())),
                    None => {
                        self.missed(format!("nomad.var.block({path}@{ns})"), None);
                        Ok(Value::from(serde_json::json!({})))
                    }
                }
            }
            "nomadVarExists" => {
                let (path, ns) = self.path_and_namespace(one_string(name, args)?);
                Ok(Value::Bool(self.fetch(&variable_url(path, ns))?.is_some()))
            }
            "nomadVarList" => {
                let prefix = match args {
                    [] => "",
                    _ => one_string(name, args)?,
                };
                let (prefix, ns) = self.path_and_namespace(prefix);
                let url = format!(
                    "/v1/vars?prefix={}&namespace={}",
                    query_escape(prefix),
                    query_escape(ns)
                );
                Ok(self
                    .fetch(&url)?
                    .map(Value::from)
                    .unwrap_or_else(|| Value::list(Vec::new())))
            }
            "nomadService" => self.service(args),
            "nomadServices" => self.services(args),
            "key" => {
                let path = one_string(name, args)?;
                let (value, revision) = self.kv_read(path)?;
                Ok(Value::from(value.unwrap_or_else(|| {
                    self.missed(format!("kv.block({path})"), Some(revision));
                    String::new()
                })))
            }
            "keyOrDefault" => match args {
                [Value::String(path), default] => Ok(self
                    .kv_read(path)?
                    .0
                    .map(Value::from)
                    .unwrap_or_else(|| default.clone())),
                _ => Err(format!(
                    "keyOrDefault wants a path and a default, got {} arguments",
                    args.len()
                )),
            },
            "ls" => self.ls(one_string(name, args)?),
            "file" => self.file(one_string(name, args)?),
            "sockaddr" => sockaddr(args),
            other => Err(format!("function {other:?} is not offered by this node")),
        }
    }
}

impl TaskSources<'_> {
    /// `nomadService "[tag.]name[@region]"`, or `nomadService N key "name"`: the service's
    /// healthy instances in the task's namespace, sorted by ID (or the N that rendezvous
    /// hashing on `key` picks).
    fn service(&self, args: &[Value]) -> Result<Value, String> {
        let (query, choice) = match args {
            [Value::String(q)] => (q.as_str(), None),
            [count, Value::String(key), Value::String(q)] => {
                let n = match count {
                    Value::Int(n) if *n >= 0 => *n as usize,
                    Value::String(s) => s
                        .parse()
                        .map_err(|_| format!("nomadService: {s:?} is not a count"))?,
                    other => {
                        return Err(format!(
                            "nomadService: the count must be a number, got {}",
                            other.type_name()
                        ))
                    }
                };
                (q.as_str(), Some((n, key.as_str())))
            }
            _ => {
                return Err(format!(
                    "nomadService wants \"[tag.]name\" or N key \"name\", got {} arguments",
                    args.len()
                ))
            }
        };
        let query = query.split('@').next().unwrap_or(query);
        let (tag, name) = match query.rsplit_once('.') {
            Some((tag, name)) => (Some(tag), name),
            None => (None, query),
        };
        if let Some(why) = nomos_api::service::unfit_service_name(name) {
            return Err(format!("nomadService: {why}"));
        }
        let mut found: Vec<ServiceRegistration> = self
            .registrations(&nomos_store::keys::services_prefix(
                Some(self.namespace),
                Some(name),
            ))?
            .into_iter()
            .filter(|r| r.healthy && tag.is_none_or(|t| r.tags.iter().any(|x| x == t)))
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some((n, key)) = choice {
            found = nomos_api::service::choose(found, n, key, |r| &r.id);
        }
        Ok(Value::list(found.iter().map(service_value).collect()))
    }

    /// `nomadServices`: each service of the task's namespace with its instances' tags.
    fn services(&self, args: &[Value]) -> Result<Value, String> {
        if !args.is_empty() {
            return Err(format!(
                "nomadServices wants no arguments, got {}",
                args.len()
            ));
        }
        let all = self.registrations(&nomos_store::keys::services_prefix(
            Some(self.namespace),
            None,
        ))?;
        let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in all {
            by_name.entry(r.service_name).or_default().extend(r.tags);
        }
        Ok(Value::list(
            by_name
                .into_iter()
                .map(|(name, tags)| {
                    Value::map([
                        ("Name", Value::from(name)),
                        (
                            "Tags",
                            Value::list(tags.into_iter().map(Value::from).collect()),
                        ),
                    ])
                })
                .collect(),
        ))
    }

    /// The render's missing dependencies (none when it found everything it read).
    pub fn missing(&self) -> Missing {
        self.missing.borrow().clone()
    }

    /// Records a missing dependency: a key read at `revision`, or a Variable (`None`).
    fn missed(&self, dep: String, revision: Option<i64>) {
        let mut m = self.missing.borrow_mut();
        match revision {
            Some(rev) if m.revision == 0 || rev < m.revision => m.revision = rev,
            Some(_) => {}
            None => m.variables = true,
        }
        if !m.deps.contains(&dep) {
            m.deps.push(dep);
        }
    }

    /// The keys `sel` covers and the store's revision, read on this blocking thread; `doing`
    /// names the read in the error.
    fn read_at(
        &self,
        sel: nomos_store::KeySelector,
        doing: &str,
    ) -> Result<(Vec<nomos_store::KeyValue>, i64), String> {
        self.runtime
            .block_on(self.catalogue.range(sel, Default::default()))
            .map(|r| (r.kvs, r.revision))
            .map_err(|e| format!("{doing}: {e}"))
    }

    fn read(
        &self,
        sel: nomos_store::KeySelector,
        doing: &str,
    ) -> Result<Vec<nomos_store::KeyValue>, String> {
        self.read_at(sel, doing).map(|(kvs, _)| kvs)
    }

    /// The value at `/nomos/kv/<path>`, if any (as text), and the revision it was read at.
    fn kv_read(&self, path: &str) -> Result<(Option<String>, i64), String> {
        let sel = nomos_store::KeySelector::key(nomos_store::keys::kv(path).into_bytes());
        let (kvs, revision) = self.read_at(sel, &format!("reading key {path:?}"))?;
        let value = kvs
            .first()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
        Ok((value, revision))
    }

    /// `ls "prefix"`: the keys directly under `/nomos/kv/<prefix>/` (not deeper), sorted, each
    /// with `.Key` (its name under the prefix) and `.Value`.
    fn ls(&self, prefix: &str) -> Result<Value, String> {
        let base = nomos_store::keys::kv(prefix.trim_end_matches('/'));
        let base = if base.ends_with('/') {
            base
        } else {
            format!("{base}/")
        };
        let sel = nomos_store::KeySelector::prefix(base.as_bytes().to_vec());
        let pairs = self
            .read(sel, &format!("listing {prefix:?}"))?
            .iter()
            .filter_map(|kv| {
                let name = kv
                    .key_utf8_or_skip()?
                    .strip_prefix(base.as_str())?
                    .to_string();
                (!name.is_empty() && !name.contains('/')).then(|| {
                    Value::map([
                        ("Key", Value::from(name)),
                        (
                            "Value",
                            Value::from(String::from_utf8_lossy(&kv.value).into_owned()),
                        ),
                    ])
                })
            })
            .collect();
        Ok(Value::list(pairs))
    }

    /// `file "path"`: a file beneath the task directory (a host path only with
    /// `allow_host_paths`), as text.
    fn file(&self, path: &str) -> Result<Value, String> {
        let Some((dir, allow_host_paths)) = self.files else {
            return Err("file is not offered here".into());
        };
        let root = crate::confine::Beneath::open(dir).map_err(|e| e.to_string())?;
        let bytes = crate::confine::read_source(&root, "Template file", path, allow_host_paths)
            .map_err(|e| e.to_string())?;
        Ok(Value::from(String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn registrations(&self, prefix: &str) -> Result<Vec<ServiceRegistration>, String> {
        let sel = nomos_store::KeySelector::prefix(prefix.as_bytes().to_vec());
        Ok(self
            .read(sel, "reading the service catalogue")?
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect())
    }

    /// `path@namespace` (Nomad's form; a `.region` after the namespace is ignored, there is one
    /// region) or `path` in the task's own namespace.
    fn path_and_namespace<'p>(&'p self, arg: &'p str) -> (&'p str, &'p str) {
        match arg.split_once('@') {
            Some((path, rest)) => (path, rest.split('.').next().unwrap_or(rest)),
            None => (arg, self.namespace),
        }
    }

    fn fetch(&self, path_and_query: &str) -> Result<Option<serde_json::Value>, String> {
        let Some((link, token)) = self.variables else {
            return Err(
                "Variables need the task's workload identity, which it was not given".into(),
            );
        };
        self.runtime
            .block_on(link.get(path_and_query, token))
            .map_err(|e| e.to_string())
    }
}

/// A rendered file's owner: `(uid, gid)`, each `None` to leave it as the agent writes it.
pub type Owner = (Option<u32>, Option<u32>);

/// Who owns a template's file (its `uid` and `gid`; a negative one, Nomad's -1, leaves that ID
/// unchanged), for an agent running as `euid`/`egid`. Only root may give a file IDs other
/// than its own; asking for them otherwise is an error saying so.
pub fn file_owner(
    uid: Option<i64>,
    gid: Option<i64>,
    euid: u32,
    egid: u32,
) -> Result<Owner, String> {
    let id = |field: &str, v: Option<i64>, own: u32| -> Result<Option<u32>, String> {
        let Some(v) = v.filter(|v| *v >= 0) else {
            return Ok(None);
        };
        let v = u32::try_from(v)
            .ok()
            .filter(|v| *v != u32::MAX)
            .ok_or_else(|| format!("template {field} {v} is not a valid ID"))?;
        if euid != 0 && v != own {
            return Err(format!(
                "template {field} {v} needs the agent to run as root (it runs as uid {euid})"
            ));
        }
        Ok(Some(v))
    };
    Ok((id("uid", uid, euid)?, id("gid", gid, egid)?))
}

/// Most variables an `env = true` template may set.
pub const MAX_ENV_FILE_VARS: usize = 1024;

/// The variables of an `env = true` template's output: `KEY=VALUE` lines, blank lines and `#`
/// comments skipped, an optional `export ` before the key, values optionally in single quotes
/// (taken as written) or double quotes (with `\n`, `\t`, `\"` and `\\` escapes). A line that
/// is none of these is an error naming its number, so a half-rendered secret never becomes a
/// wrong variable silently.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=VALUE", n + 1));
        };
        let key = key.trim();
        let valid_key = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid_key {
            return Err(format!("line {}: {key:?} is not a variable name", n + 1));
        }
        let value = unquote(value.trim()).map_err(|e| format!("line {}: {e}", n + 1))?;
        out.push((key.to_string(), value));
        if out.len() > MAX_ENV_FILE_VARS {
            return Err(format!("more than {MAX_ENV_FILE_VARS} variables"));
        }
    }
    Ok(out)
}

fn unquote(value: &str) -> Result<String, String> {
    if let Some(inner) = value.strip_prefix('\'') {
        return inner
            .strip_suffix('\'')
            .map(str::to_string)
            .ok_or_else(|| "unterminated single quote".to_string());
    }
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(value.to_string());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or_else(|| "unterminated double quote".to_string())?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => return Err("a trailing backslash".into()),
        }
    }
    Ok(out)
}

/// `sockaddr "expr" ...`: the arguments joined with spaces (as consul-template joins them)
/// are a go-sockaddr expression, evaluated over the node's addresses.
fn sockaddr(args: &[Value]) -> Result<Value, String> {
    let parts: Vec<&str> = args
        .iter()
        .map(|a| a.as_str().ok_or("sockaddr wants strings"))
        .collect::<Result<_, _>>()?;
    if parts.is_empty() {
        return Err("sockaddr wants an expression such as \"GetPrivateIP\"".into());
    }
    let expr = nomos_template::sockaddr::Expr::parse(&parts.join(" "))?;
    expr.eval(&crate::netaddrs::addresses()?).map(Value::from)
}

/// An instance as templates see it (consul-template's fields for a Nomad service).
fn service_value(r: &ServiceRegistration) -> Value {
    Value::map([
        ("ID", Value::from(r.id.as_str())),
        ("Name", Value::from(r.service_name.as_str())),
        ("Namespace", Value::from(r.namespace.as_str())),
        ("NodeID", Value::from(r.node_id.as_str())),
        ("Datacenter", Value::from(r.datacenter.as_str())),
        ("JobID", Value::from(r.job_id.as_str())),
        ("AllocID", Value::from(r.alloc_id.as_str())),
        (
            "Tags",
            Value::list(r.tags.iter().map(|t| Value::from(t.as_str())).collect()),
        ),
        ("Address", Value::from(r.address.as_str())),
        ("Port", Value::from(i64::from(r.port))),
    ])
}

fn variable_url(path: &str, namespace: &str) -> String {
    let path: Vec<String> = path.split('/').map(query_escape).collect();
    format!(
        "/v1/var/{}?namespace={}",
        path.join("/"),
        query_escape(namespace)
    )
}

fn one_string<'a>(name: &str, args: &'a [Value]) -> Result<&'a str, String> {
    match args {
        [Value::String(s)] => Ok(s),
        [other] => Err(format!("{name} wants a string, got {}", other.type_name())),
        _ => Err(format!("{name} wants 1 argument, got {}", args.len())),
    }
}

/// Percent-encodes everything but unreserved characters.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> TemplateBlock {
        TemplateBlock {
            destination: "local/out".into(),
            ..Default::default()
        }
    }

    fn render(body: &str, env: &[(&str, &str)]) -> Result<String, String> {
        render_with(body, env, &nomos_store::EmbeddedStore::in_memory())
    }

    fn render_with(
        body: &str,
        env: &[(&str, &str)],
        store: &dyn nomos_store::Store,
    ) -> Result<String, String> {
        render_in(body, env, store, None)
    }

    /// What a task in namespace `ns` reads: `env`, the store `store` and, for `file`, the task
    /// directory `files`; blocking reads run on `rt`.
    fn sources<'a>(
        ns: &'a str,
        env: &'a BTreeMap<String, String>,
        store: &'a dyn nomos_store::Store,
        files: Option<(&'a std::path::Path, bool)>,
        rt: &tokio::runtime::Runtime,
    ) -> TaskSources<'a> {
        TaskSources {
            env,
            namespace: ns,
            variables: None,
            runtime: rt.handle().clone(),
            catalogue: store,
            files,
            missing: Default::default(),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    /// Renders `body` with `env`, the store `store` and, for `file`, the task directory `files`.
    fn render_in(
        body: &str,
        env: &[(&str, &str)],
        store: &dyn nomos_store::Store,
        files: Option<(&std::path::Path, bool)>,
    ) -> Result<String, String> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let rt = runtime();
        let sources = sources("default", &env, store, files, &rt);
        match parse("t", body, &block()).map_err(|e| e.to_string())? {
            None => Ok(body.to_string()),
            Some(t) => t.render(&Value::Null, &sources).map_err(|e| e.to_string()),
        }
    }

    #[test]
    fn env_and_builtins_render() {
        assert_eq!(
            render(
                r#"id={{ env "NOMAD_ALLOC_ID" }} {{ "a,b" | split "," | join "+" }}"#,
                &[("NOMAD_ALLOC_ID", "42")]
            ),
            Ok("id=42 a+b".to_string())
        );
        assert_eq!(render("{{ env \"NONE\" }}.", &[]), Ok(".".to_string()));
        assert_eq!(
            render("plain ${x} text", &[]),
            Ok("plain ${x} text".to_string())
        );
    }

    #[test]
    fn unknown_functions_and_missing_identity_are_errors() {
        let e = render("a\n{{ nomadvar \"x\" }}", &[]).unwrap_err();
        assert!(e.contains("2:") && e.contains("nomadvar"), "{e}");
        let e = render("{{ service \"web\" }}", &[]).unwrap_err();
        assert!(e.contains("service"), "{e}");
        let e = render("{{ with nomadVar \"nomad/jobs/x\" }}{{ .a }}{{ end }}", &[]).unwrap_err();
        assert!(e.contains("workload identity"), "{e}");
    }

    #[test]
    fn variable_functions_need_an_identity() {
        let t = parse("t", "{{ nomadVarExists \"a\" }}{{ env \"X\" }}", &block())
            .unwrap()
            .unwrap();
        assert!(needs_identity(&t.functions_used()));
        let t = parse("t", "{{ env \"X\" }}", &block()).unwrap().unwrap();
        assert!(!needs_identity(&t.functions_used()));
    }

    #[test]
    fn env_files_parse_as_nomad_reads_them() {
        let text = "# secrets\nDB_USER=app\nexport DB_PASS=\"p=\\\"w\\\"d\\n\"\n\n RAW = 'a $b \\n' \nEMPTY=\n";
        let vars = parse_env_file(text).unwrap();
        assert_eq!(
            vars,
            vec![
                ("DB_USER".to_string(), "app".to_string()),
                ("DB_PASS".to_string(), "p=\"w\"d\n".to_string()),
                ("RAW".to_string(), "a $b \\n".to_string()),
                ("EMPTY".to_string(), String::new()),
            ]
        );
        for (bad, why) in [
            ("A=1\nnot a pair\n", "line 2: expected KEY=VALUE"),
            ("1X=2", "not a variable name"),
            ("A=\"open", "unterminated double quote"),
            ("A='open", "unterminated single quote"),
            ("A=\"x\\\"", "a trailing backslash"),
        ] {
            let e = parse_env_file(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let many: String = (0..=MAX_ENV_FILE_VARS)
            .map(|i| format!("V{i}=x\n"))
            .collect();
        assert!(parse_env_file(&many).unwrap_err().contains("more than"));
    }

    #[test]
    fn paths_name_their_namespace_after_an_at() {
        let env = BTreeMap::new();
        let rt = runtime();
        let store = nomos_store::EmbeddedStore::in_memory();
        let s = sources("web", &env, &store, None, &rt);
        assert_eq!(s.path_and_namespace("a/b"), ("a/b", "web"));
        assert_eq!(s.path_and_namespace("a/b@ops.global"), ("a/b", "ops"));
        assert_eq!(
            variable_url("nomad/jobs/a b", "x&y"),
            "/v1/var/nomad/jobs/a%20b?namespace=x%26y"
        );
    }

    /// A store holding `web` instances: two healthy (one tagged `blue`), one failing its
    /// check, and one in another namespace.
    fn catalogue() -> nomos_store::EmbeddedStore {
        let store = nomos_store::EmbeddedStore::in_memory();
        let rt = runtime();
        let regs = [
            ("default", "i2", 8002, true, vec!["blue"]),
            ("default", "i1", 8001, true, vec![]),
            ("default", "i3", 8003, false, vec!["blue"]),
            ("other", "i4", 8004, true, vec![]),
        ];
        for (ns, id, port, healthy, tags) in regs {
            let r = ServiceRegistration {
                id: id.into(),
                service_name: "web".into(),
                namespace: ns.into(),
                address: "10.0.0.1".into(),
                port,
                healthy,
                tags: tags.into_iter().map(str::to_string).collect(),
                ..Default::default()
            };
            let key = nomos_store::keys::service(ns, "web", id);
            rt.block_on(nomos_store::Store::put(
                &store,
                key.into_bytes(),
                serde_json::to_vec(&r).unwrap(),
                Default::default(),
            ))
            .unwrap();
        }
        store
    }

    #[test]
    fn nomad_service_lists_the_healthy_instances_of_the_tasks_namespace() {
        let store = catalogue();
        let r = |body: &str| render_with(body, &[], &store);
        assert_eq!(
            r(r#"{{ range nomadService "web" }}{{ .Address }}:{{ .Port }} {{ end }}"#),
            Ok("10.0.0.1:8001 10.0.0.1:8002 ".to_string()),
            "sorted by ID; the failing and the other namespace's left out"
        );
        assert_eq!(
            r(r#"{{ range nomadService "blue.web" }}{{ .ID }}{{ end }}"#),
            Ok("i2".to_string()),
            "a tag narrows it"
        );
        assert_eq!(
            r(r#"{{ len (nomadService "web@global") }}"#),
            Ok("2".to_string()),
            "a region after @ is the one region"
        );
        let one = r(r#"{{ range nomadService 1 "client-7" "web" }}{{ .ID }}{{ end }}"#).unwrap();
        assert!(one == "i1" || one == "i2", "{one}");
        assert_eq!(
            r(r#"{{ range nomadService 1 "client-7" "web" }}{{ .ID }}{{ end }}"#),
            Ok(one),
            "the same key picks the same instance"
        );
        assert_eq!(
            r(r#"{{ range nomadServices }}{{ .Name }}={{ join "," .Tags }}{{ end }}"#),
            Ok("web=blue".to_string())
        );
        assert_eq!(r(r#"{{ len (nomadService "db") }}"#), Ok("0".to_string()));
        for bad in [
            r#"{{ nomadService "web_x" }}"#,
            r#"{{ nomadService }}"#,
            r#"{{ nomadServices "x" }}"#,
        ] {
            assert!(r(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_key_or_default_and_ls_read_the_users_key_value_space() {
        let store = catalogue();
        let rt = runtime();
        for (k, v) in [
            ("app/color", "blue"),
            ("app/size", "3"),
            ("app/deep/x", "no"),
            ("other", "z"),
        ] {
            rt.block_on(nomos_store::Store::put(
                &store,
                nomos_store::keys::kv(k).into_bytes(),
                v.as_bytes().to_vec(),
                Default::default(),
            ))
            .unwrap();
        }
        let r = |body: &str| render_with(body, &[], &store);
        assert_eq!(r(r#"{{ key "app/color" }}"#), Ok("blue".to_string()));
        assert_eq!(
            r(r#"{{ keyOrDefault "app/none" "red" }}"#),
            Ok("red".to_string())
        );
        assert_eq!(
            r(r#"{{ keyOrDefault "app/size" "9" }}"#),
            Ok("3".to_string())
        );
        assert_eq!(
            r(r#"{{ range ls "app" }}{{ .Key }}={{ .Value }};{{ end }}"#),
            Ok("color=blue;size=3;".to_string()),
            "direct children only"
        );
        let refused = r(r#"{{ file "x" }}"#).unwrap_err();
        assert!(refused.contains("not offered"), "{refused}");
    }

    #[test]
    fn file_reads_beneath_the_task_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("local")).unwrap();
        std::fs::write(dir.path().join("local/a.txt"), "inside").unwrap();
        let store = nomos_store::EmbeddedStore::in_memory();
        let render = |body: &str| render_in(body, &[], &store, Some((dir.path(), false)));
        assert_eq!(
            render(r#"{{ file "local/a.txt" }}"#),
            Ok("inside".to_string())
        );
        for escape in [
            r#"{{ file "/etc/passwd" }}"#,
            r#"{{ file "../../etc/passwd" }}"#,
        ] {
            let e = render(escape).unwrap_err();
            assert!(e.contains("outside the task directory"), "{escape}: {e}");
        }
    }

    #[test]
    fn plugin_and_consul_functions_are_refused_saying_why() {
        let e = render(r#"{{ plugin "x" }}"#, &[]).unwrap_err();
        assert!(e.contains("plugins"), "{e}");
        let e = render(r#"{{ service "web" }}"#, &[]).unwrap_err();
        assert!(e.contains("nomadService"), "{e}");
    }

    #[test]
    fn a_missing_key_is_recorded_as_a_blocking_dependency_not_an_error() {
        let store = catalogue();
        let env = BTreeMap::new();
        let rt = runtime();
        let sources = sources("default", &env, &store, None, &rt);
        let body = r#"a={{ key "app/a" }} b={{ keyOrDefault "app/b" "x" }} c={{ key "app/c" }}{{ key "app/a" }}"#;
        let t = parse("t", body, &block()).unwrap().unwrap();
        assert_eq!(t.render(&Value::Null, &sources).unwrap(), "a= b=x c=");
        let m = sources.missing();
        assert_eq!(m.deps, vec!["kv.block(app/a)", "kv.block(app/c)"]);
        assert!(m.revision > 0, "{m:?}");
    }

    /// A stand-in for the servers' Variables API on a runtime of its own: `app/db` holds
    /// `{"user": "u"}`, paths under `denied/` are refused, any other is missing; `/v1/vars`
    /// lists nothing. The runtime (keep it) and a link to the API.
    fn variables_api(
        store: std::sync::Arc<dyn nomos_store::Store>,
    ) -> (tokio::runtime::Runtime, ServerLink) {
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let read = |axum::extract::Path(path): axum::extract::Path<String>| async move {
            match path.as_str() {
                "app/db" => axum::Json(serde_json::json!({"Items": {"user": "u"}})).into_response(),
                p if p.starts_with("denied/") => StatusCode::FORBIDDEN.into_response(),
                _ => StatusCode::NOT_FOUND.into_response(),
            }
        };
        let app = axum::Router::new()
            .route("/v1/var/{*path}", axum::routing::get(read))
            .route(
                "/v1/vars",
                axum::routing::get(|| async { axum::Json(serde_json::json!([])) }),
            );
        let tcp = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = tcp.local_addr().unwrap();
        rt.spawn(async move { axum::serve(tcp, app).await });
        let mut config = crate::AgentConfig::new("n1", "/nonexistent");
        config.servers = vec![format!("http://{addr}")];
        let link = ServerLink::new(&config, store).unwrap();
        (rt, link)
    }

    #[test]
    fn only_nomad_var_waits_for_a_missing_variable() {
        let store: std::sync::Arc<dyn nomos_store::Store> =
            std::sync::Arc::new(nomos_store::EmbeddedStore::in_memory());
        let (rt, link) = variables_api(store.clone());
        let env = BTreeMap::new();
        let render = |body: &str| {
            let mut s = sources("default", &env, &*store, None, &rt);
            s.variables = Some((&link, "token"));
            let t = parse("t", body, &block()).unwrap().unwrap();
            let out = t.render(&Value::Null, &s).map_err(|e| e.to_string());
            (out, s.missing())
        };
        let var = |path: &str| format!("nomad.var.block({path})");
        // (body, what it renders, what it waits for)
        let cases: Vec<(&str, &str, Vec<String>)> = vec![
            (
                r#"{{ with nomadVar "app/db" }}{{ .user }}{{ end }}"#,
                "u",
                vec![],
            ),
            (
                r#"{{ nomadVarExists "app/none" }} {{ len (nomadVarList "app") }}"#,
                "false 0",
                vec![],
            ),
            (
                r#"[{{ with nomadVar "app/none" }}{{ .user }}{{ end }}]"#,
                "[]",
                vec![var("app/none@default")],
            ),
            (
                r#"{{ with nomadVar "a@ops" }}{{ end }}{{ with nomadVar "b" }}{{ end }}"#,
                "",
                vec![var("a@ops"), var("b@default")],
            ),
        ];
        for (body, want, deps) in cases {
            let (out, missing) = render(body);
            assert_eq!(out.as_deref(), Ok(want), "{body}");
            assert_eq!(missing.deps, deps, "{body}");
            assert_eq!(missing.variables, !deps.is_empty(), "{body}");
            assert_eq!(missing.revision, 0, "no key is missing: {body}");
        }
        // A key and a Variable missing: both waited for, the key from its revision.
        let (_, missing) = render(r#"{{ key "app/k" }}{{ with nomadVar "app/none" }}{{ end }}"#);
        assert_eq!(
            missing.deps,
            vec!["kv.block(app/k)".to_string(), var("app/none@default")]
        );
        assert!(missing.variables && missing.revision > 0, "{missing:?}");
        // A Variable the task may not read fails the render; it is not waited for.
        let (out, missing) = render(r#"{{ with nomadVar "denied/x" }}{{ end }}"#);
        let e = out.unwrap_err();
        assert!(e.contains("403"), "{e}");
        assert_eq!(missing, Missing::default());
    }

    #[test]
    fn the_missing_event_names_three_dependencies_then_a_count() {
        let deps = |n: usize| {
            (0..n)
                .map(|i| format!("kv.block(k{i})"))
                .collect::<Vec<_>>()
        };
        let cases = [
            (1, "Missing: kv.block(k0)"),
            (3, "Missing: kv.block(k0), kv.block(k1), kv.block(k2)"),
            (
                5,
                "Missing: kv.block(k0), kv.block(k1), kv.block(k2), and 2 more",
            ),
        ];
        for (n, want) in cases {
            assert_eq!(missing_message(&deps(n)), want);
        }
    }

    #[test]
    fn sockaddr_reads_this_nodes_addresses() {
        assert_eq!(
            render(r#"{{ sockaddr "GetInterfaceIP \"^lo$\"" }}"#, &[]),
            Ok("127.0.0.1".to_string())
        );
        let e = render(r#"{{ sockaddr "GetAllInterfaces" }}"#, &[]).unwrap_err();
        assert!(e.contains("1:13") && e.contains("GetPrivateIP"), "{e}");
        let e = render(r#"{{ "GetNothing" | sockaddr }}"#, &[]).unwrap_err();
        assert!(e.contains("not supported"), "checked when rendered: {e}");
    }

    #[test]
    fn a_files_owner_is_changed_only_as_asked_and_allowed() {
        /// uid, gid, the agent's euid (and egid), what comes out.
        type Case = (Option<i64>, Option<i64>, u32, Result<Owner, &'static str>);
        let cases: &[Case] = &[
            (None, None, 0, Ok((None, None))),
            (Some(-1), Some(-5), 1000, Ok((None, None))),
            (Some(1234), Some(5678), 0, Ok((Some(1234), Some(5678)))),
            (Some(0), None, 0, Ok((Some(0), None))),
            (Some(1000), Some(1000), 1000, Ok((Some(1000), Some(1000)))),
            (
                Some(1234),
                None,
                1000,
                Err("uid 1234 needs the agent to run as root"),
            ),
            (
                None,
                Some(0),
                1000,
                Err("gid 0 needs the agent to run as root"),
            ),
            (Some(1 << 40), None, 0, Err("not a valid ID")),
            (Some(u32::MAX as i64), None, 0, Err("not a valid ID")),
        ];
        for (uid, gid, euid, want) in cases {
            let got = file_owner(*uid, *gid, *euid, *euid);
            match want {
                Ok(owner) => assert_eq!(got.as_ref(), Ok(owner), "{uid:?} {gid:?} {euid}"),
                Err(why) => {
                    let e = got.unwrap_err();
                    assert!(e.contains(why), "{uid:?} {gid:?} {euid}: {e}");
                }
            }
        }
    }
}
