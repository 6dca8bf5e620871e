//! Block-specific rewrites after a block is decoded: HCL1-era shorthands folded into the
//! canonical fields (`distinct_hosts = true` → `operator`, `cron` → `crons`, `logs.enabled` →
//! `disabled`, Nomad 0.1's `reserved_ports` / `dynamic_ports` → `port` blocks), Nomad's
//! `to = -1` (the allocated port), `network` blocks written inside a task's `resources` moved
//! to the group, and a `task` written directly in the job wrapped in a group of its name.

use serde_json::{Map, Value};

use super::decoder::Decoder;
use super::schema::Sch;
use crate::diag::{Diagnostic, Pos};
use crate::fieldpath::{index, join, PosMap};

/// The constraint operators that may be written as their own attribute
/// (`regexp = "..."` for `operator = "regexp"`, `value = "..."`).
const OPERATOR_SHORTHANDS: [&str; 8] = [
    "distinct_hosts",
    "distinct_property",
    "regexp",
    "version",
    "semver",
    "set_contains",
    "set_contains_any",
    "set_contains_all",
];

impl Decoder<'_> {
    /// Block-specific rewrites after decoding.
    pub fn fixup(&mut self, sch: &Sch, path: &str, out: &mut Map<String, Value>) {
        match sch.name {
            "constraint" | "affinity" => self.fold_operator_shorthands(path, out),
            "periodic" => self.fold_cron(path, out),
            "logs" => {
                if let Some(Value::Bool(enabled)) = out.remove("_enabled") {
                    out.insert("disabled".into(), Value::Bool(!enabled));
                }
            }
            "group" => self.move_task_networks_to_group(path, out),
            "job" => self.wrap_lone_tasks(path, out),
            "network" => self.fold_port_lists(path, out),
            // Nomad: "omitting `to` or setting it to -1 maps to the allocated port".
            "port" if out.get("to").and_then(Value::as_i64) == Some(-1) => {
                out.remove("to");
            }
            _ => {}
        }
    }

    /// `regexp = "x"` becomes `operator = "regexp"` with `value = "x"` (`distinct_property`
    /// sets `attribute`; `distinct_hosts = false` sets nothing).
    fn fold_operator_shorthands(&mut self, path: &str, out: &mut Map<String, Value>) {
        for op in OPERATOR_SHORTHANDS {
            if let Some(v) = out.remove(&format!("_{op}")) {
                out.insert("operator".into(), Value::String(op.into()));
                if op == "distinct_hosts" {
                    if v.as_str() == Some("false") {
                        out.remove("operator");
                    }
                } else if op == "distinct_property" {
                    out.insert("attribute".into(), v);
                } else {
                    out.insert("value".into(), v);
                }
                self.pos
                    .insert(join(path, "operator"), self.pos.lookup(path));
            }
        }
    }

    /// `cron = "..."` becomes the first of `crons`.
    fn fold_cron(&mut self, path: &str, out: &mut Map<String, Value>) {
        if let Some(c) = out.remove("_cron") {
            let list = out
                .entry("crons")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.insert(0, c);
            }
            self.pos.insert(
                index(&join(path, "crons"), 0),
                self.pos.lookup(&join(path, "crons")),
            );
        }
    }

    /// HCL1: `network` inside a task's `resources` belongs to the group. Positions move with
    /// them, so later findings point into the task's resources block.
    fn move_task_networks_to_group(&mut self, path: &str, out: &mut Map<String, Value>) {
        let mut moved: Vec<(String, Value)> = Vec::new();
        if let Some(Value::Array(tasks)) = out.get_mut("tasks") {
            for (ti, t) in tasks.iter_mut().enumerate() {
                if let Some(Value::Object(res)) = t.get_mut("resources") {
                    if let Some(Value::Array(nets)) = res.remove("networks") {
                        for (ni, n) in nets.into_iter().enumerate() {
                            moved.push((format!("{path}.tasks[{ti}].resources.networks[{ni}]"), n));
                        }
                    }
                }
            }
        }
        if moved.is_empty() {
            return;
        }
        let existing = out
            .entry("networks")
            .or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(nets) = existing else { return };
        for (old, net) in moved {
            let new = format!("{path}.networks[{}]", nets.len());
            let copies: Vec<(String, Pos)> = self
                .pos
                .0
                .iter()
                .filter_map(|(k, p)| {
                    k.strip_prefix(&old)
                        .map(|rest| (format!("{new}{rest}"), *p))
                })
                .collect();
            for (k, p) in copies {
                self.pos.insert(k, p);
            }
            let at = self.pos.lookup(&old);
            self.warnings.push(Diagnostic::warning(
                self.file,
                at,
                "network inside resources is HCL1-era syntax: it was moved to the group (write it in the group block)",
            ));
            nets.push(net);
        }
    }
}

