//! What each route needs, in one table: [`ROUTES`] maps every `(method, path)` the router
//! serves to a [`Rule`]. The middleware in [`super`] looks the matched route up here; a route
//! missing from the table is refused (and a test fails), so a new route cannot be left open.

use nomos_api::acl::check::{
    CAP_ALLOC_EXEC, CAP_ALLOC_LIFECYCLE, CAP_DISPATCH_JOB, CAP_LIST_JOBS, CAP_PARSE_JOB,
    CAP_READ_FS, CAP_READ_JOB, CAP_READ_JOB_SCALING, CAP_READ_LOGS, CAP_SCALE_JOB, CAP_SUBMIT_JOB,
};
use nomos_api::acl::Access;

/// Where the namespace a request touches comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsFrom {
    /// `?namespace=`, `default` when absent (`*`: every namespace).
    Query,
    /// `?namespace=`, every namespace (`*`) when absent: a list that spans namespaces. With
    /// `*` the caller needs the capability in some namespace, and the handler keeps only the
    /// objects in namespaces the caller may see (Nomad's rule).
    QueryOrAll,
    /// `?namespace=`, `default` when absent: a list, filtered as [`NsFrom::QueryOrAll`] for `*`.
    List,
    /// The allocation named by the path's `{id}`.
    Alloc,
    /// The deployment named by the path's `{id}`.
    Deployment,
    /// The evaluation named by the path's `{id}`.
    Eval,
    /// The jobs in the body: the handler checks each with [`super::Caller::require_namespace`]
    /// once it has parsed them; the middleware only resolves the token.
    Body,
}

impl NsFrom {
    /// Whether the route lists objects, filtered per object for `?namespace=*`.
    pub fn is_list(self) -> bool {
        matches!(self, NsFrom::QueryOrAll | NsFrom::List)
    }
}

