//! Evaluator: walks the parsed tree against data, writing the output and
//! enforcing the render budgets (output size, iterations, steps, call depth).

use crate::error::{Positions, TemplateError};
use crate::funcs::{self, CallContext};
use crate::parse::{Branch, Command, Node, Operand, Pipe, Term, Tree};
use crate::value::Value;
use crate::{
    Sources, MAX_OUTPUT_BYTES, MAX_RANGE_ITERATIONS, MAX_RENDER_DEPTH, MAX_STEPS,
    MAX_TEMPLATE_CALL_DEPTH,
};

/// What a walked list asks of the enclosing `range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) struct Exec<'a> {
    pub(crate) tree: &'a Tree,
    pub(crate) positions: &'a Positions,
    pub(crate) sources: &'a dyn Sources,
    pub(crate) missing_key_error: bool,
    pub(crate) ctx: CallContext,
    pub(crate) out: String,
    vars: Vec<(String, Value)>,
    iterations: usize,
    steps: usize,
    /// Template calls in progress.
    depth: usize,
    /// Blocks, template calls and parentheses in progress.
    nesting: usize,
}

type Result<T> = std::result::Result<T, TemplateError>;

impl<'a> Exec<'a> {
    pub(crate) fn new(
        tree: &'a Tree,
        positions: &'a Positions,
        sources: &'a dyn Sources,
        missing_key_error: bool,
        now: jiff::Timestamp,
    ) -> Self {
        Exec {
            tree,
            positions,
            sources,
            missing_key_error,
            ctx: CallContext {
                now,
                max_bytes: MAX_OUTPUT_BYTES,
            },
            out: String::new(),
            vars: Vec::new(),
            iterations: 0,
            steps: 0,
            depth: 0,
            nesting: 0,
        }
    }

    /// Renders the main body with `data` as both `.` and `$`.
    pub(crate) fn run(mut self, data: &Value) -> Result<String> {
        self.vars.push(("$".to_string(), data.clone()));
        self.walk(&self.tree.root, data)?;
        Ok(self.out)
    }

    fn fail(&self, pos: usize, message: impl Into<String>) -> TemplateError {
        let (line, col) = self.positions.line_col(pos);
        TemplateError::Render {
            name: self.positions.name().to_string(),
            line,
            col,
            message: message.into(),
        }
    }

    fn limit(&self, pos: usize, what: &'static str, limit: usize) -> TemplateError {
        let (line, col) = self.positions.line_col(pos);
        TemplateError::Limit {
            name: self.positions.name().to_string(),
            line,
            col,
            what,
            limit,
        }
    }

