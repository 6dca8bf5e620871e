//! Parser: turns tokens into the tree of nodes the evaluator walks, checking
//! function names, variables, `break`/`continue` placement and nesting depth.

use std::collections::{BTreeSet, HashMap};

use crate::error::{Positions, TemplateError};
use crate::funcs;
use crate::lex::{Keyword, Tok, Token};
use crate::MAX_NESTING_DEPTH;

/// A node of a template body.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Literal text and where it starts.
    Text {
        pos: usize,
        text: String,
    },
    /// `{{ pipeline }}`: prints the value unless the pipeline declares variables.
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    /// `{{ template "name" pipeline }}`.
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

/// The shared shape of `if`, `with` and `range`.
#[derive(Debug, Clone)]
pub(crate) struct Branch {
    pub(crate) pipe: Pipe,
    pub(crate) body: Vec<Node>,
    pub(crate) otherwise: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    pub(crate) pos: usize,
    /// Declared or assigned variables (`$x :=`, `$i, $v :=`, `$x =`).
    pub(crate) vars: Vec<String>,
    pub(crate) is_assign: bool,
    pub(crate) cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub(crate) pos: usize,
    pub(crate) args: Vec<Operand>,
}

#[derive(Debug, Clone)]
pub(crate) struct Operand {
    pub(crate) pos: usize,
    pub(crate) term: Term,
}

#[derive(Debug, Clone)]
pub(crate) enum Term {
    /// A function name; `external` when the caller supplies it.
    Func {
        name: String,
        external: bool,
    },
    Dot,
    /// `.a.b` on dot.
    Field(Vec<String>),
    /// `$x.a.b`.
    Var {
        name: String,
        fields: Vec<String>,
    },
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// `( pipeline )`, optionally followed by `.a.b`.
    Paren {
        pipe: Box<Pipe>,
        fields: Vec<String>,
    },
}

/// The parsed result: the main body and the `define`d templates.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    pub(crate) root: Vec<Node>,
    pub(crate) defines: HashMap<String, Vec<Node>>,
    pub(crate) external_used: BTreeSet<String>,
}

pub(crate) fn parse(
    tokens: Vec<Token>,
    externals: &BTreeSet<String>,
    positions: &Positions,
) -> Result<Tree, TemplateError> {
    let mut parser = Parser {
        tokens,
        at: 0,
        externals,
        positions,
        vars: vec!["$".to_string()],
        depth: 0,
        range_depth: 0,
        defines: HashMap::new(),
        template_calls: Vec::new(),
        external_used: BTreeSet::new(),
    };
    let (root, end) = parser.list(true)?;
    if let Some((kw, pos)) = end {
        return Err(parser.err(pos, format!("unexpected {{{{{}}}}}", keyword_name(kw))));
    }
    for (pos, name) in &parser.template_calls {
        if !parser.defines.contains_key(name) {
            return Err(parser.err(*pos, format!("no such template {name:?}")));
        }
    }
    Ok(Tree {
        root,
        defines: parser.defines,
        external_used: parser.external_used,
    })
}

fn keyword_name(kw: Keyword) -> &'static str {
    match kw {
        Keyword::If => "if",
        Keyword::Else => "else",
        Keyword::End => "end",
        Keyword::Range => "range",
        Keyword::With => "with",
        Keyword::Define => "define",
        Keyword::Template => "template",
        Keyword::Block => "block",
        Keyword::Break => "break",
        Keyword::Continue => "continue",
    }
}

/// How a list of nodes ended: at `{{end}}` or `{{else ...}}` (with its position), or at EOF.
type ListEnd = Option<(Keyword, usize)>;

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    externals: &'a BTreeSet<String>,
    positions: &'a Positions,
    /// Variables in scope, innermost last.
    vars: Vec<String>,
    depth: usize,
    range_depth: usize,
    defines: HashMap<String, Vec<Node>>,
    template_calls: Vec<(usize, String)>,
    external_used: BTreeSet<String>,
}

