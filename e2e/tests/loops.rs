//! End to end with several real nodes: `nctl server` on its embedded store and separate
//! `nctl agent` processes (each with its own data dir and node name) on one machine.
//!
//! - drain: services move to other nodes before their originals stop, so the job never runs
//!   fewer copies than its count, across a `kill -9` and restart of the server in the middle of
//!   the drain; the system allocation stops last; a drain with nowhere to go reports it and its
//!   deadline stops what remains (`nctl node drain --wait`).
//! - periodic: children launch once per tick across `kill -9`s of the server at tick time, and
//!   `nctl job periodic force` launches one now.
//! - node lifecycle: a node whose network is cut (it runs in its own network namespace) for a few
//!   seconds at a time for a minute causes no restart and no replacement; an agent frozen
//!   (SIGSTOP: its heartbeat lease lapses, its tasks run on) past `lost_after` gets its
//!   allocation replaced, and when it comes back it keeps its original.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::*;

/// A busybox httpd service on a dynamic port: `count` copies on distinct nodes, migrating one
/// at a time with a 2s `min_healthy_time`.
fn web(count: u32) -> String {
    format!(
        r#"job "web" {{
  datacenters = ["*"]

  constraint {{
    operator = "distinct_hosts"
    value    = "true"
  }}

  group "web" {{
    count = {count}

    network {{
      port "http" {{}}
    }}

    migrate {{
      max_parallel     = 1
      min_healthy_time = "2s"
      healthy_deadline = "1m"
    }}

    task "httpd" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "mkdir -p www && echo ok > www/index.html && exec /bin/busybox httpd -f -p 127.0.0.1:${{NOMAD_PORT_http}} -h www"]
      }}
      resources {{
        cpu    = 20
        memory = 16
      }}
    }}
  }}
}}
"#
    )
}

fn alloc_id(a: &Value) -> String {
    a["ID"].as_str().unwrap_or_default().to_string()
}

fn node_of(a: &Value) -> String {
    a["NodeName"].as_str().unwrap_or_default().to_string()
}

/// `nctl node status NODE -o json`'s drain report, if any.
fn drain_state(c: &Cluster, node: &str) -> Value {
    c.json(&["node", "status", node, "-o", "json"])["node"]["DrainReport"].clone()
}

/// The granted TTL of `node`'s heartbeat lease, read through the server's store endpoint.
fn heartbeat_lease_ttl(c: &Cluster, node: &str) -> i64 {
    use nomos_store::{keys, EtcdConfig, EtcdStore, KeySelector, Store};
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = EtcdStore::connect(EtcdConfig::new([c.store_url.clone()]))
            .await
            .expect("connect to the store endpoint");
        let kv = store
            .range(KeySelector::key(keys::heartbeat(node)), Default::default())
            .await
            .expect("read the heartbeat")
            .kvs
            .into_iter()
            .next()
            .expect("the node has a heartbeat");
        store
            .lease_time_to_live(kv.lease, false)
            .await
            .expect("lease")
            .granted_ttl
    })
}

