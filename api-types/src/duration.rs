//! Durations as Nomad writes them (`"30s"`, `"5m"`, `"1h30m"`, `"250ms"`, Go's syntax) to and
//! from the nanosecond integers stored in the canonical form.

/// Parses a Go-style duration into nanoseconds. Negative durations are rejected.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("expected a duration such as \"30s\", found an empty string".into());
    }
    if t == "0" {
        return Ok(0);
    }
    if t.starts_with('-') {
        return Err(format!("expected a positive duration, found \"{s}\""));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let bytes = t.as_bytes();
    let mut i = 0;
    let mut total: f64 = 0.0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if start == i {
            return Err(bad(s));
        }
        let num: f64 = t[start..i].parse().map_err(|_| bad(s))?;
        let ustart = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let unit = match &t[ustart..i] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            _ => return Err(bad(s)),
        };
        total += num * unit;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("duration \"{s}\" is too large"));
    }
    Ok(total.round() as u64)
}

fn bad(s: &str) -> String {
    format!("expected a duration such as \"30s\", \"5m\" or \"1h30m\", found \"{s}\"")
}

/// Formats nanoseconds the way Go prints durations (`1h30m0s`, `250ms`, `0s`).
pub fn format_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        return if ns.is_multiple_of(1_000_000) {
            format!("{}ms", ns / 1_000_000)
        } else if ns.is_multiple_of(1_000) {
            format!("{}us", ns / 1_000)
        } else {
            format!("{ns}ns")
        };
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s_ns = ns % 60_000_000_000;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s_ns.is_multiple_of(1_000_000_000) {
        out.push_str(&format!("{}s", s_ns / 1_000_000_000));
    } else {
        let frac = format!("{:09}", s_ns % 1_000_000_000);
        out.push_str(&format!(
            "{}.{}s",
            s_ns / 1_000_000_000,
            frac.trim_end_matches('0')
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        for (s, ns) in [
            ("30s", 30_000_000_000u64),
            ("5m", 300_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("250ms", 250_000_000),
            ("1.5s", 1_500_000_000),
            ("0", 0),
            ("10us", 10_000),
        ] {
            assert_eq!(parse_duration(s), Ok(ns), "{s}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        for s in ["", "5", "abc", "-5s", "5x", "s"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for ns in [
            0u64,
            1,
            1_000,
            250_000_000,
            1_500_000_000,
            5_400_000_000_000,
            86_400_000_000_000,
        ] {
            assert_eq!(parse_duration(&format_duration(ns)), Ok(ns), "{ns}");
        }
    }
}
