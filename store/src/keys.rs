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
/// Everything ACLs keep (tokens, secrets, policies, roles): the prefix the server's ACL cache
/// watches.
pub const ACL_PREFIX: &str = "/nomos/acl/";
/// Prefix of ACL roles by ID (`/nomos/acl/roles/id/<id>`).
pub const ACL_ROLES_PREFIX: &str = "/nomos/acl/roles/id/";
/// Prefix of the index from a role's name to its ID (`/nomos/acl/roles/name/<name>`).
pub const ACL_ROLE_NAMES_PREFIX: &str = "/nomos/acl/roles/name/";

/// Prefix of namespaces by name (`/nomos/namespaces/<name>`).
pub const NAMESPACES_PREFIX: &str = "/nomos/namespaces/";
/// Prefix of quota specifications by name (`/nomos/quotas/<name>`).
pub const QUOTAS_PREFIX: &str = "/nomos/quotas/";

/// `/nomos/namespaces/<name>`: one namespace.
pub fn namespace(name: &str) -> String {
    format!("{NAMESPACES_PREFIX}{name}")
}
/// `/nomos/quotas/<name>`: one quota specification.
pub fn quota(name: &str) -> String {
    format!("{QUOTAS_PREFIX}{name}")
}

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
/// `/nomos/acl/roles/id/<id>`: one ACL role.
pub fn acl_role(id: &str) -> String {
    format!("{ACL_ROLES_PREFIX}{id}")
}
/// `/nomos/acl/roles/name/<name>`: the ID (a JSON string) of the role named `name`.
pub fn acl_role_name(name: &str) -> String {
    format!("{ACL_ROLE_NAMES_PREFIX}{name}")
}

/// Prefix of everything the servers' keyring keeps (`/nomos/keyring/...`).
pub const KEYRING_PREFIX: &str = "/nomos/keyring/";
/// Prefix of the wrapped root keys (`/nomos/keyring/keys/<key_id>`).
pub const KEYRING_KEYS_PREFIX: &str = "/nomos/keyring/keys/";
/// The id of the active root key; created once (create-only) by the first server, then
/// compared on `mod_revision` by every rotation.
pub const KEYRING_ACTIVE: &str = "/nomos/keyring/active";
/// Prefix of the workload identities (`/nomos/identities/<node>/<alloc>`).
pub const IDENTITIES_PREFIX: &str = "/nomos/identities/";

/// `/nomos/keyring/keys/<key_id>`: one root key, wrapped by the servers' keyring key.
pub fn keyring_key(key_id: &str) -> String {
    format!("{KEYRING_KEYS_PREFIX}{key_id}")
}
/// `/nomos/identities/<node>/<alloc>`: the signed identities of an allocation's tasks.
pub fn identity(node: &str, alloc: &str) -> String {
    format!("{IDENTITIES_PREFIX}{node}/{alloc}")
}
/// `/nomos/identities/` or `/nomos/identities/<node>/`.
pub fn identities_prefix(node: Option<&str>) -> String {
    match node {
        Some(n) => format!("{IDENTITIES_PREFIX}{n}/"),
        None => IDENTITIES_PREFIX.to_string(),
    }
}

/// Prefix of the node join tokens (`/nomos/jointokens/<sha256>`).
pub const JOIN_TOKENS_PREFIX: &str = "/nomos/jointokens/";
/// `/nomos/jointokens/<sha256>`: a one-time node join token, found by its secret's SHA-256.
pub fn join_token(secret_hash: &str) -> String {
    format!("{JOIN_TOKENS_PREFIX}{secret_hash}")
}
/// Prefix of the records of nodes that joined with a token (`/nomos/nodejoins/<node>`).
pub const NODE_JOINS_PREFIX: &str = "/nomos/nodejoins/";
/// `/nomos/nodejoins/<node>`: when node `<node>` joined and its etcd user.
pub fn node_join(node: &str) -> String {
    format!("{NODE_JOINS_PREFIX}{node}")
}

/// Prefix of the users' own key-value space (`/nomos/kv/<path>`), read by templates' `key`,
/// `keyOrDefault` and `ls` and written with etcdctl or a GitOps pipeline.
pub const KV_PREFIX: &str = "/nomos/kv/";
/// `/nomos/kv/<path>`.
pub fn kv(path: &str) -> String {
    format!("{KV_PREFIX}{}", path.trim_start_matches('/'))
}

/// Prefix of the service catalogue (`/nomos/services/<namespace>/<service>/<id>`).
pub const SERVICES_PREFIX: &str = "/nomos/services/";
/// `/nomos/services/<namespace>/<service>/<id>`: one running instance of a service, written by
/// the services loop from the allocations, their statuses and their jobs.
pub fn service(namespace: &str, name: &str, id: &str) -> String {
    format!("{SERVICES_PREFIX}{namespace}/{name}/{id}")
}
/// `/nomos/servicesindex`: touched (an empty value) by every change to the catalogue, so its
/// mod revision is the catalogue's index (`X-Nomad-Index`, blocking queries).
pub const SERVICES_INDEX: &str = "/nomos/servicesindex";
/// The catalogue's keys of one namespace, or of one service in it.
pub fn services_prefix(namespace: Option<&str>, name: Option<&str>) -> String {
    match (namespace, name) {
        (Some(ns), Some(n)) => format!("{SERVICES_PREFIX}{ns}/{n}/"),
        (Some(ns), None) => format!("{SERVICES_PREFIX}{ns}/"),
        _ => SERVICES_PREFIX.to_string(),
    }
}

