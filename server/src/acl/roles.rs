//! ACL roles, in Nomad's paths and JSON shapes: `GET /v1/acl/roles`, `POST /v1/acl/role`,
//! `GET|POST|DELETE /v1/acl/role/{id}`, `GET /v1/acl/role/name/{name}` (the routes are
//! registered with the other `/v1/acl` routes in [`super::endpoints::routes`]).
//!
//! A role is a named set of policies; tokens link to roles and get the union of their own
//! policies and their roles' ([`super::resolve`]). A role lives at `/nomos/acl/roles/id/<id>`
//! and its name at `/nomos/acl/roles/name/<name>` (holding the ID): every write compares both
//! in one transaction, so two roles can never share a name. Deleting a role removes its grants
//! from every token linked to it at once (a link to a missing role grants nothing).
//!
//! Writes need a management token; reads need a token, and a client token sees only the roles
//! it links to (as in Nomad).

use std::collections::HashSet;

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use nomos_api::acl::{
    validate_name, AclRole, RolePolicyLink, TokenRoleLink, MAX_NAME_BYTES,
    MAX_ROLE_DESCRIPTION_BYTES, MAX_TOKEN_POLICIES, MAX_TOKEN_ROLES,
};
use nomos_store::{keys, Compare, CompareOp, Txn, TxnOp};
use serde::Deserialize;

use super::endpoints::next_revision;
use super::{denied, Caller};
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::{kv, AppState};

/// What Nomad answers for a role that does not exist.
const ROLE_NOT_FOUND: &str = "ACL role not found";

/// A role to create or update: Nomad's `ACLRole` request fields; any other field is refused,
/// and the indexes and hash Nomad's clients send back are ignored.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct RoleRequest {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub description: String,
    pub policies: Vec<RolePolicyLink>,
    pub create_index: Option<serde_json::Value>,
    pub modify_index: Option<serde_json::Value>,
    pub hash: Option<serde_json::Value>,
}

/// `?prefix=` on the list: roles whose ID starts with it.
#[derive(Debug, Deserialize, Default)]
pub struct RoleListQuery {
    pub prefix: Option<String>,
}

fn bad(message: String) -> ServerError {
    ServerError::BadRequest(message)
}

