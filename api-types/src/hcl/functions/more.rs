//! The less common HCL functions of Nomad's HCL2 function library: `formatlist`, `indent`,
//! the regular-expression functions, set operations, `chunklist`, `coalescelist`, hashes,
//! `urlencode`, YAML encoding, `fileexists`, the IPv4/IPv6 `cidr*` functions, `timeadd` and
//! `uuidv5`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};
use sha2::Digest;

use super::super::value::{arg_list, arg_num, arg_str, arity};
use super::text::format_fn;
use crate::frontend::ParseOptions;

/// The functions this file answers for.
pub(super) const NAMES: &[&str] = &[
    "formatlist",
    "indent",
    "regex",
    "regexall",
    "regex_replace",
    "urlencode",
    "coalescelist",
    "chunklist",
    "setunion",
    "setintersection",
    "setsubtract",
    "setproduct",
    "sha256",
    "sha512",
    "yamlencode",
    "yamldecode",
    "fileexists",
    "cidrhost",
    "cidrnetmask",
    "cidrsubnet",
    "cidrsubnets",
    "timeadd",
    "uuidv5",
];

/// Largest compiled regular expression accepted from a job file (bytes).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Calls one of [`NAMES`].
pub(super) fn call(name: &str, a: &[Value], options: &ParseOptions) -> Result<Value, String> {
    call_more(name, a, options)
        .unwrap_or_else(|| Err(format!("`{name}` is not one of this file's functions")))
}

/// Calls one of [`NAMES`]; `None` if `name` is not one of them.
fn call_more(name: &str, a: &[Value], options: &ParseOptions) -> Option<Result<Value, String>> {
    let r = match name {
        "formatlist" => formatlist(a),
        "indent" => indent(a),
        "regex" | "regexall" => regex_fn(name, a),
        "regex_replace" => regex_replace(a),
        "urlencode" => arity(a, 1).and_then(|_| Ok(Value::String(urlencode(&arg_str(a, 0)?)))),
        "coalescelist" => coalescelist(a),
        "chunklist" => chunklist(a),
        "setunion" | "setintersection" | "setsubtract" => set_op(name, a),
        "setproduct" => setproduct(a),
        "sha256" | "sha512" => arity(a, 1).and_then(|_| {
            let text = arg_str(a, 0)?;
            let digest: Vec<u8> = if name == "sha256" {
                sha2::Sha256::digest(text.as_bytes()).to_vec()
            } else {
                sha2::Sha512::digest(text.as_bytes()).to_vec()
            };
            Ok(Value::String(
                digest.iter().map(|b| format!("{b:02x}")).collect(),
            ))
        }),
        "yamlencode" => arity(a, 1).and_then(|_| {
            serde_saphyr::to_string(&a[0])
                .map(Value::String)
                .map_err(|e| e.to_string())
        }),
        "yamldecode" => arity(a, 1).and_then(|_| {
            // YAML 1.2 booleans only, as HCL's yamldecode: `y`, `on`, `no` stay strings.
            let options = serde_saphyr::options! { strict_booleans: true };
            serde_saphyr::from_str_with_options::<Value>(&arg_str(a, 0)?, options)
                .map_err(|e| e.to_string())
        }),
        "fileexists" => arity(a, 1).and_then(|_| {
            if options.files.is_none() {
                return Err("file reads are not available here".into());
            }
            let path = arg_str(a, 0)?;
            Ok(Value::Bool(
                options.read_file(std::path::Path::new(&path)).is_ok(),
            ))
        }),
        "cidrhost" => cidrhost(a),
        "cidrnetmask" => cidrnetmask(a),
        "cidrsubnet" => cidrsubnet(a),
        "cidrsubnets" => cidrsubnets(a),
        "timeadd" => timeadd(a),
        "uuidv5" => uuidv5(a),
        _ => return None,
    };
    Some(r)
}

