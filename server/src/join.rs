//! Nodes joining a server on etcd with a one-time join token (`docs/security.md`, "Nodes on
//! etcd"):
//! - `POST /v1/node/join-tokens` (management): makes a token, stored as its secret's SHA-256
//!   at `/nomos/jointokens/<sha256>` with an optional node name and an expiry; the secret is
//!   answered once.
//! - `POST /v1/node/join` (public: the token is the credential): spends the token in the same
//!   transaction that records the join at `/nomos/nodejoins/<node>`, then has [`NodeAccess`]
//!   (the server's etcd connection) make etcd user and role `nomos-node-<node>`, limited to
//!   that node's keys, and answers its user name and a fresh random password.
//!
//! A node name that already joined is refused unless the token names that node; such a
//! re-join changes the password. On the embedded store the same user and role are made in the
//! store's own users ([`embedded_access`]), which its etcd endpoint enforces once
//! authentication is enabled there (`etcdctl user add root`, `etcdctl auth enable`).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};
use futures::future::BoxFuture;
use nomos_store::embedded::auth::EmbeddedAuth;
use nomos_store::etcd::{node_key_grants, EtcdCredentials};
use nomos_store::{
    keys, Compare, CompareOp, EtcdStore, KeySelector, RangeOptions, Store, StoreError, Txn, TxnOp,
};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::body::JsonBody;
use crate::error::ServerError;
use crate::kv;
use crate::AppState;

/// Largest body either endpoint accepts (a token and a node name are short).
pub const JOIN_BODY_LIMIT: usize = 4 * 1024;
/// A join token's lifetime when none is asked for.
pub const DEFAULT_TTL_SECS: u64 = 3600;
/// The longest lifetime a join token may have (30 days).
pub const MAX_TTL_SECS: u64 = 30 * 24 * 3600;
/// Unused, unexpired join tokens kept at most; creating one more is refused.
pub const MAX_OUTSTANDING_TOKENS: usize = 1000;
/// Longest node name a token or a join accepts.
pub const MAX_NODE_NAME_BYTES: usize = 128;
/// Longest secret looked up (longer ones are unknown).
const MAX_SECRET_BYTES: usize = 256;
/// What every refused token is answered with, whatever the reason.
const DENIED: &str = "Permission denied: the join token is not valid";

/// `POST /v1/node/join-tokens` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJoinTokenRequest {
    /// The only node the token admits; it may then also re-join a node that already joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Seconds until the token expires (default one hour, at most 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

/// `POST /v1/node/join-tokens` answer: the secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateJoinTokenResponse {
    pub token: String,
    #[serde(default)]
    pub node: Option<String>,
    pub expires_at_ms: u64,
}

/// `POST /v1/node/join` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub token: String,
    pub node: String,
}

/// `POST /v1/node/join` answer: what the agent connects to etcd with.
#[derive(Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    pub etcd_user: String,
    pub etcd_password: String,
}

impl std::fmt::Debug for JoinResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinResponse")
            .field("etcd_user", &self.etcd_user)
            .field("etcd_password", &"<redacted>")
            .finish()
    }
}

/// A join token as stored at `/nomos/jointokens/<sha256>` (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinTokenRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

/// A node's join, as recorded at `/nomos/nodejoins/<node>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeJoinRecord {
    pub etcd_user: String,
    pub joined_at_ms: u64,
}

/// Makes nodes' store credentials: the server's etcd connection, as a user allowed to manage
/// users. A trait so tests can stand in for etcd.
pub trait NodeAccess: Send + Sync {
    /// `Ok` when users can be made; else why not (a 400 for the joining agent).
    fn ready(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Makes or updates the node's user and role, with `password`.
    fn grant<'a>(
        &'a self,
        node: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<EtcdCredentials, StoreError>>;
}

impl NodeAccess for EtcdStore {
    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match self.auth_enabled().await {
                Ok(true) => Ok(()),
                Ok(false) => Err("etcd has authentication disabled, so a node user would grant nothing: enable it (`etcdctl user add root`, `etcdctl auth enable`) and connect the server as root".into()),
                Err(e) => Err(format!("cannot tell whether etcd has authentication enabled: {e}")),
            }
        })
    }

    fn grant<'a>(
        &'a self,
        node: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<EtcdCredentials, StoreError>> {
        Box::pin(async move {
            self.grant_node_access(node, &node_key_grants(node), password)
                .await
        })
    }
}

