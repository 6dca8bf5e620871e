//! Evaluation of HCL expressions to JSON values: literals, templates, operators, conditionals,
//! `for` expressions, `var.*` / `local.*` references and the common HCL functions.
//!
//! This is a small evaluator over `hcl-edit`'s syntax tree rather than hcl-rs's `eval::Context`,
//! because Nomad files mix two kinds of references: `var.x` / `local.x`, which are resolved
//! here, and run-time ones (`${attr.x}`, `${node.x}`, `${meta.x}`, `${NOMAD_*}`, `${env[...]}`)
//! that must reach the agent as literal text. Walking the tree ourselves keeps the exact source
//! text of those interpolations, and every error keeps its byte span for `file:line:col`.

use std::ops::Range;

use hcl_edit::expr::{
    Array, Conditional, Expression, ForExpr, FuncCall, Object, ObjectKey, Traversal,
    TraversalOperator, UnaryOp, UnaryOperator,
};
use hcl_edit::template::{Directive, Element, Template};
use hcl_edit::{Decorated, Ident, Number, Span};
use serde_json::{Map, Value};

use super::budget::{call_estimate, over_budget_message, value_bytes, MAX_VALUE_BYTES, SLOT};
use super::functions::call;
use super::value::*;
use crate::frontend::ParseOptions;

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
    /// Bytes of values built so far; bounded by [`MAX_VALUE_BYTES`] (see `budget`).
    pub bytes: u64,
}

/// The evaluation budget of one file.
pub(crate) const MAX_STEPS: u64 = 1_000_000;

impl<'a> Scope<'a> {
    /// A scope over `source` with no variables, locals or iteration yet.
    pub fn new(source: &'a str, options: &'a ParseOptions) -> Self {
        Scope {
            source,
            vars: Map::new(),
            locals: Map::new(),
            iter: Vec::new(),
            options,
            locals_pending: false,
            failed_vars: Vec::new(),
            steps: 0,
            bytes: 0,
        }
    }
}

