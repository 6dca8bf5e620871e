//! Variables, in Nomad's JSON shapes (`/v1/var/:path`, `/v1/vars`): the metadata every list
//! shows, a variable with its items, the lock block, the write request, and the rules every
//! input is held to (Nomad's path syntax, 64 KiB of items, lock TTLs of 10 s to 24 h).
//!
//! Pure: the server seals items with its keyring and keeps them in the store; `nctl var` and
//! the server share these shapes.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::{format_duration, parse_duration};

/// Longest variable path, in bytes (Nomad's).
pub const MAX_PATH_BYTES: usize = 128;
/// Largest total size of a variable's items: the bytes of every key and value (Nomad's).
pub const MAX_ITEMS_BYTES: usize = 64 * 1024;
/// Most items one variable may hold.
pub const MAX_ITEMS: usize = 1024;
/// Shortest and longest lock TTL (Nomad's), in nanoseconds.
pub const MIN_LOCK_TTL_NS: u64 = 10 * SECOND_NS;
pub const MAX_LOCK_TTL_NS: u64 = 24 * 3600 * SECOND_NS;
/// Lock TTL and delay when the request leaves them out (Nomad's), in nanoseconds.
pub const DEFAULT_LOCK_TTL_NS: u64 = 15 * SECOND_NS;
pub const DEFAULT_LOCK_DELAY_NS: u64 = 15 * SECOND_NS;
const SECOND_NS: u64 = 1_000_000_000;

/// A variable's items: names to secret values.
pub type Items = BTreeMap<String, String>;

/// A lock over a variable (Nomad's `VariableLock`): `TTL` and `LockDelay` travel as Go
/// durations (`"15s"`); numbers are read as nanoseconds, as Nomad does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VariableLock {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(
        rename = "TTL",
        default,
        serialize_with = "ser_duration",
        deserialize_with = "de_duration"
    )]
    pub ttl_ns: u64,
    #[serde(
        rename = "LockDelay",
        default,
        serialize_with = "ser_duration",
        deserialize_with = "de_duration"
    )]
    pub lock_delay_ns: u64,
}

fn ser_duration<S: Serializer>(ns: &u64, s: S) -> Result<S::Ok, S::Error> {
    if *ns == 0 {
        s.serialize_str("")
    } else {
        s.serialize_str(&format_duration(*ns))
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(f64),
        Null(()),
    }
    match Raw::deserialize(d)? {
        Raw::Text(t) if t.is_empty() => Ok(0),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        Raw::Number(n) if n >= 0.0 && n.is_finite() => Ok(n as u64),
        Raw::Number(n) => Err(serde::de::Error::custom(format!(
            "expected a positive duration, found {n}"
        ))),
        Raw::Null(()) => Ok(0),
    }
}

/// What every list shows of a variable (Nomad's `VariableMetadata`); times are Unix
/// nanoseconds, indexes the store revisions that created and last changed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VariableMetadata {
    pub namespace: String,
    pub path: String,
    /// Shown only to the lock's holder and management tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<VariableLock>,
    #[serde(default)]
    pub create_index: i64,
    #[serde(default)]
    pub create_time: i64,
    #[serde(default)]
    pub modify_index: i64,
    #[serde(default)]
    pub modify_time: i64,
}

/// A variable with its items (Nomad's `VariableDecrypted`); `Items` is left out where the
/// caller may not read them (a conflict shown to a writer without `read`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    #[serde(flatten)]
    pub meta: VariableMetadata,
    #[serde(rename = "Items", default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Items>,
}

/// The body of `PUT /v1/var/:path` (also with `?lock-acquire`, `?lock-renew`,
/// `?lock-release`). `Namespace` and `Path` may be left out; when given they must match the
/// request's. Other fields are refused, except the indexes and times Nomad's clients send
/// with every write, which the server ignores (it assigns them; `?cas=` compares).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct VariableRequest {
    pub namespace: String,
    pub path: String,
    pub items: Option<Items>,
    pub lock: Option<VariableLock>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_index: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modify_index: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modify_time: Option<i64>,
}

