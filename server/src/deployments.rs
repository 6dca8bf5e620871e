//! Deployment handlers: list (optionally by job), get by unique ID prefix, and the user's
//! requests on an active (running or paused) deployment: promote canaries (all groups or some),
//! fail it, pause or resume it. Deployments are written by the jobs controller, which carries
//! these requests forward; each request is written onto the deployment key with a compare on
//! its mod_revision, so a concurrent change (the controller's included) answers 409, to retry.
//!
//! What a request changes is decided by pure functions ([`promote_groups`], [`mark_failed`],
//! [`set_paused`]) over the deployment read, so their rules are tested without a store.

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use nomos_api::acl::check::CAP_READ_JOB;
use nomos_api::deployment_status as ds;
use nomos_api::Deployment;
use nomos_store::keys;
use serde::Deserialize;

use crate::acl::Caller;
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::kv;
use crate::reads::all_deployments;
use crate::views::{DeploymentView, PauseRequest, PromoteRequest};
use crate::AppState;

pub async fn find(st: &AppState, id: &str) -> Result<DeploymentView, ServerError> {
    let all = all_deployments(st).await?;
    kv::resolve_prefix(&all, id, "deployment", |d| d.deployment.id.as_str()).cloned()
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    pub job: Option<String>,
    pub namespace: Option<String>,
}

