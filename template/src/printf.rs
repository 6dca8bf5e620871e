//! Go's `fmt.Sprintf` for template values: verbs `%v %s %q %d %b %o %x %X %c
//! %e %f %g %t %%`, flags `- + # 0 space`, width and precision (`*` too), and
//! Go's in-band error notes (`%!d(string=hi)`, `%!s(MISSING)`, `%!(EXTRA ...)`).

use crate::value::{exponent_form, format_float_shortest, go_exponent, special_float, Value};

/// Largest width or precision accepted; larger ones are an error, not an allocation.
const MAX_WIDTH: usize = 1 << 16;

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// Formats `args` by `format`; fails only when the result would pass `max_bytes`
/// or a width is absurd.
pub(crate) fn sprintf(format: &str, args: &[Value], max_bytes: usize) -> Result<String, String> {
    let mut out = String::new();
    let mut next_arg = 0;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&(_, flag)) = chars.peek() {
            match flag {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = read_count(&mut chars, args, &mut next_arg)?;
        if chars.peek().map(|(_, c)| *c) == Some('.') {
            chars.next();
            spec.precision = Some(read_count(&mut chars, args, &mut next_arg)?.unwrap_or(0));
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next_arg) {
            Some(arg) => {
                next_arg += 1;
                format_arg(&mut out, verb, spec, arg);
            }
            None => out.push_str(&format!("%!{verb}(MISSING)")),
        }
        if out.len() > max_bytes {
            return Err(format!(
                "printf result exceeds the limit of {max_bytes} bytes"
            ));
        }
    }
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, arg) in args[next_arg..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("{}={}", arg.type_name(), arg.to_go_string()));
        }
        out.push(')');
    }
    if out.len() > max_bytes {
        return Err(format!(
            "printf result exceeds the limit of {max_bytes} bytes"
        ));
    }
    Ok(out)
}

/// A width or precision: digits, or `*` taking an int argument.
fn read_count(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    args: &[Value],
    next_arg: &mut usize,
) -> Result<Option<usize>, String> {
    if chars.peek().map(|(_, c)| *c) == Some('*') {
        chars.next();
        let value = match args.get(*next_arg) {
            Some(Value::Int(i)) => usize::try_from(*i).unwrap_or(0),
            _ => 0,
        };
        *next_arg += 1;
        return check_width(value).map(Some);
    }
    let mut value: Option<usize> = None;
    while let Some(&(_, c)) = chars.peek() {
        let Some(digit) = c.to_digit(10) else { break };
        chars.next();
        let current = value.unwrap_or(0);
        value = Some(current.saturating_mul(10).saturating_add(digit as usize));
    }
    value.map(check_width).transpose()
}

fn check_width(width: usize) -> Result<usize, String> {
    if width > MAX_WIDTH {
        return Err(format!(
            "printf width or precision {width} exceeds the limit of {MAX_WIDTH}"
        ));
    }
    Ok(width)
}

fn format_arg(out: &mut String, verb: char, spec: Spec, arg: &Value) {
    match arg {
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_arg(out, verb, spec, item);
            }
            out.push(']');
            return;
        }
        Value::Map(map) => {
            out.push_str("map[");
            for (i, (k, v)) in Value::sorted_entries(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_arg(out, verb, spec, &Value::String(k.clone()));
                out.push(':');
                format_arg(out, verb, spec, v);
            }
            out.push(']');
            return;
        }
        _ => {}
    }
    match format_scalar(verb, spec, arg) {
        Some((text, kind)) => out.push_str(&pad(&text, spec, kind)),
        None => out.push_str(&bad_verb(verb, arg)),
    }
}

fn bad_verb(verb: char, arg: &Value) -> String {
    match arg {
        Value::Null => format!("%!{verb}(<nil>)"),
        other => format!("%!{verb}({}={})", other.type_name(), other.to_go_string()),
    }
}

/// How the `0` flag pads: not at all for text, and not for integers given a precision.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pad {
    Text,
    Int,
    Float,
}

