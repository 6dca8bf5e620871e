//! Evaluation of HCL expressions to JSON values: literals, templates, operators, conditionals,
//! `for` expressions, `var.*` / `local.*` references and the common HCL functions.
//!
//! This is a small evaluator over `hcl-edit`'s syntax tree rather than hcl-rs's `eval::Context`,
//! because Nomad files mix two kinds of references: `var.x` / `local.x`, which are resolved
//! here, and run-time ones (`${attr.x}`, `${node.x}`, `${meta.x}`, `${NOMAD_*}`, `${env[...]}`)
//! that must reach the agent as literal text. Walking the tree ourselves keeps the exact source
//! text of those interpolations, and every error keeps its byte span for `file:line:col`.

use std::ops::Range;

use base64::Engine;
use hcl_edit::expr::{BinaryOperator, Expression, ObjectKey, TraversalOperator, UnaryOperator};
use hcl_edit::template::{Directive, Element, Template};
use hcl_edit::Span;
use serde_json::{Map, Number, Value};

use crate::parse::ParseOptions;

/// Why an expression has no value here.
#[derive(Debug, Clone)]
pub(crate) enum EvalErr {
    /// It refers to something only the agent knows (`attr.*`, `NOMAD_*`, ...): keep its text.
    Keep,
    /// A real error, with the byte span it is about.
    Err(Option<Range<usize>>, String),
    /// Refers to a local not evaluated yet (only while locals are being resolved).
    Pending,
}

type R = Result<Value, EvalErr>;

fn err(span: Option<Range<usize>>, msg: impl Into<String>) -> EvalErr {
    EvalErr::Err(span, msg.into())
}

/// What expressions can see.
pub(crate) struct Scope<'a> {
    pub source: &'a str,
    pub vars: Map<String, Value>,
    pub locals: Map<String, Value>,
    /// `for` iteration variables, innermost last.
    pub iter: Vec<Map<String, Value>>,
    pub options: &'a ParseOptions,
    /// While locals are resolved: `local.x` not known yet is `Pending` instead of an error.
    pub locals_pending: bool,
    /// Variables already reported as having no (valid) value; their uses stay quiet.
    pub failed_vars: Vec<String>,
    /// Expressions evaluated so far; bounded by [`MAX_STEPS`] so no file can make the
    /// parser (which runs inside the API server) spin or exhaust memory.
    pub steps: u64,
}

/// The evaluation budget of one file.
pub(crate) const MAX_STEPS: u64 = 1_000_000;

