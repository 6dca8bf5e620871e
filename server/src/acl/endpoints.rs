//! `/v1/acl/...`: bootstrap, tokens and policies, in Nomad's paths and JSON shapes
//! (PascalCase), and the routes of [`super::roles`]. Every route but bootstrap, `token/self`
//! and the role reads needs a management token ([`super::rules`]).
//!
//! A token is written with its secret index in one transaction; bootstrap compares the
//! bootstrap marker's absence in the same transaction, so two concurrent bootstraps cannot
//! both succeed. A token may expire (`ExpirationTTL` or `ExpirationTime` on create, within
//! Nomad's default bounds [`MIN_TOKEN_TTL`] and [`MAX_TOKEN_TTL`]); every write here
//! invalidates the server's ACL cache ([`super::cache`]) before it answers.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use nomos_api::acl::{
    parse_policy, validate_name, AclPolicy, AclToken, TokenRoleLink, TokenType,
    MAX_DESCRIPTION_BYTES, MAX_NAME_BYTES, MAX_TOKEN_POLICIES,
};
use nomos_store::{keys, Compare, CompareOp, Txn, TxnOp};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{roles, secret_hash, Caller, TOKEN_NOT_FOUND};
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::{kv, AppState};

/// The `/v1/acl` routes, to nest under `/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/acl/bootstrap", post(bootstrap))
        .route("/acl/tokens", get(list_tokens).post(create_token))
        .route("/acl/token", post(create_token))
        .route("/acl/token/self", get(token_self))
        .route(
            "/acl/token/{accessor}",
            get(get_token).post(update_token).delete(delete_token),
        )
        .route("/acl/policies", get(list_policies))
        .route(
            "/acl/policy/{name}",
            get(get_policy).post(put_policy).delete(delete_policy),
        )
        .route("/acl/roles", get(roles::list_roles))
        .route("/acl/role", post(roles::create_role))
        .route(
            "/acl/role/{id}",
            get(roles::get_role)
                .post(roles::update_role)
                .delete(roles::delete_role),
        )
        .route("/acl/role/name/{name}", get(roles::get_role_by_name))
}

/// The shortest TTL a token may be created with (Nomad's `token_min_expiration_ttl` default).
pub const MIN_TOKEN_TTL: Duration = Duration::from_secs(60);
/// The longest TTL a token may be created with (Nomad's `token_max_expiration_ttl` default).
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest `ExpirationTTL` text or `ExpirationTime` accepted, in bytes.
const MAX_EXPIRY_TEXT_BYTES: usize = 64;

/// `ExpirationTTL` as sent: Go's duration text (`"1h"`) or, as Nomad's Go client encodes a
/// `time.Duration`, an integer of nanoseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TtlField {
    Nanos(i64),
    Text(String),
}

/// A token to create or update: Nomad's `ACLToken` request fields. Any other field is refused;
/// the read-only ones Nomad's clients send back (`AccessorID`, `SecretID`, `CreateTime`,
/// the indexes) are taken only when they change nothing ([`check_read_only`]).
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    #[serde(rename = "Type")]
    pub token_type: Option<TokenType>,
    pub policies: Vec<String>,
    pub roles: Vec<TokenRoleLink>,
    pub global: bool,
    #[serde(rename = "ExpirationTTL")]
    pub expiration_ttl: Option<TtlField>,
    pub expiration_time: Option<String>,
    #[serde(rename = "AccessorID")]
    pub accessor_id: Option<String>,
    #[serde(rename = "SecretID")]
    pub secret_id: Option<String>,
    pub create_time: Option<serde_json::Value>,
    pub create_index: Option<serde_json::Value>,
    pub modify_index: Option<serde_json::Value>,
    pub hash: Option<serde_json::Value>,
}

/// Refuses a request that sets what the server assigns: an `AccessorID` other than the
/// token's (`None` when creating) or a `SecretID` other than empty or the token's own.
fn check_read_only(req: &TokenRequest, token: Option<&AclToken>) -> Result<(), ServerError> {
    let accessor = token.map_or("", |t| t.accessor_id.as_str());
    if req
        .accessor_id
        .as_deref()
        .is_some_and(|a| !a.is_empty() && a != accessor)
    {
        return Err(ServerError::BadRequest(format!(
            "AccessorID: the server assigns it; expected {accessor:?} or none"
        )));
    }
    let secret = token.map_or("", |t| t.secret_id.as_str());
    if req
        .secret_id
        .as_deref()
        .is_some_and(|s| !s.is_empty() && s != secret)
    {
        return Err(ServerError::BadRequest(
            "SecretID: the server assigns it; leave it out".into(),
        ));
    }
    Ok(())
}

