//! Reading jobs back from the store: the spec key as users and GitOps wrote it, and the
//! versions the controllers accepted from it.
//!
//! A spec key may hold anything (`etcdctl put /nomos/jobs/default/web 'not a job'`): the
//! controllers then record the errors in the job status and keep the last accepted version
//! running. [`locate_job`] therefore finds a job by its key alone, whatever the value holds, and
//! [`running_job`] answers with what actually runs: the spec when it is valid, else the latest
//! accepted version from `/nomos/jobversions/<ns>/<job>/`, with the spec's errors alongside.

use nomos_api::settings::StabilityMarks;
use nomos_api::{Job, JobStatus};
use nomos_store::keys;
use nomos_store::{KeyValue, RangeOptions};
use serde_json::Value;

use crate::error::ServerError;
use crate::kv::{self, Entry};
use crate::views::{InvalidSpec, JobVersionView};
use crate::AppState;

/// Decodes a stored spec exactly as the controllers do (canonical JSON, or a manifest written
/// by GitOps or etcdctl, validated): `Err` holds one message per diagnostic.
pub fn spec_diagnostics(kv: &KeyValue) -> Result<Job, Vec<String>> {
    let key = kv.key_str().into_owned();
    match nomos_api::parse_stored_spec(&key, &kv.value) {
        Ok(parsed) => parsed
            .jobs
            .into_iter()
            .next()
            .ok_or_else(|| vec![format!("{key}: the value holds no job")]),
        Err(diags) => Err(diags.iter().map(|d| d.to_string()).collect()),
    }
}

/// [`spec_diagnostics`] as a [`ServerError::Corrupt`] naming the key.
pub fn read_spec(kv: &KeyValue) -> Result<Job, ServerError> {
    spec_diagnostics(kv).map_err(|errors| ServerError::Corrupt {
        key: kv.key_str().into_owned(),
        message: errors.join("; "),
    })
}

/// `(namespace, id)` of a spec key; `None` (with a warning) for a key that is not UTF-8 or
/// whose segments are not a namespace and a job id, so such a key is never read as another
/// job (`/nomos/jobs/evil/ns/web` is not job `ns/web` in `evil`).
pub fn split_job_key(kv: &KeyValue) -> Option<(String, String)> {
    let key = match kv.key_utf8() {
        Ok(key) => key,
        Err(e) => {
            tracing::warn!(error = %e, "skipping a job spec key");
            return None;
        }
    };
    let rest = key.strip_prefix(keys::jobs_prefix(None).as_str())?;
    let (ns, id) = rest.split_once('/')?;
    let checked = nomos_api::names::check_namespace("namespace", ns)
        .and_then(|()| nomos_api::names::check_segment("job id", id));
    if let Err(why) = checked {
        tracing::warn!(key, "skipping a job spec key: {why}");
        return None;
    }
    Some((ns.to_string(), id.to_string()))
}

/// Every stored spec under a namespace (`None`: all), with its key metadata; keys that do not
/// name a job ([`split_job_key`]) are left out.
pub async fn stored_jobs(
    st: &AppState,
    namespace: Option<&str>,
) -> Result<Vec<(KeyValue, Result<Job, ServerError>)>, ServerError> {
    let resp = st
        .store
        .range(
            nomos_store::KeySelector::prefix(keys::jobs_prefix(namespace)),
            RangeOptions::default(),
        )
        .await?;
    Ok(resp
        .kvs
        .into_iter()
        .filter(|kv| split_job_key(kv).is_some())
        .map(|kv| {
            let job = read_spec(&kv);
            (kv, job)
        })
        .collect())
}

/// A job's spec key, found by id or unique id prefix, and what its value decodes to.
#[derive(Debug, Clone)]
pub struct FoundJob {
    pub namespace: String,
    pub id: String,
    pub kv: KeyValue,
    /// The spec, or why the value is not one.
    pub spec: Result<Job, Vec<String>>,
}

impl FoundJob {
    fn from_kv(kv: KeyValue) -> Option<FoundJob> {
        let (namespace, id) = split_job_key(&kv)?;
        let spec = spec_diagnostics(&kv);
        Some(FoundJob {
            namespace,
            id,
            kv,
            spec,
        })
    }

    /// The spec, or [`ServerError::Corrupt`] for a value that is not one.
    pub fn valid_spec(&self) -> Result<&Job, ServerError> {
        self.spec.as_ref().map_err(|errors| ServerError::Corrupt {
            key: self.kv.key_str().into_owned(),
            message: errors.join("; "),
        })
    }
}

/// Refuses (400) a namespace that cannot exist, before it goes into a key.
pub fn check_namespace(ns: &str) -> Result<(), ServerError> {
    nomos_api::names::check_namespace("namespace", ns).map_err(ServerError::BadRequest)
}

