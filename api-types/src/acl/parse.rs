//! Nomad's ACL policy language (HCL) to a [`Policy`]:
//!
//! ```hcl
//! namespace "default" { policy = "read" }
//! namespace "web-*"   { policy = "write" capabilities = ["alloc-exec"] }
//! node     { policy = "read" }
//! agent    { policy = "read" }
//! operator { policy = "deny" }
//! ```
//!
//! `policy` expands to capabilities as Nomad's does ([`check::expand`]); unknown blocks,
//! attributes, policies and capabilities are errors at `file:line:col`. A namespace's
//! `variables { path "glob" { capabilities = [...] } }` block is read into
//! [`super::VariableRule`]s. Nomad's `host_volume`, `plugin`, `quota` blocks are accepted and
//! grant nothing here (Nomos has no such objects yet).

use std::ops::Range;

use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Block, Body, Structure};
use hcl_edit::Span;

use super::check::{self, NAMESPACE_CAPABILITIES, VARIABLE_CAPABILITIES};
use super::{Access, NamespaceRule, Policy, VariableRule, MAX_POLICY_BYTES};
use crate::diag::{did_you_mean, Diagnostic, LineIndex, Pos};

/// Blocks from Nomad's language that are read and ignored.
const IGNORED_BLOCKS: [&str; 3] = ["host_volume", "plugin", "quota"];

struct Reader<'a> {
    file: &'a str,
    lines: LineIndex<'a>,
    errors: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn error(&mut self, span: Option<Range<usize>>, msg: impl Into<String>) {
        let pos = span.map(|s| self.lines.pos(s.start)).unwrap_or_default();
        self.errors.push(Diagnostic::error(self.file, pos, msg));
    }
}

/// Parses a policy's rules; `file` names it in the diagnostics.
pub fn parse_policy(file: &str, source: &str) -> Result<Policy, Vec<Diagnostic>> {
    if source.len() > MAX_POLICY_BYTES {
        return Err(vec![Diagnostic::error(
            file,
            Pos::new(1, 1),
            format!(
                "policy is {} bytes, over the limit of {MAX_POLICY_BYTES}",
                source.len()
            ),
        )]);
    }
    // Policies written for Nomad's HCL1 parser (commas between attributes) are accepted too.
    let legacy = || crate::hcl::legacy::rewrite_hcl1(source);
    let body = hcl_edit::parser::parse_body(source).or_else(|first| {
        match legacy().as_deref().map(hcl_edit::parser::parse_body) {
            Some(Ok(body)) => Ok(body),
            _ => Err(first),
        }
    });
    let body = body.map_err(|e| {
        let loc = e.location();
        vec![Diagnostic::error(
            file,
            Pos::new(loc.line() as u32, loc.column() as u32),
            format!("invalid HCL syntax: {}", e.message()),
        )]
    })?;
    let mut r = Reader {
        file,
        lines: LineIndex::new(source),
        errors: Vec::new(),
    };
    let policy = read_top(&mut r, &body);
    if r.errors.is_empty() {
        Ok(policy)
    } else {
        Err(r.errors)
    }
}

fn read_top(r: &mut Reader<'_>, body: &Body) -> Policy {
    let mut policy = Policy::default();
    for s in body.iter() {
        let b = match s {
            Structure::Block(b) => b,
            Structure::Attribute(a) => {
                let name = a.key.value().as_str();
                r.error(a.key.span(), format!("unexpected attribute \"{name}\" at top level: expected namespace, node, agent or operator blocks"));
                continue;
            }
        };
        let ident = b.ident.value().as_str();
        match ident {
            "namespace" => {
                if let Some(rule) = read_namespace(r, b) {
                    policy.namespaces.push(rule);
                }
            }
            "node" | "agent" | "operator" => {
                let access = read_coarse(r, b);
                let slot = match ident {
                    "node" => &mut policy.node,
                    "agent" => &mut policy.agent,
                    _ => &mut policy.operator,
                };
                *slot = access;
            }
            other if IGNORED_BLOCKS.contains(&other) => {}
            other => {
                let hint = did_you_mean(other, ["namespace", "node", "agent", "operator"])
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                r.error(b.ident.span(), format!("unknown block \"{other}\"{hint}: expected namespace, node, agent or operator"));
            }
        }
    }
    policy
}