fn formatlist(a: &[Value]) -> Result<Value, String> {
    if a.is_empty() {
        return Err("expected at least one argument".into());
    }
    let spec = arg_str(a, 0)?;
    let mut len: Option<usize> = None;
    for v in &a[1..] {
        if let Value::Array(l) = v {
            match len {
                Some(n) if n != l.len() => {
                    return Err(format!(
                        "all list arguments must have the same length, found {n} and {}",
                        l.len()
                    ))
                }
                _ => len = Some(l.len()),
            }
        }
    }
    let rows = len.unwrap_or(1);
    let mut out = Vec::with_capacity(rows);
    for i in 0..rows {
        let mut row = vec![Value::String(spec.clone())];
        for v in &a[1..] {
            row.push(match v {
                Value::Array(l) => l[i].clone(),
                other => other.clone(),
            });
        }
        out.push(Value::String(format_fn(&row)?));
    }
    Ok(Value::Array(out))
}

fn indent(a: &[Value]) -> Result<Value, String> {
    arity(a, 2)?;
    let n = arg_num(a, 0)?;
    if !(0.0..=1024.0).contains(&n) {
        return Err("the number of spaces must be between 0 and 1024".into());
    }
    let pad = " ".repeat(n as usize);
    let text = arg_str(a, 1)?;
    Ok(Value::String(text.replace('\n', &format!("\n{pad}"))))
}

fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regular expression: {e}"))
}

/// One match as `regex()` returns it: the whole match without capture groups, a list of the
/// groups if they are unnamed, an object of them if they are named.
fn match_value(re: &regex::Regex, caps: &regex::Captures) -> Value {
    if re.captures_len() == 1 {
        return Value::String(caps[0].to_string());
    }
    let named: Vec<&str> = re.capture_names().flatten().collect();
    let group = |i: usize| {
        caps.get(i)
            .map(|m| Value::String(m.as_str().to_string()))
            .unwrap_or(Value::Null)
    };
    if named.is_empty() {
        Value::Array((1..re.captures_len()).map(group).collect())
    } else {
        let mut m = Map::new();
        for n in named {
            m.insert(
                n.to_string(),
                caps.name(n)
                    .map(|x| Value::String(x.as_str().to_string()))
                    .unwrap_or(Value::Null),
            );
        }
        Value::Object(m)
    }
}

fn regex_fn(name: &str, a: &[Value]) -> Result<Value, String> {
    arity(a, 2)?;
    let re = compile(&arg_str(a, 0)?)?;
    let text = arg_str(a, 1)?;
    if name == "regexall" {
        return Ok(Value::Array(
            re.captures_iter(&text)
                .map(|c| match_value(&re, &c))
                .collect(),
        ));
    }
    re.captures(&text)
        .map(|c| match_value(&re, &c))
        .ok_or_else(|| "pattern did not match the string".into())
}

fn regex_replace(a: &[Value]) -> Result<Value, String> {
    arity(a, 3)?;
    let text = arg_str(a, 0)?;
    let re = compile(&arg_str(a, 1)?)?;
    let with = arg_str(a, 2)?;
    Ok(Value::String(
        re.replace_all(&text, with.as_str()).into_owned(),
    ))
}

/// Query escaping as Go's `url.QueryEscape` does it: unreserved bytes stay, a space becomes
/// `+`, everything else `%XX`.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn coalescelist(a: &[Value]) -> Result<Value, String> {
    for i in 0..a.len() {
        let l = arg_list(a, i)?;
        if !l.is_empty() {
            return Ok(Value::Array(l));
        }
    }
    Err("no non-empty list argument".into())
}

fn chunklist(a: &[Value]) -> Result<Value, String> {
    arity(a, 2)?;
    let l = arg_list(a, 0)?;
    let size = arg_num(a, 1)?;
    if size < 0.0 || size.fract() != 0.0 {
        return Err(format!(
            "the chunk size must be a non-negative whole number, found {size}"
        ));
    }
    if size == 0.0 {
        return Ok(Value::Array(vec![Value::Array(l)]));
    }
    Ok(Value::Array(
        l.chunks(size as usize)
            .map(|c| Value::Array(c.to_vec()))
            .collect(),
    ))
}

