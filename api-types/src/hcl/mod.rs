//! Nomad HCL (HCL2, and HCL1-era files) to the canonical job shape.
//!
//! `hcl-edit` parses with byte spans; `schema` says what each block may hold; this module
//! walks the tree, evaluates expressions (`eval`), and builds the canonical JSON with a
//! position for every field path. Unknown names get a "did you mean"; blocks Nomos does not act
//! on are kept in `ignored` and warned about. Files that HCL2 rejects are retried once through
//! `legacy`, which rewrites HCL1 commas byte for byte so positions stay exact.
//!
//! Variables: `variable` blocks take, from lowest to highest precedence, their `default`,
//! `NOMAD_VAR_<name>` from [`ParseOptions::env`], `-var-file` files, then `-var` values.

pub(crate) mod eval;
pub mod fmt;
pub(crate) mod functions;
pub(crate) mod legacy;
pub(crate) mod schema;
pub(crate) mod value;
pub mod write;

pub use fmt::format_hcl;
pub use functions::names as function_names;
pub use write::to_hcl;

use std::ops::Range;

use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Block, Body, Structure};
use hcl_edit::Span;
use serde_json::{Map, Value};

use crate::diag::{did_you_mean, Diagnostic, LineIndex, Pos};
use crate::parse::{index, join, ParseOptions, PosMap, RawJob};
use eval::Scope;
use schema::{Kind, Sch};
use value::{as_bool, as_num, to_string_value, type_name};

