//! The decision: the policies of one token merged into an [`Acl`], and what it allows.
//!
//! Nomad's rules: a namespace's `policy` is shorthand for a set of capabilities ([`expand`]);
//! every policy's rules for the same pattern add up; the rule for a namespace is the one whose
//! pattern equals it, else the glob (`*` matches any run of characters) that matches it with the
//! fewest characters left to the wildcards; a `deny` among its capabilities denies everything.
//! For `node`, `agent` and `operator`, `deny` in any policy wins, else the highest of `read`
//! and `write`.
//!
//! Variables ([`Acl::allows_variable`]), as Nomad decides them: the path rules of every policy
//! for the same namespace and path patterns add up; the rule whose namespace and path are both
//! exact decides, else a workload's implicit read and list on its own `nomad/jobs/<job>[/<group>
//! [/<task>]]` (and `nomad/jobs`), else the glob rule with the fewest characters left to its
//! wildcards; a `deny` in the deciding rule denies everything. A namespace's `policy` grants no
//! variable capability (Nomad's), only `variables` blocks do.

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
/// Running commands inside `raw_exec` tasks (besides [`CAP_ALLOC_EXEC`]), as Nomad asks.
pub const CAP_ALLOC_NODE_EXEC: &str = "alloc-node-exec";

/// Variable capabilities (a `variables { path "..." { capabilities = [...] } }` list).
pub const VAR_READ: &str = "read";
pub const VAR_WRITE: &str = "write";
pub const VAR_LIST: &str = "list";
pub const VAR_DESTROY: &str = "destroy";
pub const VAR_DENY: &str = "deny";
/// Every capability a variables `path` block may list.
pub const VARIABLE_CAPABILITIES: &[&str] = &[VAR_WRITE, VAR_READ, VAR_LIST, VAR_DESTROY, VAR_DENY];

/// A path rule's capabilities as Nomad documents them: `deny` stands alone, `read` and
/// `write` each bring `list`.
pub fn expand_variable_capabilities(mut caps: Vec<String>) -> Vec<String> {
    if caps.iter().any(|c| c == VAR_DENY) {
        return vec![VAR_DENY.to_string()];
    }
    if caps.iter().any(|c| c == VAR_READ || c == VAR_WRITE) {
        caps.push(VAR_LIST.to_string());
    }
    caps.sort();
    caps.dedup();
    caps
}

/// The workload a workload identity stands for: its implicit variable access
/// (`nomad/jobs/<job>[/<group>[/<task>]]` in its namespace) is checked against this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadClaim {
    pub namespace: String,
    pub job: String,
    pub group: String,
    pub task: String,
}

impl WorkloadClaim {
    /// Does this workload read `path` in `namespace` without any policy?
    fn implicitly_reads(&self, namespace: &str, path: &str) -> bool {
        if namespace != self.namespace {
            return false;
        }
        let Some(rest) = path.strip_prefix("nomad/jobs") else {
            return false;
        };
        let own = [
            String::new(),
            format!("/{}", self.job),
            format!("/{}/{}", self.job, self.group),
            format!("/{}/{}/{}", self.job, self.group, self.task),
        ];
        own.iter().any(|o| o == rest)
    }
}

