//! One store change as one event of Nomad's event stream: its topic and type from the key's
//! prefix and the kind of change, and its payload in the Nomad shape the read endpoints give.
//!
//! | key | topic | types |
//! | --- | --- | --- |
//! | `jobs/<ns>/<id>` | Job | JobRegistered, JobDeregistered |
//! | `allocs/<node>/<id>`, `allocstatus/<node>/<id>` | Allocation | AllocationCreated, AllocationUpdateDesiredStatus, AllocationUpdated |
//! | `deployments/<ns>/<job>/<id>` | Deployment | DeploymentStatusUpdate |
//! | `evals/<ns>/...` ([`EVALS_PREFIX`]) | Evaluation | EvaluationUpdated |
//! | `nodes/<name>` | Node | NodeRegistration, NodeDeregistration |
//! | `nodespec/<name>`, `drainstatus/<name>` | Node | NodeDrain, NodeEligibility |
//! | `nodestatus/<name>`, `heartbeats/<name>` (made or gone) | Node | NodeStreamEvent |
//! | `services/<ns>/<name>/<id>` | Service | ServiceRegistration, ServiceDeregistration |
//!
//! Everything else (job versions and status, ACL objects, ...) makes no event.
//! Deployments and evaluations are converted by [`deployment_payload`] and
//! [`evaluation_payload`], small functions to swap for the read endpoints' shapes.

use nomos_api::nomad_out::{job_to_nomad, JobMeta};
use nomos_api::service::ServiceRegistration;
use nomos_api::{AllocStatus, Allocation, Deployment, Node, NodeSpec};
use nomos_store::{keys, EventKind, KeyValue, WatchEvent};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::allocs::{detail, Lookup};
use super::event_topics::Event;
use crate::error::ServerError;
use crate::reads::AllocRow;
use crate::AppState;

/// Where evaluations are stored, once they are.
pub const EVALS_PREFIX: &str = "/nomos/evals/";

/// The event a store change makes, if any.
pub async fn to_event(st: &AppState, ev: &WatchEvent) -> Result<Option<Event>, ServerError> {
    let Some(key) = ev.kv.key_utf8_or_skip() else {
        return Ok(None);
    };
    let Some(rest) = key.strip_prefix(keys::ROOT) else {
        return Ok(None);
    };
    let (family, name) = rest.split_once('/').unwrap_or((rest, ""));
    let deleted = ev.kind == EventKind::Delete;
    // A deleted key's event describes what it held.
    let kv = match (&ev.prev_kv, deleted) {
        (Some(prev), true) => prev,
        (None, true) => return Ok(None),
        _ => &ev.kv,
    };
    let index = ev.kv.mod_revision;
    let event = match family {
        "jobs" => job_event(st, kv, deleted).await?,
        "allocs" | "allocstatus" if !deleted => alloc_event(st, ev, family == "allocs").await?,
        "allocs" => alloc_deleted_event(st, kv).await?,
        "deployments" if !deleted => decode::<Deployment>(kv).map(|d| deployment_event(&d, kv)),
        "evals" if !deleted => evaluation_event(kv),
        "nodes" | "nodespec" | "drainstatus" | "nodestatus" => {
            node_event(st, ev, family, name, deleted).await?
        }
        // A heartbeat key is written once per lease: made, the node is ready; gone, it is
        // disconnected. Rewrites change nothing a reader sees.
        "heartbeats" if deleted || ev.prev_kv.is_none() => {
            node_event(st, ev, family, name, deleted).await?
        }
        "services" => decode::<ServiceRegistration>(kv).map(|s| service_event(s, kv, deleted)),
        _ => None,
    };
    Ok(event.map(|e| Event { index, ..e }))
}

fn decode<T: DeserializeOwned>(kv: &KeyValue) -> Option<T> {
    serde_json::from_slice(&kv.value).ok()
}

fn event(topic: &'static str, kind: &'static str, key: &str, namespace: &str) -> Event {
    Event {
        topic,
        kind,
        key: key.to_string(),
        namespace: namespace.to_string(),
        filter_keys: None,
        index: 0,
        payload: Value::Null,
    }
}

