//! Namespaces and quotas end to end, through `nctl` only: `nctl namespace apply` with a
//! quota from `nctl quota apply` (Nomad's HCL quota file), a job whose count exceeds the
//! quota runs what fits and `nctl status` says why the rest is queued; raising the quota lets
//! the queued allocation run. A job in a namespace that does not exist is refused at apply,
//! naming the namespace; a namespace with jobs is not deleted.

use std::time::Duration;

mod common;

use common::*;

const QUOTA_HCL: &str = r#"
name        = "team-a"
description = "Team A's share"

limit {
  region = "global"
  region_limit {
    cpu         = 1000
    memory      = 1000
    allocations = 2
  }
}
"#;

fn job_in_namespace(id: &str, count: u32, namespace: &str) -> String {
    web_job(id, count, "hi").replacen(
        &format!("job \"{id}\" {{"),
        &format!("job \"{id}\" {{\n  namespace = \"{namespace}\""),
        1,
    )
}

fn status_text(c: &Cluster, job: &str) -> String {
    c.ok(&["status", "--namespace", "team-a", job])
}

fn running_in_team_a(c: &Cluster, job: &str) -> usize {
    let all = c.json(&[
        "get",
        "allocs",
        "--namespace",
        "team-a",
        "--job",
        job,
        "-o",
        "json",
    ]);
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["DesiredStatus"] == "run" && a["ClientStatus"] == "running")
        .count()
}

#[test]
fn a_job_over_its_namespace_quota_runs_what_fits_and_status_says_why() {
    require_busybox();
    let c = Cluster::start("quotas");

    let missing = c.write_file("ghost.hcl", &job_in_namespace("web", 1, "team-a"));
    let out = c.nctl(&["apply", "-f", &missing]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("nonexistent namespace \"team-a\""),
        "apply into a missing namespace: {err}"
    );

    let quota = c.write_file("team-a-quota.hcl", QUOTA_HCL);
    c.ok(&["quota", "apply", &quota]);
    assert!(c.ok(&["quota", "list"]).contains("team-a"));
    c.ok(&[
        "namespace",
        "apply",
        "-description",
        "Team A",
        "-quota",
        "team-a",
        "team-a",
    ]);
    let listed = c.ok(&["namespace", "list"]);
    assert!(
        listed.contains("team-a") && listed.contains("default"),
        "{listed}"
    );

    let web = c.write_file("web.hcl", &job_in_namespace("web", 3, "team-a"));
    c.ok(&["apply", "-f", &web]);
    c.wait_for(
        "two of three allocations running and the quota in the status",
        Duration::from_secs(60),
        |c| {
            let text = status_text(c, "web");
            let done = running_in_team_a(c, "web") == 2
                && text.contains("quota \"team-a\" exhausted: allocations 3/2");
            (done, text)
        },
    );
    let usage = c.ok(&["quota", "status", "team-a"]);
    assert!(usage.contains("2 / 2"), "{usage}");
    let ns = c.ok(&["namespace", "status", "team-a"]);
    assert!(ns.contains("Team A") && ns.contains("2 / 2"), "{ns}");

    let out = c.nctl(&["namespace", "delete", "team-a"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has non-terminal jobs"),
        "a namespace with jobs is not deleted"
    );

    // Raising the quota lets the queued third allocation run.
    let more = QUOTA_HCL.replace("allocations = 2", "allocations = 3");
    let quota = c.write_file("team-a-quota.hcl", &more);
    c.ok(&["quota", "apply", &quota]);
    c.wait_for(
        "the queued allocation to run once the quota allows it",
        Duration::from_secs(60),
        |c| {
            let text = status_text(c, "web");
            (
                running_in_team_a(c, "web") == 3 && !text.contains("exhausted"),
                text,
            )
        },
    );

    c.ok(&["stop", "--namespace", "team-a", "--purge", "web"]);
    c.wait_for("the job purged", Duration::from_secs(60), |c| {
        let out = c.nctl(&["namespace", "delete", "team-a"]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    });
    c.ok(&["quota", "delete", "team-a"]);
}
