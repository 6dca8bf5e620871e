//! Deployments driven the way Nomad users work them, against a real `nctl dev`:
//! `nctl apply --wait` ends early with its own exit code when a group cannot be placed (2) or
//! when a canary deployment waits for promotion (4, printing the command to run); `nctl
//! deployment promote` completes the rollout; `pause`, `resume` and `fail` act on a running
//! deployment; and every table shows deployment IDs in full.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

mod common;

use common::*;

const WAIT: Duration = Duration::from_secs(90);

/// `nctl apply --wait`'s exit codes (see `nctl apply --help`).
const EXIT_PLACEMENT_FAILED: i32 = 2;
const EXIT_DEPLOYMENT_FAILED: i32 = 3;
const EXIT_NEEDS_PROMOTION: i32 = 4;

/// A service job of two copies whose update places one canary first; `word` goes into the
/// task's arguments, so changing it replaces the allocations.
fn canary_job(id: &str, word: &str) -> String {
    let settings = r#"count = 2

    update {
      canary           = 1
      max_parallel     = 1
      min_healthy_time = "1s"
      healthy_deadline = "1m"
    }"#;
    loop_job(id, "service", settings).replace("sleep 1", &format!("sleep 1; echo {word}"))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `Key = Value` lines of Nomad-style detail output (the first of each key).
fn kv(out: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (k, v) in out.lines().filter_map(|l| l.split_once(" = ")) {
        map.entry(k.trim().to_string())
            .or_insert_with(|| v.trim().to_string());
    }
    map
}

/// The row of `group` in the table under the line `section`, split on whitespace.
fn table_row(out: &str, section: &str, group: &str) -> Vec<String> {
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == section)
        .unwrap_or_else(|| panic!("a {section:?} section: {out}"));
    lines[at + 2..]
        .iter()
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cols| cols.first().map(String::as_str) == Some(group))
        .unwrap_or_else(|| panic!("a row for {group:?} under {section:?}: {out}"))
}

/// Runs `nctl ARGS`, expecting it to fail with exit code 1 and `message` on stderr.
fn refused(c: &Cluster, args: &[&str], message: &str) {
    let out = c.nctl(args);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "nctl {args:?} is refused:\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains(message),
        "nctl {args:?}: {message:?} in {stderr}"
    );
}

/// The deployment's status word, from `deployment status ID -o json`.
fn deployment_status(c: &Cluster, id: &str) -> String {
    c.json(&["deployment", "status", id, "-o", "json"])["Status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn deployment_verbs_against_a_dev_cluster() {
    let c = Cluster::start("deploy");
    a_job_that_cannot_be_placed_ends_the_wait_with_exit_2(&c);
    let id = a_canary_deployment_ends_the_wait_waiting_for_promotion(&c);
    promote_completes_the_deployment(&c, &id);
    pause_resume_and_fail_a_running_deployment(&c);
    a_failing_version_halts_at_one_allocation_and_reverts_with_exit_3(&c);
}

/// The bad deploy a user saw take a service to zero: count 3, `max_parallel = 1`, `auto_revert`,
/// and a new version whose task exits 1. The rollout stops at its first failed allocation, the
/// deployment fails (no reschedule attempts are left), the job reverts to the good spec, and
/// `apply --wait` says so with exit code 3. Two good copies run throughout.
fn a_failing_version_halts_at_one_allocation_and_reverts_with_exit_3(c: &Cluster) {
    let settings = r#"count = 3

    update {
      max_parallel      = 1
      min_healthy_time  = "3s"
      healthy_deadline  = "30s"
      progress_deadline = "1m"
      auto_revert       = true
    }

    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }"#;
    let good = loop_job("bad-deploy", "service", settings);
    let file = c.write_file("bad-deploy-v0.hcl", &good);
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    assert_eq!(c.running("bad-deploy").len(), 3);

    // It fails before `min_healthy_time`: it is never healthy.
    let bad = good.replace("while true; do sleep 1; done", "exit 1");
    let file = c.write_file("bad-deploy-v1.hcl", &bad);
    let out = c.nctl(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(EXIT_DEPLOYMENT_FAILED),
        "stdout: {stdout}\nstderr: {stderr}\nlog:\n{}",
        c.log_tail()
    );

    // One allocation of the bad version was ever placed, and one good one stopped for it.
    let allocs = c.allocs("bad-deploy");
    let of_version = |v: u64| allocs.iter().filter(|a| a["JobVersion"] == v).count();
    assert_eq!(of_version(1), 1, "{allocs:#?}");
    let rolled = allocs
        .iter()
        .filter(|a| a["DesiredDescription"] == "rolling update")
        .count();
    assert_eq!(rolled, 1, "{allocs:#?}");

    // The revert (version 2, the good spec) brings the third copy back.
    c.wait_for("three copies of the reverted version", WAIT, |c| {
        let running = c.running("bad-deploy");
        let reverted = running.iter().filter(|a| a["JobVersion"] == 2).count();
        (reverted == 3, format!("{running:#?}"))
    });
    // The failed deployment says what it did; the reverted version (which updates the good
    // allocations in place) rolls out under a deployment of its own, as in Nomad.
    let deployments = c.json(&["deployment", "list", "--job", "bad-deploy", "-o", "json"]);
    let of_job_version = |v: u64| {
        deployments
            .as_array()
            .expect("a list")
            .iter()
            .find(|d| d["JobVersion"] == v)
            .unwrap_or_else(|| panic!("no deployment of version {v}: {deployments:#}"))
    };
    let failed = of_job_version(1);
    assert_eq!(failed["Status"], "failed", "{failed:#}");
    let why = failed["StatusDescription"].as_str().unwrap_or_default();
    assert!(why.contains("rolling back to job version 0"), "{failed:#}");
    of_job_version(2);
    c.ok(&["stop", "bad-deploy", "--purge"]);
}

