//! The web UI's actions in a real headless Chromium (tests/common/browser.rs): each button
//! opens a confirmation dialog that says what will happen, and only "Confirm" sends the `/v1`
//! request. Scale, stop, start, revert (with its diff), promote a canary, restart and stop an
//! allocation (whose page then links to its replacement), drain a node and cancel it, each seen
//! in the cluster (through nctl) and on the page; with ACLs on, a read-only token's click is
//! refused in the dialog and nothing changes. Screenshots go to
//! `target/ui-screenshots/actions-*.png`.

use std::path::PathBuf;
use std::time::Duration;

mod common;

use common::browser::Browser;
use common::*;
use serde_json::Value;

const CONFIRM: &str = "#action-dialog .action-go";
const CANCEL: &str = "#action-dialog .action-cancel";
const DIALOG_ERROR: &str = "#action-dialog .action-error";

fn screenshot_path(name: &str) -> PathBuf {
    let dir = workspace_root().join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).expect("a screenshot dir");
    dir.join(format!("actions-{name}.png"))
}

/// Replaces the text of the dialog's input `name`.
async fn type_into(b: &Browser, name: &str, text: &str) {
    let input = b
        .find(&format!("#action-dialog .action-inputs [name='{name}']"))
        .await;
    input.clear().await.expect("clear the input");
    input.send_keys(text).await.expect("type into the input");
}

/// Clicks `button`, checks the dialog names what will happen, and confirms.
async fn confirm(b: &Browser, button: &str, says: &str) {
    b.click(button).await;
    b.wait_text("#action-dialog .action-confirm", says).await;
    b.click(CONFIRM).await;
}

async fn no_script_errors(b: &Browser) {
    assert_eq!(b.script_errors().await, Vec::<String>::new());
}

fn wait_running(c: &Cluster, job: &str, n: usize) {
    c.wait_for(
        &format!("{n} running allocations of {job}"),
        Duration::from_secs(60),
        |c| {
            let r = c.running(job);
            (r.len() == n, format!("{r:?}"))
        },
    );
}

fn job_stopped(c: &Cluster, job: &str) -> bool {
    c.json(&["status", job, "-o", "json"])["job"]["Stop"] == true
}

#[test]
fn a_job_is_scaled_stopped_started_and_reverted_from_its_page() {
    let c = Cluster::start("uiactjob");
    let file = c.write_file("acts.hcl", &loop_job("acts", "service", "count = 1"));
    c.ok(&["apply", "-f", &file]);
    wait_running(&c, "acts", 1);
    let base = format!("http://{}", c.http_addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        b.open(&format!("{base}/ui/job/acts"), "#job-actions").await;

        // A bad count is the API's 400, shown in the dialog; nothing changes.
        b.click("#action-scale-1").await;
        b.wait_text("#action-dialog .action-confirm", "Set the count of group g")
            .await;
        type_into(&b, "count", "-1").await;
        b.click(CONFIRM).await;
        b.wait_text(DIALOG_ERROR, "400").await;
        b.wait_text(DIALOG_ERROR, "not a count").await;
        b.screenshot(&screenshot_path("scale-refused")).await;
        b.click(CANCEL).await;
        assert_eq!(c.running("acts").len(), 1);

        type_scale(&b, "3").await;
        b.wait_text("#action-flash", "Done: Scale group g").await;
        wait_running(&c, "acts", 3);
        b.wait_text("main table.groups tbody", "3").await;
        b.screenshot(&screenshot_path("scaled")).await;

        // Cancel sends nothing.
        b.click("#action-stop").await;
        b.click(CANCEL).await;
        assert!(!job_stopped(&c, "acts"));

        confirm(&b, "#action-stop", "Stop job acts").await;
        wait_running(&c, "acts", 0);
        assert!(job_stopped(&c, "acts"));
        b.wait_text("main h1", "dead").await;

        confirm(&b, "#action-start", "Start job acts again").await;
        wait_running(&c, "acts", 3);
        assert!(!job_stopped(&c, "acts"));

        // The revert dialog shows the diff from the running version before anything is sent.
        b.click("#action-revert-0").await;
        b.wait_text("#action-dialog pre.diff", "groups[g].count: 3 => 1")
            .await;
        b.screenshot(&screenshot_path("revert-diff")).await;
        b.click(CONFIRM).await;
        wait_running(&c, "acts", 1);
        no_script_errors(&b).await;
        b.close().await;
    });
}

async fn type_scale(b: &Browser, count: &str) {
    b.click("#action-scale-1").await;
    type_into(b, "count", count).await;
    b.click(CONFIRM).await;
}

fn canary_job(message: &str) -> String {
    loop_job(
        "canary",
        "service",
        "count = 2\n    update {\n      canary = 1\n      max_parallel = 1\n      min_healthy_time = \"1s\"\n    }",
    )
    .replace("sleep 1; done", &format!("sleep 1; done # {message}"))
}

