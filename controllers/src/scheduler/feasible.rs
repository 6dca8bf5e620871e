//! Feasibility: whether a node may run a task group at all. Constraints are compiled once per
//! placement batch (regexes and version requirements parsed up front), then checked per node.
//! Targets are interpolated from the node: `${attr.*}`, `${meta.*}`, `${node.unique.name}`,
//! `${node.unique.id}`, `${node.datacenter}`, `${node.class}`, `${node.pool}`.

use std::cmp::Ordering;

use nomos_api::{Constraint, Node, TaskGroup};
use regex::Regex;

/// Resolves `${...}` references against a node; literal text is returned as is. `None` when a
/// referenced attribute is not set.
pub fn resolve(target: &str, node: &Node) -> Option<String> {
    let t = target.trim();
    if let Some(inner) = t.strip_prefix("${").and_then(|s| s.strip_suffix('}')) {
        return resolve_ref(inner.trim(), node);
    }
    if !t.contains("${") {
        return Some(t.to_string());
    }
    // Mixed text: replace every reference; an unset one makes the whole value unset.
    let mut out = String::new();
    let mut rest = t;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        out.push_str(&resolve_ref(after[..end].trim(), node)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn resolve_ref(r: &str, node: &Node) -> Option<String> {
    if let Some(a) = r.strip_prefix("attr.") {
        return node.attributes.get(a).cloned().or_else(|| {
            // `driver.<name>` attributes are derived from the driver fingerprint.
            let d = a.strip_prefix("driver.")?;
            let info = node.drivers.get(d)?;
            info.detected.then(|| "1".to_string())
        });
    }
    if let Some(m) = r.strip_prefix("meta.") {
        return node.meta.get(m).cloned();
    }
    match r {
        "node.unique.name" => Some(node.name.clone()),
        "node.unique.id" => Some(node.id.clone()),
        "node.datacenter" => Some(node.datacenter.clone()),
        "node.class" => Some(node.node_class.clone()),
        "node.pool" => Some(node.node_pool.clone()),
        _ => None,
    }
}

/// A constraint ready to be checked against nodes.
#[derive(Debug, Clone)]
pub struct CompiledConstraint {
    pub source: Constraint,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Compare(Op),
    Regex(Option<Regex>),
    Version(Option<Vec<(Op, Version)>>),
    SetContains,
    SetContainsAny,
    IsSet,
    IsNotSet,
    /// Checked by the placement loop, which knows the job's other allocations.
    DistinctHosts,
    DistinctProperty,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Pessimistic,
}

impl CompiledConstraint {
    pub fn compile(c: &Constraint) -> Self {
        let kind = match c.operator.trim() {
            "" | "=" | "==" | "is" => Kind::Compare(Op::Eq),
            "!=" | "not" => Kind::Compare(Op::Ne),
            ">" => Kind::Compare(Op::Gt),
            ">=" => Kind::Compare(Op::Ge),
            "<" => Kind::Compare(Op::Lt),
            "<=" => Kind::Compare(Op::Le),
            "regexp" => Kind::Regex(Regex::new(&c.value).ok()),
            "version" | "semver" => Kind::Version(parse_requirement(&c.value)),
            "set_contains" | "set_contains_all" => Kind::SetContains,
            "set_contains_any" => Kind::SetContainsAny,
            "is_set" => Kind::IsSet,
            "is_not_set" => Kind::IsNotSet,
            "distinct_hosts" => Kind::DistinctHosts,
            "distinct_property" => Kind::DistinctProperty,
            _ => Kind::Unknown,
        };
        CompiledConstraint {
            source: c.clone(),
            kind,
        }
    }

    pub fn is_distinct_hosts(&self) -> bool {
        matches!(self.kind, Kind::DistinctHosts)
    }

    pub fn is_distinct_property(&self) -> bool {
        matches!(self.kind, Kind::DistinctProperty)
    }

    /// Human-readable form used in failure summaries, e.g. `${attr.kernel.name} = windows`.
    pub fn describe(&self) -> String {
        let c = &self.source;
        let op = if c.operator.is_empty() {
            "="
        } else {
            c.operator.as_str()
        };
        if c.value.is_empty() {
            format!("{} {}", c.attribute, op)
        } else {
            format!("{} {} {}", c.attribute, op, c.value)
        }
    }

    /// Whether the node satisfies the constraint. Distinct constraints always pass here.
    pub fn matches(&self, node: &Node) -> bool {
        self.matches_with(|target| resolve(target, node))
    }

    /// Whether the constraint holds with its `${...}` references resolved by `resolve` (a
    /// node's attributes, or a device group's for a `device` block's constraints).
    pub fn matches_with(&self, resolve: impl Fn(&str) -> Option<String>) -> bool {
        let lhs = resolve(&self.source.attribute);
        match &self.kind {
            Kind::DistinctHosts | Kind::DistinctProperty => true,
            Kind::IsSet => lhs.is_some(),
            Kind::IsNotSet => lhs.is_none(),
            Kind::Unknown => false,
            kind => {
                let Some(lhs) = lhs else { return false };
                let Some(rhs) = resolve(&self.source.value) else {
                    return false;
                };
                match kind {
                    Kind::Compare(op) => compare(&lhs, &rhs, *op),
                    Kind::Regex(Some(re)) => re.is_match(&lhs),
                    Kind::Regex(None) => false,
                    Kind::Version(Some(req)) => match Version::parse(&lhs) {
                        Some(v) => req.iter().all(|(op, want)| version_matches(&v, *op, want)),
                        None => false,
                    },
                    Kind::Version(None) => false,
                    Kind::SetContains => {
                        let have = set(&lhs);
                        set(&rhs).iter().all(|x| have.contains(x))
                    }
                    Kind::SetContainsAny => {
                        let have = set(&lhs);
                        set(&rhs).iter().any(|x| have.contains(x))
                    }
                    _ => false,
                }
            }
        }
    }
}

fn set(s: &str) -> Vec<&str> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .collect()
}

/// `=`/`!=` compare text; ordering operators compare numerically when both sides are numbers,
/// lexically otherwise (as Nomad does). Quantities with units (`16384 MiB`, `4 GiB`) compare
/// as amounts of their base, for every operator.
fn compare(lhs: &str, rhs: &str, op: Op) -> bool {
    if let Some((a, b)) = super::units::comparable(lhs, rhs) {
        return match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Pessimistic => false,
        };
    }
    let ord = match (lhs.parse::<f64>(), rhs.parse::<f64>()) {
        (Ok(a), Ok(b)) if op != Op::Eq && op != Op::Ne => a.partial_cmp(&b),
        _ => Some(lhs.cmp(rhs)),
    };
    let Some(ord) = ord else { return false };
    match op {
        Op::Eq => lhs == rhs,
        Op::Ne => lhs != rhs,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Pessimistic => false,
    }
}

