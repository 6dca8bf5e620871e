//! Block-specific rewrites after a block is decoded: HCL1-era shorthands folded into the
//! canonical fields (`distinct_hosts = true` → `operator`, `cron` → `crons`, `logs.enabled` →
//! `disabled`), and `network` blocks written inside a task's `resources` moved to the group.

use serde_json::{Map, Value};

use super::decoder::Decoder;
use super::schema::Sch;
use crate::diag::{Diagnostic, Pos};
use crate::fieldpath::{index, join};

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