/// A token's expiry: when it stops working, and the TTL it was asked for (ns, 0 if none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub at: jiff::Timestamp,
    pub ttl_ns: i64,
}

/// The expiry a create request asks for at `now`, held to [`MIN_TOKEN_TTL`] ..=
/// [`MAX_TOKEN_TTL`] in the future (Nomad's wording); `None` when it asks for none.
pub fn requested_expiry(
    req: &TokenRequest,
    now: jiff::Timestamp,
) -> Result<Option<Expiry>, ServerError> {
    let bad = |m: String| Err(ServerError::BadRequest(m));
    let (ttl, at) = match (&req.expiration_ttl, &req.expiration_time) {
        (Some(_), Some(_)) => {
            return bad("ExpirationTTL and ExpirationTime: set one of them, not both".into())
        }
        (None, None) => return Ok(None),
        (Some(ttl), None) => {
            let ns = ttl_nanos(ttl)?;
            if ns == 0 {
                return Ok(None);
            }
            let at = now
                .checked_add(jiff::SignedDuration::from_nanos(ns))
                .map_err(|e| ServerError::BadRequest(format!("ExpirationTTL: {e}")))?;
            (ns, at)
        }
        (None, Some(text)) => {
            if text.len() > MAX_EXPIRY_TEXT_BYTES {
                return bad(format!(
                    "ExpirationTime: over the limit of {MAX_EXPIRY_TEXT_BYTES} bytes"
                ));
            }
            let at: jiff::Timestamp = text.parse().map_err(|e| {
                ServerError::BadRequest(format!(
                    "ExpirationTime: expected an RFC 3339 time such as \"2030-01-02T15:04:05Z\", found {text:?}: {e}"
                ))
            })?;
            if at <= now {
                return bad("ExpirationTime: expiration time cannot be in the past".into());
            }
            (0, at)
        }
    };
    let ahead = at.duration_since(now);
    let field = if ttl > 0 {
        "ExpirationTTL"
    } else {
        "ExpirationTime"
    };
    if ahead < jiff::SignedDuration::try_from(MIN_TOKEN_TTL).unwrap_or_default() {
        return bad(format!(
            "{field}: expiration time cannot be less than 1m in the future"
        ));
    }
    if ahead > jiff::SignedDuration::try_from(MAX_TOKEN_TTL).unwrap_or_default() {
        return bad(format!(
            "{field}: expiration time cannot be more than 24h in the future"
        ));
    }
    Ok(Some(Expiry { at, ttl_ns: ttl }))
}

/// A TTL field in nanoseconds; negative or unparsable TTLs answer 400 naming the field.
fn ttl_nanos(ttl: &TtlField) -> Result<i64, ServerError> {
    let bad = |m: String| ServerError::BadRequest(format!("ExpirationTTL: {m}"));
    match ttl {
        TtlField::Nanos(n) if *n < 0 => {
            Err(bad(format!("expected a positive duration, found {n}")))
        }
        TtlField::Nanos(n) => Ok(*n),
        TtlField::Text(t) if t.len() > MAX_EXPIRY_TEXT_BYTES => Err(bad(format!(
            "over the limit of {MAX_EXPIRY_TEXT_BYTES} bytes"
        ))),
        TtlField::Text(t) => {
            let ns = nomos_api::duration::parse_duration(t).map_err(bad)?;
            i64::try_from(ns).map_err(|_| bad(format!("{t:?} is too long")))
        }
    }
}

fn check_token_request(req: &TokenRequest, token_type: TokenType) -> Result<(), ServerError> {
    let bad = |m: String| Err(ServerError::BadRequest(m));
    if req.name.len() > MAX_NAME_BYTES {
        return bad(format!(
            "token name is {} bytes, over the limit of {MAX_NAME_BYTES}",
            req.name.len()
        ));
    }
    if req.policies.len() > MAX_TOKEN_POLICIES {
        return bad(format!(
            "a token may name at most {MAX_TOKEN_POLICIES} policies, found {}",
            req.policies.len()
        ));
    }
    for p in &req.policies {
        validate_name("policy", p).map_err(ServerError::BadRequest)?;
    }
    match token_type {
        TokenType::Client if req.policies.is_empty() && req.roles.is_empty() => {
            bad("client token missing policies or roles".into())
        }
        TokenType::Management if !req.policies.is_empty() => {
            bad("management token cannot be associated with policies".into())
        }
        TokenType::Management if !req.roles.is_empty() => {
            bad("management token cannot be associated with roles".into())
        }
        _ => Ok(()),
    }
}

