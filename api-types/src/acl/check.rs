//! The decision: the policies of one token merged into an [`Acl`], and what it allows.
//!
//! Nomad's rules: a namespace's `policy` is shorthand for a set of capabilities ([`expand`]);
//! every policy's rules for the same pattern add up; the rule for a namespace is the one whose
//! pattern equals it, else the glob (`*` matches any run of characters) that matches it with the
//! fewest characters left to the wildcards; a `deny` among its capabilities denies everything.
//! For `node`, `agent` and `operator`, `deny` in any policy wins, else the highest of `read`
//! and `write`.

use std::collections::{BTreeMap, BTreeSet};

use super::{Access, Policy};

pub const CAP_DENY: &str = "deny";
pub const CAP_LIST_JOBS: &str = "list-jobs";
pub const CAP_PARSE_JOB: &str = "parse-job";
pub const CAP_READ_JOB: &str = "read-job";
pub const CAP_SUBMIT_JOB: &str = "submit-job";
pub const CAP_DISPATCH_JOB: &str = "dispatch-job";
pub const CAP_READ_LOGS: &str = "read-logs";
pub const CAP_READ_FS: &str = "read-fs";
pub const CAP_ALLOC_EXEC: &str = "alloc-exec";
pub const CAP_ALLOC_LIFECYCLE: &str = "alloc-lifecycle";
pub const CAP_SCALE_JOB: &str = "scale-job";
pub const CAP_READ_JOB_SCALING: &str = "read-job-scaling";
pub const CAP_LIST_SCALING_POLICIES: &str = "list-scaling-policies";
pub const CAP_READ_SCALING_POLICY: &str = "read-scaling-policy";

/// Every capability a `namespace` block may list (Nomad's, those for objects Nomos does not
/// have yet included, so Nomad policies load unchanged).
pub const NAMESPACE_CAPABILITIES: &[&str] = &[
    CAP_DENY,
    CAP_LIST_JOBS,
    CAP_PARSE_JOB,
    CAP_READ_JOB,
    CAP_SUBMIT_JOB,
    CAP_DISPATCH_JOB,
    CAP_READ_LOGS,
    CAP_READ_FS,
    CAP_ALLOC_EXEC,
    CAP_ALLOC_NODE_EXEC,
    CAP_ALLOC_LIFECYCLE,
    CAP_SCALE_JOB,
    CAP_READ_JOB_SCALING,
    CAP_LIST_SCALING_POLICIES,
    CAP_READ_SCALING_POLICY,
    "csi-register-plugin",
    "csi-write-volume",
    "csi-read-volume",
    "csi-list-volume",
    "csi-mount-volume",
    "submit-recommendation",
    "sentinel-override",
];
const CAP_ALLOC_NODE_EXEC: &str = "alloc-node-exec";

const READ: &[&str] = &[
    CAP_LIST_JOBS,
    CAP_PARSE_JOB,
    CAP_READ_JOB,
    "csi-list-volume",
    "csi-read-volume",
    CAP_READ_JOB_SCALING,
    CAP_LIST_SCALING_POLICIES,
    CAP_READ_SCALING_POLICY,
];
const WRITE_EXTRA: &[&str] = &[
    CAP_SCALE_JOB,
    CAP_SUBMIT_JOB,
    CAP_DISPATCH_JOB,
    CAP_READ_LOGS,
    CAP_READ_FS,
    CAP_ALLOC_EXEC,
    CAP_ALLOC_LIFECYCLE,
    "csi-mount-volume",
    "csi-write-volume",
    "submit-recommendation",
];
const SCALE: &[&str] = &[
    CAP_LIST_SCALING_POLICIES,
    CAP_READ_SCALING_POLICY,
    CAP_READ_JOB_SCALING,
    CAP_SCALE_JOB,
];

/// The capabilities a namespace `policy` stands for.
pub fn expand(policy: &str) -> Vec<&'static str> {
    match policy {
        "deny" => vec![CAP_DENY],
        "read" => READ.to_vec(),
        "write" => READ.iter().chain(WRITE_EXTRA).copied().collect(),
        "scale" => SCALE.to_vec(),
        _ => Vec::new(),
    }
}

/// The merged policies of one token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    management: bool,
    namespaces: BTreeMap<String, BTreeSet<String>>,
    node: Option<Access>,
    agent: Option<Access>,
    operator: Option<Access>,
}

