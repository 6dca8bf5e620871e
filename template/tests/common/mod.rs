//! Helpers shared by the integration tests: a fixed clock, fake data sources and table runners.
#![allow(dead_code)]

use std::collections::BTreeSet;

use nomos_template::{Options, Sources, Template, TemplateError, Value};

/// 2024-03-07T09:05:04Z.
pub fn fixed_now() -> jiff::Timestamp {
    "2024-03-07T09:05:04Z".parse().expect("valid timestamp")
}

/// `env` reads a fixed environment; `nomadVar` returns a map; `fail` always errors.
pub struct FakeSources;

impl Sources for FakeSources {
    fn call(&self, name: &str, args: &[Value]) -> Result<Value, String> {
        match (name, args) {
            ("env", [Value::String(key)]) => Ok(Value::String(match key.as_str() {
                "NOMAD_ALLOC_ID" => "a1b2".to_string(),
                _ => String::new(),
            })),
            ("nomadVar", [Value::String(path)]) if path == "nomad/jobs/web" => Ok(Value::map([
                ("user", Value::from("admin")),
                ("pass", Value::from("s3cret")),
            ])),
            ("nomadVar", [Value::String(path)]) => Err(format!("variable {path:?} not found")),
            ("fail", _) => Err("backend unavailable".to_string()),
            _ => Err(format!("unexpected call {name}({args:?})")),
        }
    }
}

pub fn options() -> Options {
    Options {
        external_functions: ["env", "nomadVar", "fail"]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>(),
        ..Options::default()
    }
}

pub fn data(json: &str) -> Value {
    Value::from(serde_json::from_str::<serde_json::Value>(json).expect("test data is JSON"))
}

pub fn render_with(text: &str, json: &str, opts: &Options) -> Result<String, TemplateError> {
    let template = Template::parse("test.tpl", text, opts)?;
    template.render_at(&data(json), &FakeSources, fixed_now())
}

pub fn render(text: &str, json: &str) -> Result<String, TemplateError> {
    render_with(text, json, &options())
}

/// Renders every `(template, data, expected output)` row, reporting all failures at once.
pub fn check_table(rows: &[(&str, &str, &str)]) {
    let mut failures = Vec::new();
    for (text, json, want) in rows {
        match render(text, json) {
            Ok(got) if got == *want => {}
            Ok(got) => failures.push(format!("{text:?}\n   want {want:?}\n    got {got:?}")),
            Err(e) => failures.push(format!("{text:?}\n   want {want:?}\n  error {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every row must fail with exactly this message (`template: test.tpl:L:C: ...`).
pub fn check_errors(rows: &[(&str, &str, &str)]) {
    let mut failures = Vec::new();
    for (text, json, want) in rows {
        match render(text, json) {
            Ok(got) => failures.push(format!(
                "{text:?}\n   want error {want:?}\n   rendered {got:?}"
            )),
            Err(e) if e.to_string() == *want => {}
            Err(e) => failures.push(format!(
                "{text:?}\n   want {want:?}\n    got {:?}",
                e.to_string()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
