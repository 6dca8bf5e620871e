//! `kill -9` of `nctl dev` followed by a restart on the same data dir keeps every task running:
//! same allocations, same processes, zero restarts, still answering.

use std::time::Duration;

mod common;

use common::*;

#[test]
fn kill_9_and_restart_keeps_every_task_running_without_a_restart() {
    require_busybox();
    let mut c = Cluster::start("restart");
    let file = c.write_file("web.hcl", &web_job("web", 2, "up"));
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    let before = c.running("web");
    assert_eq!(before.len(), 2);
    let snapshot: Vec<(String, Vec<i32>, u16)> = before
        .iter()
        .map(|a| {
            let id = a["ID"].as_str().unwrap().to_string();
            let pids = pids_of_alloc(&id);
            assert!(!pids.is_empty(), "allocation {id} has processes");
            (id, pids, port_of(a, "http"))
        })
        .collect();

    c.kill9();
    for (id, pids, port) in &snapshot {
        assert_eq!(&pids_of_alloc(id), pids, "tasks outlive nctl dev");
        assert!(
            http_get(*port).is_some(),
            "allocation {id} answers while nctl dev is down"
        );
    }

    c.restart();
    c.wait_for(
        "the allocations to be reported running again",
        Duration::from_secs(60),
        |c| {
            let running = c.running("web");
            (running.len() == 2, format!("{running:?}"))
        },
    );
    let after = c.running("web");
    let mut ids_after: Vec<String> = after
        .iter()
        .map(|a| a["ID"].as_str().unwrap().to_string())
        .collect();
    let mut ids_before: Vec<String> = snapshot.iter().map(|s| s.0.clone()).collect();
    ids_after.sort();
    ids_before.sort();
    assert_eq!(ids_after, ids_before, "no allocation was replaced");
    for a in &after {
        for (task, state) in a["TaskStates"].as_object().expect("task states") {
            assert_eq!(
                state["Restarts"], 0,
                "task {task} was not restarted: {state}"
            );
            assert_eq!(state["State"], "running");
        }
    }
    for (id, pids, port) in &snapshot {
        assert_eq!(
            &pids_of_alloc(id),
            pids,
            "allocation {id} keeps its processes"
        );
        let body =
            http_get(*port).unwrap_or_else(|| panic!("allocation {id} answers after the restart"));
        assert_eq!(body.trim(), format!("up {id}"));
    }
}
