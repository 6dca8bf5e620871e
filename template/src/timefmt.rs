//! Go's reference-time layouts (`2006-01-02T15:04:05Z07:00`) for `timestamp`.

use jiff::ZonedDateTime as Zoned;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Go's `time.RFC3339`.
pub(crate) const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// Formats `t` by a Go layout; text that is not a layout element is copied.
pub(crate) fn format(layout: &str, t: &Zoned) -> String {
    let mut out = String::new();
    let mut rest = layout;
    while !rest.is_empty() {
        match element(rest, t) {
            Some((text, len)) => {
                out.push_str(&text);
                rest = &rest[len..];
            }
            None => {
                let c = rest.chars().next().unwrap_or(' ');
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// The layout element at the start of `s`: its formatted text and its length in the layout.
fn element(s: &str, t: &Zoned) -> Option<(String, usize)> {
    let month = usize::try_from(t.month()).unwrap_or(1).clamp(1, 12);
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let words: [(&str, String); 31] = [
        ("January", MONTHS[month - 1].to_string()),
        ("Jan", MONTHS[month - 1][..3].to_string()),
        ("Monday", DAYS[weekday(t)].to_string()),
        ("Mon", DAYS[weekday(t)][..3].to_string()),
        ("MST", zone_abbreviation(t)),
        ("2006", format!("{:04}", t.year())),
        ("002", format!("{:03}", t.day_of_year())),
        ("01", format!("{month:02}")),
        ("02", format!("{:02}", t.day())),
        ("03", format!("{hour12:02}")),
        ("04", format!("{:02}", t.minute())),
        ("05", format!("{:02}", t.second())),
        ("06", format!("{:02}", t.year().rem_euclid(100))),
        ("15", format!("{:02}", t.hour())),
        ("__2", format!("{:>3}", t.day_of_year())),
        ("_2", format!("{:>2}", t.day())),
        ("1", month.to_string()),
        ("2", t.day().to_string()),
        ("3", hour12.to_string()),
        ("4", t.minute().to_string()),
        ("5", t.second().to_string()),
        ("PM", if t.hour() >= 12 { "PM" } else { "AM" }.to_string()),
        ("pm", if t.hour() >= 12 { "pm" } else { "am" }.to_string()),
        ("Z07:00:00", offset(t, true, ":", true)),
        ("-07:00:00", offset(t, false, ":", true)),
        ("Z070000", offset(t, true, "", true)),
        ("-070000", offset(t, false, "", true)),
        ("Z07:00", offset(t, true, ":", false)),
        ("-07:00", offset(t, false, ":", false)),
        ("Z0700", offset(t, true, "", false)),
        ("-0700", offset(t, false, "", false)),
    ];
    for (pattern, text) in words {
        if s.starts_with(pattern) {
            return Some((text, pattern.len()));
        }
    }
    if s.starts_with("Z07") || s.starts_with("-07") {
        let full = offset(t, s.starts_with('Z'), "", false);
        let short = if full == "Z" {
            full
        } else {
            full[..3].to_string()
        };
        return Some((short, 3));
    }
    fraction(s, t)
}

/// `.000` (fixed digits) or `.999` (trailing zeros dropped) fractional seconds.
fn fraction(s: &str, t: &Zoned) -> Option<(String, usize)> {
    let mut chars = s.chars();
    let sep = chars.next().filter(|c| *c == '.' || *c == ',')?;
    let digit = chars.next().filter(|c| *c == '0' || *c == '9')?;
    let run = 1 + s[2..].chars().take_while(|c| *c == digit).count();
    if s[1 + run..].starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let nanos = format!("{:09}", t.subsec_nanosecond());
    let digits = &nanos[..run.min(9)];
    let text = if digit == '0' {
        format!("{sep}{digits}")
    } else {
        let trimmed = digits.trim_end_matches('0');
        if trimmed.is_empty() {
            String::new()
        } else {
            format!("{sep}{trimmed}")
        }
    };
    Some((text, 1 + run))
}

fn weekday(t: &Zoned) -> usize {
    usize::try_from(t.weekday().to_sunday_zero_offset()).unwrap_or(0) % 7
}

fn zone_abbreviation(t: &Zoned) -> String {
    let seconds = t.offset().seconds();
    if seconds == 0 {
        return "UTC".to_string();
    }
    offset(t, false, "", false)
}

/// `+hh:mm[:ss]` (or `Z` for UTC when `z_for_utc`).
fn offset(t: &Zoned, z_for_utc: bool, sep: &str, with_seconds: bool) -> String {
    let total = t.offset().seconds();
    if total == 0 && z_for_utc {
        return "Z".to_string();
    }
    let sign = if total < 0 { '-' } else { '+' };
    let abs = total.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    if with_seconds {
        format!("{sign}{h:02}{sep}{m:02}{sep}{s:02}")
    } else {
        format!("{sign}{h:02}{sep}{m:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Zoned {
        "2024-03-07T09:05:04.120Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
    }

    #[test]
    fn go_layouts_format_like_go() {
        let t = at();
        let cases = [
            (RFC3339, "2024-03-07T09:05:04Z"),
            ("2006-01-02", "2024-03-07"),
            ("Jan _2 15:04:05.000", "Mar  7 09:05:04.120"),
            (
                "Monday, January 2 2006 3:04PM MST",
                "Thursday, March 7 2024 9:05AM UTC",
            ),
            ("06/1/2 .999 -07:00", "24/3/7 .12 +00:00"),
            ("002", "067"),
        ];
        for (layout, want) in cases {
            assert_eq!(format(layout, &t), want, "{layout}");
        }
    }
}
