//! Cron expressions read as Nomad reads them (its `cronexpr`): five fields are
//! `minute hour day month weekday`; six add a trailing `year`; seven start with `second`
//! (`second minute hour day month weekday year`). `@yearly` (`@annually`), `@monthly`,
//! `@weekly`, `@daily` (`@midnight`) and `@hourly` stand for their five-field forms.
//!
//! [`to_seven_fields`] writes an expression as `croner`'s seven-field pattern (seconds first,
//! year last), the form the validator and the periodic scheduler both parse.

/// The expression as seven fields, `second minute hour day month weekday year`.
pub fn to_seven_fields(expr: &str) -> Result<String, String> {
    let expr = expr.trim();
    let expanded = match expr.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other if other.starts_with('@') => {
            return Err(format!(
                "unknown shortcut \"{expr}\": expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
            ))
        }
        _ => expr,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    Ok(match fields.len() {
        5 => format!("0 {} *", fields.join(" ")),
        6 => format!("0 {}", fields.join(" ")),
        7 => fields.join(" "),
        n => {
            return Err(format!(
                "expected 5 fields (minute hour day month weekday), 6 (with a year last) or 7 (with a second first and a year last), found {n}"
            ))
        }
    })
}

/// Parses an expression as Nomad reads it.
pub fn parse(expr: &str) -> Result<croner::Cron, String> {
    let pattern = to_seven_fields(expr)?;
    // croner panics on a few malformed patterns; those are errors like any other here.
    std::panic::catch_unwind(|| pattern.parse::<croner::Cron>())
        .map_err(|_| "cannot be parsed".to_string())?
        .map_err(|e| tidy(&e.to_string()))
}

/// croner's message without its prefix, starting in lower case.
fn tidy(m: &str) -> String {
    let m = m.rsplit(": ").next().unwrap_or(m).trim_end_matches('.');
    let mut c = m.chars();
    c.next()
        .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_as_nomad_reads_them() {
        let cases = [
            ("*/15 * * * *", "0 */15 * * * * *"),
            ("0 2 * * * 2019", "0 0 2 * * * 2019"),
            ("0 0 0 1 1 * 2030", "0 0 0 1 1 * 2030"),
            ("30 */5 * * * * *", "30 */5 * * * * *"),
            ("@daily", "0 0 0 * * * *"),
            ("@Midnight", "0 0 0 * * * *"),
            ("@weekly", "0 0 0 * * 0 *"),
        ];
        for (expr, want) in cases {
            assert_eq!(to_seven_fields(expr).as_deref(), Ok(want), "{expr}");
        }
    }

    #[test]
    fn other_field_counts_and_shortcuts_are_refused() {
        assert!(to_seven_fields("*/5 * * *")
            .unwrap_err()
            .contains("found 4"));
        assert!(to_seven_fields("* * * * * * * *")
            .unwrap_err()
            .contains("found 8"));
        assert!(to_seven_fields("@fortnightly")
            .unwrap_err()
            .contains("unknown shortcut"));
        assert!(parse("61 * * * *").is_err());
    }
}