/// Checks a variable path as Nomad does: 1 to [`MAX_PATH_BYTES`] bytes of letters, digits,
/// `-`, `_`, `~` and `/`, with no empty segment (so no leading, trailing or doubled `/`);
/// under the reserved top-level `nomad/`, only `nomad/jobs[/...]`, `nomad/sentinel[/...]` and
/// `nomad/job-templates/<name>`. (`.` is never allowed, so `..` cannot appear.)
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "variable path must be 1 to {MAX_PATH_BYTES} bytes, found {} bytes",
            path.len()
        ));
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '~' | '/')))
    {
        return Err(format!(
            "variable path {path:?} holds {c:?}: expected letters, digits, '-', '_', '~' and '/'"
        ));
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "variable path {path:?} has an empty segment: no leading, trailing or doubled '/'"
        ));
    }
    if parts[0] != "nomad" {
        return Ok(());
    }
    match (parts.get(1).copied(), parts.len()) {
        (None, _) => Err("\"nomad\" is a reserved top-level path: variables may be written at \"nomad/jobs\", \"nomad/job-templates/<name>\", \"nomad/sentinel\" or below".into()),
        (Some("jobs" | "sentinel"), _) | (Some("job-templates"), 3) => Ok(()),
        (Some("job-templates"), _) => Err("\"nomad/job-templates\" takes exactly one more segment, such as \"nomad/job-templates/name\"".into()),
        (Some(_), _) => Err(format!("variable path {path:?} is under the reserved \"nomad/\": only \"nomad/jobs\", \"nomad/job-templates\" and \"nomad/sentinel\" and below are allowed")),
    }
}

/// The size Nomad counts against [`MAX_ITEMS_BYTES`]: the bytes of every key and value.
pub fn items_size(items: &Items) -> usize {
    items.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Checks a variable's items: at least one unless `allow_empty` (a lock's variable), at most
/// [`MAX_ITEMS`], non-empty keys, [`MAX_ITEMS_BYTES`] in all.
pub fn validate_items(items: &Items, allow_empty: bool) -> Result<(), String> {
    if items.is_empty() && !allow_empty {
        return Err("Items: a variable needs at least one item".into());
    }
    if items.len() > MAX_ITEMS {
        return Err(format!(
            "Items: at most {MAX_ITEMS} items, found {}",
            items.len()
        ));
    }
    if items.keys().any(String::is_empty) {
        return Err("Items: an item's key may not be empty".into());
    }
    let size = items_size(items);
    if size > MAX_ITEMS_BYTES {
        return Err(format!(
            "Items: variables are limited to {MAX_ITEMS_BYTES} bytes (64 KiB) of keys and values, found {size}"
        ));
    }
    Ok(())
}

