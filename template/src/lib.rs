//! A Go `text/template` engine with consul-template's functions, for the
//! `template { data = ... }` blocks of Nomad-style jobs.
//!
//! # Layout
//!
//! ```text
//! text ──lex──▶ tokens ──parse──▶ Tree ──exec(data, Sources, now)──▶ String
//!       (lex.rs)          (parse.rs)          (exec.rs)
//! ```
//!
//! - `lex`: delimiters (custom ones too), trim markers `{{-`/`-}}`,
//!   comments, and the tokens inside actions.
//! - `parse`: the node tree; checks function names (an unknown
//!   one is an error at its `line:col`, as in Go), variables, `break`/`continue`
//!   placement, `template` names and nesting depth.
//! - `exec`: evaluation with Go's truthiness and printing, and
//!   the render budgets below.
//! - `funcs` is the function table; `builtins`
//!   holds Go's built-ins, `consul` consul-template's pure helpers,
//!   `printf` Go's `Sprintf`, `timefmt` Go time layouts.
//! - `sockaddr` parses and evaluates go-sockaddr's common expressions over
//!   addresses the caller reads; the parser checks a `sockaddr` call's literal
//!   arguments with it, so an unsupported expression fails at `line:col`.
//! - Functions that read the outside world (`env`, `nomadVar`, ...) are the
//!   caller's: their names go in [`Options::external_functions`] at parse time
//!   and their implementation is a [`Sources`] at render time.
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeSet;
//! use nomos_template::{Options, Sources, Template, Value};
//!
//! struct Env;
//! impl Sources for Env {
//!     fn call(&self, name: &str, args: &[Value]) -> Result<Value, String> {
//!         match (name, args) {
//!             ("env", [Value::String(key)]) if key == "PORT" => Ok(Value::from("8080")),
//!             _ => Err(format!("{name}: no such value")),
//!         }
//!     }
//! }
//!
//! let opts = Options {
//!     external_functions: BTreeSet::from(["env".to_string()]),
//!     ..Options::default()
//! };
//! let template = Template::parse("app.conf", r#"listen = {{ env "PORT" }}"#, &opts)?;
//! assert_eq!(template.functions_used(), BTreeSet::from(["env".to_string()]));
//! assert_eq!(template.render(&Value::Null, &Env)?, "listen = 8080");
//!
//! let typo = Template::parse("app.conf", "\n{{ nomadvar \"x\" }}", &opts).unwrap_err();
//! assert_eq!(typo.to_string(), r#"template: app.conf:2:4: function "nomadvar" not defined"#);
//! # Ok::<(), nomos_template::TemplateError>(())
//! ```
//!
//! # Differences from Go, on purpose
//!
//! Values are JSON-like, so there are no methods or struct fields. A field of
//! `nil` is `nil` (Go errors), integers and floats compare with each other,
//! and `%d`/`%f` accept an integral float / an integer, because JSON numbers
//! may arrive as either.

mod builtins;
mod consul;
mod error;
mod exec;
mod funcs;
mod lex;
mod parse;
mod printf;
pub mod sockaddr;
mod timefmt;
mod value;

use std::collections::BTreeSet;

pub use error::TemplateError;
pub use funcs::builtin_names;
pub use value::Value;

use error::Positions;

/// Largest template text accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 1 << 20;
/// Deepest nesting of blocks (`if`, `range`, `with`, `define`) and parentheses.
pub const MAX_NESTING_DEPTH: usize = 100;
/// Most `range` iterations in one render, all loops together.
pub const MAX_RANGE_ITERATIONS: usize = 1_000_000;
/// Largest output of one render, and largest string a function may build, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;
/// Deepest chain of `{{template}}` calls (a `define` that calls itself stops here).
pub const MAX_TEMPLATE_CALL_DEPTH: usize = 100;
/// Deepest nesting while rendering, counting blocks, template calls and
/// parentheses together (blocks inside a `define` add to those around its
/// call). Bounds the evaluator's recursion: 150 levels fit a 2 MiB thread
/// stack even in a debug build.
pub const MAX_RENDER_DEPTH: usize = 150;
/// Most actions, commands and template calls evaluated in one render.
pub const MAX_STEPS: usize = 10_000_000;

/// The caller's functions (data sources such as `env`, `nomadVar`, `nomadService`).
///
/// `args` are in template order, the piped value last. An `Err` fails the render
/// with `error calling <name>: <message>` at the call's position.
pub trait Sources {
    fn call(&self, name: &str, args: &[Value]) -> Result<Value, String>;
}

/// A [`Sources`] with no functions: every call fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSources;

impl Sources for NoSources {
    fn call(&self, name: &str, _args: &[Value]) -> Result<Value, String> {
        Err(format!("function {name:?} has no implementation"))
    }
}

/// How to parse and render a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Opens an action; Nomad's `left_delimiter`.
    pub left_delim: String,
    /// Closes an action; Nomad's `right_delimiter`.
    pub right_delim: String,
    /// Reading a missing map key fails the render instead of printing
    /// `<no value>`; Nomad's `error_on_missing_key`.
    pub missing_key_error: bool,
    /// Names the caller implements through [`Sources`]; any other unknown
    /// function name is a parse error.
    pub external_functions: BTreeSet<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            left_delim: "{{".to_string(),
            right_delim: "}}".to_string(),
            missing_key_error: false,
            external_functions: BTreeSet::new(),
        }
    }
}

/// A parsed template, ready to render any number of times.
#[derive(Debug, Clone)]
pub struct Template {
    tree: parse::Tree,
    positions: Positions,
    missing_key_error: bool,
}

impl Template {
    /// Parses `text`; `name` appears in error messages (`template: name:3:14: ...`).
    pub fn parse(name: &str, text: &str, opts: &Options) -> Result<Template, TemplateError> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::TextTooLarge {
                name: name.to_string(),
                size: text.len(),
                limit: MAX_TEMPLATE_BYTES,
            });
        }
        let positions = Positions::new(name, text);
        if opts.left_delim.is_empty() || opts.right_delim.is_empty() {
            return Err(positions.parse_error(0, "delimiters must not be empty"));
        }
        let tokens = lex::lex(text, &opts.left_delim, &opts.right_delim, &positions)?;
        let tree = parse::parse(tokens, &opts.external_functions, &positions)?;
        Ok(Template {
            tree,
            positions,
            missing_key_error: opts.missing_key_error,
        })
    }

    /// Renders with `data` as `.` and `$`, reading the current time for `timestamp`.
    pub fn render(&self, data: &Value, sources: &dyn Sources) -> Result<String, TemplateError> {
        self.render_at(data, sources, jiff::Timestamp::now())
    }

    /// Renders with `now` as the time `timestamp` reports (for tests and replays).
    pub fn render_at(
        &self,
        data: &Value,
        sources: &dyn Sources,
        now: jiff::Timestamp,
    ) -> Result<String, TemplateError> {
        exec::Exec::new(
            &self.tree,
            &self.positions,
            sources,
            self.missing_key_error,
            now,
        )
        .run(data)
    }

    /// The external functions (from [`Options::external_functions`]) the template calls.
    pub fn functions_used(&self) -> BTreeSet<String> {
        self.tree.external_used.clone()
    }

    /// The template's name, as given to [`Template::parse`].
    pub fn name(&self) -> &str {
        self.positions.name()
    }
}
