//! Nomad's quota specification file (`nomad quota init` writes one) to a [`QuotaSpec`]:
//!
//! ```hcl
//! name        = "team-a"
//! description = "Limit team A"
//! limit {
//!   region = "global"
//!   region_limit {
//!     cpu         = 2500  # MHz
//!     memory      = 1000  # MB
//!     allocations = 10    # a Nomos extension
//!   }
//! }
//! ```
//!
//! Attributes Nomos does not enforce (`memory_max`, `cores`, `device`, `variables_limit`, ...)
//! are errors at `file:line:col`, so a file never looks stricter than it is.

use std::ops::Range;

use hcl_edit::expr::{Expression, UnaryOperator};
use hcl_edit::structure::{Attribute, Block, Body, Structure};
use hcl_edit::Span;

use super::{QuotaLimit, QuotaSpec, RegionLimit};
use crate::diag::{did_you_mean, Diagnostic, LineIndex, Pos};

/// Largest quota specification file read.
pub const MAX_QUOTA_FILE_BYTES: usize = 64 * 1024;

struct Reader<'a> {
    file: &'a str,
    lines: LineIndex<'a>,
    errors: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn error(&mut self, span: Option<Range<usize>>, msg: impl Into<String>) {
        let pos = span.map(|s| self.lines.pos(s.start)).unwrap_or_default();
        self.errors.push(Diagnostic::error(self.file, pos, msg));
    }

    fn unknown(&mut self, s: &Structure, within: &str, expected: &[&str]) {
        let (name, span) = match s {
            Structure::Attribute(a) => (a.key.value().as_str(), a.key.span()),
            Structure::Block(b) => (b.ident.value().as_str(), b.ident.span()),
        };
        let hint = did_you_mean(name, expected.iter().copied())
            .map(|s| format!(" (did you mean \"{s}\"?)"))
            .unwrap_or_default();
        self.error(
            span,
            format!(
                "unknown \"{name}\" in {within}{hint}: expected {}",
                expected.join(", ")
            ),
        );
    }

    fn string(&mut self, a: &Attribute) -> String {
        match &a.value {
            Expression::String(s) => s.value().to_string(),
            other => {
                let name = a.key.value().as_str();
                self.error(other.span(), format!("{name} must be a string"));
                String::new()
            }
        }
    }

    fn integer(&mut self, a: &Attribute) -> i64 {
        let name = a.key.value().as_str();
        let value = match &a.value {
            Expression::Number(n) => n.value().as_i64(),
            Expression::UnaryOp(op) if op.operator.value() == &UnaryOperator::Neg => {
                match &op.expr {
                    Expression::Number(n) => n.value().as_i64().and_then(i64::checked_neg),
                    _ => None,
                }
            }
            _ => None,
        };
        value.unwrap_or_else(|| {
            self.error(
                a.value.span(),
                format!("{name} must be a whole number (0: unlimited, negative: none allowed)"),
            );
            0
        })
    }
}

/// Parses a quota specification file; `file` names it in the diagnostics.
pub fn parse_quota_spec(file: &str, source: &str) -> Result<QuotaSpec, Vec<Diagnostic>> {
    if source.len() > MAX_QUOTA_FILE_BYTES {
        return Err(vec![Diagnostic::error(
            file,
            Pos::new(1, 1),
            format!(
                "quota specification is {} bytes, over the limit of {MAX_QUOTA_FILE_BYTES}",
                source.len()
            ),
        )]);
    }
    let body = hcl_edit::parser::parse_body(source).map_err(|e| {
        let loc = e.location();
        vec![Diagnostic::error(
            file,
            Pos::new(loc.line() as u32, loc.column() as u32),
            format!("invalid HCL syntax: {}", e.message()),
        )]
    })?;
    let mut r = Reader {
        file,
        lines: LineIndex::new(source),
        errors: Vec::new(),
    };
    let spec = read_top(&mut r, &body);
    if r.errors.is_empty() {
        Ok(spec)
    } else {
        Err(r.errors)
    }
}

