//! The numeric functions: `min` / `max`, `abs`, `ceil` / `floor`, `signum`, `pow`, `log`,
//! `parseint`, and `range` (a list of numbers).

use serde_json::Value;

use super::super::value::*;
use crate::frontend::ParseOptions;

/// The functions this file answers for.
pub(super) const NAMES: &[&str] = &[
    "min", "max", "abs", "ceil", "floor", "signum", "pow", "log", "parseint", "range",
];

/// Calls one of [`NAMES`].
pub(super) fn call(name: &str, a: &[Value], _options: &ParseOptions) -> Result<Value, String> {
    match name {
        "min" | "max" => {
            if a.is_empty() {
                return Err("expected at least one argument".into());
            }
            let mut best = arg_num(a, 0)?;
            for i in 1..a.len() {
                let x = arg_num(a, i)?;
                best = if name == "min" {
                    best.min(x)
                } else {
                    best.max(x)
                };
            }
            Ok(num(best))
        }
        "abs" => {
            arity(a, 1)?;
            Ok(num(arg_num(a, 0)?.abs()))
        }
        "ceil" => {
            arity(a, 1)?;
            Ok(num(arg_num(a, 0)?.ceil()))
        }
        "floor" => {
            arity(a, 1)?;
            Ok(num(arg_num(a, 0)?.floor()))
        }
        "signum" => {
            arity(a, 1)?;
            Ok(num(arg_num(a, 0)?.signum()))
        }
        "pow" => {
            arity(a, 2)?;
            Ok(num(arg_num(a, 0)?.powf(arg_num(a, 1)?)))
        }
        "log" => {
            arity(a, 2)?;
            Ok(num(arg_num(a, 0)?.log(arg_num(a, 1)?)))
        }
        "parseint" => {
            arity(a, 2)?;
            let base = arg_num(a, 1)? as u32;
            if !(2..=36).contains(&base) {
                return Err("base must be between 2 and 36".into());
            }
            i64::from_str_radix(&arg_str(a, 0)?, base)
                .map(Value::from)
                .map_err(|e| e.to_string())
        }
        "range" => {
            let (start, end, step) = match a.len() {
                1 => (0.0, arg_num(a, 0)?, 1.0),
                2 => (arg_num(a, 0)?, arg_num(a, 1)?, 1.0),
                3 => (arg_num(a, 0)?, arg_num(a, 1)?, arg_num(a, 2)?),
                n => return Err(format!("expected 1 to 3 arguments, found {n}")),
            };
            if step == 0.0 {
                return Err("step must not be 0".into());
            }
            let mut out = Vec::new();
            let mut x = start;
            while (step > 0.0 && x < end) || (step < 0.0 && x > end) {
                if out.len() >= 1024 {
                    return Err("range too long (more than 1024 items)".into());
                }
                out.push(num(x));
                x += step;
            }
            Ok(Value::Array(out))
        }
        _ => Err(format!("`{name}` is not one of this file's functions")),
    }
}