fn dedup(items: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in items {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn set_op(name: &str, a: &[Value]) -> Result<Value, String> {
    if name == "setsubtract" {
        arity(a, 2)?;
    } else if a.is_empty() {
        return Err("expected at least one argument".into());
    }
    let mut sets = Vec::new();
    for i in 0..a.len() {
        sets.push(dedup(arg_list(a, i)?));
    }
    let first = sets.remove(0);
    let out = match name {
        "setunion" => dedup(first.into_iter().chain(sets.into_iter().flatten())),
        "setintersection" => first
            .into_iter()
            .filter(|v| sets.iter().all(|s| s.contains(v)))
            .collect(),
        _ => first.into_iter().filter(|v| !sets[0].contains(v)).collect(),
    };
    Ok(Value::Array(out))
}

fn setproduct(a: &[Value]) -> Result<Value, String> {
    if a.len() < 2 {
        return Err(format!("expected at least 2 arguments, found {}", a.len()));
    }
    let mut rows: Vec<Vec<Value>> = vec![Vec::new()];
    for i in 0..a.len() {
        let set = dedup(arg_list(a, i)?);
        let total = rows.len().saturating_mul(set.len());
        if total > 100_000 {
            return Err(format!(
                "the product has more than 100000 elements ({total})"
            ));
        }
        rows = rows
            .iter()
            .flat_map(|r| {
                set.iter().map(move |v| {
                    let mut r = r.clone();
                    r.push(v.clone());
                    r
                })
            })
            .collect();
    }
    Ok(Value::Array(rows.into_iter().map(Value::Array).collect()))
}

/// A parsed `address/prefix`: the network address as a number, its bit width and the prefix.
struct Cidr {
    base: u128,
    bits: u32,
    prefix: u32,
    v6: bool,
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let (addr, prefix) = s
        .split_once('/')
        .ok_or_else(|| format!("invalid CIDR address \"{s}\": expected ADDRESS/PREFIX"))?;
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("invalid CIDR address \"{s}\": bad IP address"))?;
    let (raw, bits, v6) = match ip {
        IpAddr::V4(v4) => (u32::from(v4) as u128, 32, false),
        IpAddr::V6(v6) => (u128::from(v6), 128, true),
    };
    let prefix: u32 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= bits)
        .ok_or_else(|| format!("invalid CIDR address \"{s}\": prefix must be 0..{bits}"))?;
    Ok(Cidr {
        base: raw & mask(bits, prefix),
        bits,
        prefix,
        v6,
    })
}

/// The network mask of a `prefix` in a `bits`-wide address.
fn mask(bits: u32, prefix: u32) -> u128 {
    let host_bits = bits - prefix;
    let host = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    full(bits) & !host
}

fn show_ip(n: u128, v6: bool) -> String {
    if v6 {
        Ipv6Addr::from(n).to_string()
    } else {
        Ipv4Addr::from(n as u32).to_string()
    }
}

fn whole(a: &[Value], i: usize) -> Result<i128, String> {
    let n = arg_num(a, i)?;
    if n.fract() != 0.0 {
        return Err(format!(
            "argument {} must be a whole number, found {n}",
            i + 1
        ));
    }
    Ok(n as i128)
}

fn cidrhost(a: &[Value]) -> Result<Value, String> {
    arity(a, 2)?;
    let c = parse_cidr(&arg_str(a, 0)?)?;
    let host = whole(a, 1)?;
    let size: i128 = if c.bits - c.prefix >= 127 {
        i128::MAX
    } else {
        1i128 << (c.bits - c.prefix)
    };
    let off = if host < 0 { size + host } else { host };
    if off < 0 || off >= size {
        return Err(format!(
            "host number {host} does not fit in a /{} network",
            c.prefix
        ));
    }
    Ok(Value::String(show_ip(c.base + off as u128, c.v6)))
}

