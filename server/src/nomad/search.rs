//! `POST|PUT /v1/search` (`{"Prefix", "Context"}`: identifiers that start with a prefix) and
//! `/v1/search/fuzzy` (`{"Text", "Context"}`: names that contain a text, closest first, each
//! with the `Scope` that locates it), in Nomad's shapes. The matching is pure
//! ([`prefix_matches`], [`fuzzy_matches`]) over an [`Index`] of what the caller may read.
//!
//! Contexts Nomos has nothing in (plugins, volumes) answer empty; `evals` matches evaluation
//! IDs (prefix search only, as in Nomad). Prefix results are capped at 20 per context and
//! fuzzy ones at 100, with `Truncations` saying where.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Extension;
use nomos_api::acl::check::CAP_READ_JOB;
use nomos_api::acl::Access;
use serde::Deserialize;
use serde_json::{json, Value};

use super::blocking::read_index;
use super::query::QueryOptions;
use super::respond::Answer;
use crate::acl::Caller;
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::reads::{all_allocs, all_deployments, all_nodes};
use crate::specs::stored_jobs;
use crate::AppState;

/// Most prefix matches per context (Nomad's).
pub const PREFIX_LIMIT: usize = 20;
/// Most fuzzy matches per context (Nomad's `limit_results`).
pub const FUZZY_LIMIT: usize = 100;
/// Shortest fuzzy search text (Nomad's `min_term_length`).
pub const MIN_FUZZY_TEXT: usize = 2;
/// Longest search text taken.
const MAX_TEXT: usize = 256;

/// The contexts a prefix search covers with `all`.
const PREFIX_CONTEXTS: &[&str] = &[
    "allocs",
    "deployment",
    "evals",
    "jobs",
    "namespaces",
    "node_pools",
    "nodes",
    "plugins",
    "volumes",
];

/// A task's name and its driver's image, command or class.
pub type TaskEntry = (String, Option<String>);

/// A fuzzy match: how close, the name, and its scope.
type Ranked = ((u8, usize, usize), String, Vec<String>);

/// A job's parts that fuzzy search looks into.
#[derive(Debug, Clone, Default)]
pub struct JobEntry {
    pub namespace: String,
    pub id: String,
    /// `(group, [(task, driver image or command)])`.
    pub groups: Vec<(String, Vec<TaskEntry>)>,
    /// `(group, task or "", service name)`.
    pub services: Vec<(String, String, String)>,
}

/// What a caller may find.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub jobs: Vec<JobEntry>,
    /// `(namespace, id, name)`.
    pub allocs: Vec<(String, String, String)>,
    /// `(id, name)`.
    pub nodes: Vec<(String, String)>,
    pub node_pools: Vec<String>,
    /// `(namespace, id)`.
    pub deployments: Vec<(String, String)>,
    /// `(namespace, id)`.
    pub evals: Vec<(String, String)>,
    pub namespaces: Vec<String>,
}

/// The identifiers of `context` in the index.
fn identifiers(index: &Index, context: &str) -> Vec<String> {
    match context {
        "jobs" => index.jobs.iter().map(|j| j.id.clone()).collect(),
        "allocs" => index.allocs.iter().map(|a| a.1.clone()).collect(),
        "nodes" => index.nodes.iter().map(|n| n.0.clone()).collect(),
        "node_pools" => index.node_pools.clone(),
        "deployment" => index.deployments.iter().map(|d| d.1.clone()).collect(),
        "evals" => index.evals.iter().map(|e| e.1.clone()).collect(),
        "namespaces" => index.namespaces.clone(),
        _ => Vec::new(),
    }
}

/// Prefix matches of one context or `all`: `(Matches, Truncations)`.
pub fn prefix_matches(
    index: &Index,
    prefix: &str,
    context: &str,
) -> Result<(Value, Value), String> {
    let contexts: Vec<&str> = match context {
        "all" => PREFIX_CONTEXTS.to_vec(),
        c if PREFIX_CONTEXTS.contains(&c) => vec![c],
        other => return Err(format!("Context: {other:?} is not a search context")),
    };
    let (mut matches, mut truncations) = (BTreeMap::new(), BTreeMap::new());
    for c in contexts {
        let mut found: Vec<String> = identifiers(index, c)
            .into_iter()
            .filter(|id| id.starts_with(prefix))
            .collect();
        found.sort();
        found.dedup();
        truncations.insert(c, (found.len() > PREFIX_LIMIT).to_string());
        found.truncate(PREFIX_LIMIT);
        matches.insert(c, (!found.is_empty()).then_some(found));
    }
    Ok((json!(matches), json!(truncations)))
}

