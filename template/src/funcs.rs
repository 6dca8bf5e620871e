//! The function table: every built-in name with its argument count, the
//! dispatch from name to implementation, and argument conversion helpers.
//!
//! Go's own built-ins live in [`crate::builtins`], consul-template's in
//! [`crate::consul`]. `and` and `or` are evaluated lazily by the evaluator.

use crate::value::Value;
use crate::{builtins, consul};

/// What a function may need besides its arguments.
pub(crate) struct CallContext {
    /// The clock `timestamp` reads.
    pub(crate) now: jiff::Timestamp,
    /// The largest string a function may build.
    pub(crate) max_bytes: usize,
}

/// A function implementation: arguments in, value or message out.
type Func = fn(&CallContext, &[Value]) -> Result<Value, String>;

/// Name, minimum and maximum (`None`: unbounded) argument count, implementation.
const TABLE: &[(&str, usize, Option<usize>, Func)] = &[
    // Go text/template built-ins.
    ("and", 1, None, builtins::and_or_placeholder),
    ("or", 1, None, builtins::and_or_placeholder),
    ("not", 1, Some(1), builtins::not),
    ("len", 1, Some(1), builtins::len),
    ("index", 1, None, builtins::index),
    ("slice", 1, Some(4), builtins::slice),
    ("print", 0, None, builtins::print),
    ("printf", 1, None, builtins::printf),
    ("println", 0, None, builtins::println),
    ("eq", 1, None, builtins::eq),
    ("ne", 2, Some(2), builtins::ne),
    ("lt", 2, Some(2), builtins::lt),
    ("le", 2, Some(2), builtins::le),
    ("gt", 2, Some(2), builtins::gt),
    ("ge", 2, Some(2), builtins::ge),
    ("html", 0, None, builtins::html),
    ("js", 0, None, builtins::js),
    ("urlquery", 0, None, builtins::urlquery),
    // consul-template's pure functions (the piped value comes last).
    ("toLower", 1, Some(1), consul::to_lower),
    ("toUpper", 1, Some(1), consul::to_upper),
    ("toTitle", 1, Some(1), consul::to_title),
    ("trimSpace", 1, Some(1), consul::trim_space),
    ("trim", 2, Some(2), consul::trim),
    ("trimPrefix", 2, Some(2), consul::trim_prefix),
    ("trimSuffix", 2, Some(2), consul::trim_suffix),
    ("split", 2, Some(2), consul::split),
    ("splitToMap", 3, Some(3), consul::split_to_map),
    ("join", 2, Some(2), consul::join),
    ("replaceAll", 3, Some(3), consul::replace_all),
    ("regexMatch", 2, Some(2), consul::regex_match),
    ("regexReplaceAll", 3, Some(3), consul::regex_replace_all),
    ("contains", 2, Some(2), consul::contains),
    ("in", 2, Some(2), consul::in_),
    ("containsAll", 2, Some(2), consul::contains_all),
    ("containsAny", 2, Some(2), consul::contains_any),
    ("containsNone", 2, Some(2), consul::contains_none),
    ("containsNotAll", 2, Some(2), consul::contains_not_all),
    ("base64Encode", 1, Some(1), consul::base64_encode),
    ("base64Decode", 1, Some(1), consul::base64_decode),
    ("base64URLEncode", 1, Some(1), consul::base64_url_encode),
    ("base64URLDecode", 1, Some(1), consul::base64_url_decode),
    ("sha256Hex", 1, Some(1), consul::sha256_hex),
    ("toJSON", 1, Some(1), consul::to_json),
    ("toJSONPretty", 1, Some(1), consul::to_json_pretty),
    ("toUnescapedJSON", 1, Some(1), consul::to_unescaped_json),
    (
        "toUnescapedJSONPretty",
        1,
        Some(1),
        consul::to_unescaped_json_pretty,
    ),
    ("toYAML", 1, Some(1), consul::to_yaml),
    ("parseJSON", 1, Some(1), consul::parse_json),
    ("parseInt", 1, Some(1), consul::parse_int),
    ("parseUint", 1, Some(1), consul::parse_uint),
    ("parseFloat", 1, Some(1), consul::parse_float),
    ("parseBool", 1, Some(1), consul::parse_bool),
    ("add", 2, Some(2), consul::add),
    ("subtract", 2, Some(2), consul::subtract),
    ("multiply", 2, Some(2), consul::multiply),
    ("divide", 2, Some(2), consul::divide),
    ("modulo", 2, Some(2), consul::modulo),
    ("minimum", 2, Some(2), consul::minimum),
    ("maximum", 2, Some(2), consul::maximum),
    ("indent", 2, Some(2), consul::indent),
    ("loop", 1, Some(2), consul::loop_),
    ("byTag", 1, Some(1), consul::by_tag),
    ("timestamp", 0, Some(1), consul::timestamp),
];

/// Why a function consul-template has is not offered (appended to the "not defined" error).
pub(crate) fn missing_hint(name: &str) -> &'static str {
    match name {
        "plugin" => ": Nomos does not run template plugins (run the command in a task instead)",
        "executeTemplate" | "writeToFile" => ": not offered by Nomos",
        "service" | "services" | "health" | "connect" | "caRoots" | "caLeaf" | "node" | "nodes" => {
            ": Consul's catalogue is not available; Nomos's own is read with nomadService and nomadServices"
        }
        "secret" | "secrets" | "pkiCert" => ": Vault is not integrated; use nomadVar",
        "tree" | "safeTree" | "safeLs" => ": not offered; use ls",
        _ => "",
    }
}

/// Whether `name` is a built-in function.
pub(crate) fn is_known(name: &str) -> bool {
    TABLE.iter().any(|(n, ..)| *n == name)
}

/// The names of all built-in functions.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(n, ..)| *n)
}

/// Calls built-in `name`; the error is the message Go would print (without position).
pub(crate) fn call(ctx: &CallContext, name: &str, args: &[Value]) -> Result<Value, String> {
    let Some((_, min, max, func)) = TABLE.iter().find(|(n, ..)| *n == name) else {
        return Err(format!("function {name:?} not defined"));
    };
    if args.len() < *min || max.is_some_and(|max| args.len() > max) {
        let want = match max {
            Some(max) if max == min => format!("{min}"),
            Some(max) => format!("{min} to {max}"),
            None => format!("at least {min}"),
        };
        return Err(format!(
            "wrong number of args for {name}: want {want} got {}",
            args.len()
        ));
    }
    func(ctx, args).map_err(|message| format!("error calling {name}: {message}"))
}

/// The argument as a string, or Go's type error.
pub(crate) fn str_arg(value: &Value) -> Result<&str, String> {
    match value {
        Value::String(s) => Ok(s),
        Value::Null => Err("invalid value; expected string".to_string()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

/// The argument as an integer (an integral float is accepted, as JSON numbers may be floats).
pub(crate) fn int_arg(value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(*f as i64),
        Value::Null => Err("invalid value; expected int".to_string()),
        other => Err(format!(
            "wrong type for value; expected int; got {}",
            other.type_name()
        )),
    }
}

/// Fails when a string a function is about to build would pass the limit.
pub(crate) fn check_size(ctx: &CallContext, size: usize) -> Result<(), String> {
    if size > ctx.max_bytes {
        return Err(format!(
            "result of {size} bytes exceeds the limit of {} bytes",
            ctx.max_bytes
        ));
    }
    Ok(())
}