/// Writes a new token and its secret index; with `bootstrap`, only if bootstrap was never done.
async fn write_new_token(
    st: &AppState,
    mut token: AclToken,
    bootstrap: bool,
) -> Result<AclToken, ServerError> {
    let key = keys::acl_token(&token.accessor_id);
    let index = keys::acl_secret(&secret_hash(&token.secret_id));
    let mut compares = vec![
        Compare::mod_revision(key.clone(), CompareOp::Equal, 0),
        Compare::mod_revision(index.clone(), CompareOp::Equal, 0),
    ];
    let mut ops = Vec::new();
    if bootstrap {
        compares.push(Compare::mod_revision(
            keys::ACL_BOOTSTRAP,
            CompareOp::Equal,
            0,
        ));
        ops.push(TxnOp::put(
            keys::ACL_BOOTSTRAP,
            token.accessor_id.clone().into_bytes(),
        ));
    }
    let rev = next_revision(st).await?;
    token.create_index = rev;
    token.modify_index = rev;
    let json = serde_json::to_vec(&token).expect("a token serialises");
    ops.push(TxnOp::put(key, json));
    ops.push(TxnOp::put(
        index,
        serde_json::to_vec(&token.accessor_id).expect("a string serialises"),
    ));
    let resp = st
        .store
        .txn(Txn::new().when(compares).and_then(ops))
        .await?;
    if !resp.succeeded {
        return Err(if bootstrap {
            ServerError::BadRequest("ACL bootstrap already done".into())
        } else {
            ServerError::Conflict("token accessor or secret already exists; retry".into())
        });
    }
    Ok(token)
}

/// The revision the next write will likely get (Nomad's `CreateIndex`, informational only).
pub(super) async fn next_revision(st: &AppState) -> Result<i64, ServerError> {
    Ok(st.store.status().await?.revision + 1)
}

fn new_token(name: String, token_type: TokenType, global: bool, now: jiff::Timestamp) -> AclToken {
    AclToken {
        accessor_id: uuid::Uuid::new_v4().to_string(),
        secret_id: uuid::Uuid::new_v4().to_string(),
        name,
        token_type,
        policies: Vec::new(),
        roles: Vec::new(),
        global,
        create_time: now.to_string(),
        expiration_time: None,
        expiration_ttl: 0,
        create_index: 0,
        modify_index: 0,
    }
}

/// `POST /v1/acl/bootstrap`: the first management token, once.
pub async fn bootstrap(State(st): State<AppState>) -> Result<Json<AclToken>, ServerError> {
    let token = new_token(
        "Bootstrap Token".into(),
        TokenType::Management,
        true,
        jiff::Timestamp::now(),
    );
    let token = write_new_token(&st, token, true).await?;
    st.acl_cache.invalidate();
    Ok(Json(token))
}

/// `POST /v1/acl/token` (and `/v1/acl/tokens`): a new token; its secret is answered once here.
pub async fn create_token(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<TokenRequest>,
) -> Result<Json<AclToken>, ServerError> {
    let token_type = req.token_type.unwrap_or(TokenType::Client);
    check_read_only(&req, None)?;
    check_token_request(&req, token_type)?;
    let now = jiff::Timestamp::now();
    let expiry = requested_expiry(&req, now)?;
    let roles = roles::resolve_links(&st, &req.roles).await?;
    let mut token = new_token(req.name, token_type, req.global, now);
    token.policies = req.policies;
    token.roles = roles;
    if let Some(e) = expiry {
        token.expiration_time = Some(e.at.to_string());
        token.expiration_ttl = e.ttl_ns;
    }
    let token = write_new_token(&st, token, false).await?;
    st.acl_cache.invalidate();
    Ok(Json(token))
}

async fn find_token(st: &AppState, accessor: &str) -> Result<kv::Entry<AclToken>, ServerError> {
    if accessor.len() > MAX_NAME_BYTES {
        return Err(ServerError::NotFound(TOKEN_NOT_FOUND.into()));
    }
    let mut found = kv::get_json::<AclToken>(st.store.as_ref(), &keys::acl_token(accessor))
        .await?
        .ok_or_else(|| ServerError::NotFound(TOKEN_NOT_FOUND.into()))?;
    found.value.modify_index = found.mod_revision;
    Ok(found)
}

