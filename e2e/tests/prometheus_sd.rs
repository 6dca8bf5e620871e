//! Prometheus's `nomad_sd_configs` against Nomos (issue 16): a real `prometheus` binary
//! discovers a `backend` job's two instances through `/v1/services` and `/v1/service/<name>`
//! (Nomad's Go API client), scrapes their `/metrics`, and drops them once the job stops.
//!
//! The binary is `PROMETHEUS_BIN`, or Debian's (scripts/install-deps). Debian's package
//! (2.42.0+ds) is built without the Nomad discovery (its 08-Disable_nomad.patch), so the test is
//! ignored in the suite and run by hand with `PROMETHEUS_BIN` pointing at a build that has it
//! (upstream's release); with Debian's binary it fails, saying so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;
use serde_json::Value;

/// Where Debian's `prometheus` package (scripts/install-deps) puts the server.
const DEBIAN_PROMETHEUS: &str = "/usr/bin/prometheus";

/// The Prometheus server under test: `PROMETHEUS_BIN`, or Debian's.
fn prometheus_bin() -> PathBuf {
    let bin = std::env::var_os("PROMETHEUS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEBIAN_PROMETHEUS));
    assert!(
        bin.exists(),
        "this test needs a Prometheus server at {} (Debian's prometheus package: run \
         scripts/install-deps, or set PROMETHEUS_BIN to a build with nomad_sd_configs)",
        bin.display()
    );
    bin
}

/// A count-2 service job whose busybox httpd serves `/` (its http check) and `/metrics`
/// (Prometheus's text format).
fn backend_job() -> String {
    r#"job "backend" {
  datacenters = ["*"]

  group "api" {
    count = 2

    network {
      port "http" {}
    }

    service {
      name     = "backend"
      port     = "http"
      provider = "nomad"
      tags     = ["metrics"]

      check {
        type     = "http"
        path     = "/"
        interval = "1s"
        timeout  = "1s"
      }
    }

    task "httpd" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "mkdir -p www && echo up > www/index.html && printf '# TYPE up_probe gauge\\nup_probe 1\\n' > www/metrics && exec /bin/busybox httpd -f -p 127.0.0.1:${NOMAD_PORT_http} -h www"]
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#
    .to_string()
}

/// A running `prometheus`, killed (and reaped) on drop, panicking test or not.
struct Prometheus {
    child: Option<Child>,
    port: u16,
    log_path: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port with its config and TSDB under `dir`,
    /// discovering targets from the Nomos API at `api` (host:port).
    fn start(dir: &Path, api: &str) -> Prometheus {
        let bin = prometheus_bin();
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, prometheus_config(api)).expect("write prometheus.yml");
        let tsdb = dir.join("tsdb");
        let log_path = dir.join("prometheus.log");
        let log = std::fs::File::create(&log_path).expect("prometheus log");
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("prometheus log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut p = Prometheus {
            child: Some(child),
            port,
            log_path,
        };
        p.wait_for("Prometheus to be ready", Duration::from_secs(30), |p| {
            let body = p.get("/-/ready").unwrap_or_default();
            (body.contains("Ready"), body)
        });
        p
    }

    /// A GET on Prometheus's API; `None` when nothing answers.
    fn get(&mut self, path: &str) -> Option<String> {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            let log = self.log_tail();
            if log.contains("field nomad_sd_configs not found") {
                panic!(
                    "this Prometheus build ({}) has no Nomad service discovery (Debian's \
                     package disables it with its 08-Disable_nomad.patch): set PROMETHEUS_BIN \
                     to a build with nomad_sd_configs (upstream's release binary). Its log:\n{log}",
                    prometheus_bin().display()
                );
            }
            panic!("prometheus exited ({status}); its log:\n{log}");
        }
        http_get_path(self.port, path)
    }

    /// The active targets of the `nomos` scrape pool (`/api/v1/targets`).
    fn targets(&mut self) -> (Vec<Value>, String) {
        let body = self.get("/api/v1/targets?state=active").unwrap_or_default();
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let active = v["data"]["activeTargets"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .filter(|t| t["scrapePool"] == "nomos")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        (active, body)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Polls `check` every 250ms until it says done; panics after `timeout` with `what`, the
    /// last observation and Prometheus's log.
    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&mut Prometheus) -> (bool, String),
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            let (done, seen) = check(self);
            if done {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {}s waiting for {what}; last seen: {seen}\nprometheus log ({}):\n{}",
                    timeout.as_secs(),
                    self.log_path.display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Scrapes every second what `nomad_sd_configs` finds at `api`, refreshed every second.
fn prometheus_config(api: &str) -> String {
    format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: nomos
    metrics_path: /metrics
    nomad_sd_configs:
      - server: http://{api}
        refresh_interval: 1s
"#
    )
}

fn label<'a>(target: &'a Value, name: &str) -> &'a str {
    target["discoveredLabels"][name]
        .as_str()
        .unwrap_or_default()
}