    fn step(&mut self, pos: usize) -> Result<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.limit(pos, "number of evaluation steps", MAX_STEPS));
        }
        Ok(())
    }

    /// Runs `f` one nesting level deeper, failing cleanly past [`MAX_RENDER_DEPTH`].
    fn nested<T>(&mut self, pos: usize, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.nesting >= MAX_RENDER_DEPTH {
            return Err(self.limit(
                pos,
                "depth of nested blocks, template calls and parentheses",
                MAX_RENDER_DEPTH,
            ));
        }
        self.nesting += 1;
        let result = f(self);
        self.nesting -= 1;
        result
    }

    fn emit(&mut self, text: &str, pos: usize) -> Result<()> {
        if self.out.len().saturating_add(text.len()) > MAX_OUTPUT_BYTES {
            return Err(self.limit(pos, "output size in bytes", MAX_OUTPUT_BYTES));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow> {
        for node in nodes {
            let flow = self.walk_node(node, dot)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_node(&mut self, node: &Node, dot: &Value) -> Result<Flow> {
        match node {
            Node::Text { pos, text } => {
                self.emit(text, *pos)?;
                Ok(Flow::Normal)
            }
            Node::Action(pipe) => {
                self.step(pipe.pos)?;
                let value = self.eval_pipe(pipe, dot)?;
                if pipe.vars.is_empty() {
                    let text = match value {
                        Value::Null => "<no value>".to_string(),
                        other => other.to_go_string(),
                    };
                    self.emit(&text, pipe.pos)?;
                }
                Ok(Flow::Normal)
            }
            Node::If(branch) => self.nested(branch.pipe.pos, |exec| {
                exec.walk_if_with(branch, dot, false)
            }),
            Node::With(branch) => {
                self.nested(branch.pipe.pos, |exec| exec.walk_if_with(branch, dot, true))
            }
            Node::Range(branch) => {
                self.nested(branch.pipe.pos, |exec| exec.walk_range(branch, dot))
            }
            Node::Template { pos, name, pipe } => {
                self.nested(*pos, |exec| {
                    exec.walk_template(*pos, name, pipe.as_ref(), dot)
                })?;
                Ok(Flow::Normal)
            }
            Node::Break => Ok(Flow::Break),
            Node::Continue => Ok(Flow::Continue),
        }
    }

    fn walk_if_with(&mut self, branch: &Branch, dot: &Value, sets_dot: bool) -> Result<Flow> {
        self.step(branch.pipe.pos)?;
        let mark = self.vars.len();
        let value = self.eval_pipe(&branch.pipe, dot)?;
        let flow = if value.is_truthy() {
            let body_dot = if sets_dot { &value } else { dot };
            self.walk(&branch.body, body_dot)
        } else if let Some(otherwise) = &branch.otherwise {
            self.walk(otherwise, dot)
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        flow
    }

    fn walk_range(&mut self, branch: &Branch, dot: &Value) -> Result<Flow> {
        let pipe = &branch.pipe;
        self.step(pipe.pos)?;
        let mark = self.vars.len();
        let value = self.eval_commands(pipe, dot)?;
        let items: Vec<(Value, Value)> = match &value {
            Value::List(list) => list
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                .collect(),
            Value::Map(map) => Value::sorted_entries(map)
                .into_iter()
                .map(|(k, v)| (Value::String(k.clone()), v.clone()))
                .collect(),
            Value::Int(n) => {
                if *n > MAX_RANGE_ITERATIONS as i64 {
                    return Err(self.limit(
                        pipe.pos,
                        "number of range iterations",
                        MAX_RANGE_ITERATIONS,
                    ));
                }
                (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect()
            }
            Value::Null => Vec::new(),
            other => {
                return Err(self.fail(
                    pipe.pos,
                    format!("range can't iterate over {}", other.to_go_string()),
                ))
            }
        };
        let decl_mark = self.vars.len();
        if !pipe.is_assign {
            for name in &pipe.vars {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        let mut result = Ok(Flow::Normal);
        for (index, elem) in &items {
            self.iterations += 1;
            if self.iterations > MAX_RANGE_ITERATIONS {
                result =
                    Err(self.limit(pipe.pos, "number of range iterations", MAX_RANGE_ITERATIONS));
                break;
            }
            self.set_range_vars(pipe, decl_mark, index, elem);
            let inner = self.vars.len();
            let flow = self.walk(&branch.body, elem);
            self.vars.truncate(inner);
            match flow {
                Ok(Flow::Break) => break,
                Ok(_) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if items.is_empty() {
            if let Some(otherwise) = &branch.otherwise {
                result = self.walk(otherwise, dot);
            }
        }
        self.vars.truncate(mark);
        result.map(|_| Flow::Normal)
    }

    /// One var gets the element; two get index (or key) and element.
    fn set_range_vars(&mut self, pipe: &Pipe, mark: usize, index: &Value, elem: &Value) {
        let values: Vec<&Value> = match pipe.vars.len() {
            0 => return,
            1 => vec![elem],
            _ => vec![index, elem],
        };
        for (i, (name, value)) in pipe.vars.iter().zip(values).enumerate() {
            if pipe.is_assign {
                self.assign(name, value.clone());
            } else if let Some(slot) = self.vars.get_mut(mark + i) {
                slot.1 = value.clone();
            }
        }
    }

    fn walk_template(
        &mut self,
        pos: usize,
        name: &str,
        pipe: Option<&Pipe>,
        dot: &Value,
    ) -> Result<()> {
        self.step(pos)?;
        let Some(body) = self.tree.defines.get(name) else {
            return Err(self.fail(pos, format!("no such template {name:?}")));
        };
        if self.depth >= MAX_TEMPLATE_CALL_DEPTH {
            return Err(self.limit(
                pos,
                "depth of nested template calls",
                MAX_TEMPLATE_CALL_DEPTH,
            ));
        }
        let new_dot = match pipe {
            Some(pipe) => self.eval_pipe(pipe, dot)?,
            None => Value::Null,
        };
        let outer_vars =
            std::mem::replace(&mut self.vars, vec![("$".to_string(), new_dot.clone())]);
        self.depth += 1;
        let result = self.walk(body, &new_dot);
        self.depth -= 1;
        self.vars = outer_vars;
        result.map(|_| ())
    }

    fn assign(&mut self, name: &str, value: Value) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = value;
        }
    }

    fn lookup(&self, name: &str, pos: usize) -> Result<Value> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.fail(pos, format!("undefined variable: {name}")))
    }

    /// Evaluates a pipeline and declares or assigns its variables.
    fn eval_pipe(&mut self, pipe: &Pipe, dot: &Value) -> Result<Value> {
        let value = self.eval_commands(pipe, dot)?;
        for name in &pipe.vars {
            if pipe.is_assign {
                self.assign(name, value.clone());
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn eval_commands(&mut self, pipe: &Pipe, dot: &Value) -> Result<Value> {
        let mut value = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(cmd, dot, value)?);
        }
        Ok(value.unwrap_or(Value::Null))
    }

    fn eval_command(&mut self, cmd: &Command, dot: &Value, piped: Option<Value>) -> Result<Value> {
        self.step(cmd.pos)?;
        let Some(first) = cmd.args.first() else {
            return Err(self.fail(cmd.pos, "empty command"));
        };
        if let Term::Func { name, external } = &first.term {
            return self.call(first.pos, name, *external, &cmd.args[1..], piped, dot);
        }
        if cmd.args.len() > 1 || piped.is_some() {
            return Err(self.fail(
                first.pos,
                format!(
                    "can't give argument to non-function {}",
                    describe(&first.term)
                ),
            ));
        }
        if matches!(first.term, Term::Nil) {
            return Err(self.fail(first.pos, "nil is not a command"));
        }
        self.eval_operand(first, dot)
    }

    fn eval_operand(&mut self, op: &Operand, dot: &Value) -> Result<Value> {
        match &op.term {
            Term::Func { name, external } => self.call(op.pos, name, *external, &[], None, dot),
            Term::Dot => Ok(dot.clone()),
            Term::Field(fields) => self.fields(dot.clone(), fields, op.pos),
            Term::Var { name, fields } => {
                let value = self.lookup(name, op.pos)?;
                self.fields(value, fields, op.pos)
            }
            Term::Nil => Ok(Value::Null),
            Term::Bool(b) => Ok(Value::Bool(*b)),
            Term::Int(i) => Ok(Value::Int(*i)),
            Term::Float(f) => Ok(Value::Float(*f)),
            Term::Str(s) => Ok(Value::String(s.clone())),
            Term::Paren { pipe, fields } => {
                let value = self.nested(op.pos, |exec| exec.eval_pipe(pipe, dot))?;
                self.fields(value, fields, op.pos)
            }
        }
    }

    /// `.a.b` on a value: map lookups; a missing key (or a field of nil) is nil
    /// unless `missing_key_error` is set.
    fn fields(&self, mut value: Value, fields: &[String], pos: usize) -> Result<Value> {
        for field in fields {
            value = match &value {
                Value::Map(map) => match map.get(field) {
                    Some(v) => v.clone(),
                    None if self.missing_key_error => {
                        return Err(self.fail(pos, format!("map has no entry for key {field:?}")))
                    }
                    None => Value::Null,
                },
                Value::Null if self.missing_key_error => {
                    return Err(self.fail(pos, format!("nil data; no entry for key {field:?}")))
                }
                Value::Null => Value::Null,
                other => {
                    return Err(self.fail(
                        pos,
                        format!("can't evaluate field {field} in type {}", other.type_name()),
                    ))
                }
            };
        }
        Ok(value)
    }

    fn call(
        &mut self,
        pos: usize,
        name: &str,
        external: bool,
        arg_ops: &[Operand],
        piped: Option<Value>,
        dot: &Value,
    ) -> Result<Value> {
        if !external && (name == "and" || name == "or") {
            return self.and_or(pos, name == "and", arg_ops, piped, dot);
        }
        let mut args = Vec::with_capacity(arg_ops.len() + 1);
        for op in arg_ops {
            args.push(self.eval_operand(op, dot)?);
        }
        args.extend(piped);
        let result = if external {
            self.sources.call(name, &args).map_err(|message| {
                let (line, col) = self.positions.line_col(pos);
                TemplateError::Source {
                    name: self.positions.name().to_string(),
                    line,
                    col,
                    function: name.to_string(),
                    message,
                }
            })?
        } else {
            funcs::call(&self.ctx, name, &args).map_err(|m| self.fail(pos, m))?
        };
        if let Value::String(s) = &result {
            if s.len() > MAX_OUTPUT_BYTES {
                return Err(self.limit(pos, "size of a value in bytes", MAX_OUTPUT_BYTES));
            }
        }
        Ok(result)
    }

    /// `and` returns the first false argument or the last; `or` the first true
    /// one or the last. Arguments after the deciding one are not evaluated.
    fn and_or(
        &mut self,
        pos: usize,
        is_and: bool,
        arg_ops: &[Operand],
        piped: Option<Value>,
        dot: &Value,
    ) -> Result<Value> {
        let name = if is_and { "and" } else { "or" };
        let count = arg_ops.len() + usize::from(piped.is_some());
        if count == 0 {
            return Err(self.fail(
                pos,
                format!("wrong number of args for {name}: want at least 1 got 0"),
            ));
        }
        let mut last = Value::Null;
        for op in arg_ops {
            last = self.eval_operand(op, dot)?;
            if last.is_truthy() != is_and {
                return Ok(last);
            }
        }
        Ok(piped.unwrap_or(last))
    }
}

fn describe(term: &Term) -> String {
    match term {
        Term::Dot => ".".to_string(),
        Term::Field(fields) => format!(".{}", fields.join(".")),
        Term::Var { name, fields } if fields.is_empty() => name.clone(),
        Term::Var { name, fields } => format!("{name}.{}", fields.join(".")),
        Term::Nil => "nil".to_string(),
        Term::Bool(b) => b.to_string(),
        Term::Int(i) => i.to_string(),
        Term::Float(f) => f.to_string(),
        Term::Str(s) => format!("{s:?}"),
        Term::Paren { .. } => "(pipeline)".to_string(),
        Term::Func { name, .. } => name.clone(),
    }
}
