//! Access control: Nomad's ACL policy language, tokens and policies as the API stores and
//! shows them, and the pure decision "may this set of policies do that".
//!
//! Layout:
//! - [`parse`]: a policy's HCL text (`namespace "x" { policy = "read" }`, `node`, `agent`,
//!   `operator`) to a [`Policy`], with `file:line:col` diagnostics.
//! - [`check`]: [`Acl`], the policies of one token merged as Nomad merges them (capabilities add
//!   up, `deny` wins, the most specific glob decides), and its `allows_*` questions.
//! - here: the stored and shown shapes ([`AclToken`], [`AclPolicy`], [`AclRole`]) in Nomad's JSON (PascalCase)
//!   and the limits every input is held to.

pub mod check;
pub mod parse;

use serde::{Deserialize, Serialize};

pub use check::Acl;
pub use parse::parse_policy;

/// Largest policy text accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Most policies one token may name.
pub const MAX_TOKEN_POLICIES: usize = 64;
/// Longest token or policy name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// Longest policy description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// Longest role description, in bytes (Nomad's limit).
pub const MAX_ROLE_DESCRIPTION_BYTES: usize = 256;
/// Most roles one token may link to.
pub const MAX_TOKEN_ROLES: usize = 64;
/// The policy that requests without a token get, when it exists.
pub const ANONYMOUS_POLICY: &str = "anonymous";

/// Access to a non-namespaced area (`node`, `agent`, `operator`), and a namespace's coarse
/// `policy`: `deny` < `read` < `write` (`scale` only for namespaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Deny,
    Read,
    Write,
}

/// A token's kind: `management` may do everything; `client` what its policies allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Client,
    Management,
}

/// One parsed policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub namespaces: Vec<NamespaceRule>,
    pub node: Option<Access>,
    pub agent: Option<Access>,
    pub operator: Option<Access>,
}

/// A `namespace "pattern" { ... }` block: its coarse policy expanded to capabilities, plus the
/// capabilities listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRule {
    pub pattern: String,
    pub capabilities: Vec<String>,
    /// The `variables { path "glob" { capabilities = [...] } }` rules of the block.
    pub variables: Vec<VariableRule>,
}

/// A `path "glob" { capabilities = [...] }` in a namespace's `variables` block, its
/// capabilities expanded as Nomad does (`read` brings `list`; `deny` alone stays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableRule {
    pub path: String,
    pub capabilities: Vec<String>,
}

/// A policy's binding to a job's workload identities (Nomad's `JobACL`): the tasks of that
/// job (of one group, of one task, when set) get the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct JobAcl {
    #[serde(default)]
    pub namespace: String,
    #[serde(rename = "JobID", default)]
    pub job_id: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub task: String,
}

/// A token as stored at `/nomos/acl/tokens/<accessor>` and shown by the API (lists leave the
/// secret out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AclToken {
    #[serde(rename = "AccessorID")]
    pub accessor_id: String,
    /// Empty (and left out) in lists.
    #[serde(rename = "SecretID", default, skip_serializing_if = "String::is_empty")]
    pub secret_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "Type")]
    pub token_type: TokenType,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub global: bool,
    /// The roles whose policies the token also gets (linked by ID; the name is shown).
    #[serde(default)]
    pub roles: Vec<TokenRoleLink>,
    /// RFC 3339.
    pub create_time: String,
    /// When the token stops working (RFC 3339); absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
    /// The TTL it was created with, in nanoseconds (Go's `time.Duration`, as Nomad's clients
    /// decode it); absent: none.
    #[serde(rename = "ExpirationTTL", default, skip_serializing_if = "is_zero")]
    pub expiration_ttl: i64,
    #[serde(default)]
    pub create_index: i64,
    #[serde(default)]
    pub modify_index: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl AclToken {
    /// Whether the token has expired at `now`: its `ExpirationTime` is at or before it (an
    /// expiration time that does not parse counts as expired, so it never grants anything).
    pub fn is_expired(&self, now: jiff::Timestamp) -> bool {
        match &self.expiration_time {
            None => false,
            Some(t) => t.parse::<jiff::Timestamp>().map_or(true, |t| t <= now),
        }
    }
}

/// A token's link to a role (Nomad's `ACLTokenRoleLink`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct TokenRoleLink {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// A role's link to a policy (Nomad's `ACLRolePolicyLink`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RolePolicyLink {
    pub name: String,
}

/// An ACL role as stored at `/nomos/acl/roles/id/<id>` and shown by the API: a named set of
/// policies that tokens link to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct AclRole {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub policies: Vec<RolePolicyLink>,
    #[serde(default)]
    pub create_index: i64,
    #[serde(default)]
    pub modify_index: i64,
}

/// A policy as stored at `/nomos/acl/policies/<name>` and shown by the API; `Rules` is the
/// HCL text (lists leave it out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AclPolicy {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Empty (and left out) in lists.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rules: String,
    /// The job whose workload identities get this policy; absent: none.
    #[serde(rename = "JobACL", default, skip_serializing_if = "Option::is_none")]
    pub job_acl: Option<JobAcl>,
    #[serde(default)]
    pub create_index: i64,
    #[serde(default)]
    pub modify_index: i64,
}

/// Checks a token or policy name: 1 to [`MAX_NAME_BYTES`] bytes of letters, digits, `-`, `_`
/// and `.` (policy names become store keys).
pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{what} name must be 1 to {MAX_NAME_BYTES} bytes, found {} bytes",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("{what} name {name:?} is not allowed"));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(c) => Err(format!(
            "{what} name {name:?} holds {c:?}: expected letters, digits, '-', '_' or '.'"
        )),
        None => Ok(()),
    }
}
