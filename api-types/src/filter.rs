//! Nomad's `filter` query parameter: the boolean expression language (go-bexpr) its list
//! endpoints take, parsed into an [`Expr`] and evaluated against the JSON form of each object
//! the endpoint would answer with (so selectors are the answer's own field names:
//! `Tags contains "web"`, `Meta.team == "a"`, `Port == 8080`).
//!
//! Supported: `==`, `!=`, `contains`, `not contains`, `in`, `not in`, `is empty`,
//! `is not empty`, `and`, `or`, `not`, parentheses; values quoted (`"x"`, `` `x` ``), numbers,
//! `true`/`false`, or bare words. Expressions are limited in length and nesting.

use serde_json::Value;

/// Longest expression accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;
/// Deepest nesting of `not` and parentheses accepted.
pub const MAX_FILTER_DEPTH: usize = 32;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match(Match),
}

/// One comparison of a selector's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub selector: Vec<String>,
    pub op: Op,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equal,
    NotEqual,
    Contains,
    NotContains,
    IsEmpty,
    IsNotEmpty,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Eq,
    Ne,
    Open,
    Close,
}

fn tokens(src: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                out.push(if c == '(' { Token::Open } else { Token::Close });
            }
            '=' | '!' => {
                chars.next();
                if chars.next().map(|(_, c)| c) != Some('=') {
                    return Err(format!("expected '{c}=' at offset {at}"));
                }
                out.push(if c == '=' { Token::Eq } else { Token::Ne });
            }
            '"' | '`' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated string at offset {at}")),
                        Some((_, q)) if q == c => break,
                        Some((_, '\\')) if c == '"' => match chars.next() {
                            Some((_, e)) => s.push(e),
                            None => return Err(format!("unterminated string at offset {at}")),
                        },
                        Some((_, ch)) => s.push(ch),
                    }
                }
                out.push(Token::Quoted(s));
            }
            _ => {
                let mut s = String::new();
                while let Some(&(_, ch)) = chars.peek() {
                    if ch.is_whitespace() || "()=!\"`".contains(ch) {
                        break;
                    }
                    s.push(ch);
                    chars.next();
                }
                out.push(Token::Word(s));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(x)) if x == w)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn nest(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(format!("nested deeper than {MAX_FILTER_DEPTH}"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_word("not") {
            self.at += 1;
            self.nest()?;
            let e = Expr::Not(Box::new(self.unary()?));
            self.depth -= 1;
            return Ok(e);
        }
        if self.tokens.get(self.at) == Some(&Token::Open) {
            self.at += 1;
            self.nest()?;
            let e = self.or()?;
            self.depth -= 1;
            if self.next() != Some(Token::Close) {
                return Err("expected ')'".into());
            }
            return Ok(e);
        }
        self.comparison().map(Expr::Match)
    }

    fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w) | Token::Quoted(w)) => Ok(w),
            other => Err(format!(
                "expected a value, found {}",
                describe(other.as_ref())
            )),
        }
    }

    fn comparison(&mut self) -> Result<Match, String> {
        let first = self.next();
        // `"value" in Selector` / `"value" not in Selector`.
        let negated_in = self.peek_word("not")
            && matches!(self.tokens.get(self.at + 1), Some(Token::Word(w)) if w == "in");
        if negated_in || self.peek_word("in") {
            self.at += if negated_in { 2 } else { 1 };
            let value = match first {
                Some(Token::Word(w) | Token::Quoted(w)) => w,
                other => {
                    return Err(format!(
                        "expected a value, found {}",
                        describe(other.as_ref())
                    ))
                }
            };
            let op = if negated_in {
                Op::NotContains
            } else {
                Op::Contains
            };
            return Ok(Match {
                selector: self.selector()?,
                op,
                value,
            });
        }
        let selector = match first {
            Some(Token::Word(w)) => parse_selector(&w)?,
            other => {
                return Err(format!(
                    "expected a selector, found {}",
                    describe(other.as_ref())
                ))
            }
        };
        let op = match self.next() {
            Some(Token::Eq) => Op::Equal,
            Some(Token::Ne) => Op::NotEqual,
            Some(Token::Word(w)) if w == "contains" => Op::Contains,
            Some(Token::Word(w)) if w == "not" => match self.next() {
                Some(Token::Word(w)) if w == "contains" => Op::NotContains,
                other => {
                    return Err(format!(
                        "expected 'contains' after 'not', found {}",
                        describe(other.as_ref())
                    ))
                }
            },
            Some(Token::Word(w)) if w == "is" => {
                let negated = self.peek_word("not");
                if negated {
                    self.at += 1;
                }
                match self.next() {
                    Some(Token::Word(w)) if w == "empty" => {}
                    other => {
                        return Err(format!(
                            "expected 'empty', found {}",
                            describe(other.as_ref())
                        ))
                    }
                }
                let op = if negated { Op::IsNotEmpty } else { Op::IsEmpty };
                return Ok(Match {
                    selector,
                    op,
                    value: String::new(),
                });
            }
            other => {
                return Err(format!(
                    "expected an operator, found {}",
                    describe(other.as_ref())
                ))
            }
        };
        Ok(Match {
            selector,
            op,
            value: self.value()?,
        })
    }

    fn selector(&mut self) -> Result<Vec<String>, String> {
        match self.next() {
            Some(Token::Word(w)) => parse_selector(&w),
            other => Err(format!(
                "expected a selector, found {}",
                describe(other.as_ref())
            )),
        }
    }
}

