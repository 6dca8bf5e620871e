//! The list functions: `concat`, `length`, `element`, `contains`, `index`, `coalesce`,
//! `flatten`, `reverse`, `sort`, `compact`, `slice`.

use serde_json::Value;

use super::super::value::*;
use crate::frontend::ParseOptions;

/// The functions this file answers for.
pub(super) const NAMES: &[&str] = &[
    "concat", "length", "element", "contains", "index", "coalesce", "flatten", "reverse", "sort",
    "compact", "slice",
];

/// Calls one of [`NAMES`].
pub(super) fn call(name: &str, a: &[Value], _options: &ParseOptions) -> Result<Value, String> {
    match name {
        "concat" => {
            let mut out = Vec::new();
            for i in 0..a.len() {
                out.extend(arg_list(a, i)?);
            }
            Ok(Value::Array(out))
        }
        "length" => {
            arity(a, 1)?;
            Ok(Value::from(match &a[0] {
                Value::Array(x) => x.len(),
                Value::Object(o) => o.len(),
                Value::String(st) => st.chars().count(),
                other => return Err(format!("cannot take the length of {}", type_name(other))),
            }))
        }
        "element" => {
            arity(a, 2)?;
            let l = arg_list(a, 0)?;
            if l.is_empty() {
                return Err("cannot use element() on an empty list".into());
            }
            let i = arg_num(a, 1)?;
            if i < 0.0 {
                return Err("index must not be negative".into());
            }
            Ok(l[(i as usize) % l.len()].clone())
        }
        "contains" => {
            arity(a, 2)?;
            Ok(Value::Bool(
                arg_list(a, 0)?.iter().any(|v| loose_eq(v, &a[1])),
            ))
        }
        "index" => {
            arity(a, 2)?;
            arg_list(a, 0)?
                .iter()
                .position(|v| loose_eq(v, &a[1]))
                .map(Value::from)
                .ok_or_else(|| "item not found".to_string())
        }
        "coalesce" => a
            .iter()
            .find(|v| !v.is_null() && v.as_str() != Some(""))
            .cloned()
            .ok_or_else(|| "no non-null, non-empty argument".into()),
        "flatten" => {
            arity(a, 1)?;
            fn flat(v: Vec<Value>, out: &mut Vec<Value>) {
                for x in v {
                    match x {
                        Value::Array(inner) => flat(inner, out),
                        other => out.push(other),
                    }
                }
            }
            let mut out = Vec::new();
            flat(arg_list(a, 0)?, &mut out);
            Ok(Value::Array(out))
        }
        "reverse" => {
            arity(a, 1)?;
            let mut l = arg_list(a, 0)?;
            l.reverse();
            Ok(Value::Array(l))
        }
        "sort" => {
            arity(a, 1)?;
            let mut l: Vec<String> = arg_list(a, 0)?
                .iter()
                .map(|v| to_string_value(v).unwrap_or_default())
                .collect();
            l.sort();
            Ok(Value::Array(l.into_iter().map(Value::String).collect()))
        }
        "compact" => {
            arity(a, 1)?;
            Ok(Value::Array(
                arg_list(a, 0)?
                    .into_iter()
                    .filter(|v| !v.is_null() && v.as_str() != Some(""))
                    .collect(),
            ))
        }
        "slice" => {
            arity(a, 3)?;
            let l = arg_list(a, 0)?;
            let (from, to) = (arg_num(a, 1)? as usize, arg_num(a, 2)? as usize);
            if from > to || to > l.len() {
                return Err(format!(
                    "indexes {from}..{to} out of range for a list of {}",
                    l.len()
                ));
            }
            Ok(Value::Array(l[from..to].to_vec()))
        }
        _ => Err(format!("`{name}` is not one of this file's functions")),
    }
}
