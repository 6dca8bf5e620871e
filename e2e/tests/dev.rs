//! `nctl dev` as a newcomer runs it: on a fresh data dir it applies the example job
//! (`manifests/example.hcl`), whose output `nctl logs` shows; Ctrl-C stops Nomos cleanly and
//! leaves the tasks running; the next `nctl dev` on the same data dir re-attaches to them
//! without a restart (the `kill -9` variant is `restart.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

mod common;

use common::*;

/// The allocation's long-lived shells (the example's `sleep 5` children come and go).
fn shells_of_alloc(alloc_id: &str) -> Vec<i32> {
    pids_of_alloc(alloc_id)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with("/bin/sh"))
        })
        .collect()
}

/// The running example allocations: id to their shells' pids.
fn example_shells(c: &Cluster) -> BTreeMap<String, Vec<i32>> {
    c.running("example")
        .iter()
        .map(|a| {
            let id = a["ID"].as_str().unwrap().to_string();
            let shells = shells_of_alloc(&id);
            (id, shells)
        })
        .collect()
}

/// The counters of the example's "hello N from ..." lines, in order.
fn hellos(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("hello ")?.split_once(' ')?.0.parse().ok())
        .collect()
}

#[test]
fn nctl_dev_runs_the_example_and_ctrl_c_leaves_it_running_for_the_next_start() {
    let mut c = Cluster::start_custom("example", Mode::Dev, |c| {
        vec![
            "dev".to_string(),
            "--no-docker".to_string(),
            "--data-dir".to_string(),
            c.data_dir.display().to_string(),
            "--http-addr".to_string(),
            c.http_addr.clone(),
            "--name".to_string(),
            c.node.clone(),
            "--store-addr".to_string(),
            "127.0.0.1:0".to_string(),
        ]
    });
    c.wait_for(
        "the example's two allocations to run",
        Duration::from_secs(90),
        |c| {
            let running = c.running("example");
            (running.len() == 2, format!("{running:?}"))
        },
    );
    let before = example_shells(&c);
    assert_eq!(before.len(), 2);
    for (id, shells) in &before {
        assert!(!shells.is_empty(), "allocation {id} has processes");
    }

    // Its output, through `nctl logs`: "hello N from example.greeter[K] (<alloc id>)".
    let (id, _) = before.iter().next().unwrap();
    c.wait_for(
        "nctl logs to show the example's line",
        Duration::from_secs(30),
        |c| {
            let text = c.ok(&["logs", id]);
            let ok = text.lines().any(|l| {
                l.starts_with("hello 1 from example.greeter[") && l.ends_with(&format!("({id})"))
            });
            (ok, text)
        },
    );

    let counted: BTreeMap<String, u64> = before
        .keys()
        .map(|id| {
            let last = hellos(&c.ok(&["logs", id])).last().copied().unwrap_or(0);
            (id.clone(), last)
        })
        .collect();

    let (status, printed) = c.interrupt();
    assert!(
        status.success(),
        "Ctrl-C ends nctl dev with status 0, not {status}; log:\n{}",
        c.log_tail()
    );
    assert!(
        printed.iter().any(|l| l.contains("nomos dev stopped")),
        "nctl dev says it stopped: {printed:?}"
    );
    for (id, shells) in &before {
        assert_eq!(
            &shells_of_alloc(id),
            shells,
            "allocation {id} outlives nctl dev"
        );
    }

    c.restart();
    c.wait_for(
        "the example's allocations to be reported running again",
        Duration::from_secs(60),
        |c| {
            let running = c.running("example");
            (running.len() == 2, format!("{running:?}"))
        },
    );
    for a in c.running("example") {
        for (task, state) in a["TaskStates"].as_object().expect("task states") {
            assert_eq!(
                state["Restarts"], 0,
                "task {task} was not restarted: {state}"
            );
            assert_eq!(state["State"], "running", "{state}");
        }
    }
    assert_eq!(
        example_shells(&c),
        before,
        "the same allocations, with the same processes"
    );
    // The same shells keep counting: each log goes on past where it was, and never starts over
    // at "hello 1" (which a restarted task would print).
    for (id, last) in &counted {
        c.wait_for(
            "the example to go on printing",
            Duration::from_secs(30),
            |c| {
                let text = c.ok(&["logs", id]);
                let n = hellos(&text);
                let went_on = n.last().is_some_and(|l| l > last);
                let counted_once = n.iter().zip(1..).all(|(a, b)| *a == b);
                assert!(
                    counted_once,
                    "allocation {id} counts on without restarting: {text}"
                );
                (went_on, text)
            },
        );
    }
}