fn a_job_that_cannot_be_placed_ends_the_wait_with_exit_2(c: &Cluster) {
    // More memory than any machine has: the scheduler places nothing and says why. Running
    // into the timeout would exit 1: only the early end exits 2.
    let job = loop_job("huge", "service", "count = 1").replace("memory = 10", "memory = 4000000");
    let file = c.write_file("huge.hcl", &job);
    let out = c.nctl(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(EXIT_PLACEMENT_FAILED),
        "stdout: {stdout}\nstderr: {stderr}\nlog:\n{}",
        c.log_tail()
    );
    assert!(
        stderr.contains("task group \"g\" could not be placed: "),
        "the reason is printed: {stderr}"
    );
    let status = c.ok(&["status", "huge"]);
    assert!(status.contains("Placement Failure"), "{status}");
    c.ok(&["stop", "huge", "--purge"]);
}

/// Applies version 0 (no canaries for a first version), then version 1, whose canary becomes
/// healthy and waits; returns the deployment's ID, taken from the printed command.
fn a_canary_deployment_ends_the_wait_waiting_for_promotion(c: &Cluster) -> String {
    let v0 = c.write_file("canary-v0.hcl", &canary_job("canary", "zero"));
    c.ok(&["apply", "-f", &v0, "--wait", "--timeout", "120"]);

    let v1 = c.write_file("canary-v1.hcl", &canary_job("canary", "one"));
    let out = c.nctl(&["apply", "-f", &v1, "--wait", "--timeout", "120"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(EXIT_NEEDS_PROMOTION),
        "stdout: {stdout}\nstderr: {stderr}\nlog:\n{}",
        c.log_tail()
    );
    assert!(
        stdout.contains("waiting for promotion: the canaries of task group(s) \"g\" are healthy"),
        "{stdout}"
    );
    let id = stdout
        .lines()
        .find_map(|l| {
            l.split_once("run: nctl deployment promote ")
                .map(|(_, id)| id)
        })
        .unwrap_or_else(|| panic!("the command to run: {stdout}"))
        .trim()
        .to_string();
    // The full ID: job, version and the first 8 hex digits of the spec's hash.
    assert!(
        id.starts_with("canary-v1-") && id.len() == "canary-v1-".len() + 8,
        "the full ID: {stdout}"
    );

    // The listing, in full and only this job's.
    let list = c.ok(&["deployment", "list", "--job", "canary"]);
    let row = list
        .lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("{id} listed in full: {list}"));
    assert!(row.contains("running"), "{row}");
    for line in list.lines() {
        assert!(line.chars().count() <= 80, "{line:?}");
    }

    // deployment status and status JOB show the waiting group.
    let out = c.ok(&["deployment", "status", &id]);
    let details = kv(&out);
    assert_eq!(
        details.get("ID").map(String::as_str),
        Some(id.as_str()),
        "{out}"
    );
    assert_eq!(
        details.get("Status").map(String::as_str),
        Some("running"),
        "{out}"
    );
    assert_eq!(
        table_row(&out, "Deployed", "g"),
        ["g", "false", "2", "1/1", "1", "1", "0"],
        "promoted, desired, canaries, placed, healthy, unhealthy: {out}"
    );
    assert_eq!(
        table_row(&out, "Progress", "g")[1],
        "false",
        "auto revert: {out}"
    );
    assert!(
        out.contains("Task group(s) \"g\" waiting for promotion"),
        "{out}"
    );
    assert!(
        out.contains(&format!("To promote: nctl deployment promote {id}")),
        "{out}"
    );

    let out = c.ok(&["status", "canary"]);
    let at = out
        .find("Latest Deployment")
        .unwrap_or_else(|| panic!("{out}"));
    let latest = kv(&out[at..]);
    assert_eq!(
        latest.get("ID").map(String::as_str),
        Some(id.as_str()),
        "{out}"
    );
    assert_eq!(
        latest.get("Status").map(String::as_str),
        Some("running"),
        "{out}"
    );
    assert!(out.contains("waiting for promotion"), "{out}");

    // The canary names its deployment in full.
    let canary = c
        .running("canary")
        .into_iter()
        .find(|a| a["JobVersion"] == 1)
        .unwrap_or_else(|| panic!("a running canary"));
    let alloc = canary["ID"].as_str().unwrap().to_string();
    let out = c.ok(&["alloc", "status", &alloc]);
    assert_eq!(
        kv(&out).get("Deployment ID").map(String::as_str),
        Some(id.as_str()),
        "{out}"
    );

    // What cannot be promoted is refused, naming why.
    refused(
        c,
        &["deployment", "promote", &id, "--group", "nope"],
        "has no group \"nope\"",
    );
    refused(
        c,
        &["deployment", "promote", "no-such-deployment"],
        "no deployment matches",
    );
    id
}

