//! ACLs on the HTTP API: who is calling, and may they.
//!
//! - [`rules`]: the table of what every route needs.
//! - [`login`]: the web UI's token form (`/ui/login`).
//! - [`endpoints`]: `/v1/acl/...` (bootstrap, tokens, policies) in Nomad's shapes;
//!   [`roles`]: ACL roles (`/v1/acl/role(s)`), whose policies linked tokens get too.
//! - [`cache`]: resolved secrets, emptied by a watch of `/nomos/acl/`; [`expiry`]: deleting
//!   expired tokens. [`run_background`] runs both while the server serves with ACLs on.
//! - here: [`enforce`], the one middleware that resolves the caller's token (`X-Nomad-Token`,
//!   `Authorization: Bearer`, or on the UI's `GET`s the `nomos-token` cookie) to an [`Acl`],
//!   checks the route's [`rules::Rule`] and hands the [`Caller`] to the handler (which checks
//!   namespaces it learns only from the body, as apply and plan do).
//!
//! With ACLs off every caller is treated as management and `/v1/acl/...` answers
//! 400 "ACL support disabled", as Nomad does. Secrets are never logged; the store indexes
//! tokens by the SHA-256 of their secret.

pub mod cache;
pub mod endpoints;
pub mod expiry;
pub mod login;
pub mod roles;
pub mod rules;
pub mod workload;

use std::collections::HashMap;

use axum::extract::{FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nomos_api::acl::check::CAP_READ_JOB;
use nomos_api::acl::{parse_policy, Access, Acl, AclPolicy, AclToken, TokenType, ANONYMOUS_POLICY};
use nomos_store::keys;
use sha2::{Digest, Sha256};

use crate::error::ServerError;
use crate::{kv, AppState};
use rules::{NsFrom, Rule};

/// The header Nomad's clients send their token in.
pub const TOKEN_HEADER: &str = "x-nomad-token";
/// The cookie the web UI's login form keeps the token in.
pub const TOKEN_COOKIE: &str = "nomos-token";
/// Longest token secret looked up (a UUID is 36 bytes).
const MAX_SECRET_BYTES: usize = 128;
/// The answer to a request its token may not make (Nomad's words).
pub const PERMISSION_DENIED: &str = "Permission denied";
/// The answer to an unknown secret (Nomad's words).
pub const TOKEN_NOT_FOUND: &str = "ACL token not found";
/// The answer to a token past its `ExpirationTime` (Nomad's words).
pub const TOKEN_EXPIRED: &str = "ACL token expired";

/// Whether ACLs are enforced (agent configuration `acl { enabled = true }`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AclConfig {
    pub enabled: bool,
}

/// State of the ACL middleware.
#[derive(Clone)]
pub struct AclLayer {
    pub state: AppState,
    pub config: AclConfig,
}

/// Who is calling: their token (none for anonymous callers, or with ACLs off) and what their
/// policies allow. Handlers take it as `Extension<Caller>`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: Option<AclToken>,
    pub acl: Acl,
}

impl Caller {
    /// Refuses with 403 unless the caller may use `capability` in `namespace`.
    pub fn require_namespace(&self, namespace: &str, capability: &str) -> Result<(), ServerError> {
        if self.acl.allows_namespace(namespace, capability) {
            Ok(())
        } else {
            Err(denied())
        }
    }
}

pub(crate) fn denied() -> ServerError {
    ServerError::Forbidden(PERMISSION_DENIED.into())
}

/// The secret a request carries, if any (an empty one counts as none: anonymous, as in Nomad).
pub fn secret_of(headers: &HeaderMap, method: &Method, path: &str) -> Option<String> {
    carried_secret(headers, method, path).filter(|s| !s.is_empty())
}

fn carried_secret(headers: &HeaderMap, method: &Method, path: &str) -> Option<String> {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(t) = value(TOKEN_HEADER) {
        return Some(t.trim().to_string());
    }
    if let Some(t) = value(header::AUTHORIZATION.as_str()).and_then(|a| a.strip_prefix("Bearer ")) {
        return Some(t.trim().to_string());
    }
    // The cookie only lets the browser read the UI; it never authorises a write.
    if method == Method::GET && path.starts_with("/ui") {
        return headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == TOKEN_COOKIE)
            .map(|(_, v)| v.to_string());
    }
    None
}

/// The hex SHA-256 of a secret: the key its token is found under.
pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The token whose secret this is, if any.
pub async fn token_by_secret(st: &AppState, secret: &str) -> Result<Option<AclToken>, ServerError> {
    if secret.is_empty() || secret.len() > MAX_SECRET_BYTES {
        return Ok(None);
    }
    let store = st.store.as_ref();
    let Some(accessor) =
        kv::get_json::<String>(store, &keys::acl_secret(&secret_hash(secret))).await?
    else {
        return Ok(None);
    };
    Ok(
        kv::get_json::<AclToken>(store, &keys::acl_token(&accessor.value))
            .await?
            .map(|e| e.value)
            // A stale index entry must never authorise a token that was replaced.
            .filter(|t| t.secret_id == secret),
    )
}

