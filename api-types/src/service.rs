//! Service discovery's shared words: a service instance as the catalogue holds it
//! (`/nomos/services/<namespace>/<service>/<id>`, written by the services loop), the name a
//! `service` block gets when it names none, the name each check's result is reported under, and
//! the rule a service name must follow (a DNS label, as Nomad requires).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::{Service, TaskGroup};

/// One registered instance of a service: one allocation's `service` block, while the
/// allocation runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ServiceRegistration {
    /// Nomad's form: `_nomad-task-<alloc>-<task>-<service>-<port label>` (`group-<group>` in
    /// place of the task for a group's service).
    pub id: String,
    pub service_name: String,
    pub namespace: String,
    /// The node's id; [`ServiceRegistration::node`] is its name.
    pub node_id: String,
    pub node: String,
    pub datacenter: String,
    pub job_id: String,
    pub alloc_id: String,
    pub task_group: String,
    /// The task whose block this is; empty for a group's service.
    pub task: String,
    pub tags: Vec<String>,
    pub meta: IndexMap<String, String>,
    pub address: String,
    pub port: u16,
    /// Every check of this service passes (true without checks).
    pub healthy: bool,
    /// Each check's last status (`passing`, `critical`; `pending` before its first result).
    pub checks: IndexMap<String, String>,
}

/// Longest service name: a DNS label.
pub const MAX_SERVICE_NAME: usize = 63;

/// The name of a service whose block names none: `<job>-<group>` for a group's service,
/// `<job>-<group>-<task>` for a task's, as Nomad names them.
pub fn service_name(svc: &Service, job_id: &str, group: &str, task: Option<&str>) -> String {
    if !svc.name.is_empty() {
        return svc.name.clone();
    }
    match task {
        Some(t) => format!("{job_id}-{group}-{t}"),
        None => format!("{job_id}-{group}"),
    }
}

/// Why `name` cannot name a service (it becomes a DNS label and a store key segment), if it
/// cannot: letters, digits and dashes, not starting or ending with a dash, at most 63 bytes.
pub fn unfit_service_name(name: &str) -> Option<String> {
    let why = if name.is_empty() {
        "must not be empty"
    } else if name.len() > MAX_SERVICE_NAME {
        "must be at most 63 characters"
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        "may contain only letters, digits and dashes"
    } else if name.starts_with('-') || name.ends_with('-') {
        "must not start or end with a dash"
    } else {
        return None;
    };
    Some(format!(
        "invalid service name {name:?}: {why} (it must be a valid DNS label)"
    ))
}

/// The name a check's result is reported under: `<service>.<check name, or type and index>`.
pub fn check_name(service: &str, check_name: &str, check_type: &str, index: usize) -> String {
    let c = if check_name.is_empty() {
        format!("{check_type}{index}")
    } else {
        check_name.to_string()
    };
    format!("{service}.{c}")
}

/// Every `service` block of a group with its resolved name and owner: the group's own first
/// (task `None`), then each task's.
pub fn group_services<'a>(
    group: &'a TaskGroup,
    job_id: &str,
) -> Vec<(&'a Service, String, Option<&'a str>)> {
    let mut out: Vec<(&Service, String, Option<&str>)> = group
        .services
        .iter()
        .map(|s| (s, service_name(s, job_id, &group.name, None), None))
        .collect();
    for t in &group.tasks {
        for s in &t.services {
            let name = service_name(s, job_id, &group.name, Some(&t.name));
            out.push((s, name, Some(t.name.as_str())));
        }
    }
    out
}

/// An instance's health in one word from its checks' statuses: the worst of `critical`,
/// `warning`, `pending` (any other status: not reported yet) and `passing` (also for none).
pub fn worst_check_status<'a>(statuses: impl IntoIterator<Item = &'a str>) -> &'static str {
    let rank = |s: &str| match s {
        "critical" => 3,
        "warning" => 2,
        "passing" => 0,
        _ => 1,
    };
    match statuses.into_iter().map(rank).max().unwrap_or(0) {
        3 => "critical",
        2 => "warning",
        1 => "pending",
        _ => "passing",
    }
}

/// The registration id Nomad gives an instance.
pub fn registration_id(
    alloc_id: &str,
    group: &str,
    task: Option<&str>,
    service: &str,
    port_label: &str,
) -> String {
    match task {
        Some(t) => format!("_nomad-task-{alloc_id}-{t}-{service}-{port_label}"),
        None => format!("_nomad-task-{alloc_id}-group-{group}-{service}-{port_label}"),
    }
}

/// A stable 64-bit rendezvous score of instance `id` for `key` (FNV-1a over both), the same on
/// every server and agent.
pub fn rendezvous_score(key: &str, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([0]).chain(id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The `n` items with the highest rendezvous score for `key` (Nomad's `choose=N|key` and the
/// three-argument `nomadService`): the same key keeps choosing the same instances while they
/// stay, and losing one instance moves only the clients that had chosen it.
pub fn choose<T>(mut items: Vec<T>, n: usize, key: &str, id_of: impl Fn(&T) -> &str) -> Vec<T> {
    items.sort_by_cached_key(|r| std::cmp::Reverse(rendezvous_score(key, id_of(r))));
    items.truncate(n);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_as_healthy_as_its_worst_check() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "passing"),
            (&["passing", "passing"], "passing"),
            (&["passing", "pending"], "pending"),
            (&["pending", "warning"], "warning"),
            (&["warning", "critical", "passing"], "critical"),
        ];
        for (statuses, want) in cases {
            assert_eq!(
                worst_check_status(statuses.iter().copied()),
                *want,
                "{statuses:?}"
            );
        }
    }

    #[test]
    fn a_service_without_a_name_is_named_after_its_job_group_and_task() {
        let named = Service {
            name: "web".into(),
            ..Default::default()
        };
        let unnamed = Service::default();
        assert_eq!(service_name(&named, "j", "g", Some("t")), "web");
        assert_eq!(service_name(&unnamed, "j", "g", None), "j-g");
        assert_eq!(service_name(&unnamed, "j", "g", Some("t")), "j-g-t");
    }

    #[test]
    fn service_names_are_dns_labels() {
        for ok in ["web", "a", "web-1", "A9", &"x".repeat(63)] {
            assert_eq!(unfit_service_name(ok), None, "{ok}");
        }
        for bad in [
            "",
            "-web",
            "web-",
            "web_api",
            "web.api",
            "a/b",
            "..",
            "wéb",
            &"x".repeat(64),
        ] {
            assert!(unfit_service_name(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn registration_ids_follow_nomads_form() {
        assert_eq!(
            registration_id("a1", "g", Some("t"), "web", "http"),
            "_nomad-task-a1-t-web-http"
        );
        assert_eq!(
            registration_id("a1", "g", None, "web", "http"),
            "_nomad-task-a1-group-g-web-http"
        );
    }
}
