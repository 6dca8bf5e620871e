//! The job-file front end: one entry point for every format, returning jobs with defaults
//! applied and validated, or every error found, each with `file:line:col`.
//!
//! Pipeline: a front end (HCL in [`crate::hcl`], YAML/JSON manifests and Nomad JSON in
//! [`crate::manifest`]) turns the text into a JSON value in the canonical shape plus a
//! [`PosMap`] from canonical field paths (`groups[0].tasks[1].driver`) to source positions;
//! [`crate::defaults`] fills Nomad's defaults; serde (through `serde_path_to_error`) builds the
//! [`Job`]; [`crate::validate`] checks it. Every error carries a field path that the position
//! map turns into a line and column.
//!
//! File reads: the core is pure. `file()` in HCL and `-var-file` read through the
//! [`FileSource`] in [`ParseOptions::files`]; [`parse_source`] with no file source reports
//! such reads as errors, and [`parse_file`] installs [`StdFiles`] (the real file system) when
//! none is given.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::diag::{sort_diagnostics, Diagnostic, Pos};
pub use crate::fieldpath::PosMap;
use crate::frontend::RawJob;
pub use crate::frontend::{FileSource, MemFiles, ParseOptions, StdFiles};
use crate::job::Job;

/// The jobs a file holds (YAML files may hold several) and the warnings about them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub jobs: Vec<Job>,
    pub warnings: Vec<Diagnostic>,
}

/// The source formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Hcl,
    Yaml,
    Json,
}

/// Picks the format. Content that can only be one format decides (`{`/`[` is JSON;
/// `apiVersion:`, `kind:` or `---` is YAML), so a manifest sent as `job.hcl` still works; then
/// the extension (`.hcl`, `.nomad`, `.yaml`, `.yml`, `.json`); then HCL.
pub fn detect_format(filename: &str, source: &str) -> Format {
    let t = source.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        return Format::Json;
    }
    // The first line that is not blank or a `#` comment (both formats have those).
    let first = t
        .lines()
        .map(str::trim_end)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    if first.starts_with("---") || first.starts_with("apiVersion:") || first.starts_with("kind:") {
        return Format::Yaml;
    }
    let lower = filename.to_ascii_lowercase();
    if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        return Format::Yaml;
    }
    if lower.ends_with(".json") {
        return Format::Json;
    }
    Format::Hcl
}

/// Parses, defaults and validates a job file held in memory.
pub fn parse_source(
    filename: &str,
    source: &str,
    options: &ParseOptions,
) -> Result<Parsed, Vec<Diagnostic>> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let format = detect_format(filename, source);
    if format == Format::Json {
        // Valid JSON is read fast, without positions; only a file with problems is read again
        // with positions, for the diagnostics.
        match parse_source_as(filename, source, options, format, false) {
            Ok(parsed) if parsed.warnings.is_empty() => return Ok(parsed),
            _ => {}
        }
    }
    parse_source_as(filename, source, options, format, true)
}

fn parse_source_as(
    filename: &str,
    source: &str,
    options: &ParseOptions,
    format: Format,
    positions: bool,
) -> Result<Parsed, Vec<Diagnostic>> {
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let raws = match format {
        Format::Hcl => crate::hcl::parse_hcl(filename, source, options, &mut warnings, &mut errors),
        Format::Yaml | Format::Json => {
            crate::manifest::parse_manifest(filename, source, &mut warnings, &mut errors, positions)
        }
    };
    let mut raws = match raws {
        Ok(r) => r,
        Err(mut errs) => {
            errs.extend(warnings);
            sort_diagnostics(&mut errs);
            return Err(errs);
        }
    };
    if let Some(ns) = options.namespace.as_deref().filter(|n| !n.is_empty()) {
        for raw in &mut raws {
            set_default_namespace(&mut raw.value, ns);
        }
    }
    finish(filename, raws, warnings, errors, false)
}

/// A job that names no namespace goes to `ns`.
fn set_default_namespace(job: &mut serde_json::Value, ns: &str) {
    if let Some(obj) = job.as_object_mut() {
        let named = obj
            .get("namespace")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !named {
            obj.insert(
                "namespace".into(),
                serde_json::Value::String(ns.to_string()),
            );
        }
    }
}

/// Reads and parses a job file; `file()` and `-var-file` read from the real file system
/// unless `options.files` says otherwise, relative to the file's directory.
pub fn parse_file(path: &Path, options: &ParseOptions) -> Result<Parsed, Vec<Diagnostic>> {
    let name = path.display().to_string();
    let mut opts = options.clone();
    if opts.files.is_none() {
        opts.files = Some(Arc::new(StdFiles));
    }
    if opts.base_dir.is_none() {
        opts.base_dir = path.parent().map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        });
    }
    let source = opts
        .files
        .as_ref()
        .map(|f| f.read(path))
        .unwrap_or_else(|| Err(format!("cannot read {name}")));
    match source {
        Ok(s) => parse_source(&name, &s, &opts),
        Err(e) => Err(vec![Diagnostic::error(&name, Pos::default(), e)]),
    }
}

