//! `nctl apply -f FILE|DIR|- [-R] [--wait] [--check-index N]` and `nctl plan -f FILE`.
//!
//! Files are parsed locally first, so errors print as `FILE:LINE:COL: message` before anything
//! is sent; the server parses them again (it is the authority) and writes the specs. `--wait`
//! follows the rollout: allocations placed and running (healthy) for each group, or complete for
//! batch jobs. It ends early, each with its own exit code ([`Verdict::exit_code`]), when a group
//! cannot be placed (2, as in Nomad), when the applied version's deployment fails (3) or waits
//! for its canaries to be promoted (4); allocations that fail and the timeout exit 1.
//!
//! `plan` exits as Nomad's `job plan` does: 0 when no allocation would be created, stopped or
//! replaced (even if the spec changes), 1 when some would, 255 on an error ([`plan_exit_code`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use nomos_api::nomad_out::{job_to_nomad, JobMeta};
use nomos_api::ParseOptions;
use nomos_api::{deployment_status, Deployment, Job, JobStatus, JobType};
use nomos_server::diff::Change;
use nomos_server::nomad::allocs::AllocStub;
use nomos_server::nomad::job_plan::{plan_result_from_nomad, PlanRequest};
use nomos_server::nomad::job_writes::{RegisterRequest, RegisterResponse, Submission};
use nomos_server::views::*;

use super::client::{ApiError, Client};
use super::Global;

#[derive(Debug, clap::Args)]
#[command(after_help = WAIT_EXIT_CODES_HELP)]
pub struct ApplyArgs {
    /// A job file, a directory of job files, or `-` for stdin (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Recurse into subdirectories of a directory.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Follow the rollout until it completes, fails, cannot be placed or waits for promotion
    /// (each has its own exit code, listed below).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (seconds).
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Only apply if the job's modify index equals N (0: the job must not exist).
    #[arg(long)]
    pub check_index: Option<i64>,
    #[command(flatten)]
    pub vars: super::jobvars::VarArgs,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The job file (or `-` for stdin).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    #[command(flatten)]
    pub vars: super::jobvars::VarArgs,
}

/// One job file to send.
struct Source {
    name: String,
    text: String,
}

fn is_job_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    [".hcl", ".nomad", ".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

fn collect_dir(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if recursive {
                collect_dir(&p, recursive, out)?;
            }
        } else if is_job_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

fn read_sources(files: &[String], recursive: bool) -> anyhow::Result<Vec<Source>> {
    let mut out = Vec::new();
    for f in files {
        if f == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            out.push(Source {
                name: "<stdin>".into(),
                text,
            });
            continue;
        }
        let path = PathBuf::from(f);
        let mut paths = Vec::new();
        if path.is_dir() {
            collect_dir(&path, recursive, &mut paths)?;
            if paths.is_empty() {
                anyhow::bail!(
                    "{f}: no job files (.hcl, .nomad, .yaml, .yml, .json) in the directory"
                );
            }
        } else {
            paths.push(path);
        }
        for p in paths {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            out.push(Source {
                name: p.display().to_string(),
                text,
            });
        }
    }
    Ok(out)
}

/// Parses every source locally and prints its diagnostics. Returns each valid source's jobs
/// (by the source's position), or `None` when some source is invalid.
fn check_locally(sources: &[Source], base: &ParseOptions) -> Option<Vec<(usize, Job)>> {
    let mut ok = true;
    let mut jobs = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let options = ParseOptions {
            base_dir: Path::new(&s.name).parent().map(Path::to_path_buf),
            ..base.clone()
        };
        match nomos_api::parse_source(&s.name, &s.text, &options) {
            Ok(parsed) => {
                for w in parsed.warnings {
                    eprintln!("{w}");
                }
                jobs.extend(parsed.jobs.into_iter().map(|j| (i, j)));
            }
            Err(diags) => {
                ok = false;
                for d in diags {
                    eprintln!("{d}");
                }
            }
        }
    }
    ok.then_some(jobs)
}

/// The format a submission names for a file: `json`, `yaml` (Nomos's manifests) or `hcl2`.
fn submission_format(name: &str) -> &'static str {
    if name.ends_with(".json") {
        "json"
    } else if name.ends_with(".yaml") || name.ends_with(".yml") {
        "yaml"
    } else {
        "hcl2"
    }
}

