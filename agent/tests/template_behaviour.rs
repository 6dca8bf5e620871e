//! A template's behaviour with real tasks: a task waits, pending, for the keys its templates
//! read (`key`) and starts as soon as they appear, or stops waiting when its allocation stops;
//! a burst of key changes inside `wait` renders once; a key that goes away under a running
//! task is told once per missing set; a rendered file gets the owner its `uid` / `gid` ask
//! for.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::world::*;
use common::*;
use nomos_api::{AllocStatus, ClientStatus, JobType, Task, TaskRunState, Template, TemplateWait};

fn template(data: &str, destination: &str) -> Template {
    Template {
        data: data.into(),
        destination: destination.into(),
        ..Default::default()
    }
}

/// A task that prints its template's file, then waits.
fn showing_task(template: Template) -> Task {
    let mut t = raw_task("t", "/bin/sh", &["-c", "cat local/out; exec sleep 3600"]);
    t.templates.push(template);
    t
}

fn missing_event(s: &AllocStatus) -> Option<String> {
    let events = &s.task_states.get("t")?.events;
    events
        .iter()
        .find(|e| e.event_type == "Template" && e.message.starts_with("Missing: "))
        .map(|e| e.message.clone())
}

#[tokio::test]
async fn a_task_waits_pending_for_a_missing_key_and_starts_within_a_second_of_its_put() {
    let w = World::start();
    let t = showing_task(template(r#"color={{ key "app/color" }}"#, "local/out"));
    let a = w.place("wait-key", JobType::Service, t).await;
    let s = w
        .status_where("wait-key", "the Missing event", |s| {
            missing_event(s).is_some()
        })
        .await;
    assert_eq!(missing_event(&s).unwrap(), "Missing: kv.block(app/color)");
    assert_eq!(s.client_status, ClientStatus::Pending, "{s:?}");
    assert_eq!(s.task_states["t"].state, TaskRunState::Pending);
    // An unrelated key does not start it, nor repeat the event.
    w.put_key("app/other", "x").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = w.status_where("wait-key", "a status", |_| true).await;
    assert!(!started(&s), "{s:?}");
    let missing_events = |s: &AllocStatus| {
        s.task_states["t"]
            .events
            .iter()
            .filter(|e| e.event_type == "Template")
            .count()
    };
    assert_eq!(missing_events(&s), 1, "{s:?}");
    assert!(!w.file("wait-key", "local/out").exists());

    let put_at = now_ms();
    w.put_key("app/color", "blue").await;
    let s = w.status_where("wait-key", "started", started).await;
    let started_at = s.task_states["t"].started_at_ms;
    assert!(
        started_at.saturating_sub(put_at) < 1000,
        "started {} ms after the put",
        started_at.saturating_sub(put_at)
    );
    let out = std::fs::read_to_string(w.file("wait-key", "local/out")).unwrap();
    assert_eq!(out, "color=blue");
    w.stop(&[&a]).await;
}

#[tokio::test]
async fn a_stopped_allocation_stops_waiting_for_its_key() {
    let w = World::start();
    let t = showing_task(template(r#"{{ key "never/there" }}"#, "local/out"));
    let a = w.place("never", JobType::Service, t).await;
    w.status_where("never", "the Missing event", |s| missing_event(s).is_some())
        .await;
    stop_alloc(&*w.store, &a).await;
    let s = w
        .status_where("never", "the task dead", |s| {
            s.task_states
                .get("t")
                .is_some_and(|t| t.state == TaskRunState::Dead)
        })
        .await;
    assert!(!started(&s), "{s:?}");
    let killed = s.task_states["t"]
        .events
        .iter()
        .find(|e| e.event_type == "Killed");
    assert_eq!(
        killed.map(|e| e.message.as_str()),
        Some("Task was stopped before it started"),
        "{s:?}"
    );
    w.stop(&[]).await;
}

#[tokio::test]
async fn a_burst_of_key_changes_inside_wait_renders_and_signals_once() {
    let w = World::start();
    w.put_key("app/n", "0").await;
    let mut tpl = template(r#"n={{ key "app/n" }}"#, "local/out");
    tpl.change_mode = "signal".into();
    tpl.change_signal = "SIGHUP".into();
    tpl.splay_ns = Some(0);
    tpl.wait = Some(TemplateWait {
        min_ns: 700_000_000,
        max_ns: Some(3_000_000_000),
    });
    let script = "trap 'echo hup; cat local/out; echo' HUP; while true; do sleep 0.05; done";
    let mut t = raw_task("t", "/bin/sh", &["-c", script]);
    t.templates.push(tpl);
    let a = w.place("burst", JobType::Service, t).await;
    w.status_where("burst", "running", started).await;
    // Let the watch begin (its first render finds nothing new).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 1..=5 {
        w.put_key("app/n", &n.to_string()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let file = w.file("burst", "local/out");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "n=0",
        "not rendered while changes keep coming inside min"
    );
    // The trap's whole output: `cat` and the `echo` after it are two writes, so wait for the
    // newline too, or a read between them sees a shorter output than the later one.
    let out = eventually("the signal", || async {
        let out = stdout_of(&w.data(), "burst", "t");
        out.contains("n=5\n").then_some(out)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out_later = stdout_of(&w.data(), "burst", "t");
    assert_eq!(out_later, out, "nothing after the one render");
    assert_eq!(out.matches("hup").count(), 1, "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "n=5");
    w.stop(&[&a]).await;
}

#[tokio::test]
async fn a_key_missing_under_a_running_task_is_told_once_per_missing_set() {
    let w = World::start();
    w.put_key("app/a", "1").await;
    w.put_key("app/b", "2").await;
    let mut tpl = template(r#"{{ key "app/a" }}{{ key "app/b" }}"#, "local/out");
    tpl.change_mode = "noop".into();
    let a = w.place("gone", JobType::Service, showing_task(tpl)).await;
    w.status_where("gone", "running", started).await;
    // Let the watch begin.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let only_a = "Missing: kv.block(app/a)";
    w.delete_key("app/a").await;
    w.status_where("gone", "the Missing event", |s| {
        missing_events(s).len() == 1
    })
    .await;
    // Changes elsewhere in the key-value space render again and find the same key missing.
    for n in 0..3 {
        w.put_key("app/other", &n.to_string()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let s = w.status_where("gone", "a status", |_| true).await;
    assert_eq!(missing_events(&s), vec![only_a], "{s:?}");
    // Another key missing is another set: told once more.
    w.delete_key("app/b").await;
    let both = "Missing: kv.block(app/a), kv.block(app/b)";
    w.status_where("gone", "the second Missing event", |s| {
        missing_events(s).len() == 2
    })
    .await;
    w.put_key("app/other", "x").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = w.status_where("gone", "a status", |_| true).await;
    assert_eq!(missing_events(&s), vec![only_a, both], "{s:?}");
    let file = w.file("gone", "local/out");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "12",
        "the last render stays"
    );
    // Back: it renders; gone again: told again, though it is the set told before.
    w.put_key("app/b", "4").await;
    w.put_key("app/a", "3").await;
    eventually("the new render", || async {
        (std::fs::read_to_string(&file).ok()? == "34").then_some(())
    })
    .await;
    let s = w.status_where("gone", "a status", |_| true).await;
    let told = missing_events(&s).len();
    w.delete_key("app/a").await;
    let s = w
        .status_where("gone", "the Missing event after the render", |s| {
            missing_events(s).len() == told + 1
        })
        .await;
    assert_eq!(missing_events(&s)[told], only_a);
    assert_eq!(s.task_states["t"].restarts, 0, "{s:?}");
    w.stop(&[&a]).await;
}

/// The owner the agent can give: any as root, else only its own.
fn expected_owner(dir: &Path) -> (u32, u32) {
    let m = std::fs::metadata(dir).unwrap();
    (m.uid(), m.gid())
}

#[tokio::test]
async fn a_rendered_file_gets_the_owner_its_uid_and_gid_ask_for() {
    let w = World::start();
    let mut owned = template("owned", "local/owned");
    (owned.uid, owned.gid) = (Some(1234), Some(5678));
    let mut unchanged = template("unchanged", "local/unchanged");
    (unchanged.uid, unchanged.gid) = (Some(-1), None);
    let mut t = raw_task("t", "/bin/true", &[]);
    t.templates = vec![owned, unchanged];
    w.place("owner", JobType::Batch, t).await;
    let s = w
        .status_where("owner", "done", |s| {
            matches!(
                s.client_status,
                ClientStatus::Complete | ClientStatus::Failed
            )
        })
        .await;
    if nix::unistd::geteuid().is_root() {
        assert_eq!(s.client_status, ClientStatus::Complete, "{s:?}");
        let m = std::fs::metadata(w.file("owner", "local/owned")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
        let m = std::fs::metadata(w.file("owner", "local/unchanged")).unwrap();
        assert_eq!((m.uid(), m.gid()), expected_owner(w.dir.path()));
    } else {
        let e = &s.task_states["t"].events;
        assert!(
            e.iter().any(|e| e
                .message
                .contains("uid 1234 needs the agent to run as root")),
            "{e:?}"
        );
    }
    w.stop(&[]).await;
}