/// Prefix of the servers' advertised API addresses (`/nomos/servers/<id>`).
pub const SERVERS_PREFIX: &str = "/nomos/servers/";
/// `/nomos/servers/<id>`: where server `<id>` serves its HTTP API, attached to its lease;
/// agents call it to read Variables for templates.
pub fn server(id: &str) -> String {
    format!("{SERVERS_PREFIX}{id}")
}

/// `/nomos/usage/`: agents' measured usage reports, one per node.
pub const USAGE_PREFIX: &str = "/nomos/usage/";
/// `/nomos/usage/<node>`: what the node's running tasks use, with a bounded history (agent).
pub fn usage(node: &str) -> String {
    format!("{USAGE_PREFIX}{node}")
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
/// `/nomos/jobsubmissions/<ns>/<job>/<spec hash>`: the source a job spec was submitted as
/// (HCL or JSON text, with its variables), found again from an accepted version's spec hash.
pub fn job_submission(namespace: &str, job: &str, spec_hash: &str) -> String {
    format!("{JOB_SUBMISSIONS_PREFIX}{namespace}/{job}/{spec_hash}")
}
pub fn job_submissions_prefix(namespace: &str, job: &str) -> String {
    format!("{JOB_SUBMISSIONS_PREFIX}{namespace}/{job}/")
}
pub const JOB_SUBMISSIONS_PREFIX: &str = "/nomos/jobsubmissions/";
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
/// Prefix of the evaluations (`/nomos/evals/<ns>/<eval-id>`).
pub const EVALS_PREFIX: &str = "/nomos/evals/";
/// `/nomos/evals/<ns>/<eval-id>`: one evaluation (pending ones written by the API, completed
/// and blocked ones by the jobs controller).
pub fn eval(namespace: &str, id: &str) -> String {
    format!("{EVALS_PREFIX}{namespace}/{id}")
}
/// `/nomos/evals/` or `/nomos/evals/<ns>/`.
pub fn evals_prefix(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{EVALS_PREFIX}{ns}/"),
        None => EVALS_PREFIX.to_string(),
    }
}
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
/// Where the cluster's settings live (the heartbeat settings, the scheduler configuration).
pub const CONFIG_PREFIX: &str = "/nomos/config/";
/// The scheduler configuration written through `PUT /v1/operator/scheduler/configuration`
/// (`nomos_api::settings::SchedulerConfiguration`); absent: the servers' configured default.
pub const SCHEDULER_CONFIG: &str = "/nomos/config/scheduler";
/// `/nomos/nodepools/<name>`: a node pool written as an object (`nomos_api::settings::NodePool`).
pub fn node_pool(name: &str) -> String {
    format!("{NODE_POOLS_PREFIX}{name}")
}
pub const NODE_POOLS_PREFIX: &str = "/nomos/nodepools/";
/// `/nomos/jobstability/<ns>/<job>`: the job's versions marked stable or not by hand
/// (`nomos_api::settings::StabilityMarks`).
pub fn job_stability(namespace: &str, job: &str) -> String {
    format!("{JOB_STABILITY_PREFIX}{namespace}/{job}")
}
pub const JOB_STABILITY_PREFIX: &str = "/nomos/jobstability/";
/// The cluster's identity, `{"id": "<uuid>", "created_at_ms": <ms>}`: created create-only
/// (`create_revision = 0`) by the first server; agents remember the ID and touch no task while
/// the store shows another one (or none), since that store is not the cluster they ran for.
pub const CLUSTER: &str = "/nomos/cluster";
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

/// Prefix of every Variable (`/nomos/vars/<ns>/<path>`).
pub const VARS_PREFIX: &str = "/nomos/vars/";
/// `/nomos/vars/<ns>/<path>`: one Variable (its metadata, and its items sealed by the keyring).
/// `<path>` may hold `/` (`nomad/jobs/web`); a namespace never does.
pub fn variable(namespace: &str, path: &str) -> String {
    format!("{VARS_PREFIX}{namespace}/{path}")
}
/// The keys to list for Variables: every namespace's (`None`) or one namespace's, whose paths
/// start with `path_prefix` (`/nomos/vars/<ns>/<path_prefix>`).
pub fn vars_prefix(namespace: Option<&str>, path_prefix: &str) -> String {
    match namespace {
        Some(ns) => format!("{VARS_PREFIX}{ns}/{path_prefix}"),
        None => VARS_PREFIX.to_string(),
    }
}
/// The namespace and path of a Variable's key, if it is one.
pub fn variable_parts(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(VARS_PREFIX)?
        .split_once('/')
        .filter(|(ns, path)| !ns.is_empty() && !path.is_empty())
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
        assert_eq!(
            variable("default", "nomad/jobs/web"),
            "/nomos/vars/default/nomad/jobs/web"
        );
        assert_eq!(vars_prefix(Some("prod"), "app/"), "/nomos/vars/prod/app/");
        assert_eq!(vars_prefix(None, "ignored"), "/nomos/vars/");
        assert_eq!(
            variable_parts("/nomos/vars/prod/a/b"),
            Some(("prod", "a/b"))
        );
        assert_eq!(variable_parts("/nomos/vars/prod"), None);
        assert_eq!(keyring_key("k1"), "/nomos/keyring/keys/k1");
        assert!(keyring_key("k1").starts_with(KEYRING_PREFIX));
        assert!(KEYRING_ACTIVE.starts_with(KEYRING_PREFIX));
        assert_eq!(identity("n1", "a1"), "/nomos/identities/n1/a1");
        assert_eq!(identities_prefix(Some("n1")), "/nomos/identities/n1/");
        assert_eq!(eval("default", "e1"), "/nomos/evals/default/e1");
        assert_eq!(evals_prefix(Some("prod")), "/nomos/evals/prod/");
    }
}