fn max_privilege(a: Option<Access>, b: Option<Access>) -> Option<Access> {
    match (a, b) {
        (Some(Access::Deny), _) | (_, Some(Access::Deny)) => Some(Access::Deny),
        (a, b) => a.max(b),
    }
}

impl Acl {
    /// A management token's: everything is allowed.
    pub fn management() -> Self {
        Acl {
            management: true,
            ..Acl::default()
        }
    }

    /// The merge of `policies` (none: nothing is allowed).
    pub fn new<'p>(policies: impl IntoIterator<Item = &'p Policy>) -> Self {
        let mut acl = Acl::default();
        for p in policies {
            for rule in &p.namespaces {
                acl.namespaces
                    .entry(rule.pattern.clone())
                    .or_default()
                    .extend(rule.capabilities.iter().cloned());
            }
            acl.node = max_privilege(acl.node, p.node);
            acl.agent = max_privilege(acl.agent, p.agent);
            acl.operator = max_privilege(acl.operator, p.operator);
        }
        acl
    }

    pub fn is_management(&self) -> bool {
        self.management
    }

    /// May this token use `capability` in `namespace`?
    pub fn allows_namespace(&self, namespace: &str, capability: &str) -> bool {
        if self.management {
            return true;
        }
        match self.matching(namespace) {
            Some(caps) => !caps.contains(CAP_DENY) && caps.contains(capability),
            None => false,
        }
    }

    /// The capability set that decides for `namespace`: its exact rule, else the closest glob.
    fn matching(&self, namespace: &str) -> Option<&BTreeSet<String>> {
        if let Some(caps) = self.namespaces.get(namespace) {
            if !namespace.contains('*')
                || !self
                    .namespaces
                    .keys()
                    .any(|k| k != namespace && glob_matches(k, namespace))
            {
                return Some(caps);
            }
        }
        self.namespaces
            .iter()
            .filter(|(pattern, _)| pattern.contains('*') && glob_matches(pattern, namespace))
            .min_by_key(|(pattern, _)| {
                namespace
                    .len()
                    .saturating_sub(pattern.replace('*', "").len())
            })
            .map(|(_, caps)| caps)
    }

    pub fn allows_node(&self, need: Access) -> bool {
        self.management || allows(self.node, need)
    }

    pub fn allows_agent(&self, need: Access) -> bool {
        self.management || allows(self.agent, need)
    }

    pub fn allows_operator(&self, need: Access) -> bool {
        self.management || allows(self.operator, need)
    }
}

fn allows(have: Option<Access>, need: Access) -> bool {
    match have {
        None | Some(Access::Deny) => false,
        Some(have) => have >= need,
    }
}

