//! consul-template's pure helper functions. As in consul-template, the value
//! usually piped in is the LAST argument: `{{ "a,b" | split "," }}` is `split "," "a,b"`.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::funcs::{check_size, int_arg, str_arg, CallContext};
use crate::timefmt;
use crate::value::Value;

fn string(s: impl Into<String>) -> Result<Value, String> {
    Ok(Value::String(s.into()))
}

pub(crate) fn to_lower(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    string(str_arg(&args[0])?.to_lowercase())
}

pub(crate) fn to_upper(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    string(str_arg(&args[0])?.to_uppercase())
}

/// Upper-cases the first letter of each word and leaves the rest as is.
pub(crate) fn to_title(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let mut out = String::new();
    let mut in_word = false;
    for c in str_arg(&args[0])?.chars() {
        if !in_word && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        in_word = c.is_alphanumeric() || c == '\'' || c == '’';
    }
    string(out)
}

pub(crate) fn trim_space(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    string(str_arg(&args[0])?.trim())
}

pub(crate) fn trim(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let cutset: Vec<char> = str_arg(&args[0])?.chars().collect();
    string(str_arg(&args[1])?.trim_matches(cutset.as_slice()))
}

pub(crate) fn trim_prefix(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let (prefix, s) = (str_arg(&args[0])?, str_arg(&args[1])?);
    string(s.strip_prefix(prefix).unwrap_or(s))
}

pub(crate) fn trim_suffix(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let (suffix, s) = (str_arg(&args[0])?, str_arg(&args[1])?);
    string(s.strip_suffix(suffix).unwrap_or(s))
}

/// `split sep s`: white space around `s` is trimmed; an empty `s` gives an empty list.
pub(crate) fn split(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let (sep, s) = (str_arg(&args[0])?, str_arg(&args[1])?.trim());
    if s.is_empty() {
        return Ok(Value::list(Vec::new()));
    }
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep).map(Value::from).collect()
    };
    Ok(Value::list(parts))
}

/// `splitToMap sep1 sep2 s`: `"a=1,b=2"` to `map[a:1 b:2]`; pieces without `sep2` are skipped.
pub(crate) fn split_to_map(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let (sep1, sep2) = (str_arg(&args[0])?, str_arg(&args[1])?);
    let s = str_arg(&args[2])?.trim();
    if s.is_empty() || sep1.is_empty() || sep2.is_empty() {
        return Ok(Value::map(Vec::<(String, Value)>::new()));
    }
    let pairs = s
        .split(sep1)
        .filter_map(|piece| piece.split_once(sep2))
        .map(|(k, v)| (k.to_string(), Value::from(v)));
    Ok(Value::map(pairs))
}

/// `join sep list`: list items printed as Go's `%v` and joined.
pub(crate) fn join(ctx: &CallContext, args: &[Value]) -> Result<Value, String> {
    let sep = str_arg(&args[0])?;
    let Value::List(items) = &args[1] else {
        return Err(format!(
            "wrong type for value; expected []string; got {}",
            args[1].type_name()
        ));
    };
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&item.to_go_string());
        check_size(ctx, out.len())?;
    }
    string(out)
}

/// `replaceAll old new s`.
pub(crate) fn replace_all(ctx: &CallContext, args: &[Value]) -> Result<Value, String> {
    let (from, to, s) = (str_arg(&args[0])?, str_arg(&args[1])?, str_arg(&args[2])?);
    let count = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from).count()
    };
    let growth = count.saturating_mul(to.len());
    check_size(ctx, s.len().saturating_add(growth))?;
    string(s.replace(from, to))
}

fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// `regexMatch pattern s`.
pub(crate) fn regex_match(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let re = compile(str_arg(&args[0])?)?;
    Ok(Value::Bool(re.is_match(str_arg(&args[1])?)))
}

/// `regexReplaceAll pattern replacement s`; `$1` / `${name}` expand as in Go.
pub(crate) fn regex_replace_all(ctx: &CallContext, args: &[Value]) -> Result<Value, String> {
    let re = compile(str_arg(&args[0])?)?;
    let (replacement, s) = (str_arg(&args[1])?, str_arg(&args[2])?);
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(s) {
        let Some(whole) = caps.get(0) else { continue };
        out.push_str(&s[last..whole.start()]);
        caps.expand(replacement, &mut out);
        last = whole.end();
        check_size(ctx, out.len())?;
    }
    out.push_str(&s[last..]);
    check_size(ctx, out.len())?;
    string(out)
}