/// A job's event; the payload carries the status and version the controllers last recorded
/// (`pending` before they did, `dead` once deregistered).
async fn job_event(
    st: &AppState,
    kv: &KeyValue,
    deleted: bool,
) -> Result<Option<Event>, ServerError> {
    let Some((namespace, id)) = crate::specs::split_job_key(kv) else {
        return Ok(None);
    };
    let Ok(job) = crate::specs::read_spec(kv) else {
        return Ok(None);
    };
    let recorded = crate::specs::job_status(st, &namespace, &id)
        .await?
        .unwrap_or_default();
    let status = match recorded.status.as_str() {
        _ if deleted => "dead".to_string(),
        "" => "pending".to_string(),
        s => s.to_string(),
    };
    let meta = JobMeta {
        status,
        version: recorded.version,
        create_index: u64::try_from(kv.create_revision).unwrap_or(0),
        modify_index: u64::try_from(kv.mod_revision).unwrap_or(0),
        job_modify_index: u64::try_from(kv.mod_revision).unwrap_or(0),
        ..Default::default()
    };
    let kind = if deleted {
        "JobDeregistered"
    } else {
        "JobRegistered"
    };
    Ok(Some(Event {
        payload: json!({ "Job": job_to_nomad(&job, &meta) }),
        ..event("Job", kind, &id, &namespace)
    }))
}

/// An allocation's event: its desired part (`allocs`) or its reported status changed; the
/// payload is the whole allocation without its job, as in Nomad.
async fn alloc_event(
    st: &AppState,
    ev: &WatchEvent,
    desired: bool,
) -> Result<Option<Event>, ServerError> {
    let (alloc_kv, status) = if desired {
        let Some(alloc) = decode::<Allocation>(&ev.kv) else {
            return Ok(None);
        };
        let status_key = keys::alloc_status(&alloc.node, &alloc.id);
        let status = crate::kv::get_json::<AllocStatus>(st.store.as_ref(), &status_key).await?;
        (ev.kv.clone(), status.map(|e| (e.value, e.mod_revision)))
    } else {
        let Some(status) = decode::<AllocStatus>(&ev.kv) else {
            return Ok(None);
        };
        let alloc_key = ev.kv.key_str().replacen("/allocstatus/", "/allocs/", 1);
        let Some(alloc_kv) = crate::kv::get_raw(st.store.as_ref(), &alloc_key).await? else {
            return Ok(None);
        };
        (alloc_kv, Some((status, ev.kv.mod_revision)))
    };
    let Some(alloc) = decode::<Allocation>(&alloc_kv) else {
        return Ok(None);
    };
    let kind = match ev.prev_kv.as_ref().and_then(decode::<Allocation>) {
        _ if !desired => "AllocationUpdated",
        None => "AllocationCreated",
        Some(prev) if prev.desired_status != alloc.desired_status => {
            "AllocationUpdateDesiredStatus"
        }
        Some(_) => "AllocationUpdated",
    };
    let row = AllocRow {
        create_index: alloc_kv.create_revision,
        alloc_modify_index: alloc_kv.mod_revision,
        modify_index: alloc_kv
            .mod_revision
            .max(status.as_ref().map_or(0, |s| s.1)),
        status: status.map(|s| s.0),
        alloc,
    };
    let look = Lookup::new(st, std::slice::from_ref(&row)).await?;
    let filter_keys = vec![row.alloc.job_id.clone(), row.alloc.deployment_id.clone()];
    Ok(Some(Event {
        filter_keys: Some(filter_keys),
        payload: json!({ "Allocation": detail(&row, &look) }),
        ..event("Allocation", kind, &row.alloc.id, &row.alloc.namespace)
    }))
}

/// An allocation removed from the store (its job purged, or collected): Nomos's own
/// `AllocationDeleted`, carrying the allocation as it last stood with `DesiredStatus` stop, so
/// a reader following allocations by the stream stops counting it (Nomad never removes an
/// allocation a client may still run, so it has no such event).
async fn alloc_deleted_event(st: &AppState, kv: &KeyValue) -> Result<Option<Event>, ServerError> {
    let Some(mut alloc) = decode::<Allocation>(kv) else {
        return Ok(None);
    };
    alloc.desired_status = nomos_api::DesiredStatus::Stop;
    let row = AllocRow {
        create_index: kv.create_revision,
        alloc_modify_index: kv.mod_revision,
        modify_index: kv.mod_revision,
        status: None,
        alloc,
    };
    let look = Lookup::new(st, std::slice::from_ref(&row)).await?;
    let filter_keys = vec![row.alloc.job_id.clone(), row.alloc.deployment_id.clone()];
    Ok(Some(Event {
        filter_keys: Some(filter_keys),
        payload: json!({ "Allocation": detail(&row, &look) }),
        ..event(
            "Allocation",
            "AllocationDeleted",
            &row.alloc.id,
            &row.alloc.namespace,
        )
    }))
}