impl Scope<'_> {
    /// Counts `bytes` of newly built values against the file's byte budget; past it, this
    /// and every later evaluation fail with the budget error at `span`.
    pub fn charge(&mut self, bytes: u64, span: Option<Range<usize>>) -> Result<(), EvalErr> {
        self.bytes = self.bytes.saturating_add(bytes);
        self.check_budget(0, span)
    }

    /// Fails when `more` bytes would not fit in what is left of the budget; the budget then
    /// counts as spent, so `try` cannot hide it and later evaluations fail at once.
    fn check_budget(&mut self, more: u64, span: Option<Range<usize>>) -> Result<(), EvalErr> {
        if self.bytes.saturating_add(more) > MAX_VALUE_BYTES {
            self.bytes = self.bytes.max(MAX_VALUE_BYTES + 1);
            return Err(err(span, over_budget_message()));
        }
        Ok(())
    }

    /// Whether the step or byte budget is spent (`try` and `can` must not hide that).
    fn exhausted(&self) -> bool {
        self.steps > MAX_STEPS || self.bytes > MAX_VALUE_BYTES
    }

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
        self.check_budget(0, e.span())?;
        match e {
            Expression::Null(_) | Expression::Bool(_) | Expression::Number(_) => {
                self.charge(SLOT, e.span())?;
                Ok(match e {
                    Expression::Bool(b) => Value::Bool(*b.value()),
                    Expression::Number(n) => number(n.value()),
                    _ => Value::Null,
                })
            }
            Expression::String(s) => {
                self.charge(SLOT + s.value().len() as u64, e.span())?;
                Ok(Value::String(s.value().to_string()))
            }
            Expression::Array(a) => self.array(a),
            Expression::Object(o) => self.object(o),
            Expression::StringTemplate(t) => self.template(t),
            Expression::HeredocTemplate(h) => self.template(&h.template),
            Expression::Parenthesis(p) => self.eval(p.inner()),
            Expression::Variable(v) => {
                let value = self.variable(v.value().as_str())?;
                self.charge(value_bytes(&value), e.span())?;
                Ok(value)
            }
            Expression::Conditional(c) => self.conditional(c),
            Expression::FuncCall(f) => self.func_call(f, e.span()),
            Expression::Traversal(t) => self.traversal(t, e.span()),
            Expression::UnaryOp(u) => self.unary(u),
            Expression::BinaryOp(b) => {
                let l = self.eval(&b.lhs_expr)?;
                let r = self.eval(&b.rhs_expr)?;
                self.charge(SLOT, e.span())?;
                binary(*b.operator.value(), &l, &r).map_err(|m| err(e.span(), m))
            }
            Expression::ForExpr(f) => self.for_expr(f),
        }
    }

    fn array(&mut self, a: &Array) -> R {
        self.charge(SLOT, a.span())?;
        let mut out = Vec::new();
        for item in a.iter() {
            out.push(self.eval(item)?);
        }
        Ok(Value::Array(out))
    }

    fn object(&mut self, o: &Object) -> R {
        self.charge(SLOT, o.span())?;
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
            self.charge(key.len() as u64 + SLOT, o.span())?;
            out.insert(key, val);
        }
        Ok(Value::Object(out))
    }

    fn conditional(&mut self, c: &Conditional) -> R {
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

    fn func_call(&mut self, f: &FuncCall, span: Option<Range<usize>>) -> R {
        let name = f.name.name.value().as_str().to_string();
        if name == "try" || name == "can" {
            return self.try_can(&name, f, span);
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
        self.check_budget(call_estimate(&name, &args), span.clone())?;
        let result = call(&name, args, self.options)
            .map_err(|m| err(span.clone(), format!("{name}(): {m}")))?;
        self.charge(value_bytes(&result), span)?;
        Ok(result)
    }

    /// `a.b[0]`: the root is evaluated first (`var.x` / `local.x`), so an unknown name is
    /// reported as such, then each attribute or index in turn.
    fn traversal(&mut self, t: &Traversal, span: Option<Range<usize>>) -> R {
        let root = match &t.expr {
            Expression::Variable(v) => v.value().as_str().to_string(),
            _ => String::new(),
        };
        let (mut cur, skip) = match self.named_value(t, &root) {
            Some(found) => (
                found.ok_or_else(|| self.missing_attr_first(t, &root, span.clone()))?,
                1,
            ),
            None => (self.eval(&t.expr)?, 0),
        };
        if skip == 1 {
            self.charge(value_bytes(&cur), span.clone())?;
        }
        for (i, op) in t.operators.iter().enumerate().skip(skip) {
            cur = match op.value() {
                TraversalOperator::GetAttr(id) => {
                    let name = id.value().as_str();
                    get_attr(&cur, name)
                        .ok_or_else(|| self.missing_attr(t, &root, i == 0, name, span.clone()))?
                }
                TraversalOperator::Index(ix) => {
                    let k = self.eval(ix)?;
                    index_value(&cur, &k)
                        .ok_or_else(|| err(ix.span(), format!("index {} not found", show(&k))))?
                }
                TraversalOperator::LegacyIndex(i) => index_value(&cur, &Value::from(*i.value()))
                    .ok_or_else(|| err(span.clone(), format!("index {} not found", i.value())))?,
                TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_) => continue,
            };
            self.charge(value_bytes(&cur), span.clone())?;
        }
        Ok(cur)
    }

    /// `var.x` / `local.x` looked up directly, without copying every variable or local first:
    /// `None` when the traversal does not start that way (or an iteration variable shadows
    /// the root), `Some(None)` when `x` is not there. The copy is charged to the budget.
    fn named_value(&mut self, t: &Traversal, root: &str) -> Option<Option<Value>> {
        let Some(TraversalOperator::GetAttr(id)) = t.operators.first().map(|op| op.value()) else {
            return None;
        };
        if self.iter.iter().any(|frame| frame.contains_key(root)) {
            return None;
        }
        let map = match root {
            "var" => &self.vars,
            "local" => &self.locals,
            _ => return None,
        };
        Some(map.get(id.value().as_str()).cloned())
    }

    /// The error for `var.x` / `local.x` whose `x` is missing.
    fn missing_attr_first(&self, t: &Traversal, root: &str, span: Option<Range<usize>>) -> EvalErr {
        let name = match t.operators.first().map(|op| op.value()) {
            Some(TraversalOperator::GetAttr(id)) => id.value().as_str().to_string(),
            _ => String::new(),
        };
        self.missing_attr(t, root, true, &name, span)
    }

    /// Why attribute `name` is missing from a traversal's value; right after the root, `var`
    /// and `local` say which variable or local value is unknown.
    fn missing_attr(
        &self,
        t: &Traversal,
        root: &str,
        after_root: bool,
        name: &str,
        span: Option<Range<usize>>,
    ) -> EvalErr {
        match (after_root, root) {
            (true, "local") if self.locals_pending => EvalErr::Pending,
            (true, "local") => err(span, format!("unknown local value \"{name}\"")),
            // Already reported where the variable is declared.
            (true, "var") if self.failed_vars.iter().any(|f| f == name) => err(span, ""),
            (true, "var") => err(
                span,
                format!("undeclared variable \"{name}\": add a `variable \"{name}\" {{}}` block"),
            ),
            _ => err(
                span,
                format!("{} has no attribute \"{name}\"", self.text(t.expr.span())),
            ),
        }
    }

    fn unary(&mut self, u: &UnaryOp) -> R {
        let v = self.eval(&u.expr)?;
        let expected = |what: &str| {
            err(
                u.expr.span(),
                format!("expected {what}, found {}", type_name(&v)),
            )
        };
        match u.operator.value() {
            UnaryOperator::Neg => Ok(num(-as_num(&v).ok_or_else(|| expected("a number"))?)),
            UnaryOperator::Not => Ok(Value::Bool(!as_bool(&v).ok_or_else(|| expected("a bool"))?)),
        }
    }

    /// `[for k, v in coll : x if cond]` and `{for k, v in coll : key => x...}`.
    fn for_expr(&mut self, f: &ForExpr) -> R {
        let coll = self.eval(&f.intro.collection_expr)?;
        let items = iteration_items(coll).map_err(|other| {
            err(
                f.intro.collection_expr.span(),
                format!("cannot iterate over {}", type_name(&other)),
            )
        })?;
        let mut list = Vec::new();
        let mut obj = Map::new();
        for (k, v) in items {
            self.iter.push(iteration_frame(
                f.intro.key_var.as_ref(),
                &f.intro.value_var,
                k,
                v,
            ));
            let res = self.for_item(f, &mut list, &mut obj);
            self.iter.pop();
            res?;
        }
        Ok(if f.key_expr.is_some() {
            Value::Object(obj)
        } else {
            Value::Array(list)
        })
    }

    /// One item of a `for` expression (its iteration frame pushed): skipped unless the `if`
    /// condition holds, then added to the list, or to the object under its key (grouped into
    /// lists with `...`).
    fn for_item(
        &mut self,
        f: &ForExpr,
        list: &mut Vec<Value>,
        obj: &mut Map<String, Value>,
    ) -> Result<(), EvalErr> {
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
                self.charge(key.len() as u64 + SLOT, ke.span())?;
                if f.grouping {
                    let entry = obj.entry(key).or_insert_with(|| Value::Array(Vec::new()));
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
    }

    /// `try(a, b, ...)` and `can(x)`: their arguments are evaluated lazily, one at a time, and
    /// an evaluation error is a result rather than a failure. A run-time reference (kept as
    /// text for the agent), a local not resolved yet, or an exhausted evaluation budget is
    /// not something `try` may hide, so those pass through.
    fn try_can(&mut self, name: &str, f: &FuncCall, span: Option<Range<usize>>) -> R {
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
                Err(e @ EvalErr::Err(_, _)) if self.exhausted() => return Err(e),
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
        self.charge(SLOT, t.span())?;
        let mut out = String::new();
        self.render(t, &mut out)?;
        Ok(Value::String(out))
    }

    fn render(&mut self, t: &Template, out: &mut String) -> Result<(), EvalErr> {
        for el in t.iter() {
            let before = out.len();
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
                // Charges what it renders itself.
                Element::Directive(d) => {
                    self.render_directive(d, out)?;
                    continue;
                }
            }
            self.charge((out.len() - before) as u64, t.span())?;
        }
        Ok(())
    }

    /// `%{ if }` and `%{ for }` inside a template.
    fn render_directive(&mut self, d: &Directive, out: &mut String) -> Result<(), EvalErr> {
        match d {
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
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                let items = iteration_items(coll).map_err(|other| {
                    err(
                        fe.collection_expr.span(),
                        format!("cannot iterate over {}", type_name(&other)),
                    )
                })?;
                for (k, v) in items {
                    self.iter
                        .push(iteration_frame(fe.key_var.as_ref(), &fe.value_var, k, v));
                    let r = self.render(&fe.template, out);
                    self.iter.pop();
                    r?;
                }
            }
        }
        Ok(())
    }
}