/// The routes, with their own small body limit.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/node/join-tokens", post(create_token))
        .route("/node/join", post(join))
        .layer(DefaultBodyLimit::max(JOIN_BODY_LIMIT))
}

/// Refuses a node name that could not name a node's keys and etcd user, naming `field`.
pub fn check_node_name(field: &str, node: &str) -> Result<(), ServerError> {
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if node.is_empty() {
        return Err(ServerError::BadRequest(format!(
            "field `{field}` is required"
        )));
    }
    if node.len() > MAX_NODE_NAME_BYTES {
        return Err(ServerError::BadRequest(format!(
            "field `{field}` is {} bytes long; at most {MAX_NODE_NAME_BYTES} are allowed",
            node.len()
        )));
    }
    if !node.chars().all(fits) || node.starts_with('.') {
        return Err(ServerError::BadRequest(format!(
            "field `{field}`: node name {node:?} may hold only ASCII letters, digits, '-', '_' and '.', and may not start with '.'"
        )));
    }
    Ok(())
}

/// The lifetime asked for, checked against the limits.
pub fn token_ttl(ttl_secs: Option<u64>) -> Result<u64, ServerError> {
    let ttl = ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Err(ServerError::BadRequest(format!(
            "field `ttl_secs` must be between 1 and {MAX_TTL_SECS} seconds (30 days), got {ttl}"
        )));
    }
    Ok(ttl)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `bytes` random bytes from the OS, as hex.
