//! The `etcdserverpb.Auth` service: users, roles, permissions, enabling auth and handing out
//! tokens, with etcd's messages and codes. Served as an axum route that decodes each method's
//! protobuf through tonic's gRPC codec (etcd-client's generated trait names a type it does not
//! export, `AuthStatusRequest`, which is declared here instead).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{Path, State};
use etcd_client::proto::*;
use nomos_store::embedded::auth::{Access, AuthError, Permission};
use nomos_store::Store;
use tonic::{Request, Response, Status};
use tonic_prost::prost;

use super::{auth_status, Caller, Gate};
use crate::identity::Identity;

/// etcd's `AuthStatusRequest` (empty).
#[derive(Clone, PartialEq, prost::Message)]
#[prost(prost_path = "::tonic_prost::prost")]
pub struct AuthStatusRequest {}

/// etcd's `AuthStatusResponse`.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(prost_path = "::tonic_prost::prost")]
pub struct AuthStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<PbResponseHeader>,
    #[prost(bool, tag = "2")]
    pub enabled: bool,
    #[prost(uint64, tag = "3")]
    pub auth_revision: u64,
}

#[derive(Clone)]
pub struct AuthState {
    pub gate: Arc<Gate>,
    pub identity: Arc<Identity>,
    pub store: Arc<dyn Store>,
}

/// The routes of the Auth service, to merge into the server's router (inside its auth layer).
pub fn route(state: AuthState) -> axum::Router {
    axum::Router::new()
        .route("/etcdserverpb.Auth/{method}", axum::routing::post(dispatch))
        .with_state(state)
}

type Answer<T> = Pin<Box<dyn Future<Output = Result<T, Status>> + Send>>;
type Handler<Req, Resp> = Box<dyn FnOnce(Caller, Req) -> Answer<Resp> + Send>;

/// A tonic unary service that runs its handler once with the caller and the message.
struct Unary<Req, Resp>(Option<Handler<Req, Resp>>);

impl<Req: Send + 'static, Resp: Send + 'static> tonic::codegen::Service<Request<Req>>
    for Unary<Req, Resp>
{
    type Response = Response<Resp>;
    type Error = Status;
    type Future = Answer<Response<Resp>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Req>) -> Self::Future {
        let handler = self.0.take();
        Box::pin(async move {
            let handler = handler.ok_or_else(|| Status::internal("etcdserver: called twice"))?;
            let caller = Caller::of(&request)?;
            handler(caller, request.into_inner())
                .await
                .map(Response::new)
        })
    }
}

/// Decodes `req` as `Req`, runs `handler` with the caller and the message, encodes the answer.
async fn unary<Req, Resp, Fut>(
    req: axum::extract::Request,
    handler: impl FnOnce(Caller, Req) -> Fut + Send + 'static,
) -> axum::response::Response
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    let handler: Handler<Req, Resp> = Box::new(move |caller, msg| Box::pin(handler(caller, msg)));
    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<Resp, Req>::default());
    grpc.unary(Unary(Some(handler)), req)
        .await
        .map(axum::body::Body::new)
}

impl AuthState {
    async fn header(&self) -> Option<PbResponseHeader> {
        let revision = self.store.status().await.map_or(0, |s| s.revision);
        self.identity.header(revision)
    }
}

/// Runs an admin-only change and answers `make(header)`.
async fn admin<T>(
    st: &AuthState,
    caller: &Caller,
    change: impl FnOnce(&Gate) -> Result<u64, AuthError>,
    make: impl FnOnce(Option<PbResponseHeader>) -> T,
) -> Result<T, Status> {
    caller.admin()?;
    change(&st.gate).map_err(|e| auth_status(&e))?;
    Ok(make(st.header().await))
}

async fn dispatch(
    State(st): State<AuthState>,
    Path(method): Path<String>,
    req: axum::extract::Request,
) -> axum::response::Response {
    match method.as_str() {
        "Authenticate" => authenticate(st, req).await,
        "AuthEnable" | "AuthDisable" | "AuthStatus" => switch(st, &method, req).await,
        m if m.starts_with("User") => users(st, m, req).await,
        m if m.starts_with("Role") => roles(st, m, req).await,
        other => super::status_response(crate::cluster::unsupported(&format!(
            "etcdserverpb.Auth/{other}"
        ))),
    }
}