fn healthy_canary(c: &Cluster) -> (bool, String) {
    let allocs = c.allocs("canary");
    let ok = allocs.iter().any(|a| {
        a["JobVersion"] == 1
            && a["ClientStatus"] == "running"
            && a["DeploymentStatus"]["Healthy"] == true
    });
    (ok, format!("{allocs:?}"))
}

#[test]
fn a_canary_deployment_is_promoted_from_the_job_page() {
    let c = Cluster::start("uiactcanary");
    let v0 = c.write_file("v0.hcl", &canary_job("v0"));
    c.ok(&["apply", "-f", &v0]);
    wait_running(&c, "canary", 2);
    let v1 = c.write_file("v1.hcl", &canary_job("v1"));
    c.ok(&["apply", "-f", &v1]);
    c.wait_for("a healthy canary", Duration::from_secs(60), healthy_canary);
    let base = format!("http://{}", c.http_addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        b.open(&format!("{base}/ui/job/canary"), "#action-promote")
            .await;
        b.screenshot(&screenshot_path("canary")).await;
        confirm(&b, "#action-promote", "Promote the canaries").await;
        c.wait_for(
            "every allocation on version 1",
            Duration::from_secs(90),
            |c| {
                let r = c.running("canary");
                let done = r.len() == 2 && r.iter().all(|a| a["JobVersion"] == 1);
                (done, format!("{r:?}"))
            },
        );
        b.wait_text("main", "successful").await;
        no_script_errors(&b).await;
        b.close().await;
    });
}

fn restarts(c: &Cluster, alloc: &str) -> u64 {
    let a = c.json(&["alloc", "status", alloc, "-o", "json"]);
    a["TaskStates"]["loop"]["Restarts"].as_u64().unwrap_or(0)
}

#[test]
fn an_allocation_is_restarted_and_stopped_from_its_page() {
    let c = Cluster::start("uiactalloc");
    let file = c.write_file("one.hcl", &loop_job("one", "service", "count = 1"));
    c.ok(&["apply", "-f", &file]);
    wait_running(&c, "one", 1);
    let first = c.running("one")[0]["ID"].as_str().unwrap().to_string();
    let base = format!("http://{}", c.http_addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        b.open(&format!("{base}/ui/allocation/{first}"), "#alloc-actions")
            .await;
        confirm(&b, "#action-restart-1", "Restart task loop").await;
        c.wait_for("a restart", Duration::from_secs(60), |c| {
            let n = restarts(c, &first);
            (n >= 1, format!("{n} restarts"))
        });
        b.wait_text("main", "restarts 1").await;

        confirm(&b, "#action-alloc-stop", "a replacement is placed").await;
        c.wait_for("a replacement", Duration::from_secs(60), |c| {
            let r = c.running("one");
            let done = r.len() == 1 && r[0]["ID"] != first.as_str();
            (done, format!("{r:?}"))
        });
        b.wait_text("main h1", "complete").await;
        b.screenshot(&screenshot_path("alloc-stopped")).await;
        no_script_errors(&b).await;
        b.close().await;
    });
}

fn node_json(c: &Cluster) -> Value {
    c.json(&["node", "status", &c.node, "-o", "json"])["node"].clone()
}

#[test]
fn a_node_is_drained_and_made_eligible_again_from_its_page() {
    let c = Cluster::start("uiactnode");
    // An allocation with nowhere else to go keeps the drain going until its deadline.
    let file = c.write_file("stay.hcl", &loop_job("stay", "service", "count = 1"));
    c.ok(&["apply", "-f", &file]);
    wait_running(&c, "stay", 1);
    let base = format!("http://{}", c.http_addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        b.open(&format!("{base}/ui/node/{}", c.node), "#node-actions")
            .await;
        b.click("#action-drain").await;
        b.wait_text("#action-dialog .action-confirm", "Drain node")
            .await;
        type_into(&b, "deadline", "soon").await;
        b.click(CONFIRM).await;
        b.wait_text(DIALOG_ERROR, "expected a duration").await;
        type_into(&b, "deadline", "10m").await;
        b.click("#action-dialog [name='ignore_system']").await;
        b.screenshot(&screenshot_path("drain-dialog")).await;
        b.click(CONFIRM).await;
        c.wait_for("a drain", Duration::from_secs(30), |c| {
            let n = node_json(c);
            let d = &n["DrainStrategy"];
            let done = d["Deadline"] == 600_000_000_000i64 && d["IgnoreSystemJobs"] == true;
            (done, n.to_string())
        });
        b.find("#action-drain-cancel").await;
        b.screenshot(&screenshot_path("draining")).await;

        confirm(&b, "#action-drain-cancel", "Stop draining").await;
        c.wait_for("the drain cancelled", Duration::from_secs(30), |c| {
            let n = node_json(c);
            let done = n["DrainStrategy"].is_null() && n["SchedulingEligibility"] == "eligible";
            (done, n.to_string())
        });

        confirm(&b, "#action-ineligible", "Mark node").await;
        c.wait_for("an ineligible node", Duration::from_secs(30), |c| {
            let n = node_json(c);
            (n["SchedulingEligibility"] == "ineligible", n.to_string())
        });
        b.find("#action-eligible").await;
        no_script_errors(&b).await;
        b.close().await;
    });
}