fn read_top(r: &mut Reader<'_>, body: &Body) -> QuotaSpec {
    let mut spec = QuotaSpec::default();
    for s in body.iter() {
        match s {
            Structure::Attribute(a) if a.key.value().as_str() == "name" => spec.name = r.string(a),
            Structure::Attribute(a) if a.key.value().as_str() == "description" => {
                spec.description = r.string(a)
            }
            Structure::Block(b) if b.ident.value().as_str() == "limit" => {
                spec.limits.push(read_limit(r, b))
            }
            other => r.unknown(
                other,
                "a quota specification",
                &["name", "description", "limit"],
            ),
        }
    }
    if spec.name.is_empty() && r.errors.is_empty() {
        r.error(None, "the quota specification needs a name");
    }
    spec
}

fn read_limit(r: &mut Reader<'_>, b: &Block) -> QuotaLimit {
    let mut limit = QuotaLimit::default();
    let mut has_region_limit = false;
    for s in b.body.iter() {
        match s {
            Structure::Attribute(a) if a.key.value().as_str() == "region" => {
                limit.region = r.string(a)
            }
            Structure::Block(rl) if rl.ident.value().as_str() == "region_limit" => {
                has_region_limit = true;
                limit.region_limit = read_region_limit(r, rl);
            }
            other => r.unknown(other, "a limit block", &["region", "region_limit"]),
        }
    }
    if limit.region.is_empty() {
        r.error(b.ident.span(), "a limit block needs a region (\"global\")");
    }
    if !has_region_limit {
        r.error(b.ident.span(), "a limit block needs a region_limit block");
    }
    limit
}

fn read_region_limit(r: &mut Reader<'_>, b: &Block) -> RegionLimit {
    let mut rl = RegionLimit::default();
    for s in b.body.iter() {
        match s {
            Structure::Attribute(a) => match a.key.value().as_str() {
                "cpu" => rl.cpu = r.integer(a),
                "memory" => rl.memory_mb = r.integer(a),
                "allocations" => rl.allocations = r.integer(a),
                _ => r.unknown(
                    s,
                    "region_limit (Nomos enforces these only)",
                    &["cpu", "memory", "allocations"],
                ),
            },
            Structure::Block(_) => r.unknown(
                s,
                "region_limit (Nomos enforces these only)",
                &["cpu", "memory", "allocations"],
            ),
        }
    }
    rl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nomad_quota_file_parses() {
        let src = r#"
name        = "team-a"
description = "Limit team A"
limit {
  region = "global"
  region_limit {
    cpu         = 2500
    memory      = 1000
    allocations = -1
  }
}
"#;
        let q = parse_quota_spec("q.hcl", src).unwrap();
        assert_eq!(q.name, "team-a");
        let l = q.global_limit().unwrap();
        assert_eq!((l.cpu, l.memory_mb, l.allocations), (2500, 1000, -1));
    }

    #[test]
    fn what_nomos_does_not_enforce_is_an_error_at_its_position() {
        let src = "name = \"q\"\nlimit {\n  region = \"global\"\n  region_limit {\n    memory_max = 10\n  }\n}\n";
        let e = parse_quota_spec("q.hcl", src).unwrap_err();
        assert_eq!((e[0].line, e[0].column), (5, 5), "{e:?}");
        assert!(e[0].message.contains("memory_max"), "{e:?}");
    }

    #[test]
    fn bad_values_and_missing_parts_are_errors() {
        let cases = [
            ("name = 3\n", "name must be a string"),
            (
                "name = \"q\"\nlimit {\n region = \"global\"\n}\n",
                "region_limit",
            ),
            (
                "name = \"q\"\nlimit {\n region_limit { cpu = \"x\" }\n}\n",
                "whole number",
            ),
            ("description = \"d\"\n", "needs a name"),
            ("name = \"q\"\nlimits {}\n", "did you mean \"limit\""),
            ("name = ", "invalid HCL syntax"),
        ];
        for (src, want) in cases {
            let e = parse_quota_spec("q.hcl", src).unwrap_err();
            assert!(e.iter().any(|d| d.message.contains(want)), "{src:?}: {e:?}");
        }
        let big = "#".repeat(MAX_QUOTA_FILE_BYTES + 1);
        assert!(parse_quota_spec("q.hcl", &big).unwrap_err()[0]
            .message
            .contains("over the limit"));
    }
}