fn deployment_event(d: &Deployment, kv: &KeyValue) -> Event {
    Event {
        filter_keys: Some(vec![d.job_id.clone()]),
        payload: json!({ "Deployment": deployment_payload(d, kv) }),
        ..event("Deployment", "DeploymentStatusUpdate", &d.id, &d.namespace)
    }
}

/// A stored deployment in Nomad's shape, as `GET /v1/deployment/{id}` answers it.
pub fn deployment_payload(d: &Deployment, kv: &KeyValue) -> Value {
    serde_json::to_value(super::deployments::event_shape(d.clone(), kv)).unwrap_or(Value::Null)
}

fn evaluation_event(kv: &KeyValue) -> Option<Event> {
    let eval = evaluation_payload(decode::<Value>(kv)?, kv);
    let field = |name: &str| eval[name].as_str().unwrap_or_default().to_string();
    let (id, namespace) = (field("ID"), field("Namespace"));
    let filter_keys = vec![field("JobID"), field("DeploymentID")];
    Some(Event {
        filter_keys: Some(filter_keys),
        payload: json!({ "Evaluation": eval }),
        ..event("Evaluation", "EvaluationUpdated", &id, &namespace)
    })
}

/// A stored evaluation in Nomad's shape (stored evaluations are written in it), with its
/// indexes from the key's revisions.
pub fn evaluation_payload(mut stored: Value, kv: &KeyValue) -> Value {
    if let Value::Object(fields) = &mut stored {
        fields.insert("CreateIndex".into(), kv.create_revision.into());
        fields.insert("ModifyIndex".into(), kv.mod_revision.into());
    }
    stored
}

/// A node's event; the payload is the node as `GET /v1/node/{id}` answers it.
async fn node_event(
    st: &AppState,
    ev: &WatchEvent,
    family: &str,
    name: &str,
    deleted: bool,
) -> Result<Option<Event>, ServerError> {
    let view = if family == "nodes" && deleted {
        let Some(node) = decode::<Node>(ev.prev_kv.as_ref().unwrap_or(&ev.kv)) else {
            return Ok(None);
        };
        crate::reads::departed_node_view(node, name)
    } else {
        match crate::reads::get_node(st, name).await {
            Ok(v) => v,
            Err(ServerError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        }
    };
    let kind = match family {
        "nodes" if deleted => "NodeDeregistration",
        "nodes" => "NodeRegistration",
        "drainstatus" => "NodeDrain",
        "nodespec" if drain_changed(ev) => "NodeDrain",
        "nodespec" => "NodeEligibility",
        _ => "NodeStreamEvent",
    };
    let detail = super::nodes::detail(&view);
    Ok(Some(Event {
        payload: json!({ "Node": detail }),
        ..event("Node", kind, &view.node.id, "")
    }))
}

/// Whether a node spec change started, changed or ended a drain.
fn drain_changed(ev: &WatchEvent) -> bool {
    let now = decode::<NodeSpec>(&ev.kv).unwrap_or_default();
    let before = ev
        .prev_kv
        .as_ref()
        .and_then(decode::<NodeSpec>)
        .unwrap_or_default();
    now.drain != before.drain
}

fn service_event(s: ServiceRegistration, kv: &KeyValue, deleted: bool) -> Event {
    let kind = if deleted {
        "ServiceDeregistration"
    } else {
        "ServiceRegistration"
    };
    let filter_keys = vec![s.job_id.clone(), s.service_name.clone()];
    let (id, namespace) = (s.id.clone(), s.namespace.clone());
    Event {
        filter_keys: Some(filter_keys),
        payload: json!({ "Service": crate::services::RegistrationView::of(s, kv) }),
        ..event("Service", kind, &id, &namespace)
    }
}