impl Parser<'_> {
    fn err(&self, pos: usize, message: impl Into<String>) -> TemplateError {
        self.positions.parse_error(pos, message)
    }

    fn peek(&self) -> &Token {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[self.at.min(last)]
    }

    fn next(&mut self) -> Token {
        let tok = self.peek().clone();
        if self.at < self.tokens.len() {
            self.at += 1;
        }
        tok
    }

    /// The next token that is not white space.
    fn next_non_space(&mut self) -> Token {
        loop {
            let tok = self.next();
            if tok.kind != Tok::Space {
                return tok;
            }
        }
    }

    fn peek_non_space(&mut self) -> &Token {
        while self.peek().kind == Tok::Space {
            self.at += 1;
        }
        self.peek()
    }

    fn enter(&mut self, pos: usize) -> Result<(), TemplateError> {
        self.depth += 1;
        if self.depth > MAX_NESTING_DEPTH {
            return Err(self.err(
                pos,
                format!("nesting deeper than the limit of {MAX_NESTING_DEPTH}"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn expect_right(&mut self, context: &str) -> Result<(), TemplateError> {
        let tok = self.next_non_space();
        if tok.kind != Tok::RightDelim {
            return Err(self.err(
                tok.pos,
                format!("unexpected {} in {context}", describe(&tok.kind)),
            ));
        }
        Ok(())
    }

    /// Parses nodes until EOF, `{{end}}` or `{{else`; the `end`/`else` token is consumed.
    fn list(&mut self, top_level: bool) -> Result<(Vec<Node>, ListEnd), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            let tok = self.next();
            match tok.kind {
                Tok::Eof => return Ok((nodes, None)),
                Tok::Text(text) => nodes.push(Node::Text { pos: tok.pos, text }),
                Tok::LeftDelim => {
                    let inner = self.peek_non_space().clone();
                    match inner.kind {
                        Tok::Keyword(kw @ (Keyword::End | Keyword::Else)) => {
                            self.next_non_space();
                            if top_level {
                                return Err(self.err(
                                    inner.pos,
                                    format!("unexpected {{{{{}}}}}", keyword_name(kw)),
                                ));
                            }
                            return Ok((nodes, Some((kw, inner.pos))));
                        }
                        Tok::Keyword(Keyword::Define) => {
                            if !top_level || self.depth > 0 {
                                return Err(self.err(
                                    inner.pos,
                                    "{{define}} is only allowed at the top level",
                                ));
                            }
                            self.next_non_space();
                            self.define(inner.pos)?;
                        }
                        _ => nodes.push(self.action()?),
                    }
                }
                other => return Err(self.err(tok.pos, format!("unexpected {}", describe(&other)))),
            }
        }
    }

    /// Parses the inside of `{{ ... }}` (after the left delimiter).
    fn action(&mut self) -> Result<Node, TemplateError> {
        let tok = self.peek_non_space().clone();
        if let Tok::Keyword(kw) = tok.kind {
            self.next_non_space();
            return match kw {
                Keyword::If => Ok(Node::If(self.branch(tok.pos, "if")?)),
                Keyword::With => Ok(Node::With(self.branch(tok.pos, "with")?)),
                Keyword::Range => Ok(Node::Range(self.branch(tok.pos, "range")?)),
                Keyword::Template => self.template_call(tok.pos),
                Keyword::Block => self.block(tok.pos),
                Keyword::Break | Keyword::Continue => self.loop_control(kw, tok.pos),
                Keyword::Define | Keyword::End | Keyword::Else => {
                    Err(self.err(tok.pos, format!("unexpected {{{{{}}}}}", keyword_name(kw))))
                }
            };
        }
        let pipe = self.pipeline("command", false)?;
        Ok(Node::Action(pipe))
    }

    fn loop_control(&mut self, kw: Keyword, pos: usize) -> Result<Node, TemplateError> {
        let name = keyword_name(kw);
        if self.range_depth == 0 {
            return Err(self.err(pos, format!("{{{{{name}}}}} outside {{{{range}}}}")));
        }
        self.expect_right(name)?;
        Ok(if kw == Keyword::Break {
            Node::Break
        } else {
            Node::Continue
        })
    }

    /// `if`, `with` or `range`: pipeline, body, optional `else` / `else if` / `else with`.
    fn branch(&mut self, pos: usize, context: &str) -> Result<Branch, TemplateError> {
        self.enter(pos)?;
        let scope = self.vars.len();
        let pipe = self.pipeline(context, context == "range")?;
        if context == "range" {
            self.range_depth += 1;
        }
        let body_result = self.list(false);
        if context == "range" {
            self.range_depth -= 1;
        }
        let (body, end) = body_result?;
        let otherwise = match end {
            None => {
                return Err(self.err(
                    pos,
                    format!("unexpected EOF: {{{{{context}}}}} has no {{{{end}}}}"),
                ))
            }
            Some((Keyword::End, _)) => {
                self.expect_right("end")?;
                None
            }
            Some((_, else_pos)) => Some(self.else_part(context, else_pos)?),
        };
        self.vars.truncate(scope);
        self.leave();
        Ok(Branch {
            pipe,
            body,
            otherwise,
        })
    }

    /// After `{{else`: either `}}` then a list ending in `{{end}}`, or a chained `if`/`with`.
    fn else_part(&mut self, context: &str, else_pos: usize) -> Result<Vec<Node>, TemplateError> {
        let tok = self.peek_non_space().clone();
        match tok.kind {
            Tok::Keyword(kw @ (Keyword::If | Keyword::With)) if context != "range" => {
                self.next_non_space();
                let name = keyword_name(kw);
                let branch = self.branch(tok.pos, name)?;
                Ok(vec![if kw == Keyword::If {
                    Node::If(branch)
                } else {
                    Node::With(branch)
                }])
            }
            _ => {
                self.expect_right("else")?;
                let (nodes, end) = self.list(false)?;
                match end {
                    Some((Keyword::End, _)) => {
                        self.expect_right("end")?;
                        Ok(nodes)
                    }
                    Some((_, pos)) => Err(self.err(
                        pos,
                        format!("expected {{{{end}}}} after {{{{else}}}} of {{{{{context}}}}}"),
                    )),
                    None => Err(self.err(
                        else_pos,
                        format!("unexpected EOF: {{{{{context}}}}} has no {{{{end}}}}"),
                    )),
                }
            }
        }
    }

    fn template_name(&mut self, context: &str) -> Result<String, TemplateError> {
        let tok = self.next_non_space();
        match tok.kind {
            Tok::Str(name) => Ok(name),
            other => Err(self.err(
                tok.pos,
                format!(
                    "unexpected {} in {context}: expected a quoted template name",
                    describe(&other)
                ),
            )),
        }
    }

    /// An optional pipeline before `}}` (for `template` and `block`).
    fn optional_pipe(&mut self, context: &str) -> Result<Option<Pipe>, TemplateError> {
        if self.peek_non_space().kind == Tok::RightDelim {
            self.next_non_space();
            return Ok(None);
        }
        Ok(Some(self.pipeline(context, false)?))
    }

    fn template_call(&mut self, pos: usize) -> Result<Node, TemplateError> {
        let name = self.template_name("template clause")?;
        let pipe = self.optional_pipe("template clause")?;
        self.template_calls.push((pos, name.clone()));
        Ok(Node::Template { pos, name, pipe })
    }

    /// `{{define "name"}} body {{end}}` at the top level.
    fn define(&mut self, pos: usize) -> Result<(), TemplateError> {
        let name = self.template_name("define clause")?;
        self.expect_right("define clause")?;
        let body = self.template_body(pos, "define")?;
        if self.defines.insert(name.clone(), body).is_some() {
            return Err(self.err(pos, format!("template {name:?} is defined twice")));
        }
        Ok(())
    }

    /// `{{block "name" pipeline}} body {{end}}`: defines `name` and calls it in place.
    fn block(&mut self, pos: usize) -> Result<Node, TemplateError> {
        let name = self.template_name("block clause")?;
        let pipe = self.optional_pipe("block clause")?;
        let body = self.template_body(pos, "block")?;
        if self.defines.insert(name.clone(), body).is_some() {
            return Err(self.err(pos, format!("template {name:?} is defined twice")));
        }
        Ok(Node::Template { pos, name, pipe })
    }

    /// A `define`/`block` body: its own variable scope (only `$`), ended by `{{end}}`.
    fn template_body(&mut self, pos: usize, context: &str) -> Result<Vec<Node>, TemplateError> {
        self.enter(pos)?;
        let outer_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let outer_range = std::mem::replace(&mut self.range_depth, 0);
        let result = self.list(false);
        self.vars = outer_vars;
        self.range_depth = outer_range;
        self.leave();
        match result? {
            (body, Some((Keyword::End, _))) => {
                self.expect_right("end")?;
                Ok(body)
            }
            (_, Some((_, else_pos))) => Err(self.err(
                else_pos,
                format!("unexpected {{{{else}}}} in {{{{{context}}}}}"),
            )),
            (_, None) => Err(self.err(
                pos,
                format!("unexpected EOF: {{{{{context}}}}} has no {{{{end}}}}"),
            )),
        }
    }

    /// A pipeline up to and including the closing `}}`.
    fn pipeline(&mut self, context: &str, allow_two_vars: bool) -> Result<Pipe, TemplateError> {
        self.pipeline_until(context, allow_two_vars, &Tok::RightDelim)
    }

    /// A pipeline up to and including `end` (`}}` or `)`).
    fn pipeline_until(
        &mut self,
        context: &str,
        allow_two_vars: bool,
        end: &Tok,
    ) -> Result<Pipe, TemplateError> {
        let start = self.peek_non_space().pos;
        let (vars, is_assign) = self.declarations(context, allow_two_vars)?;
        let mut cmds = Vec::new();
        loop {
            let tok = self.peek_non_space().clone();
            match tok.kind {
                Tok::RightDelim | Tok::RParen => {
                    if &tok.kind != end {
                        let message = if tok.kind == Tok::RParen {
                            "unexpected right paren"
                        } else {
                            "unclosed left paren"
                        };
                        return Err(self.err(tok.pos, message));
                    }
                    if cmds.is_empty() {
                        return Err(self.err(tok.pos, format!("missing value for {context}")));
                    }
                    self.next_non_space();
                    break;
                }
                _ => {
                    cmds.push(self.command(context)?);
                    let after = self.peek_non_space().clone();
                    if after.kind == Tok::Pipe {
                        self.next_non_space();
                        if matches!(self.peek_non_space().kind, Tok::RightDelim | Tok::RParen) {
                            return Err(self.err(after.pos, "missing command after |"));
                        }
                    }
                }
            }
        }
        let is_decl = !vars.is_empty() && !is_assign;
        if is_decl {
            self.vars.extend(vars.iter().cloned());
        }
        Ok(Pipe {
            pos: start,
            vars,
            is_assign,
            cmds,
        })
    }

    /// `$x :=`, `$x =`, `$i, $v :=` at the start of a pipeline; none if absent.
    fn declarations(
        &mut self,
        context: &str,
        allow_two: bool,
    ) -> Result<(Vec<String>, bool), TemplateError> {
        let mark = self.at;
        let first = self.peek_non_space().clone();
        let Tok::Variable(name) = first.kind else {
            return Ok((Vec::new(), false));
        };
        self.next_non_space();
        let after = self.peek_non_space().clone();
        match after.kind {
            Tok::Declare | Tok::Assign => {
                self.next_non_space();
                let is_assign = after.kind == Tok::Assign;
                if is_assign && !self.vars.contains(&name) {
                    return Err(self.err(first.pos, format!("undefined variable {name:?}")));
                }
                Ok((vec![name], is_assign))
            }
            Tok::Comma if allow_two => {
                self.next_non_space();
                let second = self.next_non_space();
                let Tok::Variable(second_name) = second.kind else {
                    return Err(self.err(
                        second.pos,
                        format!("expected a variable after comma in {context}"),
                    ));
                };
                let op = self.next_non_space();
                if op.kind != Tok::Declare && op.kind != Tok::Assign {
                    return Err(
                        self.err(op.pos, format!("expected := after variables in {context}"))
                    );
                }
                if op.kind == Tok::Assign {
                    for (var, var_pos) in [(&name, first.pos), (&second_name, second.pos)] {
                        if !self.vars.contains(var) {
                            return Err(self.err(var_pos, format!("undefined variable {var:?}")));
                        }
                    }
                }
                Ok((vec![name, second_name], op.kind == Tok::Assign))
            }
            Tok::Comma => Err(self.err(after.pos, format!("too many declarations in {context}"))),
            _ => {
                self.at = mark;
                Ok((Vec::new(), false))
            }
        }
    }

    fn command(&mut self, context: &str) -> Result<Command, TemplateError> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            let tok = self.peek_non_space().clone();
            match tok.kind {
                Tok::RightDelim | Tok::RParen | Tok::Pipe => break,
                _ => args.push(self.operand(context)?),
            }
        }
        self.check_sockaddr(&args)?;
        Ok(Command { pos, args })
    }

    /// A `sockaddr` call with literal arguments must hold an expression Nomos evaluates
    /// (joined with spaces, as consul-template joins them); other arguments are checked when
    /// rendered.
    fn check_sockaddr(&self, args: &[Operand]) -> Result<(), TemplateError> {
        let Some((
            Operand {
                term:
                    Term::Func {
                        name,
                        external: true,
                    },
                ..
            },
            rest,
        )) = args.split_first()
        else {
            return Ok(());
        };
        if name != "sockaddr" || rest.is_empty() {
            return Ok(());
        }
        let mut literal = Vec::new();
        for arg in rest {
            match &arg.term {
                Term::Str(s) => literal.push(s.as_str()),
                _ => return Ok(()),
            }
        }
        crate::sockaddr::Expr::parse(&literal.join(" "))
            .map(drop)
            .map_err(|m| self.err(rest[0].pos, m))
    }

    /// One argument: a term followed by an optional `.field` chain.
    fn operand(&mut self, context: &str) -> Result<Operand, TemplateError> {
        let tok = self.next_non_space();
        let pos = tok.pos;
        let term = match tok.kind {
            Tok::Ident(name) => self.function(&name, pos)?,
            Tok::Dot => Term::Dot,
            Tok::Field(name) => Term::Field(self.field_chain(vec![name])),
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return Err(self.err(pos, format!("undefined variable {name:?}")));
                }
                let fields = self.field_chain(Vec::new());
                Term::Var { name, fields }
            }
            Tok::Nil => Term::Nil,
            Tok::Bool(b) => Term::Bool(b),
            Tok::Str(s) => Term::Str(s),
            Tok::CharConst(c) => Term::Int(c),
            Tok::Number(text) => number(&text).map_err(|m| self.err(pos, m))?,
            Tok::LParen => {
                self.enter(pos)?;
                let pipe = self.paren_pipeline()?;
                self.leave();
                let fields = self.field_chain(Vec::new());
                Term::Paren {
                    pipe: Box::new(pipe),
                    fields,
                }
            }
            other => {
                return Err(self.err(pos, format!("unexpected {} in {context}", describe(&other))))
            }
        };
        if let Some(Token {
            kind: Tok::Field(_),
            pos: field_pos,
        }) = self.tokens.get(self.at)
        {
            return Err(self.err(
                *field_pos,
                "unexpected field access: put the value in parentheses",
            ));
        }
        Ok(Operand { pos, term })
    }

    fn paren_pipeline(&mut self) -> Result<Pipe, TemplateError> {
        self.pipeline_until("parenthesized pipeline", false, &Tok::RParen)
    }

    /// Adjacent `.name` tokens (no space between) after a term.
    fn field_chain(&mut self, mut fields: Vec<String>) -> Vec<String> {
        while let Some(Token {
            kind: Tok::Field(name),
            ..
        }) = self.tokens.get(self.at)
        {
            fields.push(name.clone());
            self.at += 1;
        }
        fields
    }

    fn function(&mut self, name: &str, pos: usize) -> Result<Term, TemplateError> {
        if self.externals.contains(name) {
            self.external_used.insert(name.to_string());
            return Ok(Term::Func {
                name: name.to_string(),
                external: true,
            });
        }
        if funcs::is_known(name) {
            return Ok(Term::Func {
                name: name.to_string(),
                external: false,
            });
        }
        let (line, col) = self.positions.line_col(pos);
        Err(TemplateError::UnknownFunction {
            name: self.positions.name().to_string(),
            line,
            col,
            function: name.to_string(),
            hint: crate::funcs::missing_hint(name).to_string(),
        })
    }
}

