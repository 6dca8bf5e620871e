//! `dynamic "name" { for_each = ..., iterator = it, labels = [...], content { } }`: expanded
//! into the blocks it stands for, each decoded with its iteration frame (`it.key`, `it.value`)
//! in scope.

use std::ops::Range;

use hcl_edit::expr::Expression;
use hcl_edit::structure::{Block, Structure};
use hcl_edit::Span;
use serde_json::{Map, Value};

use super::budget::{value_bytes, SLOT};
use super::decoder::{Blk, Decoder};
use super::eval::EvalErr;
use super::value::{iteration_items, to_string_value, type_name};

/// What one generated block costs the evaluation budget: the block itself and its iteration
/// frame (`it.key`, `it.value`, whose values were charged when `for_each` was evaluated).
const GENERATED_BLOCK_BYTES: u64 = std::mem::size_of::<Blk<'static>>() as u64 + 4 * SLOT;

/// What a `dynamic` block's body says.
struct DynamicParts<'b> {
    /// The name of the iteration variable: `iterator`, or the generated block's name.
    iterator: String,
    for_each: Option<&'b Expression>,
    labels: Option<&'b Expression>,
    content: Option<&'b Block>,
}

impl Decoder<'_> {
    /// Expands a `dynamic` block into the blocks it generates, each with its iteration frame.
    pub fn expand_dynamic<'b>(
        &mut self,
        b: &'b Block,
    ) -> Vec<(Blk<'b>, Option<Map<String, Value>>)> {
        let Some(label) = b.labels.first() else {
            self.error(b.ident.span(), "dynamic block needs the name of the block it generates: `dynamic \"<block>\" { ... }`");
            return Vec::new();
        };
        let name = label.as_str().to_string();
        let parts = self.dynamic_parts(b, &name);
        let (Some(for_each), Some(content)) = (parts.for_each, parts.content) else {
            self.error(
                b.ident.span(),
                "dynamic block needs `for_each` and a `content` block",
            );
            return Vec::new();
        };
        let items = match self.value(for_each).map(iteration_items) {
            Some(Ok(items)) => items,
            Some(Err(other)) => {
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
            // Each generated block counts against the evaluation budget, so nested `dynamic`
            // blocks cannot multiply into millions of blocks.
            if let Err(EvalErr::Err(span, msg)) = self.scope.charge(GENERATED_BLOCK_BYTES, b.span())
            {
                self.error(span, msg);
                break;
            }
            let mut it = Map::new();
            it.insert("key".into(), k);
            it.insert("value".into(), v);
            let mut frame = Map::new();
            frame.insert(parts.iterator.clone(), Value::Object(it));
            let labels = match parts.labels {
                Some(le) => self.dynamic_labels(le, &frame),
                None => Vec::new(),
            };
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

    /// Reads `for_each`, `iterator`, `labels` and the `content` block, reporting anything else.
    fn dynamic_parts<'b>(&mut self, b: &'b Block, name: &str) -> DynamicParts<'b> {
        let mut parts = DynamicParts {
            iterator: name.to_string(),
            for_each: None,
            labels: None,
            content: None,
        };
        for s in b.body.iter() {
            match s {
                Structure::Attribute(a) => match a.key.value().as_str() {
                    "for_each" => parts.for_each = Some(&a.value),
                    "iterator" => match &a.value {
                        Expression::Variable(v) => parts.iterator = v.value().as_str().to_string(),
                        other => self.error(other.span(), "iterator must be a bare name"),
                    },
                    "labels" => parts.labels = Some(&a.value),
                    other => self.error(a.key.span(), format!("unknown attribute \"{other}\" in dynamic block: expected for_each, iterator, labels")),
                },
                Structure::Block(c) if c.ident.value().as_str() == "content" => parts.content = Some(c),
                Structure::Block(c) => self.error(c.ident.span(), format!("unknown block \"{}\" in dynamic block: expected content", c.ident.value().as_str())),
            }
        }
        parts
    }

    /// The labels of one generated block: `labels` evaluated with its iteration frame.
    fn dynamic_labels(
        &mut self,
        labels_expr: &Expression,
        frame: &Map<String, Value>,
    ) -> Vec<(String, Option<Range<usize>>)> {
        let frame = Value::Object(frame.clone());
        if let Err(EvalErr::Err(span, msg)) =
            self.scope.charge(value_bytes(&frame), labels_expr.span())
        {
            self.error(span, msg);
            return Vec::new();
        }
        let Value::Object(frame) = frame else {
            return Vec::new();
        };
        self.scope.iter.push(frame);
        let lv = self.value(labels_expr);
        self.scope.iter.pop();
        let mut labels = Vec::new();
        match lv {
            Some(Value::Array(ls)) => {
                for l in ls {
                    labels.push((to_string_value(&l).unwrap_or_default(), labels_expr.span()));
                }
            }
            Some(other) => self.error(
                labels_expr.span(),
                format!(
                    "labels: expected a list of strings, found {}",
                    type_name(&other)
                ),
            ),
            None => {}
        }
        labels
    }
}
