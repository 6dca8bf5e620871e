//! The string functions: case, `format`, `join` / `split`, trimming, `substr` and friends.

use serde_json::Value;

use super::super::value::*;
use crate::frontend::ParseOptions;

/// The functions this file answers for.
pub(super) const NAMES: &[&str] = &[
    "upper",
    "lower",
    "title",
    "format",
    "join",
    "split",
    "replace",
    "trimspace",
    "trim",
    "trimprefix",
    "trimsuffix",
    "chomp",
    "strrev",
    "startswith",
    "endswith",
    "substr",
];

/// Calls one of [`NAMES`].
pub(super) fn call(name: &str, a: &[Value], _options: &ParseOptions) -> Result<Value, String> {
    let s = |v: String| Ok(Value::String(v));
    match name {
        "upper" => {
            arity(a, 1)?;
            s(arg_str(a, 0)?.to_uppercase())
        }
        "lower" => {
            arity(a, 1)?;
            s(arg_str(a, 0)?.to_lowercase())
        }
        "title" => {
            arity(a, 1)?;
            s(arg_str(a, 0)?
                .split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" "))
        }
        "format" => s(format_fn(a)?),
        "join" => {
            arity(a, 2)?;
            let sep = arg_str(a, 0)?;
            let items: Vec<String> = arg_list(a, 1)?
                .iter()
                .map(|v| to_string_value(v).unwrap_or_else(|| show(v)))
                .collect();
            s(items.join(&sep))
        }
        "split" => {
            arity(a, 2)?;
            let sep = arg_str(a, 0)?;
            let st = arg_str(a, 1)?;
            if sep.is_empty() {
                return Err("separator must not be empty".into());
            }
            Ok(Value::Array(
                st.split(sep.as_str())
                    .map(|p| Value::String(p.into()))
                    .collect(),
            ))
        }
        "replace" => {
            arity(a, 3)?;
            s(arg_str(a, 0)?.replace(&arg_str(a, 1)?, &arg_str(a, 2)?))
        }
        "trimspace" => {
            arity(a, 1)?;
            s(arg_str(a, 0)?.trim().to_string())
        }
        "trim" => {
            arity(a, 2)?;
            let set: Vec<char> = arg_str(a, 1)?.chars().collect();
            s(arg_str(a, 0)?
                .trim_matches(|c| set.contains(&c))
                .to_string())
        }
        "trimprefix" => {
            arity(a, 2)?;
            let x = arg_str(a, 0)?;
            let p = arg_str(a, 1)?;
            s(x.strip_prefix(&p).unwrap_or(&x).to_string())
        }
        "trimsuffix" => {
            arity(a, 2)?;
            let x = arg_str(a, 0)?;
            let p = arg_str(a, 1)?;
            s(x.strip_suffix(&p).unwrap_or(&x).to_string())
        }
        "chomp" => {
            arity(a, 1)?;
            s(arg_str(a, 0)?.trim_end_matches(['\n', '\r']).to_string())
        }
        "strrev" => {
            arity(a, 1)?;
            s(arg_str(a, 0)?.chars().rev().collect())
        }
        "startswith" => {
            arity(a, 2)?;
            Ok(Value::Bool(arg_str(a, 0)?.starts_with(&arg_str(a, 1)?)))
        }
        "endswith" => {
            arity(a, 2)?;
            Ok(Value::Bool(arg_str(a, 0)?.ends_with(&arg_str(a, 1)?)))
        }
        "substr" => {
            arity(a, 3)?;
            let chars: Vec<char> = arg_str(a, 0)?.chars().collect();
            let off = arg_num(a, 1)? as i64;
            let len = arg_num(a, 2)? as i64;
            let start = if off < 0 {
                (chars.len() as i64 + off).max(0)
            } else {
                off.min(chars.len() as i64)
            } as usize;
            let end = if len < 0 {
                chars.len()
            } else {
                (start + len as usize).min(chars.len())
            };
            s(chars[start..end].iter().collect())
        }
        _ => Err(format!("`{name}` is not one of this file's functions")),
    }
}

pub(crate) fn format_fn(args: &[Value]) -> Result<String, String> {
    let fmt = arg_str(args, 0)?;
    let mut out = String::new();
    let mut next = 1;
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&n) = chars.peek() {
            chars.next();
            if n.is_ascii_alphabetic() || n == '%' {
                spec.push(n);
                break;
            }
            spec.push(n);
        }
        let Some(verb) = spec.chars().last() else {
            return Err(format!("format \"{fmt}\" ends with an incomplete verb"));
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args
            .get(next)
            .ok_or_else(|| format!("not enough arguments for format \"{fmt}\""))?;
        next += 1;
        let flags = &spec[..spec.len() - verb.len_utf8()];
        let left = flags.contains('-');
        let (wpart, ppart) = match flags.split_once('.') {
            Some((w, p)) => (w, Some(p)),
            None => (flags, None),
        };
        let zero = wpart.trim_start_matches('-').starts_with('0');
        let width: usize = wpart
            .trim_start_matches(['-', '+', ' ', '0'])
            .parse()
            .unwrap_or(0);
        let prec: Option<usize> = ppart.and_then(|p| p.parse().ok()).map(|p: usize| p.min(64));
        let text = match verb {
            'd' => format!("{}", as_num(arg).ok_or("%d needs a number")? as i64),
            'f' => format!(
                "{:.*}",
                prec.unwrap_or(6),
                as_num(arg).ok_or("%f needs a number")?
            ),
            'q' => {
                serde_json::to_string(&to_string_value(arg).unwrap_or_default()).unwrap_or_default()
            }
            't' => as_bool(arg).ok_or("%t needs a bool")?.to_string(),
            's' | 'v' => to_string_value(arg).unwrap_or_else(|| show(arg)),
            other => return Err(format!("unsupported format verb %{other}")),
        };
        let pad = width.saturating_sub(text.chars().count()).min(1024);
        if left {
            out.push_str(&text);
            out.push_str(&" ".repeat(pad));
        } else if zero && matches!(verb, 'd' | 'f') {
            let (sign, digits) = text
                .strip_prefix('-')
                .map(|d| ("-", d))
                .unwrap_or(("", &text));
            out.push_str(sign);
            out.push_str(&"0".repeat(pad));
            out.push_str(digits);
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(&text);
        }
    }
    Ok(out)
}
