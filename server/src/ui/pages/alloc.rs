//! The allocation page: its tasks with their states, recent events and log links, its ports
//! and its service checks.

use axum::extract::{Path, State};
use axum::Extension;
use serde::Serialize;

use super::{html, Link, Page};
use crate::acl::Caller;
use crate::error::ServerError;
use crate::ui::model::{self, When};
use crate::views::AllocView;
use crate::AppState;

/// Task events shown per task on an allocation page, newest first.
pub const RECENT_EVENTS: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub time: When,
    pub event_type: String,
    pub message: String,
    /// `exit code 1, signal 9, OOM killed`.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskBox {
    pub name: String,
    pub state: String,
    pub failed: bool,
    pub restarts: u32,
    pub exit_code: Option<i32>,
    pub started: When,
    pub finished: When,
    pub stdout_href: String,
    pub stderr_href: String,
    pub events: Vec<EventRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckRow {
    pub name: String,
    pub status: String,
    pub output: String,
    pub checked: When,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortRow {
    pub label: String,
    pub value: u16,
    pub to: u16,
    pub host_ip: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllocPage {
    pub id: String,
    pub short_id: String,
    pub name: String,
    pub namespace: String,
    pub job_id: String,
    pub job_href: String,
    pub job_version: u64,
    pub group: String,
    pub node: String,
    pub node_href: String,
    pub desired: String,
    pub desired_description: String,
    pub client_status: String,
    pub client_description: String,
    pub healthy: Option<bool>,
    pub deployment_id: String,
    pub previous: Option<Link>,
    /// The allocation that replaced this one (filled by the handler).
    pub next: Option<Link>,
    pub ports: Vec<PortRow>,
    pub created: When,
    pub modified: When,
    pub tasks: Vec<TaskBox>,
    pub checks: Vec<CheckRow>,
    /// Its instances in the service catalogue (filled by the handler).
    pub services: Vec<ServiceInstanceRow>,
    pub fragment_href: String,
}

/// One of an allocation's service instances.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceInstanceRow {
    pub name: String,
    pub address: String,
    pub tags: String,
    pub status: String,
}

impl ServiceInstanceRow {
    pub fn of(r: &nomos_api::service::ServiceRegistration) -> Self {
        ServiceInstanceRow {
            name: r.service_name.clone(),
            address: format!("{}:{}", r.address, r.port),
            tags: r.tags.join(", "),
            status: nomos_api::service::worst_check_status(r.checks.values().map(String::as_str))
                .to_string(),
        }
    }
}

/// The allocation page's model. `spec_tasks` names the group's tasks from the job spec, shown
/// (pending) before the agent reported any.
pub fn alloc_page(a: &AllocView, spec_tasks: &[String], now_ms: i64) -> AllocPage {
    let al = &a.allocation;
    let row = model::alloc_row(a, now_ms);
    let status = a.status.clone().unwrap_or_default();
    let logs = |task: &str, stream: &str| {
        format!(
            "/v1/client/fs/logs/{}?plain=true&task={}{}",
            model::encode_segment(&al.id),
            model::encode_segment(task),
            if stream == "stderr" {
                "&type=stderr"
            } else {
                ""
            }
        )
    };
    let mut tasks: Vec<TaskBox> = status
        .task_states
        .iter()
        .map(|(name, t)| TaskBox {
            name: name.clone(),
            state: model::enum_name(&t.state),
            failed: t.failed,
            restarts: t.restarts,
            exit_code: t.exit_code,
            started: model::when(now_ms, Some(t.started_at_ms)),
            finished: model::when(now_ms, Some(t.finished_at_ms)),
            stdout_href: logs(name, "stdout"),
            stderr_href: logs(name, "stderr"),
            events: t
                .events
                .iter()
                .rev()
                .take(RECENT_EVENTS)
                .map(|e| EventRow {
                    time: model::when(now_ms, Some(e.time_ms)),
                    event_type: e.event_type.clone(),
                    message: e.message.clone(),
                    detail: event_detail(e),
                })
                .collect(),
        })
        .collect();
    for name in spec_tasks {
        if !tasks.iter().any(|t| &t.name == name) {
            tasks.push(TaskBox {
                name: name.clone(),
                state: "pending".into(),
                failed: false,
                restarts: 0,
                exit_code: None,
                started: model::when(now_ms, None),
                finished: model::when(now_ms, None),
                stdout_href: logs(name, "stdout"),
                stderr_href: logs(name, "stderr"),
                events: Vec::new(),
            });
        }
    }
    AllocPage {
        id: al.id.clone(),
        short_id: row.short_id,
        name: al.name.clone(),
        namespace: al.namespace.clone(),
        job_id: al.job_id.clone(),
        job_href: row.job_href,
        job_version: al.job_version,
        group: al.task_group.clone(),
        node: al.node.clone(),
        node_href: row.node_href,
        desired: row.desired,
        desired_description: al.desired_description.clone(),
        client_status: row.client_status,
        client_description: status.client_description.clone(),
        healthy: status.healthy,
        deployment_id: al.deployment_id.clone(),
        previous: (!al.previous_alloc.is_empty()).then(|| Link {
            text: model::short_id(&al.previous_alloc),
            href: model::alloc_href(&al.previous_alloc),
        }),
        next: None,
        ports: al
            .ports
            .iter()
            .map(|p| PortRow {
                label: p.label.clone(),
                value: p.value,
                to: p.to,
                host_ip: p.host_ip.clone(),
            })
            .collect(),
        created: model::when(now_ms, Some(al.created_at_ms)),
        modified: model::when(now_ms, Some(al.modified_at_ms.max(status.modified_at_ms))),
        tasks,
        checks: status
            .checks
            .iter()
            .map(|(name, c)| CheckRow {
                name: name.clone(),
                status: c.status.clone(),
                output: c.output.clone(),
                checked: model::when(now_ms, Some(c.checked_at_ms)),
            })
            .collect(),
        services: Vec::new(),
        fragment_href: format!("/ui/fragments/allocation/{}", model::encode_segment(&al.id)),
    }
}

async fn alloc_model(st: &AppState, id: &str) -> Result<AllocPage, ServerError> {
    let a = crate::allocs::find_alloc(st, id).await?;
    let al = &a.allocation;
    // The spec names the tasks before the agent reports them; a job gone since is no error.
    let spec_tasks = match crate::specs::find_job(st, &al.namespace, &al.job_id).await {
        Ok((job, _)) => job
            .groups
            .iter()
            .find(|g| g.name == al.task_group)
            .map(|g| g.tasks.iter().map(|t| t.name.clone()).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut page = alloc_page(&a, &spec_tasks, nomos_api::now_ms());
    let regs =
        crate::services::registrations_in(st, &al.namespace, |r| r.alloc_id == al.id).await?;
    page.services = regs.iter().map(ServiceInstanceRow::of).collect();
    page.next = crate::ui::actions::replacement(&crate::reads::all_allocs(st).await?, &al.id);
    Ok(page)
}

/// `GET /ui/allocation/{id}` (ID or unique prefix), with its console for the caller.
pub async fn alloc(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Page {
    let alloc = alloc_model(&st, &id).await?;
    let console = crate::ui::console::console(&alloc, &caller.acl);
    html(
        "alloc.html",
        &serde_json::json!({ "alloc": alloc, "console": console }),
    )
}

/// `GET /ui/fragments/allocation/{id}`.
pub async fn alloc_fragment(State(st): State<AppState>, Path(id): Path<String>) -> Page {
    let alloc = alloc_model(&st, &id).await?;
    html(
        "fragments/alloc.html",
        &serde_json::json!({ "alloc": alloc }),
    )
}

/// The exit code, signal and OOM kill of an event that its message does not already say (the
/// agent writes "Exit Code: 3, Signal: 9, OOM Killed" into a termination's message), so each
/// fact shows once.
fn event_detail(e: &nomos_api::TaskEvent) -> String {
    let said = e.message.to_ascii_lowercase();
    let mut detail = Vec::new();
    if let Some(c) = e.exit_code.filter(|_| !said.contains("exit code")) {
        detail.push(format!("exit code {c}"));
    }
    if let Some(s) = e.signal.filter(|_| !said.contains("signal")) {
        detail.push(format!("signal {s}"));
    }
    if e.oom_killed && !said.contains("oom") {
        detail.push("OOM killed".to_string());
    }
    detail.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(message: &str) -> nomos_api::TaskEvent {
        nomos_api::TaskEvent {
            event_type: "Terminated".into(),
            message: message.into(),
            exit_code: Some(3),
            signal: Some(9),
            oom_killed: true,
            ..Default::default()
        }
    }

    #[test]
    fn an_event_states_each_fact_once() {
        assert_eq!(
            event_detail(&event("Exit Code: 3, Signal: 9, OOM Killed")),
            ""
        );
        assert_eq!(event_detail(&event("Exit Code: 3")), "signal 9, OOM killed");
        assert_eq!(
            event_detail(&event("")),
            "exit code 3, signal 9, OOM killed"
        );
    }
}
