//! Workload identities: for every allocation, one JWT per task of its group, signed by the
//! servers' keyring ([`crate::keyring`]) and written to `/nomos/identities/<node>/<alloc>` as
//! `{"tasks": {"<task>": "<jwt>"}}` for the node's agent to hand to its tasks.
//!
//! [`run`] is the loop: it lists the allocations, issues what is missing and deletes
//! identities whose allocation is gone (orphans), then follows a watch of `/nomos/allocs/`,
//! going back to a full pass whenever the watch ends. Several servers may run it at once: an
//! identity is written create-only, compared with the allocation's revision, so racing
//! servers agree on one and none is written for an allocation already deleted.
//!
//! The claims are Nomad's ([`IdentityClaims`]); tokens carry no `exp`, as Nomad's default
//! identities, and live as long as their allocation and the key that signed them.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use nomos_api::{Allocation, Job};
use nomos_store::{
    keys, Compare, CompareOp, CompareTarget, EventKind, KeySelector, KeyValue, RangeOptions, Txn,
    TxnOp, WatchOptions,
};
use serde::{Deserialize, Serialize};

use crate::error::ServerError;
use crate::{kv, AppState};

/// The audience every workload identity names, and verification requires (Nomad's).
pub const AUDIENCE: &str = "nomadproject.io";
/// How far `nbf` may lie in the future, and `exp` in the past, for clocks that differ.
pub const CLOCK_SKEW_SECS: i64 = 60;
/// Pause before a full pass after the allocations' watch ended or a pass failed.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// A workload identity's claims (Nomad's names; `nomos_group` is Nomos's addition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClaims {
    pub aud: Vec<String>,
    /// `global:<ns>:<job>:<group>:<task>:default`.
    pub sub: String,
    pub nomad_namespace: String,
    pub nomad_job_id: String,
    pub nomad_allocation_id: String,
    pub nomad_task: String,
    #[serde(default)]
    pub nomos_group: String,
    /// The node the allocation is placed on: where its key is (`/nomos/allocs/<node>/<id>`),
    /// so a workload token is checked with one read.
    #[serde(default)]
    pub nomos_node: String,
    /// Seconds since the epoch.
    pub iat: i64,
    pub nbf: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    pub jti: String,
}

