//! The conversion functions: `tostring`, `tonumber`, `tobool`, `tolist`, `toset` (and
//! `distinct`), `tomap`.

use serde_json::Value;

use super::super::value::*;
use crate::frontend::ParseOptions;

/// The functions this file answers for.
pub(super) const NAMES: &[&str] = &[
    "tostring", "tonumber", "tobool", "tolist", "toset", "distinct", "tomap",
];

/// Calls one of [`NAMES`].
pub(super) fn call(name: &str, a: &[Value], _options: &ParseOptions) -> Result<Value, String> {
    let s = |v: String| Ok(Value::String(v));
    match name {
        "tostring" => {
            arity(a, 1)?;
            if a[0].is_null() {
                Ok(Value::Null)
            } else {
                s(arg_str(a, 0)?)
            }
        }
        "tonumber" => {
            arity(a, 1)?;
            if a[0].is_null() {
                Ok(Value::Null)
            } else {
                Ok(num(arg_num(a, 0)?))
            }
        }
        "tobool" => {
            arity(a, 1)?;
            as_bool(&a[0])
                .map(Value::Bool)
                .ok_or_else(|| format!("cannot convert {} to bool", show(&a[0])))
        }
        "tolist" => {
            arity(a, 1)?;
            Ok(Value::Array(arg_list(a, 0)?))
        }
        "toset" | "distinct" => {
            arity(a, 1)?;
            let mut out: Vec<Value> = Vec::new();
            for v in arg_list(a, 0)? {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            Ok(Value::Array(out))
        }
        "tomap" => {
            arity(a, 1)?;
            Ok(Value::Object(arg_map(a, 0)?))
        }
        _ => Err(format!("`{name}` is not one of this file's functions")),
    }
}
