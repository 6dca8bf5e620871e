//! Measured usage end to end: a raw_exec task that burns CPU and holds 60 MiB shows both in
//! Nomad's stats endpoint and on `/metrics` (promtool-clean, and every metric the Grafana
//! dashboard in manifests/ queries is there), and the cluster chart, computed from the store,
//! keeps its points across a restart of `nctl dev`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const BURN: &str = r#"
job "burn" {
  datacenters = ["*"]

  group "hot" {
    task "spin" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        # 60 MiB without a newline: tail keeps it all while sleep holds the pipe open.
        args = ["-c", "(head -c 60m /dev/zero; sleep 3600) | tail > /dev/null & while :; do :; done"]
      }
      resources {
        cpu    = 100
        memory = 256
      }
    }
  }
}
"#;

const MIB: f64 = 1024.0 * 1024.0;

fn start() -> Cluster {
    Cluster::start_custom("usage", Mode::Dev, |c| {
        let mut args: Vec<String> = ["dev", "--no-example", "--no-docker", "--data-dir"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(c.data_dir.display().to_string());
        for (flag, value) in [
            ("--http-addr", c.http_addr.as_str()),
            ("--name", c.node.as_str()),
            ("--store-addr", "127.0.0.1:0"),
            ("--dns-addr", "127.0.0.1:0"),
            ("--usage-interval", "1"),
        ] {
            args.push(flag.to_string());
            args.push(value.to_string());
        }
        args
    })
}

fn api_port(c: &Cluster) -> u16 {
    c.http_addr.rsplit(':').next().unwrap().parse().unwrap()
}

fn get_json(c: &Cluster, path: &str) -> Option<Value> {
    serde_json::from_str(&http_get_path(api_port(c), path)?).ok()
}

/// The value of the sample of `metric` whose labels contain `label`, on `/metrics` text.
fn sample(metrics: &str, metric: &str, label: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Every `nomos_*` name in the dashboard's queries.
fn dashboard_metrics() -> Vec<String> {
    let path = workspace_root().join("manifests/grafana/nomos.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    let mut names = Vec::new();
    for e in &exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("nomos_") {
            let tail = &rest[i..];
            let end = tail
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(tail.len());
            names.push(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    assert!(
        names.len() >= 9,
        "the dashboard queries the metrics: {names:?}"
    );
    names.sort();
    names.dedup();
    names
}

#[test]
fn a_busy_raw_exec_task_shows_its_cpu_and_memory_and_the_chart_survives_a_restart() {
    let mut c = start();
    let file = c.write_file("burn.hcl", BURN);
    c.ok(&["apply", "-f", &file]);
    let mut id = String::new();
    c.wait_for("the burner to run", Duration::from_secs(60), |c| {
        let running = c.running("burn");
        id = running
            .first()
            .and_then(|a| a["ID"].as_str())
            .unwrap_or_default()
            .to_string();
        (!id.is_empty(), format!("{running:?}"))
    });

    // Nomad's stats endpoint answers the agent's measurement.
    let stats_path = format!("/v1/client/allocation/{id}/stats");
    c.wait_for("stats with CPU and 50 MiB", Duration::from_secs(60), |c| {
        let s = get_json(c, &stats_path).unwrap_or_default();
        let task = &s["Tasks"]["spin"]["ResourceUsage"];
        let rss = task["MemoryStats"]["RSS"].as_f64().unwrap_or(0.0);
        let pct = task["CpuStats"]["Percent"].as_f64().unwrap_or(0.0);
        let mhz = task["CpuStats"]["TotalTicks"].as_f64().unwrap_or(0.0);
        (rss > 50.0 * MIB && pct > 10.0 && mhz > 0.0, s.to_string())
    });

    // /metrics, computed from the usage report in the store.
    let label = format!("alloc_id=\"{id}\"");
    let mut metrics = String::new();
    c.wait_for(
        "metrics with CPU and 50 MiB",
        Duration::from_secs(60),
        |c| {
            metrics = http_get_path(api_port(c), "/metrics").unwrap_or_default();
            let cpu = sample(&metrics, "nomos_task_cpu_seconds_total", &label).unwrap_or(0.0);
            let mem = sample(&metrics, "nomos_task_memory_bytes", &label).unwrap_or(0.0);
            (cpu > 0.5 && mem > 50.0 * MIB, metrics.clone())
        },
    );
    let task_labels = [
        "namespace=\"default\"",
        "job=\"burn\"",
        "group=\"hot\"",
        "task=\"spin\"",
        &format!("node=\"{}\"", c.node),
    ];
    let line = metrics
        .lines()
        .find(|l| l.starts_with("nomos_task_cpu_seconds_total{"))
        .unwrap();
    for l in task_labels {
        assert!(line.contains(l), "{l} in {line}");
    }
    let running = "nomos_allocations{namespace=\"default\",job=\"burn\",status=\"running\"} 1";
    assert!(metrics.contains(running), "{metrics}");
    assert!(
        sample(&metrics, "nomos_job_memory_bytes", "job=\"burn\"").unwrap_or(0.0) > 50.0 * MIB,
        "{metrics}"
    );
    for gauge in [
        "nomos_cluster_cpu_capacity_mhz",
        "nomos_cluster_memory_capacity_bytes",
    ] {
        let v: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{gauge} "))?.parse().ok())
            .unwrap_or(0.0);
        assert!(v > 0.0, "{gauge} in {metrics}");
    }
    promtool_check(&metrics);
    for name in dashboard_metrics() {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&name) && l[name.len()..].starts_with(['{', ' '])),
            "the dashboard queries {name}, which /metrics does not export:\n{metrics}"
        );
    }

    // The cluster chart comes from the store: the points from before a restart are still
    // there right after it, before the agent reported again.
    let mut before = Vec::new();
    c.wait_for("a few chart points", Duration::from_secs(30), |c| {
        let body = get_json(c, "/ui/series").unwrap_or_default();
        before = body["points"].as_array().cloned().unwrap_or_default();
        let measured = before
            .iter()
            .any(|p| p["memory_measured_mb"].as_u64().unwrap_or(0) > 50);
        (before.len() >= 3 && measured, body.to_string())
    });
    let first_t = before[0]["t"].clone();
    c.restart();
    let body = get_json(&c, "/ui/series").expect("/ui/series after the restart");
    let after = body["points"].as_array().cloned().unwrap_or_default();
    assert!(
        after.iter().any(|p| p["t"] == first_t),
        "the point at {first_t} survives the restart: {after:?}"
    );
    let alloc_chart = get_json(&c, &format!("/ui/series/allocation/{id}")).unwrap();
    assert!(
        !alloc_chart["points"].as_array().unwrap().is_empty(),
        "{alloc_chart}"
    );
    c.ok(&["stop", "burn", "--purge"]);
}
