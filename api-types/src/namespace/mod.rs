//! Namespaces and resource quotas as objects, in Nomad's API shapes (PascalCase JSON).
//!
//! - [`Namespace`]: `/nomos/namespaces/<name>`; `default` always exists, stored or not.
//! - [`QuotaSpec`]: `/nomos/quotas/<name>`, attached to namespaces by their `Quota` field; its
//!   `global` region limit caps the CPU (MHz), memory (MB) and, a Nomos extension, the number
//!   of allocations (`Allocations`) that the namespace's non-terminal allocations hold.
//! - [`QuotaUsage`]: what `GET /v1/quota/usage/<name>` answers.
//! - [`hcl`]: Nomad's quota specification file (`nctl quota apply`).
//!
//! Limits follow Nomad: a limit of 0 is unlimited, a negative one disallows the resource.

pub mod hcl;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The namespace every job without one belongs to; it cannot be deleted.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The only region a Nomos cluster has.
pub const GLOBAL_REGION: &str = "global";
/// Longest namespace or quota name (Nomad's rule: `^[a-zA-Z0-9-]{1,128}$`).
pub const MAX_NAME_BYTES: usize = crate::names::MAX_NAMESPACE_BYTES;
/// Longest description (Nomad's limit for namespaces).
pub const MAX_DESCRIPTION_BYTES: usize = 256;
/// Most `Meta` entries on a namespace, and the longest key and value.
pub const MAX_META_ENTRIES: usize = 64;
pub const MAX_META_KEY_BYTES: usize = 128;
pub const MAX_META_VALUE_BYTES: usize = 1024;
/// Most limits in one quota specification (one per region).
pub const MAX_QUOTA_LIMITS: usize = 16;
/// Most namespaces, and most quota specifications, a cluster holds.
pub const MAX_OBJECTS: usize = 10_000;

/// A namespace (Nomad's `Namespace`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Namespace {
    pub name: String,
    pub description: String,
    /// The quota specification limiting the namespace; empty for none.
    pub quota: String,
    pub meta: BTreeMap<String, String>,
    pub create_index: i64,
    pub modify_index: i64,
}

impl Namespace {
    /// The namespace `default` as it is before anyone wrote it.
    pub fn implicit_default() -> Self {
        Namespace {
            name: DEFAULT_NAMESPACE.into(),
            description: "Default shared namespace".into(),
            ..Default::default()
        }
    }
}

/// A quota specification (Nomad's `QuotaSpec`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct QuotaSpec {
    pub name: String,
    pub description: String,
    pub limits: Vec<QuotaLimit>,
    pub create_index: i64,
    pub modify_index: i64,
}

impl QuotaSpec {
    /// The limit of this cluster's region, if the specification has one.
    pub fn global_limit(&self) -> Option<&RegionLimit> {
        self.limits
            .iter()
            .find(|l| l.region == GLOBAL_REGION)
            .map(|l| &l.region_limit)
    }
}

/// One region's limit (Nomad's `QuotaLimit`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct QuotaLimit {
    pub region: String,
    pub region_limit: RegionLimit,
}

/// The resources a quota caps in a region (the part of Nomad's `Resources` Nomos enforces).
/// 0: unlimited; negative: none allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegionLimit {
    /// Total CPU in MHz (Nomad's `CPU`).
    #[serde(rename = "CPU")]
    pub cpu: i64,
    /// Total memory in MB (Nomad's `MemoryMB`).
    #[serde(rename = "MemoryMB")]
    pub memory_mb: i64,
    /// Number of non-terminal allocations: a Nomos extension (HCL `allocations`).
    #[serde(rename = "Allocations")]
    pub allocations: i64,
}

/// What the namespaces under a quota use now (Nomad's `QuotaUsage`): `Used` is keyed by
/// region (Nomad keys it by the limit's hash) and holds the summed usage in the limit's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct QuotaUsage {
    pub name: String,
    pub used: BTreeMap<String, QuotaLimit>,
    /// The namespaces whose allocations are counted (a Nomos extension).
    pub namespaces: Vec<String>,
    pub create_index: i64,
    pub modify_index: i64,
}

/// Checks a namespace or quota name against Nomad's rule: 1 to 128 letters, digits and `-`
/// ([`crate::names::check_namespace`]).
pub fn validate_object_name(what: &str, name: &str) -> Result<(), String> {
    crate::names::check_namespace(what, name)
}

fn check_description(what: &str, description: &str) -> Result<(), String> {
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(format!(
            "{what} description is {} bytes, over the limit of {MAX_DESCRIPTION_BYTES}",
            description.len()
        ));
    }
    Ok(())
}

