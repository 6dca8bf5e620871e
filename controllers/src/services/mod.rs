//! The service catalogue's decision (pure): which instances `/nomos/services/` should hold,
//! derived from the allocations, their statuses, their job versions, the nodes and the
//! deployments, and the writes that take the stored catalogue there.
//!
//! An allocation's `service` blocks (the group's and its tasks') are registered while its desired
//! status is `run` and its agent reports it `running`; they go when it stops, fails, is lost
//! (its node gone past `lost_after`) or is collected with its job. Both Nomad providers register
//! here (`nomad`, and `consul`, Nomad's default), so job files written for Consul get discovery
//! unedited. An unpromoted canary registers its `canary_tags` (when it has any) instead of its
//! `tags`. An instance is healthy when every check of its service passes.

pub mod run;

use std::collections::BTreeMap;

use nomos_api::service::ServiceRegistration;
use nomos_api::service::{check_name, group_services, registration_id, unfit_service_name};
use nomos_api::{AllocStatus, Allocation, ClientStatus, DesiredStatus, Job, Node, Service};
use nomos_store::keys;

use crate::loops::view::{Rev, View};

/// What one allocation's registrations are derived from.
#[derive(Debug, Clone, Copy)]
pub struct Instance<'a> {
    pub alloc: &'a Allocation,
    pub status: Option<&'a AllocStatus>,
    /// The job version the allocation runs.
    pub job: Option<&'a Job>,
    pub node: Option<&'a Node>,
    /// A canary whose deployment has not promoted its group.
    pub unpromoted_canary: bool,
}

/// Whether an allocation's services belong in the catalogue.
pub fn registers(alloc: &Allocation, status: Option<&AllocStatus>) -> bool {
    alloc.desired_status == DesiredStatus::Run
        && status.is_some_and(|s| s.client_status == ClientStatus::Running)
}

/// The registrations of one allocation, by store key.
pub fn registrations(i: &Instance<'_>) -> Vec<(String, ServiceRegistration)> {
    let (Some(job), true) = (i.job, registers(i.alloc, i.status)) else {
        return Vec::new();
    };
    let Some(group) = job.groups.iter().find(|g| g.name == i.alloc.task_group) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (svc, name, task) in group_services(group, &i.alloc.job_id) {
        let vars = Vars {
            job: &i.alloc.job_id,
            group: &group.name,
            task: task.unwrap_or(""),
            alloc: i.alloc,
        };
        let name = vars.interpolate(&name);
        if unfit_service_name(&name).is_some() {
            continue;
        }
        let Some((address, port)) = address_of(svc, i.alloc, i.node) else {
            continue;
        };
        let id = registration_id(&i.alloc.id, &group.name, task, &name, &svc.port);
        if id.contains('/') {
            continue;
        }
        let checks = check_states(svc, &name, i.status);
        let tags = if i.unpromoted_canary && !svc.canary_tags.is_empty() {
            &svc.canary_tags
        } else {
            &svc.tags
        };
        let reg = ServiceRegistration {
            id: id.clone(),
            service_name: name.clone(),
            namespace: i.alloc.namespace.clone(),
            node_id: i.node.map(|n| n.id.clone()).unwrap_or_default(),
            node: i.alloc.node.clone(),
            datacenter: i.node.map(|n| n.datacenter.clone()).unwrap_or_default(),
            job_id: i.alloc.job_id.clone(),
            alloc_id: i.alloc.id.clone(),
            task_group: group.name.clone(),
            task: task.unwrap_or("").to_string(),
            tags: tags.iter().map(|t| vars.interpolate(t)).collect(),
            meta: svc
                .meta
                .iter()
                .map(|(k, v)| (k.clone(), vars.interpolate(v)))
                .collect(),
            address,
            port,
            healthy: checks.values().all(|s| s == "passing"),
            checks,
        };
        out.push((keys::service(&reg.namespace, &name, &id), reg));
    }
    out
}

