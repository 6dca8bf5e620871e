//! The data a template reads: a JSON-like [`Value`], its Go truthiness and Go's `%v` printing.

use indexmap::IndexMap;
use std::sync::Arc;

/// A value passed to, computed in, or returned from a template.
///
/// Lists and maps sit behind `Arc` so that field access and `range` copy a
/// pointer, not the data. Maps keep their insertion order; `range`, printing and
/// `toJSON` visit keys sorted, as Go does for its maps.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// JSON `null`, Go's `nil`, and the result of reading a missing key.
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Arc<Vec<Value>>),
    Map(Arc<IndexMap<String, Value>>),
}

impl Value {
    /// A list value.
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    /// A map value from key/value pairs (later duplicates win).
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(Arc::new(
            pairs.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        ))
    }

    /// Go's truth: false, 0, 0.0, "", nil and empty lists and maps are false.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    /// The Go type name used in error messages (`string`, `int`, `[]interface {}`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
        }
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Prints like Go's `fmt.Sprint` (`%v`): `<nil>`, `[a b]`, `map[k:v]`.
    pub fn to_go_string(&self) -> String {
        let mut out = String::new();
        write_go(&mut out, self);
        out
    }

    /// The map's entries with keys in sorted order, as Go iterates maps.
    pub(crate) fn sorted_entries(map: &IndexMap<String, Value>) -> Vec<(&String, &Value)> {
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        entries
    }
}

fn write_go(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&format_float_shortest(*f)),
        Value::String(s) => out.push_str(s),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(out, item);
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push_str("map[");
            for (i, (k, v)) in Value::sorted_entries(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go(out, v);
            }
            out.push(']');
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`: shortest digits, exponent form
/// when the exponent is below -4 or at least 6 (`1e+06`, `0.0001`, `1.5`).
pub(crate) fn format_float_shortest(f: f64) -> String {
    if let Some(special) = special_float(f) {
        return special.to_string();
    }
    let (neg, digits, exp) = shortest_digits(f);
    let sign = if neg { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        format!("{sign}{}", exponent_form(&digits, exp))
    } else {
        format!("{sign}{}", fixed_form(&digits, exp))
    }
}

/// `+Inf`, `-Inf`, `NaN` as Go prints them.
pub(crate) fn special_float(f: f64) -> Option<&'static str> {
    if f.is_nan() {
        Some("NaN")
    } else if f == f64::INFINITY {
        Some("+Inf")
    } else if f == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// Sign, shortest round-trip decimal digits and decimal exponent (value = 0.d1d2.. * 10^(exp+1)).
fn shortest_digits(f: f64) -> (bool, String, i32) {
    let text = format!("{:e}", f.abs());
    let (mantissa, exp) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let exp = exp.parse::<i32>().unwrap_or(0);
    (f.is_sign_negative() && f != 0.0, digits, exp)
}

/// `d.ddde+XX` with at least two exponent digits.
pub(crate) fn exponent_form(digits: &str, exp: i32) -> String {
    let (first, rest) = digits.split_at(1.min(digits.len()));
    let mut out = first.to_string();
    if !rest.is_empty() {
        out.push('.');
        out.push_str(rest);
    }
    out.push_str(&go_exponent(exp));
    out
}

/// `e+06`, `e-10`, `e+100`.
pub(crate) fn go_exponent(exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("e{sign}{:02}", exp.unsigned_abs())
}

fn fixed_form(digits: &str, exp: i32) -> String {
    let point = exp + 1;
    if point <= 0 {
        let zeros = "0".repeat(point.unsigned_abs() as usize);
        format!("0.{zeros}{digits}")
    } else {
        let point = point as usize;
        if digits.len() <= point {
            format!("{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(json: serde_json::Value) -> Self {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => {
                Value::list(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(map) => {
                Value::map(map.into_iter().map(|(k, v)| (k, v.into())))
            }
        }
    }
}

impl From<&Value> for serde_json::Value {
    /// Keeps map order; non-finite floats become `null` (JSON has no NaN).
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::List(items) => {
                serde_json::Value::Array(items.iter().map(serde_json::Value::from).collect())
            }
            Value::Map(map) => serde_json::Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::from(v)))
                    .collect(),
            ),
        }
    }
}

impl From<Value> for serde_json::Value {
    fn from(value: Value) -> Self {
        serde_json::Value::from(&value)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::list(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go_percent_v() {
        let cases = [
            (1.0, "1"),
            (1.5, "1.5"),
            (100.0, "100"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.25, "-2.25"),
            (0.0, "0"),
            (1e21, "1e+21"),
            (f64::INFINITY, "+Inf"),
        ];
        for (f, want) in cases {
            assert_eq!(format_float_shortest(f), want, "{f}");
        }
    }

    #[test]
    fn json_round_trips_and_keeps_order() {
        let json: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":[true,null,1.5,"x"]}"#).unwrap();
        let value = Value::from(json.clone());
        assert_eq!(serde_json::Value::from(&value), json);
        assert_eq!(value.to_go_string(), "map[a:[true <nil> 1.5 x] b:1]");
    }

    #[test]
    fn truthiness_follows_go() {
        assert!(!Value::Null.is_truthy());
        assert!(!Value::Int(0).is_truthy());
        assert!(!Value::String(String::new()).is_truthy());
        assert!(!Value::list(vec![]).is_truthy());
        assert!(Value::list(vec![Value::Null]).is_truthy());
        assert!(Value::Float(0.5).is_truthy());
    }
}
