//! What each route needs, in one table: [`ROUTES`] maps every `(method, path)` the router
//! serves to a [`Rule`]. The middleware in [`super`] looks the matched route up here; a route
//! missing from the table is refused (and a test fails), so a new route cannot be left open.

use nomos_api::acl::check::{
    CAP_ALLOC_LIFECYCLE, CAP_LIST_JOBS, CAP_READ_JOB, CAP_READ_LOGS, CAP_SUBMIT_JOB,
};
use nomos_api::acl::Access;

/// Where the namespace a request touches comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsFrom {
    /// `?namespace=`, `default` when absent (`*`: every namespace).
    Query,
    /// `?namespace=`, every namespace (`*`) when absent: lists that span namespaces.
    QueryOrAll,
    /// The allocation named by the path's `{id}`.
    Alloc,
    /// The deployment named by the path's `{id}`.
    Deployment,
    /// The jobs in the body: the handler checks each with [`super::Caller::require_namespace`]
    /// once it has parsed them; the middleware only resolves the token.
    Body,
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
    Node(Access),
    Agent(Access),
    Operator(Access),
    /// Views over every namespace and node (the web UI, the event stream): `read-job` on every
    /// namespace (`namespace "*"`) and `node` read.
    ReadAll,
}

use NsFrom::*;
use Rule::*;

/// Every route the server serves, by method and axum path.
pub const ROUTES: &[(&str, &str, Rule)] = &[
    ("GET", "/v1/status", Agent(Access::Read)),
    ("GET", "/v1/jobs", Namespace(CAP_LIST_JOBS, Query)),
    ("POST", "/v1/jobs", Namespace(CAP_SUBMIT_JOB, Body)),
    ("POST", "/v1/jobs/plan", Namespace(CAP_SUBMIT_JOB, Body)),
    ("GET", "/v1/job/{id}", Namespace(CAP_READ_JOB, Query)),
    ("DELETE", "/v1/job/{id}", Namespace(CAP_SUBMIT_JOB, Query)),
    (
        "POST",
        "/v1/job/{id}/stop",
        Namespace(CAP_SUBMIT_JOB, Query),
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
        "POST",
        "/v1/job/{id}/periodic/force",
        Namespace(CAP_SUBMIT_JOB, Query),
    ),
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
    (
        "GET",
        "/v1/allocations",
        Namespace(CAP_READ_JOB, QueryOrAll),
    ),
    ("GET", "/v1/allocation/{id}", Namespace(CAP_READ_JOB, Alloc)),
    (
        "POST",
        "/v1/allocation/{id}/stop",
        Namespace(CAP_ALLOC_LIFECYCLE, Alloc),
    ),
    (
        "POST",
        "/v1/allocation/{id}/restart",
        Namespace(CAP_ALLOC_LIFECYCLE, Alloc),
    ),
    (
        "GET",
        "/v1/allocation/{id}/logs",
        Namespace(CAP_READ_LOGS, Alloc),
    ),
    ("GET", "/v1/nodes", Node(Access::Read)),
    ("GET", "/v1/node/{name}", Node(Access::Read)),
    ("POST", "/v1/node/{name}/eligibility", Node(Access::Write)),
    ("POST", "/v1/node/{name}/drain", Node(Access::Write)),
    (
        "GET",
        "/v1/deployments",
        Namespace(CAP_READ_JOB, QueryOrAll),
    ),
    (
        "GET",
        "/v1/deployment/{id}",
        Namespace(CAP_READ_JOB, Deployment),
    ),
    (
        "POST",
        "/v1/deployment/{id}/promote",
        Namespace(CAP_SUBMIT_JOB, Deployment),
    ),
    (
        "POST",
        "/v1/deployment/{id}/fail",
        Namespace(CAP_SUBMIT_JOB, Deployment),
    ),
    (
        "POST",
        "/v1/deployment/{id}/pause",
        Namespace(CAP_SUBMIT_JOB, Deployment),
    ),
    ("GET", "/v1/events", ReadAll),
    ("POST", "/v1/system/gc", Management),
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
    ("GET", "/metrics", Agent(Access::Read)),
    ("GET", "/", Public),
    ("GET", "/ui", ReadAll),
    ("GET", "/ui/", ReadAll),
    ("GET", "/ui/login", Public),
    ("GET", "/ui/job/{id}", ReadAll),
    ("GET", "/ui/node/{name}", ReadAll),
    ("GET", "/ui/allocation/{id}", ReadAll),
    ("GET", "/ui/fragments/counts", ReadAll),
    ("GET", "/ui/fragments/jobs", ReadAll),
    ("GET", "/ui/fragments/nodes", ReadAll),
    ("GET", "/ui/fragments/job/{id}", ReadAll),
    ("GET", "/ui/fragments/node/{name}", ReadAll),
    ("GET", "/ui/fragments/allocation/{id}", ReadAll),
    ("GET", "/ui/series", ReadAll),
    ("GET", "/ui/assets/{*path}", Public),
    ("GET", "/ui/{*rest}", ReadAll),
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