/// Where a service is reached: its port label's allocated port (on the port's host address, or
/// the node's), a literal port number on the node's address, or the node's address alone.
/// `None` when the label names no allocated port.
fn address_of(svc: &Service, alloc: &Allocation, node: Option<&Node>) -> Option<(String, u16)> {
    let node_address = node.map(|n| n.address.clone()).unwrap_or_default();
    if svc.port.is_empty() {
        return Some((node_address, 0));
    }
    if let Ok(p) = svc.port.parse::<u16>() {
        return Some((node_address, p));
    }
    let p = alloc.ports.iter().find(|p| p.label == svc.port)?;
    let address = if p.host_ip.is_empty() {
        node_address
    } else {
        p.host_ip.clone()
    };
    Some((address, p.value))
}

/// Each check's last reported status (`pending` before its first result).
fn check_states(
    svc: &Service,
    name: &str,
    status: Option<&AllocStatus>,
) -> indexmap::IndexMap<String, String> {
    svc.checks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let key = check_name(name, &c.name, &c.check_type, i);
            let state = status
                .and_then(|s| s.checks.get(&key))
                .map_or_else(|| "pending".to_string(), |r| r.status.clone());
            (key, state)
        })
        .collect()
}

/// The runtime variables a service's name, tags and meta may use, as Nomad interpolates them.
struct Vars<'a> {
    job: &'a str,
    group: &'a str,
    task: &'a str,
    alloc: &'a Allocation,
}

impl Vars<'_> {
    fn value(&self, name: &str) -> Option<String> {
        Some(match name {
            "JOB" | "NOMAD_JOB_NAME" | "NOMAD_JOB_ID" => self.job.to_string(),
            "TASKGROUP" | "NOMAD_GROUP_NAME" => self.group.to_string(),
            "TASK" | "NOMAD_TASK_NAME" => self.task.to_string(),
            "NOMAD_NAMESPACE" => self.alloc.namespace.clone(),
            "NOMAD_ALLOC_ID" => self.alloc.id.clone(),
            "NOMAD_ALLOC_INDEX" => self.alloc.index.to_string(),
            "NOMAD_ALLOC_NAME" => self.alloc.name.clone(),
            _ => return None,
        })
    }

    /// `s` with each `${NAME}` it knows replaced; others are left as written.
    fn interpolate(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find('}') {
                Some(end) => {
                    let name = &after[..end];
                    match self.value(name) {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&rest[start..start + 3 + end]),
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Every registration the view calls for, by key.
pub fn catalogue(view: &View) -> BTreeMap<String, ServiceRegistration> {
    let mut out = BTreeMap::new();
    for a in view.allocs.values() {
        let alloc = &a.value;
        let status = view.alloc_status.get(&alloc.id).map(|s| &s.value);
        if !registers(alloc, status) {
            continue;
        }
        let unpromoted_canary = alloc.canary
            && view
                .deployments
                .get(&(alloc.namespace.clone(), alloc.job_id.clone()))
                .and_then(|d| d.get(&alloc.deployment_id))
                .and_then(|d| d.groups.get(&alloc.task_group))
                .is_none_or(|g| !g.promoted);
        let instance = Instance {
            alloc,
            status,
            job: view.job_of(alloc),
            node: view.nodes.get(&alloc.node),
            unpromoted_canary,
        };
        out.extend(registrations(&instance));
    }
    out
}

/// The writes that take the stored catalogue to the wanted one: each compares on the revision
/// the key was read at (0: absent).
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub puts: Vec<(String, ServiceRegistration, i64)>,
    pub deletes: Vec<(String, i64)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }
}

/// What differs between the wanted catalogue and the stored one.
pub fn changes(
    wanted: BTreeMap<String, ServiceRegistration>,
    stored: &BTreeMap<String, Rev<ServiceRegistration>>,
) -> Changes {
    let mut out = Changes::default();
    for (key, held) in stored {
        if !wanted.contains_key(key) {
            out.deletes.push((key.clone(), held.mod_revision));
        }
    }
    for (key, reg) in wanted {
        match stored.get(&key) {
            Some(held) if held.value == reg => {}
            Some(held) => out.puts.push((key, reg, held.mod_revision)),
            None => out.puts.push((key, reg, 0)),
        }
    }
    out
}

#[cfg(test)]
mod tests;