/// `namespace "pattern" { policy = "..." capabilities = [...] }`.
fn read_namespace(r: &mut Reader<'_>, b: &Block) -> Option<NamespaceRule> {
    let [label] = b.labels.as_slice() else {
        r.error(
            b.ident.span(),
            format!(
                "a namespace block takes one label (the namespace or a glob), found {}",
                b.labels.len()
            ),
        );
        return None;
    };
    let mut caps: Vec<String> = Vec::new();
    let mut variables: Option<Vec<VariableRule>> = None;
    for s in b.body.iter() {
        match s {
            Structure::Attribute(a) if a.key.value().as_str() == "policy" => {
                let allowed = ["deny", "read", "write", "scale"];
                if let Some(p) = read_word(r, a, &allowed) {
                    caps.extend(check::expand(&p).iter().map(|c| c.to_string()));
                }
            }
            Structure::Attribute(a) if a.key.value().as_str() == "capabilities" => {
                caps.extend(read_capabilities(r, a));
            }
            Structure::Block(v) if v.ident.value().as_str() == "variables" => {
                if variables.is_some() {
                    r.error(
                        v.ident.span(),
                        "a namespace block takes one variables block",
                    );
                }
                variables = Some(read_variables(r, v));
            }
            Structure::Attribute(a) => {
                let name = a.key.value().as_str();
                r.error(a.key.span(), format!("unknown attribute \"{name}\" in namespace block: expected policy or capabilities"));
            }
            Structure::Block(v) => {
                let name = v.ident.value().as_str();
                r.error(
                    v.ident.span(),
                    format!("unknown block \"{name}\" in namespace block"),
                );
            }
        }
    }
    caps.sort();
    caps.dedup();
    Some(NamespaceRule {
        pattern: label.as_str().to_string(),
        capabilities: caps,
        variables: variables.unwrap_or_default(),
    })
}

/// `variables { path "glob" { capabilities = [...] } ... }`: one rule per path, at least one.
fn read_variables(r: &mut Reader<'_>, b: &Block) -> Vec<VariableRule> {
    let mut rules = Vec::new();
    for s in b.body.iter() {
        let p = match s {
            Structure::Block(p) if p.ident.value().as_str() == "path" => p,
            other => {
                let name = match other {
                    Structure::Attribute(a) => a.key.value().as_str(),
                    Structure::Block(b) => b.ident.value().as_str(),
                };
                r.error(
                    other.span(),
                    format!("unexpected \"{name}\" in variables block: expected path blocks"),
                );
                continue;
            }
        };
        if let Some(rule) = read_variable_path(r, p) {
            rules.push(rule);
        }
    }
    if rules.is_empty() && r.errors.is_empty() {
        r.error(
            b.ident.span(),
            "a variables block needs at least one path block",
        );
    }
    rules
}

/// `path "glob" { capabilities = [...] }`.
fn read_variable_path(r: &mut Reader<'_>, p: &Block) -> Option<VariableRule> {
    let [label] = p.labels.as_slice() else {
        r.error(
            p.ident.span(),
            format!(
                "a path block takes one label (a variable path or glob), found {}",
                p.labels.len()
            ),
        );
        return None;
    };
    let path = label.as_str();
    if path.is_empty() || path.starts_with('/') {
        r.error(
            p.ident.span(),
            format!(
                "invalid variable path {path:?}: it must be non-empty and cannot start with '/'"
            ),
        );
        return None;
    }
    let mut caps = Vec::new();
    for s in p.body.iter() {
        match s {
            Structure::Attribute(a) if a.key.value().as_str() == "capabilities" => {
                caps.extend(read_list(r, a, VARIABLE_CAPABILITIES));
            }
            other => {
                let name = match other {
                    Structure::Attribute(a) => a.key.value().as_str(),
                    Structure::Block(b) => b.ident.value().as_str(),
                };
                r.error(
                    other.span(),
                    format!("unexpected \"{name}\" in path block: expected capabilities"),
                );
            }
        }
    }
    Some(VariableRule {
        path: path.to_string(),
        capabilities: check::expand_variable_capabilities(caps),
    })
}