struct Decoder<'a> {
    file: &'a str,
    lines: LineIndex<'a>,
    scope: Scope<'a>,
    pos: PosMap,
    failed: Vec<String>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl<'a> Decoder<'a> {
    fn at(&self, span: Option<Range<usize>>) -> Pos {
        span.map(|r| self.lines.pos(r.start)).unwrap_or_default()
    }

    fn error(&mut self, span: Option<Range<usize>>, msg: impl Into<String>) {
        let msg = msg.into();
        if msg.is_empty() {
            // Already reported (e.g. a variable without a value, used again here).
            return;
        }
        let pos = self.at(span);
        self.errors.push(Diagnostic::error(self.file, pos, msg));
    }

    fn warn(&mut self, span: Option<Range<usize>>, msg: impl Into<String>) {
        let pos = self.at(span);
        self.warnings.push(Diagnostic::warning(self.file, pos, msg));
    }

    fn value(&mut self, e: &Expression) -> Option<Value> {
        match self.scope.eval_keep(e) {
            Ok(v) => Some(v),
            Err((span, msg)) => {
                self.error(span, msg);
                None
            }
        }
    }

    /// A body with no schema (driver config, ignored blocks) as JSON. Repeated blocks become
    /// a list; labels nest (`a "x" { }` is `{"a": {"x": {}}}`).
    fn free_body(&mut self, body: &Body) -> Value {
        let mut out = Map::new();
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => {
                    if let Some(v) = self.value(&a.value) {
                        out.insert(a.key.value().as_str().to_string(), v);
                    }
                }
                Structure::Block(b) => {
                    let blocks = if b.ident.value().as_str() == "dynamic" {
                        self.expand_dynamic(b)
                    } else {
                        vec![(Blk::from(b), None)]
                    };
                    for (blk, frame) in blocks {
                        if let Some(f) = frame {
                            self.scope.iter.push(f);
                        }
                        let mut v = self.free_body(blk.body);
                        if blk.body_is_dynamic_content {
                            self.scope.iter.pop();
                        }
                        for (l, _) in blk.labels.iter().rev() {
                            let mut m = Map::new();
                            m.insert(l.clone(), v);
                            v = Value::Object(m);
                        }
                        push_multi(&mut out, &blk.ident, v);
                    }
                }
            }
        }
        Value::Object(out)
    }

    /// Expands `dynamic "name" { for_each = ..., iterator = it, labels = [...], content { } }`
    /// into the blocks it stands for, each with its iteration frame (`it.key`, `it.value`).
    fn expand_dynamic<'b>(&mut self, b: &'b Block) -> Vec<(Blk<'b>, Option<Map<String, Value>>)> {
        let Some(label) = b.labels.first() else {
            self.error(b.ident.span(), "dynamic block needs the name of the block it generates: `dynamic \"<block>\" { ... }`");
            return Vec::new();
        };
        let name = label.as_str().to_string();
        let mut iterator = name.clone();
        let mut for_each = None;
        let mut labels_expr = None;
        let mut content = None;
        for s in b.body.iter() {
            match s {
                Structure::Attribute(a) => match a.key.value().as_str() {
                    "for_each" => for_each = Some(&a.value),
                    "iterator" => match &a.value {
                        Expression::Variable(v) => iterator = v.value().as_str().to_string(),
                        other => self.error(other.span(), "iterator must be a bare name"),
                    },
                    "labels" => labels_expr = Some(&a.value),
                    other => self.error(a.key.span(), format!("unknown attribute \"{other}\" in dynamic block: expected for_each, iterator, labels")),
                },
                Structure::Block(c) if c.ident.value().as_str() == "content" => content = Some(c),
                Structure::Block(c) => self.error(c.ident.span(), format!("unknown block \"{}\" in dynamic block: expected content", c.ident.value().as_str())),
            }
        }
        let (Some(for_each), Some(content)) = (for_each, content) else {
            self.error(
                b.ident.span(),
                "dynamic block needs `for_each` and a `content` block",
            );
            return Vec::new();
        };
        let items: Vec<(Value, Value)> = match self.value(for_each) {
            Some(Value::Array(a)) => a
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::from(i), v))
                .collect(),
            Some(Value::Object(o)) => o.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
            Some(other) => {
                self.error(
                    for_each.span(),
                    format!(
                        "for_each: expected a list or a map, found {}",
                        type_name(&other)
                    ),
                );
                return Vec::new();
            }
            None => return Vec::new(),
        };
        let mut out = Vec::new();
        for (k, v) in items {
            let mut it = Map::new();
            it.insert("key".into(), k);
            it.insert("value".into(), v);
            let mut frame = Map::new();
            frame.insert(iterator.clone(), Value::Object(it));
            let mut labels = Vec::new();
            if let Some(le) = labels_expr {
                self.scope.iter.push(frame.clone());
                let lv = self.value(le);
                self.scope.iter.pop();
                match lv {
                    Some(Value::Array(ls)) => {
                        for l in ls {
                            labels.push((to_string_value(&l).unwrap_or_default(), le.span()));
                        }
                    }
                    Some(other) => self.error(
                        le.span(),
                        format!(
                            "labels: expected a list of strings, found {}",
                            type_name(&other)
                        ),
                    ),
                    None => {}
                }
            }
            out.push((
                Blk {
                    ident: name.clone(),
                    ident_span: b.ident.span(),
                    labels,
                    body: &content.body,
                    span: b.span(),
                    body_is_dynamic_content: true,
                },
                Some(frame),
            ));
        }
        out
    }

    fn scalar(&mut self, e: &Expression, kind: Kind, name: &str) -> Option<Value> {
        let v = self.value(e)?;
        let span = e.span();
        let found = |v: &Value| match v {
            Value::String(s) => format!("\"{s}\""),
            other => serde_json::to_string(other).unwrap_or_default(),
        };
        match kind {
            Kind::Str => match to_string_value(&v) {
                Some(s) if !v.is_null() => Some(Value::String(s)),
                _ => {
                    self.error(
                        span,
                        format!("{name}: expected a string, found {}", type_name(&v)),
                    );
                    None
                }
            },
            Kind::UInt | Kind::Int | Kind::Port => {
                let n = as_num(&v);
                match n {
                    Some(n) if n.fract() == 0.0 => {
                        if matches!(kind, Kind::UInt | Kind::Port) && n < 0.0 {
                            self.error(
                                span,
                                format!(
                                    "{name}: expected a non-negative whole number, found {}",
                                    found(&v)
                                ),
                            );
                            return None;
                        }
                        if matches!(kind, Kind::Port) && n > 65535.0 {
                            self.error(
                                span,
                                format!(
                                    "{name}: port out of range: expected 0 to 65535, found {}",
                                    found(&v)
                                ),
                            );
                            return None;
                        }
                        if n > u32::MAX as f64 || n < i32::MIN as f64 {
                            self.error(
                                span,
                                format!("{name}: number out of range, found {}", found(&v)),
                            );
                            return None;
                        }
                        Some(Value::from(n as i64))
                    }
                    _ => {
                        self.error(
                            span,
                            format!("{name}: expected a whole number, found {}", found(&v)),
                        );
                        None
                    }
                }
            }
            Kind::Bool => match as_bool(&v) {
                Some(b) => Some(Value::Bool(b)),
                None => {
                    self.error(
                        span,
                        format!("{name}: expected true or false, found {}", found(&v)),
                    );
                    None
                }
            },
            Kind::Dur => match &v {
                Value::String(s) => match crate::duration::parse_duration(s) {
                    Ok(ns) => Some(Value::from(ns)),
                    Err(e) => {
                        self.error(span, format!("{name}: {e}"));
                        None
                    }
                },
                Value::Number(n) if n.as_u64().is_some() => Some(v.clone()),
                _ => {
                    self.error(
                        span,
                        format!(
                            "{name}: expected a duration such as \"30s\", found {}",
                            found(&v)
                        ),
                    );
                    None
                }
            },
            Kind::StrList => {
                let items = match v {
                    Value::Array(items) => items,
                    Value::String(_) => vec![v],
                    other => {
                        self.error(
                            span,
                            format!(
                                "{name}: expected a list of strings, found {}",
                                type_name(&other)
                            ),
                        );
                        return None;
                    }
                };
                let mut out = Vec::new();
                for it in items {
                    match (&it, to_string_value(&it)) {
                        (Value::Null, _) | (_, None) => {
                            self.error(
                                span.clone(),
                                format!(
                                    "{name}: expected a list of strings, found an item of type {}",
                                    type_name(&it)
                                ),
                            );
                            return None;
                        }
                        (_, Some(s)) => out.push(Value::String(s)),
                    }
                }
                Some(Value::Array(out))
            }
            Kind::StrMap => self.str_map(v, span, name),
            _ => Some(v),
        }
    }

    fn str_map(&mut self, v: Value, span: Option<Range<usize>>, name: &str) -> Option<Value> {
        let Value::Object(m) = v else {
            self.error(
                span,
                format!("{name}: expected a map of strings, found {}", type_name(&v)),
            );
            return None;
        };
        let mut out = Map::new();
        for (k, val) in m {
            match to_string_value(&val) {
                Some(s) if !val.is_null() => {
                    out.insert(k, Value::String(s));
                }
                _ => {
                    self.error(
                        span.clone(),
                        format!("{name}.{k}: expected a string, found {}", type_name(&val)),
                    );
                }
            }
        }
        Some(Value::Object(out))
    }

    fn block(&mut self, b: &Blk<'_>, sch: &'static Sch, path: &str) -> Value {
        let mut out = Map::new();
        self.pos.insert(path, self.at(b.span.clone()));
        match (sch.label, b.labels.as_slice()) {
            (Some(field), [(label, lspan)]) => {
                self.pos.insert(join(path, field), self.at(lspan.clone()));
                out.insert(field.to_string(), Value::String(label.clone()));
            }
            (Some(_), []) if sch.name != "target" && sch.name != "job" => {
                self.error(
                    b.ident_span.clone(),
                    format!(
                        "{} block needs a label: `{} \"<name>\" {{ ... }}`",
                        sch.name, sch.name
                    ),
                );
            }
            (None, [(_, first), ..]) | (Some(_), [_, (_, first), ..]) => {
                self.error(
                    first.clone(),
                    format!(
                        "{} block takes {} label(s), found {}",
                        sch.name,
                        usize::from(sch.label.is_some()),
                        b.labels.len()
                    ),
                );
            }
            _ => {}
        }
        self.body(b.body, sch, path, &mut out);
        self.fixup(sch, path, &mut out);
        Value::Object(out)
    }

    fn body(&mut self, body: &Body, sch: &'static Sch, path: &str, out: &mut Map<String, Value>) {
        let mut st = BodyState::default();
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => self.attribute(a, sch, path, out, &mut st),
                Structure::Block(b) if b.ident.value().as_str() == "dynamic" => {
                    for (blk, frame) in self.expand_dynamic(b) {
                        if let Some(f) = frame {
                            self.scope.iter.push(f);
                        }
                        self.nested_block(&blk, sch, path, out, &mut st);
                        self.scope.iter.pop();
                    }
                }
                Structure::Block(b) => self.nested_block(&Blk::from(b), sch, path, out, &mut st),
            }
        }
        if !st.ignored.is_empty() && sch.has_ignored {
            out.insert("ignored".into(), Value::Object(st.ignored));
        }
    }

    fn unknown(&mut self, name: &str, span: Option<Range<usize>>, sch: &Sch, what: &str) {
        // Only names a user may write (the shorthand slots start with `_` in the target).
        let names: Vec<&str> = sch
            .fields
            .iter()
            .filter(|(n, t, _)| !n.starts_with('_') && !t.starts_with('_'))
            .map(|(n, _, _)| *n)
            .collect();
        let hint = match did_you_mean(name, names.iter().copied()) {
            Some(s) => format!(" (did you mean \"{s}\"?)"),
            None if names.len() <= 12 => format!(": expected one of {}", names.join(", ")),
            None => format!(": see docs/jobspec.md for what a {} block holds", sch.name),
        };
        self.error(
            span,
            format!("unknown {what} \"{name}\" in {} block{hint}", sch.name),
        );
    }

    fn attribute(
        &mut self,
        a: &Attribute,
        sch: &'static Sch,
        path: &str,
        out: &mut Map<String, Value>,
        st: &mut BodyState,
    ) {
        let name = a.key.value().as_str().to_string();
        let span = a.key.span();
        let Some(&(_, target, kind)) = sch.field(&name) else {
            if sch.label == Some(name.as_str()) {
                // `name = "x"` inside a labelled block: allowed when it agrees with the label.
                if let Some(v) = self.scalar(&a.value, Kind::Str, &name) {
                    if out.get(&name).is_some_and(|l| l != &v) {
                        self.error(
                            a.value.span(),
                            format!("{name} {} differs from the block label {}", v, out[&name]),
                        );
                    }
                }
                return;
            }
            self.unknown(&name, span, sch, "attribute");
            return;
        };
        if st.seen_attrs.contains(&name) {
            self.error(
                span,
                format!("duplicate attribute \"{name}\" in {} block", sch.name),
            );
            return;
        }
        st.seen_attrs.push(name.clone());
        let fpath = join(path, target);
        match kind {
            Kind::Dropped => {}
            Kind::Ignored => {
                if let Some(v) = self.value(&a.value) {
                    st.ignored.insert(name.clone(), v);
                }
                self.warn(
                    span,
                    format!(
                        "\"{name}\" in {} block is not supported by Nomos and will be ignored",
                        sch.name
                    ),
                );
            }
            Kind::Block(_) | Kind::Blocks(_) | Kind::LabeledFree => {
                self.error(
                    span,
                    format!("\"{name}\" is a block, not an attribute: write `{name} {{ ... }}`"),
                );
            }
            _ => {
                self.pos.insert(fpath.clone(), self.at(span));
                if let Expression::Array(items) = &a.value {
                    for (i, item) in items.iter().enumerate() {
                        self.pos.insert(index(&fpath, i), self.at(item.span()));
                    }
                }
                match self.scalar(&a.value, kind, &name) {
                    Some(v) => {
                        out.insert(target.to_string(), v);
                    }
                    None => self.failed.push(fpath),
                }
            }
        }
    }

    fn nested_block(
        &mut self,
        b: &Blk<'_>,
        sch: &'static Sch,
        path: &str,
        out: &mut Map<String, Value>,
        st: &mut BodyState,
    ) {
        let name = b.ident.clone();
        let span = b.ident_span.clone();
        let Some(&(_, target, kind)) = sch.field(&name) else {
            self.unknown(&name, span, sch, "block");
            return;
        };
        let fpath = join(path, target);
        match kind {
            Kind::Dropped => {}
            Kind::Ignored => {
                let mut v = self.free_body(b.body);
                for (l, _) in b.labels.iter().rev() {
                    let mut m = Map::new();
                    m.insert(l.clone(), v);
                    v = Value::Object(m);
                }
                push_multi(&mut st.ignored, &name, v);
                let mut nested = Vec::new();
                nested_blocks(b.body, &mut nested);
                let inner = if nested.is_empty() {
                    String::new()
                } else {
                    format!(" (with {})", nested.join(", "))
                };
                self.warn(span, format!("{name} block{inner} in {} block is not supported by Nomos and will be ignored", sch.name));
            }
            Kind::Block(sub) => {
                if out.contains_key(target) {
                    self.error(
                        span,
                        format!(
                            "duplicate {name} block: only one is allowed in a {} block",
                            sch.name
                        ),
                    );
                    return;
                }
                self.pos.insert(fpath.clone(), self.at(span));
                let v = self.block(b, sub, &fpath);
                out.insert(target.to_string(), v);
            }
            Kind::Blocks(sub) => {
                let list = out
                    .entry(target.to_string())
                    .or_insert_with(|| Value::Array(Vec::new()));
                let i = list.as_array().map(Vec::len).unwrap_or(0);
                let ipath = index(&fpath, i);
                self.pos.insert(fpath.clone(), self.at(span.clone()));
                self.pos.insert(ipath.clone(), self.at(span));
                let v = self.block(b, sub, &ipath);
                if let Some(Value::Array(items)) = out.get_mut(target) {
                    items.push(v);
                }
            }
            Kind::StrMap => {
                self.pos.insert(fpath.clone(), self.at(span.clone()));
                let v = self.free_body(b.body);
                if let Some(m) = self.str_map(v, span, &name) {
                    merge_into(out, target, m);
                }
            }
            Kind::Free => {
                self.pos.insert(fpath.clone(), self.at(span));
                let v = self.free_body(b.body);
                merge_into(out, target, v);
            }
            Kind::LabeledFree => {
                let label = b.labels.first().map(|(l, _)| l.clone()).unwrap_or_default();
                let v = self.free_body(b.body);
                self.pos.insert(join(&fpath, &label), self.at(span.clone()));
                let mut m = Map::new();
                m.insert(label, v);
                merge_into(out, target, Value::Object(m));
                self.warn(span, format!("{name} block is recorded but not acted on by Nomos (no volume support yet)"));
            }
            _ => {
                self.error(
                    span,
                    format!("\"{name}\" is an attribute, not a block: write `{name} = ...`"),
                );
            }
        }
    }

    /// Block-specific rewrites after decoding.
    fn fixup(&mut self, sch: &Sch, path: &str, out: &mut Map<String, Value>) {
        match sch.name {
            "constraint" | "affinity" => {
                let shorthands = [
                    "distinct_hosts",
                    "distinct_property",
                    "regexp",
                    "version",
                    "semver",
                    "set_contains",
                    "set_contains_any",
                    "set_contains_all",
                ];
                for op in shorthands {
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
            "periodic" => {
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
            "logs" => {
                if let Some(Value::Bool(enabled)) = out.remove("_enabled") {
                    out.insert("disabled".into(), Value::Bool(!enabled));
                }
            }
            "group" => {
                // HCL1: `network` inside a task's `resources` belongs to the group. Positions
                // move with them, so later findings point into the task's resources block.
                let mut moved: Vec<(String, Value)> = Vec::new();
                if let Some(Value::Array(tasks)) = out.get_mut("tasks") {
                    for (ti, t) in tasks.iter_mut().enumerate() {
                        if let Some(Value::Object(res)) = t.get_mut("resources") {
                            if let Some(Value::Array(nets)) = res.remove("networks") {
                                for (ni, n) in nets.into_iter().enumerate() {
                                    moved.push((
                                        format!("{path}.tasks[{ti}].resources.networks[{ni}]"),
                                        n,
                                    ));
                                }
                            }
                        }
                    }
                }
                if !moved.is_empty() {
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
            _ => {}
        }
    }
}

/// What the text holds at a syntax error: the next token, or the end of the file.
fn found_at(source: &str, offset: usize) -> String {
    let mut start = offset.min(source.len());
    while !source.is_char_boundary(start) {
        start -= 1;
    }
    let rest = source[start..].trim_start_matches([' ', '\t']);
    if rest.trim().is_empty() {
        return "the end of the file".into();
    }
    if rest.starts_with(['\n', '\r']) {
        return "the end of the line".into();
    }
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace())
        .take(20)
        .collect();
    format!("`{token}`")
}

/// A block to decode: a real one, or one generated by a `dynamic` block.
struct Blk<'b> {
    ident: String,
    ident_span: Option<Range<usize>>,
    labels: Vec<(String, Option<Range<usize>>)>,
    body: &'b Body,
    span: Option<Range<usize>>,
    /// Generated from a `dynamic` block's `content` (an iteration frame is pushed for it).
    body_is_dynamic_content: bool,
}

impl<'b> Blk<'b> {
    fn from(b: &'b Block) -> Self {
        Blk {
            ident: b.ident.value().as_str().to_string(),
            ident_span: b.ident.span(),
            labels: b
                .labels
                .iter()
                .map(|l| (l.as_str().to_string(), l.span()))
                .collect(),
            body: &b.body,
            span: b.span(),
            body_is_dynamic_content: false,
        }
    }
}

/// What a body remembers while its items are decoded.
#[derive(Default)]
struct BodyState {
    ignored: Map<String, Value>,
    seen_attrs: Vec<String>,
}

/// Names of the blocks nested in a body, each once, in order of appearance.
fn nested_blocks(body: &Body, out: &mut Vec<String>) {
    for b in body.blocks() {
        let name = b.ident.value().as_str().to_string();
        if !out.contains(&name) {
            out.push(name);
        }
        nested_blocks(&b.body, out);
    }
}

fn push_multi(map: &mut Map<String, Value>, key: &str, v: Value) {
    match map.get_mut(key) {
        Some(Value::Array(items)) => items.push(v),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, v]);
        }
        None => {
            map.insert(key.to_string(), v);
        }
    }
}

