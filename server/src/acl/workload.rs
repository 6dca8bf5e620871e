//! Workload identities as API tokens: a task sends its identity (a JWT signed by the keyring,
//! [`crate::identity`]) as `X-Nomad-Token` or `Authorization: Bearer`, and is resolved here to
//! a [`Caller`] whose ACL grants, as Nomad's do, only:
//!
//! - read and list on its own variables, `nomad/jobs/<job>[/<group>[/<task>]]` (and
//!   `nomad/jobs`), in its namespace ([`nomos_api::acl::check::WorkloadClaim`]);
//! - whatever the ACL policies bound to its job say (a policy's `JobACL`: namespace and job,
//!   optionally group and task, as `nomad acl policy apply -job` sets it).
//!
//! The identity must verify (signature by a key in the keyring, audience, time) and its
//! allocation must still exist, with the namespace, job and group the claims name; else 403.

use nomos_api::acl::check::WorkloadClaim;
use nomos_api::acl::{parse_policy, Acl, AclPolicy, JobAcl};
use nomos_api::Allocation;
use nomos_store::{keys, KeySelector, RangeOptions};

use super::Caller;
use crate::error::ServerError;
use crate::identity::IdentityClaims;
use crate::{kv, AppState};

/// Longest workload identity accepted, in bytes.
pub const MAX_JWT_BYTES: usize = 8 * 1024;
/// Longest allocation ID a claim may name.
const MAX_ALLOC_ID_BYTES: usize = 64;
/// Longest node name a claim may name.
const MAX_NODE_NAME_BYTES: usize = 256;

/// Whether a token looks like a JWT (three base64url parts, a JSON header) rather than an ACL
/// token's UUID secret.
pub fn looks_like_jwt(secret: &str) -> bool {
    secret.len() <= MAX_JWT_BYTES && secret.starts_with("eyJ") && secret.split('.').count() == 3
}

fn refused(why: String) -> ServerError {
    ServerError::Forbidden(format!("workload identity refused: {why}"))
}

/// The caller a workload identity stands for (see the module doc).
pub async fn resolve(st: &AppState, jwt: &str) -> Result<Caller, ServerError> {
    let claims = st.keyring.verify_identity(jwt).await?;
    let alloc = find_alloc(st, &claims.nomos_node, &claims.nomad_allocation_id)
        .await?
        .ok_or_else(|| {
            refused(format!(
                "allocation {:.64} no longer exists",
                claims.nomad_allocation_id
            ))
        })?;
    let claim = claim_of(&claims, &alloc)?;
    let acl = Acl::new(&bound_policies(st, &claim).await?).with_workload(claim);
    Ok(Caller { token: None, acl })
}

/// The claim checked against the allocation it names.
fn claim_of(claims: &IdentityClaims, alloc: &Allocation) -> Result<WorkloadClaim, ServerError> {
    // Identities issued before `nomos_group` existed name the group in `sub` only.
    let group = if claims.nomos_group.is_empty() {
        claims.sub.split(':').nth(3).unwrap_or_default().to_string()
    } else {
        claims.nomos_group.clone()
    };
    if alloc.namespace != claims.nomad_namespace
        || alloc.job_id != claims.nomad_job_id
        || alloc.task_group != group
    {
        return Err(refused(format!(
            "allocation {:.64} does not belong to the claimed namespace, job and group",
            claims.nomad_allocation_id
        )));
    }
    Ok(WorkloadClaim {
        namespace: alloc.namespace.clone(),
        job: alloc.job_id.clone(),
        group,
        task: claims.nomad_task.clone(),
    })
}

/// The desired allocation with this ID: one read at `/nomos/allocs/<node>/<id>` when the
/// identity names its node, else (identities issued before `nomos_node`) a scan of the
/// allocation keys.
async fn find_alloc(
    st: &AppState,
    node: &str,
    id: &str,
) -> Result<Option<Allocation>, ServerError> {
    if id.is_empty() || id.len() > MAX_ALLOC_ID_BYTES || id.contains('/') {
        return Ok(None);
    }
    if !node.is_empty() {
        if node.len() > MAX_NODE_NAME_BYTES || node.contains('/') {
            return Ok(None);
        }
        return Ok(
            kv::get_json::<Allocation>(st.store.as_ref(), &keys::alloc(node, id))
                .await?
                .map(|e| e.value)
                .filter(|a| a.id == id && a.node == node),
        );
    }
    let suffix = format!("/{id}");
    let keys_only = st
        .store
        .range(
            KeySelector::prefix(keys::allocs_prefix(None)),
            RangeOptions {
                keys_only: true,
                ..RangeOptions::default()
            },
        )
        .await?;
    let Some(found) = keys_only
        .kvs
        .iter()
        .filter_map(|kv| kv.key_utf8_or_skip())
        .find(|k| k.ends_with(&suffix))
    else {
        return Ok(None);
    };
    Ok(kv::get_json::<Allocation>(st.store.as_ref(), found)
        .await?
        .map(|e| e.value)
        .filter(|a| a.id == id))
}

