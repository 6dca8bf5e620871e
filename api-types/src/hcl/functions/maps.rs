//! The map functions: `merge`, `keys`, `values`, `lookup`, `zipmap`.

use serde_json::{Map, Value};

use super::super::value::*;
use crate::frontend::ParseOptions;

/// The functions this file answers for.
pub(super) const NAMES: &[&str] = &["merge", "keys", "values", "lookup", "zipmap"];

/// Calls one of [`NAMES`].
pub(super) fn call(name: &str, a: &[Value], _options: &ParseOptions) -> Result<Value, String> {
    match name {
        "merge" => {
            let mut out = Map::new();
            for i in 0..a.len() {
                if a[i].is_null() {
                    continue;
                }
                out.extend(arg_map(a, i)?);
            }
            Ok(Value::Object(out))
        }
        "keys" => {
            arity(a, 1)?;
            Ok(Value::Array(
                arg_map(a, 0)?
                    .keys()
                    .map(|k| Value::String(k.clone()))
                    .collect(),
            ))
        }
        "values" => {
            arity(a, 1)?;
            Ok(Value::Array(arg_map(a, 0)?.values().cloned().collect()))
        }
        "lookup" => {
            if a.len() != 2 && a.len() != 3 {
                return Err(format!("expected 2 or 3 arguments, found {}", a.len()));
            }
            let m = arg_map(a, 0)?;
            let k = arg_str(a, 1)?;
            match (m.get(&k), a.get(2)) {
                (Some(v), _) => Ok(v.clone()),
                (None, Some(d)) => Ok(d.clone()),
                (None, None) => Err(format!("key \"{k}\" not found and no default given")),
            }
        }
        "zipmap" => {
            arity(a, 2)?;
            let k = arg_list(a, 0)?;
            let v = arg_list(a, 1)?;
            if k.len() != v.len() {
                return Err("keys and values must have the same length".into());
            }
            Ok(Value::Object(
                k.iter()
                    .map(|k| to_string_value(k).unwrap_or_default())
                    .zip(v)
                    .collect(),
            ))
        }
        _ => Err(format!("`{name}` is not one of this file's functions")),
    }
}