/// The formatted text and how it pads; `None` for a bad verb.
fn format_scalar(verb: char, spec: Spec, arg: &Value) -> Option<(String, Pad)> {
    match (verb, arg) {
        ('v', Value::Float(f)) => Some((format_float(*f, 'g', spec), Pad::Float)),
        ('v', Value::Int(i)) => Some((format_int(*i, 10, spec, false), Pad::Int)),
        ('v', Value::String(s)) if spec.sharp => Some((go_quote(s), Pad::Text)),
        ('v', other) => Some((other.to_go_string(), Pad::Text)),
        ('s', Value::String(s)) => Some((truncate(s, spec.precision), Pad::Text)),
        ('q', Value::String(s)) => Some((go_quote(s), Pad::Text)),
        ('q', Value::Int(i)) => char_of(*i).map(|c| (quote_char(c), Pad::Text)),
        ('t', Value::Bool(b)) => Some((b.to_string(), Pad::Text)),
        ('d', Value::Int(i)) => Some((format_int(*i, 10, spec, false), Pad::Int)),
        ('d', Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            Some((format_int(*f as i64, 10, spec, false), Pad::Int))
        }
        ('b', Value::Int(i)) => Some((format_int(*i, 2, spec, false), Pad::Int)),
        ('o', Value::Int(i)) => Some((format_int(*i, 8, spec, false), Pad::Int)),
        ('x', Value::Int(i)) => Some((format_int(*i, 16, spec, false), Pad::Int)),
        ('X', Value::Int(i)) => Some((format_int(*i, 16, spec, true), Pad::Int)),
        ('x', Value::String(s)) => Some((hex_bytes(s, spec, false), Pad::Text)),
        ('X', Value::String(s)) => Some((hex_bytes(s, spec, true), Pad::Text)),
        ('c', Value::Int(i)) => char_of(*i).map(|c| (c.to_string(), Pad::Text)),
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', Value::Float(f)) => {
            Some((format_float(*f, verb, spec), Pad::Float))
        }
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', Value::Int(i)) => {
            Some((format_float(*i as f64, verb, spec), Pad::Float))
        }
        _ => None,
    }
}

fn char_of(i: i64) -> Option<char> {
    u32::try_from(i).ok().and_then(char::from_u32)
}