/// Checks a request's fields and that every policy it names exists; answers the role to
/// store (policies de-duplicated, in the order given).
async fn checked_role(st: &AppState, req: RoleRequest) -> Result<AclRole, ServerError> {
    validate_name("role", &req.name).map_err(bad)?;
    if req.description.len() > MAX_ROLE_DESCRIPTION_BYTES {
        return Err(bad(format!(
            "role description is {} bytes, over the limit of {MAX_ROLE_DESCRIPTION_BYTES}",
            req.description.len()
        )));
    }
    if req.policies.is_empty() {
        return Err(bad(
            "role Policies: at least one policy should be specified".into(),
        ));
    }
    if req.policies.len() > MAX_TOKEN_POLICIES {
        return Err(bad(format!(
            "role Policies: at most {MAX_TOKEN_POLICIES} policies, found {}",
            req.policies.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut policies = Vec::new();
    for link in req.policies {
        validate_name("policy", &link.name).map_err(bad)?;
        if !seen.insert(link.name.clone()) {
            continue;
        }
        let key = keys::acl_policy(&link.name);
        if kv::get_raw(st.store.as_ref(), &key).await?.is_none() {
            return Err(bad(format!(
                "role Policies: cannot find policy {:?}",
                link.name
            )));
        }
        policies.push(link);
    }
    Ok(AclRole {
        id: req.id,
        name: req.name,
        description: req.description,
        policies,
        create_index: 0,
        modify_index: 0,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("a role serialises")
}

/// The role with this ID, with its `ModifyIndex`.
pub async fn find_role(st: &AppState, id: &str) -> Result<kv::Entry<AclRole>, ServerError> {
    if id.is_empty() || id.len() > MAX_NAME_BYTES || id.contains('/') {
        return Err(ServerError::NotFound(ROLE_NOT_FOUND.into()));
    }
    let mut found = kv::get_json::<AclRole>(st.store.as_ref(), &keys::acl_role(id))
        .await?
        .ok_or_else(|| ServerError::NotFound(ROLE_NOT_FOUND.into()))?;
    found.value.modify_index = found.mod_revision;
    Ok(found)
}

/// The role with this name, through the name index.
pub async fn find_role_by_name(
    st: &AppState,
    name: &str,
) -> Result<kv::Entry<AclRole>, ServerError> {
    validate_name("role", name).map_err(bad)?;
    let Some(id) = kv::get_json::<String>(st.store.as_ref(), &keys::acl_role_name(name)).await?
    else {
        return Err(ServerError::NotFound(ROLE_NOT_FOUND.into()));
    };
    find_role(st, &id.value).await
}

/// Refuses a client token a role it does not link to (management sees every role).
fn require_visible(caller: &Caller, role: &AclRole) -> Result<(), ServerError> {
    let linked = caller
        .token
        .as_ref()
        .is_some_and(|t| t.roles.iter().any(|l| l.id == role.id));
    if caller.acl.is_management() || linked {
        Ok(())
    } else {
        Err(denied())
    }
}

/// `POST /v1/acl/role`: a new role; 409 when its name is taken.
pub async fn create_role(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<RoleRequest>,
) -> Result<Json<AclRole>, ServerError> {
    if !req.id.is_empty() {
        return Err(bad(
            "role ID: must be empty when creating a role (the server assigns it)".into(),
        ));
    }
    let mut role = checked_role(&st, req).await?;
    role.id = uuid::Uuid::new_v4().to_string();
    role.create_index = next_revision(&st).await?;
    let (key, name_key) = (keys::acl_role(&role.id), keys::acl_role_name(&role.name));
    let txn = Txn::new()
        .when([
            Compare::mod_revision(key.clone(), CompareOp::Equal, 0),
            Compare::mod_revision(name_key.clone(), CompareOp::Equal, 0),
        ])
        .and_then([
            TxnOp::put(key, to_json(&role)),
            TxnOp::put(name_key, to_json(&role.id)),
        ]);
    let resp = st.store.txn(txn).await?;
    if !resp.succeeded {
        return Err(name_taken(&role.name));
    }
    role.modify_index = resp.revision;
    st.acl_cache.invalidate();
    Ok(Json(role))
}

fn name_taken(name: &str) -> ServerError {
    ServerError::Conflict(format!("ACL role with name {name:?} already exists"))
}

/// `POST /v1/acl/role/{id}`: replaces a role's name, description and policies; a new name is
/// claimed in the same transaction that frees the old one.
pub async fn update_role(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RoleRequest>,
) -> Result<Json<AclRole>, ServerError> {
    if !req.id.is_empty() && req.id != id {
        return Err(bad(format!(
            "role ID {:?} in the body differs from {id:?} in the path",
            req.id
        )));
    }
    let found = find_role(&st, &id).await?;
    let mut role = checked_role(&st, req).await?;
    role.id = found.value.id.clone();
    role.create_index = found.value.create_index;
    let key = keys::acl_role(&id);
    let mut compares = vec![Compare::mod_revision(
        key.clone(),
        CompareOp::Equal,
        found.mod_revision,
    )];
    let mut ops = vec![TxnOp::put(key, to_json(&role))];
    let renamed = role.name != found.value.name;
    if renamed {
        let new_name = keys::acl_role_name(&role.name);
        compares.push(Compare::mod_revision(new_name.clone(), CompareOp::Equal, 0));
        ops.push(TxnOp::delete(keys::acl_role_name(&found.value.name)));
        ops.push(TxnOp::put(new_name, to_json(&role.id)));
    }
    let resp = st
        .store
        .txn(Txn::new().when(compares).and_then(ops))
        .await?;
    if !resp.succeeded {
        let taken = kv::get_raw(st.store.as_ref(), &keys::acl_role_name(&role.name)).await?;
        return Err(if renamed && taken.is_some() {
            name_taken(&role.name)
        } else {
            ServerError::Conflict("the role changed while updating it; retry".into())
        });
    }
    role.modify_index = resp.revision;
    st.acl_cache.invalidate();
    Ok(Json(role))
}

/// `DELETE /v1/acl/role/{id}`: the role and its name; tokens linked to it lose its policies.
pub async fn delete_role(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ServerError> {
    let found = find_role(&st, &id).await?;
    let key = keys::acl_role(&id);
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            found.mod_revision,
        )])
        .and_then([
            TxnOp::delete(key),
            TxnOp::delete(keys::acl_role_name(&found.value.name)),
        ]);
    if !st.store.txn(txn).await?.succeeded {
        return Err(ServerError::Conflict(
            "the role changed while deleting it; retry".into(),
        ));
    }
    st.acl_cache.invalidate();
    Ok(Json(serde_json::Value::Null))
}

/// `GET /v1/acl/role/{id}`.
pub async fn get_role(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<AclRole>, ServerError> {
    let role = find_role(&st, &id).await?.value;
    require_visible(&caller, &role)?;
    Ok(Json(role))
}

/// `GET /v1/acl/role/name/{name}`.
pub async fn get_role_by_name(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<AclRole>, ServerError> {
    let role = find_role_by_name(&st, &name).await?.value;
    require_visible(&caller, &role)?;
    Ok(Json(role))
}

/// `GET /v1/acl/roles?prefix=`: every role (a client token: those it links to).
pub async fn list_roles(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<RoleListQuery>,
) -> Result<Json<Vec<AclRole>>, ServerError> {
    let all = kv::list_json::<AclRole>(st.store.as_ref(), keys::ACL_ROLES_PREFIX).await?;
    Ok(Json(
        all.into_iter()
            .map(|e| AclRole {
                modify_index: e.mod_revision,
                ..e.value
            })
            .filter(|r| q.prefix.as_deref().is_none_or(|p| r.id.starts_with(p)))
            .filter(|r| require_visible(&caller, r).is_ok())
            .collect(),
    ))
}

/// Resolves a token request's role links (each by `ID`, else by `Name`) to the roles they
/// name, as `{ID, Name}`; a link to no role is refused (400), duplicates are dropped.
pub async fn resolve_links(
    st: &AppState,
    links: &[TokenRoleLink],
) -> Result<Vec<TokenRoleLink>, ServerError> {
    if links.len() > MAX_TOKEN_ROLES {
        return Err(bad(format!(
            "token Roles: at most {MAX_TOKEN_ROLES} roles, found {}",
            links.len()
        )));
    }
    let mut out: Vec<TokenRoleLink> = Vec::new();
    for link in links {
        let role = match (link.id.as_str(), link.name.as_str()) {
            ("", "") => return Err(bad("token Roles: each link needs an ID or a Name".into())),
            ("", name) => find_role_by_name(st, name).await.map_err(|e| match e {
                ServerError::NotFound(_) => {
                    bad(format!("token Roles: cannot find role with name {name:?}"))
                }
                e => e,
            })?,
            (id, _) => find_role(st, id).await.map_err(|e| match e {
                ServerError::NotFound(_) => {
                    bad(format!("token Roles: cannot find role with ID {id:?}"))
                }
                e => e,
            })?,
        };
        if !out.iter().any(|l| l.id == role.value.id) {
            out.push(TokenRoleLink {
                id: role.value.id,
                name: role.value.name,
            });
        }
    }
    Ok(out)
}

/// The policy names of the roles a token links to (a link to a deleted role adds nothing).
pub async fn role_policies(
    st: &AppState,
    links: &[TokenRoleLink],
) -> Result<Vec<String>, ServerError> {
    let mut names = Vec::new();
    for link in links.iter().take(MAX_TOKEN_ROLES) {
        match find_role(st, &link.id).await {
            Ok(role) => names.extend(role.value.policies.into_iter().map(|p| p.name)),
            Err(ServerError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(names)
}