/// The `Secret ID` line of `nctl acl bootstrap` / `acl token create`.
fn secret(text: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Secret ID"))
        .map(|r| r.trim().trim_start_matches('=').trim().to_string())
        .unwrap_or_else(|| panic!("no Secret ID in:\n{text}"))
}

#[test]
fn a_read_only_token_is_refused_in_the_page_and_nothing_changes() {
    let mut c = Cluster::start_acl_server("uiactacl");
    let root = secret(&c.ok(&["acl", "bootstrap"]));
    c.env.push(("NOMOS_TOKEN".into(), root.clone()));
    let read = c.write_file(
        "read.hcl",
        "namespace \"default\" {\n  policy = \"read\"\n}\n",
    );
    c.ok(&["acl", "policy", "apply", "readonly", &read]);
    let reader = secret(&c.ok(&[
        "acl", "token", "create", "--name", "r", "--policy", "readonly",
    ]));
    let file = c.write_file("kept.hcl", &loop_job("kept", "service", "count = 2"));
    c.ok(&["apply", "-f", &file]);
    let version = || c.json(&["status", "kept", "-o", "json"])["job"]["Version"].clone();
    let before = version();

    let base = format!("http://{}", c.http_addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        b.login(&base, &reader).await;
        b.wait_text("#jobs", "kept").await;
        b.open(&format!("{base}/ui/job/kept"), "#job-actions").await;

        confirm(&b, "#action-stop", "Stop job kept").await;
        b.wait_text(DIALOG_ERROR, "Permission denied").await;
        b.screenshot(&screenshot_path("refused")).await;
        b.click(CANCEL).await;
        b.click("#action-scale-1").await;
        type_into(&b, "count", "5").await;
        b.click(CONFIRM).await;
        b.wait_text(DIALOG_ERROR, "Permission denied").await;
        b.click(CANCEL).await;

        // The cookie alone never authorises a write, so another page cannot act for the user.
        let status = b
            .client
            .execute(
                "return fetch('/v1/job/kept', {method: 'DELETE'}).then(r => r.status);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(status, 403);
        no_script_errors(&b).await;
        b.close().await;
    });
    assert!(!job_stopped(&c, "kept"));
    assert_eq!(version(), before);
    let spec = c.json(&["status", "kept", "-o", "json"]);
    assert_eq!(spec["job"]["TaskGroups"][0]["Count"], 2, "{spec}");
}

/// A service job whose one task fails at once and is rescheduled after a second.
fn failing_job(id: &str) -> String {
    format!(
        r#"job "{id}" {{
  datacenters = ["*"]
  group "g" {{
    restart {{
      attempts = 0
      mode     = "fail"
    }}
    reschedule {{
      delay          = "1s"
      delay_function = "constant"
      unlimited      = true
    }}
    task "fail" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "exit 3"]
      }}
      resources {{
        cpu    = 10
        memory = 10
      }}
    }}
  }}
}}
"#
    )
}

#[test]
fn a_failed_allocation_links_to_its_replacement() {
    let c = Cluster::start("uiactfailed");
    let file = c.write_file("fails.hcl", &failing_job("fails"));
    c.ok(&["apply", "-f", &file]);
    let mut pair = None;
    c.wait_for(
        "a replaced failed allocation",
        Duration::from_secs(60),
        |c| {
            let allocs = c.allocs("fails");
            pair = allocs.iter().find_map(|a| {
                let next = a["NextAllocation"].as_str().filter(|n| !n.is_empty())?;
                Some((a["ID"].as_str()?.to_string(), next.to_string()))
            });
            (pair.is_some(), format!("{allocs:?}"))
        },
    );
    let (failed, next) = pair.unwrap();
    let base = format!("http://{}", c.http_addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        b.open(&format!("{base}/ui/allocation/{failed}"), "#replacement")
            .await;
        b.wait_text("main h1", "failed").await;
        let link = b.find("#replacement").await;
        let href = link.attr("href").await.unwrap().unwrap_or_default();
        assert!(href.ends_with(&next), "{href} should lead to {next}");
        b.screenshot(&screenshot_path("alloc-replaced")).await;
        link.click().await.unwrap();
        b.wait_text("main h1", &next[..8]).await;
        no_script_errors(&b).await;
        b.close().await;
    });
}
