//! The lookup of one allocation by unique ID prefix, the task a request means, and the address
//! of an allocation's agent. The allocation reads and writes in Nomad's shapes are in
//! [`crate::nomad::allocs`] and [`crate::nomad::alloc_writes`]; its files and logs in
//! [`crate::nomad::fs`].
//!
//! Restarts, signals, resource usage (and files, unless this process holds them) go to the
//! agent's `http_addr` (every agent serves one unless started with `--http-addr off`).

use crate::error::ServerError;
use crate::kv;
use crate::reads::all_allocs;
use crate::views::AllocView;
use crate::AppState;

/// One allocation by exact ID or unique prefix.
pub async fn find_alloc(st: &AppState, id: &str) -> Result<AllocView, ServerError> {
    let all = all_allocs(st).await?;
    kv::resolve_prefix(&all, id, "allocation", |a| a.allocation.id.as_str()).cloned()
}

/// The task whose logs to show: the one asked for, or the only one the allocation has.
pub async fn pick_task(
    st: &AppState,
    view: &AllocView,
    wanted: Option<&str>,
) -> Result<String, ServerError> {
    let mut tasks: Vec<String> = view
        .status
        .as_ref()
        .map(|s| s.task_states.keys().cloned().collect())
        .unwrap_or_default();
    if tasks.is_empty() {
        if let Ok((job, _)) =
            crate::specs::find_job(st, &view.allocation.namespace, &view.allocation.job_id).await
        {
            if let Some(g) = job
                .groups
                .iter()
                .find(|g| g.name == view.allocation.task_group)
            {
                tasks = g.tasks.iter().map(|t| t.name.clone()).collect();
            }
        }
    }
    match wanted {
        Some(t) if tasks.is_empty() || tasks.iter().any(|x| x == t) => Ok(t.to_string()),
        Some(t) => Err(ServerError::NotFound(format!(
            "allocation {} has no task {t:?} (tasks: {})",
            view.allocation.id,
            tasks.join(", ")
        ))),
        None if tasks.len() == 1 => Ok(tasks.remove(0)),
        None => Err(ServerError::BadRequest(format!(
            "allocation {} has several tasks ({}); name one",
            view.allocation.id,
            tasks.join(", ")
        ))),
    }
}

/// The base URL of `node`'s agent: its registered `http_addr`, with a wildcard IP (`0.0.0.0`,
/// `::`, as registered by agents older than the rule that replaces it) swapped for the node's
/// own address. A node that serves no HTTP endpoint is an error saying what cannot be done
/// (`consequence`) and how to fix it.
pub fn agent_url(node: &nomos_api::Node, consequence: &str) -> Result<String, ServerError> {
    if node.http_addr.is_empty() {
        return Err(ServerError::Agent(format!(
            "node {} registered no HTTP address, so {consequence}; start its agent without `--http-addr off`",
            node.name
        )));
    }
    if let Ok(bound) = node.http_addr.parse::<std::net::SocketAddr>() {
        if bound.ip().is_unspecified() {
            if let Ok(ip) = node.address.parse::<std::net::IpAddr>() {
                return Ok(base_url(
                    &std::net::SocketAddr::new(ip, bound.port()).to_string(),
                ));
            }
        }
    }
    Ok(base_url(&node.http_addr))
}

/// `http://` in front of a bare `host:port`.
pub fn base_url(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.trim_end_matches('/').to_string()
    } else {
        format!("http://{addr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(http_addr: &str, address: &str) -> nomos_api::Node {
        nomos_api::Node {
            name: "n1".into(),
            http_addr: http_addr.into(),
            address: address.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_agent_url_is_the_registered_http_addr() {
        assert_eq!(
            agent_url(&node("192.0.2.5:4749", "192.0.2.5"), "x").unwrap(),
            "http://192.0.2.5:4749"
        );
        assert_eq!(
            agent_url(&node("127.0.0.1:31234", "192.0.2.5"), "x").unwrap(),
            "http://127.0.0.1:31234"
        );
        assert_eq!(
            agent_url(&node("https://n1.example:4749/", ""), "x").unwrap(),
            "https://n1.example:4749"
        );
    }

    #[test]
    fn a_wildcard_http_addr_is_reached_on_the_nodes_address() {
        assert_eq!(
            agent_url(&node("0.0.0.0:4749", "192.0.2.5"), "x").unwrap(),
            "http://192.0.2.5:4749"
        );
        assert_eq!(
            agent_url(&node("[::]:4749", "2001:db8::5"), "x").unwrap(),
            "http://[2001:db8::5]:4749"
        );
    }

    #[test]
    fn a_node_without_http_addr_is_an_error_saying_what_cannot_be_done() {
        let err = agent_url(&node("", "192.0.2.5"), "its tasks cannot be restarted")
            .expect_err("no address");
        let text = err.to_string();
        assert!(
            text.contains("node n1 registered no HTTP address, so its tasks cannot be restarted"),
            "{text}"
        );
        assert!(text.contains("--http-addr off"), "{text}");
    }
}