impl Scope<'_> {
    fn text(&self, span: Option<Range<usize>>) -> String {
        span.and_then(|r| self.source.get(r))
            .unwrap_or("")
            .trim()
            .to_string()
    }

    /// Evaluates an expression; run-time references become literal `${...}` text.
    pub fn eval_keep(&mut self, e: &Expression) -> Result<Value, (Option<Range<usize>>, String)> {
        match self.eval(e) {
            Ok(v) => Ok(v),
            Err(EvalErr::Keep) => {
                // Outside a string, only references the agent can expand are kept as text; a
                // bare word such as `driver = docker` is a mistake, not a run-time reference.
                match unknown_root(e, &self.iter) {
                    Some((name, span)) if !is_runtime_root(&name) => Err((
                        span,
                        format!(
                            "unknown variable \"{name}\": write a string in quotes (\"{name}\"), or refer to var.<name> or local.<name>"
                        ),
                    )),
                    _ => Ok(Value::String(format!("${{{}}}", self.text(e.span())))),
                }
            }
            Err(EvalErr::Err(span, msg)) => Err((span.or_else(|| e.span()), msg)),
            Err(EvalErr::Pending) => Err((
                e.span(),
                "refers to a local value that cannot be resolved".into(),
            )),
        }
    }

    pub fn eval(&mut self, e: &Expression) -> R {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(err(
                e.span(),
                format!("evaluation too expensive: more than {MAX_STEPS} steps"),
            ));
        }
        match e {
            Expression::Null(_) => Ok(Value::Null),
            Expression::Bool(b) => Ok(Value::Bool(*b.value())),
            Expression::Number(n) => {
                let n = n.value();
                Ok(if let Some(i) = n.as_i64() {
                    Value::from(i)
                } else if let Some(u) = n.as_u64() {
                    Value::from(u)
                } else {
                    num(n.as_f64().unwrap_or(0.0))
                })
            }
            Expression::String(s) => Ok(Value::String(s.value().to_string())),
            Expression::Array(a) => {
                let mut out = Vec::new();
                for item in a.iter() {
                    out.push(self.eval(item)?);
                }
                Ok(Value::Array(out))
            }
            Expression::Object(o) => {
                let mut out = Map::new();
                for (k, v) in o.iter() {
                    let key = match k {
                        ObjectKey::Ident(id) => id.value().as_str().to_string(),
                        ObjectKey::Expression(ke) => match ke {
                            Expression::Variable(id) => id.value().as_str().to_string(),
                            _ => to_string_value(&self.eval(ke)?)
                                .ok_or_else(|| err(ke.span(), "object key must be a string"))?,
                        },
                    };
                    let val = self.eval(v.expr())?;
                    out.insert(key, val);
                }
                Ok(Value::Object(out))
            }
            Expression::StringTemplate(t) => self.template(t),
            Expression::HeredocTemplate(h) => self.template(&h.template),
            Expression::Parenthesis(p) => self.eval(p.inner()),
            Expression::Variable(v) => self.variable(v.value().as_str()),
            Expression::Conditional(c) => {
                let cond = self.eval(&c.cond_expr)?;
                match cond {
                    Value::Bool(true) => self.eval(&c.true_expr),
                    Value::Bool(false) => self.eval(&c.false_expr),
                    Value::String(s) if s == "true" => self.eval(&c.true_expr),
                    Value::String(s) if s == "false" => self.eval(&c.false_expr),
                    other => Err(err(
                        c.cond_expr.span(),
                        format!("condition must be a bool, found {}", type_name(&other)),
                    )),
                }
            }
            Expression::FuncCall(f) => {
                let name = f.name.name.value().as_str().to_string();
                if name == "try" || name == "can" {
                    return self.try_can(&name, f, e.span());
                }
                let mut args = Vec::new();
                for a in f.args.iter() {
                    args.push(self.eval(a)?);
                }
                if f.args.expand_final() {
                    if let Some(Value::Array(last)) = args.pop() {
                        args.extend(last);
                    }
                }
                call(&name, args, self.options).map_err(|m| err(e.span(), format!("{name}(): {m}")))
            }
            Expression::Traversal(t) => {
                // `var.x` / `local.x` first, so an unknown name is reported as such.
                let mut cur = self.eval(&t.expr)?;
                let root = match &t.expr {
                    Expression::Variable(v) => v.value().as_str().to_string(),
                    _ => String::new(),
                };
                for (i, op) in t.operators.iter().enumerate() {
                    cur = match op.value() {
                        TraversalOperator::GetAttr(id) => match get_attr(&cur, id.value().as_str()) {
                            Some(v) => v,
                            None if i == 0 && root == "local" && self.locals_pending => return Err(EvalErr::Pending),
                            None if i == 0 && root == "local" => {
                                return Err(err(e.span(), format!("unknown local value \"{}\"", id.value().as_str())))
                            }
                            None if i == 0 && root == "var" && self.failed_vars.iter().any(|f| f == id.value().as_str()) => {
                                return Err(err(e.span(), ""))
                            }
                            None if i == 0 && root == "var" => {
                                return Err(err(e.span(), format!("undeclared variable \"{}\": add a `variable \"{}\" {{}}` block", id.value().as_str(), id.value().as_str())))
                            }
                            None => return Err(err(e.span(), format!("{} has no attribute \"{}\"", self.text(t.expr.span()), id.value().as_str()))),
                        },
                        TraversalOperator::Index(ix) => {
                            let k = self.eval(ix)?;
                            index_value(&cur, &k).ok_or_else(|| err(ix.span(), format!("index {} not found", show(&k))))?
                        }
                        TraversalOperator::LegacyIndex(i) => index_value(&cur, &Value::from(*i.value()))
                            .ok_or_else(|| err(e.span(), format!("index {} not found", i.value())))?,
                        TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_) => cur,
                    };
                }
                Ok(cur)
            }
            Expression::UnaryOp(u) => {
                let v = self.eval(&u.expr)?;
                match u.operator.value() {
                    UnaryOperator::Neg => Ok(num(-as_num(&v).ok_or_else(|| {
                        err(
                            u.expr.span(),
                            format!("expected a number, found {}", type_name(&v)),
                        )
                    })?)),
                    UnaryOperator::Not => Ok(Value::Bool(!as_bool(&v).ok_or_else(|| {
                        err(
                            u.expr.span(),
                            format!("expected a bool, found {}", type_name(&v)),
                        )
                    })?)),
                }
            }
            Expression::BinaryOp(b) => {
                let l = self.eval(&b.lhs_expr)?;
                let r = self.eval(&b.rhs_expr)?;
                binary(*b.operator.value(), &l, &r).map_err(|m| err(e.span(), m))
            }
            Expression::ForExpr(f) => {
                let coll = self.eval(&f.intro.collection_expr)?;
                let items: Vec<(Value, Value)> = match coll {
                    Value::Array(a) => a
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Value::from(i), v))
                        .collect(),
                    Value::Object(o) => o.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
                    other => {
                        return Err(err(
                            f.intro.collection_expr.span(),
                            format!("cannot iterate over {}", type_name(&other)),
                        ))
                    }
                };
                let mut list = Vec::new();
                let mut obj = Map::new();
                for (k, v) in items {
                    let mut frame = Map::new();
                    if let Some(kv) = &f.intro.key_var {
                        frame.insert(kv.value().as_str().to_string(), k.clone());
                    }
                    frame.insert(f.intro.value_var.value().as_str().to_string(), v);
                    self.iter.push(frame);
                    let res = (|| {
                        if let Some(c) = &f.cond {
                            if self.eval(&c.expr)? != Value::Bool(true) {
                                return Ok(());
                            }
                        }
                        let val = self.eval(&f.value_expr)?;
                        match &f.key_expr {
                            Some(ke) => {
                                let key = self.eval(ke)?;
                                let key = to_string_value(&key)
                                    .ok_or_else(|| err(ke.span(), "object key must be a string"))?;
                                if f.grouping {
                                    let entry =
                                        obj.entry(key).or_insert_with(|| Value::Array(Vec::new()));
                                    if let Value::Array(a) = entry {
                                        a.push(val);
                                    }
                                } else {
                                    obj.insert(key, val);
                                }
                            }
                            None => list.push(val),
                        }
                        Ok(())
                    })();
                    self.iter.pop();
                    res?;
                }
                Ok(if f.key_expr.is_some() {
                    Value::Object(obj)
                } else {
                    Value::Array(list)
                })
            }
        }
    }

    /// `try(a, b, ...)` and `can(x)`: their arguments are evaluated lazily, one at a time, and
    /// an evaluation error is a result rather than a failure. A run-time reference (kept as
    /// text for the agent), a local not resolved yet, or an exhausted evaluation budget is
    /// not something `try` may hide, so those pass through.
    fn try_can(
        &mut self,
        name: &str,
        f: &hcl_edit::expr::FuncCall,
        span: Option<Range<usize>>,
    ) -> R {
        let args: Vec<&Expression> = f.args.iter().collect();
        if name == "can" && args.len() != 1 {
            return Err(err(
                span,
                format!("can(): expected 1 argument, found {}", args.len()),
            ));
        }
        if args.is_empty() {
            return Err(err(span, "try(): expected at least one argument"));
        }
        let mut last = String::new();
        for a in args {
            match self.eval(a) {
                Ok(_) if name == "can" => return Ok(Value::Bool(true)),
                Ok(v) => return Ok(v),
                Err(EvalErr::Err(_, _)) if self.steps > MAX_STEPS => {
                    return Err(err(
                        span,
                        format!("evaluation too expensive: more than {MAX_STEPS} steps"),
                    ))
                }
                Err(EvalErr::Err(_, m)) => last = m,
                // A run-time reference is a value (kept as text); a bare unknown word is not.
                Err(EvalErr::Keep) => match unknown_root(a, &self.iter) {
                    Some((root, _)) if !is_runtime_root(&root) => {
                        last = format!("unknown variable \"{root}\"");
                    }
                    _ if name == "can" => return Ok(Value::Bool(true)),
                    _ => return Ok(Value::String(format!("${{{}}}", self.text(a.span())))),
                },
                Err(EvalErr::Pending) => return Err(EvalErr::Pending),
            }
        }
        if name == "can" {
            return Ok(Value::Bool(false));
        }
        Err(err(
            span,
            format!("try(): no argument could be evaluated; the last failed with: {last}"),
        ))
    }

    fn variable(&self, name: &str) -> R {
        for frame in self.iter.iter().rev() {
            if let Some(v) = frame.get(name) {
                return Ok(v.clone());
            }
        }
        match name {
            "var" => Ok(Value::Object(self.vars.clone())),
            "local" => Ok(Value::Object(self.locals.clone())),
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            "null" => Ok(Value::Null),
            _ => Err(EvalErr::Keep),
        }
    }

    fn template(&mut self, t: &Template) -> R {
        // A template that is one interpolation yields that value unchanged (HCL's rule).
        let elems: Vec<&Element> = t.iter().collect();
        if let [Element::Interpolation(i)] = elems.as_slice() {
            return match self.eval(&i.expr) {
                Err(EvalErr::Keep) => {
                    Ok(Value::String(format!("${{{}}}", self.text(i.expr.span()))))
                }
                other => other,
            };
        }
        let mut out = String::new();
        self.render(t, &mut out)?;
        Ok(Value::String(out))
    }

    fn render(&mut self, t: &Template, out: &mut String) -> Result<(), EvalErr> {
        for el in t.iter() {
            match el {
                Element::Literal(l) => out.push_str(l.value()),
                Element::Interpolation(i) => match self.eval(&i.expr) {
                    Ok(v) => out.push_str(&to_string_value(&v).ok_or_else(|| {
                        err(
                            i.expr.span(),
                            format!("cannot interpolate {} into a string", type_name(&v)),
                        )
                    })?),
                    Err(EvalErr::Keep) => {
                        out.push_str("${");
                        out.push_str(&self.text(i.expr.span()));
                        out.push('}');
                    }
                    Err(e) => return Err(e),
                },
                Element::Directive(d) => match d.as_ref() {
                    Directive::If(ifd) => match self.eval(&ifd.if_expr.cond_expr) {
                        Ok(c) => {
                            if as_bool(&c) == Some(true) {
                                self.render(&ifd.if_expr.template, out)?;
                            } else if let Some(e) = &ifd.else_expr {
                                self.render(&e.template, out)?;
                            }
                        }
                        Err(EvalErr::Keep) => out.push_str(&self.text(ifd.span())),
                        Err(e) => return Err(e),
                    },
                    Directive::For(fd) => {
                        let fe = &fd.for_expr;
                        let coll = match self.eval(&fe.collection_expr) {
                            Ok(c) => c,
                            Err(EvalErr::Keep) => {
                                out.push_str(&self.text(fd.span()));
                                continue;
                            }
                            Err(e) => return Err(e),
                        };
                        let items: Vec<(Value, Value)> = match coll {
                            Value::Array(a) => a
                                .into_iter()
                                .enumerate()
                                .map(|(i, v)| (Value::from(i), v))
                                .collect(),
                            Value::Object(o) => {
                                o.into_iter().map(|(k, v)| (Value::String(k), v)).collect()
                            }
                            other => {
                                return Err(err(
                                    fe.collection_expr.span(),
                                    format!("cannot iterate over {}", type_name(&other)),
                                ))
                            }
                        };
                        for (k, v) in items {
                            let mut frame = Map::new();
                            if let Some(kv) = &fe.key_var {
                                frame.insert(kv.value().as_str().to_string(), k);
                            }
                            frame.insert(fe.value_var.value().as_str().to_string(), v);
                            self.iter.push(frame);
                            let r = self.render(&fe.template, out);
                            self.iter.pop();
                            r?;
                        }
                    }
                },
            }
        }
        Ok(())
    }
}