/// Fills a lock request's defaults and checks its TTL (10 s to 24 h, Nomad's range).
pub fn canonical_lock(requested: Option<&VariableLock>) -> Result<VariableLock, String> {
    let mut lock = requested.cloned().unwrap_or_default();
    if lock.ttl_ns == 0 {
        lock.ttl_ns = DEFAULT_LOCK_TTL_NS;
    }
    if lock.lock_delay_ns == 0 {
        lock.lock_delay_ns = DEFAULT_LOCK_DELAY_NS;
    }
    if !(MIN_LOCK_TTL_NS..=MAX_LOCK_TTL_NS).contains(&lock.ttl_ns) {
        return Err(format!(
            "Lock.TTL must be between 10s and 24h, found {}",
            format_duration(lock.ttl_ns)
        ));
    }
    if lock.lock_delay_ns > MAX_LOCK_TTL_NS {
        return Err(format!(
            "Lock.LockDelay must be at most 24h, found {}",
            format_duration(lock.lock_delay_ns)
        ));
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_nomads_rules() {
        let ok = [
            "a",
            "a/b",
            "app-1/db_pass~x",
            "nomad/jobs",
            "nomad/jobs/web/g/t",
            "nomad/sentinel/x",
            "nomad/job-templates/t1",
            "nomadic/x",
        ];
        for p in ok {
            assert_eq!(validate_path(p), Ok(()), "{p}");
        }
        let long = "a".repeat(MAX_PATH_BYTES + 1);
        let bad: &[(&str, &str)] = &[
            ("", "1 to 128 bytes"),
            (&long, "found 129 bytes"),
            ("/a", "empty segment"),
            ("a/", "empty segment"),
            ("a//b", "empty segment"),
            ("../etc", "holds '.'"),
            ("a/../b", "holds '.'"),
            ("a b", "holds ' '"),
            ("a@b", "holds '@'"),
            ("ünï", "holds 'ü'"),
            ("nomad", "reserved top-level"),
            ("nomad/other", "reserved \"nomad/\""),
            ("nomad/job-templates", "exactly one more segment"),
            ("nomad/job-templates/a/b", "exactly one more segment"),
        ];
        for (p, want) in bad {
            let e = validate_path(p).unwrap_err();
            assert!(e.contains(want), "{p:?}: {e}");
        }
    }

    #[test]
    fn items_are_limited_in_count_and_size() {
        let one = Items::from([("k".to_string(), "v".to_string())]);
        assert_eq!(validate_items(&one, false), Ok(()));
        assert!(validate_items(&Items::new(), false)
            .unwrap_err()
            .contains("at least one"));
        assert_eq!(validate_items(&Items::new(), true), Ok(()));
        let empty_key = Items::from([(String::new(), "v".to_string())]);
        assert!(validate_items(&empty_key, false)
            .unwrap_err()
            .contains("key may not be empty"));
        let exactly = Items::from([("k".to_string(), "v".repeat(MAX_ITEMS_BYTES - 1))]);
        assert_eq!(validate_items(&exactly, false), Ok(()));
        let over = Items::from([("k".to_string(), "v".repeat(MAX_ITEMS_BYTES))]);
        assert!(validate_items(&over, false)
            .unwrap_err()
            .contains("found 65537"));
        let many: Items = (0..=MAX_ITEMS)
            .map(|i| (i.to_string(), String::new()))
            .collect();
        assert!(validate_items(&many, false)
            .unwrap_err()
            .contains("at most 1024"));
    }

    #[test]
    fn locks_take_defaults_and_bounded_ttls() {
        let l = canonical_lock(None).unwrap();
        assert_eq!(
            (l.ttl_ns, l.lock_delay_ns),
            (15 * SECOND_NS, 15 * SECOND_NS)
        );
        let short = VariableLock {
            ttl_ns: SECOND_NS,
            ..Default::default()
        };
        assert!(canonical_lock(Some(&short))
            .unwrap_err()
            .contains("between 10s and 24h"));
        let long = VariableLock {
            ttl_ns: MAX_LOCK_TTL_NS + 1,
            ..Default::default()
        };
        assert!(canonical_lock(Some(&long)).is_err());
    }

    #[test]
    fn lock_durations_read_go_strings_and_nanoseconds() {
        let l: VariableLock =
            serde_json::from_str(r#"{"ID":"x","TTL":"1m","LockDelay":15000000000}"#).unwrap();
        assert_eq!(
            (l.ttl_ns, l.lock_delay_ns),
            (60 * SECOND_NS, 15 * SECOND_NS)
        );
        let shown = serde_json::to_value(&l).unwrap();
        assert_eq!(shown["TTL"], "1m0s");
        assert_eq!(shown["LockDelay"], "15s");
        assert!(serde_json::from_str::<VariableLock>(r#"{"TTL":"soon"}"#).is_err());
        assert!(serde_json::from_str::<VariableLock>(r#"{"TTL":-5}"#).is_err());
    }

    #[test]
    fn a_variable_without_readable_items_leaves_them_out() {
        let v = Variable {
            meta: VariableMetadata {
                namespace: "default".into(),
                path: "a/b".into(),
                ..Default::default()
            },
            items: None,
        };
        let json = serde_json::to_value(&v).unwrap();
        assert!(json.get("Items").is_none());
        assert!(json.get("Lock").is_none());
        assert_eq!(json["Path"], "a/b");
    }
}