/// How close `name` is to `text` (lower is closer), or `None` when it does not contain it:
/// an exact match, then a prefix, then earlier occurrences, then shorter names.
fn closeness(name: &str, text: &str) -> Option<(u8, usize, usize)> {
    let lower = name.to_lowercase();
    let at = lower.find(text)?;
    let kind = if lower == text {
        0
    } else if at == 0 {
        1
    } else {
        2
    };
    Some((kind, at, name.len()))
}

/// Every `(kind, name, scope)` fuzzy search looks at in `context`.
fn fuzzy_candidates(index: &Index, context: &str) -> Vec<(&'static str, String, Vec<String>)> {
    let mut out = Vec::new();
    if matches!(context, "jobs" | "all") {
        for j in &index.jobs {
            out.push(("jobs", j.id.clone(), vec![j.namespace.clone()]));
            for (group, tasks) in &j.groups {
                let scope = vec![j.namespace.clone(), j.id.clone()];
                out.push(("groups", group.clone(), scope.clone()));
                for (task, image) in tasks {
                    let mut task_scope = scope.clone();
                    task_scope.push(group.clone());
                    out.push(("tasks", task.clone(), task_scope.clone()));
                    if let Some(image) = image {
                        task_scope.push(task.clone());
                        out.push(("images", image.clone(), task_scope));
                    }
                }
            }
            for (group, task, service) in &j.services {
                let mut scope = vec![j.namespace.clone(), j.id.clone(), group.clone()];
                if !task.is_empty() {
                    scope.push(task.clone());
                }
                out.push(("services", service.clone(), scope));
            }
        }
    }
    if matches!(context, "allocs" | "all") {
        for (ns, id, name) in &index.allocs {
            out.push(("allocs", name.clone(), vec![ns.clone(), id.clone()]));
        }
    }
    if matches!(context, "nodes" | "all") {
        for (id, name) in &index.nodes {
            out.push(("nodes", name.clone(), vec![id.clone()]));
        }
    }
    if matches!(context, "node_pools" | "all") {
        for pool in &index.node_pools {
            out.push(("node_pools", pool.clone(), Vec::new()));
        }
    }
    if matches!(context, "namespaces" | "all") {
        for ns in &index.namespaces {
            out.push(("namespaces", ns.clone(), Vec::new()));
        }
    }
    out
}

/// Fuzzy matches of one context or `all`: `(Matches, Truncations)`.
pub fn fuzzy_matches(index: &Index, text: &str, context: &str) -> Result<(Value, Value), String> {
    if !matches!(
        context,
        "jobs" | "allocs" | "nodes" | "node_pools" | "namespaces" | "plugins" | "all"
    ) {
        return Err(format!(
            "Context: {context:?} is not a fuzzy search context"
        ));
    }
    let text = text.to_lowercase();
    if text.chars().count() < MIN_FUZZY_TEXT {
        return Err(format!(
            "Text: fuzzy search needs at least {MIN_FUZZY_TEXT} characters"
        ));
    }
    let mut by_kind: BTreeMap<&str, Vec<Ranked>> = BTreeMap::new();
    for (kind, name, scope) in fuzzy_candidates(index, context) {
        if let Some(rank) = closeness(&name, &text) {
            by_kind.entry(kind).or_default().push((rank, name, scope));
        }
    }
    let (mut matches, mut truncations) = (BTreeMap::new(), BTreeMap::new());
    for (kind, mut found) in by_kind {
        found.sort();
        found.dedup();
        truncations.insert(kind, found.len() > FUZZY_LIMIT);
        found.truncate(FUZZY_LIMIT);
        let list: Vec<Value> = found
            .into_iter()
            .map(|(_, id, scope)| json!({"ID": id, "Scope": scope}))
            .collect();
        matches.insert(kind, list);
    }
    Ok((json!(matches), json!(truncations)))
}