/// The register request of one job parsed from `s`: Nomad's JSON job with the file's text as
/// its submission; `check_index` enforces the job modify index.
fn register_request(
    job: &Job,
    s: &Source,
    vars: &super::jobvars::VarArgs,
    check_index: Option<i64>,
) -> RegisterRequest {
    let flags: IndexMap<String, String> = vars.pairs().unwrap_or_default().into_iter().collect();
    RegisterRequest {
        job: job_to_nomad(job, &JobMeta::default()),
        enforce_index: check_index.is_some(),
        job_modify_index: check_index.unwrap_or(0),
        submission: Some(Submission {
            source: s.text.clone(),
            format: submission_format(&s.name).to_string(),
            variable_flags: (!flags.is_empty()).then_some(flags),
            variables: vars.var_file_text(),
        }),
        ..RegisterRequest::default()
    }
}

/// Prints an API error; job-file errors as `FILE:LINE:COL` lines.
pub fn report_error(e: &anyhow::Error) {
    match e.downcast_ref::<ApiError>() {
        Some(api) => eprintln!("{api}"),
        None => eprintln!("Error: {e:#}"),
    }
}

/// `nctl apply`.
pub async fn apply(g: &Global, args: ApplyArgs) -> anyhow::Result<i32> {
    let sources = read_sources(&args.files, args.recursive)?;
    let options = args.vars.options(&g.namespace)?;
    let Some(jobs) = check_locally(&sources, &options) else {
        return Ok(1);
    };
    let client = Client::new(g);
    let mut applied = Vec::new();
    for (i, job) in &jobs {
        let body = register_request(job, &sources[*i], &args.vars, args.check_index);
        // The job's namespace (the file's, else `-n`) also in the query, as Nomad's CLI sends it.
        let path = format!(
            "/v1/jobs?namespace={}",
            super::client::escape(&job.namespace)
        );
        let r: RegisterResponse = match client.post(&path, &body).await {
            Ok(r) => r,
            Err(e) => {
                report_error(&e);
                return Ok(1);
            }
        };
        print_result(&r);
        applied.push(r);
    }
    if !args.wait {
        return Ok(0);
    }
    // Every job is followed to its end; the first that did not complete sets the exit code.
    let mut code = EXIT_DONE;
    for r in &applied {
        let mut c = client.clone();
        c.namespace = r.namespace.clone();
        let timeout = Duration::from_secs(args.timeout);
        let ended = wait_for_rollout(&c, &r.job_id, r.job_modify_index, timeout).await?;
        if code == EXIT_DONE {
            code = ended;
        }
    }
    Ok(code)
}

fn print_result(r: &RegisterResponse) {
    println!(
        "job \"{}\" {} (modify index {})",
        r.job_id, r.outcome, r.job_modify_index
    );
    if r.outcome == "updated" {
        print_changes(&r.changes);
    }
}

fn print_changes(changes: &[Change]) {
    for c in changes {
        println!("  {c}");
    }
}

/// `nctl plan`'s exit code (Nomad's rule): 1 when the controllers' decision creates or stops
/// allocations in any group (placements that would fail count: the controller keeps trying),
/// else 0. An in-place update, or a spec change that moves nothing, is 0; an unchanged job
/// below its count is 1 (the missing allocations would be placed).
fn plan_exit_code(results: &[PlanResult]) -> i32 {
    let changes = results
        .iter()
        .flat_map(|p| &p.groups)
        .any(PlanGroup::creates_or_stops);
    i32::from(changes)
}

/// A group's buckets as Nomad's plan prints them: `(2 create, 1 destroy, 3 in-place update)`.
fn bucket_summary(g: &PlanGroup) -> String {
    let parts: Vec<String> = [
        (g.place, "create"),
        (g.canary, "canary"),
        (g.destructive, "create/destroy update"),
        (g.inplace, "in-place update"),
        (g.migrate, "migrate"),
        (g.reschedule, "reschedule"),
        (g.stop, "destroy"),
        (g.failed, "cannot be placed"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "no change".into()
    } else {
        parts.join(", ")
    }
}

/// `nctl plan`: exit 0 when no allocation would change, 1 when some would, 255 on error.
pub async fn plan(g: &Global, args: PlanArgs) -> anyhow::Result<i32> {
    let sources = match read_sources(&args.files, args.recursive) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e:#}");
            return Ok(255);
        }
    };
    let options = match args.vars.options(&g.namespace) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("Error: {e:#}");
            return Ok(255);
        }
    };
    let Some(jobs) = check_locally(&sources, &options) else {
        return Ok(255);
    };
    let client = Client::new(g);
    let mut results = Vec::new();
    for (i, job) in &jobs {
        let p = match plan_one(&client, job).await {
            Ok(p) => p,
            Err(e) => {
                report_error(&e);
                return Ok(255);
            }
        };
        print_plan(&p, &sources[*i].name);
        results.push(p);
    }
    Ok(plan_exit_code(&results))
}

