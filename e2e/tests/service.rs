//! A raw_exec service job with count 3 and a dynamic port: it runs and answers on its ports, a
//! changed job rolls out as a deployment, re-applying is a no-op, and stopping leaves no
//! process behind.

use std::time::Duration;

mod common;

use common::*;

#[test]
fn a_service_job_runs_rolls_out_a_change_and_stops_cleanly() {
    require_busybox();
    let c = Cluster::start("svc");
    let file = c.write_file("web.hcl", &web_job("web", 3, "v1"));
    let out = c.ok(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    assert!(out.contains("job \"web\" created"), "{out}");

    let v1 = c.running("web");
    assert_eq!(v1.len(), 3, "three running allocations: {v1:?}");
    let mut ports: Vec<u16> = v1.iter().map(|a| port_of(a, "http")).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "three distinct ports");
    for a in &v1 {
        let id = a["ID"].as_str().unwrap();
        let body =
            http_get(port_of(a, "http")).unwrap_or_else(|| panic!("allocation {id} answers"));
        assert_eq!(body.trim(), format!("v1 {id}"));
    }

    let again = c.ok(&["apply", "-f", &file]);
    assert!(again.contains("job \"web\" unchanged"), "{again}");

    let file = c.write_file("web.hcl", &web_job("web", 3, "v2"));
    let out = c.ok(&["apply", "-f", &file, "--wait", "--timeout", "180"]);
    assert!(out.contains("job \"web\" updated"), "{out}");
    assert!(
        out.contains("groups[web].tasks[httpd].config.args"),
        "the change is shown: {out}"
    );
    assert!(out.contains("rollout complete"), "{out}");

    let v2 = c.running("web");
    assert_eq!(
        v2.len(),
        3,
        "three running allocations after the update: {v2:?}"
    );
    for a in &v2 {
        assert_eq!(a["JobVersion"], 1, "{a}");
        let id = a["ID"].as_str().unwrap();
        let body =
            http_get(port_of(a, "http")).unwrap_or_else(|| panic!("allocation {id} answers"));
        assert_eq!(body.trim(), format!("v2 {id}"));
    }
    let deployments = c.json(&["get", "deployments", "--job", "web", "-o", "json"]);
    let d = deployments
        .as_array()
        .and_then(|ds| ds.iter().find(|d| d["JobVersion"] == 1))
        .unwrap_or_else(|| panic!("a deployment for version 1: {deployments}"));
    assert_eq!(d["Status"], "successful", "{d}");
    for old in &v1 {
        let id = old["ID"].as_str().unwrap();
        c.wait_for(
            &format!("old allocation {id} to have no process"),
            Duration::from_secs(30),
            |_| {
                let pids = pids_of_alloc(id);
                (pids.is_empty(), format!("{pids:?}"))
            },
        );
    }

    c.ok(&["stop", "web"]);
    let all = c.allocs("web");
    c.wait_for(
        "every allocation of the stopped job to end",
        Duration::from_secs(60),
        |c| {
            let live: Vec<String> = c
                .allocs("web")
                .iter()
                .filter(|a| a["ClientStatus"] == "running" || a["ClientStatus"] == "pending")
                .map(|a| a["ID"].as_str().unwrap_or("").to_string())
                .collect();
            (live.is_empty(), format!("{live:?}"))
        },
    );
    for a in &all {
        let id = a["ID"].as_str().unwrap();
        c.wait_for(
            &format!("allocation {id} to have no process"),
            Duration::from_secs(30),
            |_| {
                let pids = pids_of_alloc(id);
                (pids.is_empty(), format!("{pids:?}"))
            },
        );
        if let Some(p) = a["AllocatedResources"]["Shared"]["Ports"][0]["Value"].as_u64() {
            assert!(
                http_get(p as u16).is_none(),
                "port {p} still answers after stop"
            );
        }
    }
    c.wait_for(
        "the stopped job's status to be dead",
        Duration::from_secs(30),
        |c| {
            let status = c.ok(&["status", "web"]);
            (status.contains("Status       = dead"), status)
        },
    );
}