/// Finds one job's spec key by exact id or unique id prefix, whatever its value holds.
pub async fn locate_job(st: &AppState, ns: &str, id: &str) -> Result<FoundJob, ServerError> {
    check_namespace(ns)?;
    // Nomad names a periodic or dispatched child `<job>/periodic-<secs>`,
    // `<job>/dispatch-<...>`; here its id has a '-' for the '/' (ids cannot hold '/'), and
    // either spelling finds it.
    let id = &id
        .replacen("/periodic-", "-periodic-", 1)
        .replacen("/dispatch-", "-dispatch-", 1);
    nomos_api::names::check_segment("job id", id).map_err(ServerError::BadRequest)?;
    if let Some(kv) = kv::get_raw(st.store.as_ref(), &keys::job(ns, id)).await? {
        if let Some(found) = FoundJob::from_kv(kv) {
            return Ok(found);
        }
    }
    let resp = st
        .store
        .range(
            nomos_store::KeySelector::prefix(keys::jobs_prefix(Some(ns))),
            RangeOptions::default(),
        )
        .await?;
    let keyed: Vec<(String, KeyValue)> = resp
        .kvs
        .into_iter()
        .filter_map(|kv| split_job_key(&kv).map(|(_, i)| (i, kv)))
        .collect();
    let (_, kv) = kv::resolve_prefix(&keyed, id, "job", |(i, _)| i.as_str())?;
    FoundJob::from_kv(kv.clone())
        .ok_or_else(|| ServerError::NotFound(format!("job {id:?} not found")))
}

/// Finds one job by exact id or unique id prefix; its spec must be valid.
pub async fn find_job(st: &AppState, ns: &str, id: &str) -> Result<(Job, KeyValue), ServerError> {
    let found = locate_job(st, ns, id).await?;
    let job = found.valid_spec()?.clone();
    Ok((job, found.kv))
}

/// The job status the controllers wrote, if any.
pub async fn job_status(
    st: &AppState,
    ns: &str,
    id: &str,
) -> Result<Option<JobStatus>, ServerError> {
    Ok(
        kv::get_json::<JobStatus>(st.store.as_ref(), &keys::job_status(ns, id))
            .await?
            .map(|e| e.value),
    )
}

/// Every stored version of a job, oldest first.
pub async fn job_versions(
    st: &AppState,
    ns: &str,
    id: &str,
) -> Result<Vec<JobVersionView>, ServerError> {
    let entries: Vec<Entry<Value>> =
        kv::list_json(st.store.as_ref(), &keys::job_versions_prefix(ns, id)).await?;
    let status = job_status(st, ns, id).await?;
    let stable = status.as_ref().and_then(|s| s.stable_version);
    let submitted = status.map(|s| s.submit_times_ns).unwrap_or_default();
    let marks = stability_marks(st, ns, id).await?;
    let mut out = Vec::new();
    for e in entries {
        let Some(version) = e.key.rsplit('/').next().and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        out.push(JobVersionView {
            version,
            job: version_job(&e.value),
            stable: marks
                .as_ref()
                .map_or(stable == Some(version), |m| m.is_stable(version, stable)),
            submit_time_ns: submitted.get(&version).copied().unwrap_or(0),
            raw: e.value,
            modify_index: e.mod_revision,
        });
    }
    out.sort_by_key(|v| v.version);
    Ok(out)
}

/// The job's versions marked stable or not by hand (`PUT /v1/job/{id}/stable`), if any.
pub async fn stability_marks(
    st: &AppState,
    ns: &str,
    id: &str,
) -> Result<Option<StabilityMarks>, ServerError> {
    let entry = kv::get_json(st.store.as_ref(), &keys::job_stability(ns, id)).await?;
    Ok(entry.map(|e: Entry<StabilityMarks>| e.value))
}

/// The job in a stored version: the job itself, or under `job` or `spec`.
pub fn version_job(value: &Value) -> Option<Job> {
    serde_json::from_value::<Job>(value.clone())
        .ok()
        .or_else(|| {
            value
                .get("job")
                .and_then(|j| serde_json::from_value(j.clone()).ok())
        })
        .or_else(|| {
            value
                .get("spec")
                .and_then(|j| serde_json::from_value(j.clone()).ok())
        })
}

/// The newest accepted version that decodes, with its number.
pub async fn latest_accepted(
    st: &AppState,
    ns: &str,
    id: &str,
) -> Result<Option<(u64, Job)>, ServerError> {
    let versions = job_versions(st, ns, id).await?;
    Ok(versions
        .into_iter()
        .rev()
        .find_map(|v| v.job.map(|job| (v.version, job))))
}

/// What runs for a found job: its spec when valid; else the latest accepted version, with the
/// spec's errors. A job that never had an accepted version runs nothing: it is shown by its id
/// alone.
pub async fn running_job(
    st: &AppState,
    found: &FoundJob,
) -> Result<(Job, Option<InvalidSpec>), ServerError> {
    let errors = match &found.spec {
        Ok(job) => return Ok((job.clone(), None)),
        Err(errors) => errors.clone(),
    };
    let accepted = latest_accepted(st, &found.namespace, &found.id).await?;
    let running_version = accepted.as_ref().map(|(v, _)| *v);
    let job = accepted.map(|(_, job)| job).unwrap_or_else(|| Job {
        id: found.id.clone(),
        name: found.id.clone(),
        namespace: found.namespace.clone(),
        ..Job::default()
    });
    Ok((
        job,
        Some(InvalidSpec {
            errors,
            running_version,
        }),
    ))
}