fn promote_completes_the_deployment(c: &Cluster, id: &str) {
    let out = c.ok(&["deployment", "promote", id, "--group", "g"]);
    assert!(out.contains(&format!("deployment {id} promoted")), "{out}");
    c.wait_for("the deployment to succeed", WAIT, |c| {
        let s = deployment_status(c, id);
        (s == "successful", s)
    });
    let out = c.ok(&["deployment", "status", id]);
    let details = kv(&out);
    assert_eq!(
        details.get("Status").map(String::as_str),
        Some("successful"),
        "{out}"
    );
    assert_eq!(
        details.get("Description").map(String::as_str),
        Some("Deployment completed successfully"),
        "{out}"
    );
    assert!(!out.contains("waiting for promotion"), "{out}");
    let running = c.running("canary");
    assert_eq!(running.len(), 2, "{running:?}");
    assert!(
        running.iter().all(|a| a["JobVersion"] == 1),
        "every copy runs version 1: {running:?}"
    );
    // A finished deployment takes no more requests.
    refused(
        c,
        &["deployment", "fail", id],
        "is successful: only a running or paused",
    );
    refused(c, &["deployment", "pause", id], "is successful");
}

fn pause_resume_and_fail_a_running_deployment(c: &Cluster) {
    let v2 = c.write_file("canary-v2.hcl", &canary_job("canary", "two"));
    let out = c.nctl(&["apply", "-f", &v2, "--wait", "--timeout", "120"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_NEEDS_PROMOTION),
        "{:?}",
        text(&out)
    );
    let (stdout, _) = text(&out);
    let id = stdout
        .lines()
        .find_map(|l| {
            l.split_once("run: nctl deployment promote ")
                .map(|(_, id)| id.trim())
        })
        .unwrap_or_else(|| panic!("the command to run: {stdout}"));
    assert!(id.starts_with("canary-v2-"), "{stdout}");

    c.ok(&["deployment", "pause", id]);
    let out = c.ok(&["deployment", "status", id]);
    assert_eq!(
        kv(&out).get("Status").map(String::as_str),
        Some("paused"),
        "{out}"
    );
    assert_eq!(
        kv(&out).get("Description").map(String::as_str),
        Some("Deployment is paused"),
        "{out}"
    );
    c.ok(&["deployment", "resume", id]);
    assert_eq!(deployment_status(c, id), "running");

    let out = c.ok(&["deployment", "fail", id]);
    assert!(
        out.contains(&format!("deployment {id} marked as failed")),
        "{out}"
    );
    let out = c.ok(&["deployment", "status", id]);
    let details = kv(&out);
    assert_eq!(
        details.get("Status").map(String::as_str),
        Some("failed"),
        "{out}"
    );
    assert_eq!(
        details.get("Description").map(String::as_str),
        Some("Deployment marked as failed"),
        "{out}"
    );
    let out = c.ok(&["status", "canary"]);
    let at = out
        .find("Latest Deployment")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        kv(&out[at..]).get("Status").map(String::as_str),
        Some("failed"),
        "{out}"
    );
    refused(c, &["deployment", "promote", id], "is failed");
    c.ok(&["stop", "canary", "--purge"]);
}
