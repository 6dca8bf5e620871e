//! What the UI's action buttons need beyond what the pages already show: the versions a job
//! can be reverted to, each with its diff against the running version, the dispatch form of a
//! parameterized job, and the allocation that replaced a failed one.
//!
//! How an action runs: the buttons (templates `fragments/actions_*.html`) describe a `/v1`
//! request, and `assets/actions.js` opens a confirmation dialog naming what will happen, then
//! sends that request itself with the signed-in token in `X-Nomad-Token`. So each action goes
//! through the very handler, ACL check and validation that `nctl` and Nomad's clients use; the
//! UI has no write routes and no second implementation.
//!
//! Why no CSRF token: the `nomos-token` cookie authorises only `GET`s under `/ui`
//! ([`crate::acl::secret_of`]); every write must carry the token in a header, which another
//! site can neither read (the cookie is `SameSite=Strict` and same-origin to script) nor set
//! on a cross-origin request without a CORS preflight, which the server does not grant.

use nomos_api::Job;
use serde::Serialize;

use super::pages::Link;
use crate::diff::diff_jobs;
use crate::error::ServerError;
use crate::ui::model;
use crate::views::{AllocView, JobVersionView};
use crate::AppState;

/// Older versions offered for a revert, newest first.
pub const REVERT_CHOICES: usize = 10;

/// A version a job can be reverted to, with what reverting would change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevertChoice {
    pub version: u64,
    pub stable: bool,
    /// `~ groups[web].count: 3 => 1`, one line per changed field, from the running version
    /// to this one.
    pub changes: Vec<String>,
}

/// The inputs a parameterized job's dispatch takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DispatchForm {
    pub meta_required: Vec<String>,
    pub meta_optional: Vec<String>,
    /// `optional`, `required` or `forbidden`.
    pub payload: String,
}

/// The job page's action data.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobActions {
    pub reverts: Vec<RevertChoice>,
    pub dispatch: Option<DispatchForm>,
}

/// The revert choices: every accepted version but `current`, newest first, each with its diff
/// from the running spec (`None` when no version was accepted yet).
pub fn revert_choices(versions: &[JobVersionView], current: u64) -> Vec<RevertChoice> {
    let canonical = |j: &Job| serde_json::to_value(j).unwrap_or_default();
    let Some(running) = versions
        .iter()
        .find(|v| v.version == current)
        .and_then(|v| v.job.as_ref())
        .map(canonical)
    else {
        return Vec::new();
    };
    let mut older: Vec<&JobVersionView> =
        versions.iter().filter(|v| v.version != current).collect();
    older.sort_by_key(|v| std::cmp::Reverse(v.version));
    older
        .into_iter()
        .filter_map(|v| Some((v, canonical(v.job.as_ref()?))))
        .take(REVERT_CHOICES)
        .map(|(v, spec)| RevertChoice {
            version: v.version,
            stable: v.stable,
            changes: diff_jobs(Some(&running), &spec)
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
        .collect()
}

/// The dispatch form of a parameterized job.
pub fn dispatch_form(job: &Job) -> Option<DispatchForm> {
    job.parameterized.as_ref().map(|p| DispatchForm {
        meta_required: p.meta_required.clone(),
        meta_optional: p.meta_optional.clone(),
        payload: if p.payload.is_empty() {
            "optional".into()
        } else {
            p.payload.clone()
        },
    })
}

/// Loads the action data of the job page.
pub async fn job_actions(
    st: &AppState,
    job: &Job,
    current: u64,
) -> Result<JobActions, ServerError> {
    let versions = crate::specs::job_versions(st, &job.namespace, &job.id).await?;
    Ok(JobActions {
        reverts: revert_choices(&versions, current),
        dispatch: dispatch_form(job),
    })
}

/// The allocation that replaced `id` (the one naming it as its previous allocation), if any.
pub fn replacement(allocs: &[AllocView], id: &str) -> Option<Link> {
    allocs
        .iter()
        .find(|a| a.allocation.previous_alloc == id)
        .map(|a| Link {
            text: model::short_id(&a.allocation.id),
            href: model::alloc_href(&a.allocation.id),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(v: u64, count: u32) -> JobVersionView {
        let job = Job {
            id: "web".into(),
            namespace: "default".into(),
            groups: vec![nomos_api::TaskGroup {
                name: "g".into(),
                count,
                ..Default::default()
            }],
            ..Default::default()
        };
        JobVersionView {
            version: v,
            job: Some(job),
            stable: v == 0,
            submit_time_ns: 0,
            raw: serde_json::Value::Null,
            modify_index: 0,
        }
    }

    #[test]
    fn revert_choices_are_older_versions_newest_first_with_their_diff_from_the_running_one() {
        let versions = [version(0, 1), version(1, 3), version(2, 3)];
        let choices = revert_choices(&versions, 2);
        let listed: Vec<u64> = choices.iter().map(|c| c.version).collect();
        assert_eq!(listed, [1, 0]);
        assert!(choices[0].changes.is_empty(), "{:?}", choices[0]);
        assert_eq!(choices[1].changes, ["~ groups[g].count: 3 => 1"]);
        assert!(choices[1].stable);
    }

    #[test]
    fn no_revert_choices_before_a_version_is_accepted() {
        assert_eq!(revert_choices(&[version(0, 1)], 3), Vec::new());
    }
}
