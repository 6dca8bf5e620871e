//! The web UI in a real headless Chromium (tests/common/browser.rs): the overview lists a job
//! applied with nctl, its link opens the job's page, the live refresh keeps the page current
//! when the cluster changes, and no page raises a script error. Screenshots of the pages go
//! to `target/ui-screenshots/` for the closing notes.

use std::path::PathBuf;
use std::time::Duration;

mod common;

use common::browser::Browser;
use common::*;

fn screenshots() -> PathBuf {
    let dir = workspace_root().join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).expect("a screenshot dir");
    dir
}

#[test]
fn the_overview_lists_jobs_links_to_them_and_follows_the_cluster() {
    require_busybox();
    let c = Cluster::start("uibrowser");
    let file = c.write_file("web.hcl", &web_job("webui", 1, "hello"));
    c.ok(&["apply", "-f", &file]);
    c.wait_for("webui to run", Duration::from_secs(60), |c| {
        let r = c.running("webui");
        (r.len() == 1, format!("{r:?}"))
    });
    let base = format!("http://{}", c.http_addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        b.open(&format!("{base}/ui"), "#jobs").await;
        b.wait_text("#jobs", "webui").await;
        b.screenshot(&screenshots().join("overview.png")).await;
        b.click("#jobs a[href*='webui']").await;
        b.wait_text("main h1", "webui").await;
        // The refresh brings the allocation to running as the cluster sees it.
        b.wait_text("main table.allocs tbody", "running").await;
        assert_eq!(b.script_errors().await, Vec::<String>::new());

        // The page follows the cluster on its own: a stop shows without a reload.
        c.ok(&["stop", "webui"]);
        b.wait_text("main h1", "dead").await;
        b.wait_text("main table.allocs tbody", "complete").await;
        b.screenshot(&screenshots().join("job.png")).await;
        assert_eq!(b.script_errors().await, Vec::<String>::new());
        b.close().await;
    });
}
