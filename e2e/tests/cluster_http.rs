//! Every kind of node serves its logs, restarts and metrics over HTTP at the address it
//! registers, so `nctl logs` and `nctl alloc restart` work in a real cluster:
//! - a separate `nctl agent` process under `nctl server`, whose files the server does not hold
//!   (logs and restarts go through the server to the agent's endpoint);
//! - the local agent of a Nomad-style config with server and client enabled, started as
//!   `nctl server -config nomad.hcl` or as `nctl agent -config nomad.hcl`;
//! - with Nomad's `tls` block: HTTPS on the API for `nctl` holding a CLI certificate, and
//!   mutual TLS from the server to the agent's endpoint.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod common;

use common::tls::{cli_env, https_get, make_certs, pem, tls_block};
use common::*;

/// A service whose task says when it started, with its pid, and then sleeps as that same
/// process (no short-lived children come and go among the allocation's pids: the driver's
/// wrapper shell and this one).
const TALKER: &str = r#"job "talker" {
  datacenters = ["*"]

  group "g" {
    count = 1

    task "talk" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo \"started pid $$\"; exec sleep 3600"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

/// The pids the talker's log says it started as, in order.
fn started_pids(log: &str) -> Vec<i32> {
    log.lines()
        .filter_map(|l| l.strip_prefix("started pid ")?.parse().ok())
        .collect()
}

/// `node` as `nctl node status NODE -o json` shows it (Nomad's `Node`).
fn node_json(c: &Cluster, node: &str) -> Value {
    c.json(&["node", "status", node, "-o", "json"])["node"].clone()
}

/// The loopback port `node` registered for its agent's HTTP endpoint.
fn registered_port(c: &Cluster, node: &str) -> u16 {
    let n = node_json(c, node);
    let port: u16 = n["HTTPAddr"]
        .as_str()
        .and_then(|a| a.strip_prefix("127.0.0.1:"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{node} registers a loopback http_addr: {n}"));
    assert_ne!(port, 0, "the registered port is the bound one: {n}");
    port
}

/// Runs the talker on `node`, reads its output with `nctl logs`, restarts it with `nctl alloc
/// restart` (a new process in the same allocation, `restarts` 1) and reads both starts back.
fn logs_and_restart_work(c: &Cluster, node: &str) {
    let file = c.write_file("talker.hcl", TALKER);
    c.ok(&["apply", "-f", &file]);
    c.wait_for("talker to run", Duration::from_secs(90), |c| {
        let r = c.running("talker");
        (r.len() == 1, format!("{r:?}"))
    });
    let alloc = c.running("talker").remove(0);
    assert_eq!(alloc["NodeName"], node, "placed on {node}");
    let id = alloc["ID"].as_str().unwrap().to_string();
    let pids = pids_of_alloc(&id);
    assert!(!pids.is_empty(), "talker has processes");

    c.wait_for(
        "nctl logs to show the task's output",
        Duration::from_secs(30),
        |c| {
            let out = c.nctl(&["logs", &id]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let started = started_pids(&text);
            let ok = out.status.success() && started.len() == 1 && pids.contains(&started[0]);
            (
                ok,
                format!("{text}\nstderr: {}", String::from_utf8_lossy(&out.stderr)),
            )
        },
    );

    c.ok(&["alloc", "restart", &id]);
    c.wait_for(
        "the task to run again after the restart",
        Duration::from_secs(60),
        |c| {
            let allocs = c.running("talker");
            let restarted = allocs.len() == 1 && {
                let state = &allocs[0]["TaskStates"]["talk"];
                state["Restarts"] == 1 && state["State"] == "running"
            };
            let now = pids_of_alloc(&id);
            let fresh = !now.is_empty() && now.iter().all(|p| !pids.contains(p));
            (restarted && fresh, format!("pids {now:?}; {allocs:?}"))
        },
    );
    assert_eq!(
        c.running("talker")[0]["ID"],
        id.as_str(),
        "restarted in place, not replaced"
    );
    let new_pids = pids_of_alloc(&id);
    c.wait_for(
        "nctl logs to show both starts",
        Duration::from_secs(30),
        |c| {
            let text = c.ok(&["logs", &id]);
            let started = started_pids(&text);
            let ok =
                started.len() == 2 && pids.contains(&started[0]) && new_pids.contains(&started[1]);
            (ok, text)
        },
    );
}

#[test]
fn a_remote_agent_serves_logs_restarts_and_metrics_over_http() {
    let c = Cluster::start_server("agenthttp");
    let agent = c.start_agent("remote-1");
    c.wait_nodes_ready(&["remote-1"]);
    // The harness starts agents with `--http-addr 127.0.0.1:0`: the node registered the port
    // its agent really listens on.
    let port = registered_port(&c, "remote-1");

    logs_and_restart_work(&c, "remote-1");

    let metrics = http_get_path(port, "/metrics")
        .unwrap_or_else(|| panic!("the agent answers on port {port}\n{}", agent.log_tail()));
    for line in [
        "nomos_agent_tasks_running 1",
        "nomos_agent_task_starts_total 2",
        "nomos_agent_task_restarts_total 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "agent metrics have {line:?}:\n{metrics}"
        );
    }
    c.ok(&["stop", "talker"]);
}

/// A Nomad agent file for one machine that is both server and client, with a few Nomad
/// settings Nomos only warns about.
fn nomad_hcl(c: &Cluster) -> String {
    let port = c.http_addr.rsplit(':').next().unwrap();
    format!(
        r#"data_dir   = "{data}"
datacenter = "dc1"
name       = "{node}"
bind_addr  = "127.0.0.1"
log_level  = "INFO"

ports {{
  http = {port}
  rpc  = 4647
  serf = 4648
}}

server {{
  enabled          = true
  bootstrap_expect = 1
}}

client {{
  enabled = true
  meta {{
    rack = "r1"
  }}
}}

plugin "raw_exec" {{
  config {{
    enabled = true
  }}
}}
"#,
        data = c.data_dir.display(),
        node = c.node,
    )
}

/// Starts `nctl VERB -config nomad.hcl EXTRA...` and waits for its local node.
fn start_with_nomad_config(name: &str, verb: &str, extra: &[&str]) -> Cluster {
    let (verb, extra) = (verb.to_string(), extra.to_vec());
    Cluster::start_custom(name, Mode::Dev, move |c| {
        let file = c.write_file("nomad.hcl", &nomad_hcl(c));
        let mut args = vec![verb, "-config".to_string(), file];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    })
}

#[test]
fn nctl_server_with_a_nomad_config_runs_a_single_node_cluster_whose_tasks_restart() {
    let c = start_with_nomad_config("srvcfg", "server", &[]);
    let node = node_json(&c, &c.node);
    assert_eq!(node["Meta"]["rack"], "r1", "{node}");
    // The local agent listens where `nctl agent` would: bind_addr, port 4749.
    assert_eq!(node["HTTPAddr"], "127.0.0.1:4749", "{node}");
    assert!(
        c.data_dir.join("server").is_dir() && c.data_dir.join("client").is_dir(),
        "the store and the agent live under data_dir"
    );
    logs_and_restart_work(&c, &c.node);
    c.ok(&["stop", "talker"]);
}

#[test]
fn nctl_agent_with_a_nomad_config_that_enables_the_server_runs_the_same() {
    let c = start_with_nomad_config(
        "agentcfg",
        "agent",
        &["--http-addr", "127.0.0.1:0", "--no-docker"],
    );
    let node = node_json(&c, &c.node);
    assert_eq!(node["Meta"]["rack"], "r1", "{node}");
    assert_eq!(
        node["Drivers"]["docker"],
        Value::Null,
        "--no-docker reaches the local agent: {node}"
    );
    registered_port(&c, &c.node);
    logs_and_restart_work(&c, &c.node);
    c.ok(&["stop", "talker"]);
}

/// A server-only Nomad config with TLS.
fn tls_server_hcl(c: &Cluster) -> String {
    let port = c.http_addr.rsplit(':').next().unwrap();
    format!(
        r#"data_dir  = "{data}"
bind_addr = "127.0.0.1"

ports {{
  http = {port}
}}

server {{
  enabled          = true
  bootstrap_expect = 1
}}
{tls}"#,
        data = c.data_dir.display(),
        tls = tls_block(c.dir.path(), "server"),
    )
}

/// A client-only Nomad config with TLS and raw_exec, for a separate `nctl agent`.
fn tls_client_hcl(c: &Cluster) -> String {
    format!(
        r#"datacenter = "dc1"

client {{
  enabled = true
}}

plugin "raw_exec" {{
  config {{
    enabled = true
  }}
}}
{tls}"#,
        tls = tls_block(c.dir.path(), "client"),
    )
}

#[test]
fn with_tls_nctl_holding_a_cli_certificate_reaches_the_api_and_the_server_calls_agents_over_mutual_tls(
) {
    let c = Cluster::start_prepared("tls", Mode::Server, |c| {
        make_certs(c);
        c.env = cli_env(c.dir.path());
        let file = c.write_file("server.hcl", &tls_server_hcl(c));
        let store_port = c.store_url.rsplit(':').next().unwrap().to_string();
        let store_addr = format!("127.0.0.1:{store_port}");
        vec!["server", "-config", &file, "--store-addr", &store_addr]
            .into_iter()
            .map(String::from)
            .collect()
    });
    assert!(c.addr.starts_with("https://"), "{}", c.addr);
    let dir = c.dir.path().to_path_buf();
    // With `tls { rpc = true }` the store endpoint is mutual TLS too; the agent presents its
    // `tls` block's certificate there.
    let mut c = c;
    c.store_url = c.store_url.replacen("http://", "https://", 1);
    let agent_file = c.write_file("client.hcl", &tls_client_hcl(&c));
    let agent = c.start_agent_with("tls-1", &["-config", &agent_file]);
    c.wait_nodes_ready(&["tls-1"]);
    let node = node_json(&c, "tls-1");
    let agent_url = node["HTTPAddr"].as_str().unwrap_or_default().to_string();
    assert!(agent_url.starts_with("https://127.0.0.1:"), "{node}");

    // Logs and restarts go from the server to the agent's endpoint over mutual TLS.
    logs_and_restart_work(&c, "tls-1");

    // `nctl` trusting the CA but holding no client certificate is refused, saying why.
    let out = Command::new(nctl_bin())
        .args(["get", "nodes"])
        .env("NOMOS_ADDR", &c.addr)
        .env("NOMOS_CACERT", pem(&dir, "nomad-agent-ca"))
        .current_dir(&dir)
        .output()
        .expect("run nctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "refused without a client certificate"
    );
    assert!(
        stderr.contains("requires a client certificate") && stderr.contains("NOMOS_CLIENT_CERT"),
        "the error says what to set: {stderr}"
    );

    // The agent's endpoint answers only callers holding a certificate of the CA.
    let metrics = format!("{agent_url}/metrics");
    let ca = pem(&dir, "nomad-agent-ca");
    let refused = https_get(&metrics, ca.clone(), None);
    assert!(refused.is_err(), "no certificate: {refused:?}");
    let cli = (
        pem(&dir, "global-cli-nomad"),
        pem(&dir, "global-cli-nomad-key"),
    );
    assert_eq!(
        https_get(&metrics, ca, Some(cli)),
        Ok(200),
        "{}",
        agent.log_tail()
    );
    c.ok(&["stop", "talker"]);
}
