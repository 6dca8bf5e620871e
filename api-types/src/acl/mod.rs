//! Access control: Nomad's ACL policy language, tokens and policies as the API stores and
//! shows them, and the pure decision "may this set of policies do that".
//!
//! Layout:
//! - [`parse`]: a policy's HCL text (`namespace "x" { policy = "read" }`, `node`, `agent`,
//!   `operator`) to a [`Policy`], with `file:line:col` diagnostics.
//! - [`check`]: [`Acl`], the policies of one token merged as Nomad merges them (capabilities add
//!   up, `deny` wins, the most specific glob decides), and its `allows_*` questions.
//! - here: the stored and shown shapes ([`AclToken`], [`AclPolicy`]) in Nomad's JSON (PascalCase)
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
    /// RFC 3339.
    pub create_time: String,
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