/// What a request must be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Anyone (bootstrap; the UI's login page and static assets).
    Public,
    /// Any known token, or the anonymous policy (`/v1/acl/token/self`).
    Token,
    /// A management token.
    Management,
    /// A namespace capability.
    Namespace(&'static str, NsFrom),
    /// As [`Rule::Namespace`], except that a websocket opened with `?ws_handshake=true`
    /// brings its token in its first frame: the middleware passes it on with no rights, and
    /// the handler checks the token and this capability before anything runs
    /// (`crate::nomad::exec_handshake`).
    WsHandshake(&'static str, NsFrom),
    Node(Access),
    Agent(Access),
    Operator(Access),
    /// Views over every namespace and node: `read-job` on every namespace (`namespace "*"`)
    /// and `node` read.
    ReadAll,
    /// Views that show each caller only what it may read (the event stream, the UI's
    /// overview): the capability in some namespace, or `node` read; the handler filters.
    Filtered(&'static str),
    /// Variables (`/v1/var/...`, `/v1/vars`): the middleware only resolves the caller; the
    /// handler checks the variable capability on the namespace and path it learns
    /// (`crate::vars::endpoints`).
    Variables,
}

use NsFrom::*;
use Rule::*;

/// Every route the server serves, by method and axum path.
pub const ROUTES: &[(&str, &str, Rule)] = &[
    ("GET", "/v1/status", Agent(Access::Read)),
    ("POST", "/v1/jobs/parse", Namespace(CAP_PARSE_JOB, Query)),
    ("PUT", "/v1/jobs/parse", Namespace(CAP_PARSE_JOB, Query)),
    ("POST", "/v1/validate/job", Namespace(CAP_READ_JOB, Query)),
    ("PUT", "/v1/validate/job", Namespace(CAP_READ_JOB, Query)),
    (
        "GET",
        "/v1/job/{id}/summary",
        Namespace(CAP_READ_JOB, Query),
    ),
    ("GET", "/v1/metrics", Agent(Access::Read)),
    // Each caller finds only what it may read (the handler filters).
    ("POST", "/v1/search", Filtered(CAP_READ_JOB)),
    ("PUT", "/v1/search", Filtered(CAP_READ_JOB)),
    ("POST", "/v1/search/fuzzy", Filtered(CAP_READ_JOB)),
    ("PUT", "/v1/search/fuzzy", Filtered(CAP_READ_JOB)),
    (
        "GET",
        "/v1/operator/scheduler/configuration",
        Operator(Access::Read),
    ),
    (
        "POST",
        "/v1/operator/scheduler/configuration",
        Operator(Access::Write),
    ),
    (
        "PUT",
        "/v1/operator/scheduler/configuration",
        Operator(Access::Write),
    ),
    ("GET", "/v1/agent/self", Agent(Access::Read)),
    ("GET", "/v1/agent/members", Node(Access::Read)),
    ("GET", "/v1/agent/servers", Agent(Access::Read)),
    ("GET", "/v1/agent/health", Public),
    ("GET", "/v1/status/leader", Public),
    ("GET", "/v1/status/peers", Public),
    ("GET", "/v1/regions", Public),
    ("GET", "/v1/jobs", Namespace(CAP_LIST_JOBS, List)),
    ("POST", "/v1/jobs", Namespace(CAP_SUBMIT_JOB, Body)),
    ("PUT", "/v1/jobs", Namespace(CAP_SUBMIT_JOB, Body)),
    ("GET", "/v1/job/{id}", Namespace(CAP_READ_JOB, Query)),
    ("POST", "/v1/job/{id}", Namespace(CAP_SUBMIT_JOB, Body)),
    ("POST", "/v1/job/{id}/plan", Namespace(CAP_SUBMIT_JOB, Body)),
    ("PUT", "/v1/job/{id}/plan", Namespace(CAP_SUBMIT_JOB, Body)),
    ("PUT", "/v1/job/{id}", Namespace(CAP_SUBMIT_JOB, Body)),
    ("DELETE", "/v1/job/{id}", Namespace(CAP_SUBMIT_JOB, Query)),
    (
        "GET",
        "/v1/job/{id}/submission",
        Namespace(CAP_READ_JOB, Query),
    ),
    (
        "GET",
        "/v1/job/{id}/versions",
        Namespace(CAP_READ_JOB, Query),
    ),
    (
        "POST",
        "/v1/job/{id}/revert",
        Namespace(CAP_SUBMIT_JOB, Query),
    ),
    (
        "PUT",
        "/v1/job/{id}/revert",
        Namespace(CAP_SUBMIT_JOB, Query),
    ),
    (
        "POST",
        "/v1/job/{id}/stable",
        Namespace(CAP_SUBMIT_JOB, Query),
    ),
    (
        "PUT",
        "/v1/job/{id}/stable",
        Namespace(CAP_SUBMIT_JOB, Query),
    ),
    (
        "POST",
        "/v1/job/{id}/periodic/force",
        Namespace(CAP_SUBMIT_JOB, Query),
    ),
    (
        "PUT",
        "/v1/job/{id}/periodic/force",
        Namespace(CAP_SUBMIT_JOB, Query),
    ),
    (
        "POST",
        "/v1/job/{id}/dispatch",
        Namespace(CAP_DISPATCH_JOB, Query),
    ),
    (
        "PUT",
        "/v1/job/{id}/dispatch",
        Namespace(CAP_DISPATCH_JOB, Query),
    ),
    (
        "GET",
        "/v1/job/{id}/scale",
        Namespace(CAP_READ_JOB_SCALING, Query),
    ),
    (
        "POST",
        "/v1/job/{id}/scale",
        Namespace(CAP_SCALE_JOB, Query),
    ),
    ("PUT", "/v1/job/{id}/scale", Namespace(CAP_SCALE_JOB, Query)),
    (
        "GET",
        "/v1/job/{id}/allocations",
        Namespace(CAP_READ_JOB, Query),
    ),
    (
        "GET",
        "/v1/job/{id}/deployments",
        Namespace(CAP_READ_JOB, Query),
    ),
    ("GET", "/v1/allocations", Namespace(CAP_READ_JOB, List)),
    ("GET", "/v1/allocation/{id}", Namespace(CAP_READ_JOB, Alloc)),
    (
        "GET",
        "/v1/allocation/{id}/services",
        Namespace(CAP_READ_JOB, Alloc),
    ),
    (
        "POST",
        "/v1/allocation/{id}/stop",
        Namespace(CAP_ALLOC_LIFECYCLE, Alloc),
    ),
    (
        "PUT",
        "/v1/allocation/{id}/stop",
        Namespace(CAP_ALLOC_LIFECYCLE, Alloc),
    ),
    (
        "POST",
        "/v1/client/allocation/{id}/restart",
        Namespace(CAP_ALLOC_LIFECYCLE, Alloc),
    ),
    (
        "PUT",
        "/v1/client/allocation/{id}/restart",
        Namespace(CAP_ALLOC_LIFECYCLE, Alloc),
    ),
    (
        "POST",
        "/v1/client/allocation/{id}/signal",
        Namespace(CAP_ALLOC_LIFECYCLE, Alloc),
    ),
    (
        "PUT",
        "/v1/client/allocation/{id}/signal",
        Namespace(CAP_ALLOC_LIFECYCLE, Alloc),
    ),
    // raw_exec tasks also need alloc-node-exec, which the handler checks once it knows the
    // task's driver.
    (
        "GET",
        "/v1/client/allocation/{id}/exec",
        WsHandshake(CAP_ALLOC_EXEC, Alloc),
    ),
    (
        "GET",
        "/v1/client/fs/logs/{id}",
        Namespace(CAP_READ_LOGS, Alloc),
    ),
    (
        "GET",
        "/v1/client/fs/stream/{id}",
        Namespace(CAP_READ_FS, Alloc),
    ),
    (
        "GET",
        "/v1/client/fs/ls/{id}",
        Namespace(CAP_READ_FS, Alloc),
    ),
    (
        "GET",
        "/v1/client/fs/stat/{id}",
        Namespace(CAP_READ_FS, Alloc),
    ),
    (
        "GET",
        "/v1/client/fs/cat/{id}",
        Namespace(CAP_READ_FS, Alloc),
    ),
    (
        "GET",
        "/v1/client/fs/readat/{id}",
        Namespace(CAP_READ_FS, Alloc),
    ),
    (
        "GET",
        "/v1/client/allocation/{id}/stats",
        Namespace(CAP_READ_JOB, Alloc),
    ),
    ("GET", "/v1/client/stats", Node(Access::Read)),
    ("GET", "/v1/nodes", Node(Access::Read)),
    ("GET", "/v1/node/{name}", Node(Access::Read)),
    ("GET", "/v1/node/pools", Node(Access::Read)),
    ("GET", "/v1/node/pool/{name}", Node(Access::Read)),
    // Pool writes: Nomos has no `node_pool` policy block, so management (Nomad's rule for a
    // delete; its `node_pool` write is a management token's too).
    ("POST", "/v1/node/pools", Management),
    ("PUT", "/v1/node/pools", Management),
    ("POST", "/v1/node/pool/{name}", Management),
    ("PUT", "/v1/node/pool/{name}", Management),
    ("DELETE", "/v1/node/pool/{name}", Management),
    ("GET", "/v1/node/pool/{name}/nodes", Node(Access::Read)),
    ("GET", "/v1/node/{name}/allocations", Node(Access::Read)),
    ("POST", "/v1/node/{name}/eligibility", Node(Access::Write)),
    ("PUT", "/v1/node/{name}/eligibility", Node(Access::Write)),
    ("POST", "/v1/node/{name}/drain", Node(Access::Write)),
    ("PUT", "/v1/node/{name}/drain", Node(Access::Write)),
    ("POST", "/v1/node/{name}/purge", Node(Access::Write)),
    ("PUT", "/v1/node/{name}/purge", Node(Access::Write)),
    // Join tokens admit nodes to etcd: only management makes them; the join itself is
    // public, its token is the credential (`crate::join`).
    ("POST", "/v1/node/join-tokens", Management),
    ("POST", "/v1/node/join", Public),
    ("GET", "/v1/deployments", Namespace(CAP_READ_JOB, List)),
    (
        "GET",
        "/v1/deployment/{id}",
        Namespace(CAP_READ_JOB, Deployment),
    ),
    (
        "GET",
        "/v1/deployment/allocations/{id}",
        Namespace(CAP_READ_JOB, Deployment),
    ),
    (
        "POST",
        "/v1/deployment/promote/{id}",
        Namespace(CAP_SUBMIT_JOB, Deployment),
    ),
    (
        "PUT",
        "/v1/deployment/promote/{id}",
        Namespace(CAP_SUBMIT_JOB, Deployment),
    ),
    (
        "POST",
        "/v1/deployment/fail/{id}",
        Namespace(CAP_SUBMIT_JOB, Deployment),
    ),
    (
        "PUT",
        "/v1/deployment/fail/{id}",
        Namespace(CAP_SUBMIT_JOB, Deployment),
    ),
    (
        "POST",
        "/v1/deployment/pause/{id}",
        Namespace(CAP_SUBMIT_JOB, Deployment),
    ),
    (
        "PUT",
        "/v1/deployment/pause/{id}",
        Namespace(CAP_SUBMIT_JOB, Deployment),
    ),
    (
        "POST",
        "/v1/deployment/allocation-health/{id}",
        Namespace(CAP_SUBMIT_JOB, Deployment),
    ),
    (
        "PUT",
        "/v1/deployment/allocation-health/{id}",
        Namespace(CAP_SUBMIT_JOB, Deployment),
    ),
    (
        "GET",
        "/v1/job/{id}/deployment",
        Namespace(CAP_READ_JOB, Query),
    ),
    // Evaluations: read-job in the evaluation's namespace (Nomad's rule); an evaluation is
    // forced with submit-job on a job, node write on a node.
    ("GET", "/v1/evaluations", Namespace(CAP_READ_JOB, List)),
    ("GET", "/v1/evaluation/{id}", Namespace(CAP_READ_JOB, Eval)),
    (
        "GET",
        "/v1/evaluation/{id}/allocations",
        Namespace(CAP_READ_JOB, Eval),
    ),
    (
        "GET",
        "/v1/job/{id}/evaluations",
        Namespace(CAP_READ_JOB, Query),
    ),
    (
        "POST",
        "/v1/job/{id}/evaluate",
        Namespace(CAP_SUBMIT_JOB, Query),
    ),
    (
        "PUT",
        "/v1/job/{id}/evaluate",
        Namespace(CAP_SUBMIT_JOB, Query),
    ),
    ("POST", "/v1/node/{name}/evaluate", Node(Access::Write)),
    ("PUT", "/v1/node/{name}/evaluate", Node(Access::Write)),
    // Service registrations: read-job to read them, submit-job to delete one (Nomad's).
    ("GET", "/v1/services", Namespace(CAP_READ_JOB, List)),
    ("GET", "/v1/service/{name}", Namespace(CAP_READ_JOB, List)),
    (
        "DELETE",
        "/v1/service/{name}/{id}",
        Namespace(CAP_SUBMIT_JOB, Query),
    ),
    ("GET", "/v1/event/stream", Filtered(CAP_READ_JOB)),
    ("GET", "/v1/vars", Variables),
    ("GET", "/v1/var/{*path}", Variables),
    ("PUT", "/v1/var/{*path}", Variables),
    ("DELETE", "/v1/var/{*path}", Variables),
    ("POST", "/v1/system/gc", Management),
    ("PUT", "/v1/system/gc", Management),
    ("GET", "/v1/namespaces", Filtered(CAP_LIST_JOBS)),
    ("POST", "/v1/namespace", Management),
    ("PUT", "/v1/namespace", Management),
    ("GET", "/v1/namespace/{name}", Filtered(CAP_LIST_JOBS)),
    ("POST", "/v1/namespace/{name}", Management),
    ("PUT", "/v1/namespace/{name}", Management),
    ("DELETE", "/v1/namespace/{name}", Management),
    ("GET", "/v1/quotas", Filtered(CAP_LIST_JOBS)),
    ("POST", "/v1/quota", Management),
    ("PUT", "/v1/quota", Management),
    ("GET", "/v1/quota/{name}", Filtered(CAP_LIST_JOBS)),
    ("POST", "/v1/quota/{name}", Management),
    ("PUT", "/v1/quota/{name}", Management),
    ("DELETE", "/v1/quota/{name}", Management),
    ("GET", "/v1/quota/usage/{name}", Filtered(CAP_LIST_JOBS)),
    ("POST", "/v1/acl/bootstrap", Public),
    ("GET", "/v1/acl/tokens", Management),
    ("POST", "/v1/acl/tokens", Management),
    ("POST", "/v1/acl/token", Management),
    ("GET", "/v1/acl/token/self", Token),
    ("GET", "/v1/acl/token/{accessor}", Management),
    ("POST", "/v1/acl/token/{accessor}", Management),
    ("DELETE", "/v1/acl/token/{accessor}", Management),
    ("GET", "/v1/acl/policies", Management),
    ("GET", "/v1/acl/policy/{name}", Management),
    ("POST", "/v1/acl/policy/{name}", Management),
    ("DELETE", "/v1/acl/policy/{name}", Management),
    // Role reads: management sees every role, a client token those it links to.
    ("GET", "/v1/acl/roles", Token),
    ("POST", "/v1/acl/role", Management),
    ("GET", "/v1/acl/role/{id}", Token),
    ("POST", "/v1/acl/role/{id}", Management),
    ("DELETE", "/v1/acl/role/{id}", Management),
    ("GET", "/v1/acl/role/name/{name}", Token),
    // The servers' keyring (Nomad's paths and rules).
    (
        "PUT",
        "/v1/operator/keyring/rotate",
        Operator(Access::Write),
    ),
    (
        "POST",
        "/v1/operator/keyring/rotate",
        Operator(Access::Write),
    ),
    ("GET", "/v1/operator/keyring/keys", Operator(Access::Read)),
    (
        "DELETE",
        "/v1/operator/keyring/key/{key_id}",
        Operator(Access::Write),
    ),
    // Public keys that verify workload identities: public, as in Nomad.
    ("GET", "/.well-known/jwks.json", Public),
    ("GET", "/metrics", Agent(Access::Read)),
    ("GET", "/", Public),
    // The UI shows each token what it may read: jobs of its namespaces, nodes with node read.
    ("GET", "/ui", Filtered(CAP_READ_JOB)),
    ("GET", "/ui/", Filtered(CAP_READ_JOB)),
    ("GET", "/ui/login", Public),
    ("GET", "/ui/job/{id}", Namespace(CAP_READ_JOB, Query)),
    ("GET", "/ui/node/{name}", Node(Access::Read)),
    ("GET", "/ui/allocation/{id}", Namespace(CAP_READ_JOB, Alloc)),
    ("GET", "/ui/fragments/counts", Filtered(CAP_READ_JOB)),
    ("GET", "/ui/fragments/jobs", Filtered(CAP_READ_JOB)),
    ("GET", "/ui/fragments/nodes", Node(Access::Read)),
    (
        "GET",
        "/ui/fragments/job/{id}",
        Namespace(CAP_READ_JOB, Query),
    ),
    ("GET", "/ui/fragments/node/{name}", Node(Access::Read)),
    (
        "GET",
        "/ui/fragments/allocation/{id}",
        Namespace(CAP_READ_JOB, Alloc),
    ),
    ("GET", "/ui/series", Node(Access::Read)),
    ("GET", "/ui/logs/{id}", Namespace(CAP_READ_LOGS, Alloc)),
    ("GET", "/ui/series/node/{name}", Node(Access::Read)),
    (
        "GET",
        "/ui/series/allocation/{id}",
        Namespace(CAP_READ_JOB, Alloc),
    ),
    ("GET", "/ui/series/job/{id}", Namespace(CAP_READ_JOB, Query)),
    ("GET", "/ui/assets/{*path}", Public),
    ("GET", "/ui/{*rest}", Filtered(CAP_READ_JOB)),
];

/// The rule for a matched route (`HEAD` as `GET`), or `None` for a route the table lacks.
pub fn rule_for(method: &str, path: &str) -> Option<Rule> {
    let method = if method == "HEAD" { "GET" } else { method };
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route("...", get(..).post(..))` in the router's source, as `(method, path)`.
    fn routes_in_source() -> Vec<(String, String)> {
        let sources = [
            ("/v1", include_str!("../lib.rs")),
            ("/v1", include_str!("endpoints.rs")),
            ("/v1", include_str!("../join.rs")),
            ("/v1", include_str!("../nomad/mod.rs")),
            ("", include_str!("../ui/mod.rs")),
        ];
        let mut out = Vec::new();
        for (prefix, src) in sources {
            for chunk in src.split(".route(\"").skip(1) {
                let path = &chunk[..chunk.find('"').unwrap()];
                let call = &chunk[..chunk.find("))\n").unwrap_or(chunk.len())];
                let full = if path.starts_with("/ui") || path == "/" || path == "/metrics" {
                    path.to_string()
                } else {
                    format!("{prefix}{path}")
                };
                for (needle, method) in [
                    ("get(", "GET"),
                    ("post(", "POST"),
                    ("put(", "PUT"),
                    ("patch(", "PATCH"),
                    ("delete(", "DELETE"),
                ] {
                    if call.contains(needle) {
                        out.push((method.to_string(), full.clone()));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_route_the_router_serves_has_a_rule() {
        let served = routes_in_source();
        assert!(served.len() > 40, "found only {served:?}");
        for (method, path) in &served {
            assert!(
                rule_for(method, path).is_some(),
                "{method} {path} has no ACL rule in server/src/acl/rules.rs"
            );
        }
    }
}