/// `node`, `agent`, `operator`: one `policy` attribute.
fn read_coarse(r: &mut Reader<'_>, b: &Block) -> Option<Access> {
    let mut access = None;
    for s in b.body.iter() {
        match s {
            Structure::Attribute(a) if a.key.value().as_str() == "policy" => {
                access = read_word(r, a, &["deny", "read", "write"]).map(|p| match p.as_str() {
                    "deny" => Access::Deny,
                    "read" => Access::Read,
                    _ => Access::Write,
                });
            }
            other => {
                let name = match other {
                    Structure::Attribute(a) => a.key.value().as_str(),
                    Structure::Block(b) => b.ident.value().as_str(),
                };
                r.error(
                    other.span(),
                    format!(
                        "unexpected \"{name}\" in {} block: expected policy",
                        b.ident.value().as_str()
                    ),
                );
            }
        }
    }
    if access.is_none() && r.errors.is_empty() {
        r.error(
            b.ident.span(),
            format!(
                "{} block needs a policy (deny, read or write)",
                b.ident.value().as_str()
            ),
        );
    }
    access
}

/// A string attribute that must be one of `allowed`.
fn read_word(r: &mut Reader<'_>, a: &Attribute, allowed: &[&str]) -> Option<String> {
    let Expression::String(s) = &a.value else {
        r.error(
            a.value.span(),
            format!("policy must be a string: one of {}", allowed.join(", ")),
        );
        return None;
    };
    let word = s.value().as_str();
    if allowed.contains(&word) {
        return Some(word.to_string());
    }
    r.error(
        a.value.span(),
        format!(
            "unknown policy {word:?}: expected one of {}",
            allowed.join(", ")
        ),
    );
    None
}

fn read_capabilities(r: &mut Reader<'_>, a: &Attribute) -> Vec<String> {
    read_list(r, a, NAMESPACE_CAPABILITIES)
}