/// Longest name in a `JobACL`.
const MAX_JOB_ACL_NAME_BYTES: usize = 200;

/// Checks a policy's `JobACL` as Nomad does: a namespace and a job; a task only with a group.
pub fn check_job_acl(j: &JobAcl) -> Result<(), ServerError> {
    let bad = |m: String| Err(ServerError::BadRequest(format!("JobACL: {m}")));
    if j.namespace.is_empty() || j.job_id.is_empty() {
        return bad("a job ACL needs both Namespace and JobID".into());
    }
    if !j.task.is_empty() && j.group.is_empty() {
        return bad("a job ACL with a Task needs its Group".into());
    }
    for (field, v) in [
        ("Namespace", &j.namespace),
        ("JobID", &j.job_id),
        ("Group", &j.group),
        ("Task", &j.task),
    ] {
        if v.len() > MAX_JOB_ACL_NAME_BYTES || v.chars().any(|c| c.is_control()) {
            return bad(format!(
                "{field} must be at most {MAX_JOB_ACL_NAME_BYTES} bytes without control characters"
            ));
        }
    }
    Ok(())
}

/// Does a policy's `JobACL` cover this workload?
pub fn binds(job_acl: &JobAcl, claim: &WorkloadClaim) -> bool {
    job_acl.namespace == claim.namespace
        && job_acl.job_id == claim.job
        && (job_acl.group.is_empty() || job_acl.group == claim.group)
        && (job_acl.task.is_empty() || job_acl.task == claim.task)
}

/// The parsed policies bound to this workload's job (unparsable ones are skipped with a
/// warning, as for tokens).
async fn bound_policies(
    st: &AppState,
    claim: &WorkloadClaim,
) -> Result<Vec<nomos_api::acl::Policy>, ServerError> {
    let all = kv::list_json::<AclPolicy>(st.store.as_ref(), keys::ACL_POLICIES_PREFIX).await?;
    let mut out = Vec::new();
    for e in all {
        let p = e.value;
        if !p.job_acl.as_ref().is_some_and(|j| binds(j, claim)) {
            continue;
        }
        match parse_policy(&p.name, &p.rules) {
            Ok(policy) => out.push(policy),
            Err(errs) => {
                tracing::warn!(policy = %p.name, error = %errs[0], "skipping a stored ACL policy that does not parse")
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_jwt_shaped_secrets_are_taken_for_identities() {
        assert!(looks_like_jwt("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt("9e2f1c3a-0000-4000-8000-000000000000"));
        assert!(!looks_like_jwt("eyJ.only-two"));
        assert!(!looks_like_jwt(&format!(
            "eyJ{}.a.b",
            "x".repeat(MAX_JWT_BYTES)
        )));
    }

    #[test]
    fn a_job_acl_binds_its_job_and_narrows_to_its_group_and_task() {
        let claim = WorkloadClaim {
            namespace: "prod".into(),
            job: "web".into(),
            group: "g".into(),
            task: "t".into(),
        };
        let acl = |ns: &str, job: &str, group: &str, task: &str| JobAcl {
            namespace: ns.into(),
            job_id: job.into(),
            group: group.into(),
            task: task.into(),
        };
        assert!(binds(&acl("prod", "web", "", ""), &claim));
        assert!(binds(&acl("prod", "web", "g", ""), &claim));
        assert!(binds(&acl("prod", "web", "g", "t"), &claim));
        assert!(!binds(&acl("prod", "web", "other", ""), &claim));
        assert!(!binds(&acl("prod", "web", "g", "other"), &claim));
        assert!(!binds(&acl("prod", "api", "", ""), &claim));
        assert!(!binds(&acl("default", "web", "", ""), &claim));
        assert!(check_job_acl(&acl("prod", "web", "g", "t")).is_ok());
        for (bad, want) in [
            (acl("", "web", "", ""), "Namespace and JobID"),
            (acl("prod", "", "", ""), "Namespace and JobID"),
            (acl("prod", "web", "", "t"), "needs its Group"),
            (
                acl("prod", &"j".repeat(201), "", ""),
                "JobID must be at most",
            ),
        ] {
            let e = check_job_acl(&bad).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
