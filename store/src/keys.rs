//! Typed helpers for the key layout in `docs/keys.md`. Spec and status never share a key:
//! users and GitOps own specs, controllers and agents own status.

/// Root of every Nomos key.
pub const ROOT: &str = "/nomos/";

/// Prefix of every job spec.
pub const JOBS_PREFIX: &str = "/nomos/jobs/";
/// Prefix of every accepted job version.
pub const JOB_VERSIONS_PREFIX: &str = "/nomos/jobversions/";
/// Prefix of every desired allocation.
pub const ALLOCS_PREFIX: &str = "/nomos/allocs/";
/// Prefix of every allocation status.
pub const ALLOC_STATUS_PREFIX: &str = "/nomos/allocstatus/";
/// Prefix of the node-lifecycle loop's records (`/nomos/nodestatus/<node>`).
pub const NODE_STATUS_PREFIX: &str = "/nomos/nodestatus/";
/// Prefix of the drain loop's progress reports (`/nomos/drainstatus/<node>`).
pub const DRAIN_STATUS_PREFIX: &str = "/nomos/drainstatus/";

/// Prefix of ACL tokens by accessor ID (`/nomos/acl/tokens/<accessor>`).
pub const ACL_TOKENS_PREFIX: &str = "/nomos/acl/tokens/";
/// Prefix of the index from a token's secret to its accessor
/// (`/nomos/acl/secrets/<sha256 of the secret, hex>`).
pub const ACL_SECRETS_PREFIX: &str = "/nomos/acl/secrets/";
/// Prefix of ACL policies by name (`/nomos/acl/policies/<name>`).
pub const ACL_POLICIES_PREFIX: &str = "/nomos/acl/policies/";
/// Written once by `POST /v1/acl/bootstrap`: its presence means bootstrap is done.
pub const ACL_BOOTSTRAP: &str = "/nomos/acl/bootstrap";

/// `/nomos/acl/tokens/<accessor>`: one ACL token.
pub fn acl_token(accessor: &str) -> String {
    format!("{ACL_TOKENS_PREFIX}{accessor}")
}
/// `/nomos/acl/secrets/<hash>`: the accessor of the token whose secret hashes to `hash`.
pub fn acl_secret(secret_hash: &str) -> String {
    format!("{ACL_SECRETS_PREFIX}{secret_hash}")
}
/// `/nomos/acl/policies/<name>`: one ACL policy.
pub fn acl_policy(name: &str) -> String {
    format!("{ACL_POLICIES_PREFIX}{name}")
}

/// `/nomos/nodestatus/<node>`: the node-lifecycle loop's record of a node.
pub fn node_status(node: &str) -> String {
    format!("{NODE_STATUS_PREFIX}{node}")
}
/// `/nomos/drainstatus/<node>`: the drain loop's progress report.
pub fn drain_status(node: &str) -> String {
    format!("{DRAIN_STATUS_PREFIX}{node}")
}

/// `/nomos/jobs/<ns>/<job>`: a job spec as submitted.
pub fn job(namespace: &str, job: &str) -> String {
    format!("/nomos/jobs/{namespace}/{job}")
}
/// `/nomos/jobs/` or `/nomos/jobs/<ns>/`.
pub fn jobs_prefix(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("/nomos/jobs/{ns}/"),
        None => "/nomos/jobs/".to_string(),
    }
}
/// `/nomos/jobversions/<ns>/<job>/<ver>`: an immutable accepted version (zero-padded so keys sort).
pub fn job_version(namespace: &str, job: &str, version: u64) -> String {
    format!("/nomos/jobversions/{namespace}/{job}/{version:020}")
}
pub fn job_versions_prefix(namespace: &str, job: &str) -> String {
    format!("/nomos/jobversions/{namespace}/{job}/")
}
/// `/nomos/jobstatus/<ns>/<job>`.
pub fn job_status(namespace: &str, job: &str) -> String {
    format!("/nomos/jobstatus/{namespace}/{job}")
}
pub const JOB_STATUS_PREFIX: &str = "/nomos/jobstatus/";
/// `/nomos/deployments/<ns>/<job>/<id>`.
pub fn deployment(namespace: &str, job: &str, id: &str) -> String {
    format!("/nomos/deployments/{namespace}/{job}/{id}")
}
pub const DEPLOYMENTS_PREFIX: &str = "/nomos/deployments/";
/// `/nomos/nodes/<node>`: registration written by the agent.
pub fn node(node: &str) -> String {
    format!("/nomos/nodes/{node}")
}
pub const NODES_PREFIX: &str = "/nomos/nodes/";
/// `/nomos/nodespec/<node>`: eligibility and drain, written by users.
pub fn node_spec(node: &str) -> String {
    format!("/nomos/nodespec/{node}")
}
pub const NODE_SPECS_PREFIX: &str = "/nomos/nodespec/";
/// `/nomos/heartbeats/<node>`: lease-bound liveness.
pub fn heartbeat(node: &str) -> String {
    format!("/nomos/heartbeats/{node}")
}
pub const HEARTBEATS_PREFIX: &str = "/nomos/heartbeats/";
/// The servers' heartbeat settings (`nomos_api::heartbeat::HeartbeatConfig`), read by agents
/// when they register.
pub const HEARTBEAT_CONFIG: &str = "/nomos/config/heartbeat";
/// `/nomos/allocs/<node>/<alloc>`: a desired allocation.
pub fn alloc(node: &str, alloc: &str) -> String {
    format!("/nomos/allocs/{node}/{alloc}")
}
/// `/nomos/allocs/` or `/nomos/allocs/<node>/`.
pub fn allocs_prefix(node: Option<&str>) -> String {
    match node {
        Some(n) => format!("/nomos/allocs/{n}/"),
        None => "/nomos/allocs/".to_string(),
    }
}
/// `/nomos/allocstatus/<node>/<alloc>`: what the agent observed.
pub fn alloc_status(node: &str, alloc: &str) -> String {
    format!("/nomos/allocstatus/{node}/{alloc}")
}
pub fn alloc_status_prefix(node: Option<&str>) -> String {
    match node {
        Some(n) => format!("/nomos/allocstatus/{n}/"),
        None => "/nomos/allocstatus/".to_string(),
    }
}
/// `/nomos/election/<controller>`.
pub fn election(controller: &str) -> String {
    format!("/nomos/election/{controller}")
}

/// Splits a key under `prefix` into its remaining `/`-separated parts.
pub fn parts<'a>(key: &'a str, prefix: &str) -> Option<Vec<&'a str>> {
    key.strip_prefix(prefix)
        .map(|rest| rest.split('/').collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        assert_eq!(job("default", "web"), "/nomos/jobs/default/web");
        assert_eq!(alloc("n1", "a1"), "/nomos/allocs/n1/a1");
        assert_eq!(
            job_version("default", "web", 3),
            "/nomos/jobversions/default/web/00000000000000000003"
        );
        assert_eq!(
            parts("/nomos/allocs/n1/a1", "/nomos/allocs/"),
            Some(vec!["n1", "a1"])
        );
        assert!(job_version("d", "j", 10) > job_version("d", "j", 9));
    }
}