fn merge_into(out: &mut Map<String, Value>, key: &str, v: Value) {
    match (out.get_mut(key), v) {
        (Some(Value::Object(existing)), Value::Object(new)) => existing.extend(new),
        (_, v) => {
            out.insert(key.to_string(), v);
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
    let mut scope = Scope {
        source: text,
        vars: Map::new(),
        locals: Map::new(),
        iter: Vec::new(),
        options,
        locals_pending: false,
        failed_vars: Vec::new(),
        steps: 0,
    };
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

/// Parses a whole HCL job file.
pub(crate) fn parse_hcl(
    file: &str,
    source: &str,
    options: &ParseOptions,
    warnings: &mut Vec<Diagnostic>,
    errors: &mut Vec<Diagnostic>,
) -> Result<Vec<RawJob>, Vec<Diagnostic>> {
    let lines = LineIndex::new(source);
    let body = match hcl_edit::parser::parse_body(source) {
        Ok(b) => b,
        Err(first) => {
            // HCL1-era syntax? Retry with commas rewritten (same byte offsets).
            let rewritten = legacy::rewrite_hcl1(source);
            match rewritten.as_deref().map(hcl_edit::parser::parse_body) {
                Some(Ok(b)) => {
                    warnings.push(Diagnostic::warning(file, Pos::new(1, 1), "HCL1-era syntax (commas between attributes or quoted attribute names) accepted; Nomad 1.x's HCL2 rejects it"));
                    b
                }
                _ => {
                    let loc = first.location();
                    let msg = first.message().to_string();
                    let found = found_at(source, loc.offset());
                    let msg = if msg.is_empty() {
                        format!("invalid HCL syntax, found {found}")
                    } else {
                        format!("invalid HCL syntax: {msg}, found {found}")
                    };
                    return Err(vec![Diagnostic::error(
                        file,
                        Pos::new(loc.line() as u32, loc.column() as u32),
                        msg,
                    )]);
                }
            }
        }
    };
    let mut d = Decoder {
        file,
        lines,
        scope: Scope {
            source,
            vars: Map::new(),
            locals: Map::new(),
            iter: Vec::new(),
            options,
            locals_pending: false,
            failed_vars: Vec::new(),
            steps: 0,
        },
        pos: PosMap::default(),
        failed: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    variables(&mut d, &body, options);
    locals(&mut d, &body);
    let mut jobs = Vec::new();
    for s in body.iter() {
        match s {
            Structure::Block(b) if b.ident.value().as_str() == "job" => {
                if !jobs.is_empty() {
                    d.error(b.ident.span(), "only one job block is allowed per file");
                    continue;
                }
                d.pos = PosMap::default();
                d.failed.clear();
                let v = d.block(&Blk::from(b), &schema::JOB, "");
                jobs.push(RawJob {
                    value: v,
                    pos: std::mem::take(&mut d.pos),
                    failed: std::mem::take(&mut d.failed),
                });
            }
            Structure::Block(b) if matches!(b.ident.value().as_str(), "variable" | "locals") => {}
            Structure::Block(b) => {
                let name = b.ident.value().as_str();
                let hint = did_you_mean(name, ["job", "variable", "locals"])
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                d.error(b.ident.span(), format!("unknown block \"{name}\" at top level{hint}: expected job, variable or locals"));
            }
            Structure::Attribute(a) => {
                let name = a.key.value().as_str();
                d.error(
                    a.key.span(),
                    format!("unexpected attribute \"{name}\" at top level: expected a job block"),
                );
            }
        }
    }
    if jobs.is_empty() && d.errors.is_empty() {
        d.errors.push(Diagnostic::error(
            file,
            Pos::new(1, 1),
            "no job found: expected a `job \"<id>\" { ... }` block",
        ));
    }
    warnings.append(&mut d.warnings);
    if jobs.is_empty() {
        return Err(d.errors);
    }
    // Decoding errors are reported together with what validation finds in the rest.
    errors.append(&mut d.errors);
    Ok(jobs)
}

fn variables(d: &mut Decoder<'_>, body: &Body, options: &ParseOptions) {
    // Values from -var-file files.
    let mut file_values: Map<String, Value> = Map::new();
    for vf in &options.var_files {
        let name = vf.display().to_string();
        let text = match options.read_file(vf) {
            Ok(t) => t,
            Err(e) => {
                d.errors.push(Diagnostic::error(&name, Pos::default(), e));
                continue;
            }
        };
        if name.ends_with(".json") {
            match serde_json::from_str::<Map<String, Value>>(&text) {
                Ok(m) => file_values.extend(m),
                Err(e) => d.errors.push(Diagnostic::error(
                    &name,
                    Pos::new(e.line() as u32, e.column() as u32),
                    format!("invalid JSON: {e}"),
                )),
            }
            continue;
        }
        match hcl_edit::parser::parse_body(&text) {
            Ok(b) => {
                let idx = LineIndex::new(&text);
                let mut scope = Scope {
                    source: &text,
                    vars: Map::new(),
                    locals: Map::new(),
                    iter: Vec::new(),
                    options,
                    locals_pending: false,
                    failed_vars: Vec::new(),
                    steps: 0,
                };
                for a in b.attributes() {
                    match scope.eval_keep(&a.value) {
                        Ok(v) => {
                            file_values.insert(a.key.value().as_str().to_string(), v);
                        }
                        Err((span, m)) => d.errors.push(Diagnostic::error(
                            &name,
                            span.map(|r| idx.pos(r.start)).unwrap_or_default(),
                            m,
                        )),
                    }
                }
            }
            Err(e) => d.errors.push(Diagnostic::error(
                &name,
                Pos::new(e.location().line() as u32, e.location().column() as u32),
                format!("invalid HCL syntax: {}", e.message()),
            )),
        }
    }
    let env: Vec<(String, String)> = options
        .env
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("NOMAD_VAR_")
                .map(|n| (n.to_string(), v.clone()))
        })
        .collect();
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
        let mut ty = String::new();
        let mut value: Option<Value> = None;
        let mut validations = Vec::new();
        for s in b.body.iter() {
            match s {
                Structure::Attribute(a) => match a.key.value().as_str() {
                    "type" => ty = d.scope_text(a.value.span()),
                    "default" => value = d.value(&a.value),
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
                    validations.push(vb)
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
        let conv =
            |d: &mut Decoder<'_>, text: &str, origin: &str| match convert_var(text, &ty, options) {
                Ok(v) => Some(v),
                Err(e) => {
                    d.error(
                        label.span(),
                        format!("variable \"{name}\" from {origin}: {e}"),
                    );
                    None
                }
            };
        if let Some((_, text)) = env.iter().find(|(n, _)| *n == name) {
            value = conv(d, text, &format!("NOMAD_VAR_{name}")).or(value);
        }
        if let Some(v) = file_values.get(&name) {
            value = Some(v.clone());
        }
        if let Some((_, text)) = options.vars.iter().rev().find(|(n, _)| *n == name) {
            value = conv(d, text, "-var").or(value);
        }
        let Some(v) = value else {
            d.error(label.span(), format!("variable \"{name}\" has no value: give it a default, or set it with -var {name}=..., a -var-file, or NOMAD_VAR_{name}"));
            d.scope.failed_vars.push(name.clone());
            continue;
        };
        let v = if ty.is_empty() {
            v
        } else {
            match check_type(&v, &ty) {
                Ok(v) => v,
                Err(e) => {
                    d.error(label.span(), format!("variable \"{name}\": {e}"));
                    d.scope.failed_vars.push(name.clone());
                    continue;
                }
            }
        };
        d.scope.vars.insert(name.clone(), v);
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
                Err(eval::EvalErr::Keep | eval::EvalErr::Pending) => d.error(
                    cond.value.span(),
                    "validation condition may only refer to var.*",
                ),
                Err(eval::EvalErr::Err(span, m)) => d.error(span.or(cond.value.span()), m),
            }
        }
    }
    for (n, _) in &options.vars {
        if !declared.contains(n) {
            d.errors.push(Diagnostic::error(
                d.file,
                Pos::default(),
                format!("-var \"{n}\": no variable \"{n}\" is declared in this file"),
            ));
        }
    }
    for n in file_values.keys() {
        if !declared.contains(n) {
            d.warnings.push(Diagnostic::warning(
                d.file,
                Pos::default(),
                format!("-var-file sets \"{n}\", which this file does not declare"),
            ));
        }
    }
}

impl Decoder<'_> {
    fn scope_text(&self, span: Option<Range<usize>>) -> String {
        span.and_then(|r| self.scope.source.get(r))
            .unwrap_or("")
            .trim()
            .to_string()
    }
}

