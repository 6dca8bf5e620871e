//! `${...}` interpolation of task `config`, `env` and `args`, as Nomad does it at run time.
//!
//! A pure function over a [`Vars`] snapshot. Recognised forms:
//! `${NOMAD_PORT_http}` (any task environment variable), `${env["X"]}` / `${env.X}`,
//! `${attr.kernel.name}`, `${node.unique.name}` / `${node.datacenter}` / `${node.class}` /
//! `${node.pool}` / `${node.region}` / `${node.unique.id}`, `${meta.key}` (node meta, then task
//! meta). Unknown references are left as written, like Nomad; `$${` is a literal `${`.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use nomos_api::Value;

/// What `${...}` can refer to.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub env: BTreeMap<String, String>,
    pub attrs: IndexMap<String, String>,
    /// `node.*` keys without the prefix: `unique.name`, `datacenter`, ...
    pub node: IndexMap<String, String>,
    pub node_meta: IndexMap<String, String>,
    pub task_meta: IndexMap<String, String>,
}

impl Vars {
    /// The value of one reference (the text between `${` and `}`), if known.
    pub fn lookup(&self, expr: &str) -> Option<String> {
        let e = expr.trim();
        if let Some(rest) = e.strip_prefix("env[") {
            let name = rest.strip_suffix(']')?.trim().trim_matches('"');
            return self.env.get(name).cloned();
        }
        if let Some(name) = e.strip_prefix("env.") {
            return self.env.get(name).cloned();
        }
        if let Some(name) = e.strip_prefix("attr.") {
            return self.attrs.get(name).cloned();
        }
        if let Some(name) = e.strip_prefix("node.") {
            return self.node.get(name).cloned();
        }
        if let Some(name) = e.strip_prefix("meta.") {
            return self
                .node_meta
                .get(name)
                .or_else(|| self.task_meta.get(name))
                .cloned();
        }
        self.env.get(e).cloned()
    }
}

/// Expands every `${...}` in `input`.
pub fn interpolate(input: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        if let Some(tail) = after.strip_prefix("${") {
            match tail.find('}') {
                Some(end) => {
                    let expr = &tail[..end];
                    match vars.lookup(expr) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("${");
                            out.push_str(expr);
                            out.push('}');
                        }
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    out.push_str(after);
                    rest = "";
                }
            }
            continue;
        }
        out.push('$');
        rest = &after[1..];
    }
    out.push_str(rest);
    out
}

/// Expands every string inside a JSON value (driver `config`), keys left alone.
pub fn interpolate_value(value: &Value, vars: &Vars) -> Value {
    match value {
        Value::String(s) => Value::String(interpolate(s, vars)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| interpolate_value(v, vars)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), interpolate_value(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars() -> Vars {
        let mut v = Vars::default();
        v.env.insert("NOMAD_PORT_http".into(), "8080".into());
        v.env.insert("NOMAD_ALLOC_ID".into(), "a1".into());
        v.env.insert("HOME".into(), "/root".into());
        v.attrs.insert("kernel.name".into(), "linux".into());
        v.node.insert("unique.name".into(), "n1".into());
        v.node.insert("datacenter".into(), "dc1".into());
        v.node_meta.insert("rack".into(), "r1".into());
        v.task_meta.insert("owner".into(), "ops".into());
        v.task_meta.insert("rack".into(), "task-rack".into());
        v
    }

    #[test]
    fn interpolation_table() {
        let cases = [
            ("plain", "plain"),
            ("${NOMAD_PORT_http}", "8080"),
            (
                "--port=${NOMAD_PORT_http} --id ${NOMAD_ALLOC_ID}",
                "--port=8080 --id a1",
            ),
            ("${ NOMAD_PORT_http }", "8080"),
            ("${env[\"HOME\"]}/x", "/root/x"),
            ("${env.HOME}", "/root"),
            ("${attr.kernel.name}", "linux"),
            ("${node.unique.name}@${node.datacenter}", "n1@dc1"),
            ("${meta.rack}", "r1"),
            ("${meta.owner}", "ops"),
            ("${NOT_SET}", "${NOT_SET}"),
            ("${attr.nope}", "${attr.nope}"),
            ("$${NOMAD_PORT_http}", "${NOMAD_PORT_http}"),
            ("cost $5", "cost $5"),
            ("$", "$"),
            ("${unterminated", "${unterminated"),
            ("a${NOMAD_ALLOC_ID}b${NOMAD_ALLOC_ID}c", "aa1ba1c"),
            ("ünï${NOMAD_ALLOC_ID}cødé", "ünïa1cødé"),
        ];
        let v = vars();
        for (input, want) in cases {
            assert_eq!(interpolate(input, &v), want, "input {input:?}");
        }
    }

    #[test]
    fn values_are_expanded_recursively() {
        let v = vars();
        let cfg: Value = serde_json::json!({"args": ["-p", "${NOMAD_PORT_http}"], "n": 3, "m": {"k": "${meta.rack}"}});
        let out = interpolate_value(&cfg, &v);
        assert_eq!(
            out,
            serde_json::json!({"args": ["-p", "8080"], "n": 3, "m": {"k": "r1"}})
        );
    }

    proptest! {
        #[test]
        fn text_without_dollar_is_unchanged(s in "[^$]*") {
            prop_assert_eq!(interpolate(&s, &vars()), s);
        }

        #[test]
        fn interpolation_never_panics(s in ".*") {
            let _ = interpolate(&s, &vars());
        }
    }
}
