//! JSON values as the HCL evaluator and its functions read them: numbers, truthiness, type
//! names, display, loose equality, iteration, and the functions' argument readers.

use hcl_edit::expr::BinaryOperator;
use serde_json::{Map, Number, Value};

pub(crate) fn num(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

pub(crate) fn as_num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

pub(crate) fn show(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The string form of a primitive (numbers and bools convert, as in HCL).
pub(crate) fn to_string_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

pub(crate) fn loose_eq(l: &Value, r: &Value) -> bool {
    match (l, r) {
        (Value::Number(_), Value::Number(_)) => as_num(l) == as_num(r),
        _ => l == r,
    }
}

/// What a `for` or `for_each` iterates over: the indexes and items of a list, or the keys and
/// values of a map. Any other value is given back as the error.
pub(crate) fn iteration_items(coll: Value) -> Result<Vec<(Value, Value)>, Value> {
    match coll {
        Value::Array(a) => Ok(a
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Value::from(i), v))
            .collect()),
        Value::Object(o) => Ok(o.into_iter().map(|(k, v)| (Value::String(k), v)).collect()),
        other => Err(other),
    }
}

pub(crate) fn arg_str(args: &[Value], i: usize) -> Result<String, String> {
    args.get(i).and_then(to_string_value).ok_or_else(|| {
        format!(
            "argument {} must be a string, found {}",
            i + 1,
            args.get(i).map(type_name).unwrap_or("nothing")
        )
    })
}

pub(crate) fn arg_num(args: &[Value], i: usize) -> Result<f64, String> {
    args.get(i).and_then(as_num).ok_or_else(|| {
        format!(
            "argument {} must be a number, found {}",
            i + 1,
            args.get(i).map(type_name).unwrap_or("nothing")
        )
    })
}

pub(crate) fn arg_list(args: &[Value], i: usize) -> Result<Vec<Value>, String> {
    match args.get(i) {
        Some(Value::Array(a)) => Ok(a.clone()),
        other => Err(format!(
            "argument {} must be a list, found {}",
            i + 1,
            other.map(type_name).unwrap_or("nothing")
        )),
    }
}

pub(crate) fn arg_map(args: &[Value], i: usize) -> Result<Map<String, Value>, String> {
    match args.get(i) {
        Some(Value::Object(o)) => Ok(o.clone()),
        other => Err(format!(
            "argument {} must be a map, found {}",
            i + 1,
            other.map(type_name).unwrap_or("nothing")
        )),
    }
}

pub(crate) fn arity(args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!("expected {n} argument(s), found {}", args.len()));
    }
    Ok(())
}

/// A binary operator applied to two evaluated operands.
pub(crate) fn binary(op: BinaryOperator, l: &Value, r: &Value) -> Result<Value, String> {
    use BinaryOperator::*;
    let nums = || -> Result<(f64, f64), String> {
        match (as_num(l), as_num(r)) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(format!(
                "expected numbers, found {} and {}",
                type_name(l),
                type_name(r)
            )),
        }
    };
    let bools = || -> Result<(bool, bool), String> {
        match (as_bool(l), as_bool(r)) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(format!(
                "expected bools, found {} and {}",
                type_name(l),
                type_name(r)
            )),
        }
    };
    Ok(match op {
        Eq => Value::Bool(loose_eq(l, r)),
        NotEq => Value::Bool(!loose_eq(l, r)),
        Less => Value::Bool({
            let (a, b) = nums()?;
            a < b
        }),
        LessEq => Value::Bool({
            let (a, b) = nums()?;
            a <= b
        }),
        Greater => Value::Bool({
            let (a, b) = nums()?;
            a > b
        }),
        GreaterEq => Value::Bool({
            let (a, b) = nums()?;
            a >= b
        }),
        Plus => {
            let (a, b) = nums()?;
            num(a + b)
        }
        Minus => {
            let (a, b) = nums()?;
            num(a - b)
        }
        Mul => {
            let (a, b) = nums()?;
            num(a * b)
        }
        Div => {
            let (a, b) = nums()?;
            if b == 0.0 {
                return Err("division by zero".into());
            }
            num(a / b)
        }
        Mod => {
            let (a, b) = nums()?;
            if b == 0.0 {
                return Err("modulo by zero".into());
            }
            num(a % b)
        }
        And => Value::Bool({
            let (a, b) = bools()?;
            a && b
        }),
        Or => Value::Bool({
            let (a, b) = bools()?;
            a || b
        }),
    })
}
