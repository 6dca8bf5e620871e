//! Deleting expired tokens. An expired token is refused at once (403 "ACL token expired",
//! checked on every request in [`super::resolve`]); it is deleted, with its secret index, once
//! it has been expired for [`GC_THRESHOLD`] (Nomad's `acl_token_gc_threshold` default), by
//! [`run`], which sweeps every [`SWEEP_EVERY`] while the server runs with ACLs on.

use std::future::Future;
use std::time::Duration;

use nomos_api::acl::AclToken;
use nomos_store::{keys, Compare, CompareOp, Txn, TxnOp};

use super::secret_hash;
use crate::error::ServerError;
use crate::{kv, AppState};

/// How long an expired token is kept (still refused) before it is deleted.
pub const GC_THRESHOLD: Duration = Duration::from_secs(3600);
/// How often the sweeper looks.
pub const SWEEP_EVERY: Duration = Duration::from_secs(300);

/// Whether `token` has been expired for at least [`GC_THRESHOLD`] at `now` (a stored expiry
/// that does not parse counts as long expired).
pub fn due_for_deletion(token: &AclToken, now: jiff::Timestamp) -> bool {
    let Some(at) = &token.expiration_time else {
        return false;
    };
    let Ok(at) = at.parse::<jiff::Timestamp>() else {
        return true;
    };
    let threshold = jiff::SignedDuration::try_from(GC_THRESHOLD).unwrap_or_default();
    now.duration_since(at) >= threshold
}

/// Deletes every token due at `now` (each with its secret index, comparing the token's
/// revision so a concurrent update wins); answers how many were deleted.
pub async fn sweep(st: &AppState, now: jiff::Timestamp) -> Result<usize, ServerError> {
    let tokens = kv::list_json::<AclToken>(st.store.as_ref(), keys::ACL_TOKENS_PREFIX).await?;
    let mut deleted = 0;
    for entry in tokens.iter().filter(|e| due_for_deletion(&e.value, now)) {
        let txn = Txn::new()
            .when([Compare::mod_revision(
                entry.key.clone(),
                CompareOp::Equal,
                entry.mod_revision,
            )])
            .and_then([
                TxnOp::delete(entry.key.clone()),
                TxnOp::delete(keys::acl_secret(&secret_hash(&entry.value.secret_id))),
            ]);
        if st.store.txn(txn).await?.succeeded {
            deleted += 1;
            tracing::info!(accessor = %entry.value.accessor_id, "deleted an expired ACL token");
        }
    }
    if deleted > 0 {
        st.acl_cache.invalidate();
    }
    Ok(deleted)
}

/// Sweeps every [`SWEEP_EVERY`] until `closed` resolves; a failed sweep is logged and retried
/// at the next tick.
pub async fn run(st: AppState, closed: impl Future<Output = ()>) {
    tokio::pin!(closed);
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = &mut closed => break,
            _ = tick.tick() => {
                if let Err(e) = sweep(&st, jiff::Timestamp::now()).await {
                    tracing::warn!(error = %e, "sweeping expired ACL tokens failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::acl::TokenType;

    fn token(expires: Option<&str>) -> AclToken {
        AclToken {
            accessor_id: "a".into(),
            secret_id: "s".into(),
            name: String::new(),
            token_type: TokenType::Client,
            policies: vec!["p".into()],
            roles: vec![],
            global: false,
            create_time: String::new(),
            expiration_time: expires.map(str::to_string),
            expiration_ttl: 0,
            create_index: 0,
            modify_index: 0,
        }
    }

    #[test]
    fn an_expired_token_is_kept_for_the_threshold_then_due() {
        let now: jiff::Timestamp = "2030-01-01T12:00:00Z".parse().unwrap();
        assert!(!due_for_deletion(&token(None), now));
        assert!(!due_for_deletion(&token(Some("2030-01-01T13:00:00Z")), now));
        assert!(!due_for_deletion(&token(Some("2030-01-01T11:30:00Z")), now));
        assert!(due_for_deletion(&token(Some("2030-01-01T11:00:00Z")), now));
        assert!(due_for_deletion(&token(Some("garbage")), now));
        assert!(token(Some("2030-01-01T11:59:59Z")).is_expired(now));
        assert!(!token(Some("2030-01-01T12:00:01Z")).is_expired(now));
        assert!(
            token(Some("garbage")).is_expired(now),
            "an unreadable expiry grants nothing"
        );
    }
}
