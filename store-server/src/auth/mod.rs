//! Authentication and permissions on the store endpoint, as etcd 3.4 does them (its RBAC):
//!
//! - [`Gate`]: the users and roles ([`EmbeddedAuth`], durable in the store's data directory)
//!   and the simple tokens `Authenticate` hands out (random, in memory, five minutes from their
//!   last use, void once their user is deleted, its password changes or auth is re-enabled).
//! - [`authorize`]: the layer in front of every service. With auth enabled it names the caller
//!   of each request from its `token` metadata, else from its TLS client certificate's common
//!   name (etcd's `--client-cert-auth`), and answers an invalid token with etcd's
//!   `Unauthenticated` error; it attaches a [`Caller`] the services check keys against.
//! - `service`: the `etcdserverpb.Auth` methods (`etcdctl user/role/auth`).
//! - `cert`: the common name of a DER certificate.
//!
//! What needs what (etcd 3.4): Range a read permission on its range; Put and DeleteRange a
//! write permission (and read with `prev_kv`); Txn the same for every compare and operation;
//! a watch a read permission on its range; LeaseRevoke, and a Put with a lease, a write
//! permission on every key the lease holds; Compact and user/role management the `root` role.
//! Lease grants, keep-alives, status and member list need only a valid token (or none).

mod cert;
mod service;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::proto::{PbTxnOpRequest, PbTxnRequest};
use nomos_store::embedded::auth::{Access, AuthError, EmbeddedAuth};
use nomos_store::{Store, StoreError};
use ring::rand::{SecureRandom, SystemRandom};
use tonic::Status;

pub use cert::{conn_client_name, NamedConn};
pub use service::{route as auth_route, AuthState};

/// How long a token lives after its last use (etcd's `--auth-token-ttl` default).
pub const TOKEN_TTL: Duration = Duration::from_secs(300);
/// Most live tokens held; past it the ones closest to expiry are dropped first.
pub const MAX_TOKENS: usize = 65_536;

/// The gRPC status etcd answers an auth failure with.
pub fn auth_status(err: &AuthError) -> Status {
    let message = err.to_string();
    match err {
        AuthError::UserEmpty
        | AuthError::RoleEmpty
        | AuthError::AuthFailed
        | AuthError::InvalidManagement => Status::invalid_argument(message),
        AuthError::PermissionDenied => Status::permission_denied(message),
        AuthError::InvalidToken => Status::unauthenticated(message),
        AuthError::Persist(_) => Status::internal(message),
        AuthError::UserExists
        | AuthError::UserNotFound
        | AuthError::RoleExists
        | AuthError::RoleNotFound
        | AuthError::RoleNotGranted
        | AuthError::PermissionNotGranted
        | AuthError::NotEnabled
        | AuthError::RootUserMissing
        | AuthError::RootRoleMissing => Status::failed_precondition(message),
    }
}

struct Token {
    user: String,
    stamp: String,
    expires: Instant,
}

/// The users and roles, and the tokens handed out for them.
pub struct Gate {
    auth: Arc<EmbeddedAuth>,
    tokens: Mutex<HashMap<String, Token>>,
}