/// A version: numeric segments and an optional pre-release tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    parts: Vec<u64>,
    pre: Option<String>,
}

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim().trim_start_matches('v');
        let s = s.split('+').next()?; // build metadata never counts
        let (core, pre) = match s.find('-') {
            Some(i) => (&s[..i], Some(s[i + 1..].to_string())),
            None => (s, None),
        };
        if core.is_empty() {
            return None;
        }
        let parts = core
            .split('.')
            .map(|p| p.parse::<u64>().ok())
            .collect::<Option<Vec<_>>>()?;
        Some(Version { parts, pre })
    }

    fn segment(&self, i: usize) -> u64 {
        self.parts.get(i).copied().unwrap_or(0)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        for i in 0..n {
            match self.segment(i).cmp(&other.segment(i)) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `">= 1.2, < 2.0"`, `"~> 1.4"`, `"1.2.3"` (exact).
fn parse_requirement(s: &str) -> Option<Vec<(Op, Version)>> {
    let mut out = Vec::new();
    for clause in s.split(',') {
        let c = clause.trim();
        if c.is_empty() {
            continue;
        }
        let (op, rest) = if let Some(r) = c.strip_prefix(">=") {
            (Op::Ge, r)
        } else if let Some(r) = c.strip_prefix("<=") {
            (Op::Le, r)
        } else if let Some(r) = c.strip_prefix("!=") {
            (Op::Ne, r)
        } else if let Some(r) = c.strip_prefix("~>") {
            (Op::Pessimistic, r)
        } else if let Some(r) = c.strip_prefix('>') {
            (Op::Gt, r)
        } else if let Some(r) = c.strip_prefix('<') {
            (Op::Lt, r)
        } else if let Some(r) = c.strip_prefix('=') {
            (Op::Eq, r)
        } else {
            (Op::Eq, c)
        };
        out.push((op, Version::parse(rest)?));
    }
    (!out.is_empty()).then_some(out)
}

fn version_matches(v: &Version, op: Op, want: &Version) -> bool {
    match op {
        Op::Eq => v == want || v.cmp(want) == Ordering::Equal,
        Op::Ne => v.cmp(want) != Ordering::Equal,
        Op::Gt => v > want,
        Op::Ge => v >= want,
        Op::Lt => v < want,
        Op::Le => v <= want,
        Op::Pessimistic => {
            // ~> 1.4.2 means >= 1.4.2, < 1.5; ~> 1.4 means >= 1.4, < 2.
            if v < want {
                return false;
            }
            let keep = want.parts.len().saturating_sub(1).max(1);
            (0..keep).all(|i| v.segment(i) == want.segment(i))
        }
    }
}

/// Why a node lacking a group's host volumes is filtered out, worded as Nomad words it.
pub const MISSING_HOST_VOLUMES: &str = "missing compatible host volumes";

/// Whether the node publishes every host volume the group asks for, writable wherever the
/// group asks for write access.
pub fn host_volumes_fit(group: &TaskGroup, node: &Node) -> bool {
    group.volumes.values().all(|want| {
        node.host_volumes
            .get(&want.source)
            .is_some_and(|have| want.read_only || !have.read_only)
    })
}

/// Whether a datacenter matches one of the job's patterns (`*` globs allowed).
pub fn datacenter_matches(patterns: &[String], dc: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| glob(p, dc))
}

/// Minimal `*` glob.
pub fn glob(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut pos = 0usize;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        if i == 0 {
            if !text.starts_with(part) {
                return false;
            }
            pos = part.len();
        } else if i == parts.len() - 1 {
            return text.len() >= pos + part.len() && text[pos..].ends_with(part);
        } else {
            match text[pos..].find(part) {
                Some(j) => pos += j + part.len(),
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::{HostVolume, VolumeRequest};

    fn node_with(volumes: &[(&str, bool)]) -> Node {
        let host_volumes = volumes
            .iter()
            .map(|&(name, read_only)| {
                let path = format!("/srv/{name}");
                (name.to_string(), HostVolume { path, read_only })
            })
            .collect();
        Node {
            name: "n1".into(),
            host_volumes,
            ..Node::default()
        }
    }

    fn group_wanting(volumes: &[(&str, bool)]) -> TaskGroup {
        let volumes = volumes
            .iter()
            .map(|&(source, read_only)| {
                let request = VolumeRequest {
                    name: format!("v-{source}"),
                    volume_type: "host".into(),
                    source: source.into(),
                    read_only,
                };
                (request.name.clone(), request)
            })
            .collect();
        TaskGroup {
            volumes,
            ..TaskGroup::default()
        }
    }

    /// Volume names with their `read_only`.
    type Volumes = &'static [(&'static str, bool)];

    #[test]
    fn a_group_fits_only_nodes_with_every_compatible_host_volume() {
        // (case, asked by the group, offered by the node, fits)
        let cases: &[(&str, Volumes, Volumes, bool)] = &[
            ("no volumes asked", &[], &[], true),
            (
                "no volumes asked, some offered",
                &[],
                &[("data", false)],
                true,
            ),
            (
                "writable asked, writable offered",
                &[("data", false)],
                &[("data", false)],
                true,
            ),
            (
                "read-only asked, writable offered",
                &[("data", true)],
                &[("data", false)],
                true,
            ),
            (
                "read-only asked, read-only offered",
                &[("data", true)],
                &[("data", true)],
                true,
            ),
            (
                "writable asked, read-only offered",
                &[("data", false)],
                &[("data", true)],
                false,
            ),
            ("missing volume", &[("data", false)], &[], false),
            (
                "another volume only",
                &[("data", false)],
                &[("logs", false)],
                false,
            ),
            (
                "one of two missing",
                &[("data", false), ("logs", true)],
                &[("data", false)],
                false,
            ),
            (
                "both present",
                &[("data", false), ("logs", true)],
                &[("logs", false), ("data", false)],
                true,
            ),
        ];
        for (what, wanted, offered, fits) in cases {
            let got = host_volumes_fit(&group_wanting(wanted), &node_with(offered));
            assert_eq!(got, *fits, "{what}");
        }
    }
}