/// Plans one job parsed from a file: `PUT /v1/job/{id}/plan` with Nomad's JSON job.
async fn plan_one(client: &Client, job: &Job) -> anyhow::Result<PlanResult> {
    let body = PlanRequest {
        job: job_to_nomad(job, &JobMeta::default()),
        diff: true,
        ..PlanRequest::default()
    };
    let path = format!(
        "/v1/job/{}/plan?namespace={}",
        super::client::escape(&job.id),
        super::client::escape(&job.namespace)
    );
    let answer: serde_json::Value = client.post(&path, &body).await?;
    plan_result_from_nomad(&answer).map_err(anyhow::Error::msg)
}

fn print_plan(p: &PlanResult, file: &str) {
    let sign = match p.outcome {
        ApplyOutcome::Created => "+",
        ApplyOutcome::Updated => "+/-",
        ApplyOutcome::Unchanged => "",
    };
    println!("{sign} Job: \"{}\"", p.id);
    if p.outcome == ApplyOutcome::Updated {
        print_changes(&p.changes);
    }
    if p.outcome != ApplyOutcome::Unchanged || p.version > 0 {
        println!("  Version: {}", p.version);
    }
    if let Some(note) = &p.note {
        println!("  Note: {note}");
    }
    for grp in &p.groups {
        println!(
            "  Task Group \"{}\" ({}; count {}, {} running now)",
            grp.name,
            bucket_summary(grp),
            grp.count,
            grp.existing
        );
        if !grp.placements.is_empty() {
            let on: Vec<String> = grp
                .placements
                .iter()
                .map(|(n, c)| format!("{n}×{c}"))
                .collect();
            println!("    Placed on: {}", on.join(", "));
        }
        if let Some(why) = &grp.placement_failure {
            println!("    WARNING: failed to place all allocations: {why}");
        }
    }
    println!();
    println!("Job Modify Index: {}", p.modify_index);
    println!(
        "To submit only this version: nctl apply --check-index {} -f {file}",
        p.modify_index
    );
}

/// Per-group counts of one version's allocations.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Progress {
    placed: u32,
    running: u32,
    healthy: u32,
    complete: u32,
    failed: u32,
}

/// `--wait`: the rollout completed (or the stopped job's allocations ended).
pub const EXIT_DONE: i32 = 0;
/// `--wait`: an error, allocations failed, the deployment was cancelled, or the timeout passed.
pub const EXIT_FAILED: i32 = 1;
/// `--wait`: some task group could not be placed (Nomad's code for placement failures).
pub const EXIT_PLACEMENT_FAILED: i32 = 2;
/// `--wait`: the deployment of the applied version failed.
pub const EXIT_DEPLOYMENT_FAILED: i32 = 3;
/// `--wait`: the deployment of the applied version waits for its canaries to be promoted.
pub const EXIT_NEEDS_PROMOTION: i32 = 4;

/// The exit codes, as `nctl apply --help` lists them (a test checks it against the constants).
pub const WAIT_EXIT_CODES_HELP: &str = "\
Exit codes with --wait (without it: 0 written, 1 error):
  0  the rollout completed (a batch job: its allocations completed)
  1  an error, allocations failed, the deployment was cancelled, or --timeout passed
  2  a task group could not be placed (the reasons are printed), as in Nomad
  3  the deployment of the applied version failed (its description is printed)
  4  the deployment waits for its canaries to be promoted (the groups and the
     `nctl deployment promote <ID>` to run are printed)";

/// What `--wait` concludes from one look at the cluster (pure, so it is table-tested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is decided yet.
    Waiting,
    Done,
    /// Allocations failed, or the deployment was cancelled.
    Failed(String),
    /// Groups that could not be placed, with the scheduler's reasons.
    PlacementFailed(Vec<(String, String)>),
    /// The applied version's deployment failed: its ID and description.
    DeploymentFailed {
        id: String,
        description: String,
    },
    /// The applied version's deployment waits for a user to promote these groups' canaries.
    NeedsPromotion {
        id: String,
        groups: Vec<String>,
    },
}