fn cidrnetmask(a: &[Value]) -> Result<Value, String> {
    arity(a, 1)?;
    let c = parse_cidr(&arg_str(a, 0)?)?;
    if c.v6 {
        return Err("cidrnetmask only works with IPv4 prefixes".into());
    }
    Ok(Value::String(show_ip(mask(32, c.prefix), false)))
}

fn subnet(c: &Cidr, newbits: i128, num: i128) -> Result<Cidr, String> {
    let prefix = (c.prefix as i128).saturating_add(newbits);
    if newbits < 0 || prefix > c.bits as i128 {
        return Err(format!(
            "cannot extend a /{} prefix by {newbits} bits",
            c.prefix
        ));
    }
    if num < 0 || (newbits < 127 && num >= (1i128 << newbits)) {
        return Err(format!(
            "network number {num} does not fit in {newbits} bits"
        ));
    }
    let prefix = prefix as u32;
    let shift = c.bits - prefix;
    let off = if shift >= 128 {
        0
    } else {
        (num as u128) << shift
    };
    Ok(Cidr {
        base: c.base | off,
        bits: c.bits,
        prefix,
        v6: c.v6,
    })
}

fn cidrsubnet(a: &[Value]) -> Result<Value, String> {
    arity(a, 3)?;
    let c = parse_cidr(&arg_str(a, 0)?)?;
    let s = subnet(&c, whole(a, 1)?, whole(a, 2)?)?;
    Ok(Value::String(format!(
        "{}/{}",
        show_ip(s.base, s.v6),
        s.prefix
    )))
}

fn cidrsubnets(a: &[Value]) -> Result<Value, String> {
    if a.is_empty() {
        return Err("expected at least one argument".into());
    }
    let text = arg_str(a, 0)?;
    let c = parse_cidr(&text)?;
    let parent_last = c.base | (full(c.bits) & !mask(c.bits, c.prefix));
    let no_room = || format!("not enough room in {text} for the requested subnets");
    // Consecutive subnets, each aligned to its own size, as Terraform allocates them.
    let mut next = Some(c.base);
    let mut out = Vec::new();
    for i in 1..a.len() {
        let newbits = whole(a, i)?;
        let prefix = (c.prefix as i128).saturating_add(newbits);
        if newbits < 1 || prefix > c.bits as i128 {
            return Err(format!(
                "cannot extend a /{} prefix by {newbits} bits",
                c.prefix
            ));
        }
        let size = 1u128 << (c.bits - prefix as u32);
        let start = next
            .and_then(|n| n.div_ceil(size).checked_mul(size))
            .ok_or_else(no_room)?;
        let last = start.checked_add(size - 1).ok_or_else(no_room)?;
        if last > parent_last {
            return Err(no_room());
        }
        out.push(Value::String(format!("{}/{prefix}", show_ip(start, c.v6))));
        next = last.checked_add(1);
    }
    Ok(Value::Array(out))
}

