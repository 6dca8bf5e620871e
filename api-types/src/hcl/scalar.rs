//! Converts an evaluated attribute value to the kind its schema field declares (a string, a
//! whole number or port, a bool, a duration in nanoseconds, a list or map of strings). Pure:
//! problems come back as messages, which the decoder reports at the attribute.

use serde_json::{Map, Value};

use super::schema::Kind;
use super::value::{as_bool, as_num, to_string_value, type_name};

/// `v` as the field `name` of kind `kind` wants it; `None` when it cannot be, with the reason
/// in `problems`. A map of strings keeps its good entries and reports each bad one.
pub(super) fn convert(
    v: Value,
    kind: Kind,
    name: &str,
    problems: &mut Vec<String>,
) -> Option<Value> {
    let converted = match kind {
        Kind::Str => string(v, name),
        Kind::UInt | Kind::Int | Kind::Port => whole_number(v, kind, name),
        Kind::Bool => match as_bool(&v) {
            Some(b) => Ok(Value::Bool(b)),
            None => Err(format!(
                "{name}: expected true or false, found {}",
                found(&v)
            )),
        },
        Kind::Dur => duration(v, name),
        Kind::StrList => str_list(v, name),
        Kind::StrMap => return str_map(v, name, problems),
        _ => Ok(v),
    };
    converted.map_err(|p| problems.push(p)).ok()
}

/// A value as the messages show it: strings quoted, everything else as JSON.
fn found(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn string(v: Value, name: &str) -> Result<Value, String> {
    match to_string_value(&v) {
        Some(s) if !v.is_null() => Ok(Value::String(s)),
        _ => Err(format!(
            "{name}: expected a string, found {}",
            type_name(&v)
        )),
    }
}

/// A whole number in range for its kind: non-negative for `UInt`, 0 to 65535 for `Port`, and
/// within 32 bits for all.
fn whole_number(v: Value, kind: Kind, name: &str) -> Result<Value, String> {
    let n = match as_num(&v) {
        Some(n) if n.fract() == 0.0 => n,
        _ => {
            return Err(format!(
                "{name}: expected a whole number, found {}",
                found(&v)
            ))
        }
    };
    if matches!(kind, Kind::UInt | Kind::Port) && n < 0.0 {
        return Err(format!(
            "{name}: expected a non-negative whole number, found {}",
            found(&v)
        ));
    }
    if matches!(kind, Kind::Port) && n > 65535.0 {
        return Err(format!(
            "{name}: port out of range: expected 0 to 65535, found {}",
            found(&v)
        ));
    }
    if n > u32::MAX as f64 || n < i32::MIN as f64 {
        return Err(format!("{name}: number out of range, found {}", found(&v)));
    }
    Ok(Value::from(n as i64))
}

/// A duration string (`"30s"`) as nanoseconds; a whole number is taken as nanoseconds already.
fn duration(v: Value, name: &str) -> Result<Value, String> {
    match &v {
        Value::String(s) => crate::duration::parse_duration(s)
            .map(Value::from)
            .map_err(|e| format!("{name}: {e}")),
        Value::Number(n) if n.as_u64().is_some() => Ok(v),
        _ => Err(format!(
            "{name}: expected a duration such as \"30s\", found {}",
            found(&v)
        )),
    }
}

/// A list of strings; a single string is a list of one.
fn str_list(v: Value, name: &str) -> Result<Value, String> {
    let items = match v {
        Value::Array(items) => items,
        Value::String(_) => vec![v],
        other => {
            return Err(format!(
                "{name}: expected a list of strings, found {}",
                type_name(&other)
            ))
        }
    };
    let mut out = Vec::new();
    for it in items {
        match (&it, to_string_value(&it)) {
            (Value::Null, _) | (_, None) => {
                return Err(format!(
                    "{name}: expected a list of strings, found an item of type {}",
                    type_name(&it)
                ))
            }
            (_, Some(s)) => out.push(Value::String(s)),
        }
    }
    Ok(Value::Array(out))
}

/// A map of strings: its entries that are strings (or convert to one); each other entry is a
/// problem and is left out.
pub(super) fn str_map(v: Value, name: &str, problems: &mut Vec<String>) -> Option<Value> {
    let Value::Object(m) = v else {
        problems.push(format!(
            "{name}: expected a map of strings, found {}",
            type_name(&v)
        ));
        return None;
    };
    let mut out = Map::new();
    for (k, val) in m {
        match to_string_value(&val) {
            Some(s) if !val.is_null() => {
                out.insert(k, Value::String(s));
            }
            _ => problems.push(format!(
                "{name}.{k}: expected a string, found {}",
                type_name(&val)
            )),
        }
    }
    Some(Value::Object(out))
}