/// `POST /v1/acl/token/{accessor}`: a new name, set of policies or roles (the type, secret and
/// expiry stay as created; expiry fields sent back unchanged, as Nomad's CLI does, are ignored).
pub async fn update_token(
    State(st): State<AppState>,
    Path(accessor): Path<String>,
    JsonBody(req): JsonBody<TokenRequest>,
) -> Result<Json<AclToken>, ServerError> {
    let found = find_token(&st, &accessor).await?;
    let mut token = found.value;
    if req.token_type.is_some_and(|t| t != token.token_type) {
        return Err(ServerError::BadRequest(
            "cannot change a token's type".into(),
        ));
    }
    check_read_only(&req, Some(&token))?;
    check_token_request(&req, token.token_type)?;
    token.roles = roles::resolve_links(&st, &req.roles).await?;
    token.name = req.name;
    token.policies = req.policies;
    let key = keys::acl_token(&accessor);
    token.modify_index = kv::put_if(st.store.as_ref(), &key, &token, found.mod_revision).await?;
    st.acl_cache.invalidate();
    Ok(Json(token))
}

/// `GET /v1/acl/token/{accessor}`.
pub async fn get_token(
    State(st): State<AppState>,
    Path(accessor): Path<String>,
) -> Result<Json<AclToken>, ServerError> {
    Ok(Json(find_token(&st, &accessor).await?.value))
}

/// `GET /v1/acl/token/self`: the caller's own token.
pub async fn token_self(
    Extension(caller): Extension<Caller>,
) -> Result<Json<AclToken>, ServerError> {
    caller
        .token
        .map(Json)
        .ok_or_else(|| ServerError::Forbidden(TOKEN_NOT_FOUND.into()))
}

/// `DELETE /v1/acl/token/{accessor}`: the token and its secret index, together.
pub async fn delete_token(
    State(st): State<AppState>,
    Path(accessor): Path<String>,
) -> Result<Json<serde_json::Value>, ServerError> {
    let found = find_token(&st, &accessor).await?;
    let key = keys::acl_token(&accessor);
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            found.mod_revision,
        )])
        .and_then([
            TxnOp::delete(key),
            TxnOp::delete(keys::acl_secret(&secret_hash(&found.value.secret_id))),
        ]);
    if !st.store.txn(txn).await?.succeeded {
        return Err(ServerError::Conflict(
            "the token changed while deleting it; retry".into(),
        ));
    }
    st.acl_cache.invalidate();
    Ok(Json(serde_json::Value::Null))
}

/// Every value under `prefix`, each passed through `shown` with its `mod_revision`.
async fn list_shown<T: DeserializeOwned>(
    st: &AppState,
    prefix: &str,
    shown: fn(T, i64) -> T,
) -> Result<Json<Vec<T>>, ServerError> {
    let all = kv::list_json::<T>(st.store.as_ref(), prefix).await?;
    Ok(Json(
        all.into_iter()
            .map(|e| shown(e.value, e.mod_revision))
            .collect(),
    ))
}

/// `GET /v1/acl/tokens`: every token, without secrets.
pub async fn list_tokens(State(st): State<AppState>) -> Result<Json<Vec<AclToken>>, ServerError> {
    list_shown(&st, keys::ACL_TOKENS_PREFIX, |mut t: AclToken, rev| {
        t.modify_index = rev;
        t.secret_id.clear();
        t
    })
    .await
}

/// `GET /v1/acl/policies`: every policy, without rules.
pub async fn list_policies(
    State(st): State<AppState>,
) -> Result<Json<Vec<AclPolicy>>, ServerError> {
    list_shown(&st, keys::ACL_POLICIES_PREFIX, |mut p: AclPolicy, rev| {
        p.modify_index = rev;
        p.rules.clear();
        p
    })
    .await
}

async fn find_policy(st: &AppState, name: &str) -> Result<kv::Entry<AclPolicy>, ServerError> {
    validate_name("policy", name).map_err(ServerError::BadRequest)?;
    let mut found = kv::get_json::<AclPolicy>(st.store.as_ref(), &keys::acl_policy(name))
        .await?
        .ok_or_else(|| ServerError::NotFound(format!("ACL policy {name:?} not found")))?;
    found.value.modify_index = found.mod_revision;
    Ok(found)
}