impl Decoder<'_> {
    /// A `task` directly in the job becomes a group of the same name holding it (as Nomad's
    /// parser does), placed before the job's groups. Positions move with the tasks; the
    /// written groups' positions shift by the number of new groups.
    fn wrap_lone_tasks(&mut self, path: &str, out: &mut Map<String, Value>) {
        let Some(Value::Array(tasks)) = out.remove("_tasks") else {
            return;
        };
        let n = tasks.len();
        let groups_path = join(path, "groups");
        let lone_path = join(path, "_tasks");
        let mut moved = PosMap::default();
        for (k, p) in std::mem::take(&mut self.pos).0 {
            let new = if let Some((i, rest)) = split_index(&k, &lone_path) {
                format!("{}.tasks[0]{rest}", index(&groups_path, i))
            } else if let Some((i, rest)) = split_index(&k, &groups_path) {
                format!("{}{rest}", index(&groups_path, i + n))
            } else {
                k
            };
            moved.set(new, p);
        }
        self.pos = moved;
        let mut wrapped = Vec::with_capacity(n);
        for (i, task) in tasks.into_iter().enumerate() {
            let name = task.get("name").cloned().unwrap_or(Value::Null);
            let gp = index(&groups_path, i);
            let at = self.pos.lookup(&format!("{gp}.tasks[0]"));
            self.pos.set(gp.clone(), at);
            self.pos.set(join(&gp, "name"), at);
            let mut g = Map::new();
            g.insert("name".into(), name);
            g.insert("tasks".into(), Value::Array(vec![task]));
            wrapped.push(Value::Object(g));
        }
        let groups = out
            .entry("groups")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = groups {
            wrapped.append(items);
            *items = wrapped;
        }
    }

    /// Nomad 0.1's `reserved_ports = [22, 80]` (static ports, labelled by their number) and
    /// `dynamic_ports = ["http"]` (labels of dynamic ports) become `port` blocks, with a
    /// warning naming the syntax to write instead.
    fn fold_port_lists(&mut self, path: &str, out: &mut Map<String, Value>) {
        for (field, name) in [
            ("_reserved_ports", "reserved_ports"),
            ("_dynamic_ports", "dynamic_ports"),
        ] {
            let Some(v) = out.remove(field) else { continue };
            let at = self.pos.lookup(&join(path, field));
            let items = match v {
                Value::Array(items) => items,
                other => vec![other],
            };
            let mut ports = Vec::new();
            for item in items {
                let port = match (name, &item) {
                    ("reserved_ports", v) => match super::value::as_num(v) {
                        Some(n) if n.fract() == 0.0 && (1.0..=65535.0).contains(&n) => {
                            serde_json::json!({"label": format!("{n}"), "static": n as u64})
                        }
                        _ => {
                            self.errors.push(Diagnostic::error(self.file, at, format!("reserved_ports: expected port numbers from 1 to 65535, found {item}")));
                            continue;
                        }
                    },
                    (_, Value::String(label)) => serde_json::json!({"label": label}),
                    _ => {
                        self.errors.push(Diagnostic::error(
                            self.file,
                            at,
                            format!("dynamic_ports: expected port labels, found {item}"),
                        ));
                        continue;
                    }
                };
                ports.push(port);
            }
            let list = out
                .entry("ports")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(existing) = list {
                for p in ports {
                    self.pos
                        .set(index(&join(path, "ports"), existing.len()), at);
                    existing.push(p);
                }
            }
            let instead = if name == "reserved_ports" {
                "port \"<label>\" { static = N }"
            } else {
                "port \"<label>\" {}"
            };
            self.warnings.push(Diagnostic::warning(
                self.file,
                at,
                format!("{name} is Nomad 0.1 syntax: read as port blocks (write `{instead}`)"),
            ));
        }
    }
}

/// `prefix[i]rest` → `(i, rest)`, where `rest` is empty or starts with `.` or `[`.
fn split_index<'k>(key: &'k str, prefix: &str) -> Option<(usize, &'k str)> {
    let tail = key.strip_prefix(prefix)?.strip_prefix('[')?;
    let (i, rest) = tail.split_once(']')?;
    Some((i.parse().ok()?, rest))
}