/// The merged policies named (unknown names grant nothing; unparsable stored rules are
/// skipped with a warning).
async fn acl_of(st: &AppState, names: &[String]) -> Result<Acl, ServerError> {
    let mut policies = Vec::new();
    for name in names {
        let Some(p) = kv::get_json::<AclPolicy>(st.store.as_ref(), &keys::acl_policy(name)).await?
        else {
            continue;
        };
        match parse_policy(name, &p.value.rules) {
            Ok(policy) => policies.push(policy),
            Err(e) => {
                tracing::warn!(policy = %name, error = %e[0], "skipping a stored ACL policy that does not parse")
            }
        }
    }
    Ok(Acl::new(&policies))
}

/// What a token allows: everything for management; else the union of its own policies and
/// those of the roles it links to.
async fn acl_for_token(st: &AppState, token: &AclToken) -> Result<Acl, ServerError> {
    match token.token_type {
        TokenType::Management => Ok(Acl::management()),
        TokenType::Client => {
            let mut names = token.policies.clone();
            names.extend(roles::role_policies(st, &token.roles).await?);
            names.sort();
            names.dedup();
            acl_of(st, &names).await
        }
    }
}

/// The anonymous policy's ACL, from the [`cache`] when it holds it.
async fn anonymous_acl(st: &AppState) -> Result<Acl, ServerError> {
    if let Some(acl) = st.acl_cache.anonymous() {
        return Ok(acl);
    }
    let epoch = st.acl_cache.epoch();
    let acl = acl_of(st, &[ANONYMOUS_POLICY.to_string()]).await?;
    if let Some(epoch) = epoch {
        st.acl_cache.insert_anonymous(epoch, acl.clone());
    }
    Ok(acl)
}

/// A secret's token and ACL, from the [`cache`] when it holds them, else from the store (and
/// kept, unless an ACL write happened meanwhile). Unknown secrets answer 403 "ACL token not
/// found".
async fn resolve_secret(st: &AppState, secret: &str) -> Result<cache::Resolved, ServerError> {
    let not_found = || ServerError::Forbidden(TOKEN_NOT_FOUND.into());
    if secret.is_empty() || secret.len() > MAX_SECRET_BYTES {
        return Err(not_found());
    }
    let hash = secret_hash(secret);
    if let Some(hit) = st.acl_cache.get(&hash) {
        if hit.token.secret_id == secret {
            return Ok(hit);
        }
    }
    // Read the epoch before the store: a change after this point keeps the fill out.
    let epoch = st.acl_cache.epoch();
    let token = token_by_secret(st, secret).await?.ok_or_else(not_found)?;
    let acl = acl_for_token(st, &token).await?;
    let resolved = cache::Resolved { token, acl };
    if let Some(epoch) = epoch {
        st.acl_cache.insert(epoch, hash, resolved.clone());
    }
    Ok(resolved)
}

/// The caller of a request: their token's ACL (its policies' and its roles'), or the
/// anonymous policy's without a token. A token past its `ExpirationTime` is refused with 403
/// "ACL token expired" (checked on every request, never cached).
pub async fn resolve(st: &AppState, secret: Option<&str>) -> Result<Caller, ServerError> {
    let Some(secret) = secret else {
        let acl = anonymous_acl(st).await?;
        return Ok(Caller { token: None, acl });
    };
    if workload::looks_like_jwt(secret) {
        return workload::resolve(st, secret).await;
    }
    let resolved = resolve_secret(st, secret).await?;
    if resolved.token.is_expired(jiff::Timestamp::now()) {
        return Err(ServerError::Forbidden(TOKEN_EXPIRED.into()));
    }
    Ok(Caller {
        token: Some(resolved.token),
        acl: resolved.acl,
    })
}

/// The ACL cache's watch and the expired-token sweeper, until the server closes (run by
/// [`crate::serve`] while ACLs are on).
pub async fn run_background(st: AppState) {
    tokio::join!(
        cache::run(st.store.clone(), st.acl_cache.clone(), st.closed()),
        expiry::run(st.clone(), st.closed()),
    );
}

/// The middleware in front of every route.
pub async fn enforce(State(layer): State<AclLayer>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let Some(path) = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
    else {
        return next.run(Request::from_parts(parts, body)).await; // unknown paths: 404
    };
    if !layer.config.enabled {
        if path.starts_with("/v1/acl") {
            return ServerError::BadRequest("ACL support disabled".into()).into_response();
        }
        parts.extensions.insert(Caller {
            token: None,
            acl: Acl::management(),
        });
        return next.run(Request::from_parts(parts, body)).await;
    }
    match authorize(&layer.state, &mut parts, &path).await {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) => {
            tracing::info!(method = %parts.method, route = %path, reason = %e, "request refused by ACL");
            if path.starts_with("/ui") && matches!(e, ServerError::Forbidden(_)) {
                return login::refused();
            }
            e.into_response()
        }
    }
}

