//! Faults on a real cluster: three etcd members, two `nctl server`s and three `nctl agent`s,
//! each on its own host (a network namespace on a private bridge). Each test breaks it the
//! way users will, and ends with the same checks: every job converges, no allocation is lost or
//! placed twice, no task restarted that did not need to, and the history a watch recorded has
//! no gap, no duplicate and no lost acknowledged write (`nomos_e2e::history`), while writes
//! kept being acknowledged throughout.
//!
//! Needs root, iproute2, iptables and Debian's etcd-server. `scripts/test-faults` runs only
//! these.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod common;

use common::ha::{HaCluster, Recorder};
use common::*;

/// The group settings of every test job: spread over the nodes, kept through a disconnect.
const GROUP: &str = r#"count = 3

    spread {
      attribute = "${node.unique.name}"
    }

    disconnect {
      lost_after = "5m"
    }

    update {
      max_parallel     = 1
      min_healthy_time = "1s"
      healthy_deadline = "1m"
    }"#;

fn job(id: &str, version_note: &str) -> String {
    loop_job(
        id,
        "service",
        &format!("{GROUP}\n    meta {{ note = \"{version_note}\" }}"),
    )
}

/// Applies `job` through server `via`; it must be accepted at the first try.
fn apply(c: &HaCluster, via: usize, name: &str, text: &str) {
    let file = c.servers[via].write_file(&format!("{name}.hcl"), text);
    c.servers[via].ok(&["apply", "-f", &file]);
}

/// A cluster running job `svc`, its tasks' pids, and a recorder started after it settled.
fn settled(name: &str) -> (HaCluster, BTreeMap<String, Vec<i32>>, Recorder) {
    let c = HaCluster::start(name);
    apply(&c, 0, "svc", &job("svc", "v1"));
    c.wait_converged(0, "svc", 3);
    let pids = c.task_pids(0, "svc");
    assert!(
        pids.values().all(|p| p.len() == 1),
        "one shell per task: {pids:?}"
    );
    let recorder = Recorder::start(c.etcd.endpoints());
    (c, pids, recorder)
}

/// The checks every fault ends with. `unchanged`: allocations whose tasks must still run with
/// the same pids.
fn after_fault(
    c: &HaCluster,
    via: usize,
    recorder: Recorder,
    unchanged: &BTreeMap<String, Vec<i32>>,
) {
    c.wait_converged(via, "svc", 3);
    c.wait_converged(via, "second", 3);
    let now = c.task_pids(via, "svc");
    for (alloc, pids) in unchanged {
        assert_eq!(
            now.get(alloc),
            Some(pids),
            "allocation {alloc} kept running with the same process\n{}",
            c.logs()
        );
    }
    let (observed, failed_writes) = recorder.finish();
    assert_eq!(
        failed_writes,
        Vec::<String>::new(),
        "every write was acknowledged"
    );
    let anomalies = observed.anomalies();
    assert!(
        anomalies.is_empty(),
        "the history has anomalies: {anomalies:#?}"
    );
    assert!(!observed.acks.is_empty(), "the recorder kept writing");
}

#[test]
fn killing_the_etcd_leader_interrupts_nothing() {
    let (mut c, pids, recorder) = settled("etcd-leader");
    let leader = c.etcd.leader();
    c.etcd.kill(leader);
    apply(&c, 0, "second", &job("second", "v1"));
    apply(&c, 1, "svc", &job("svc", "v1"));
    c.wait_converged(1, "second", 3);
    c.etcd.restart(leader);
    after_fault(&c, 0, recorder, &pids);
}

#[test]
fn a_partitioned_etcd_member_changes_nothing() {
    let (c, pids, recorder) = settled("etcd-cut");
    let leader = c.etcd.leader();
    let cut_at = Instant::now();
    c.etcd_hosts[leader].cut();
    apply(&c, 0, "second", &job("second", "v1"));
    c.wait_converged(1, "second", 3);
    std::thread::sleep(Duration::from_secs(30).saturating_sub(cut_at.elapsed()));
    c.etcd_hosts[leader].heal();
    after_fault(&c, 0, recorder, &pids);
}

#[test]
fn the_leading_server_cut_off_from_etcd_is_replaced_and_fenced() {
    let (c, pids, recorder) = settled("server-cut");
    let old = c.leading_server();
    let other = 1 - old;
    c.server_hosts[old].cut();
    apply(&c, other, "second", &job("second", "v1"));
    let started = Instant::now();
    while !c.leads(other) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the other server did not take over within 60 s\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    c.wait_converged(other, "second", 3);
    c.server_hosts[old].heal();
    // Back on the network, the old leader's lease is gone: it follows.
    std::thread::sleep(Duration::from_secs(5));
    assert!(!c.leads(old), "the old leader does not lead again");
    assert!(c.leads(other), "the new leader keeps leading");
    after_fault(&c, other, recorder, &pids);
}

#[test]
fn an_agent_cut_off_from_the_servers_keeps_its_tasks() {
    let (c, pids, recorder) = settled("agent-cut");
    let first = c.servers[0].running("svc");
    let node = first[0]["NodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let k = c
        .agents
        .iter()
        .position(|a| a.name == node)
        .expect("the allocation's node is one of the agents");
    c.agent_hosts[k].cut();
    apply(&c, 0, "second", &job("second", "v1"));
    let cut_at = Instant::now();
    while cut_at.elapsed() < Duration::from_secs(20) {
        for (alloc, alloc_pids) in &pids {
            for pid in alloc_pids {
                assert!(
                    std::path::Path::new(&format!("/proc/{pid}")).exists(),
                    "task of {alloc} (pid {pid}) stopped while its node was cut off"
                );
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    c.agent_hosts[k].heal();
    after_fault(&c, 0, recorder, &pids);
}

#[test]
fn restarting_every_etcd_member_during_a_rollout() {
    let (mut c, _pids, recorder) = settled("etcd-rolling");
    apply(&c, 0, "second", &job("second", "v1"));
    apply(&c, 0, "svc", &job("svc", "v2"));
    for k in 0..3 {
        c.etcd.kill(k);
        std::thread::sleep(Duration::from_secs(2));
        c.etcd.restart(k);
    }
    let started = Instant::now();
    loop {
        let running = c.servers[0].running("svc");
        let v2 = running
            .iter()
            .filter(|a| a["JobVersion"].as_u64() == Some(1))
            .count();
        if running.len() == 3 && v2 == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the rollout did not finish: {running:?}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    after_fault(&c, 0, recorder, &BTreeMap::new());
}