/// A list of strings, each one of `known`.
fn read_list(r: &mut Reader<'_>, a: &Attribute, known: &[&str]) -> Vec<String> {
    let Expression::Array(items) = &a.value else {
        r.error(a.value.span(), "capabilities must be a list of strings");
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        let Expression::String(s) = item else {
            r.error(item.span(), "capabilities must be a list of strings");
            continue;
        };
        let cap = s.value().as_str();
        if known.contains(&cap) {
            out.push(cap.to_string());
        } else {
            let hint = did_you_mean(cap, known.iter().copied())
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            r.error(item.span(), format!("unknown capability {cap:?}{hint}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(src: &str) -> Vec<String> {
        parse_policy("p.hcl", src)
            .unwrap_err()
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn reads_namespace_node_agent_and_operator_blocks() {
        let p = parse_policy(
            "p.hcl",
            r#"
namespace "default" { policy = "read" }
namespace "web-*" {
  policy       = "deny"
  capabilities = ["submit-job", "read-logs"]
}
node { policy = "write" }
agent { policy = "read" }
operator { policy = "deny" }
host_volume "*" { policy = "write" }
"#,
        )
        .unwrap();
        assert_eq!(p.namespaces.len(), 2);
        assert_eq!(p.namespaces[0].pattern, "default");
        assert!(p.namespaces[0]
            .capabilities
            .contains(&"read-job".to_string()));
        assert!(!p.namespaces[0]
            .capabilities
            .contains(&"submit-job".to_string()));
        assert_eq!(
            p.namespaces[1].capabilities,
            vec!["deny", "read-logs", "submit-job"]
        );
        assert_eq!(p.node, Some(Access::Write));
        assert_eq!(p.agent, Some(Access::Read));
        assert_eq!(p.operator, Some(Access::Deny));
    }

    #[test]
    fn bad_policies_are_reported_at_file_line_and_column() {
        let table: &[(&str, &str)] = &[
            (
                "namespace \"a\" { policy = \"reed\" }",
                "p.hcl:1:26: unknown policy \"reed\"",
            ),
            (
                "namespace \"a\" {\n  capabilities = [\"submit-jbo\"]\n}",
                "p.hcl:2:19: unknown capability \"submit-jbo\" (did you mean \"submit-job\"?)",
            ),
            (
                "nodes { policy = \"read\" }",
                "p.hcl:1:1: unknown block \"nodes\" (did you mean \"node\"?)",
            ),
            (
                "namespace { policy = \"read\" }",
                "p.hcl:1:1: a namespace block takes one label",
            ),
            (
                "node { policy = \"scale\" }",
                "p.hcl:1:17: unknown policy \"scale\"",
            ),
            ("node { }", "p.hcl:1:1: node block needs a policy"),
            (
                "policy = \"read\"",
                "p.hcl:1:1: unexpected attribute \"policy\" at top level",
            ),
            (
                "namespace \"a\" { polcy = \"read\" }",
                "p.hcl:1:17: unknown attribute \"polcy\"",
            ),
            ("namespace \"a\" {", "p.hcl:1:16: invalid HCL syntax"),
        ];
        for (src, want) in table {
            let got = errors(src);
            assert!(
                got.iter().any(|e| e.starts_with(want)),
                "{src:?}: expected an error starting {want:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn reads_variables_blocks_with_nomads_expansion() {
        let p = parse_policy(
            "p.hcl",
            r#"
namespace "dev" {
  policy = "read"
  variables {
    path "project/*" { capabilities = ["write", "destroy"] }
    path "system/*" { capabilities = ["read"] }
    path "locked/*" { capabilities = ["read", "deny"] }
  }
}
"#,
        )
        .unwrap();
        let vars = &p.namespaces[0].variables;
        assert_eq!(vars.len(), 3);
        assert_eq!(vars[0].path, "project/*");
        assert_eq!(vars[0].capabilities, vec!["destroy", "list", "write"]);
        assert_eq!(vars[1].capabilities, vec!["list", "read"]);
        assert_eq!(vars[2].capabilities, vec!["deny"]);
    }

    #[test]
    fn bad_variables_blocks_are_reported_at_file_line_and_column() {
        let table: &[(&str, &str)] = &[
            (
                "namespace \"a\" {\n  variables {\n    path \"x\" { capabilities = [\"raed\"] }\n  }\n}",
                "p.hcl:3:32: unknown capability \"raed\"",
            ),
            (
                "namespace \"a\" {\n  variables {\n    path \"/x\" { capabilities = [\"read\"] }\n  }\n}",
                "p.hcl:3:5: invalid variable path \"/x\"",
            ),
            (
                "namespace \"a\" {\n  variables {\n    path { capabilities = [\"read\"] }\n  }\n}",
                "p.hcl:3:5: a path block takes one label",
            ),
            (
                "namespace \"a\" {\n  variables {\n  }\n}",
                "p.hcl:2:3: a variables block needs at least one path block",
            ),
            (
                "namespace \"a\" {\n  variables {\n    paths \"x\" {}\n  }\n}",
                "p.hcl:3:5: unexpected \"paths\" in variables block",
            ),
            (
                "namespace \"a\" {\n  variables {\n    path \"x\" { policy = \"read\" }\n  }\n}",
                "p.hcl:3:16: unexpected \"policy\" in path block",
            ),
        ];
        for (src, want) in table {
            let got = errors(src);
            assert!(
                got.iter().any(|e| e.starts_with(want)),
                "{src:?}: expected an error starting {want:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn hcl1_era_policies_are_accepted() {
        let p = parse_policy(
            "p.hcl",
            "namespace \"default\" {\n  policy = \"read\",\n  capabilities = [\"submit-job\"]\n}\n",
        )
        .unwrap();
        assert!(p.namespaces[0]
            .capabilities
            .contains(&"submit-job".to_string()));
    }

    #[test]
    fn a_policy_over_the_size_limit_is_refused() {
        let big = format!("# {}\n", "x".repeat(MAX_POLICY_BYTES));
        assert!(errors(&big)[0].contains("over the limit"));
    }
}
