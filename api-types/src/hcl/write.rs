//! Writes a job as Nomad-style HCL2 (`nctl validate -o hcl`), driven by the same schema tables
//! the reader uses, so reading the output gives the same job back. Every field of every block
//! present is written (the output is complete rather than minimal); strings are escaped so
//! `${...}` stays literal text.

use serde_json::Value;

use super::schema::{Kind, Sch, JOB};
use crate::job::Job;

/// The job as HCL2.
pub fn to_hcl(job: &Job) -> String {
    let value = serde_json::to_value(job).unwrap_or(Value::Null);
    let mut out = String::new();
    block(&mut out, 0, &JOB, &value);
    out
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// An HCL string literal; `${` and `%{` are escaped so they stay text.
pub(crate) fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    let chars: Vec<char> = s.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            '$' | '%' if chars.get(i + 1) == Some(&'{') => {
                q.push(*c);
                q.push(*c);
            }
            c if c.is_control() => q.push_str(&format!("\\u{:04x}", *c as u32)),
            c => q.push(*c),
        }
    }
    q.push('"');
    q
}

/// A JSON value as an HCL expression.
fn expr(v: &Value, depth: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(|i| expr(i, depth)).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(m) => {
            if m.is_empty() {
                return "{}".into();
            }
            let mut s = String::from("{\n");
            for (k, val) in m {
                indent(&mut s, depth + 1);
                s.push_str(&format!("{} = {}\n", quote(k), expr(val, depth + 1)));
            }
            indent(&mut s, depth);
            s.push('}');
            s
        }
    }
}

fn block(out: &mut String, depth: usize, sch: &Sch, v: &Value) {
    let Some(obj) = v.as_object() else { return };
    indent(out, depth);
    out.push_str(sch.name);
    if let Some(label) = sch.label {
        let l = obj.get(label).and_then(Value::as_str).unwrap_or("");
        out.push(' ');
        out.push_str(&quote(l));
    }
    out.push_str(" {\n");
    for (hcl, json, kind) in sch.fields {
        if json.is_empty() || json.starts_with('_') {
            continue;
        }
        let Some(val) = obj.get(*json) else { continue };
        if val.is_null() {
            continue;
        }
        match kind {
            Kind::Block(sub) => block(out, depth + 1, sub, val),
            Kind::Blocks(sub) => {
                for item in val.as_array().into_iter().flatten() {
                    block(out, depth + 1, sub, item);
                }
            }
            Kind::LabeledMap(sub) => {
                for body in val.as_object().into_iter().flat_map(|m| m.values()) {
                    block(out, depth + 1, sub, body);
                }
            }
            Kind::Dur => {
                let ns = val.as_u64().unwrap_or(0);
                indent(out, depth + 1);
                out.push_str(&format!(
                    "{hcl} = {}\n",
                    quote(&crate::duration::format_duration(ns))
                ));
            }
            Kind::Str if val.as_str() == Some("") => {}
            Kind::Ignored | Kind::Dropped => {}
            _ => {
                indent(out, depth + 1);
                out.push_str(&format!("{hcl} = {}\n", expr(val, depth + 1)));
            }
        }
    }
    if let Some(Value::Object(ignored)) = obj.get("ignored") {
        for (k, x) in ignored {
            // Only names the reader knows can be written back.
            if !matches!(sch.field(k), Some((_, _, Kind::Ignored))) {
                continue;
            }
            indent(out, depth + 1);
            out.push_str(&format!("{k} = {}\n", expr(x, depth + 1)));
        }
    }
    indent(out, depth);
    out.push_str("}\n");
}