/// consul-template's `in`: list membership (same type) or substring.
fn contained(haystack: &Value, needle: &Value) -> bool {
    match haystack {
        Value::List(items) => items.iter().any(|item| match (item, needle) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            _ => false,
        }),
        Value::String(s) => matches!(needle, Value::String(n) if s.contains(n.as_str())),
        _ => false,
    }
}

/// `contains needle haystack` (so `{{ .Tags | contains "x" }}`).
pub(crate) fn contains(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(contained(&args[1], &args[0])))
}

/// `in haystack needle` (so `{{ "x" | in .Tags }}`).
pub(crate) fn in_(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(contained(&args[0], &args[1])))
}

fn needles(value: &Value) -> Result<&[Value], String> {
    match value {
        Value::List(items) => Ok(items),
        other => Err(format!(
            "wrong type for value; expected []interface {{}}; got {}",
            other.type_name()
        )),
    }
}

/// `containsAll needles haystack`: every needle is in the haystack.
pub(crate) fn contains_all(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let found = needles(&args[0])?.iter().all(|n| contained(&args[1], n));
    Ok(Value::Bool(found))
}

/// `containsAny needles haystack`: some needle is in the haystack.
pub(crate) fn contains_any(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let found = needles(&args[0])?.iter().any(|n| contained(&args[1], n));
    Ok(Value::Bool(found))
}

/// `containsNone needles haystack`: no needle is in the haystack.
pub(crate) fn contains_none(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let found = needles(&args[0])?.iter().any(|n| contained(&args[1], n));
    Ok(Value::Bool(!found))
}

/// `containsNotAll needles haystack`: some needle is missing from the haystack.
pub(crate) fn contains_not_all(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let all = needles(&args[0])?.iter().all(|n| contained(&args[1], n));
    Ok(Value::Bool(!all))
}

pub(crate) fn base64_encode(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    string(base64::engine::general_purpose::STANDARD.encode(str_arg(&args[0])?))
}

pub(crate) fn base64_url_encode(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    string(base64::engine::general_purpose::URL_SAFE.encode(str_arg(&args[0])?))
}

fn decoded(bytes: Result<Vec<u8>, base64::DecodeError>, name: &str) -> Result<Value, String> {
    let bytes = bytes.map_err(|e| format!("{name}: {e}"))?;
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| format!("{name}: decoded bytes are not UTF-8 text"))
}

pub(crate) fn base64_decode(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let input = str_arg(&args[0])?;
    decoded(
        base64::engine::general_purpose::STANDARD.decode(input),
        "base64Decode",
    )
}

pub(crate) fn base64_url_decode(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let input = str_arg(&args[0])?;
    decoded(
        base64::engine::general_purpose::URL_SAFE.decode(input),
        "base64URLDecode",
    )
}

pub(crate) fn sha256_hex(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let digest = Sha256::digest(str_arg(&args[0])?.as_bytes());
    string(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
}

/// JSON as Go's encoder writes it: map keys sorted, integral floats without `.0`.
fn go_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => serde_json::Value::from(*f as i64),
        Value::List(items) => serde_json::Value::Array(items.iter().map(go_json).collect()),
        Value::Map(map) => serde_json::Value::Object(
            Value::sorted_entries(map)
                .into_iter()
                .map(|(k, v)| (k.clone(), go_json(v)))
                .collect(),
        ),
        other => serde_json::Value::from(other),
    }
}

/// Go's `json.Marshal` escapes `<`, `>`, `&` (they only occur inside JSON strings).
fn escape_html(json: String) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

pub(crate) fn to_json(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let json = serde_json::to_string(&go_json(&args[0])).map_err(|e| e.to_string())?;
    string(escape_html(json))
}

pub(crate) fn to_json_pretty(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let json = serde_json::to_string_pretty(&go_json(&args[0])).map_err(|e| e.to_string())?;
    string(escape_html(json))
}

pub(crate) fn to_unescaped_json(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    serde_json::to_string(&go_json(&args[0]))
        .map(Value::String)
        .map_err(|e| e.to_string())
}

pub(crate) fn to_unescaped_json_pretty(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    serde_json::to_string_pretty(&go_json(&args[0]))
        .map(Value::String)
        .map_err(|e| e.to_string())
}