fn random_hex(bytes: usize) -> Result<String, ServerError> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| ServerError::Crypto("the OS random source failed".into()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

async fn create_token(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<CreateJoinTokenRequest>,
) -> Result<Json<CreateJoinTokenResponse>, ServerError> {
    if let Some(node) = &req.node {
        check_node_name("node", node)?;
    }
    let ttl = token_ttl(req.ttl_secs)?;
    let now = now_ms();
    let live = sweep_expired(&*st.store, now).await?;
    if live >= MAX_OUTSTANDING_TOKENS {
        return Err(ServerError::Conflict(format!(
            "{live} join tokens are unused and unexpired (at most {MAX_OUTSTANDING_TOKENS}): use them or let them expire"
        )));
    }
    let secret = format!("nomos-join-{}", random_hex(32)?);
    let record = JoinTokenRecord {
        node: req.node.clone(),
        created_at_ms: now,
        expires_at_ms: now + ttl * 1000,
    };
    let key = keys::join_token(&crate::acl::secret_hash(&secret));
    kv::put_if(&*st.store, &key, &record, 0).await?;
    Ok(Json(CreateJoinTokenResponse {
        token: secret,
        node: req.node,
        expires_at_ms: record.expires_at_ms,
    }))
}

/// Deletes the expired join tokens; returns how many unexpired ones remain.
async fn sweep_expired(store: &dyn Store, now: u64) -> Result<usize, ServerError> {
    let tokens = kv::list_json::<JoinTokenRecord>(store, keys::JOIN_TOKENS_PREFIX).await?;
    let mut live = 0;
    for entry in tokens {
        if entry.value.expires_at_ms <= now {
            // Lost races (the token was just used) are fine: it is gone either way.
            let _ = kv::delete_if(store, &entry.key, entry.mod_revision).await;
        } else {
            live += 1;
        }
    }
    Ok(live)
}

async fn join(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<JoinRequest>,
) -> Result<Json<JoinResponse>, ServerError> {
    check_node_name("node", &req.node)?;
    if req.token.is_empty() {
        return Err(ServerError::BadRequest("field `token` is required".into()));
    }
    let Some(access) = st.node_access.clone() else {
        return Err(ServerError::BadRequest(
            "this server has no store users to issue: join tokens need a store with users (etcd, or the embedded store served with --store-addr) and authentication enabled there".into(),
        ));
    };
    access.ready().await.map_err(ServerError::BadRequest)?;
    let claim = spend_token(&*st.store, &req.token, &req.node, now_ms()).await?;
    let password = random_hex(24)?;
    match access.grant(&req.node, &password).await {
        Ok(creds) => {
            tracing::info!(node = %req.node, user = %creds.user, "node joined with a join token");
            Ok(Json(JoinResponse {
                etcd_user: creds.user,
                etcd_password: creds.password,
            }))
        }
        Err(e) => Err(undo_spend(&*st.store, claim, e).await),
    }
}

/// A spent token and the join it recorded, kept to undo both if the etcd user cannot be made.
#[derive(Debug)]
pub struct Claim {
    token_key: String,
    token_value: Vec<u8>,
    join_key: String,
    /// Whether the node had joined before (a re-join leaves its record in place).
    rejoin: bool,
    revision: i64,
}

/// Checks the token and, in one transaction that compares the token is unchanged and the
/// node's join record too, deletes the token and records the join. Every refused token is
/// the same 403.
pub async fn spend_token(
    store: &dyn Store,
    secret: &str,
    node: &str,
    now: u64,
) -> Result<Claim, ServerError> {
    let denied = || ServerError::Forbidden(DENIED.into());
    if secret.len() > MAX_SECRET_BYTES {
        return Err(denied());
    }
    let token_key = keys::join_token(&crate::acl::secret_hash(secret));
    let Some(raw) = kv::get_raw(store, &token_key).await? else {
        return Err(denied());
    };
    let record: JoinTokenRecord =
        serde_json::from_slice(&raw.value).map_err(|e| ServerError::Corrupt {
            key: token_key.clone(),
            message: e.to_string(),
        })?;
    if record.expires_at_ms <= now {
        let _ = kv::delete_if(store, &token_key, raw.mod_revision).await;
        return Err(denied());
    }
    if record.node.as_deref().is_some_and(|n| n != node) {
        return Err(denied());
    }
    let join_key = keys::node_join(node);
    let joined = kv::get_raw(store, &join_key).await?;
    if joined.is_some() && record.node.is_none() {
        return Err(ServerError::Conflict(format!(
            "node {node:?} has already joined; to join it again (which replaces its etcd password) use a token made for it: `nctl node join-token create -node {node}`"
        )));
    }
    let joined_rev = joined.as_ref().map_or(0, |kv| kv.mod_revision);
    let value = serde_json::to_vec(&NodeJoinRecord {
        etcd_user: nomos_store::etcd::node_user(node),
        joined_at_ms: now,
    })
    .map_err(|e| ServerError::Internal(format!("encoding the join record: {e}")))?;
    let txn = Txn::new()
        .when([
            Compare::mod_revision(token_key.clone(), CompareOp::Equal, raw.mod_revision),
            Compare::mod_revision(join_key.clone(), CompareOp::Equal, joined_rev),
        ])
        .and_then([
            TxnOp::delete(token_key.clone()),
            TxnOp::put(join_key.clone(), value),
        ]);
    let resp = store.txn(txn).await?;
    if !resp.succeeded {
        return Err(denied());
    }
    Ok(Claim {
        token_key,
        token_value: raw.value,
        join_key,
        rejoin: joined.is_some(),
        revision: resp.revision,
    })
}

/// The etcd user could not be made: puts the token back (unless it reappeared) and removes
/// a first join's record, so the same token can be tried again; returns the error to answer.
async fn undo_spend(store: &dyn Store, claim: Claim, cause: StoreError) -> ServerError {
    let mut when = vec![Compare::version(
        claim.token_key.clone(),
        CompareOp::Equal,
        0,
    )];
    let mut ops = vec![TxnOp::put(claim.token_key.clone(), claim.token_value)];
    if !claim.rejoin {
        when.push(Compare::mod_revision(
            claim.join_key.clone(),
            CompareOp::Equal,
            claim.revision,
        ));
        ops.push(TxnOp::delete(claim.join_key.clone()));
    }
    let kept = matches!(store.txn(Txn::new().when(when).and_then(ops)).await, Ok(r) if r.succeeded);
    let hint = if kept {
        "the join token is still valid; try again"
    } else {
        "the join token could not be restored; make a new one"
    };
    let message = format!("cannot make the node's etcd user: {cause}; {hint}");
    tracing::warn!("{message}");
    match cause {
        StoreError::Unavailable(_) => ServerError::Store(StoreError::Unavailable(message)),
        _ => ServerError::Internal(message),
    }
}

/// A [`NodeAccess`] that needs nothing: for tests and for stores whose users are made
/// elsewhere. Answers the node's user name with the password it was given.
pub struct StaticAccess;

impl NodeAccess for StaticAccess {
    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn grant<'a>(
        &'a self,
        node: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<EtcdCredentials, StoreError>> {
        Box::pin(async move {
            Ok(EtcdCredentials {
                user: nomos_store::etcd::node_user(node),
                password: password.to_string(),
            })
        })
    }
}

/// The [`NodeAccess`] of a server on the embedded store: the store's own users, which its etcd
/// endpoint enforces.
pub fn embedded_access(auth: Arc<EmbeddedAuth>) -> Arc<dyn NodeAccess> {
    Arc::new(EmbeddedUsers(auth))
}

struct EmbeddedUsers(Arc<EmbeddedAuth>);

impl NodeAccess for EmbeddedUsers {
    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if self.0.is_enabled() {
                Ok(())
            } else {
                Err("the embedded store has authentication disabled, so a node user would grant nothing: enable it on the store endpoint (`etcdctl --endpoints=<store-addr> user add root`, `etcdctl ... auth enable`)".into())
            }
        })
    }

    fn grant<'a>(
        &'a self,
        node: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<EtcdCredentials, StoreError>> {
        let auth = self.0.clone();
        let (node, password) = (node.to_string(), password.to_string());
        Box::pin(async move {
            // Hashing the password is slow on purpose: off the async workers.
            tokio::task::spawn_blocking(move || {
                auth.grant_node_access(&node, &node_key_grants(&node), &password)
            })
            .await
            .map_err(|e| StoreError::Backend(format!("making the node's user: {e}")))?
        })
    }
}