/// `GET /v1/acl/policy/{name}`.
pub async fn get_policy(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AclPolicy>, ServerError> {
    Ok(Json(find_policy(&st, &name).await?.value))
}

/// `POST /v1/acl/policy/{name}`: create or replace; rules that do not parse answer 400 with
/// their diagnostics.
pub async fn put_policy(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(mut req): JsonBody<AclPolicy>,
) -> Result<Json<serde_json::Value>, ServerError> {
    validate_name("policy", &name).map_err(ServerError::BadRequest)?;
    if !req.name.is_empty() && req.name != name {
        return Err(ServerError::BadRequest(format!(
            "policy name {:?} in the body differs from {name:?} in the path",
            req.name
        )));
    }
    if req.description.len() > MAX_DESCRIPTION_BYTES {
        return Err(ServerError::BadRequest(format!(
            "description is over the limit of {MAX_DESCRIPTION_BYTES} bytes"
        )));
    }
    if let Some(job_acl) = &req.job_acl {
        super::workload::check_job_acl(job_acl)?;
    }
    if let Err(diags) = parse_policy(&name, &req.rules) {
        return Err(ServerError::InvalidJob {
            message: diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            diagnostics: crate::jobfile::views(&diags),
        });
    }
    let key = keys::acl_policy(&name);
    let existing = kv::get_json::<AclPolicy>(st.store.as_ref(), &key).await?;
    let expected = existing.as_ref().map_or(0, |e| e.mod_revision);
    req.name = name;
    req.create_index = match existing {
        Some(e) => e.value.create_index,
        None => next_revision(&st).await?,
    };
    kv::put_if(st.store.as_ref(), &key, &req, expected).await?;
    st.acl_cache.invalidate();
    Ok(Json(serde_json::Value::Null))
}

/// `DELETE /v1/acl/policy/{name}`.
pub async fn delete_policy(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ServerError> {
    let found = find_policy(&st, &name).await?;
    kv::delete_if(st.store.as_ref(), &found.key, found.mod_revision).await?;
    st.acl_cache.invalidate();
    Ok(Json(serde_json::Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn with_ttl(ttl: TtlField) -> TokenRequest {
        TokenRequest {
            expiration_ttl: Some(ttl),
            ..TokenRequest::default()
        }
    }

    fn with_time(at: &str) -> TokenRequest {
        TokenRequest {
            expiration_time: Some(at.into()),
            ..TokenRequest::default()
        }
    }

    #[test]
    fn ttls_at_nomads_bounds_are_accepted_and_just_outside_refused() {
        let text = |t: &str| requested_expiry(&with_ttl(TtlField::Text(t.into())), now());
        let one_min = text("1m").unwrap().unwrap();
        assert_eq!(one_min.ttl_ns, 60_000_000_000);
        assert_eq!(one_min.at.to_string(), "2030-01-01T00:01:00Z");
        assert!(text("24h").unwrap().is_some());
        assert!(text("59s").is_err());
        assert!(text("24h0m1s").is_err());
        assert_eq!(text("0").unwrap(), None, "0 means no expiry");
        let nanos = requested_expiry(&with_ttl(TtlField::Nanos(3_600_000_000_000)), now());
        assert_eq!(
            nanos.unwrap().unwrap().at.to_string(),
            "2030-01-01T01:00:00Z"
        );
        assert!(requested_expiry(&with_ttl(TtlField::Nanos(-1)), now()).is_err());
        assert!(requested_expiry(&with_ttl(TtlField::Nanos(i64::MAX)), now()).is_err());
    }

    #[test]
    fn expiration_times_are_held_to_the_same_bounds() {
        let at = |t: &str| requested_expiry(&with_time(t), now());
        let ok = at("2030-01-01T02:00:00Z").unwrap().unwrap();
        assert_eq!(ok.ttl_ns, 0, "no TTL was asked for");
        assert!(at("2029-12-31T23:00:00Z").is_err());
        assert!(at("2030-01-01T00:00:30Z").is_err());
        assert!(at("2030-01-03T00:00:00Z").is_err());
        assert!(at("next week").is_err());
        assert_eq!(
            requested_expiry(&TokenRequest::default(), now()).unwrap(),
            None
        );
        let both = TokenRequest {
            expiration_ttl: Some(TtlField::Text("1h".into())),
            expiration_time: Some("2030-01-01T02:00:00Z".into()),
            ..TokenRequest::default()
        };
        assert!(requested_expiry(&both, now()).is_err());
    }
}
