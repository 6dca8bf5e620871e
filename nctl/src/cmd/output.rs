//! Output helpers: tables that fit an 80-column terminal (comfy-table), `-o json|yaml` for
//! scripts, Nomad-style `Key = Value` blocks, short IDs and ages.

use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

/// How a listing prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// An aligned table that fits 80 columns.
    #[default]
    Table,
    /// A table with more columns.
    Wide,
    /// The canonical objects as JSON.
    Json,
    /// The canonical objects as YAML.
    Yaml,
}

/// A borderless table with a header, at most 80 columns wide.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(80);
    with_header(t, header)
}

/// A borderless table as wide as its content (`-o wide`).
pub fn wide_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    with_header(t, header)
}

fn with_header(mut t: Table, header: &[&str]) -> Table {
    t.set_header(header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for col in t.column_iter_mut() {
        col.set_padding((0, 2));
    }
    t
}

/// Prints a table with trailing spaces trimmed.
pub fn print_table(t: &Table) {
    for line in t.to_string().lines() {
        println!("{}", line.trim_end());
    }
}

/// Prints a value as JSON or YAML.
pub fn print_data<T: Serialize>(value: &T, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Yaml => print!("{}", serde_saphyr::to_string(value)?),
        _ => println!("{}", serde_json::to_string_pretty(value)?),
    }
    Ok(())
}

/// `Key = Value` lines with the keys aligned, as Nomad prints details.
pub fn print_kv(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        println!("{k:<width$} = {v}");
    }
}

/// The first 8 characters of an allocation or node ID, as Nomad shows them. Never for
/// deployment IDs (`<job>-v<version>`), which always print in full.
pub fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// Milliseconds since the epoch as a rough age (`5s`, `3m`, `2h`, `4d`).
pub fn age(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let s = ((now - ms) / 1000).max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Milliseconds since the epoch as a UTC time with how far it is from now, e.g.
/// `2026-11-25T18:00:00Z (in 3m)` or `2026-11-25T17:55:00Z (2m ago)`; `-` for none.
pub fn when(ms: Option<i64>) -> String {
    let Some(ms) = ms.filter(|m| *m > 0) else {
        return "-".into();
    };
    let Ok(t) = jiff::Timestamp::from_millisecond(ms) else {
        return ms.to_string();
    };
    let now = jiff::Timestamp::now().as_millisecond();
    let rel = if ms > now {
        format!("in {}", span((ms - now) / 1000))
    } else {
        format!("{} ago", span((now - ms) / 1000))
    };
    format!("{} ({rel})", t.round(jiff::Unit::Second).unwrap_or(t))
}

/// Milliseconds since the epoch as a UTC time to the second (`2026-11-25T18:00:00Z`); `-` for
/// none (0 or less).
pub fn utc(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.round(jiff::Unit::Second).unwrap_or(t).to_string(),
        Err(_) => ms.to_string(),
    }
}

fn span(s: i64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_fit_80_columns() {
        let mut t = table(&[
            "ID",
            "Node",
            "Task Group",
            "Version",
            "Desired",
            "Status",
            "Created",
        ]);
        for _ in 0..3 {
            t.add_row(vec![
                "0123456789abcdef0123456789abcdef",
                "a-very-long-node-name-that-goes-on",
                "frontend-group-with-long-name",
                "12",
                "run",
                "running",
                "5m",
            ]);
        }
        for line in t.to_string().lines() {
            assert!(
                line.chars().count() <= 80,
                "{} > 80: {line:?}",
                line.chars().count()
            );
        }
    }

    #[test]
    fn short_ids_and_kv() {
        assert_eq!(short("0123456789"), "01234567");
        assert_eq!(short("abc"), "abc");
        assert_eq!(age(0), "-");
        assert_eq!(utc(0), "-");
        assert_eq!(utc(1_796_162_400_400), "2026-12-01T22:00:00Z");
    }
}