/// `GET /v1/deployments?job=&namespace=` (`*` or none: every namespace). With ACLs on, only
/// deployments in namespaces the caller may `read-job` in are listed.
pub async fn list(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<DeploymentView>>, ServerError> {
    let mut all = all_deployments(&st).await?;
    let namespace = q
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty() && *n != "*");
    all.retain(|d| {
        caller
            .acl
            .allows_namespace(&d.deployment.namespace, CAP_READ_JOB)
            && q.job.as_deref().is_none_or(|j| d.deployment.job_id == j)
            && namespace.is_none_or(|n| d.deployment.namespace == n)
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

/// A user's change to a deployment: `Ok(true)` when it changed something to write.
type Change<'a> = &'a (dyn Fn(&mut Deployment) -> Result<bool, ServerError> + Sync);

/// Applies `change` to an active deployment read as `view` and writes it if it changed
/// anything, comparing the key's mod_revision with the one read. `verb` names the request in
/// the messages.
pub async fn write_change(
    st: &AppState,
    mut view: DeploymentView,
    verb: &str,
    change: Change<'_>,
) -> Result<DeploymentView, ServerError> {
    let d = &mut view.deployment;
    if !d.is_active() {
        return Err(ServerError::Conflict(format!(
            "deployment {} is {}: only a running or paused deployment can be {verb}",
            d.id, d.status
        )));
    }
    if !change(d)? {
        return Ok(view);
    }
    d.modified_at_ms = nomos_api::now_ms();
    let key = keys::deployment(&d.namespace, &d.job_id, &d.id);
    let read_at = view.modify_index;
    view.modify_index = kv::put_if(st.store.as_ref(), &key, &view.deployment, read_at)
        .await
        .map_err(|e| match e {
            ServerError::Conflict(_) => ServerError::Conflict(format!(
                "deployment {} changed while it was being {verb} (it was read at modify \
                 index {read_at}); nothing was written, retry",
                view.deployment.id
            )),
            other => other,
        })?;
    Ok(view)
}

/// A name from a request, cut for an error message.
fn quoted(name: &str) -> String {
    const MAX: usize = 64;
    if name.chars().count() > MAX {
        format!("{:?}...", name.chars().take(MAX).collect::<String>())
    } else {
        format!("{name:?}")
    }
}

/// Promotes the canaries of `groups` (empty: every group that has canaries), as Nomad does:
/// a named group must exist and have canaries, and every group promoted must have all its
/// canaries placed and healthy. Groups already promoted are left as they are.
pub fn promote_groups(d: &mut Deployment, groups: &[String]) -> Result<bool, ServerError> {
    for name in groups {
        let Some(g) = d.groups.get(name) else {
            let known: Vec<&str> = d.groups.keys().map(String::as_str).collect();
            return Err(ServerError::BadRequest(format!(
                "deployment {} has no group {} (its groups: {})",
                d.id,
                quoted(name),
                known.join(", ")
            )));
        };
        if g.desired_canaries == 0 {
            return Err(ServerError::BadRequest(format!(
                "group {} of deployment {} has no canaries to promote",
                quoted(name),
                d.id
            )));
        }
    }
    let chosen: Vec<String> = d
        .groups
        .iter()
        .filter(|(name, g)| g.desired_canaries > 0 && (groups.is_empty() || groups.contains(name)))
        .map(|(name, _)| name.clone())
        .collect();
    if chosen.is_empty() {
        return Err(ServerError::BadRequest(format!(
            "deployment {} has no canaries to promote",
            d.id
        )));
    }
    let unhealthy: Vec<String> = chosen
        .iter()
        .filter_map(|name| {
            let g = &d.groups[name];
            let healthy = g.healthy.min(g.placed_canaries.len() as u32);
            (!g.promoted && healthy < g.desired_canaries).then(|| {
                format!(
                    "group {name:?} has {healthy}/{} healthy canaries",
                    g.desired_canaries
                )
            })
        })
        .collect();
    if !unhealthy.is_empty() {
        return Err(ServerError::BadRequest(format!(
            "deployment {}: cannot promote canaries that are not all healthy: {}",
            d.id,
            unhealthy.join("; ")
        )));
    }
    let mut changed = false;
    for name in &chosen {
        if let Some(g) = d.groups.get_mut(name) {
            changed |= !g.promoted;
            g.promoted = true;
        }
    }
    Ok(changed)
}

/// Marks the deployment failed by the user (the controller applies `auto_revert`).
pub fn mark_failed(d: &mut Deployment) -> bool {
    d.status = ds::FAILED;
    d.status_description = ds::DESC_FAILED_BY_USER.into();
    true
}

/// Pauses a running deployment or resumes a paused one; asking for the state it is already in
/// changes nothing.
pub fn set_paused(d: &mut Deployment, pause: bool) -> bool {
    let (status, description) = if pause {
        (ds::PAUSED, ds::DESC_PAUSED)
    } else {
        (ds::RUNNING, ds::DESC_RUNNING)
    };
    if d.status == status {
        return false;
    }
    d.status = status;
    d.status_description = description.into();
    true
}

/// Refuses a body whose `DeploymentID` names another deployment than the path.
fn same_deployment(view: &DeploymentView, named: Option<&str>) -> Result<(), ServerError> {
    match named {
        Some(named) if named != view.deployment.id => Err(ServerError::BadRequest(format!(
            "DeploymentID {named:?} in the body differs from deployment {:?} in the path",
            view.deployment.id
        ))),
        _ => Ok(()),
    }
}

/// `POST /v1/deployment/{id}/promote` with an optional body `{"groups": [...]}`: promotes those
/// groups' canaries (default: every group that has canaries).
pub async fn promote(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PromoteRequest>,
) -> Result<Json<DeploymentView>, ServerError> {
    let view = find(&st, &id).await?;
    same_deployment(&view, req.deployment_id.as_deref())?;
    let groups = if req.all { Vec::new() } else { req.groups };
    let change = |d: &mut Deployment| promote_groups(d, &groups);
    Ok(Json(write_change(&st, view, "promoted", &change).await?))
}

/// `POST /v1/deployment/{id}/fail`: marks an active deployment failed (auto_revert applies).
pub async fn fail(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ServerError> {
    let view = find(&st, &id).await?;
    let change = |d: &mut Deployment| Ok(mark_failed(d));
    Ok(Json(write_change(&st, view, "failed", &change).await?))
}

/// `POST /v1/deployment/{id}/pause` `{"pause": true|false}`: pauses (no rollout moves) or
/// resumes an active deployment.
pub async fn pause(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PauseRequest>,
) -> Result<Json<DeploymentView>, ServerError> {
    let view = find(&st, &id).await?;
    same_deployment(&view, req.deployment_id.as_deref())?;
    let verb = if req.pause { "paused" } else { "resumed" };
    let change = |d: &mut Deployment| Ok(set_paused(d, req.pause));
    Ok(Json(write_change(&st, view, verb, &change).await?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nomos_api::DeploymentGroup;
    use nomos_store::{EmbeddedStore, PutOptions, Store};

    use super::*;

    /// A running deployment `web-v1` with a group `api` (one canary wanted, `placed` of them
    /// placed and `healthy` healthy) and a group `db` without canaries.
    fn deployment(placed: usize, healthy: u32) -> Deployment {
        let mut d = Deployment {
            id: "web-v1".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            job_version: 1,
            status: ds::RUNNING,
            status_description: ds::DESC_RUNNING.into(),
            ..Default::default()
        };
        d.groups.insert(
            "api".into(),
            DeploymentGroup {
                desired_total: 3,
                desired_canaries: 1,
                placed_canaries: (0..placed).map(|i| format!("c{i}")).collect(),
                placed: placed as u32,
                healthy,
                ..Default::default()
            },
        );
        d.groups.insert(
            "db".into(),
            DeploymentGroup {
                desired_total: 1,
                ..Default::default()
            },
        );
        d
    }

    #[test]
    fn promotion_rules_follow_nomad() {
        let names = |gs: &[&str]| gs.iter().map(|g| g.to_string()).collect::<Vec<_>>();
        // (case, placed canaries, healthy, groups asked for, Ok(promoted api) or Err(message))
        type Case = (
            &'static str,
            usize,
            u32,
            Vec<String>,
            Result<bool, &'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "all groups with canaries by default",
                1,
                1,
                vec![],
                Ok(true),
            ),
            ("the named group", 1, 1, names(&["api"]), Ok(true)),
            (
                "a group that does not exist",
                1,
                1,
                names(&["nope"]),
                Err("has no group \"nope\" (its groups: api, db)"),
            ),
            (
                "a group without canaries",
                1,
                1,
                names(&["db"]),
                Err("group \"db\" of deployment web-v1 has no canaries"),
            ),
            (
                "a canary not healthy yet",
                1,
                0,
                vec![],
                Err("group \"api\" has 0/1 healthy canaries"),
            ),
            (
                "a canary not placed yet",
                0,
                0,
                names(&["api"]),
                Err("group \"api\" has 0/1 healthy canaries"),
            ),
        ];
        for (case, placed, healthy, groups, want) in cases {
            let mut d = deployment(placed, healthy);
            let got = promote_groups(&mut d, &groups);
            match (got, want) {
                (Ok(changed), Ok(promoted)) => {
                    assert!(changed, "{case}");
                    assert_eq!(d.groups["api"].promoted, promoted, "{case}");
                    assert!(!d.groups["db"].promoted, "{case}: db has no canaries");
                }
                (Err(e), Err(msg)) => {
                    assert!(matches!(e, ServerError::BadRequest(_)), "{case}: {e:?}");
                    assert!(e.to_string().contains(msg), "{case}: {e}");
                    assert!(!d.groups["api"].promoted, "{case}: nothing promoted");
                }
                (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_deployment_without_canaries_has_nothing_to_promote() {
        let mut d = deployment(0, 0);
        d.groups.shift_remove("api");
        let e = promote_groups(&mut d, &[]).unwrap_err();
        assert!(e.to_string().contains("no canaries to promote"), "{e}");
    }

    #[test]
    fn a_hostile_group_name_is_cut_in_the_message() {
        let mut d = deployment(1, 1);
        let e = promote_groups(&mut d, &["x".repeat(100_000)]).unwrap_err();
        assert!(e.to_string().len() < 300, "{e}");
    }

    #[test]
    fn pause_and_resume_use_nomads_words_and_repeat_harmlessly() {
        let mut d = deployment(0, 0);
        assert!(set_paused(&mut d, true));
        assert_eq!(
            (d.status, d.status_description.as_str()),
            (ds::PAUSED, ds::DESC_PAUSED)
        );
        assert!(
            !set_paused(&mut d, true),
            "pausing a paused one changes nothing"
        );
        assert!(set_paused(&mut d, false));
        assert_eq!(
            (d.status, d.status_description.as_str()),
            (ds::RUNNING, ds::DESC_RUNNING)
        );
        assert!(
            !set_paused(&mut d, false),
            "resuming a running one changes nothing"
        );
        assert!(mark_failed(&mut d));
        assert_eq!(
            (d.status, d.status_description.as_str()),
            (ds::FAILED, ds::DESC_FAILED_BY_USER)
        );
    }

    #[tokio::test]
    async fn a_change_made_after_the_read_is_never_overwritten() {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        let st = AppState::with_store(store.clone());
        let key = keys::deployment("default", "web", "web-v1");
        let put = |d: Deployment| {
            let store = store.clone();
            let key = key.clone();
            async move {
                store
                    .put(
                        key.into_bytes(),
                        serde_json::to_vec(&d).unwrap(),
                        PutOptions::default(),
                    )
                    .await
                    .unwrap()
            }
        };
        put(deployment(1, 1)).await;
        let read = find(&st, "web-v").await.unwrap();
        // The controller writes in between: its canary count moved on.
        put(deployment(1, 0)).await;
        let change = |d: &mut Deployment| promote_groups(d, &[]);
        let e = write_change(&st, read, "promoted", &change)
            .await
            .unwrap_err();
        assert!(matches!(e, ServerError::Conflict(_)), "{e:?}");
        assert!(e.to_string().contains("retry"), "{e}");
        let stored = find(&st, "web-v1").await.unwrap();
        assert!(
            !stored.deployment.groups["api"].promoted,
            "nothing was written"
        );
        assert_eq!(stored.deployment.groups["api"].healthy, 0);
    }
}