/// What `caller` may find, read from the store.
async fn index_for(st: &AppState, caller: &Caller) -> Result<Index, ServerError> {
    let readable = |ns: &str| caller.acl.allows_namespace(ns, CAP_READ_JOB);
    let mut index = Index::default();
    for (_, job) in stored_jobs(st, None).await? {
        match job {
            Ok(job) if readable(&job.namespace) => index.jobs.push(job_entry(&job)),
            _ => {}
        }
    }
    for a in all_allocs(st).await? {
        let a = a.allocation;
        if readable(&a.namespace) {
            index.allocs.push((a.namespace, a.id, a.name));
        }
    }
    for d in all_deployments(st).await? {
        let d = d.deployment;
        if readable(&d.namespace) {
            index.deployments.push((d.namespace, d.id));
        }
    }
    for e in super::evals::all_evals(st).await? {
        if readable(&e.namespace) {
            index.evals.push((e.namespace, e.id));
        }
    }
    if caller.acl.allows_node(Access::Read) {
        let nodes = all_nodes(st).await?;
        let mut pools: Vec<String> = vec!["all".into(), "default".into()];
        for n in nodes {
            if !n.node.node_pool.is_empty() {
                pools.push(n.node.node_pool.clone());
            }
            index.nodes.push((n.node.id, n.node.name));
        }
        pools.sort();
        pools.dedup();
        index.node_pools = pools;
    }
    index.namespaces = crate::namespaces::all(st)
        .await?
        .into_iter()
        .map(|ns| ns.name)
        .filter(|ns| crate::namespaces::may_see(&caller.acl, ns))
        .collect();
    Ok(index)
}