impl IdentityClaims {
    /// The default identity of `task` in `alloc`, issued at `now` (seconds since the epoch).
    pub fn for_task(alloc: &Allocation, task: &str, now: i64) -> IdentityClaims {
        IdentityClaims {
            aud: vec![AUDIENCE.to_string()],
            sub: format!(
                "global:{}:{}:{}:{}:default",
                alloc.namespace, alloc.job_id, alloc.task_group, task
            ),
            nomad_namespace: alloc.namespace.clone(),
            nomad_job_id: alloc.job_id.clone(),
            nomad_allocation_id: alloc.id.clone(),
            nomad_task: task.to_string(),
            nomos_group: alloc.task_group.clone(),
            nomos_node: alloc.node.clone(),
            iat: now,
            nbf: now,
            exp: None,
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Refuses claims not yet valid, expired, or for another audience, at `now` (seconds).
    pub fn check(&self, now: i64) -> Result<(), ServerError> {
        let refuse = |m: String| Err(ServerError::InvalidIdentity(m));
        if self.nbf > now + CLOCK_SKEW_SECS {
            return refuse(format!("not valid before {} (now {now})", self.nbf));
        }
        if let Some(exp) = self.exp {
            if exp + CLOCK_SKEW_SECS <= now {
                return refuse(format!("expired at {exp} (now {now})"));
            }
        }
        if !self.aud.iter().any(|a| a == AUDIENCE) {
            return refuse(format!(
                "audience {:?} does not include {AUDIENCE:?}",
                self.aud
            ));
        }
        Ok(())
    }
}

/// The value at `/nomos/identities/<node>/<alloc>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AllocIdentities {
    /// Task name → signed JWT.
    pub tasks: BTreeMap<String, String>,
}

/// Keeps `/nomos/identities/` in step with `/nomos/allocs/` until `shutdown` resolves.
pub async fn run(state: AppState, shutdown: impl Future<Output = ()>) {
    tokio::select! {
        _ = shutdown => {}
        _ = run_forever(&state) => {}
    }
}

async fn run_forever(st: &AppState) {
    loop {
        match sync_all(st).await {
            Ok(revision) => match follow(st, revision + 1).await {
                Ok(()) => tracing::debug!("the allocations' watch ended; resyncing identities"),
                Err(e) => tracing::warn!(error = %e, "the identity loop's watch failed"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot sync workload identities"),
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
}

/// One full pass: issues identities that are missing and deletes orphans. Returns the revision
/// the allocations were listed at.
pub async fn sync_all(st: &AppState) -> Result<i64, ServerError> {
    let store = st.store.as_ref();
    let allocs = store
        .range(
            KeySelector::prefix(keys::ALLOCS_PREFIX),
            RangeOptions::default(),
        )
        .await?;
    let at = RangeOptions {
        revision: allocs.revision,
        keys_only: true,
        ..RangeOptions::default()
    };
    let identities = store
        .range(KeySelector::prefix(keys::IDENTITIES_PREFIX), at)
        .await?;
    let have: BTreeSet<String> = identities
        .kvs
        .iter()
        .filter_map(|kv| kv.key_utf8_or_skip().map(str::to_string))
        .collect();
    let mut wanted = BTreeSet::new();
    for kv in &allocs.kvs {
        let Some(key) = kv.key_utf8_or_skip().and_then(identity_key_of) else {
            continue;
        };
        if !have.contains(&key) {
            issue(st, kv, &key).await?;
        }
        wanted.insert(key);
    }
    for orphan in have.difference(&wanted) {
        remove_orphan(st, orphan).await?;
    }
    Ok(allocs.revision)
}

/// Follows the allocations from `revision`: a new allocation gets its identities, a deleted
/// one loses them.
async fn follow(st: &AppState, revision: i64) -> Result<(), ServerError> {
    let options = WatchOptions {
        start_revision: revision,
        ..WatchOptions::default()
    };
    let mut stream = st
        .store
        .watch(KeySelector::prefix(keys::ALLOCS_PREFIX), options)
        .await?;
    let mut closed = st.closing.subscribe();
    loop {
        let resp = tokio::select! {
            next = stream.next() => match next {
                Some(resp) => resp?,
                None => return Ok(()),
            },
            _ = closed.wait_for(|c| *c) => return Ok(()),
        };
        for event in resp.events {
            let Some(key) = event.kv.key_utf8_or_skip().and_then(identity_key_of) else {
                continue;
            };
            match event.kind {
                EventKind::Put => {
                    if kv::get_raw(st.store.as_ref(), &key).await?.is_none() {
                        issue(st, &event.kv, &key).await?;
                    }
                }
                EventKind::Delete => {
                    st.store
                        .delete(KeySelector::key(key.as_str()), Default::default())
                        .await?;
                }
            }
        }
    }
}

/// `/nomos/identities/<node>/<alloc>` for `/nomos/allocs/<node>/<alloc>`.
fn identity_key_of(alloc_key: &str) -> Option<String> {
    match keys::parts(alloc_key, keys::ALLOCS_PREFIX)?.as_slice() {
        [node, alloc] if !node.is_empty() && !alloc.is_empty() => Some(keys::identity(node, alloc)),
        _ => None,
    }
}

/// Signs the identities of the allocation in `alloc_kv` and writes them create-only, compared
/// with the allocation's revision. An allocation that does not decode, or whose job version is
/// missing, is skipped with a warning (it runs nothing either).
async fn issue(st: &AppState, alloc_kv: &KeyValue, key: &str) -> Result<(), ServerError> {
    let alloc_key = alloc_kv.key_str().into_owned();
    let alloc: Allocation = match serde_json::from_slice(&alloc_kv.value) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(key = %alloc_key, error = %e, "no identities for an allocation that does not decode");
            return Ok(());
        }
    };
    let Some(tasks) = task_names(st, &alloc).await? else {
        tracing::warn!(key = %alloc_key, version = alloc.job_version, "no identities: the allocation's job version or group is missing");
        return Ok(());
    };
    let now = jiff::Timestamp::now().as_second();
    let mut value = AllocIdentities::default();
    for task in tasks {
        let claims = IdentityClaims::for_task(&alloc, &task, now);
        value
            .tasks
            .insert(task, st.keyring.sign_identity(&claims).await?);
    }
    let bytes = serde_json::to_vec(&value).map_err(|e| ServerError::Internal(e.to_string()))?;
    let txn = Txn::new()
        .when([
            Compare::new(key, CompareOp::Equal, CompareTarget::CreateRevision(0)),
            Compare::mod_revision(alloc_key.as_str(), CompareOp::Equal, alloc_kv.mod_revision),
        ])
        .and_then([TxnOp::put(key, bytes)]);
    if st.store.txn(txn).await?.succeeded {
        tracing::debug!(key, "wrote workload identities");
    }
    Ok(())
}

/// The task names of the allocation's group in the job version it names.
async fn task_names(st: &AppState, alloc: &Allocation) -> Result<Option<Vec<String>>, ServerError> {
    let version_key = keys::job_version(&alloc.namespace, &alloc.job_id, alloc.job_version);
    let Some(job) = kv::get_json::<Job>(st.store.as_ref(), &version_key).await? else {
        return Ok(None);
    };
    Ok(job
        .value
        .groups
        .iter()
        .find(|g| g.name == alloc.task_group)
        .map(|g| g.tasks.iter().map(|t| t.name.clone()).collect()))
}

/// Deletes an identity whose allocation is gone, unless the allocation came back meanwhile.
async fn remove_orphan(st: &AppState, key: &str) -> Result<(), ServerError> {
    let Some(parts) = keys::parts(key, keys::IDENTITIES_PREFIX) else {
        return Ok(());
    };
    let [node, alloc] = parts.as_slice() else {
        // Not an identity key this loop writes: delete it too, nothing reads it.
        st.store
            .delete(KeySelector::key(key), Default::default())
            .await?;
        return Ok(());
    };
    let alloc_key = keys::alloc(node, alloc);
    let txn = Txn::new()
        .when([Compare::new(
            alloc_key.as_str(),
            CompareOp::Equal,
            CompareTarget::CreateRevision(0),
        )])
        .and_then([TxnOp::delete(key)]);
    if st.store.txn(txn).await?.succeeded {
        tracing::debug!(key, "deleted the identities of a gone allocation");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc() -> Allocation {
        Allocation {
            id: "a1".into(),
            namespace: "default".into(),
            job_id: "web".into(),
            task_group: "g".into(),
            ..Allocation::default()
        }
    }

    #[test]
    fn claims_name_the_task_as_nomad_does() {
        let c = IdentityClaims::for_task(&alloc(), "srv", 100);
        assert_eq!(c.sub, "global:default:web:g:srv:default");
        assert_eq!(c.aud, vec!["nomadproject.io"]);
        assert_eq!((c.iat, c.nbf, c.exp), (100, 100, None));
        assert!(c.check(100).is_ok());
    }

    #[test]
    fn claims_not_yet_valid_expired_or_for_another_audience_are_refused() {
        let base = IdentityClaims::for_task(&alloc(), "srv", 1000);
        let cases = [
            (
                IdentityClaims {
                    nbf: 1000 + CLOCK_SKEW_SECS + 1,
                    ..base.clone()
                },
                "not valid before",
            ),
            (
                IdentityClaims {
                    exp: Some(1000 - CLOCK_SKEW_SECS),
                    ..base.clone()
                },
                "expired",
            ),
            (
                IdentityClaims {
                    aud: vec!["vault.io".into()],
                    ..base.clone()
                },
                "audience",
            ),
            (
                IdentityClaims {
                    aud: vec![],
                    ..base.clone()
                },
                "audience",
            ),
        ];
        for (claims, want) in cases {
            let err = claims.check(1000).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn only_allocation_keys_map_to_identity_keys() {
        assert_eq!(
            identity_key_of("/nomos/allocs/n1/a1").as_deref(),
            Some("/nomos/identities/n1/a1")
        );
        assert_eq!(identity_key_of("/nomos/allocs/n1"), None);
        assert_eq!(identity_key_of("/nomos/allocs/n1/a1/x"), None);
        assert_eq!(identity_key_of("/nomos/allocs//a1"), None);
        assert_eq!(identity_key_of("/nomos/jobs/n1/a1"), None);
    }
}
