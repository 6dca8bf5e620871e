//! Deployment handlers: list (optionally by job), get by unique ID prefix, promote canaries and
//! fail a running deployment. Deployments are written by the jobs controller; promote and fail
//! are user requests written onto the deployment with a compare on its mod_revision.

use axum::extract::{Path, Query, State};
use axum::Json;
use nomos_api::Deployment;
use nomos_store::keys;
use serde::Deserialize;

use crate::error::ServerError;
use crate::kv::{self, Entry};
use crate::views::DeploymentView;
use crate::AppState;

/// Every deployment, newest first.
pub async fn all_deployments(st: &AppState) -> Result<Vec<DeploymentView>, ServerError> {
    let entries: Vec<Entry<Deployment>> =
        kv::list_json(st.store.as_ref(), keys::DEPLOYMENTS_PREFIX).await?;
    let mut out: Vec<DeploymentView> = entries
        .into_iter()
        .map(|e| DeploymentView {
            deployment: e.value,
            modify_index: e.mod_revision,
        })
        .collect();
    out.sort_by(|a, b| {
        (b.deployment.created_at_ms, b.modify_index)
            .cmp(&(a.deployment.created_at_ms, a.modify_index))
    });
    Ok(out)
}

async fn find(st: &AppState, id: &str) -> Result<DeploymentView, ServerError> {
    let all = all_deployments(st).await?;
    kv::resolve_prefix(&all, id, "deployment", |d| d.deployment.id.as_str()).cloned()
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    pub job: Option<String>,
    pub namespace: Option<String>,
}

/// `GET /v1/deployments?job=&namespace=`.
pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<DeploymentView>>, ServerError> {
    let mut all = all_deployments(&st).await?;
    all.retain(|d| {
        q.job.as_deref().is_none_or(|j| d.deployment.job_id == j)
            && q.namespace
                .as_deref()
                .is_none_or(|n| d.deployment.namespace == n)
    });
    Ok(Json(all))
}

/// `GET /v1/deployment/{id}`.
pub async fn get(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ServerError> {
    Ok(Json(find(&st, &id).await?))
}

async fn update(
    st: &AppState,
    id: &str,
    change: impl Fn(&mut Deployment) -> Result<(), ServerError>,
) -> Result<DeploymentView, ServerError> {
    let mut view = find(st, id).await?;
    let d = &mut view.deployment;
    if d.status != "running" && d.status != "paused" {
        return Err(ServerError::Conflict(format!(
            "deployment {} is {}, not running",
            d.id, d.status
        )));
    }
    change(d)?;
    d.modified_at_ms = crate::allocs::now_ms();
    let key = keys::deployment(&d.namespace, &d.job_id, &d.id);
    view.modify_index =
        kv::put_if(st.store.as_ref(), &key, &view.deployment, view.modify_index).await?;
    Ok(view)
}

/// `POST /v1/deployment/{id}/promote`: promotes every group's canaries.
pub async fn promote(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ServerError> {
    Ok(Json(
        update(&st, &id, |d| {
            if d.groups.values().all(|g| g.desired_canaries == 0) {
                return Err(ServerError::BadRequest(format!(
                    "deployment {} has no canaries to promote",
                    d.id
                )));
            }
            for g in d.groups.values_mut() {
                g.promoted = true;
            }
            Ok(())
        })
        .await?,
    ))
}

/// `POST /v1/deployment/{id}/fail`: marks the deployment failed (auto_revert applies).
pub async fn fail(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ServerError> {
    Ok(Json(
        update(&st, &id, |d| {
            d.status = "failed".into();
            d.status_description = "failed by user".into();
            Ok(())
        })
        .await?,
    ))
}