impl Gate {
    pub fn new(auth: Arc<EmbeddedAuth>) -> Self {
        Gate {
            auth,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn auth(&self) -> &Arc<EmbeddedAuth> {
        &self.auth
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, Token>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the password and hands out a new token.
    pub fn authenticate(&self, user: &str, password: &str) -> Result<String, AuthError> {
        let stamp = self.auth.authenticate(user, password)?;
        let mut random = [0u8; 16];
        SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| AuthError::Persist("the OS random source failed".into()))?;
        let secret: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let token = format!("{secret}.{}", self.auth.revision());
        let now = Instant::now();
        let mut tokens = self.tokens();
        if tokens.len() >= MAX_TOKENS {
            tokens.retain(|_, t| t.expires > now);
        }
        while tokens.len() >= MAX_TOKENS {
            let oldest = tokens
                .iter()
                .min_by_key(|(_, t)| t.expires)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => tokens.remove(&k),
                None => break,
            };
        }
        let entry = Token {
            user: user.to_string(),
            stamp,
            expires: now + TOKEN_TTL,
        };
        tokens.insert(token.clone(), entry);
        Ok(token)
    }

    /// The user a token stands for, extending its life; `InvalidToken` if it is unknown,
    /// expired or void.
    fn token_user(&self, token: &str) -> Result<String, AuthError> {
        let now = Instant::now();
        let mut tokens = self.tokens();
        let Some(entry) = tokens.get_mut(token) else {
            return Err(AuthError::InvalidToken);
        };
        let valid = entry.expires > now
            && self.auth.credential_stamp(&entry.user).as_deref() == Some(entry.stamp.as_str());
        if !valid {
            tokens.remove(token);
            return Err(AuthError::InvalidToken);
        }
        entry.expires = now + TOKEN_TTL;
        Ok(entry.user.clone())
    }

    /// Names the caller of a request from its token, else its client certificate's name.
    pub fn caller(
        self: &Arc<Self>,
        token: Option<&str>,
        cert_name: impl FnOnce() -> Option<String>,
    ) -> Result<Caller, AuthError> {
        if !self.auth.is_enabled() {
            return Ok(Caller::open(self.clone()));
        }
        let who = match token {
            Some(token) => Who::User(self.token_user(token)?),
            None => cert_name().map_or(Who::Nobody, Who::User),
        };
        Ok(Caller {
            gate: self.clone(),
            who,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    /// Auth is disabled: everything is allowed.
    Anyone,
    /// Auth is enabled and the request named nobody.
    Nobody,
    User(String),
}

/// Who sent a request, attached to it by [`authorize`]; services check keys against it.
#[derive(Clone)]
pub struct Caller {
    gate: Arc<Gate>,
    who: Who,
}

impl Caller {
    fn open(gate: Arc<Gate>) -> Self {
        Caller {
            gate,
            who: Who::Anyone,
        }
    }

    /// The caller of a request that passed [`authorize`].
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| {
                Status::internal("etcdserver: the request bypassed the store endpoint's auth layer")
            })
    }

    fn require(&self, key: &[u8], range_end: &[u8], wanted: Access) -> Result<(), Status> {
        match &self.who {
            Who::Anyone => Ok(()),
            Who::Nobody => Err(auth_status(&AuthError::UserEmpty)),
            Who::User(name) => self
                .gate
                .auth
                .check(name, key, range_end, wanted)
                .map_err(|e| auth_status(&e)),
        }
    }

    /// May read every key of `key` .. `range_end`.
    pub fn read(&self, key: &[u8], range_end: &[u8]) -> Result<(), Status> {
        self.require(key, range_end, Access::Read)
    }

    /// May write every key of `key` .. `range_end`.
    pub fn write(&self, key: &[u8], range_end: &[u8]) -> Result<(), Status> {
        self.require(key, range_end, Access::Write)
    }

    /// Holds the `root` role (or auth is disabled).
    pub fn admin(&self) -> Result<(), Status> {
        match &self.who {
            Who::Anyone => Ok(()),
            Who::Nobody => Err(auth_status(&AuthError::UserEmpty)),
            Who::User(name) if self.gate.auth.is_root(name) => Ok(()),
            Who::User(_) => Err(auth_status(&AuthError::PermissionDenied)),
        }
    }

    /// The user named by the request, if any.
    pub fn user(&self) -> Option<&str> {
        match &self.who {
            Who::User(name) => Some(name),
            _ => None,
        }
    }

    /// Whether nothing needs checking (auth disabled, or the caller is root).
    fn unrestricted(&self) -> bool {
        match &self.who {
            Who::Anyone => true,
            Who::Nobody => false,
            Who::User(name) => self.gate.auth.is_root(name),
        }
    }

    /// May write every key lease `id` holds (what revoking it, or attaching a key to it,
    /// would delete); an unknown lease holds none.
    pub async fn lease_keys_writable(&self, store: &dyn Store, id: i64) -> Result<(), Status> {
        if id == 0 || self.unrestricted() {
            return Ok(());
        }
        let keys = match store.lease_time_to_live(id, true).await {
            Ok(info) => info.keys,
            Err(StoreError::LeaseNotFound(_)) => Vec::new(),
            Err(e) => return Err(crate::error::to_status(&e)),
        };
        keys.iter().try_for_each(|key| self.write(key, b""))
    }

    /// Every compare and operation of a transaction, nested ones included.
    pub fn txn(&self, txn: &PbTxnRequest) -> Result<(), Status> {
        if self.unrestricted() {
            return Ok(());
        }
        for cmp in &txn.compare {
            self.read(&cmp.key, &cmp.range_end)?;
        }
        for op in txn.success.iter().chain(&txn.failure) {
            match &op.request {
                Some(PbTxnOpRequest::RequestRange(r)) => self.read(&r.key, &r.range_end)?,
                Some(PbTxnOpRequest::RequestPut(p)) => {
                    self.write(&p.key, b"")?;
                    if p.prev_kv {
                        self.read(&p.key, b"")?;
                    }
                }
                Some(PbTxnOpRequest::RequestDeleteRange(d)) => {
                    self.write(&d.key, &d.range_end)?;
                    if d.prev_kv {
                        self.read(&d.key, &d.range_end)?;
                    }
                }
                Some(PbTxnOpRequest::RequestTxn(inner)) => self.txn(inner)?,
                None => {}
            }
        }
        Ok(())
    }
}

/// gRPC methods that need the `root` role when auth is enabled, whatever their arguments.
const ADMIN_METHODS: &[&str] = &[
    "/etcdserverpb.KV/Compact",
    "/etcdserverpb.Maintenance/Snapshot",
    "/etcdserverpb.Maintenance/Defragment",
    "/etcdserverpb.Maintenance/Hash",
    "/etcdserverpb.Maintenance/HashKV",
    "/etcdserverpb.Maintenance/MoveLeader",
    "/etcdserverpb.Maintenance/Downgrade",
];
/// The one method that takes no token: it is how a token is got.
const AUTHENTICATE: &str = "/etcdserverpb.Auth/Authenticate";

/// The layer in front of every service: attaches the [`Caller`] or answers an invalid token.
pub async fn authorize(
    axum::extract::State(gate): axum::extract::State<Arc<Gate>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path();
    if path != AUTHENTICATE {
        let admin_only = ADMIN_METHODS.contains(&path);
        let token = req.headers().get("token").and_then(|v| v.to_str().ok());
        let caller = gate
            .caller(token, || cert::client_cert_name(req.extensions()))
            .map_err(|e| auth_status(&e))
            .and_then(|caller| {
                if admin_only {
                    caller.admin()?;
                }
                Ok(caller)
            });
        match caller {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
            }
            Err(status) => return status_response(status),
        }
    }
    next.run(req).await
}

/// A gRPC error answer.
pub(crate) fn status_response(status: Status) -> axum::response::Response {
    let (parts, ()) = status.into_http::<()>().into_parts();
    axum::response::Response::from_parts(parts, axum::body::Body::empty())
}