/// Roots of references that only the agent or the scheduler can expand.
fn is_runtime_root(name: &str) -> bool {
    matches!(name, "attr" | "node" | "meta" | "env" | "device")
        || name.starts_with("NOMAD_")
        || name.starts_with("NOMOS_")
        || name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The first variable in an expression (outside templates) that is not `var`, `local` or an
/// iteration variable, with its span.
fn unknown_root(
    e: &Expression,
    iter: &[Map<String, Value>],
) -> Option<(String, Option<Range<usize>>)> {
    let known = |n: &str| {
        matches!(n, "var" | "local" | "true" | "false" | "null")
            || iter.iter().any(|f| f.contains_key(n))
    };
    match e {
        Expression::Variable(v) => {
            let n = v.value().as_str();
            (!known(n)).then(|| (n.to_string(), e.span()))
        }
        Expression::Traversal(t) => unknown_root(&t.expr, iter),
        Expression::Parenthesis(p) => unknown_root(p.inner(), iter),
        Expression::FuncCall(f) => f.args.iter().find_map(|a| unknown_root(a, iter)),
        Expression::Array(a) => a.iter().find_map(|x| unknown_root(x, iter)),
        Expression::Object(o) => o.iter().find_map(|(_, v)| unknown_root(v.expr(), iter)),
        Expression::Conditional(c) => unknown_root(&c.cond_expr, iter)
            .or_else(|| unknown_root(&c.true_expr, iter))
            .or_else(|| unknown_root(&c.false_expr, iter)),
        Expression::UnaryOp(u) => unknown_root(&u.expr, iter),
        Expression::BinaryOp(b) => {
            unknown_root(&b.lhs_expr, iter).or_else(|| unknown_root(&b.rhs_expr, iter))
        }
        _ => None,
    }
}

pub(crate) fn num(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

pub(crate) fn as_num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn show(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The string form of a primitive (numbers and bools convert, as in HCL).
pub(crate) fn to_string_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn get_attr(v: &Value, name: &str) -> Option<Value> {
    match v {
        Value::Object(o) => o.get(name).cloned(),
        _ => None,
    }
}

fn index_value(v: &Value, k: &Value) -> Option<Value> {
    match v {
        Value::Array(a) => {
            let i = as_num(k)?;
            if i < 0.0 {
                return None;
            }
            a.get(i as usize).cloned()
        }
        Value::Object(o) => o.get(&to_string_value(k)?).cloned(),
        _ => None,
    }
}

fn binary(op: BinaryOperator, l: &Value, r: &Value) -> Result<Value, String> {
    use BinaryOperator::*;
    let nums = || -> Result<(f64, f64), String> {
        match (as_num(l), as_num(r)) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(format!(
                "expected numbers, found {} and {}",
                type_name(l),
                type_name(r)
            )),
        }
    };
    let bools = || -> Result<(bool, bool), String> {
        match (as_bool(l), as_bool(r)) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(format!(
                "expected bools, found {} and {}",
                type_name(l),
                type_name(r)
            )),
        }
    };
    Ok(match op {
        Eq => Value::Bool(loose_eq(l, r)),
        NotEq => Value::Bool(!loose_eq(l, r)),
        Less => Value::Bool({
            let (a, b) = nums()?;
            a < b
        }),
        LessEq => Value::Bool({
            let (a, b) = nums()?;
            a <= b
        }),
        Greater => Value::Bool({
            let (a, b) = nums()?;
            a > b
        }),
        GreaterEq => Value::Bool({
            let (a, b) = nums()?;
            a >= b
        }),
        Plus => {
            let (a, b) = nums()?;
            num(a + b)
        }
        Minus => {
            let (a, b) = nums()?;
            num(a - b)
        }
        Mul => {
            let (a, b) = nums()?;
            num(a * b)
        }
        Div => {
            let (a, b) = nums()?;
            if b == 0.0 {
                return Err("division by zero".into());
            }
            num(a / b)
        }
        Mod => {
            let (a, b) = nums()?;
            if b == 0.0 {
                return Err("modulo by zero".into());
            }
            num(a % b)
        }
        And => Value::Bool({
            let (a, b) = bools()?;
            a && b
        }),
        Or => Value::Bool({
            let (a, b) = bools()?;
            a || b
        }),
    })
}

pub(crate) fn loose_eq(l: &Value, r: &Value) -> bool {
    match (l, r) {
        (Value::Number(_), Value::Number(_)) => as_num(l) == as_num(r),
        _ => l == r,
    }
}

pub(crate) fn arg_str(args: &[Value], i: usize) -> Result<String, String> {
    args.get(i).and_then(to_string_value).ok_or_else(|| {
        format!(
            "argument {} must be a string, found {}",
            i + 1,
            args.get(i).map(type_name).unwrap_or("nothing")
        )
    })
}

pub(crate) fn arg_num(args: &[Value], i: usize) -> Result<f64, String> {
    args.get(i).and_then(as_num).ok_or_else(|| {
        format!(
            "argument {} must be a number, found {}",
            i + 1,
            args.get(i).map(type_name).unwrap_or("nothing")
        )
    })
}

pub(crate) fn arg_list(args: &[Value], i: usize) -> Result<Vec<Value>, String> {
    match args.get(i) {
        Some(Value::Array(a)) => Ok(a.clone()),
        other => Err(format!(
            "argument {} must be a list, found {}",
            i + 1,
            other.map(type_name).unwrap_or("nothing")
        )),
    }
}

pub(crate) fn arg_map(args: &[Value], i: usize) -> Result<Map<String, Value>, String> {
    match args.get(i) {
        Some(Value::Object(o)) => Ok(o.clone()),
        other => Err(format!(
            "argument {} must be a map, found {}",
            i + 1,
            other.map(type_name).unwrap_or("nothing")
        )),
    }
}

pub(crate) fn arity(args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!("expected {n} argument(s), found {}", args.len()));
    }
    Ok(())
}