/// Resolves the caller and checks the route's rule.
async fn authorize(st: &AppState, parts: &mut Parts, path: &str) -> Result<Caller, ServerError> {
    let Some(rule) = rules::rule_for(parts.method.as_str(), path) else {
        if rules::ROUTES.iter().any(|(_, p, _)| *p == path) {
            // A method the route does not serve (the table mirrors the router, which a test
            // checks): the router answers 405 and no handler runs.
            return Ok(Caller {
                token: None,
                acl: Acl::default(),
            });
        }
        tracing::error!(route = %path, method = %parts.method, "route has no ACL rule; refusing (add it to server/src/acl/rules.rs)");
        return Err(denied());
    };
    if rule == Rule::Public || (matches!(rule, Rule::WsHandshake(..)) && asks_handshake(parts)) {
        return Ok(Caller {
            token: None,
            acl: Acl::default(),
        });
    }
    let secret = secret_of(&parts.headers, &parts.method, parts.uri.path());
    let caller = resolve(st, secret.as_deref()).await?;
    if grants(st, parts, rule, &caller).await? {
        Ok(caller)
    } else {
        Err(denied())
    }
}

/// Whether the request is a websocket that brings its token in its first frame
/// (`?ws_handshake=true`, read exactly as the handler reads it).
fn asks_handshake(parts: &Parts) -> bool {
    crate::nomad::query::QueryOptions::parse(parts.uri.query().unwrap_or(""))
        .is_ok_and(|q| q.flag("ws_handshake", false))
}

/// Whether `caller` passes `rule`. Where only the handler can tell which namespaces a request
/// touches, the middleware grants nothing on its own: it lets through a caller that holds
/// the capability in some namespace, and the handler decides. A list over every namespace
/// (`*`) keeps only the objects the caller may see; a body's jobs are each checked with
/// [`Caller::require_namespace`]; an object that does not exist answers 404.
async fn grants(
    st: &AppState,
    parts: &mut Parts,
    rule: Rule,
    caller: &Caller,
) -> Result<bool, ServerError> {
    let acl = &caller.acl;
    Ok(match rule {
        // `authorize` answers public routes before resolving a token; nothing is granted here.
        Rule::Public => false,
        Rule::Token => caller.token.is_some(),
        Rule::Management => acl.is_management(),
        Rule::Node(a) => acl.allows_node(a),
        Rule::Agent(a) => acl.allows_agent(a),
        Rule::Operator(a) => acl.allows_operator(a),
        Rule::ReadAll => acl.allows_namespace("*", CAP_READ_JOB) && acl.allows_node(Access::Read),
        Rule::Variables => true,
        Rule::Filtered(cap) => acl.allows_namespace_somewhere(cap) || acl.allows_node(Access::Read),
        Rule::Namespace(cap, from) | Rule::WsHandshake(cap, from) => {
            match namespace_of(st, parts, from).await? {
                Some(ns) if ns == "*" && from.is_list() => acl.allows_namespace_somewhere(cap),
                Some(ns) => acl.allows_namespace(&ns, cap),
                None => acl.allows_namespace_somewhere(cap),
            }
        }
    })
}

/// The namespace a request touches; `None` when only the handler can tell (the body's jobs),
/// or the object named does not exist (the handler answers 404).
async fn namespace_of(
    st: &AppState,
    parts: &mut Parts,
    from: NsFrom,
) -> Result<Option<String>, ServerError> {
    let query = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|Query(mut q)| q.remove("namespace"))
        .filter(|n| !n.is_empty());
    let id = match from {
        NsFrom::Alloc | NsFrom::Deployment | NsFrom::Eval => {
            Path::<HashMap<String, String>>::from_request_parts(parts, &())
                .await
                .ok()
                .and_then(|Path(mut p)| p.remove("id"))
                .unwrap_or_default()
        }
        _ => String::new(),
    };
    let looked_up = match from {
        NsFrom::Body => return Ok(None),
        NsFrom::Query | NsFrom::List => return Ok(Some(query.unwrap_or_else(|| "default".into()))),
        NsFrom::QueryOrAll => return Ok(Some(query.unwrap_or_else(|| "*".into()))),
        NsFrom::Alloc => crate::allocs::find_alloc(st, &id)
            .await
            .map(|a| a.allocation.namespace),
        NsFrom::Deployment => crate::nomad::deployments::find(st, &id)
            .await
            .map(|d| d.deployment.namespace),
        NsFrom::Eval => crate::nomad::evals::find(st, &id)
            .await
            .map(|e| e.namespace),
    };
    match looked_up {
        Ok(ns) => Ok(Some(ns)),
        Err(ServerError::NotFound(_)) => Ok(None),
        // An ambiguous prefix may span namespaces: only a caller allowed everywhere passes.
        Err(ServerError::Ambiguous(_)) => Ok(Some("*".into())),
        Err(e) => Err(e),
    }
}