fn truncate(s: &str, precision: Option<usize>) -> String {
    match precision {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

fn sign(negative: bool, spec: Spec) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn format_int(i: i64, radix: u32, spec: Spec, upper: bool) -> String {
    let magnitude = i.unsigned_abs();
    let mut digits = match radix {
        2 => format!("{magnitude:b}"),
        8 => format!("{magnitude:o}"),
        16 if upper => format!("{magnitude:X}"),
        16 => format!("{magnitude:x}"),
        _ => magnitude.to_string(),
    };
    if let Some(p) = spec.precision {
        if p == 0 && magnitude == 0 {
            digits.clear();
        }
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    let prefix = match (spec.sharp, radix) {
        (true, 2) => "0b",
        (true, 8) if !digits.starts_with('0') => "0",
        (true, 16) if upper => "0X",
        (true, 16) => "0x",
        _ => "",
    };
    format!("{}{prefix}{digits}", sign(i < 0, spec))
}

fn hex_bytes(s: &str, spec: Spec, upper: bool) -> String {
    let limit = spec.precision.unwrap_or(usize::MAX);
    let mut out = String::new();
    for (i, byte) in s.bytes().take(limit).enumerate() {
        if spec.space && i > 0 {
            out.push(' ');
        }
        if spec.sharp && (spec.space || i == 0) {
            out.push_str(if upper { "0X" } else { "0x" });
        }
        if upper {
            out.push_str(&format!("{byte:02X}"));
        } else {
            out.push_str(&format!("{byte:02x}"));
        }
    }
    out
}

fn format_float(f: f64, verb: char, spec: Spec) -> String {
    if let Some(special) = special_float(f) {
        let text = match (special, spec.plus) {
            ("+Inf", false) => "Inf",
            (other, _) => other,
        };
        return if spec.space && text == "Inf" {
            " Inf".to_string()
        } else {
            text.to_string()
        };
    }
    let negative = f.is_sign_negative() && f != 0.0;
    let abs = f.abs();
    let body = match verb {
        'e' | 'E' => exp_with_precision(abs, spec.precision.unwrap_or(6)),
        'f' | 'F' => format!("{abs:.prec$}", prec = spec.precision.unwrap_or(6)),
        _ => match spec.precision {
            None => format_float_shortest(abs),
            Some(p) => general_with_precision(abs, p.max(1), spec.sharp),
        },
    };
    let body = if verb.is_ascii_uppercase() {
        body.to_ascii_uppercase()
    } else {
        body
    };
    format!("{}{body}", sign(negative, spec))
}

/// `%.{p}e`: `d.ddde+XX`.
fn exp_with_precision(abs: f64, precision: usize) -> String {
    let text = format!("{abs:.precision$e}");
    let (mantissa, exp) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    format!("{mantissa}{}", go_exponent(exp.parse().unwrap_or(0)))
}

/// `%.{p}g`: `p` significant digits, exponent form when the exponent is < -4 or >= p.
fn general_with_precision(abs: f64, precision: usize, keep_zeros: bool) -> String {
    let text = format!("{abs:.prec$e}", prec = precision - 1);
    let (mantissa, exp) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: String| {
        if keep_zeros || !s.contains('.') {
            s
        } else {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    };
    if exp < -4 || i64::from(exp) >= precision as i64 {
        let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
        let digits = if keep_zeros {
            digits
        } else {
            let trimmed = digits.trim_end_matches('0');
            if trimmed.is_empty() {
                "0".to_string()
            } else {
                trimmed.to_string()
            }
        };
        exponent_form(&digits, exp)
    } else {
        let decimals = (precision as i64 - 1 - i64::from(exp)).max(0) as usize;
        strip(format!("{abs:.decimals$}"))
    }
}

/// Pads to the width: spaces left (or right with `-`), zeros after the sign with `0`.
fn pad(text: &str, spec: Spec, kind: Pad) -> String {
    let Some(width) = spec.width else {
        return text.to_string();
    };
    let len = text.chars().count();
    if len >= width {
        return text.to_string();
    }
    let fill = width - len;
    if spec.minus {
        return format!("{text}{}", " ".repeat(fill));
    }
    let zero_ok = spec.zero
        && match kind {
            Pad::Text => false,
            Pad::Int => spec.precision.is_none(),
            Pad::Float => text.ends_with(|c: char| c.is_ascii_digit()),
        };
    if zero_ok {
        let sign_len = usize::from(text.starts_with(['-', '+', ' ']));
        let (sign, rest) = text.split_at(sign_len);
        return format!("{sign}{}{rest}", "0".repeat(fill));
    }
    format!("{}{text}", " ".repeat(fill))
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

fn quote_char(c: char) -> String {
    let mut out = String::from("'");
    push_escaped(&mut out, c, '\'');
    out.push('\'');
    out
}

fn push_escaped(out: &mut String, c: char, quote: char) {
    match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if u32::from(c) < 0x20 || c == '\u{7f}' => {
            out.push_str(&format!("\\x{:02x}", u32::from(c)))
        }
        c if c.is_control() => {
            if u32::from(c) <= 0xFFFF {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            } else {
                out.push_str(&format!("\\U{:08x}", u32::from(c)));
            }
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(format: &str, args: &[Value]) -> String {
        sprintf(format, args, 1 << 20).unwrap()
    }

    #[test]
    fn verbs_match_go() {
        let s = Value::from("hi");
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            ("%s!", vec![s.clone()], "hi!"),
            ("%5s|%-5s|", vec![s.clone(), s.clone()], "   hi|hi   |"),
            ("%.1s", vec![s.clone()], "h"),
            ("%q", vec![Value::from("a\"b\n")], r#""a\"b\n""#),
            (
                "%d %05d %+d %x %X %o %b",
                vec![
                    42.into(),
                    (-42).into(),
                    7.into(),
                    255.into(),
                    255.into(),
                    8.into(),
                    5.into(),
                ],
                "42 -0042 +7 ff FF 10 101",
            ),
            ("%#x", vec![255.into()], "0xff"),
            (
                "%f %.2f %8.3f",
                vec![3.25159.into(), 2.5.into(), (-1.0).into()],
                "3.251590 2.50   -1.000",
            ),
            ("%e", vec![1234.5678.into()], "1.234568e+03"),
            (
                "%g %g %.3g",
                vec![0.000012.into(), 100000.0.into(), 1234.5678.into()],
                "1.2e-05 100000 1.23e+03",
            ),
            ("%t %v", vec![true.into(), Value::Null], "true <nil>"),
            ("%x", vec![Value::from("hi")], "6869"),
            ("%c", vec![65.into()], "A"),
            ("%v", vec![Value::list(vec![1.into(), "a".into()])], "[1 a]"),
            ("100%%", vec![], "100%"),
            (
                "%05s|%08.3d|%07.2f|%-05d|",
                vec![s.clone(), 5.into(), (-1.5).into(), 3.into()],
                "   hi|     005|-001.50|3    |",
            ),
        ];
        for (format, args, want) in cases {
            assert_eq!(f(format, &args), want, "{format}");
        }
    }

    #[test]
    fn mistakes_are_reported_in_band_like_go() {
        assert_eq!(f("%d", &["x".into()]), "%!d(string=x)");
        assert_eq!(f("%s %s", &["x".into()]), "x %!s(MISSING)");
        assert_eq!(f("%s", &["x".into(), 1.into()]), "x%!(EXTRA int=1)");
        assert_eq!(f("%s", &[Value::Null]), "%!s(<nil>)");
        assert_eq!(f("%", &[]), "%!(NOVERB)");
        assert_eq!(f("%z", &[1.into()]), "%!z(int=1)");
    }

    #[test]
    fn huge_widths_fail_instead_of_allocating() {
        assert!(sprintf("%999999999d", &[1.into()], 1 << 20).is_err());
        assert!(sprintf("%s%s", &["ab".into(), "cd".into()], 3).is_err());
    }
}
