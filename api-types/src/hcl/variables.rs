//! `variable` blocks: each variable's value, from lowest to highest precedence its `default`,
//! `NOMAD_VAR_<name>` from [`ParseOptions::env`], `-var-file` files, then `-var` values;
//! converted to and checked against its declared `type`, then its `validation` blocks. The
//! values go into the scope the job block is evaluated in.

use std::ops::Range;

use hcl_edit::structure::{Block, Body, Structure};
use hcl_edit::Span;
use serde_json::{Map, Value};

use super::decoder::Decoder;
use super::eval::{EvalErr, Scope};
use super::value::{self, as_bool, as_num, to_string_value, type_name};
use crate::diag::{did_you_mean, Diagnostic, LineIndex, Pos};
use crate::frontend::ParseOptions;

/// Where variables get values from, other than their defaults.
struct Inputs<'o> {
    /// `NOMAD_VAR_<name>` entries of the environment, as `(name, value)`.
    env: Vec<(String, String)>,
    /// What the `-var-file` files set (a later file wins).
    files: Map<String, Value>,
    /// `-var` values, the environment and how to read files.
    options: &'o ParseOptions,
}

/// A `variable` block as written.
struct Declaration<'b> {
    /// The `type` expression's text; empty when none is given.
    ty: String,
    default: Option<Value>,
    validations: Vec<&'b Block>,
}

/// Gives every declared variable its value (or reports why it has none) and reports `-var`
/// and `-var-file` values for variables the file does not declare.
pub(super) fn variables(d: &mut Decoder<'_>, body: &Body, options: &ParseOptions) {
    let files = var_file_values(d, options);
    let env = options
        .env
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("NOMAD_VAR_")
                .map(|n| (n.to_string(), v.clone()))
        })
        .collect();
    let inputs = Inputs {
        env,
        files,
        options,
    };
    let mut declared = Vec::new();
    for b in body
        .blocks()
        .filter(|b| b.ident.value().as_str() == "variable")
    {
        let Some(label) = b.labels.first() else {
            d.error(
                b.ident.span(),
                "variable block needs a name: `variable \"<name>\" { ... }`",
            );
            continue;
        };
        let name = label.as_str().to_string();
        declared.push(name.clone());
        let decl = declaration(d, b);
        let Some(v) = variable_value(d, &name, label.span(), &decl, &inputs) else {
            d.scope.failed_vars.push(name.clone());
            continue;
        };
        d.scope.vars.insert(name.clone(), v);
        check_validations(d, &name, &decl.validations);
    }
    report_undeclared(d, &inputs, &declared);
}

/// Reads the values that `-var-file` files set (paths as given: relative ones from the working
/// directory); a file that cannot be read or parsed is reported at the file itself.
fn var_file_values(d: &mut Decoder<'_>, options: &ParseOptions) -> Map<String, Value> {
    let mut values: Map<String, Value> = Map::new();
    for vf in &options.var_files {
        let name = vf.display().to_string();
        // As Nomad reads them: relative to the working directory, not the job file's.
        let text = match options.read_file_as_given(vf) {
            Ok(t) => t,
            Err(e) => {
                d.errors.push(Diagnostic::error(&name, Pos::default(), e));
                continue;
            }
        };
        if name.ends_with(".json") {
            match serde_json::from_str::<Map<String, Value>>(&text) {
                Ok(m) => values.extend(m),
                Err(e) => d.errors.push(Diagnostic::error(
                    &name,
                    Pos::new(e.line() as u32, e.column() as u32),
                    format!("invalid JSON: {e}"),
                )),
            }
            continue;
        }
        hcl_var_file(d, &name, &text, options, &mut values);
    }
    values
}

/// A `-var-file` of HCL `name = value` lines.
fn hcl_var_file(
    d: &mut Decoder<'_>,
    name: &str,
    text: &str,
    options: &ParseOptions,
    values: &mut Map<String, Value>,
) {
    let b = match hcl_edit::parser::parse_body(text) {
        Ok(b) => b,
        Err(e) => {
            d.errors.push(Diagnostic::error(
                name,
                Pos::new(e.location().line() as u32, e.location().column() as u32),
                format!("invalid HCL syntax: {}", e.message()),
            ));
            return;
        }
    };
    let idx = LineIndex::new(text);
    let mut scope = Scope::new(text, options);
    for a in b.attributes() {
        match scope.eval_keep(&a.value) {
            Ok(v) => {
                values.insert(a.key.value().as_str().to_string(), v);
            }
            Err((span, m)) => d.errors.push(Diagnostic::error(
                name,
                span.map(|r| idx.pos(r.start)).unwrap_or_default(),
                m,
            )),
        }
    }
}

/// Reads a `variable` block's `type`, `default` and `validation` blocks, reporting anything
/// else.
fn declaration<'b>(d: &mut Decoder<'_>, b: &'b Block) -> Declaration<'b> {
    let mut decl = Declaration {
        ty: String::new(),
        default: None,
        validations: Vec::new(),
    };
    for s in b.body.iter() {
        match s {
            Structure::Attribute(a) => match a.key.value().as_str() {
                "type" => decl.ty = d.scope_text(a.value.span()),
                "default" => decl.default = d.value(&a.value),
                "description" | "sensitive" | "nullable" => {}
                other => {
                    let hint = did_you_mean(
                        other,
                        ["type", "default", "description", "sensitive", "nullable"],
                    )
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                    d.error(
                        a.key.span(),
                        format!("unknown attribute \"{other}\" in variable block{hint}"),
                    );
                }
            },
            Structure::Block(vb) if vb.ident.value().as_str() == "validation" => {
                decl.validations.push(vb)
            }
            Structure::Block(vb) => d.error(
                vb.ident.span(),
                format!(
                    "unknown block \"{}\" in variable block",
                    vb.ident.value().as_str()
                ),
            ),
        }
    }
    decl
}