pub(crate) fn to_yaml(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let yaml = serde_saphyr::to_string(&go_json(&args[0])).map_err(|e| e.to_string())?;
    string(yaml.trim())
}

/// `parseJSON s`; an empty string gives an empty map, as in consul-template.
pub(crate) fn parse_json(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let s = str_arg(&args[0])?;
    if s.is_empty() {
        return Ok(Value::map(Vec::<(String, Value)>::new()));
    }
    let json: serde_json::Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
    Ok(Value::from(json))
}

pub(crate) fn parse_int(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let s = str_arg(&args[0])?;
    if s.is_empty() {
        return Ok(Value::Int(0));
    }
    s.parse::<i64>()
        .map(Value::Int)
        .map_err(|e| format!("parseInt: parsing {s:?}: {e}"))
}

/// `parseUint`: values above `i64::MAX` are refused (values hold signed integers).
pub(crate) fn parse_uint(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let s = str_arg(&args[0])?;
    if s.is_empty() {
        return Ok(Value::Int(0));
    }
    let n = s
        .parse::<u64>()
        .map_err(|e| format!("parseUint: parsing {s:?}: {e}"))?;
    i64::try_from(n)
        .map(Value::Int)
        .map_err(|_| format!("parseUint: parsing {s:?}: value out of range"))
}

pub(crate) fn parse_float(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let s = str_arg(&args[0])?;
    if s.is_empty() {
        return Ok(Value::Float(0.0));
    }
    s.parse::<f64>()
        .map(Value::Float)
        .map_err(|e| format!("parseFloat: parsing {s:?}: {e}"))
}

/// Go's `strconv.ParseBool` spellings; an empty string is false.
pub(crate) fn parse_bool(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let s = str_arg(&args[0])?;
    match s {
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
        _ => Err(format!("parseBool: parsing {s:?}: invalid syntax")),
    }
}

enum Num {
    Int(i64),
    Float(f64),
}

fn num(value: &Value, name: &str) -> Result<Num, String> {
    match value {
        Value::Int(i) => Ok(Num::Int(*i)),
        Value::Float(f) => Ok(Num::Float(*f)),
        other => Err(format!(
            "{name}: unknown type for {} ({})",
            other.to_go_string(),
            other.type_name()
        )),
    }
}

/// Applies integer or float arithmetic to `(a, b)` where the template wrote `op b a`.
fn arithmetic(
    args: &[Value],
    name: &str,
    int_op: fn(i64, i64) -> Option<i64>,
    float_op: fn(f64, f64) -> f64,
) -> Result<Value, String> {
    let (b, a) = (num(&args[0], name)?, num(&args[1], name)?);
    match (a, b) {
        (Num::Int(a), Num::Int(b)) => int_op(a, b)
            .map(Value::Int)
            .ok_or_else(|| format!("{name}: integer overflow or division by zero")),
        (Num::Int(a), Num::Float(b)) => Ok(Value::Float(float_op(a as f64, b))),
        (Num::Float(a), Num::Int(b)) => Ok(Value::Float(float_op(a, b as f64))),
        (Num::Float(a), Num::Float(b)) => Ok(Value::Float(float_op(a, b))),
    }
}

/// `add b a` is `a + b`.
pub(crate) fn add(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    arithmetic(args, "add", i64::checked_add, |a, b| a + b)
}

/// `subtract b a` is `a - b` (so `{{ 5 | subtract 2 }}` is 3).
pub(crate) fn subtract(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    arithmetic(args, "subtract", i64::checked_sub, |a, b| a - b)
}

pub(crate) fn multiply(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    arithmetic(args, "multiply", i64::checked_mul, |a, b| a * b)
}

/// `divide b a` is `a / b` (so `{{ 10 | divide 2 }}` is 5).
pub(crate) fn divide(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    arithmetic(args, "divide", i64::checked_div, |a, b| a / b)
}

/// `modulo b a` is `a % b`, integers only.
pub(crate) fn modulo(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    match (num(&args[1], "modulo")?, num(&args[0], "modulo")?) {
        (Num::Int(a), Num::Int(b)) => a
            .checked_rem(b)
            .map(Value::Int)
            .ok_or_else(|| "modulo: integer overflow or division by zero".to_string()),
        _ => Err("modulo: both arguments must be integers".to_string()),
    }
}

