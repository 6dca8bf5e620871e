//! `locals` blocks: local values may refer to each other in any order, so they are evaluated
//! in rounds until no more resolve; what is left is reported as a cycle or as the error that
//! stops it.

use std::ops::Range;

use hcl_edit::expr::Expression;
use hcl_edit::structure::{Body, Structure};
use hcl_edit::Span;
use serde_json::Value;

use super::decoder::Decoder;
use super::eval::EvalErr;

/// One `name = expression` in a `locals` block.
struct Local<'b> {
    name: String,
    expr: &'b Expression,
    span: Option<Range<usize>>,
}

/// Evaluates every local value into the decoder's scope.
pub(super) fn locals(d: &mut Decoder<'_>, body: &Body) {
    let mut pending = definitions(d, body);
    // Evaluate in dependency order: repeat while something new resolves.
    while !pending.is_empty() {
        let before = pending.len();
        let rest = resolve_round(d, pending);
        if rest.len() == before {
            report_unresolved(d, &rest);
            break;
        }
        pending = rest;
    }
}

/// The attributes of every `locals` block, in order; a block inside one is reported.
fn definitions<'b>(d: &mut Decoder<'_>, body: &'b Body) -> Vec<Local<'b>> {
    let mut defs = Vec::new();
    for b in body
        .blocks()
        .filter(|b| b.ident.value().as_str() == "locals")
    {
        for s in b.body.iter() {
            match s {
                Structure::Attribute(a) => defs.push(Local {
                    name: a.key.value().as_str().to_string(),
                    expr: &a.value,
                    span: a.key.span(),
                }),
                Structure::Block(lb) => d.error(lb.ident.span(), "locals holds attributes only"),
            }
        }
    }
    defs
}

/// Evaluates each pending local once; returns those that refer to a local not known yet.
fn resolve_round<'b>(d: &mut Decoder<'_>, pending: Vec<Local<'b>>) -> Vec<Local<'b>> {
    let mut rest = Vec::new();
    for local in pending {
        d.scope.locals_pending = true;
        let r = d.scope.eval(local.expr);
        d.scope.locals_pending = false;
        match r {
            Ok(v) => {
                d.scope.locals.insert(local.name, v);
            }
            Err(EvalErr::Pending) => rest.push(local),
            Err(EvalErr::Keep) => {
                let v = d.value(local.expr).unwrap_or(Value::Null);
                d.scope.locals.insert(local.name, v);
            }
            Err(EvalErr::Err(s, m)) => d.error(s.or(local.span), m),
        }
    }
    rest
}

/// Locals that no round resolved: each is evaluated once more through the normal path (now
/// with all other locals known) and reported, as part of a cycle when the local it misses is
/// one of them.
fn report_unresolved(d: &mut Decoder<'_>, rest: &[Local<'_>]) {
    for Local { name, expr: e, .. } in rest {
        match d.scope.eval(e) {
            Ok(v) => {
                d.scope.locals.insert(name.clone(), v);
            }
            Err(EvalErr::Err(s, m)) => {
                let other = m
                    .strip_prefix("unknown local value \"")
                    .and_then(|r| r.strip_suffix('"'));
                match other.filter(|o| rest.iter().any(|l| l.name == *o)) {
                    Some(o) => d.error(
                        s.or(e.span()),
                        format!("local \"{name}\" is part of a cycle through local \"{o}\""),
                    ),
                    None => d.error(s.or(e.span()), format!("local \"{name}\": {m}")),
                }
            }
            Err(EvalErr::Keep | EvalErr::Pending) => d.error(
                e.span(),
                format!("local \"{name}\" refers to a run-time value or to itself"),
            ),
        }
    }
}