fn describe(t: Option<&Token>) -> String {
    match t {
        None => "the end".into(),
        Some(Token::Word(w)) => format!("{w:?}"),
        Some(Token::Quoted(q)) => format!("\"{q}\""),
        Some(Token::Eq) => "'=='".into(),
        Some(Token::Ne) => "'!='".into(),
        Some(Token::Open) => "'('".into(),
        Some(Token::Close) => "')'".into(),
    }
}

fn parse_selector(w: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = w.split('.').map(str::to_string).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("invalid selector {w:?}"));
    }
    Ok(parts)
}

/// Parses a filter expression.
pub fn parse(src: &str) -> Result<Expr, String> {
    if src.len() > MAX_FILTER_BYTES {
        return Err(format!("filter is longer than {MAX_FILTER_BYTES} bytes"));
    }
    let mut p = Parser {
        tokens: tokens(src)?,
        at: 0,
        depth: 0,
    };
    let e = p.or()?;
    if p.at < p.tokens.len() {
        return Err(format!(
            "unexpected {} after the expression",
            describe(p.tokens.get(p.at))
        ));
    }
    Ok(e)
}

fn lookup<'a>(v: &'a Value, selector: &[String]) -> Option<&'a Value> {
    selector.iter().try_fold(v, |v, part| v.get(part))
}

fn equals(field: &Value, value: &str) -> bool {
    match field {
        Value::String(s) => s == value,
        Value::Number(n) => value.parse::<f64>().ok() == n.as_f64(),
        Value::Bool(b) => value.parse::<bool>().ok() == Some(*b),
        Value::Null => value.is_empty(),
        _ => false,
    }
}

fn contains(field: &Value, value: &str) -> bool {
    match field {
        Value::String(s) => s.contains(value),
        Value::Array(items) => items.iter().any(|i| equals(i, value)),
        Value::Object(m) => m.contains_key(value),
        _ => false,
    }
}

fn is_empty(field: Option<&Value>) -> bool {
    match field {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(m)) => m.is_empty(),
        Some(_) => false,
    }
}

impl Expr {
    /// Whether `v` (an object in its answer's JSON form) passes the filter.
    pub fn matches(&self, v: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.matches(v) && b.matches(v),
            Expr::Or(a, b) => a.matches(v) || b.matches(v),
            Expr::Not(e) => !e.matches(v),
            Expr::Match(m) => {
                let field = lookup(v, &m.selector);
                match m.op {
                    Op::Equal => field.is_some_and(|f| equals(f, &m.value)),
                    Op::NotEqual => !field.is_some_and(|f| equals(f, &m.value)),
                    Op::Contains => field.is_some_and(|f| contains(f, &m.value)),
                    Op::NotContains => !field.is_some_and(|f| contains(f, &m.value)),
                    Op::IsEmpty => is_empty(field),
                    Op::IsNotEmpty => !is_empty(field),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn instance() -> Value {
        json!({
            "ServiceName": "web",
            "Tags": ["v1", "blue"],
            "Port": 8080,
            "Datacenter": "dc1",
            "Meta": {"team": "a"},
            "Address": "",
        })
    }

    #[test]
    fn expressions_select_as_nomads_do() {
        let cases = [
            (r#"Tags contains "v1""#, true),
            (r#"Tags contains "v2""#, false),
            (r#"Tags not contains "v2""#, true),
            (r#""blue" in Tags"#, true),
            (r#""green" not in Tags"#, true),
            (r#"ServiceName == "web""#, true),
            (r#"ServiceName != "web""#, false),
            ("ServiceName == web", true),
            ("Port == 8080", true),
            ("Port == 80", false),
            (r#"Meta.team == "a""#, true),
            (r#"Meta contains "team""#, true),
            (r#"Meta.missing == "a""#, false),
            ("Address is empty", true),
            ("Tags is not empty", true),
            (r#"Datacenter == "dc1" and Tags contains "v1""#, true),
            (r#"Datacenter == "dc2" or Tags contains "v1""#, true),
            (r#"not (Datacenter == "dc2" or Tags contains "v9")"#, true),
            (r#"Datacenter == `dc1`"#, true),
            (r#"ServiceName == "we\"b""#, false),
        ];
        for (src, want) in cases {
            let e = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(e.matches(&instance()), want, "{src}");
        }
    }

    #[test]
    fn a_malformed_or_oversized_filter_is_refused_with_a_reason() {
        let cases = [
            ("Tags contains", "expected a value"),
            ("Tags =", "expected '=='"),
            ("(Tags contains \"a\"", "expected ')'"),
            ("Tags contains \"a", "unterminated string"),
            ("Tags ~ \"a\"", "expected an operator"),
            ("Tags contains \"a\" x", "unexpected"),
            ("Tags is full", "expected 'empty'"),
            ("Meta..x == a", "invalid selector"),
        ];
        for (src, want) in cases {
            let err = parse(src).expect_err(src);
            assert!(err.contains(want), "{src}: {err}");
        }
        let deep = format!("{}a == b{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).unwrap_err().contains("nested deeper"));
        let long = format!("a == \"{}\"", "x".repeat(MAX_FILTER_BYTES));
        assert!(parse(&long).unwrap_err().contains("longer than"));
    }

    proptest::proptest! {
        #[test]
        fn any_input_parses_or_is_refused_without_panicking(src in ".{0,200}") {
            if let Ok(e) = parse(&src) {
                let _ = e.matches(&instance());
            }
        }
    }
}
