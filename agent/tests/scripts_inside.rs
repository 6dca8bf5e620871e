//! What the agent runs inside its tasks, end to end: script checks (in an `exec` task they see
//! what the task sees, as its user; exit code 1 is a warning and not healthy) and templates'
//! change scripts (run when the output changes; a failure is a task event, or with
//! `fail_on_error` kills the task, failed).

mod common;

use std::sync::Arc;

use common::*;
use nomos_agent::driver::exec::detect_support;
use nomos_api::{ChangeScript, Check, ClientStatus, JobType, Service, Template};
use nomos_store::{keys, EmbeddedStore, PutOptions, Store};

fn script_check(name: &str, script: &str) -> Check {
    Check {
        name: name.into(),
        check_type: "script".into(),
        command: "sh".into(),
        args: vec!["-c".into(), script.into()],
        interval_ns: 200_000_000,
        timeout_ns: 2_000_000_000,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_script_check_runs_inside_its_exec_task_as_the_tasks_user() {
    let support = detect_support();
    if let Some(why) = support.refusal() {
        panic!("this test needs exec isolation (cgroups and pid namespaces, as root): {why}");
    }
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(test_config("s1", dir.path()), store.clone());
    let marker = dir.path().join("host-only");
    std::fs::write(&marker, "on the host").unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid;
    // On the host, as the agent (root), both conditions would fail: critical.
    let hidden = if support.chroot {
        format!("! test -e {}", marker.display())
    } else {
        "true".into()
    };
    let inside = format!("test \"$(id -u)\" = {nobody} && {hidden} && echo inside");
    let mut t = raw_task("t", "sleep", &["300"]);
    t.driver = "exec".into();
    t.resources.memory_mb = 64;
    let mut job = job("sc", JobType::Service, vec![t]);
    job.groups[0].services.push(Service {
        name: "sc".into(),
        checks: vec![
            script_check("inside", &inside),
            script_check("busy", "echo almost; exit 1"),
        ],
        ..Default::default()
    });
    let id = format!("sc-{}", std::process::id());
    place(&*store, &alloc(&id, "s1", &job, 0), &job).await;
    let s = status_where(&store, "s1", &id, "both checks decided", |s| {
        s.checks
            .get("sc.inside")
            .is_some_and(|c| c.status == "passing")
            && s.checks
                .get("sc.busy")
                .is_some_and(|c| !c.status.is_empty())
    })
    .await;
    assert_eq!(s.checks["sc.inside"].output, "inside");
    let busy = &s.checks["sc.busy"];
    assert_eq!(busy.status, "warning", "exit code 1: {busy:?}");
    assert!(busy.output.contains("almost") && busy.output.contains("exit code 1"));
    assert_eq!(s.client_status, ClientStatus::Running);
    assert_ne!(s.healthy, Some(true), "a warning is not healthy");
    stop_alloc(&*store, &alloc(&id, "s1", &job, 0)).await;
    status_where(&store, "s1", &id, "stopped", |s| {
        s.client_status == ClientStatus::Complete
    })
    .await;
    agent.shutdown().await;
}

/// A raw_exec task with one template of `key` under `change_mode = "script"`.
fn scripted(id: &str, key: &str, script: &str, fail_on_error: bool) -> nomos_api::Job {
    let mut t = raw_task("t", "sleep", &["300"]);
    t.templates.push(Template {
        data: format!("{{{{ keyOrDefault \"{key}\" \"none\" }}}}\n"),
        destination: "local/value".into(),
        change_mode: "script".into(),
        change_script: Some(ChangeScript {
            command: "sh".into(),
            args: vec!["-c".into(), script.into()],
            timeout_ns: 2_000_000_000,
            fail_on_error,
        }),
        ..Default::default()
    });
    job(id, JobType::Service, vec![t])
}

async fn put_kv(store: &Arc<dyn Store>, path: &str, value: &str) {
    store
        .put(
            keys::kv(path).into_bytes(),
            value.as_bytes().to_vec(),
            PutOptions::default(),
        )
        .await
        .unwrap();
}

/// Places `job` as allocation `id` on `node` and waits until it runs.
async fn run(store: &Arc<dyn Store>, node: &str, id: &str, job: &nomos_api::Job) {
    place(&**store, &alloc(id, node, job, 0), job).await;
    status_where(store, node, id, "running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
}

fn messages(s: &nomos_api::AllocStatus, kind: &str) -> Vec<String> {
    s.task_states["t"]
        .events
        .iter()
        .filter(|e| e.event_type == kind)
        .map(|e| e.message.clone())
        .collect()
}

#[tokio::test]
async fn a_changed_template_runs_its_change_script_inside_the_task() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(test_config("s2", dir.path()), store.clone());
    let ok = scripted("ok", "cs/ok", "cp local/value seen", false);
    let soft = scripted("soft", "cs/soft", "echo broken; exit 3", false);
    for (id, job) in [("cs-ok", &ok), ("cs-soft", &soft)] {
        run(&store, "s2", id, job).await;
    }
    put_kv(&store, "cs/ok", "blue").await;
    put_kv(&store, "cs/soft", "blue").await;
    let seen = dir.path().join("s2/allocs/cs-ok/t/seen");
    eventually("the script ran in the task dir", || async {
        let text = std::fs::read_to_string(&seen).ok()?;
        (text == "blue\n").then_some(())
    })
    .await;
    let s = status_where(&store, "s2", "cs-ok", "script event", |s| {
        messages(s, "Template").iter().any(|m| m.contains("ran"))
    })
    .await;
    assert_eq!(s.client_status, ClientStatus::Running);
    let s = status_where(&store, "s2", "cs-soft", "failure event", |s| {
        messages(s, "Template").iter().any(|m| m.contains("failed"))
    })
    .await;
    let failed = messages(&s, "Template");
    assert!(
        failed
            .iter()
            .any(|m| m.contains("exit code 3") && m.contains("broken")),
        "{failed:?}"
    );
    assert_eq!(
        s.client_status,
        ClientStatus::Running,
        "fail_on_error is off"
    );
    agent.shutdown().await;
    nomos_agent::purge(dir.path().join("s2")).await.unwrap();
}

#[tokio::test]
async fn a_failing_change_script_with_fail_on_error_kills_the_task_failed() {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(test_config("s3", dir.path()), store.clone());
    let job = scripted("hard", "cs/hard", "echo broken; exit 3", true);
    run(&store, "s3", "cs-hard", &job).await;
    put_kv(&store, "cs/hard", "red").await;
    let s = status_where(&store, "s3", "cs-hard", "failed", |s| {
        s.client_status == ClientStatus::Failed
    })
    .await;
    let killing = messages(&s, "Killing");
    assert!(
        killing.iter().any(|m| m.contains("change script")
            && m.contains("exit code 3")
            && m.contains("broken")),
        "{killing:?}"
    );
    let ts = &s.task_states["t"];
    assert!(ts.failed && ts.restarts == 0, "{ts:?}");
    agent.shutdown().await;
}