async fn authenticate(st: AuthState, req: axum::extract::Request) -> axum::response::Response {
    let mut req = req;
    // The layer attaches no caller to Authenticate: it needs none.
    let gate = st.gate.clone();
    req.extensions_mut().insert(Caller::open(gate.clone()));
    unary(req, move |_caller, r: PbAuthenticateRequest| async move {
        // The password hash is slow on purpose: keep it off the async workers.
        let token = tokio::task::spawn_blocking(move || gate.authenticate(&r.name, &r.password))
            .await
            .map_err(|e| Status::internal(format!("etcdserver: authenticate: {e}")))?
            .map_err(|e| auth_status(&e))?;
        Ok(PbAuthenticateResponse {
            header: st.header().await,
            token,
        })
    })
    .await
}

async fn switch(
    st: AuthState,
    method: &str,
    req: axum::extract::Request,
) -> axum::response::Response {
    match method {
        "AuthEnable" => {
            unary(req, move |c, _: PbAuthEnableRequest| async move {
                admin(
                    &st,
                    &c,
                    |g| g.auth().enable(),
                    |header| PbAuthEnableResponse { header },
                )
                .await
            })
            .await
        }
        "AuthDisable" => {
            unary(req, move |c, _: PbAuthDisableRequest| async move {
                admin(
                    &st,
                    &c,
                    |g| g.auth().disable(),
                    |header| PbAuthDisableResponse { header },
                )
                .await
            })
            .await
        }
        _ => {
            unary(req, move |_c, _: AuthStatusRequest| async move {
                Ok(AuthStatusResponse {
                    header: st.header().await,
                    enabled: st.gate.auth().is_enabled(),
                    auth_revision: st.gate.auth().revision(),
                })
            })
            .await
        }
    }
}

async fn users(
    st: AuthState,
    method: &str,
    req: axum::extract::Request,
) -> axum::response::Response {
    match method {
        "UserAdd" => {
            unary(req, move |c, r: PbAuthUserAddRequest| async move {
                let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
                let password = (!no_password).then_some(r.password.as_str());
                let change = |g: &Gate| g.auth().user_add(&r.name, password);
                admin(&st, &c, change, |header| PbAuthUserAddResponse { header }).await
            })
            .await
        }
        "UserGet" => {
            unary(req, move |c, r: PbAuthUserGetRequest| async move {
                // etcd 3.4 lets a user read its own roles.
                if c.user() != Some(r.name.as_str()) {
                    c.admin()?;
                }
                let roles = st
                    .gate
                    .auth()
                    .user_get(&r.name)
                    .map_err(|e| auth_status(&e))?;
                Ok(PbAuthUserGetResponse {
                    header: st.header().await,
                    roles,
                })
            })
            .await
        }
        "UserList" => {
            unary(req, move |c, _: PbAuthUserListRequest| async move {
                c.admin()?;
                Ok(PbAuthUserListResponse {
                    header: st.header().await,
                    users: st.gate.auth().user_list(),
                })
            })
            .await
        }
        "UserDelete" => {
            unary(req, move |c, r: PbAuthUserDeleteRequest| async move {
                let change = |g: &Gate| g.auth().user_delete(&r.name);
                admin(&st, &c, change, |header| PbAuthUserDeleteResponse {
                    header,
                })
                .await
            })
            .await
        }
        "UserChangePassword" => {
            unary(
                req,
                move |c, r: PbAuthUserChangePasswordRequest| async move {
                    let change = |g: &Gate| g.auth().user_change_password(&r.name, &r.password);
                    admin(&st, &c, change, |header| PbAuthUserChangePasswordResponse {
                        header,
                    })
                    .await
                },
            )
            .await
        }
        "UserGrantRole" => {
            unary(req, move |c, r: PbAuthUserGrantRoleRequest| async move {
                let change = |g: &Gate| g.auth().user_grant_role(&r.user, &r.role);
                admin(&st, &c, change, |header| PbAuthUserGrantRoleResponse {
                    header,
                })
                .await
            })
            .await
        }
        "UserRevokeRole" => {
            unary(req, move |c, r: PbAuthUserRevokeRoleRequest| async move {
                let change = |g: &Gate| g.auth().user_revoke_role(&r.name, &r.role);
                admin(&st, &c, change, |header| PbAuthUserRevokeRoleResponse {
                    header,
                })
                .await
            })
            .await
        }
        other => super::status_response(crate::cluster::unsupported(&format!(
            "etcdserverpb.Auth/{other}"
        ))),
    }
}