#[test]
#[ignore = "needs a Prometheus with nomad_sd_configs: Debian's 2.42 is built without it \
            (08-Disable_nomad.patch); run with PROMETHEUS_BIN=/path/to/prometheus \
            cargo test -p nomos-e2e --test prometheus_sd -- --ignored (docs/services.md)"]
fn prometheus_nomad_sd_discovers_scrapes_and_drops_a_jobs_instances() {
    require_busybox();
    let c = Cluster::start("promsd");
    // Prometheus first: it finds the instances as they are registered.
    let prom_dir = tempfile::tempdir().expect("temp dir");
    let mut prom = Prometheus::start(prom_dir.path(), &c.http_addr);
    let file = c.write_file("backend.hcl", &backend_job());
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    let allocs = c.running("backend");
    assert_eq!(allocs.len(), 2, "{allocs:?}");
    let mut ports: Vec<u16> = allocs.iter().map(|a| port_of(a, "http")).collect();
    ports.sort_unstable();
    for p in &ports {
        c.wait_for("the backend's /metrics", Duration::from_secs(20), |_| {
            let body = http_get_path(*p, "/metrics").unwrap_or_default();
            (body.contains("up_probe 1"), body)
        });
    }

    // Both instances discovered and scraped.
    prom.wait_for(
        "both backend instances as healthy Prometheus targets",
        Duration::from_secs(60),
        |p| {
            let (active, body) = p.targets();
            let up = active.iter().filter(|t| t["health"] == "up").count();
            (active.len() == 2 && up == 2, body)
        },
    );
    let (active, body) = prom.targets();
    let mut seen: Vec<u16> = Vec::new();
    for t in &active {
        assert_eq!(label(t, "__meta_nomad_service"), "backend", "{t}");
        assert_eq!(label(t, "__meta_nomad_namespace"), "default", "{t}");
        assert_eq!(label(t, "__meta_nomad_address"), "127.0.0.1", "{t}");
        assert_eq!(label(t, "__meta_nomad_tags"), ",metrics,", "{t}");
        let port: u16 = label(t, "__meta_nomad_service_port")
            .parse()
            .unwrap_or_else(|e| panic!("__meta_nomad_service_port: {e}: {t}"));
        assert_eq!(
            t["labels"]["instance"],
            format!("127.0.0.1:{port}"),
            "the default address is address:port: {t}"
        );
        assert_eq!(
            t["scrapeUrl"],
            format!("http://127.0.0.1:{port}/metrics"),
            "{t}"
        );
        assert_eq!(t["lastError"], "", "{t}");
        seen.push(port);
    }
    seen.sort_unstable();
    assert_eq!(seen, ports, "each target on its allocation's port: {body}");

    // Stopping the job deregisters the instances; the next refresh drops the targets.
    c.ok(&["stop", "backend"]);
    prom.wait_for(
        "the backend targets to disappear",
        Duration::from_secs(30),
        |p| {
            let (active, body) = p.targets();
            (active.is_empty(), body)
        },
    );
    drop(prom);
}
