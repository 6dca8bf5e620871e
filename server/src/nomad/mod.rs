//! Nomad's HTTP API conventions, shared by every endpoint that answers in Nomad's shapes:
//! - [`query`]: the query parameters of reads (`namespace`, `prefix`, `filter`, `per_page` /
//!   `next_token`, `index` / `wait`, `stale`, `region`, `pretty`, `reverse`);
//! - [`blocking`]: blocking queries on the store's watch, and the index an answer carries;
//! - [`respond`]: answers with Nomad's headers, and the list helpers (prefix, filter, pages);
//! - [`shapes`]: Nomad's JSON encodings (`null` for empty, Go times);
//! - the endpoints: [`agent`] (agent, status and regions), [`nodes`] and [`node_purge`],
//!   [`pools`] (node pools),
//!   [`allocs`] and [`alloc_writes`] (allocations), [`job_reads`] (the job list and one job),
//!   [`job_writes`] (register, deregister, submissions; each write records an evaluation),
//!   [`job_versions`] (versions, revert, periodic force, scale), [`job_dispatch`] (a
//!   parameterized job's instances), [`job_plan`] (the dry run,
//!   with Nomad's diff from [`job_diff`]), [`jobs`] (parsing, validation and summaries),
//!   [`evals`] (evaluations), [`deployments`],
//!   [`metrics`] (`/v1/metrics`), [`operator`] (the scheduler's configuration), [`search`]
//!   (prefix and fuzzy search), and the event stream ([`event_stream`], with
//!   [`event_topics`] and [`event_payloads`]), an allocation's files and logs ([`fs`], read
//!   through [`fs_source`]) and resource usage ([`client_stats`]).
//!
//! Responses are gzipped when the client asks (the router's compression layer).

pub mod agent;
pub mod alloc_writes;
pub mod allocs;
pub mod blocking;
pub mod client_stats;
pub mod deployments;
pub mod evals;
pub mod event_payloads;
pub mod event_stream;
pub mod event_topics;
pub mod exec;
pub mod exec_handshake;
pub mod fs;
pub mod fs_source;
pub mod job_diff;
pub mod job_dispatch;
pub mod job_plan;
pub mod job_reads;
pub mod job_versions;
pub mod job_writes;
pub mod jobs;
pub mod metrics;
pub mod node_purge;
pub mod nodes;
pub mod operator;
pub mod pools;
pub mod query;
pub mod respond;
pub mod search;
pub mod shapes;

use axum::routing::{get, post};
use axum::Router;

pub use agent::AgentInfo;
pub use blocking::BlockingBudget;
pub use event_stream::StreamConfig;
pub use query::{Namespaces, QueryOptions};
pub use respond::Answer;

use crate::AppState;

/// The endpoints in Nomad's shapes, under `/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/nodes", get(nodes::list_nodes))
        .route("/node/{name}", get(nodes::get_one))
        .route(
            "/node/pools",
            get(pools::list_pools)
                .post(pools::put_pool)
                .put(pools::put_pool),
        )
        .route(
            "/node/pool/{name}",
            get(pools::get_pool)
                .post(pools::put_named_pool)
                .put(pools::put_named_pool)
                .delete(pools::delete_pool),
        )
        .route("/node/pool/{name}/nodes", get(pools::pool_nodes))
        .route(
            "/node/{name}/eligibility",
            post(nodes::set_eligibility).put(nodes::set_eligibility),
        )
        .route(
            "/node/{name}/drain",
            post(nodes::set_drain).put(nodes::set_drain),
        )
        .route(
            "/node/{name}/purge",
            post(node_purge::purge).put(node_purge::purge),
        )
        .route("/jobs/parse", post(jobs::parse).put(jobs::parse))
        .route("/validate/job", post(jobs::validate).put(jobs::validate))
        .route("/job/{id}/summary", get(jobs::summary))
        .route(
            "/job/{id}/dispatch",
            post(job_dispatch::dispatch_job).put(job_dispatch::dispatch_job),
        )
        .route("/metrics", get(metrics::render))
        .route("/search", post(search::prefix).put(search::prefix))
        .route("/search/fuzzy", post(search::fuzzy).put(search::fuzzy))
        .route(
            "/operator/scheduler/configuration",
            get(operator::scheduler_configuration)
                .post(operator::set_scheduler_configuration)
                .put(operator::set_scheduler_configuration),
        )
        .route("/node/{name}/allocations", get(allocs::node_allocs))
        .route("/allocations", get(allocs::list_allocs))
        .route("/allocation/{id}", get(allocs::get_one))
        .route("/allocation/{id}/services", get(allocs::services))
        .route(
            "/allocation/{id}/stop",
            post(alloc_writes::stop).put(alloc_writes::stop),
        )
        .route(
            "/client/allocation/{id}/restart",
            post(alloc_writes::restart).put(alloc_writes::restart),
        )
        .route(
            "/client/allocation/{id}/signal",
            post(alloc_writes::signal).put(alloc_writes::signal),
        )
        .route("/client/allocation/{id}/exec", get(exec::exec))
        .route("/agent/self", get(agent::agent_self))
        .route("/agent/members", get(agent::members))
        .route("/agent/servers", get(agent::peers))
        .route("/agent/health", get(agent::health))
        .route("/status/leader", get(agent::leader))
        .route("/status/peers", get(agent::peers))
        .route("/regions", get(agent::regions))
        .route("/event/stream", get(event_stream::stream))
        .route("/client/fs/logs/{id}", get(fs::logs))
        .route("/client/fs/stream/{id}", get(fs::stream))
        .route("/client/fs/ls/{id}", get(fs::ls))
        .route("/client/fs/stat/{id}", get(fs::stat))
        .route("/client/fs/cat/{id}", get(fs::cat))
        .route("/client/fs/readat/{id}", get(fs::readat))
        .route(
            "/client/allocation/{id}/stats",
            get(client_stats::alloc_stats),
        )
        .route("/client/stats", get(client_stats::host_stats))
        .route("/evaluations", get(evals::list_evals))
        .route("/evaluation/{id}", get(evals::get_one))
        .route("/evaluation/{id}/allocations", get(evals::allocations))
        .route("/job/{id}/evaluations", get(evals::job_evaluations))
        .route(
            "/job/{id}/evaluate",
            post(evals::job_evaluate).put(evals::job_evaluate),
        )
        .route(
            "/node/{name}/evaluate",
            post(evals::node_evaluate).put(evals::node_evaluate),
        )
        .route("/deployments", get(deployments::list_deployments))
        .route("/deployment/{id}", get(deployments::get_one))
        .route(
            "/deployment/allocations/{id}",
            get(deployments::allocations),
        )
        .route(
            "/deployment/promote/{id}",
            post(deployments::promote).put(deployments::promote),
        )
        .route(
            "/deployment/fail/{id}",
            post(deployments::fail).put(deployments::fail),
        )
        .route(
            "/deployment/pause/{id}",
            post(deployments::pause).put(deployments::pause),
        )
        .route(
            "/deployment/allocation-health/{id}",
            post(deployments::allocation_health).put(deployments::allocation_health),
        )
        .route("/job/{id}/deployments", get(deployments::job_deployments))
        .route("/job/{id}/deployment", get(deployments::job_latest))
}