/// An embedded permission as etcd's protobuf.
fn to_pb(perm: Permission) -> etcd_client::Permission {
    let key = perm.key;
    let p = match perm.access {
        Access::Read => etcd_client::Permission::read(key),
        Access::Write => etcd_client::Permission::write(key),
        Access::ReadWrite => etcd_client::Permission::read_write(key),
    };
    p.with_range_end(perm.range_end)
}

async fn roles(
    st: AuthState,
    method: &str,
    req: axum::extract::Request,
) -> axum::response::Response {
    match method {
        "RoleAdd" => {
            unary(req, move |c, r: PbAuthRoleAddRequest| async move {
                let change = |g: &Gate| g.auth().role_add(&r.name);
                admin(&st, &c, change, |header| PbAuthRoleAddResponse { header }).await
            })
            .await
        }
        "RoleGet" => {
            unary(req, move |c, r: PbAuthRoleGetRequest| async move {
                // etcd 3.4 lets a user read the roles it holds.
                let holds = |u: &str| {
                    let roles = st.gate.auth().user_get(u).unwrap_or_default();
                    roles.contains(&r.role)
                };
                if !c.user().is_some_and(holds) {
                    c.admin()?;
                }
                let perms = st
                    .gate
                    .auth()
                    .role_get(&r.role)
                    .map_err(|e| auth_status(&e))?;
                Ok(PbAuthRoleGetResponse {
                    header: st.header().await,
                    perm: perms.into_iter().map(|p| to_pb(p).into()).collect(),
                })
            })
            .await
        }
        "RoleList" => {
            unary(req, move |c, _: PbAuthRoleListRequest| async move {
                c.admin()?;
                Ok(PbAuthRoleListResponse {
                    header: st.header().await,
                    roles: st.gate.auth().role_list(),
                })
            })
            .await
        }
        "RoleDelete" => {
            unary(req, move |c, r: PbAuthRoleDeleteRequest| async move {
                let change = |g: &Gate| g.auth().role_delete(&r.role);
                admin(&st, &c, change, |header| PbAuthRoleDeleteResponse {
                    header,
                })
                .await
            })
            .await
        }
        "RoleGrantPermission" => {
            unary(
                req,
                move |c, r: PbAuthRoleGrantPermissionRequest| async move {
                    c.admin()?;
                    let perm = r.perm.ok_or_else(|| {
                        Status::invalid_argument("etcdserver: permission not given")
                    })?;
                    let access = Access::from_etcd(perm.perm_type).ok_or_else(|| {
                        Status::invalid_argument("etcdserver: invalid permission type")
                    })?;
                    let perm = Permission {
                        access,
                        key: perm.key,
                        range_end: perm.range_end,
                    };
                    let change = |g: &Gate| g.auth().role_grant_permission(&r.name, perm);
                    admin(&st, &c, change, |header| {
                        PbAuthRoleGrantPermissionResponse { header }
                    })
                    .await
                },
            )
            .await
        }
        "RoleRevokePermission" => {
            unary(
                req,
                move |c, r: PbAuthRoleRevokePermissionRequest| async move {
                    let change = |g: &Gate| {
                        g.auth()
                            .role_revoke_permission(&r.role, &r.key, &r.range_end)
                    };
                    admin(&st, &c, change, |header| {
                        PbAuthRoleRevokePermissionResponse { header }
                    })
                    .await
                },
            )
            .await
        }
        other => super::status_response(crate::cluster::unsupported(&format!(
            "etcdserverpb.Auth/{other}"
        ))),
    }
}