/// The key of a variables rule: namespace pattern and path pattern joined by NUL (neither
/// may hold one), so one glob test covers both, as in Nomad.
fn variable_key(namespace: &str, path: &str) -> String {
    format!("{namespace}\0{path}")
}

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
    /// Variables rules by [`variable_key`] of their namespace and path patterns.
    variables: BTreeMap<String, BTreeSet<String>>,
    /// Set for a workload identity's caller.
    workload: Option<WorkloadClaim>,
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
                for var in &rule.variables {
                    acl.variables
                        .entry(variable_key(&rule.pattern, &var.path))
                        .or_default()
                        .extend(var.capabilities.iter().cloned());
                }
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

    /// May this token use `capability` in at least one namespace? (Nomad's rule for the `*`
    /// of a list over every namespace: the list is then filtered per object.)
    pub fn allows_namespace_somewhere(&self, capability: &str) -> bool {
        self.management
            || self
                .namespaces
                .values()
                .any(|caps| !caps.contains(CAP_DENY) && caps.contains(capability))
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

    /// This ACL for a workload identity's caller: the same policies plus the workload's
    /// implicit access to its own variables.
    pub fn with_workload(mut self, claim: WorkloadClaim) -> Self {
        self.workload = Some(claim);
        self
    }

    /// The workload this ACL stands for, if it is a workload identity's.
    pub fn workload(&self) -> Option<&WorkloadClaim> {
        self.workload.as_ref()
    }

    /// May this token use the variable `capability` (`read`, `write`, `list`, `destroy`) on
    /// `path` in `namespace`?
    pub fn allows_variable(&self, namespace: &str, path: &str, capability: &str) -> bool {
        if self.management {
            return true;
        }
        let key = variable_key(namespace, path);
        let caps = match self.variables.get(&key) {
            Some(caps) if !key.contains('*') => Some(caps),
            _ if self
                .workload
                .as_ref()
                .is_some_and(|w| w.implicitly_reads(namespace, path)) =>
            {
                return capability == VAR_READ || capability == VAR_LIST;
            }
            _ => self.closest_variable_glob(&key),
        };
        caps.is_some_and(|caps| !caps.contains(VAR_DENY) && caps.contains(capability))
    }

    /// Could this token see any variable at all (a rule, a workload's own paths, management)?
    /// Lists answer 403 when not, as Nomad's do, and are otherwise filtered per variable.
    pub fn allows_variables_anywhere(&self) -> bool {
        self.management || self.workload.is_some() || !self.variables.is_empty()
    }

    fn closest_variable_glob(&self, key: &str) -> Option<&BTreeSet<String>> {
        self.variables
            .iter()
            .filter(|(pattern, _)| pattern.contains('*') && glob_matches(pattern, key))
            .min_by_key(|(pattern, _)| key.len().saturating_sub(pattern.replace('*', "").len()))
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
    fn somewhere_is_any_namespace_rule_that_grants_without_deny() {
        assert!(
            acl(&[r#"namespace "a" { policy = "read" }"#]).allows_namespace_somewhere(CAP_READ_JOB)
        );
        assert!(acl(&[r#"namespace "web-*" { policy = "read" }"#])
            .allows_namespace_somewhere(CAP_LIST_JOBS));
        assert!(!acl(&[r#"namespace "a" { policy = "deny" }"#])
            .allows_namespace_somewhere(CAP_READ_JOB));
        assert!(!acl(&[r#"node { policy = "read" }"#]).allows_namespace_somewhere(CAP_READ_JOB));
        assert!(!acl(&[r#"namespace "a" { policy = "scale" }"#])
            .allows_namespace_somewhere(CAP_SUBMIT_JOB));
        assert!(Acl::management().allows_namespace_somewhere(CAP_SUBMIT_JOB));
    }

    #[test]
    fn variable_capabilities_follow_nomads_rules() {
        let a_read = r#"namespace "default" {
  variables {
    path "a/*" { capabilities = ["read"] }
  }
}"#;
        let mixed = r#"namespace "dev" {
  variables {
    path "project/*" { capabilities = ["write", "read", "destroy"] }
    path "project/secret/*" { capabilities = ["deny"] }
    path "project/secret/open" { capabilities = ["read"] }
    path "system/*" { capabilities = ["list"] }
  }
}
namespace "*" {
  policy = "write"
  variables {
    path "shared/*" { capabilities = ["read"] }
  }
}"#;
        // (policies, namespace, path, capability, allowed)
        let table: &[(&[&str], &str, &str, &str, bool)] = &[
            (&[a_read], "default", "a/b", VAR_READ, true),
            (&[a_read], "default", "a/b", VAR_LIST, true),
            (&[a_read], "default", "a/b", VAR_WRITE, false),
            (&[a_read], "default", "a/b", VAR_DESTROY, false),
            (&[a_read], "default", "b/c", VAR_READ, false),
            (&[a_read], "other", "a/b", VAR_READ, false),
            // The glob matches the empty string, but "a" is not "a/".
            (&[a_read], "default", "a/", VAR_READ, true),
            (&[a_read], "default", "a", VAR_READ, false),
            (&[mixed], "dev", "project/x", VAR_WRITE, true),
            (&[mixed], "dev", "project/x", VAR_DESTROY, true),
            // The closest glob decides, and its deny wins over the broader rule.
            (&[mixed], "dev", "project/secret/key", VAR_READ, false),
            (&[mixed], "dev", "project/secret/key", VAR_LIST, false),
            // An exact rule beats every glob.
            (&[mixed], "dev", "project/secret/open", VAR_READ, true),
            (&[mixed], "dev", "project/secret/open", VAR_WRITE, false),
            (&[mixed], "dev", "system/conf", VAR_LIST, true),
            (&[mixed], "dev", "system/conf", VAR_READ, false),
            // A namespace glob in the rule.
            (&[mixed], "prod", "shared/x", VAR_READ, true),
            (&[mixed], "prod", "project/x", VAR_READ, false),
            // A namespace policy grants no variable capability.
            (&[mixed], "prod", "anything", VAR_READ, false),
            (
                &[r#"namespace "default" { policy = "write" }"#],
                "default",
                "a",
                VAR_LIST,
                false,
            ),
            // Rules for the same paths add up across policies; a deny in any of them wins.
            (
                &[
                    a_read,
                    r#"namespace "default" {
  variables {
    path "a/*" { capabilities = ["write"] }
  }
}"#,
                ],
                "default",
                "a/b",
                VAR_WRITE,
                true,
            ),
            (
                &[
                    a_read,
                    r#"namespace "default" {
  variables {
    path "a/*" { capabilities = ["deny"] }
  }
}"#,
                ],
                "default",
                "a/b",
                VAR_READ,
                false,
            ),
            (&[], "default", "a/b", VAR_READ, false),
        ];
        for (sources, ns, path, cap, want) in table {
            assert_eq!(
                acl(sources).allows_variable(ns, path, cap),
                *want,
                "{sources:?} {ns} {path} {cap}"
            );
        }
    }

    #[test]
    fn a_workload_reads_and_lists_only_its_own_job_paths() {
        let claim = WorkloadClaim {
            namespace: "prod".into(),
            job: "web".into(),
            group: "g".into(),
            task: "t".into(),
        };
        let w = Acl::new([]).with_workload(claim.clone());
        for path in [
            "nomad/jobs",
            "nomad/jobs/web",
            "nomad/jobs/web/g",
            "nomad/jobs/web/g/t",
        ] {
            assert!(w.allows_variable("prod", path, VAR_READ), "{path}");
            assert!(w.allows_variable("prod", path, VAR_LIST), "{path}");
            assert!(!w.allows_variable("prod", path, VAR_WRITE), "{path}");
            assert!(!w.allows_variable("prod", path, VAR_DESTROY), "{path}");
            assert!(!w.allows_variable("default", path, VAR_READ), "{path}");
        }
        for path in [
            "nomad/jobs/api",
            "nomad/jobs/webx",
            "nomad/jobs/web/other",
            "nomad/jobs/web/g/t/deeper",
            "nomad/jobsx",
            "app/web",
        ] {
            assert!(!w.allows_variable("prod", path, VAR_READ), "{path}");
        }
        // A bound policy adds paths; an exact rule beats the implicit access, which beats a glob.
        let bound = acl(&[r#"namespace "*" {
  variables {
    path "shared/*" { capabilities = ["read"] }
    path "nomad/jobs/*" { capabilities = ["deny"] }
  }
}
namespace "prod" {
  variables {
    path "nomad/jobs" { capabilities = ["list"] }
  }
}"#])
        .with_workload(claim);
        assert!(bound.allows_variable("prod", "shared/db", VAR_READ));
        assert!(bound.allows_variable("prod", "nomad/jobs/web", VAR_READ));
        assert!(!bound.allows_variable("prod", "nomad/jobs/api", VAR_READ));
        assert!(!bound.allows_variable("prod", "nomad/jobs", VAR_READ));
        assert!(bound.allows_variable("prod", "nomad/jobs", VAR_LIST));
        assert!(w.allows_variables_anywhere() && !Acl::new([]).allows_variables_anywhere());
    }

    #[test]
    fn management_allows_everything() {
        let m = Acl::management();
        assert!(m.allows_namespace("x", CAP_SUBMIT_JOB) && m.allows_node(Access::Write));
        assert!(m.allows_operator(Access::Write) && m.allows_agent(Access::Write));
        assert!(m.allows_variable("x", "any/path", VAR_DESTROY));
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