fn job_entry(job: &nomos_api::Job) -> JobEntry {
    let image_of = |t: &nomos_api::Task| {
        ["image", "command", "class"].iter().find_map(|k| {
            t.config
                .get(*k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
    };
    let mut entry = JobEntry {
        namespace: job.namespace.clone(),
        id: job.id.clone(),
        ..Default::default()
    };
    for g in &job.groups {
        let tasks = g
            .tasks
            .iter()
            .map(|t| (t.name.clone(), image_of(t)))
            .collect();
        entry.groups.push((g.name.clone(), tasks));
        for s in &g.services {
            entry
                .services
                .push((g.name.clone(), String::new(), s.name.clone()));
        }
        for t in &g.tasks {
            for s in &t.services {
                entry
                    .services
                    .push((g.name.clone(), t.name.clone(), s.name.clone()));
            }
        }
    }
    entry
}

/// `POST /v1/search`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PrefixRequest {
    pub prefix: String,
    pub context: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `POST /v1/search/fuzzy`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FuzzyRequest {
    pub text: String,
    pub context: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

fn check_length(text: &str) -> Result<(), ServerError> {
    if text.len() > MAX_TEXT {
        return Err(ServerError::BadRequest(format!(
            "search text longer than {MAX_TEXT} bytes"
        )));
    }
    Ok(())
}

/// `(Matches, Truncations)` of a text in a context, or why the request is wrong.
type Matcher = fn(&Index, &str, &str) -> Result<(Value, Value), String>;

/// Matches one search's text in what the caller may find, answered in Nomad's shape.
async fn search(
    st: &AppState,
    caller: &Caller,
    q: &QueryOptions,
    text: &str,
    matcher: Matcher,
    context: &str,
) -> Result<Answer<Value>, ServerError> {
    check_length(text)?;
    let index = read_index(st).await?;
    let found = index_for(st, caller).await?;
    let (matches, truncations) = matcher(&found, text, context).map_err(ServerError::BadRequest)?;
    let body = json!({"Matches": matches, "Truncations": truncations, "Index": index,
        "KnownLeader": true, "LastContact": 0});
    Ok(Answer::new(body, index, q))
}

/// `POST|PUT /v1/search`.
pub async fn prefix(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryOptions,
    JsonBody(req): JsonBody<PrefixRequest>,
) -> Result<Answer<Value>, ServerError> {
    search(&st, &caller, &q, &req.prefix, prefix_matches, &req.context).await
}

/// `POST|PUT /v1/search/fuzzy`.
pub async fn fuzzy(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    q: QueryOptions,
    JsonBody(req): JsonBody<FuzzyRequest>,
) -> Result<Answer<Value>, ServerError> {
    search(&st, &caller, &q, &req.text, fuzzy_matches, &req.context).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Index {
        Index {
            jobs: vec![
                JobEntry {
                    namespace: "default".into(),
                    id: "example-python".into(),
                    groups: vec![(
                        "my-spy-app".into(),
                        vec![("my-python-task".into(), Some("python:3".into()))],
                    )],
                    services: vec![(
                        "my-spy-app".into(),
                        "my-python-task".into(),
                        "python-logger".into(),
                    )],
                },
                JobEntry {
                    namespace: "default".into(),
                    id: "py".into(),
                    ..Default::default()
                },
            ],
            allocs: vec![("default".into(), "abc123".into(), "py.g[0]".into())],
            nodes: vec![("abd-node-id".into(), "lab-1".into())],
            node_pools: vec!["all".into(), "default".into()],
            deployments: vec![("default".into(), "abe999".into())],
            evals: vec![("default".into(), "e7f0".into())],
            namespaces: vec!["default".into()],
        }
    }

    #[test]
    fn prefixes_match_identifiers_per_context_with_empty_ones_null() {
        let (m, t) = prefix_matches(&index(), "ab", "all").unwrap();
        assert_eq!(m["allocs"], json!(["abc123"]));
        assert_eq!(m["nodes"], json!(["abd-node-id"]));
        assert_eq!(m["deployment"], json!(["abe999"]));
        assert_eq!(m["jobs"], Value::Null);
        assert_eq!(m["evals"], Value::Null);
        assert_eq!(t["allocs"], "false");
        let (m, _) = prefix_matches(&index(), "e7", "evals").unwrap();
        assert_eq!(m, json!({"evals": ["e7f0"]}));
        let (m, _) = prefix_matches(&index(), "e", "jobs").unwrap();
        assert_eq!(m, json!({"jobs": ["example-python"]}));
        assert!(prefix_matches(&index(), "a", "galaxies").is_err());
    }

    #[test]
    fn prefix_results_are_capped_at_twenty_and_say_so() {
        let idx = Index {
            namespaces: (0..25).map(|i| format!("ns{i:02}")).collect(),
            ..Default::default()
        };
        let (m, t) = prefix_matches(&idx, "ns", "namespaces").unwrap();
        assert_eq!(m["namespaces"].as_array().unwrap().len(), PREFIX_LIMIT);
        assert_eq!(t["namespaces"], "true");
    }

    #[test]
    fn fuzzy_matches_are_closest_first_with_their_scopes() {
        let (m, t) = fuzzy_matches(&index(), "Py", "jobs").unwrap();
        let jobs: Vec<&str> = m["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["ID"].as_str().unwrap())
            .collect();
        assert_eq!(
            jobs,
            ["py", "example-python"],
            "exact first, then by position"
        );
        assert_eq!(m["jobs"][0]["Scope"], json!(["default"]));
        assert_eq!(
            m["tasks"],
            json!([{"ID": "my-python-task", "Scope": ["default", "example-python", "my-spy-app"]}])
        );
        assert_eq!(
            m["images"][0]["Scope"],
            json!(["default", "example-python", "my-spy-app", "my-python-task"])
        );
        assert_eq!(
            m["services"][0]["Scope"],
            json!(["default", "example-python", "my-spy-app", "my-python-task"])
        );
        assert_eq!(t["jobs"], false);
        let (m, _) = fuzzy_matches(&index(), "lab", "nodes").unwrap();
        assert_eq!(
            m["nodes"],
            json!([{"ID": "lab-1", "Scope": ["abd-node-id"]}])
        );
    }

    #[test]
    fn fuzzy_search_refuses_short_text_and_unknown_contexts() {
        assert!(fuzzy_matches(&index(), "p", "jobs").is_err());
        assert!(fuzzy_matches(&index(), "py", "evals").is_err());
        let (m, _) = fuzzy_matches(&index(), "zz", "all").unwrap();
        assert_eq!(m, json!({}));
    }
}