/// A number literal: an `int` unless it has a fraction or exponent (then `float64`).
fn number(text: &str) -> Result<Term, String> {
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let (neg, body) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let lower = body.to_ascii_lowercase();
    let radix_body = [("0x", 16), ("0o", 8), ("0b", 2)]
        .iter()
        .find_map(|(prefix, radix)| lower.strip_prefix(prefix).map(|rest| (rest, *radix)));
    let is_float = match radix_body {
        Some((_, 16)) => lower.contains(['.', 'p']),
        Some(_) => false,
        None => lower.contains(['.', 'e']),
    };
    if is_float {
        if radix_body.is_some() {
            return Err(format!("hexadecimal floats are not supported: {text:?}"));
        }
        let f: f64 = body
            .parse()
            .map_err(|_| format!("bad number syntax: {text:?}"))?;
        return Ok(Term::Float(if neg { -f } else { f }));
    }
    let (digits, radix) = match radix_body {
        Some(found) => found,
        None if lower.len() > 1 && lower.starts_with('0') => (&lower[1..], 8),
        None => (lower.as_str(), 10),
    };
    let magnitude = u64::from_str_radix(digits, radix)
        .map_err(|_| format!("bad number syntax or integer overflow: {text:?}"))?;
    let value = if neg {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    };
    value
        .map(Term::Int)
        .ok_or_else(|| format!("integer overflow: {text:?}"))
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Text(_) => "text".into(),
        Tok::LeftDelim => "left delimiter".into(),
        Tok::RightDelim => "right delimiter".into(),
        Tok::Space => "space".into(),
        Tok::Ident(name) => format!("identifier {name:?}"),
        Tok::Field(name) => format!("field .{name}"),
        Tok::Variable(name) => format!("variable {name}"),
        Tok::Dot => "\".\"".into(),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Number(n) => format!("number {n}"),
        Tok::CharConst(_) => "character constant".into(),
        Tok::Bool(b) => format!("{b}"),
        Tok::Nil => "nil".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Keyword(kw) => format!("<{}>", keyword_name(*kw)),
        Tok::Eof => "EOF".into(),
    }
}