/// An HCL number as JSON: an integer when it is one, else a float.
fn number(n: &Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::from(i)
    } else if let Some(u) = n.as_u64() {
        Value::from(u)
    } else {
        num(n.as_f64().unwrap_or(0.0))
    }
}

/// The variables one iteration of a `for` sees: `key_var` (when named) and `value_var`.
fn iteration_frame(
    key_var: Option<&Decorated<Ident>>,
    value_var: &Decorated<Ident>,
    key: Value,
    value: Value,
) -> Map<String, Value> {
    let mut frame = Map::new();
    if let Some(kv) = key_var {
        frame.insert(kv.value().as_str().to_string(), key);
    }
    frame.insert(value_var.value().as_str().to_string(), value);
    frame
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

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET_ERROR: &str = "values grow past the 16 MiB evaluation budget (strings, lists and maps built by this file's expressions)";

    fn eval_src(src: &str) -> Result<Value, String> {
        let options = ParseOptions::default();
        let expr = hcl_edit::parser::parse_expr(src).map_err(|e| e.to_string())?;
        let mut vars = Map::new();
        vars.insert("n".into(), Value::from(3));
        vars.insert("list".into(), serde_json::json!(["b", "a", "b"]));
        let mut scope = Scope {
            vars,
            ..Scope::new(src, &options)
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
                // The byte budget trips before the step budget; `try` hides neither.
                "try(length([for a in range(1000) : [for b in range(1000) : [for c in range(1000) : c]]]), 0)",
                Err(BUDGET_ERROR),
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
                BUDGET_ERROR,
            ),
            ("docker", "unknown variable \"docker\": write a string in quotes (\"docker\"), or refer to var.<name> or local.<name>"),
            ("[upper(foo.bar)]", "unknown variable \"foo\": write a string in quotes (\"foo\"), or refer to var.<name> or local.<name>"),
        ];
        for (src, expected) in cases {
            assert_eq!(eval_src(src), Err(expected.to_string()), "{src}");
        }
    }
}