impl Verdict {
    /// The process's exit code for a verdict that ends the wait; `None` while waiting.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Verdict::Waiting => None,
            Verdict::Done => Some(EXIT_DONE),
            Verdict::Failed(_) => Some(EXIT_FAILED),
            Verdict::PlacementFailed(_) => Some(EXIT_PLACEMENT_FAILED),
            Verdict::DeploymentFailed { .. } => Some(EXIT_DEPLOYMENT_FAILED),
            Verdict::NeedsPromotion { .. } => Some(EXIT_NEEDS_PROMOTION),
        }
    }
}

/// What the job status and the applied version's deployment alone decide: a failed
/// deployment, placement failures, a deployment waiting for promotion, or a successful one
/// (`Done`); `Waiting` when they decide nothing.
pub fn status_verdict(status: &JobStatus, deployment: Option<&Deployment>) -> Verdict {
    if let Some(d) = deployment.filter(|d| d.status == deployment_status::FAILED) {
        return Verdict::DeploymentFailed {
            id: d.id.clone(),
            description: d.status_description.clone(),
        };
    }
    if !status.placement_failures.is_empty() {
        return Verdict::PlacementFailed(
            status
                .placement_failures
                .iter()
                .map(|(g, why)| (g.clone(), why.clone()))
                .collect(),
        );
    }
    let Some(d) = deployment else {
        return Verdict::Waiting;
    };
    if d.status == deployment_status::CANCELLED {
        return Verdict::Failed(format!(
            "deployment {} cancelled: {}",
            d.id, d.status_description
        ));
    }
    if d.waits_for_promotion() {
        return Verdict::NeedsPromotion {
            id: d.id.clone(),
            groups: d
                .groups
                .iter()
                .filter(|(_, g)| g.waits_for_promotion())
                .map(|(name, _)| name.clone())
                .collect(),
        };
    }
    if d.status == deployment_status::SUCCESSFUL {
        Verdict::Done
    } else {
        Verdict::Waiting
    }
}

/// Per-group progress of `version`'s allocations.
fn progress_of(
    detail: &JobDetail,
    version: u64,
    allocs: &[AllocStub],
) -> BTreeMap<String, Progress> {
    let mut progress: BTreeMap<String, Progress> = BTreeMap::new();
    for g in &detail.job.groups {
        progress.insert(g.name.clone(), Progress::default());
    }
    for a in allocs.iter().filter(|a| a.job_version == version) {
        let p = progress.entry(a.task_group.clone()).or_default();
        if a.desired_status != "run" {
            continue;
        }
        p.placed += 1;
        match a.client_status.as_str() {
            "running" => {
                p.running += 1;
                if a.healthy() == Some(true) {
                    p.healthy += 1;
                }
            }
            "complete" => p.complete += 1,
            "failed" | "lost" => p.failed += 1,
            _ => {}
        }
    }
    progress
}

/// What the allocations of `version` decide: failed, every group healthy (complete for batch
/// jobs) with no older version left running, or still waiting.
fn allocs_verdict(
    detail: &JobDetail,
    version: u64,
    allocs: &[AllocStub],
    progress: &BTreeMap<String, Progress>,
) -> Verdict {
    let job = &detail.job;
    let live_other = allocs
        .iter()
        .any(|a| a.job_version != version && a.desired_status == "run" && !a.is_terminal());
    let batch = matches!(job.job_type, JobType::Batch | JobType::Sysbatch);
    let mut all_done = true;
    for g in &job.groups {
        let p = progress.get(&g.name).cloned().unwrap_or_default();
        if g.count > 0 && p.failed >= g.count {
            return Verdict::Failed(format!(
                "group {:?}: {} allocation(s) failed",
                g.name, p.failed
            ));
        }
        all_done &= if batch {
            p.complete >= g.count
        } else {
            p.healthy >= g.count
        };
    }
    if all_done && (batch || !live_other) {
        Verdict::Done
    } else {
        Verdict::Waiting
    }
}

/// Decides whether the rollout of `version` (the version the apply produced) finished, ended
/// early, or is still going.
fn verdict(
    detail: &JobDetail,
    version: u64,
    allocs: &[AllocStub],
    deployments: &[DeploymentView],
) -> (Verdict, BTreeMap<String, Progress>) {
    let progress = progress_of(detail, version, allocs);
    if detail.job.stop {
        let running = allocs.iter().any(|a| !a.is_terminal() && a.reported());
        let v = if running {
            Verdict::Waiting
        } else {
            Verdict::Done
        };
        return (v, progress);
    }
    let deployment = deployments
        .iter()
        .map(|d| &d.deployment)
        .find(|d| d.job_version == version);
    let status = detail.status.clone().unwrap_or_default();
    match status_verdict(&status, deployment) {
        // A successful deployment is done once no older version is left running, which the
        // allocations tell.
        Verdict::Waiting | Verdict::Done => {}
        ended => return (ended, progress),
    }
    let v = allocs_verdict(detail, version, allocs, &progress);
    (v, progress)
}