/// Defaults, deserialisation and validation shared by every front end.
pub(crate) fn finish(
    file: &str,
    raws: Vec<RawJob>,
    mut warnings: Vec<Diagnostic>,
    mut errors: Vec<Diagnostic>,
    with_paths: bool,
) -> Result<Parsed, Vec<Diagnostic>> {
    let mut jobs = Vec::new();
    for mut raw in raws {
        crate::defaults::apply(&mut raw.value);
        // serde stops at the first problem: record it, drop the offending field, try again,
        // so one pass reports every unknown field and wrong type.
        let mut value = raw.value.clone();
        let mut had_serde_error = false;
        let mut job = None;
        for _ in 0..32 {
            match serde_path_to_error::deserialize::<_, Job>(&value) {
                Ok(j) => {
                    job = Some(j);
                    break;
                }
                Err(e) => {
                    had_serde_error = true;
                    let path = path_string(e.path());
                    let pos = raw.pos.lookup(&path);
                    let msg = describe_serde_error(&path, &e.inner().to_string());
                    errors.push(Diagnostic::error(file, pos, msg));
                    let segs: Vec<_> = e.path().iter().cloned().collect();
                    if segs.is_empty() || !remove_path(&mut value, &segs) {
                        break;
                    }
                }
            }
        }
        if let Some(job) = job {
            for issue in crate::validate::validate(&job) {
                if had_serde_error && issue.severity == crate::diag::Severity::Error {
                    // Findings on a job with dropped fields would mostly echo the errors above.
                    continue;
                }
                if raw
                    .failed
                    .iter()
                    .any(|f| issue.path == *f || issue.path.starts_with(&format!("{f}.")))
                {
                    continue;
                }
                let pos = raw.pos.lookup(&issue.path);
                let message = if with_paths {
                    format!("{}: {}", issue.path, issue.message)
                } else {
                    issue.message
                };
                let d = match issue.severity {
                    crate::diag::Severity::Error => Diagnostic::error(file, pos, message),
                    crate::diag::Severity::Warning => Diagnostic::warning(file, pos, message),
                };
                if d.is_error() {
                    errors.push(d);
                } else {
                    warnings.push(d);
                }
            }
            jobs.push(job);
        }
    }
    sort_diagnostics(&mut warnings);
    if errors.is_empty() {
        Ok(Parsed { jobs, warnings })
    } else {
        errors.extend(warnings);
        sort_diagnostics(&mut errors);
        Err(errors)
    }
}

pub(crate) fn describe_serde_error(path: &str, msg: &str) -> String {
    let msg = improve_unknown_field(msg)
        .or_else(|| improve_type_error(msg))
        .unwrap_or_else(|| msg.to_string());
    if path.is_empty() || path == "." {
        msg
    } else {
        format!("{path}: {msg}")
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" with a "did you mean" instead of
/// the whole list.
fn improve_unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (name, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let hint = crate::diag::did_you_mean(name, candidates.iter().copied())
        .map(|s| format!(" (did you mean \"{s}\"?)"))
        .unwrap_or_default();
    Some(format!("unknown field \"{name}\"{hint}"))
}

/// serde's "invalid type: string \"x\", expected u32" as "expected a non-negative whole
/// number, found string \"x\"".
fn improve_type_error(msg: &str) -> Option<String> {
    let rest = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "))?;
    let (found, expected) = rest.rsplit_once(", expected ")?;
    let expected = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative whole number".to_string(),
        "i8" | "i16" | "i32" | "i64" => "a whole number".to_string(),
        "a boolean" => "true or false".to_string(),
        "a sequence" => "a list".to_string(),
        "a map" => "a mapping".to_string(),
        other => other.to_string(),
    };
    let found = found.replace('`', "");
    let found = found
        .strip_prefix("sequence")
        .map(|r| format!("a list{r}"))
        .or_else(|| found.strip_prefix("map").map(|r| format!("a mapping{r}")))
        .unwrap_or(found);
    Some(format!("expected {expected}, found {found}"))
}

/// Removes the value at a serde path (used to continue after a deserialisation error).
fn remove_path(v: &mut Value, segs: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let mut cur = v;
    for seg in parents {
        let next = match (seg, cur) {
            (Segment::Seq { index }, Value::Array(a)) => a.get_mut(*index),
            (Segment::Map { key }, Value::Object(o)) => o.get_mut(key),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match (last, cur) {
        (Segment::Map { key }, Value::Object(o)) => o.shift_remove(key).is_some(),
        (Segment::Seq { index }, Value::Array(a)) if *index < a.len() => {
            a.remove(*index);
            true
        }
        _ => false,
    }
}

/// `groups[0].tasks[1].driver` from a serde path.
pub(crate) fn path_string(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_comes_from_unambiguous_content_then_the_extension() {
        let cases = [
            ("job.hcl", "job \"x\" {}", Format::Hcl),
            ("job.nomad", "# c\njob \"x\" {}", Format::Hcl),
            ("job.hcl", "apiVersion: nomos/v1\nkind: Job", Format::Yaml),
            ("job.hcl", "{\"Job\": {}}", Format::Json),
            ("x.yaml", "# comment\napiVersion: nomos/v1", Format::Yaml),
            ("x.yml", "metadata: {}", Format::Yaml),
            ("x.json", "  \n", Format::Json),
            ("-", "---\nkind: Job", Format::Yaml),
            ("noext", "job \"x\" {}", Format::Hcl),
            (
                "<stdin>",
                "# a manifest\napiVersion: nomos/v1",
                Format::Yaml,
            ),
        ];
        for (name, text, expected) in cases {
            assert_eq!(detect_format(name, text), expected, "{name}: {text}");
        }
    }
}