/// Checks a namespace: its name, description, quota name and meta, each against its limit.
pub fn validate_namespace(ns: &Namespace) -> Result<(), String> {
    validate_object_name("namespace name", &ns.name)?;
    check_description("namespace", &ns.description)?;
    if !ns.quota.is_empty() {
        validate_object_name("quota name", &ns.quota)?;
    }
    if ns.meta.len() > MAX_META_ENTRIES {
        return Err(format!(
            "namespace meta has {} entries, over the limit of {MAX_META_ENTRIES}",
            ns.meta.len()
        ));
    }
    for (k, v) in &ns.meta {
        if k.is_empty() || k.len() > MAX_META_KEY_BYTES {
            return Err(format!(
                "namespace meta key {k:?} must be 1 to {MAX_META_KEY_BYTES} bytes"
            ));
        }
        if v.len() > MAX_META_VALUE_BYTES {
            return Err(format!(
                "namespace meta value of {k:?} is {} bytes, over the limit of {MAX_META_VALUE_BYTES}",
                v.len()
            ));
        }
    }
    Ok(())
}

/// Checks a quota specification: name, description, at most one limit per region, and only
/// this cluster's region (`global`).
pub fn validate_quota(q: &QuotaSpec) -> Result<(), String> {
    validate_object_name("quota name", &q.name)?;
    check_description("quota", &q.description)?;
    if q.limits.is_empty() {
        return Err(format!(
            "quota {:?} has no limits: expected a limit for region \"global\"",
            q.name
        ));
    }
    if q.limits.len() > MAX_QUOTA_LIMITS {
        return Err(format!(
            "quota {:?} has {} limits, over the limit of {MAX_QUOTA_LIMITS}",
            q.name,
            q.limits.len()
        ));
    }
    let mut seen = Vec::new();
    for (i, l) in q.limits.iter().enumerate() {
        if l.region != GLOBAL_REGION {
            return Err(format!(
                "Limits[{i}].Region is {:?}: this cluster has one region, \"global\"",
                l.region
            ));
        }
        if seen.contains(&&l.region) {
            return Err(format!(
                "Limits[{i}].Region {:?} has more than one limit",
                l.region
            ));
        }
        seen.push(&l.region);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_nomads_rule() {
        for ok in ["default", "team-a", "A1", &"x".repeat(128)] {
            assert!(validate_object_name("namespace", ok).is_ok(), "{ok}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "empty"),
            ("a/b", "'/'"),
            ("..", "\"..\""),
            ("team_a", "'_'"),
            ("team a", "\\u{0020}"),
            (&"x".repeat(129), "1 to 128"),
        ];
        for (name, want) in bad {
            let e = validate_object_name("namespace", name).unwrap_err();
            assert!(e.contains(want), "{name:?}: {e}");
        }
    }

    #[test]
    fn a_namespace_over_its_limits_is_refused_naming_the_field() {
        let mut ns = Namespace {
            name: "a".into(),
            description: "d".repeat(257),
            ..Default::default()
        };
        assert!(validate_namespace(&ns).unwrap_err().contains("description"));
        ns.description.clear();
        ns.quota = "bad quota".into();
        assert!(validate_namespace(&ns).unwrap_err().contains("quota name"));
        ns.quota.clear();
        ns.meta = (0..65).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(validate_namespace(&ns).unwrap_err().contains("meta"));
    }

    #[test]
    fn a_quota_needs_one_global_limit() {
        let mut q = QuotaSpec {
            name: "q".into(),
            ..Default::default()
        };
        assert!(validate_quota(&q).unwrap_err().contains("no limits"));
        q.limits.push(QuotaLimit {
            region: "eu".into(),
            region_limit: RegionLimit::default(),
        });
        assert!(validate_quota(&q).unwrap_err().contains("Limits[0].Region"));
        q.limits[0].region = "global".into();
        assert!(validate_quota(&q).is_ok());
        q.limits.push(q.limits[0].clone());
        assert!(validate_quota(&q).unwrap_err().contains("more than one"));
    }

    #[test]
    fn the_api_shape_is_nomads() {
        let q: QuotaSpec = serde_json::from_str(
            r#"{"Name":"q","Limits":[{"Region":"global","RegionLimit":{"CPU":2500,"MemoryMB":1000,"Allocations":3,"Networks":null}}]}"#,
        )
        .unwrap();
        let l = q.global_limit().unwrap();
        assert_eq!((l.cpu, l.memory_mb, l.allocations), (2500, 1000, 3));
    }
}