/// One progress line: per group, placed and healthy (complete for batch jobs) of the count,
/// and the placement failures.
fn progress_line(detail: &JobDetail, progress: &BTreeMap<String, Progress>) -> String {
    let batch = matches!(detail.job.job_type, JobType::Batch | JobType::Sysbatch);
    let groups: Vec<String> = progress
        .iter()
        .map(|(g, p)| {
            let count = detail
                .job
                .groups
                .iter()
                .find(|x| &x.name == g)
                .map(|x| x.count)
                .unwrap_or(0);
            if batch {
                format!(
                    "{g}: placed {}/{count}, complete {}/{count}",
                    p.placed, p.complete
                )
            } else {
                format!(
                    "{g}: placed {}/{count}, healthy {}/{count}",
                    p.placed, p.healthy
                )
            }
        })
        .collect();
    let mut line = groups.join("; ");
    if let Some(s) = &detail.status {
        for (g, why) in &s.placement_failures {
            line.push_str(&format!(" [{g}: {why}]"));
        }
    }
    line
}

/// Prints how a wait ended.
fn report_verdict(id: &str, v: &Verdict) {
    match v {
        Verdict::Waiting => {}
        Verdict::Done => println!("==> {id}: rollout complete"),
        Verdict::Failed(why) => eprintln!("==> {id}: rollout failed: {why}"),
        Verdict::PlacementFailed(groups) => {
            for (g, why) in groups {
                eprintln!("==> {id}: task group {g:?} could not be placed: {why}");
            }
            eprintln!("==> {id}: placement failed; nothing more will be placed until the cluster or the job changes");
        }
        Verdict::DeploymentFailed { id: d, description } => {
            eprintln!("==> {id}: deployment {d} failed: {description}");
        }
        Verdict::NeedsPromotion { id: d, groups } => {
            let names: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
            println!(
                "==> {id}: deployment {d} is waiting for promotion: the canaries of task group(s) {} are healthy",
                names.join(", ")
            );
            println!("==> {id}: to promote them, run: nctl deployment promote {d}");
        }
    }
}