/// The [`NodeAccess`] of a server connected to etcd.
pub fn etcd_access(store: EtcdStore) -> Arc<dyn NodeAccess> {
    Arc::new(store)
}

/// Whether a join token is stored under `secret` (tests, and a later listing).
pub async fn token_exists(store: &dyn Store, secret: &str) -> Result<bool, ServerError> {
    let key = keys::join_token(&crate::acl::secret_hash(secret));
    let resp = store
        .range(
            KeySelector::key(key),
            RangeOptions {
                count_only: true,
                ..RangeOptions::default()
            },
        )
        .await?;
    Ok(resp.count > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_that_could_not_name_keys_are_refused_at_the_field() {
        for bad in ["", ".hidden", "a/b", "a b", "ü", &"x".repeat(129)] {
            let e = check_node_name("node", bad).unwrap_err();
            assert!(e.to_string().contains("`node`"), "{bad:?}: {e}");
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        }
        for good in ["n1", "node-2", "web_01.dc1"] {
            assert!(check_node_name("node", good).is_ok(), "{good}");
        }
    }

    #[tokio::test]
    async fn the_embedded_stores_users_are_made_only_once_its_auth_is_enabled() {
        let auth = Arc::new(EmbeddedAuth::in_memory());
        let access = embedded_access(auth.clone());
        let refused = access.ready().await.unwrap_err();
        assert!(refused.contains("authentication disabled"), "{refused}");
        auth.user_add("root", Some("pw")).unwrap();
        auth.user_grant_role("root", "root").unwrap();
        auth.enable().unwrap();
        access.ready().await.unwrap();
        let creds = access.grant("n1", "secret").await.unwrap();
        assert_eq!(creds.user, "nomos-node-n1");
        auth.authenticate("nomos-node-n1", "secret").unwrap();
        assert!(auth
            .check(
                "nomos-node-n1",
                b"/nomos/allocs/n2/a",
                b"",
                nomos_store::embedded::auth::Access::Read
            )
            .is_err());
    }

    #[test]
    fn a_token_lives_an_hour_unless_asked_and_never_past_thirty_days() {
        assert_eq!(token_ttl(None).unwrap(), 3600);
        assert_eq!(token_ttl(Some(60)).unwrap(), 60);
        for bad in [0, MAX_TTL_SECS + 1] {
            let e = token_ttl(Some(bad)).unwrap_err();
            assert!(e.to_string().contains("ttl_secs"), "{e}");
        }
    }
}
