//! Encodings and files: JSON, base64, `file` (within the job file's limits) and path functions.

use base64::Engine;
use serde_json::Value;

use super::super::value::*;
use crate::frontend::ParseOptions;

/// The functions this file answers for.
pub(super) const NAMES: &[&str] = &[
    "jsonencode",
    "jsondecode",
    "base64encode",
    "base64decode",
    "file",
    "abspath",
    "basename",
    "dirname",
    "pathexpand",
];

/// Calls one of [`NAMES`].
pub(super) fn call(name: &str, a: &[Value], options: &ParseOptions) -> Result<Value, String> {
    let s = |v: String| Ok(Value::String(v));
    match name {
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
        "pathexpand" => {
            arity(a, 1)?;
            s(pathexpand(&arg_str(a, 0)?, options)?)
        }
        _ => Err(format!("`{name}` is not one of this file's functions")),
    }
}

/// `~` or a leading `~/` replaced by the home directory (`HOME` in the environment the caller
/// passed in), as Nomad's `pathexpand` does; other paths are returned as they are.
fn pathexpand(path: &str, options: &ParseOptions) -> Result<String, String> {
    let rest = match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        Some(_) => {
            return Err(format!(
            "cannot expand \"{path}\": only `~` and `~/...` are expanded, not another user's home"
        ))
        }
        None => return Ok(path.to_string()),
    };
    let home = options
        .env
        .iter()
        .find(|(k, _)| k == "HOME")
        .map(|(_, v)| v.as_str())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            format!(
                "cannot expand \"{path}\": the home directory is not known here (HOME is not set)"
            )
        })?;
    Ok(format!("{}{rest}", home.trim_end_matches('/')))
}