/// The variable's value by precedence, of its declared type; `None` (reported at `span`)
/// when it has no value or one of the wrong type. A `-var` or `NOMAD_VAR_` text that does not
/// convert is reported and passed over.
fn variable_value(
    d: &mut Decoder<'_>,
    name: &str,
    span: Option<Range<usize>>,
    decl: &Declaration<'_>,
    inputs: &Inputs<'_>,
) -> Option<Value> {
    let conv = |d: &mut Decoder<'_>, text: &str, origin: &str| match convert_var(
        text,
        &decl.ty,
        inputs.options,
    ) {
        Ok(v) => Some(v),
        Err(e) => {
            d.error(
                span.clone(),
                format!("variable \"{name}\" from {origin}: {e}"),
            );
            None
        }
    };
    let mut value = decl.default.clone();
    if let Some((_, text)) = inputs.env.iter().find(|(n, _)| *n == name) {
        value = conv(d, text, &format!("NOMAD_VAR_{name}")).or(value);
    }
    if let Some(v) = inputs.files.get(name) {
        value = Some(v.clone());
    }
    if let Some((_, text)) = inputs.options.vars.iter().rev().find(|(n, _)| *n == name) {
        value = conv(d, text, "-var").or(value);
    }
    let Some(v) = value else {
        d.error(span, format!("variable \"{name}\" has no value: give it a default, or set it with -var {name}=..., a -var-file, or NOMAD_VAR_{name}"));
        return None;
    };
    if decl.ty.is_empty() {
        return Some(v);
    }
    match check_type(&v, &decl.ty) {
        Ok(v) => Some(v),
        Err(e) => {
            d.error(span, format!("variable \"{name}\": {e}"));
            None
        }
    }
}

/// Each `validation { condition = ..., error_message = ... }` of a variable that has a value.
fn check_validations(d: &mut Decoder<'_>, name: &str, validations: &[&Block]) {
    for vb in validations {
        let cond = vb.body.get_attribute("condition");
        let msg = vb.body.get_attribute("error_message");
        let Some(cond) = cond else {
            d.error(vb.ident.span(), "validation block needs `condition`");
            continue;
        };
        let message = msg
            .and_then(|m| d.value(&m.value))
            .and_then(|v| to_string_value(&v))
            .unwrap_or_else(|| "validation failed".into());
        match d.scope.eval(&cond.value) {
            Ok(Value::Bool(true)) => {}
            Ok(Value::Bool(false)) => d.error(
                cond.value.span(),
                format!("invalid value for variable \"{name}\": {message}"),
            ),
            Ok(other) => d.error(
                cond.value.span(),
                format!(
                    "validation condition must be a bool, found {}",
                    type_name(&other)
                ),
            ),
            Err(EvalErr::Keep | EvalErr::Pending) => d.error(
                cond.value.span(),
                "validation condition may only refer to var.*",
            ),
            Err(EvalErr::Err(span, m)) => d.error(span.or(cond.value.span()), m),
        }
    }
}

/// `-var` for an undeclared variable is an error; a `-var-file` value for one a warning.
fn report_undeclared(d: &mut Decoder<'_>, inputs: &Inputs<'_>, declared: &[String]) {
    for (n, _) in &inputs.options.vars {
        if !declared.contains(n) {
            d.errors.push(Diagnostic::error(
                d.file,
                Pos::default(),
                format!("-var \"{n}\": no variable \"{n}\" is declared in this file"),
            ));
        }
    }
    for n in inputs.files.keys() {
        if !declared.contains(n) {
            d.warnings.push(Diagnostic::warning(
                d.file,
                Pos::default(),
                format!("-var-file sets \"{n}\", which this file does not declare"),
            ));
        }
    }
}

/// Converts a string from `-var` or the environment to the variable's declared type.
fn convert_var(text: &str, ty: &str, options: &ParseOptions) -> Result<Value, String> {
    let ty = ty.trim();
    if ty.is_empty() || ty == "string" || ty == "any" {
        return Ok(Value::String(text.to_string()));
    }
    if ty == "number" {
        return text
            .trim()
            .parse::<f64>()
            .map(value::num)
            .map_err(|_| format!("expected a number, found \"{text}\""));
    }
    if ty == "bool" {
        return as_bool(&Value::String(text.trim().to_string()))
            .map(Value::Bool)
            .ok_or_else(|| format!("expected true or false, found \"{text}\""));
    }
    let expr = hcl_edit::parser::parse_expr(text)
        .map_err(|e| format!("expected a {ty} value: {}", e.message()))?;
    let mut scope = Scope::new(text, options);
    scope.eval_keep(&expr).map_err(|(_, m)| m)
}

fn check_type(v: &Value, ty: &str) -> Result<Value, String> {
    let ty = ty.trim();
    let bad = || format!("expected {ty}, found {}", type_name(v));
    if ty.starts_with("string") {
        return to_string_value(v)
            .filter(|_| !v.is_null())
            .map(Value::String)
            .ok_or_else(bad);
    }
    if ty == "number" {
        return as_num(v).map(value::num).ok_or_else(bad);
    }
    if ty == "bool" {
        return as_bool(v).map(Value::Bool).ok_or_else(bad);
    }
    if ty.starts_with("list") || ty.starts_with("set") || ty.starts_with("tuple") {
        return if v.is_array() {
            Ok(v.clone())
        } else {
            Err(bad())
        };
    }
    if ty.starts_with("map") || ty.starts_with("object") {
        return if v.is_object() {
            Ok(v.clone())
        } else {
            Err(bad())
        };
    }
    Ok(v.clone())
}