/// Does `pattern` (where `*` matches any run of characters) match all of `text`?
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::parse_policy;

    fn acl(sources: &[&str]) -> Acl {
        let policies: Vec<Policy> = sources
            .iter()
            .map(|s| parse_policy("p.hcl", s).unwrap())
            .collect();
        Acl::new(&policies)
    }

    #[test]
    fn namespace_capabilities_follow_nomads_rules() {
        // (policies, namespace, capability, allowed)
        let table: &[(&[&str], &str, &str, bool)] = &[
            (
                &[r#"namespace "default" { policy = "read" }"#],
                "default",
                CAP_READ_JOB,
                true,
            ),
            (
                &[r#"namespace "default" { policy = "read" }"#],
                "default",
                CAP_LIST_JOBS,
                true,
            ),
            (
                &[r#"namespace "default" { policy = "read" }"#],
                "default",
                CAP_SUBMIT_JOB,
                false,
            ),
            (
                &[r#"namespace "default" { policy = "read" }"#],
                "default",
                CAP_READ_LOGS,
                false,
            ),
            (
                &[r#"namespace "default" { policy = "read" }"#],
                "other",
                CAP_READ_JOB,
                false,
            ),
            (
                &[r#"namespace "default" { policy = "write" }"#],
                "default",
                CAP_SUBMIT_JOB,
                true,
            ),
            (
                &[r#"namespace "default" { policy = "write" }"#],
                "default",
                CAP_ALLOC_LIFECYCLE,
                true,
            ),
            (
                &[r#"namespace "default" { policy = "scale" }"#],
                "default",
                CAP_SCALE_JOB,
                true,
            ),
            (
                &[r#"namespace "default" { policy = "scale" }"#],
                "default",
                CAP_SUBMIT_JOB,
                false,
            ),
            (
                &[r#"namespace "a" { capabilities = ["read-logs"] }"#],
                "a",
                CAP_READ_LOGS,
                true,
            ),
            (
                &[r#"namespace "a" { capabilities = ["read-logs"] }"#],
                "a",
                CAP_READ_JOB,
                false,
            ),
            // Policies add up.
            (
                &[
                    r#"namespace "a" { policy = "read" }"#,
                    r#"namespace "a" { capabilities = ["submit-job"] }"#,
                ],
                "a",
                CAP_SUBMIT_JOB,
                true,
            ),
            // Deny wins, in the same policy or another.
            (
                &["namespace \"a\" {\n policy = \"deny\"\n capabilities = [\"read-job\"]\n}"],
                "a",
                CAP_READ_JOB,
                false,
            ),
            (
                &[
                    r#"namespace "a" { policy = "write" }"#,
                    r#"namespace "a" { policy = "deny" }"#,
                ],
                "a",
                CAP_READ_JOB,
                false,
            ),
            // Globs; the most specific one decides, an exact name beats any glob.
            (
                &[r#"namespace "*" { policy = "read" }"#],
                "anything",
                CAP_READ_JOB,
                true,
            ),
            (
                &[r#"namespace "web-*" { policy = "write" }"#],
                "web-prod",
                CAP_SUBMIT_JOB,
                true,
            ),
            (
                &[r#"namespace "web-*" { policy = "write" }"#],
                "api-prod",
                CAP_SUBMIT_JOB,
                false,
            ),
            (
                &[r#"namespace "*" { policy = "write" }
namespace "web-*" { policy = "deny" }"#],
                "web-1",
                CAP_READ_JOB,
                false,
            ),
            (
                &[r#"namespace "*" { policy = "write" }
namespace "web-*" { policy = "deny" }"#],
                "api",
                CAP_SUBMIT_JOB,
                true,
            ),
            (
                &[r#"namespace "web-*" { policy = "deny" }
namespace "web-prod" { policy = "read" }"#],
                "web-prod",
                CAP_READ_JOB,
                true,
            ),
            (
                &[r#"namespace "*-prod" { policy = "read" }
namespace "web-*" { policy = "write" }"#],
                "web-prod",
                CAP_READ_JOB,
                true,
            ),
            // "*" (every namespace) is covered only by a rule for every namespace.
            (
                &[r#"namespace "a" { policy = "read" }"#],
                "*",
                CAP_READ_JOB,
                false,
            ),
            (
                &[r#"namespace "*" { policy = "read" }"#],
                "*",
                CAP_READ_JOB,
                true,
            ),
            (&[], "default", CAP_READ_JOB, false),
        ];
        for (sources, ns, cap, want) in table {
            assert_eq!(
                acl(sources).allows_namespace(ns, cap),
                *want,
                "{sources:?} {ns} {cap}"
            );
        }
    }

    #[test]
    fn node_agent_operator_take_the_highest_unless_one_denies() {
        let a = acl(&[
            r#"node { policy = "read" }"#,
            r#"node { policy = "write" }"#,
        ]);
        assert!(a.allows_node(Access::Write));
        let a = acl(&[
            r#"node { policy = "write" }"#,
            r#"node { policy = "deny" }"#,
        ]);
        assert!(!a.allows_node(Access::Read));
        let a = acl(&[r#"agent { policy = "read" }"#]);
        assert!(a.allows_agent(Access::Read) && !a.allows_agent(Access::Write));
        assert!(!a.allows_operator(Access::Read) && !a.allows_node(Access::Read));
    }

    #[test]
    fn management_allows_everything() {
        let m = Acl::management();
        assert!(m.allows_namespace("x", CAP_SUBMIT_JOB) && m.allows_node(Access::Write));
        assert!(m.allows_operator(Access::Write) && m.allows_agent(Access::Write));
    }

    #[test]
    fn globs_match_whole_names() {
        for (p, t, want) in [
            ("*", "", true),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*c", "abc", true),
            ("a*c", "ab", false),
            ("a*b*c", "axbyc", true),
            ("a*b*c", "acb", false),
            ("abc", "abc", true),
            ("ab", "abc", false),
        ] {
            assert_eq!(glob_matches(p, t), want, "{p} {t}");
        }
    }
}