#[test]
fn a_drain_moves_services_first_survives_a_server_kill_and_reports_nowhere_to_go() {
    require_busybox();
    let mut c = Cluster::start_server("drain");
    let names = ["n1", "n2", "n3"];
    let _agents: Vec<Agent> = names.iter().map(|n| c.start_agent(n)).collect();
    c.wait_nodes_ready(&names);
    assert_eq!(
        heartbeat_lease_ttl(&c, "n1"),
        20,
        "agents size their lease from the server's published settings (Nomad's 10s + 10s)"
    );
    let file = c.write_file("web.hcl", &web(2));
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    let sidecar = c.write_file("sidecar.hcl", &system_job("sidecar"));
    c.ok(&["apply", "-f", &sidecar]);
    c.wait_for("the sidecar on every node", Duration::from_secs(60), |c| {
        let r = c.running("sidecar");
        (r.len() == 3, format!("{r:?}"))
    });
    let before = c.running("web");
    assert_eq!(before.len(), 2);
    let victim = node_of(&before[0]);
    let originals: BTreeSet<String> = before
        .iter()
        .filter(|a| node_of(a) == victim)
        .map(alloc_id)
        .collect();

    c.ok(&["node", "drain", &victim, "--deadline", "300"]);
    // The server dies right after the drain was requested, and comes back on the same data dir.
    c.kill9();
    std::thread::sleep(Duration::from_secs(1));
    c.restart();

    // Follow the drain: the job never runs fewer than its two copies, and every running copy
    // answers once it has run for `migrate.min_healthy_time` (a copy that just started may not
    // listen yet: the task makes its web root before it execs httpd).
    let mut fewest = usize::MAX;
    let mut answered = 0usize;
    c.wait_for("the drain to complete", Duration::from_secs(120), |c| {
        let running = c.running("web");
        fewest = fewest.min(running.len());
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let settled = |a: &&Value| {
            let started = a["TaskStates"]["httpd"]["Events"]
                .as_array()
                .and_then(|es| es.iter().rev().find(|e| e["Type"] == "Started"))
                .and_then(|e| e["Time"].as_i64())
                .map_or(now_ms, |ns| ns / 1_000_000);
            now_ms - started >= 2_000
        };
        for a in running.iter().filter(settled) {
            let port = port_of(a, "http");
            assert!(
                http_get(port).is_some(),
                "running allocation {} answers on {port}",
                alloc_id(a)
            );
            answered += 1;
        }
        let d = drain_state(c, &victim);
        (d["State"] == "complete", d.to_string())
    });
    assert!(answered > 0, "the running copies were asked at least once");
    assert!(
        fewest >= 2,
        "an original stopped before its replacement was healthy: {fewest} running at one point"
    );
    let after = c.running("web");
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|a| node_of(a) != victim));
    let all = c.allocs("web");
    for id in &originals {
        let next = all
            .iter()
            .find(|a| alloc_id(a) == *id)
            .map(|a| a["NextAllocation"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        let replaced = all
            .iter()
            .any(|a| !next.is_empty() && alloc_id(a) == next && node_of(a) != victim);
        assert!(replaced, "original {id} has a replacement elsewhere");
    }
    // The system allocation on the drained node stopped, and only after the services.
    let sidecars = c.allocs("sidecar");
    let on_victim: Vec<&Value> = sidecars.iter().filter(|a| node_of(a) == victim).collect();
    assert!(on_victim.iter().all(|a| a["DesiredStatus"] == "stop"));
    let last_service_stop = all
        .iter()
        .filter(|a| originals.contains(&alloc_id(a)))
        .map(|a| desired_index(&c, &alloc_id(a)))
        .max()
        .unwrap_or(0);
    for s in &on_victim {
        assert!(
            desired_index(&c, &alloc_id(s)) >= last_service_stop,
            "the system allocation stops last: {s}"
        );
    }
    assert_eq!(c.running("sidecar").len(), 2, "other nodes keep theirs");

    // Draining a second web node leaves its copy nowhere to go (distinct_hosts, one node left):
    // `--wait` reports it, rides out another kill -9 and restart of the server, and the deadline
    // stops what remains.
    let second = node_of(&after[0]);
    let waiting = c.spawn_nctl(&["node", "drain", &second, "--deadline", "6", "--wait"]);
    std::thread::sleep(Duration::from_secs(2));
    c.kill9();
    std::thread::sleep(Duration::from_secs(1));
    c.restart();
    let out = waiting.wait_with_output().expect("nctl node drain --wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "drain --wait: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("nowhere to go"),
        "the blocked allocation is reported: {stdout}"
    );
    assert!(stdout.contains("drain complete"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server unreachable, retrying"),
        "--wait rode out the server restart: {stderr}"
    );
    c.wait_for(
        "nothing to run on the second drained node",
        Duration::from_secs(30),
        |c| {
            let left: Vec<Value> = c
                .running("web")
                .into_iter()
                .filter(|a| node_of(a) == second)
                .collect();
            (left.is_empty(), format!("{left:?}"))
        },
    );
}

/// A periodic batch job every 4 seconds whose task appends its job id to `runs`.
fn ticking(runs: &str) -> String {
    format!(
        r#"job "tick" {{
  datacenters = ["*"]
  type        = "batch"

  periodic {{
    crons            = ["*/4 * * * * * *"]
    prohibit_overlap = false
  }}

  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "echo $NOMAD_JOB_ID >> {runs}"]
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

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn periodic_children_launch_once_per_tick_across_server_kills_at_tick_time() {
    let mut c = Cluster::start_server("periodic");
    let _agents: Vec<Agent> = ["p1", "p2"].iter().map(|n| c.start_agent(n)).collect();
    c.wait_nodes_ready(&["p1", "p2"]);
    let runs = c.dir.path().join("runs.log");
    let file = c.write_file("tick.hcl", &ticking(&runs.display().to_string()));
    c.ok(&["apply", "-f", &file]);
    c.wait_for("a first child to run", Duration::from_secs(30), |_| {
        let l = lines(&runs);
        (!l.is_empty(), format!("{l:?}"))
    });

    // Kill the server at two tick instants (the loop launches at the tick), 1.5s down each time.
    for _ in 0..2 {
        let wait = 4_000 - now_ms().rem_euclid(4_000);
        std::thread::sleep(Duration::from_millis(wait as u64 + 20));
        c.kill9();
        std::thread::sleep(Duration::from_millis(1_500));
        c.restart();
    }
    let after_restarts = lines(&runs).len();
    c.wait_for(
        "two more ticks after the restarts",
        Duration::from_secs(40),
        |_| {
            let l = lines(&runs);
            (l.len() >= after_restarts + 2, format!("{l:?}"))
        },
    );

    // Force half-way between two ticks: a force in a tick's own second would name that tick's
    // child, which the loop may have launched already (force then answers 409, by design).
    let to_mid_period = (2_000 - now_ms().rem_euclid(4_000)).rem_euclid(4_000);
    std::thread::sleep(Duration::from_millis(to_mid_period as u64));
    let forced = c.ok(&["job", "periodic", "force", "tick"]);
    let forced_id = forced
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("force names the child: {forced}"))
        .to_string();
    c.wait_for("the forced child to run", Duration::from_secs(30), |_| {
        let l = lines(&runs);
        (l.contains(&forced_id), format!("{l:?}"))
    });
    let status = c.ok(&["status", "tick"]);
    for field in ["Next Launch", "Last Launch", "Last Success", "Children"] {
        assert!(status.contains(field), "status shows {field}: {status}");
    }
    // The same, for alerting, on the server's /metrics (Unix seconds, set once it happened).
    let port: u16 = c.http_addr.rsplit(':').next().unwrap().parse().unwrap();
    c.wait_for(
        "the periodic job's gauges on /metrics",
        Duration::from_secs(30),
        |_| {
            let metrics = http_get_path(port, "/metrics").unwrap_or_default();
            let gauge = |name: &str| -> i64 {
                let prefix = format!(
                    "nomos_loops_periodic_{name}_timestamp_seconds{{namespace=\"default\",job=\"tick\"}} "
                );
                metrics
                    .lines()
                    .find_map(|l| l.strip_prefix(prefix.as_str()))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            };
            let now = jiff::Timestamp::now().as_second();
            let next = gauge("next_launch");
            let last = gauge("last_launch");
            let success = gauge("last_success");
            (
                next > now - 5 && last > now - 600 && success > now - 600,
                format!("next {next} last {last} success {success} now {now}"),
            )
        },
    );
    // While the parent runs, only the newest five finished children are kept: once seven ran,
    // the first is gone.
    let tick_children = |c: &Cluster| -> Vec<String> {
        c.json(&["get", "jobs", "-o", "json"])
            .as_array()
            .map(|js| {
                js.iter()
                    .filter_map(|j| j["ID"].as_str())
                    .filter(|i| i.starts_with("tick-"))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let first_child = lines(&runs)[0].clone();
    c.wait_for(
        "the history limit to collect the oldest children",
        Duration::from_secs(40),
        |c| {
            let kids = tick_children(c);
            (
                lines(&runs).len() >= 7 && kids.len() <= 6 && !kids.contains(&first_child),
                format!("{} runs, children {kids:?}", lines(&runs).len()),
            )
        },
    );
    c.ok(&["stop", "tick"]);
    std::thread::sleep(Duration::from_secs(5));

    let ran = lines(&runs);
    let mut seen = BTreeMap::new();
    for id in &ran {
        *seen.entry(id.clone()).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "a tick ran twice: {twice:?} of {ran:?}");
    for id in ran.iter().filter(|id| **id != forced_id) {
        let secs: i64 = id
            .strip_prefix("tick-periodic-")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("child id {id:?}"));
        assert_eq!(secs % 4, 0, "{id} was launched for a tick of the schedule");
    }
    assert!(
        ran.len() >= 4,
        "children ran before and after the kills: {ran:?}"
    );
    // Once the parent is stopped, `nctl system gc` collects its finished children too.
    c.ok(&["system", "gc"]);
    c.wait_for(
        "the stopped parent's children collected",
        Duration::from_secs(30),
        |c| {
            let kids = tick_children(c);
            (kids.is_empty(), format!("{kids:?}"))
        },
    );
}

/// A service pinned to `node` that tolerates `lost_after` of silence.
fn pinned(node: &str, lost_after: &str) -> String {
    let settings = format!(
        r#"count = 2

    constraint {{
      attribute = "${{node.unique.name}}"
      value     = "{node}"
    }}

    disconnect {{
      lost_after = "{lost_after}"
    }}"#
    );
    loop_job("pinned", "service", &settings)
}

/// The allocation's long-lived processes (its task's shell and what the driver keeps around it),
/// leaving out the short `sleep 1` the shell loops over.
fn task_pids(alloc_id: &str) -> Vec<i32> {
    pids_of_alloc(alloc_id)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() != "sleep")
        })
        .collect()
}

/// The store revision of an allocation's last desired change (`AllocModifyIndex`).
fn desired_index(c: &Cluster, id: &str) -> i64 {
    c.json(&["alloc", "status", id, "-o", "json"])["AllocModifyIndex"]
        .as_i64()
        .unwrap_or(0)
}

/// Allocation id → (node, long-lived pids, restarts of every task).
fn snapshot(c: &Cluster, job: &str) -> BTreeMap<String, (String, Vec<i32>, u64)> {
    c.running(job)
        .iter()
        .map(|a| {
            let id = alloc_id(a);
            let restarts = a["TaskStates"]
                .as_object()
                .map(|t| {
                    t.values()
                        .map(|s| s["Restarts"].as_u64().unwrap_or(0))
                        .sum()
                })
                .unwrap_or(0);
            (id.clone(), (node_of(a), task_pids(&id), restarts))
        })
        .collect()
}

/// Asserts the same allocations run on the same nodes with no restart, each still holding the
/// processes it had (a forked `sleep` may come and go beside them).
fn assert_undisturbed(
    before: &BTreeMap<String, (String, Vec<i32>, u64)>,
    after: &BTreeMap<String, (String, Vec<i32>, u64)>,
    log: &str,
) {
    let ids = |m: &BTreeMap<String, (String, Vec<i32>, u64)>| -> Vec<String> {
        m.keys().cloned().collect()
    };
    assert_eq!(ids(after), ids(before), "same allocations\n{log}");
    for (id, (node, pids, restarts)) in before {
        let (n, now, r) = &after[id];
        assert_eq!(
            (n, r),
            (node, restarts),
            "{id}: same node, no restart\n{log}"
        );
        assert!(
            pids.iter().all(|p| now.contains(p)),
            "{id}: same processes: {pids:?} then {now:?}\n{log}"
        );
    }
}

#[test]
fn a_node_flapping_for_a_minute_causes_no_restart_and_no_replacement() {
    let c = Cluster::start_server("flap");
    // f1 is a host of its own behind a veth link the test takes down and up; f2 is beside the
    // server.
    let ns = Netns::create(2);
    let flapping = c.start_agent_in(&ns, "f1", &["--heartbeat-ttl", "2"]);
    let _steady = c.start_agent_with("f2", &["--heartbeat-ttl", "2"]);
    c.wait_nodes_ready(&["f1", "f2"]);
    let file = c.write_file("pinned.hcl", &pinned("f1", "10s"));
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "60"]);
    let before = snapshot(&c, "pinned");
    assert_eq!(before.len(), 2);
    assert!(before.values().all(|(_, pids, _)| !pids.is_empty()));

    // Twelve cycles of 3s cut off (past the 2s lease) and 2s connected: a minute in all, far
    // beyond lost_after, but never 10s in a row.
    let mut disconnected_seen = 0;
    let start = Instant::now();
    for _ in 0..12 {
        ns.cut();
        std::thread::sleep(Duration::from_millis(2_800));
        if c.node_has_status("f1", "disconnected").0 {
            disconnected_seen += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
        ns.heal();
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(start.elapsed() >= Duration::from_secs(60));
    assert!(
        disconnected_seen >= 6,
        "the flaps were real: f1 seen disconnected in {disconnected_seen} of 12 cycles"
    );
    c.wait_for(
        "f1's allocations reported running again",
        Duration::from_secs(30),
        |c| {
            let r = c.running("pinned");
            (r.len() == 2, format!("{r:?}"))
        },
    );
    let after = snapshot(&c, "pinned");
    assert_undisturbed(&before, &after, &flapping.log_tail());
    assert_eq!(
        c.allocs("pinned").len(),
        2,
        "no replacement was ever placed"
    );
}

#[test]
fn a_node_back_after_lost_after_keeps_its_originals_and_the_replacements_stop() {
    let c = Cluster::start_server("lost");
    let agents: Vec<Agent> = ["l1", "l2"]
        .iter()
        .map(|n| c.start_agent_with(n, &["--heartbeat-ttl", "2"]))
        .collect();
    c.wait_nodes_ready(&["l1", "l2"]);
    // Pinned by a soft preference only, so replacements can go to l2.
    let job = pinned("l1", "5s").replace(
        "    constraint {\n      attribute = \"${node.unique.name}\"\n      value     = \"l1\"\n    }",
        "    affinity {\n      attribute = \"${node.unique.name}\"\n      value     = \"l1\"\n      weight    = 100\n    }",
    );
    assert!(job.contains("affinity"), "{job}");
    let file = c.write_file("pinned.hcl", &job);
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "60"]);
    let before = snapshot(&c, "pinned");
    assert!(
        before.values().all(|(n, _, _)| n == "l1"),
        "both on l1: {before:?}"
    );

    agents[0].signal(libc::SIGSTOP);
    c.wait_for(
        "replacements running on l2 after lost_after",
        Duration::from_secs(60),
        |c| {
            let r = c.running("pinned");
            let on_l2 = r.iter().filter(|a| node_of(a) == "l2").count();
            (on_l2 == 2, format!("{r:?}"))
        },
    );
    for (id, (_, pids, _)) in &before {
        let now = task_pids(id);
        assert!(
            pids.iter().all(|p| now.contains(p)),
            "the original runs on while l1 is away: {pids:?} then {now:?}"
        );
    }
    agents[0].signal(libc::SIGCONT);
    c.wait_for(
        "the originals kept and the replacements stopped",
        Duration::from_secs(60),
        |c| {
            let all = c.allocs("pinned");
            let originals_run = before.keys().all(|id| {
                all.iter().any(|a| {
                    alloc_id(a) == *id
                        && a["DesiredStatus"] == "run"
                        && a["ClientStatus"] == "running"
                })
            });
            let replacements_stopped = all
                .iter()
                .filter(|a| node_of(a) == "l2")
                .all(|a| a["DesiredStatus"] == "stop");
            (originals_run && replacements_stopped, format!("{all:?}"))
        },
    );
    let after = snapshot(&c, "pinned");
    assert_undisturbed(&before, &after, &agents[0].log_tail());
}