fn locals(d: &mut Decoder<'_>, body: &Body) {
    let mut pending: Vec<(String, &Expression, Option<Range<usize>>)> = Vec::new();
    for b in body
        .blocks()
        .filter(|b| b.ident.value().as_str() == "locals")
    {
        for s in b.body.iter() {
            match s {
                Structure::Attribute(a) => {
                    pending.push((a.key.value().as_str().to_string(), &a.value, a.key.span()))
                }
                Structure::Block(lb) => d.error(lb.ident.span(), "locals holds attributes only"),
            }
        }
    }
    // Evaluate in dependency order: repeat while something new resolves.
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for (name, e, span) in pending {
            d.scope.locals_pending = true;
            let r = d.scope.eval(e);
            d.scope.locals_pending = false;
            match r {
                Ok(v) => {
                    d.scope.locals.insert(name, v);
                }
                Err(eval::EvalErr::Pending) => rest.push((name, e, span)),
                Err(eval::EvalErr::Keep) => {
                    let v = d.value(e).unwrap_or(Value::Null);
                    d.scope.locals.insert(name, v);
                }
                Err(eval::EvalErr::Err(s, m)) => d.error(s.or(span), m),
            }
        }
        if rest.len() == before {
            for (name, e, _) in &rest {
                // Report through the normal path (now with all locals known).
                match d.scope.eval(e) {
                    Ok(v) => {
                        d.scope.locals.insert(name.clone(), v);
                    }
                    Err(eval::EvalErr::Err(s, m)) => {
                        let other = m
                            .strip_prefix("unknown local value \"")
                            .and_then(|r| r.strip_suffix('"'));
                        match other.filter(|o| rest.iter().any(|(n, _, _)| n == o)) {
                            Some(o) => d.error(
                                s.or(e.span()),
                                format!(
                                    "local \"{name}\" is part of a cycle through local \"{o}\""
                                ),
                            ),
                            None => d.error(s.or(e.span()), format!("local \"{name}\": {m}")),
                        }
                    }
                    Err(eval::EvalErr::Keep | eval::EvalErr::Pending) => d.error(
                        e.span(),
                        format!("local \"{name}\" refers to a run-time value or to itself"),
                    ),
                }
            }
            break;
        }
        pending = rest;
    }
}
