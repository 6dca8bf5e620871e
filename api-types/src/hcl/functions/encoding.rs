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
        _ => Err(format!("`{name}` is not one of this file's functions")),
    }
}