fn pick(args: &[Value], name: &str, want_smaller: bool) -> Result<Value, String> {
    let as_f64 = |n: &Num| match n {
        Num::Int(i) => *i as f64,
        Num::Float(f) => *f,
    };
    let (b, a) = (num(&args[0], name)?, num(&args[1], name)?);
    let a_wins = match (&a, &b) {
        (Num::Int(x), Num::Int(y)) => (x < y) == want_smaller && x != y,
        _ => (as_f64(&a) < as_f64(&b)) == want_smaller && as_f64(&a) != as_f64(&b),
    };
    Ok(if a_wins {
        args[1].clone()
    } else {
        args[0].clone()
    })
}

pub(crate) fn minimum(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    pick(args, "minimum", true)
}

pub(crate) fn maximum(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    pick(args, "maximum", false)
}

/// `indent n s`: prefixes every non-empty line with `n` spaces.
pub(crate) fn indent(ctx: &CallContext, args: &[Value]) -> Result<Value, String> {
    let spaces = int_arg(&args[0])?;
    let spaces = usize::try_from(spaces)
        .map_err(|_| "indent value must be a positive integer".to_string())?;
    let s = str_arg(&args[1])?;
    let lines = s.matches('\n').count() + 1;
    check_size(ctx, s.len().saturating_add(lines.saturating_mul(spaces)))?;
    let prefix = " ".repeat(spaces);
    let mut out = String::with_capacity(s.len() + lines * spaces);
    let mut at_line_start = true;
    for c in s.chars() {
        if at_line_start && c != '\n' {
            out.push_str(&prefix);
        }
        out.push(c);
        at_line_start = c == '\n';
    }
    string(out)
}

fn loop_bound(value: &Value) -> Result<i64, String> {
    match value {
        Value::String(s) => s
            .parse::<i64>()
            .map_err(|e| format!("loop: parsing {s:?}: {e}")),
        other => {
            int_arg(other).map_err(|_| format!("loop: bad argument type: {}", other.type_name()))
        }
    }
}

/// `loop n` is `0..n`; `loop a b` is `a..b`. The length is bounded by the iteration limit.
pub(crate) fn loop_(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let (start, stop) = match args {
        [stop] => (0, loop_bound(stop)?),
        [start, stop] => (loop_bound(start)?, loop_bound(stop)?),
        _ => {
            return Err(format!(
                "loop: wrong number of arguments, expected 1 or 2, but got {}",
                args.len()
            ))
        }
    };
    let count = stop.saturating_sub(start).max(0);
    if count as u64 > crate::MAX_RANGE_ITERATIONS as u64 {
        return Err(format!(
            "loop of {count} items exceeds the limit of {} iterations",
            crate::MAX_RANGE_ITERATIONS
        ));
    }
    Ok(Value::list((start..stop).map(Value::Int).collect()))
}

/// `byTag services`: groups items (maps with a `Tags` list) by each of their tags.
pub(crate) fn by_tag(_: &CallContext, args: &[Value]) -> Result<Value, String> {
    let items = needles(&args[0])?;
    let mut groups: indexmap::IndexMap<String, Vec<Value>> = indexmap::IndexMap::new();
    for item in items {
        let Value::Map(fields) = item else {
            return Err(format!(
                "byTag: expected a list of maps, found {}",
                item.type_name()
            ));
        };
        let Some(Value::List(tags)) = fields.get("Tags") else {
            continue;
        };
        let mut seen = std::collections::BTreeSet::new();
        for tag in tags.iter().filter_map(Value::as_str) {
            if seen.insert(tag) {
                groups
                    .entry(tag.to_string())
                    .or_default()
                    .push(item.clone());
            }
        }
    }
    groups.sort_keys();
    Ok(Value::map(
        groups.into_iter().map(|(k, v)| (k, Value::list(v))),
    ))
}

/// `timestamp` (RFC 3339), `timestamp "unix"`, or `timestamp "<Go layout>"`, in UTC.
pub(crate) fn timestamp(ctx: &CallContext, args: &[Value]) -> Result<Value, String> {
    let now = ctx.now.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    match args.first() {
        None => string(timefmt::format(timefmt::RFC3339, &now)),
        Some(layout) => match str_arg(layout)? {
            "unix" => string(ctx.now.as_second().to_string()),
            layout => string(timefmt::format(layout, &now)),
        },
    }
}