fn full(bits: u32) -> u128 {
    if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// A name-based (version 5) UUID; `dns`, `url`, `oid` and `x500` name RFC 4122's namespaces.
fn uuidv5(a: &[Value]) -> Result<Value, String> {
    arity(a, 2)?;
    let ns = arg_str(a, 0)?;
    let namespace = match ns.as_str() {
        "dns" => uuid::Uuid::NAMESPACE_DNS,
        "url" => uuid::Uuid::NAMESPACE_URL,
        "oid" => uuid::Uuid::NAMESPACE_OID,
        "x500" => uuid::Uuid::NAMESPACE_X500,
        other => uuid::Uuid::parse_str(other)
            .map_err(|_| format!("namespace \"{other}\" is not dns, url, oid, x500 or a UUID"))?,
    };
    Ok(Value::String(
        uuid::Uuid::new_v5(&namespace, arg_str(a, 1)?.as_bytes()).to_string(),
    ))
}

fn timeadd(a: &[Value]) -> Result<Value, String> {
    arity(a, 2)?;
    let ts: jiff::Timestamp = arg_str(a, 0)?
        .parse()
        .map_err(|e| format!("invalid RFC 3339 timestamp: {e}"))?;
    let d = arg_str(a, 1)?;
    let (neg, body) = match d.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, d.as_str()),
    };
    let ns = i64::try_from(crate::duration::parse_duration(body)?)
        .map_err(|_| format!("duration \"{d}\" is too long"))?;
    let span = jiff::SignedDuration::from_nanos(if neg { -ns } else { ns });
    let out = ts
        .checked_add(span)
        .map_err(|e| format!("timestamp out of range: {e}"))?;
    Ok(Value::String(out.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::frontend::ParseOptions;

    fn eval(src: &str) -> Result<Value, String> {
        let options = ParseOptions::default();
        let expr = hcl_edit::parser::parse_expr(src).map_err(|e| e.to_string())?;
        let mut scope = crate::hcl::eval::Scope::new(src, &options);
        scope.eval_keep(&expr).map_err(|(_, m)| m)
    }

    #[test]
    fn nomad_library_functions_give_hcl_results() {
        let cases: &[(&str, Value)] = &[
            (
                r#"formatlist("%s-%d", ["web", "api"], [1, 2])"#,
                json!(["web-1", "api-2"]),
            ),
            (r#"formatlist("x=%s", "a")"#, json!(["x=a"])),
            (r#"indent(2, "a\nb\nc")"#, json!("a\n  b\n  c")),
            (r#"regex("[a-z]+", "123abc456")"#, json!("abc")),
            (r#"regex("(\\d+)\\.(\\d+)", "v1.25")"#, json!(["1", "25"])),
            (
                r#"regex("(?P<major>\\d+)\\.(?P<minor>\\d+)", "v1.25")"#,
                json!({"major": "1", "minor": "25"}),
            ),
            (r#"regexall("\\d", "a1b2c3")"#, json!(["1", "2", "3"])),
            (r#"length(regexall("z", "abc")) > 0"#, json!(false)),
            (
                r#"regex_replace("web-01.example", "-(\\d+)", "_$1")"#,
                json!("web_01.example"),
            ),
            (r#"urlencode("a b&c=d/é")"#, json!("a+b%26c%3Dd%2F%C3%A9")),
            (r#"coalescelist([], ["a"], ["b"])"#, json!(["a"])),
            (
                r#"chunklist([1, 2, 3, 4, 5], 2)"#,
                json!([[1, 2], [3, 4], [5]]),
            ),
            (
                r#"setunion(["a", "b"], ["b", "c"])"#,
                json!(["a", "b", "c"]),
            ),
            (
                r#"setintersection(["a", "b", "c"], ["b", "c", "d"], ["c", "b"])"#,
                json!(["b", "c"]),
            ),
            (r#"setsubtract(["a", "b", "c"], ["b"])"#, json!(["a", "c"])),
            (
                r#"setproduct(["x", "y"], [1, 2])"#,
                json!([["x", 1], ["x", 2], ["y", 1], ["y", 2]]),
            ),
            (
                r#"sha256("hello")"#,
                json!("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
            ),
            (r#"length(sha512("hello"))"#, json!(128)),
            (
                r#"yamldecode("a: 1\nb: [x, y]\n")"#,
                json!({"a": 1, "b": ["x", "y"]}),
            ),
            (
                r#"yamldecode(yamlencode({k = ["v", 2]}))"#,
                json!({"k": ["v", 2]}),
            ),
            (r#"cidrhost("10.12.112.0/20", 16)"#, json!("10.12.112.16")),
            (r#"cidrhost("10.12.112.0/20", -1)"#, json!("10.12.127.255")),
            (
                r#"cidrhost("fd00:fd12:3456:7890::/56", 16)"#,
                json!("fd00:fd12:3456:7800::10"),
            ),
            (r#"cidrnetmask("172.16.0.0/12")"#, json!("255.240.0.0")),
            (
                r#"cidrsubnet("172.16.0.0/12", 4, 2)"#,
                json!("172.18.0.0/16"),
            ),
            (
                r#"cidrsubnet("10.1.2.0/24", 4, 15)"#,
                json!("10.1.2.240/28"),
            ),
            (
                r#"cidrsubnet("fd00:fd12:3456:7890::/56", 16, 162)"#,
                json!("fd00:fd12:3456:7800:a200::/72"),
            ),
            (
                r#"cidrsubnets("10.1.0.0/16", 4, 4, 8, 4)"#,
                json!([
                    "10.1.0.0/20",
                    "10.1.16.0/20",
                    "10.1.32.0/24",
                    "10.1.48.0/20"
                ]),
            ),
            (
                r#"timeadd("2024-01-31T23:50:00Z", "10m")"#,
                json!("2024-02-01T00:00:00Z"),
            ),
            (
                r#"timeadd("2024-01-01T01:00:00Z", "-1h30m")"#,
                json!("2023-12-31T23:30:00Z"),
            ),
            (r#"chunklist([1, 2], 1e300)"#, json!([[1, 2]])),
            (
                r#"uuidv5("dns", "nomadproject.io")"#,
                json!("d2616d48-e1cb-5b87-8a8c-46355decc76a"),
            ),
            (
                r#"uuidv5("6ba7b811-9dad-11d1-80b4-00c04fd430c8", "https://nomadproject.io/")"#,
                json!("a1572394-3948-5251-b0c7-b4ded43587b4"),
            ),
        ];
        for (src, expected) in cases {
            assert_eq!(eval(src).as_ref(), Ok(expected), "{src}");
        }
    }

    #[test]
    fn bad_library_calls_say_what_is_wrong() {
        let cases = [
            (
                r#"regex("z", "abc")"#,
                "regex(): pattern did not match the string",
            ),
            (
                r#"regex("(", "abc")"#,
                "regex(): invalid regular expression",
            ),
            (
                r#"formatlist("%s%s", ["a"], ["b", "c"])"#,
                "formatlist(): all list arguments must have the same length, found 1 and 2",
            ),
            (
                r#"coalescelist([], [])"#,
                "coalescelist(): no non-empty list argument",
            ),
            (
                r#"chunklist([1], -1)"#,
                "chunklist(): the chunk size must be a non-negative whole number, found -1",
            ),
            (
                r#"cidrhost("10.0.0.0/30", 4)"#,
                "cidrhost(): host number 4 does not fit in a /30 network",
            ),
            (
                r#"cidrhost("10.0.0.0/33", 1)"#,
                "cidrhost(): invalid CIDR address \"10.0.0.0/33\": prefix must be 0..32",
            ),
            (
                r#"cidrsubnet("10.0.0.0/30", 4, 0)"#,
                "cidrsubnet(): cannot extend a /30 prefix by 4 bits",
            ),
            (
                r#"cidrsubnets("10.0.0.0/24", 1, 1, 1)"#,
                "cidrsubnets(): not enough room in 10.0.0.0/24 for the requested subnets",
            ),
            (
                r#"cidrsubnet("10.0.0.0/8", 1e300, 0)"#,
                "cidrsubnet(): cannot extend a /8 prefix by",
            ),
            (
                r#"cidrsubnets("10.0.0.0/8", 1e300)"#,
                "cidrsubnets(): cannot extend a /8 prefix by",
            ),
            (r#"cidrhost("::/0", 1e300)"#, "cidrhost(): host number"),
            (
                r#"cidrhost("10.0.0.0/8", 1.5)"#,
                "cidrhost(): argument 2 must be a whole number",
            ),
            (
                r#"timeadd("yesterday", "1h")"#,
                "timeadd(): invalid RFC 3339 timestamp",
            ),
            (
                r#"setsubtract(["a"])"#,
                "setsubtract(): expected 2 argument(s), found 1",
            ),
            (
                r#"fileexists("x")"#,
                "fileexists(): file reads are not available here",
            ),
            (
                r#"regexal("a", "b")"#,
                "regexal(): unknown function (did you mean \"regexall\"?)",
            ),
        ];
        for (src, expected) in cases {
            let got = eval(src).unwrap_err();
            assert!(got.starts_with(expected), "{src}: {got}");
        }
    }
}
