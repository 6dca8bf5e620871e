//! Nomad HCL (HCL2, and HCL1-era files) to the canonical job shape.
//!
//! `hcl-edit` parses with byte spans; files that HCL2 rejects are retried once through
//! `legacy`, which rewrites HCL1 commas byte for byte so positions stay exact. Then a
//! `decoder` walks the tree:
//! - `variables` and `locals` fill the scope that `eval` evaluates expressions in
//!   (functions in `functions`, value helpers in `value`);
//! - `blocks` decodes the `job` block against `schema`, converting attributes with `scalar`,
//!   expanding `dynamic` blocks, and applying `fixup`'s block-specific rewrites; it builds the
//!   canonical JSON with a position for every field path. Unknown names get a "did you mean";
//!   blocks Nomos does not act on are kept in `ignored` and warned about.
//!
//! The other direction: `write` turns a job into HCL, and `fmt` lays out an HCL file (`lex`
//! holds what it shares with `legacy`'s byte-level scanner).

mod blocks;
pub(crate) mod budget;
mod decoder;
mod dynamic;
pub(crate) mod eval;
mod fixup;
pub mod fmt;
pub(crate) mod functions;
pub(crate) mod legacy;
mod lex;
mod locals;
mod scalar;
pub(crate) mod schema;
pub(crate) mod value;
mod variables;
pub mod write;

pub use fmt::format_hcl;
pub use functions::names as function_names;
pub use write::to_hcl;

use hcl_edit::structure::{Body, Structure};
use hcl_edit::Span;

use crate::diag::{did_you_mean, Diagnostic, Pos};
use crate::fieldpath::PosMap;
use crate::frontend::{ParseOptions, RawJob};
use decoder::{Blk, Decoder};

/// Parses a whole HCL job file.
pub(crate) fn parse_hcl(
    file: &str,
    source: &str,
    options: &ParseOptions,
    warnings: &mut Vec<Diagnostic>,
    errors: &mut Vec<Diagnostic>,
) -> Result<Vec<RawJob>, Vec<Diagnostic>> {
    let body = parse_body(file, source, warnings)?;
    let mut d = Decoder::new(file, source, options);
    variables::variables(&mut d, &body, options);
    locals::locals(&mut d, &body);
    let jobs = decode_jobs(&mut d, &body);
    if jobs.is_empty() && d.errors.is_empty() {
        d.errors.push(Diagnostic::error(
            file,
            Pos::new(1, 1),
            "no job found: expected a `job \"<id>\" { ... }` block",
        ));
    }
    warnings.append(&mut d.warnings);
    if jobs.is_empty() {
        return Err(d.errors);
    }
    // Decoding errors are reported together with what validation finds in the rest.
    errors.append(&mut d.errors);
    Ok(jobs)
}

/// The syntax tree of the file; HCL1-era syntax is accepted with a warning.
fn parse_body(
    file: &str,
    source: &str,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Body, Vec<Diagnostic>> {
    let first = match hcl_edit::parser::parse_body(source) {
        Ok(b) => return Ok(b),
        Err(first) => first,
    };
    // HCL1-era syntax? Retry with commas rewritten (same byte offsets).
    let rewritten = legacy::rewrite_hcl1(source);
    if let Some(Ok(b)) = rewritten.as_deref().map(hcl_edit::parser::parse_body) {
        warnings.push(Diagnostic::warning(file, Pos::new(1, 1), "HCL1-era syntax (commas between attributes or quoted attribute names) accepted; Nomad 1.x's HCL2 rejects it"));
        return Ok(b);
    }
    let loc = first.location();
    let msg = first.message().to_string();
    let found = found_at(source, loc.offset());
    let msg = if msg.is_empty() {
        format!("invalid HCL syntax, found {found}")
    } else {
        format!("invalid HCL syntax: {msg}, found {found}")
    };
    Err(vec![Diagnostic::error(
        file,
        Pos::new(loc.line() as u32, loc.column() as u32),
        msg,
    )])
}

/// Decodes the `job` block (only one is allowed) and reports anything at the top level that
/// is not a job, `variable` or `locals` block.
fn decode_jobs(d: &mut Decoder<'_>, body: &Body) -> Vec<RawJob> {
    let mut jobs = Vec::new();
    for s in body.iter() {
        match s {
            Structure::Block(b) if b.ident.value().as_str() == "job" => {
                if !jobs.is_empty() {
                    d.error(b.ident.span(), "only one job block is allowed per file");
                    continue;
                }
                d.pos = PosMap::default();
                d.failed.clear();
                let v = d.block(&Blk::from(b), &schema::JOB, "");
                jobs.push(RawJob {
                    value: v,
                    pos: std::mem::take(&mut d.pos),
                    failed: std::mem::take(&mut d.failed),
                });
            }
            Structure::Block(b) if matches!(b.ident.value().as_str(), "variable" | "locals") => {}
            Structure::Block(b) => {
                let name = b.ident.value().as_str();
                let hint = did_you_mean(name, ["job", "variable", "locals"])
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                d.error(b.ident.span(), format!("unknown block \"{name}\" at top level{hint}: expected job, variable or locals"));
            }
            Structure::Attribute(a) => {
                let name = a.key.value().as_str();
                d.error(
                    a.key.span(),
                    format!("unexpected attribute \"{name}\" at top level: expected a job block"),
                );
            }
        }
    }
    jobs
}

/// What the text holds at a syntax error: the next token, or the end of the file.
fn found_at(source: &str, offset: usize) -> String {
    let mut start = offset.min(source.len());
    while !source.is_char_boundary(start) {
        start -= 1;
    }
    let rest = source[start..].trim_start_matches([' ', '\t']);
    if rest.trim().is_empty() {
        return "the end of the file".into();
    }
    if rest.starts_with(['\n', '\r']) {
        return "the end of the line".into();
    }
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace())
        .take(20)
        .collect();
    format!("`{token}`")
}
