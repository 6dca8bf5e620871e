//! Decoding blocks against their schema: each attribute converted to its field's kind, each
//! nested block decoded into its field (one, a list, a map or free-form), unknown names
//! reported with a "did you mean", blocks Nomos does not act on kept in `ignored` and warned
//! about, and a position recorded for every field path.

use std::ops::Range;

use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Body, Structure};
use hcl_edit::Span;
use serde_json::{Map, Value};

use super::decoder::{Blk, Decoder};
use super::scalar;
use super::schema::{Kind, Sch};
use crate::diag::did_you_mean;
use crate::fieldpath::{index, join};

impl Decoder<'_> {
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
                        let v = self.free_body(blk.body);
                        if blk.body_is_dynamic_content {
                            self.scope.iter.pop();
                        }
                        push_multi(&mut out, &blk.ident, nest_under_labels(&blk, v));
                    }
                }
            }
        }
        Value::Object(out)
    }

    /// Expands `dynamic "name" { for_each = ..., iterator = it, labels = [...], content { } }`
    /// Decodes a block against its schema into its canonical object, recording positions
    /// under `path`.
    pub fn block(&mut self, b: &Blk<'_>, sch: &'static Sch, path: &str) -> Value {
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
            Kind::Block(_) | Kind::Blocks(_) | Kind::LabeledMap(_) => {
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
            Kind::Ignored => self.ignored_block(b, sch, st),
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
            Kind::LabeledMap(sub) => {
                let label = b.labels.first().map(|(l, _)| l.clone()).unwrap_or_default();
                let lpath = join(&fpath, &label);
                if out.get(target).and_then(|m| m.get(&label)).is_some() {
                    self.error(
                        span,
                        format!("duplicate {name} {label:?}: each {name} needs its own name"),
                    );
                    return;
                }
                let v = self.block(b, sub, &lpath);
                let mut m = Map::new();
                m.insert(label, v);
                merge_into(out, target, Value::Object(m));
            }
            _ => {
                self.error(
                    span,
                    format!("\"{name}\" is an attribute, not a block: write `{name} = ...`"),
                );
            }
        }
    }

    /// A block Nomos recognises but does not act on: kept, free-form, in `ignored`, and
    /// warned about (naming the blocks inside it).
    fn ignored_block(&mut self, b: &Blk<'_>, sch: &Sch, st: &mut BodyState) {
        let v = self.free_body(b.body);
        push_multi(&mut st.ignored, &b.ident, nest_under_labels(b, v));
        let mut nested = Vec::new();
        nested_blocks(b.body, &mut nested);
        let inner = if nested.is_empty() {
            String::new()
        } else {
            format!(" (with {})", nested.join(", "))
        };
        self.warn(
            b.ident_span.clone(),
            format!(
                "{} block{inner} in {} block is not supported by Nomos and will be ignored",
                b.ident, sch.name
            ),
        );
    }

    /// Evaluates an attribute and converts it to `kind`, reporting any problem at it.
    fn scalar(&mut self, e: &Expression, kind: Kind, name: &str) -> Option<Value> {
        let v = self.value(e)?;
        let mut problems = Vec::new();
        let converted = scalar::convert(v, kind, name, &mut problems);
        self.report_all(e.span(), problems);
        converted
    }

    fn str_map(&mut self, v: Value, span: Option<Range<usize>>, name: &str) -> Option<Value> {
        let mut problems = Vec::new();
        let converted = scalar::str_map(v, name, &mut problems);
        self.report_all(span, problems);
        converted
    }

    fn report_all(&mut self, span: Option<Range<usize>>, problems: Vec<String>) {
        for p in problems {
            self.error(span.clone(), p);
        }
    }
}

/// What a body remembers while its items are decoded.
#[derive(Default)]
struct BodyState {
    ignored: Map<String, Value>,
    seen_attrs: Vec<String>,
}

/// A free-form block's value under its labels: `a "x" { }` is `{"x": {}}` under `a`.
fn nest_under_labels(b: &Blk<'_>, mut v: Value) -> Value {
    for (l, _) in b.labels.iter().rev() {
        let mut m = Map::new();
        m.insert(l.clone(), v);
        v = Value::Object(m);
    }
    v
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