/// Follows one job until its rollout ends; prints progress lines as they change and returns
/// the exit code ([`Verdict::exit_code`], or [`EXIT_FAILED`] after `timeout`).
pub async fn wait_for_rollout(
    client: &Client,
    id: &str,
    modify_index: i64,
    timeout: Duration,
) -> anyhow::Result<i32> {
    let start = Instant::now();
    let mut last = String::new();
    // The version the apply produced, fixed at the first look that observed the write: a
    // later version (an auto_revert's) must not stand in for it.
    let mut applied_version: Option<u64> = None;
    loop {
        let raw: serde_json::Value = client.get(&client.job_path(id, "")).await?;
        let detail = JobDetail::from_nomad(&raw).map_err(anyhow::Error::msg)?;
        let status = detail.status.clone().unwrap_or_default();
        if status.observed_revision >= modify_index {
            // (`spec_version`: the version this spec became, even when an auto_revert wrote a
            // newer one before the first look.)
            let version =
                *applied_version.get_or_insert(status.spec_version.unwrap_or(status.version));
            let allocs: Vec<AllocStub> = client.get(&client.job_path(id, "/allocations")).await?;
            let deployments = super::deployment::job_deployments(client, id).await?;
            let (v, progress) = verdict(&detail, version, &allocs, &deployments);
            let line = progress_line(&detail, &progress);
            if line != last {
                println!("==> {id}: {line}");
                last = line;
            }
            report_verdict(id, &v);
            if let Some(code) = v.exit_code() {
                return Ok(code);
            }
        }
        if start.elapsed() > timeout {
            eprintln!(
                "==> {id}: rollout did not finish within {}s ({last})",
                timeout.as_secs()
            );
            return Ok(EXIT_FAILED);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::get::enum_str;
    use nomos_api::{ClientStatus, DeploymentGroup, Job, TaskGroup};
    use nomos_server::nomad::allocs::AllocDeploymentStatus;

    fn detail(kind: JobType, count: u32, version: u64) -> JobDetail {
        JobDetail {
            job: Job {
                id: "web".into(),
                job_type: kind,
                groups: vec![TaskGroup {
                    name: "g".into(),
                    count,
                    ..Default::default()
                }],
                ..Default::default()
            },
            modify_index: 5,
            status: Some(JobStatus {
                version,
                observed_revision: 5,
                ..Default::default()
            }),
            invalid_spec: None,
        }
    }

    /// A stub as the API answers it; a status means the agent reported (a task state).
    fn alloc(version: u64, status: Option<ClientStatus>) -> AllocStub {
        let mut stub = AllocStub {
            id: format!("a{version}"),
            job_id: "web".into(),
            job_version: version,
            task_group: "g".into(),
            desired_status: "run".into(),
            client_status: "pending".into(),
            ..Default::default()
        };
        if let Some(s) = status {
            stub.client_status = enum_str(&s);
            stub.task_states.insert("t".into(), Default::default());
            if s == ClientStatus::Running {
                stub.deployment_status = Some(AllocDeploymentStatus {
                    healthy: Some(true),
                    ..Default::default()
                });
            }
        }
        stub
    }

    #[test]
    fn verdict_table() {
        use ClientStatus::*;
        let dep = |v: u64, s: nomos_api::DeploymentState| DeploymentView {
            deployment: Deployment {
                id: "d".into(),
                job_version: v,
                status: s,
                ..Default::default()
            },
            modify_index: 1,
        };
        type Case = (
            &'static str,
            JobDetail,
            Vec<AllocStub>,
            Vec<DeploymentView>,
            Verdict,
        );
        let cases: Vec<Case> = vec![
            (
                "nothing placed yet",
                detail(JobType::Service, 2, 0),
                vec![],
                vec![],
                Verdict::Waiting,
            ),
            (
                "all running",
                detail(JobType::Service, 2, 0),
                vec![alloc(0, Some(Running)), alloc(0, Some(Running))],
                vec![],
                Verdict::Done,
            ),
            (
                "old version still running",
                detail(JobType::Service, 1, 1),
                vec![alloc(1, Some(Running)), alloc(0, Some(Running))],
                vec![],
                Verdict::Waiting,
            ),
            (
                "deployment failed",
                detail(JobType::Service, 1, 1),
                vec![alloc(1, Some(Pending))],
                vec![dep(1, nomos_api::deployment_status::FAILED)],
                Verdict::DeploymentFailed {
                    id: "d".into(),
                    description: String::new(),
                },
            ),
            (
                "an older version's deployment failed: not this one's",
                detail(JobType::Service, 1, 1),
                vec![alloc(1, Some(Running))],
                vec![dep(0, nomos_api::deployment_status::FAILED)],
                Verdict::Done,
            ),
            (
                "deployment successful but an old allocation still runs",
                detail(JobType::Service, 1, 1),
                vec![alloc(1, Some(Running)), alloc(0, Some(Running))],
                vec![dep(1, nomos_api::deployment_status::SUCCESSFUL)],
                Verdict::Waiting,
            ),
            (
                "batch complete",
                detail(JobType::Batch, 1, 0),
                vec![alloc(0, Some(Complete))],
                vec![],
                Verdict::Done,
            ),
            (
                "batch failed",
                detail(JobType::Batch, 1, 0),
                vec![alloc(0, Some(Failed))],
                vec![],
                Verdict::Failed("group \"g\": 1 allocation(s) failed".into()),
            ),
        ];
        for (name, d, allocs, deps, want) in cases {
            let version = d.status.as_ref().map(|s| s.version).unwrap_or(0);
            assert_eq!(verdict(&d, version, &allocs, &deps).0, want, "{name}");
        }
    }

    #[test]
    fn the_applied_version_is_judged_even_after_a_newer_one_appeared() {
        // An auto_revert wrote version 2 after version 1's deployment failed: the wait for
        // version 1 still reports that failure.
        let d = detail(JobType::Service, 1, 2);
        let failed = DeploymentView {
            deployment: Deployment {
                id: "web-v1".into(),
                job_version: 1,
                status: deployment_status::FAILED,
                status_description: deployment_status::rolling_back(
                    deployment_status::DESC_UNHEALTHY,
                    0,
                ),
                ..Default::default()
            },
            modify_index: 1,
        };
        let (v, _) = verdict(&d, 1, &[alloc(2, Some(ClientStatus::Running))], &[failed]);
        assert_eq!(v.exit_code(), Some(EXIT_DEPLOYMENT_FAILED), "{v:?}");
    }

    fn canary_group(placed: usize, healthy: u32, promoted: bool) -> DeploymentGroup {
        DeploymentGroup {
            desired_total: 2,
            desired_canaries: 1,
            placed_canaries: (0..placed).map(|i| format!("c{i}")).collect(),
            placed: placed as u32,
            healthy,
            promoted,
            ..Default::default()
        }
    }

    fn deployment_with(
        status: nomos_api::DeploymentState,
        description: &str,
        g: DeploymentGroup,
    ) -> Deployment {
        let mut d = Deployment {
            id: "web-v1".into(),
            job_version: 1,
            status,
            status_description: description.into(),
            ..Default::default()
        };
        d.groups.insert("api".into(), g);
        d
    }

    #[test]
    fn status_verdict_table() {
        use deployment_status as ds;
        let failures = JobStatus {
            placement_failures: [(
                "api".to_string(),
                "no node has 64 GiB of memory".to_string(),
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let clean = JobStatus::default();
        let plain = DeploymentGroup {
            desired_total: 2,
            placed: 1,
            ..Default::default()
        };
        // (case, job status, the applied version's deployment, verdict, exit code)
        type Case<'a> = (
            &'a str,
            &'a JobStatus,
            Option<Deployment>,
            Verdict,
            Option<i32>,
        );
        let cases: Vec<Case> = vec![
            ("nothing known yet", &clean, None, Verdict::Waiting, None),
            (
                "placement failed, no deployment",
                &failures,
                None,
                Verdict::PlacementFailed(vec![(
                    "api".into(),
                    "no node has 64 GiB of memory".into(),
                )]),
                Some(2),
            ),
            (
                "placement failed during a deployment",
                &failures,
                Some(deployment_with(
                    ds::RUNNING,
                    ds::DESC_RUNNING,
                    plain.clone(),
                )),
                Verdict::PlacementFailed(vec![(
                    "api".into(),
                    "no node has 64 GiB of memory".into(),
                )]),
                Some(2),
            ),
            (
                "deployment running",
                &clean,
                Some(deployment_with(
                    ds::RUNNING,
                    ds::DESC_RUNNING,
                    plain.clone(),
                )),
                Verdict::Waiting,
                None,
            ),
            (
                "deployment paused",
                &clean,
                Some(deployment_with(
                    ds::PAUSED,
                    ds::DESC_PAUSED,
                    canary_group(1, 1, false),
                )),
                Verdict::NeedsPromotion {
                    id: "web-v1".into(),
                    groups: vec!["api".into()],
                },
                Some(4),
            ),
            (
                "canary placed, not healthy yet",
                &clean,
                Some(deployment_with(
                    ds::RUNNING,
                    ds::DESC_RUNNING,
                    canary_group(1, 0, false),
                )),
                Verdict::Waiting,
                None,
            ),
            (
                "canary healthy, waiting for promotion",
                &clean,
                Some(deployment_with(
                    ds::RUNNING,
                    ds::DESC_NEEDS_PROMOTION,
                    canary_group(1, 1, false),
                )),
                Verdict::NeedsPromotion {
                    id: "web-v1".into(),
                    groups: vec!["api".into()],
                },
                Some(4),
            ),
            (
                "canary promoted, rolling on",
                &clean,
                Some(deployment_with(
                    ds::RUNNING,
                    ds::DESC_RUNNING,
                    canary_group(1, 1, true),
                )),
                Verdict::Waiting,
                None,
            ),
            (
                "deployment failed: its description",
                &failures,
                Some(deployment_with(
                    ds::FAILED,
                    ds::DESC_PROGRESS_DEADLINE,
                    plain.clone(),
                )),
                Verdict::DeploymentFailed {
                    id: "web-v1".into(),
                    description: ds::DESC_PROGRESS_DEADLINE.into(),
                },
                Some(3),
            ),
            (
                "deployment failed by the user",
                &clean,
                Some(deployment_with(
                    ds::FAILED,
                    ds::DESC_FAILED_BY_USER,
                    canary_group(1, 1, false),
                )),
                Verdict::DeploymentFailed {
                    id: "web-v1".into(),
                    description: ds::DESC_FAILED_BY_USER.into(),
                },
                Some(3),
            ),
            (
                "deployment cancelled",
                &clean,
                Some(deployment_with(
                    ds::CANCELLED,
                    ds::DESC_NEWER_JOB,
                    plain.clone(),
                )),
                Verdict::Failed(format!(
                    "deployment web-v1 cancelled: {}",
                    ds::DESC_NEWER_JOB
                )),
                Some(1),
            ),
            (
                "deployment successful",
                &clean,
                Some(deployment_with(
                    ds::SUCCESSFUL,
                    ds::DESC_SUCCESSFUL,
                    plain.clone(),
                )),
                Verdict::Done,
                Some(0),
            ),
        ];
        for (name, status, deployment, want, code) in cases {
            let got = status_verdict(status, deployment.as_ref());
            assert_eq!(got, want, "{name}");
            assert_eq!(got.exit_code(), code, "{name}");
        }
    }

    #[test]
    fn apply_help_lists_every_wait_exit_code() {
        use clap::CommandFactory;
        let mut cli = crate::cmd::Cli::command();
        let help = cli
            .find_subcommand_mut("apply")
            .expect("apply")
            .render_long_help()
            .to_string();
        for code in [
            EXIT_DONE,
            EXIT_FAILED,
            EXIT_PLACEMENT_FAILED,
            EXIT_DEPLOYMENT_FAILED,
            EXIT_NEEDS_PROMOTION,
        ] {
            assert!(
                help.contains(&format!("\n  {code}  ")),
                "exit code {code}: {help}"
            );
        }
        assert!(help.contains("nctl deployment promote"), "{help}");
    }

    fn group(count: u32, existing: u32) -> PlanGroup {
        PlanGroup {
            name: "g".into(),
            count,
            existing,
            place: 0,
            canary: 0,
            inplace: 0,
            destructive: 0,
            migrate: 0,
            reschedule: 0,
            stop: 0,
            failed: 0,
            placement_failure: None,
            placements: Default::default(),
        }
    }

    fn result(outcome: ApplyOutcome, groups: Vec<PlanGroup>) -> PlanResult {
        PlanResult {
            namespace: "default".into(),
            id: "web".into(),
            outcome,
            changes: vec![],
            modify_index: 7,
            version: 0,
            note: None,
            groups,
        }
    }

    #[test]
    fn plan_exit_code_table() {
        use ApplyOutcome::*;
        let failed = PlanGroup {
            failed: 2,
            placement_failure: Some("no node has enough memory".into()),
            ..group(2, 0)
        };
        let cases: Vec<(&str, Vec<PlanResult>, i32)> = vec![
            (
                "unchanged job at its count",
                vec![result(Unchanged, vec![group(2, 2)])],
                0,
            ),
            (
                "spec changed, no allocation moves",
                vec![result(Updated, vec![group(2, 2)])],
                0,
            ),
            (
                "in-place update only",
                vec![result(
                    Updated,
                    vec![PlanGroup {
                        inplace: 2,
                        ..group(2, 2)
                    }],
                )],
                0,
            ),
            ("nothing to plan", vec![], 0),
            (
                "unchanged job below its count",
                vec![result(
                    Unchanged,
                    vec![PlanGroup {
                        place: 1,
                        ..group(3, 2)
                    }],
                )],
                1,
            ),
            (
                "new job",
                vec![result(
                    Created,
                    vec![PlanGroup {
                        place: 2,
                        ..group(2, 0)
                    }],
                )],
                1,
            ),
            (
                "new job that cannot be placed",
                vec![result(Created, vec![failed])],
                1,
            ),
            (
                "count lowered",
                vec![result(
                    Updated,
                    vec![PlanGroup {
                        stop: 2,
                        ..group(1, 3)
                    }],
                )],
                1,
            ),
            (
                "destructive update",
                vec![result(
                    Updated,
                    vec![PlanGroup {
                        destructive: 1,
                        ..group(2, 2)
                    }],
                )],
                1,
            ),
            (
                "canary",
                vec![result(
                    Updated,
                    vec![PlanGroup {
                        canary: 1,
                        ..group(2, 2)
                    }],
                )],
                1,
            ),
            (
                "one of several jobs changes",
                vec![
                    result(Unchanged, vec![group(1, 1)]),
                    result(
                        Created,
                        vec![PlanGroup {
                            place: 1,
                            ..group(1, 0)
                        }],
                    ),
                ],
                1,
            ),
        ];
        for (name, results, want) in cases {
            assert_eq!(plan_exit_code(&results), want, "{name}");
        }
    }

    #[test]
    fn bucket_summaries_name_each_nonempty_bucket_in_nomads_words() {
        assert_eq!(bucket_summary(&group(2, 2)), "no change");
        let g = PlanGroup {
            place: 1,
            destructive: 2,
            stop: 1,
            failed: 3,
            ..group(3, 3)
        };
        assert_eq!(
            bucket_summary(&g),
            "1 create, 2 create/destroy update, 1 destroy, 3 cannot be placed"
        );
    }
}