/// The function names [`call`] knows.
pub(crate) const FUNCTIONS: &[&str] = &[
    "upper",
    "lower",
    "title",
    "format",
    "join",
    "split",
    "replace",
    "trimspace",
    "trim",
    "trimprefix",
    "trimsuffix",
    "chomp",
    "substr",
    "strrev",
    "startswith",
    "endswith",
    "concat",
    "length",
    "merge",
    "keys",
    "values",
    "lookup",
    "element",
    "contains",
    "min",
    "max",
    "abs",
    "ceil",
    "floor",
    "jsonencode",
    "jsondecode",
    "base64encode",
    "base64decode",
    "file",
    "coalesce",
    "tostring",
    "tonumber",
    "tobool",
    "tolist",
    "toset",
    "tomap",
    "distinct",
    "flatten",
    "reverse",
    "sort",
    "compact",
    "index",
    "slice",
    "range",
    "zipmap",
    "parseint",
    "pow",
    "signum",
    "log",
    "try",
    "can",
    "abspath",
    "basename",
    "dirname",
];

pub(crate) fn format_fn(args: &[Value]) -> Result<String, String> {
    let fmt = arg_str(args, 0)?;
    let mut out = String::new();
    let mut next = 1;
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&n) = chars.peek() {
            chars.next();
            if n.is_ascii_alphabetic() || n == '%' {
                spec.push(n);
                break;
            }
            spec.push(n);
        }
        let Some(verb) = spec.chars().last() else {
            return Err(format!("format \"{fmt}\" ends with an incomplete verb"));
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args
            .get(next)
            .ok_or_else(|| format!("not enough arguments for format \"{fmt}\""))?;
        next += 1;
        let flags = &spec[..spec.len() - verb.len_utf8()];
        let left = flags.contains('-');
        let (wpart, ppart) = match flags.split_once('.') {
            Some((w, p)) => (w, Some(p)),
            None => (flags, None),
        };
        let zero = wpart.trim_start_matches('-').starts_with('0');
        let width: usize = wpart
            .trim_start_matches(['-', '+', ' ', '0'])
            .parse()
            .unwrap_or(0);
        let prec: Option<usize> = ppart.and_then(|p| p.parse().ok()).map(|p: usize| p.min(64));
        let text = match verb {
            'd' => format!("{}", as_num(arg).ok_or("%d needs a number")? as i64),
            'f' => format!(
                "{:.*}",
                prec.unwrap_or(6),
                as_num(arg).ok_or("%f needs a number")?
            ),
            'q' => {
                serde_json::to_string(&to_string_value(arg).unwrap_or_default()).unwrap_or_default()
            }
            't' => as_bool(arg).ok_or("%t needs a bool")?.to_string(),
            's' | 'v' => to_string_value(arg).unwrap_or_else(|| show(arg)),
            other => return Err(format!("unsupported format verb %{other}")),
        };
        let pad = width.saturating_sub(text.chars().count()).min(1024);
        if left {
            out.push_str(&text);
            out.push_str(&" ".repeat(pad));
        } else if zero && matches!(verb, 'd' | 'f') {
            let (sign, digits) = text
                .strip_prefix('-')
                .map(|d| ("-", d))
                .unwrap_or(("", &text));
            out.push_str(sign);
            out.push_str(&"0".repeat(pad));
            out.push_str(digits);
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(&text);
        }
    }
    Ok(out)
}

