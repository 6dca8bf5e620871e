//! Go text/template's built-in functions: comparisons, `len`, `index`, `slice`,
//! the `print` family and the `html`/`js`/`urlquery` escapers.

use std::cmp::Ordering;

use crate::funcs::{check_size, int_arg, CallContext};
use crate::printf::sprintf;
use crate::value::Value;

/// `and` and `or` short-circuit, so the evaluator runs them; this is never reached.
pub(crate) fn and_or_placeholder(_: &CallContext, _: &[Value]) -> Result<Value, String> {
    Err("and/or must be evaluated lazily".to_string())
}

pub(crate) fn not(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(!args[0].is_truthy()))
}

pub(crate) fn len(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let n = match &args[0] {
        Value::String(s) => s.len(),
        Value::List(items) => items.len(),
        Value::Map(map) => map.len(),
        Value::Null => return Err("len of untyped nil".to_string()),
        other => return Err(format!("len of type {}", other.type_name())),
    };
    Ok(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// `index x 1 "k"`: successive list, map or string indexing.
pub(crate) fn index(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let mut item = args[0].clone();
    for key in &args[1..] {
        item = match &item {
            Value::List(items) => {
                let i = list_index(key, items.len())?;
                items[i].clone()
            }
            Value::String(s) => {
                let i = list_index(key, s.len())?;
                Value::Int(i64::from(s.as_bytes()[i]))
            }
            Value::Map(map) => match key {
                Value::String(k) => map.get(k).cloned().unwrap_or(Value::Null),
                other => {
                    return Err(format!(
                        "value has type {}; should be string",
                        other.type_name()
                    ))
                }
            },
            Value::Null => return Err("index of untyped nil".to_string()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn list_index(key: &Value, len: usize) -> Result<usize, String> {
    let i = int_arg(key)
        .map_err(|_| format!("cannot index slice/array with type {}", key.type_name()))?;
    usize::try_from(i)
        .ok()
        .filter(|i| *i < len)
        .ok_or_else(|| format!("index out of range: {i}"))
}

/// `slice x 1 2`: `x[1:2]` of a string or list.
pub(crate) fn slice(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let item = &args[0];
    let len = match item {
        Value::String(s) => s.len(),
        Value::List(items) => items.len(),
        Value::Null => return Err("slice of untyped nil".to_string()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    if args.len() > 3 && matches!(item, Value::String(_)) {
        return Err("cannot 3-index slice a string".to_string());
    }
    let mut bounds = [0, len, len];
    for (slot, arg) in args[1..].iter().enumerate() {
        let i = int_arg(arg)?;
        let i = usize::try_from(i)
            .ok()
            .filter(|i| *i <= len)
            .ok_or_else(|| format!("index out of range: {i}"))?;
        bounds[slot] = i;
    }
    if bounds[0] > bounds[1] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[0], bounds[1]
        ));
    }
    if args.len() > 3 && bounds[1] > bounds[2] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[1], bounds[2]
        ));
    }
    match item {
        Value::String(s) => s
            .get(bounds[0]..bounds[1])
            .map(|part| Value::String(part.to_string()))
            .ok_or_else(|| "slice bounds are not on character boundaries".to_string()),
        Value::List(items) => Ok(Value::list(items[bounds[0]..bounds[1]].to_vec())),
        _ => Err(format!("can't slice item of type {}", item.type_name())),
    }
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
pub(crate) fn sprint(ctx: &CallContext, args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::String(_));
        if i > 0 && !is_string && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        out.push_str(&arg.to_go_string());
        check_size(ctx, out.len())?;
    }
    Ok(out)
}

pub(crate) fn print(ctx: &CallContext, args: &[Value]) -> Result<Value, String> {
    sprint(ctx, args).map(Value::String)
}

pub(crate) fn println(ctx: &CallContext, args: &[Value]) -> Result<Value, String> {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&arg.to_go_string());
        check_size(ctx, out.len())?;
    }
    out.push('\n');
    Ok(Value::String(out))
}

pub(crate) fn printf(ctx: &CallContext, args: &[Value]) -> Result<Value, String> {
    let format = match &args[0] {
        Value::String(s) => s,
        other => {
            return Err(format!(
                "wrong type for value; expected string; got {}",
                other.type_name()
            ))
        }
    };
    sprintf(format, &args[1..], ctx.max_bytes).map(Value::String)
}

/// Go's `eq`: true when the first argument equals any of the others.
pub(crate) fn eq(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    if args.len() < 2 {
        return Err("missing argument for comparison".to_string());
    }
    for other in &args[1..] {
        if equal(&args[0], other)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

pub(crate) fn ne(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(!equal(&args[0], &args[1])?))
}

fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => Ok(matches!((a, b), (Value::Null, Value::Null))),
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => Ok(*x as f64 == *y),
        _ if std::mem::discriminant(a) == std::mem::discriminant(b) => Ok(a == b),
        _ => Err("incompatible types for comparison".to_string()),
    }
}

fn ordering(a: &Value, b: &Value) -> Result<Ordering, String> {
    let order = match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (
            Value::Int(_) | Value::Float(_) | Value::String(_),
            Value::Int(_) | Value::Float(_) | Value::String(_),
        ) => return Err("incompatible types for comparison".to_string()),
        _ => return Err("invalid type for comparison".to_string()),
    };
    // NaN compares as neither less nor greater, as in Go.
    Ok(order.unwrap_or(Ordering::Equal))
}

pub(crate) fn lt(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(ordering(&args[0], &args[1])? == Ordering::Less))
}

pub(crate) fn le(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(
        ordering(&args[0], &args[1])? != Ordering::Greater,
    ))
}

pub(crate) fn gt(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(
        ordering(&args[0], &args[1])? == Ordering::Greater,
    ))
}

pub(crate) fn ge(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(ordering(&args[0], &args[1])? != Ordering::Less))
}

/// The escapers take one string as is, or `fmt.Sprint` of all their arguments.
fn escaper_input(ctx: &CallContext, args: &[Value]) -> Result<String, String> {
    match args {
        [Value::String(s)] => Ok(s.clone()),
        _ => sprint(ctx, args),
    }
}

pub(crate) fn html(ctx: &CallContext, args: &[Value]) -> Result<Value, String> {
    let input = escaper_input(ctx, args)?;
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Ok(Value::String(out))
}

pub(crate) fn js(ctx: &CallContext, args: &[Value]) -> Result<Value, String> {
    let input = escaper_input(ctx, args)?;
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' | '>' | '&' | '=' => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c if c < ' ' || c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    Ok(Value::String(out))
}

pub(crate) fn urlquery(ctx: &CallContext, args: &[Value]) -> Result<Value, String> {
    let input = escaper_input(ctx, args)?;
    let mut out = String::with_capacity(input.len());
    for byte in input.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    Ok(Value::String(out))
}