/// Calls one of the supported HCL functions.
pub(crate) fn call(name: &str, args: Vec<Value>, options: &ParseOptions) -> Result<Value, String> {
    let a = &args;
    let s = |v: String| Ok(Value::String(v));
    match name {
        "upper" => {
            arity(a, 1)?;
            s(arg_str(a, 0)?.to_uppercase())
        }
        "lower" => {
            arity(a, 1)?;
            s(arg_str(a, 0)?.to_lowercase())
        }
        "title" => {
            arity(a, 1)?;
            s(arg_str(a, 0)?
                .split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" "))
        }
        "format" => s(format_fn(a)?),
        "join" => {
            arity(a, 2)?;
            let sep = arg_str(a, 0)?;
            let items: Vec<String> = arg_list(a, 1)?
                .iter()
                .map(|v| to_string_value(v).unwrap_or_else(|| show(v)))
                .collect();
            s(items.join(&sep))
        }
        "split" => {
            arity(a, 2)?;
            let sep = arg_str(a, 0)?;
            let st = arg_str(a, 1)?;
            if sep.is_empty() {
                return Err("separator must not be empty".into());
            }
            Ok(Value::Array(
                st.split(sep.as_str())
                    .map(|p| Value::String(p.into()))
                    .collect(),
            ))
        }
        "replace" => {
            arity(a, 3)?;
            s(arg_str(a, 0)?.replace(&arg_str(a, 1)?, &arg_str(a, 2)?))
        }
        "trimspace" => {
            arity(a, 1)?;
            s(arg_str(a, 0)?.trim().to_string())
        }
        "trim" => {
            arity(a, 2)?;
            let set: Vec<char> = arg_str(a, 1)?.chars().collect();
            s(arg_str(a, 0)?
                .trim_matches(|c| set.contains(&c))
                .to_string())
        }
        "trimprefix" => {
            arity(a, 2)?;
            let x = arg_str(a, 0)?;
            let p = arg_str(a, 1)?;
            s(x.strip_prefix(&p).unwrap_or(&x).to_string())
        }
        "trimsuffix" => {
            arity(a, 2)?;
            let x = arg_str(a, 0)?;
            let p = arg_str(a, 1)?;
            s(x.strip_suffix(&p).unwrap_or(&x).to_string())
        }
        "chomp" => {
            arity(a, 1)?;
            s(arg_str(a, 0)?.trim_end_matches(['\n', '\r']).to_string())
        }
        "strrev" => {
            arity(a, 1)?;
            s(arg_str(a, 0)?.chars().rev().collect())
        }
        "startswith" => {
            arity(a, 2)?;
            Ok(Value::Bool(arg_str(a, 0)?.starts_with(&arg_str(a, 1)?)))
        }
        "endswith" => {
            arity(a, 2)?;
            Ok(Value::Bool(arg_str(a, 0)?.ends_with(&arg_str(a, 1)?)))
        }
        "substr" => {
            arity(a, 3)?;
            let chars: Vec<char> = arg_str(a, 0)?.chars().collect();
            let off = arg_num(a, 1)? as i64;
            let len = arg_num(a, 2)? as i64;
            let start = if off < 0 {
                (chars.len() as i64 + off).max(0)
            } else {
                off.min(chars.len() as i64)
            } as usize;
            let end = if len < 0 {
                chars.len()
            } else {
                (start + len as usize).min(chars.len())
            };
            s(chars[start..end].iter().collect())
        }
        "concat" => {
            let mut out = Vec::new();
            for i in 0..a.len() {
                out.extend(arg_list(a, i)?);
            }
            Ok(Value::Array(out))
        }
        "length" => {
            arity(a, 1)?;
            Ok(Value::from(match &a[0] {
                Value::Array(x) => x.len(),
                Value::Object(o) => o.len(),
                Value::String(st) => st.chars().count(),
                other => return Err(format!("cannot take the length of {}", type_name(other))),
            }))
        }
        "merge" => {
            let mut out = Map::new();
            for i in 0..a.len() {
                if a[i].is_null() {
                    continue;
                }
                out.extend(arg_map(a, i)?);
            }
            Ok(Value::Object(out))
        }
        "keys" => {
            arity(a, 1)?;
            Ok(Value::Array(
                arg_map(a, 0)?
                    .keys()
                    .map(|k| Value::String(k.clone()))
                    .collect(),
            ))
        }
        "values" => {
            arity(a, 1)?;
            Ok(Value::Array(arg_map(a, 0)?.values().cloned().collect()))
        }
        "lookup" => {
            if a.len() != 2 && a.len() != 3 {
                return Err(format!("expected 2 or 3 arguments, found {}", a.len()));
            }
            let m = arg_map(a, 0)?;
            let k = arg_str(a, 1)?;
            match (m.get(&k), a.get(2)) {
                (Some(v), _) => Ok(v.clone()),
                (None, Some(d)) => Ok(d.clone()),
                (None, None) => Err(format!("key \"{k}\" not found and no default given")),
            }
        }
        "element" => {
            arity(a, 2)?;
            let l = arg_list(a, 0)?;
            if l.is_empty() {
                return Err("cannot use element() on an empty list".into());
            }
            let i = arg_num(a, 1)?;
            if i < 0.0 {
                return Err("index must not be negative".into());
            }
            Ok(l[(i as usize) % l.len()].clone())
        }
        "contains" => {
            arity(a, 2)?;
            Ok(Value::Bool(
                arg_list(a, 0)?.iter().any(|v| loose_eq(v, &a[1])),
            ))
        }
        "index" => {
            arity(a, 2)?;
            arg_list(a, 0)?
                .iter()
                .position(|v| loose_eq(v, &a[1]))
                .map(Value::from)
                .ok_or_else(|| "item not found".to_string())
        }
        "min" | "max" => {
            if a.is_empty() {
                return Err("expected at least one argument".into());
            }
            let mut best = arg_num(a, 0)?;
            for i in 1..a.len() {
                let x = arg_num(a, i)?;
                best = if name == "min" {
                    best.min(x)
                } else {
                    best.max(x)
                };
            }
            Ok(num(best))
        }
        "abs" => {
            arity(a, 1)?;
            Ok(num(arg_num(a, 0)?.abs()))
        }
        "ceil" => {
            arity(a, 1)?;
            Ok(num(arg_num(a, 0)?.ceil()))
        }
        "floor" => {
            arity(a, 1)?;
            Ok(num(arg_num(a, 0)?.floor()))
        }
        "signum" => {
            arity(a, 1)?;
            Ok(num(arg_num(a, 0)?.signum()))
        }
        "pow" => {
            arity(a, 2)?;
            Ok(num(arg_num(a, 0)?.powf(arg_num(a, 1)?)))
        }
        "log" => {
            arity(a, 2)?;
            Ok(num(arg_num(a, 0)?.log(arg_num(a, 1)?)))
        }
        "parseint" => {
            arity(a, 2)?;
            let base = arg_num(a, 1)? as u32;
            if !(2..=36).contains(&base) {
                return Err("base must be between 2 and 36".into());
            }
            i64::from_str_radix(&arg_str(a, 0)?, base)
                .map(Value::from)
                .map_err(|e| e.to_string())
        }
        "jsonencode" => {
            arity(a, 1)?;
            s(serde_json::to_string(&a[0]).map_err(|e| e.to_string())?)
        }
        "jsondecode" => {
            arity(a, 1)?;
            serde_json::from_str(&arg_str(a, 0)?).map_err(|e| e.to_string())
        }
        "base64encode" => {
            arity(a, 1)?;
            s(base64::engine::general_purpose::STANDARD.encode(arg_str(a, 0)?))
        }
        "base64decode" => {
            arity(a, 1)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(arg_str(a, 0)?.trim())
                .map_err(|e| e.to_string())?;
            s(String::from_utf8(bytes).map_err(|_| "decoded bytes are not UTF-8".to_string())?)
        }
        "file" => {
            arity(a, 1)?;
            s(options.read_file(std::path::Path::new(&arg_str(a, 0)?))?)
        }
        "abspath" | "basename" | "dirname" => {
            arity(a, 1)?;
            let p = std::path::PathBuf::from(arg_str(a, 0)?);
            s(match name {
                "basename" => p
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                "dirname" => p
                    .parent()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| ".".into()),
                _ => p.to_string_lossy().into_owned(),
            })
        }
        "coalesce" => a
            .iter()
            .find(|v| !v.is_null() && v.as_str() != Some(""))
            .cloned()
            .ok_or_else(|| "no non-null, non-empty argument".into()),
        "tostring" => {
            arity(a, 1)?;
            if a[0].is_null() {
                Ok(Value::Null)
            } else {
                s(arg_str(a, 0)?)
            }
        }
        "tonumber" => {
            arity(a, 1)?;
            if a[0].is_null() {
                Ok(Value::Null)
            } else {
                Ok(num(arg_num(a, 0)?))
            }
        }
        "tobool" => {
            arity(a, 1)?;
            as_bool(&a[0])
                .map(Value::Bool)
                .ok_or_else(|| format!("cannot convert {} to bool", show(&a[0])))
        }
        "tolist" => {
            arity(a, 1)?;
            Ok(Value::Array(arg_list(a, 0)?))
        }
        "toset" | "distinct" => {
            arity(a, 1)?;
            let mut out: Vec<Value> = Vec::new();
            for v in arg_list(a, 0)? {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            Ok(Value::Array(out))
        }
        "tomap" => {
            arity(a, 1)?;
            Ok(Value::Object(arg_map(a, 0)?))
        }
        "flatten" => {
            arity(a, 1)?;
            fn flat(v: Vec<Value>, out: &mut Vec<Value>) {
                for x in v {
                    match x {
                        Value::Array(inner) => flat(inner, out),
                        other => out.push(other),
                    }
                }
            }
            let mut out = Vec::new();
            flat(arg_list(a, 0)?, &mut out);
            Ok(Value::Array(out))
        }
        "reverse" => {
            arity(a, 1)?;
            let mut l = arg_list(a, 0)?;
            l.reverse();
            Ok(Value::Array(l))
        }
        "sort" => {
            arity(a, 1)?;
            let mut l: Vec<String> = arg_list(a, 0)?
                .iter()
                .map(|v| to_string_value(v).unwrap_or_default())
                .collect();
            l.sort();
            Ok(Value::Array(l.into_iter().map(Value::String).collect()))
        }
        "compact" => {
            arity(a, 1)?;
            Ok(Value::Array(
                arg_list(a, 0)?
                    .into_iter()
                    .filter(|v| !v.is_null() && v.as_str() != Some(""))
                    .collect(),
            ))
        }
        "slice" => {
            arity(a, 3)?;
            let l = arg_list(a, 0)?;
            let (from, to) = (arg_num(a, 1)? as usize, arg_num(a, 2)? as usize);
            if from > to || to > l.len() {
                return Err(format!(
                    "indexes {from}..{to} out of range for a list of {}",
                    l.len()
                ));
            }
            Ok(Value::Array(l[from..to].to_vec()))
        }
        "range" => {
            let (start, end, step) = match a.len() {
                1 => (0.0, arg_num(a, 0)?, 1.0),
                2 => (arg_num(a, 0)?, arg_num(a, 1)?, 1.0),
                3 => (arg_num(a, 0)?, arg_num(a, 1)?, arg_num(a, 2)?),
                n => return Err(format!("expected 1 to 3 arguments, found {n}")),
            };
            if step == 0.0 {
                return Err("step must not be 0".into());
            }
            let mut out = Vec::new();
            let mut x = start;
            while (step > 0.0 && x < end) || (step < 0.0 && x > end) {
                if out.len() >= 1024 {
                    return Err("range too long (more than 1024 items)".into());
                }
                out.push(num(x));
                x += step;
            }
            Ok(Value::Array(out))
        }
        "zipmap" => {
            arity(a, 2)?;
            let k = arg_list(a, 0)?;
            let v = arg_list(a, 1)?;
            if k.len() != v.len() {
                return Err("keys and values must have the same length".into());
            }
            Ok(Value::Object(
                k.iter()
                    .map(|k| to_string_value(k).unwrap_or_default())
                    .zip(v)
                    .collect(),
            ))
        }
        other => {
            if let Some(r) = super::functions::call_more(other, a, options) {
                return r;
            }
            let known = FUNCTIONS
                .iter()
                .chain(super::functions::MORE_FUNCTIONS)
                .copied();
            let hint = crate::diag::did_you_mean(other, known)
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            Err(format!("unknown function{hint}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_src(src: &str) -> Result<Value, String> {
        let options = ParseOptions::default();
        let expr = hcl_edit::parser::parse_expr(src).map_err(|e| e.to_string())?;
        let mut vars = Map::new();
        vars.insert("n".into(), Value::from(3));
        vars.insert("list".into(), serde_json::json!(["b", "a", "b"]));
        let mut scope = Scope {
            source: src,
            vars,
            locals: Map::new(),
            iter: Vec::new(),
            options: &options,
            locals_pending: false,
            failed_vars: Vec::new(),
            steps: 0,
        };
        scope.eval_keep(&expr).map_err(|(_, m)| m)
    }

    #[test]
    fn functions_and_operators_give_hcl_results() {
        let cases: &[(&str, Value)] = &[
            (r#"upper("a")"#, "A".into()),
            (
                r#"format("%-4s|%05.1f|%q", "x", 3.14159, "y")"#,
                "x   |003.1|\"y\"".into(),
            ),
            (r#"join("-", distinct(var.list))"#, "b-a".into()),
            (r#"split(",", "a,b")"#, serde_json::json!(["a", "b"])),
            (r#"length(var.list) * var.n"#, 9.into()),
            (r#"var.n > 2 ? "big" : "small""#, "big".into()),
            (
                r#"[for i, v in var.list : "${i}${v}" if v == "b"]"#,
                serde_json::json!(["0b", "2b"]),
            ),
            (
                r#"{for v in var.list : v => v...}"#,
                serde_json::json!({"b": ["b", "b"], "a": ["a"]}),
            ),
            (r#"lookup({a = 1}, "z", "d")"#, "d".into()),
            (
                r#"merge({a = 1}, {b = 2})"#,
                serde_json::json!({"a": 1, "b": 2}),
            ),
            (r#"base64decode(base64encode("hé"))"#, "hé".into()),
            (r#"jsondecode("[1, true]")[1]"#, true.into()),
            (r#"flatten([[1], [2, [3]]])"#, serde_json::json!([1, 2, 3])),
            (r#"range(3)"#, serde_json::json!([0, 1, 2])),
            (r#"substr("hello", 1, 3)"#, "ell".into()),
            (r#"max(1, 5, 3) - min(4, 2)"#, 3.into()),
            (r#"7 % 4 + 10 / 4"#, serde_json::json!(5.5)),
            (r#"!true || false"#, false.into()),
            (
                r#""${attr.kernel.name}-${var.n}""#,
                "${attr.kernel.name}-3".into(),
            ),
            (r#"node.unique.name"#, "${node.unique.name}".into()),
            (r#"NOMAD_TASK_DIR"#, "${NOMAD_TASK_DIR}".into()),
            (r#"zipmap(["a"], [1])"#, serde_json::json!({"a": 1})),
            (r#"coalesce("", "x")"#, "x".into()),
            (r#"tonumber("2") + 1"#, 3.into()),
        ];
        for (src, expected) in cases {
            assert_eq!(eval_src(src).as_ref(), Ok(expected), "{src}");
        }
    }

    #[test]
    fn try_and_can_evaluate_their_arguments_lazily() {
        let cases: &[(&str, Result<Value, &str>)] = &[
            (r#"try(var.n, 0)"#, Ok(3.into())),
            (r#"try(var.missing, "d")"#, Ok("d".into())),
            (r#"try(var.list[5], var.list[1])"#, Ok("a".into())),
            (r#"try(jsondecode("{bad"), tonumber("x"), {})"#, Ok(serde_json::json!({}))),
            // Later arguments are not evaluated once one succeeds.
            (r#"try(var.n, 1 / 0)"#, Ok(3.into())),
            (r#"try(docker, "x")"#, Ok("x".into())),
            (r#"try(node.unique.name, "x")"#, Ok("${node.unique.name}".into())),
            (r#""${try(var.missing, "a")}-${can(var.missing)}""#, Ok("a-false".into())),
            (r#"can(var.list[0])"#, Ok(true.into())),
            (r#"can(var.list[5])"#, Ok(false.into())),
            (r#"can(1 / 0)"#, Ok(false.into())),
            (r#"can(var.missing)"#, Ok(false.into())),
            (r#"can(attr.kernel.name)"#, Ok(true.into())),
            (r#"can(docker)"#, Ok(false.into())),
            (r#"can(var.n) ? "y" : "n""#, Ok("y".into())),
            ("try()", Err("try(): expected at least one argument")),
            ("can(1, 2)", Err("can(): expected 1 argument, found 2")),
            (
                r#"try(1 / 0, var.missing)"#,
                Err("try(): no argument could be evaluated; the last failed with: undeclared variable \"missing\": add a `variable \"missing\" {}` block"),
            ),
            (
                "try(length([for a in range(1000) : [for b in range(1000) : [for c in range(1000) : c]]]), 0)",
                Err("evaluation too expensive: more than 1000000 steps"),
            ),
        ];
        for (src, expected) in cases {
            let expected = expected.clone().map_err(str::to_string);
            assert_eq!(eval_src(src), expected, "{src}");
        }
    }

    #[test]
    fn bad_calls_are_errors_that_say_what_was_expected() {
        let cases = [
            (r#"uper("a")"#, "uper(): unknown function (did you mean \"upper\"?)"),
            (r#"join(",", "x")"#, "join(): argument 2 must be a list, found string"),
            ("1 / 0", "division by zero"),
            (r#"var.missing"#, "undeclared variable \"missing\": add a `variable \"missing\" {}` block"),
            (r#"element([], 1)"#, "element(): cannot use element() on an empty list"),
            (r#"range(0, 10, 0)"#, "range(): step must not be 0"),
            (r#"1 + "x""#, "expected numbers, found number and string"),
            (r#"format("50%")"#, "format(): format \"50%\" ends with an incomplete verb"),
            (r#"format("%d")"#, "format(): not enough arguments for format \"%d\""),
            (
                "length([for a in range(1000) : [for b in range(1000) : [for c in range(1000) : c]]])",
                "evaluation too expensive: more than 1000000 steps",
            ),
            ("docker", "unknown variable \"docker\": write a string in quotes (\"docker\"), or refer to var.<name> or local.<name>"),
            ("[upper(foo.bar)]", "unknown variable \"foo\": write a string in quotes (\"foo\"), or refer to var.<name> or local.<name>"),
        ];
        for (src, expected) in cases {
            assert_eq!(eval_src(src), Err(expected.to_string()), "{src}");
        }
    }
}
