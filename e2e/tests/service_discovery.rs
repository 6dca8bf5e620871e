//! Service discovery through the real binary: a `backend` job's instances are registered by the
//! services loop once their agent reports them running, carry their http check's health,
//! show in `nctl service list|info`, `/v1/service/<name>` (Nomad's shape, with its index) and
//! `dig SRV` against the node's DNS, render into a `front` job's template through
//! `nomadService` (kept current, signalled on change), and go when the job stops.

use std::time::Duration;

mod common;

use common::*;
use serde_json::Value;

fn backend_job(count: u32) -> String {
    format!(
        r#"job "backend" {{
  datacenters = ["*"]

  group "api" {{
    count = {count}

    network {{
      port "http" {{}}
    }}

    service {{
      name     = "backend"
      port     = "http"
      provider = "nomad"
      tags     = ["v1", "alloc-${{NOMAD_ALLOC_INDEX}}"]

      check {{
        type     = "http"
        path     = "/health"
        interval = "1s"
        timeout  = "1s"
      }}
    }}

    task "httpd" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "mkdir -p www && echo up > www/index.html && echo ok > www/health && exec /bin/busybox httpd -f -p 127.0.0.1:${{NOMAD_PORT_http}} -h www"]
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

const FRONT_JOB: &str = r#"job "front" {
  datacenters = ["*"]

  group "front" {
    task "list" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "show() { echo \"--- list\"; cat local/backends.txt; echo \"--- end\"; }; trap show HUP; show; while true; do sleep 0.1; done"]
      }
      template {
        destination   = "local/backends.txt"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        splay         = "100ms"
        data          = <<EOT
{{- range nomadService "backend" }}
backend {{ .Address }}:{{ .Port }} {{ join "," .Tags }}
{{- end }}
EOT
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#;

/// A GET over HTTP/1.0: the response's head and body.
fn raw_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_string(), body.to_string())
}

/// The ports `dig` finds in the SRV records of `backend` on the cluster's DNS (Debian's
/// dnsutils; missing, the test fails saying so).
fn dig_srv_ports(c: &Cluster) -> Vec<u16> {
    assert!(!c.dns_addr.is_empty(), "nctl dev printed no DNS address");
    let (ip, port) = c.dns_addr.rsplit_once(':').unwrap();
    let out = std::process::Command::new("dig")
        .args([
            &format!("@{ip}"),
            "-p",
            port,
            "+short",
            "SRV",
            "backend.service.default.nomos",
        ])
        .output()
        .expect("dig (Debian's dnsutils; scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "dig: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `priority weight port target` per line.
    let mut ports: Vec<u16> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect();
    ports.sort_unstable();
    ports
}

fn instances(c: &Cluster) -> Vec<Value> {
    let v = c.json(&["service", "info", "backend", "--json"]);
    v.as_array().cloned().unwrap_or_default()
}

/// The backend ports the front's log lists last (its last `--- list` block).
fn last_listing(logs: &str) -> Option<Vec<u16>> {
    let block = logs.rsplit_once("--- list")?.1;
    let block = block.split_once("--- end")?.0;
    let mut ports: Vec<u16> = block
        .lines()
        .filter_map(|l| l.strip_prefix("backend "))
        .filter_map(|l| {
            l.split_whitespace()
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    ports.sort_unstable();
    Some(ports)
}

fn healthy_ports(c: &Cluster) -> Vec<u16> {
    let mut p: Vec<u16> = instances(c)
        .iter()
        .filter(|r| r["Healthy"] == true)
        .map(|r| r["Port"].as_u64().unwrap() as u16)
        .collect();
    p.sort_unstable();
    p
}

/// The `www/health` file an allocation's httpd serves its check from.
fn health_file(c: &Cluster, alloc_id: &str) -> std::path::PathBuf {
    let mut dirs = vec![c.data_dir.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.ends_with(format!("{alloc_id}/httpd/www/health")) {
                return p;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(p);
            }
        }
    }
    panic!(
        "no www/health for allocation {alloc_id} under {}",
        c.data_dir.display()
    );
}

#[test]
fn a_services_healthy_instances_are_registered_listed_rendered_and_deregistered() {
    require_busybox();
    let c = Cluster::start("disc");
    let file = c.write_file("backend.hcl", &backend_job(2));
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    let allocs = c.running("backend");
    let mut ports: Vec<u16> = allocs.iter().map(|a| port_of(a, "http")).collect();
    ports.sort_unstable();

    c.wait_for(
        "both backend instances registered and passing their check",
        Duration::from_secs(30),
        |c| {
            let healthy = healthy_ports(c);
            (healthy == ports, format!("{healthy:?}"))
        },
    );
    for r in &instances(&c) {
        assert_eq!(r["ServiceName"], "backend", "{r}");
        assert_eq!(r["JobID"], "backend", "{r}");
        let tags: Vec<&str> = r["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(
            tags.contains(&"v1") && tags.iter().any(|t| t.starts_with("alloc-")),
            "{r}"
        );
    }
    let table = c.ok(&["service", "list"]);
    assert!(table.contains("backend") && table.contains("v1"), "{table}");
    let info = c.ok(&["service", "info", "backend"]);
    assert_eq!(info.matches("passing").count(), 2, "{info}");
    c.wait_for("dig to find both instances", Duration::from_secs(10), |c| {
        let found = dig_srv_ports(c);
        (found == ports, format!("{found:?}"))
    });

    // Nomad's HTTP shape, as Prometheus and Traefik read it.
    let (head, body) = raw_get(&c.http_addr, "/v1/service/backend");
    let index: i64 = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-nomad-index:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("X-Nomad-Index in {head}"));
    assert!(index > 1, "{head}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body.as_array().map(Vec::len), Some(2), "{body}");

    // A template lists the healthy instances.
    let front = c.write_file("front.hcl", FRONT_JOB);
    c.ok(&["apply", "-f", &front, "--wait", "--timeout", "120"]);
    let front_id = c.running("front")[0]["ID"].as_str().unwrap().to_string();
    let listing = |c: &Cluster| last_listing(&c.ok(&["logs", &front_id[..8]]));
    c.wait_for("the front's first listing", Duration::from_secs(20), |c| {
        let l = listing(c);
        (l.as_ref() == Some(&ports), format!("{l:?}"))
    });
    let logs = c.ok(&["logs", &front_id[..8]]);
    assert!(logs.contains("v1,alloc-"), "tags rendered: {logs}");

    // Scaled to 3: the front's file lists 3 within 2 s of the third registering, and its task
    // got SIGHUP (it prints the file on each).
    let file = c.write_file("backend.hcl", &backend_job(3));
    c.ok(&["apply", "-f", &file]);
    c.wait_for("a third healthy backend", Duration::from_secs(30), |c| {
        let h = healthy_ports(c);
        (h.len() == 3, format!("{h:?}"))
    });
    let three = healthy_ports(&c);
    c.wait_for(
        "the front to list 3 within 2 s",
        Duration::from_secs(2),
        |c| {
            let l = listing(c);
            (l.as_ref() == Some(&three), format!("{l:?}"))
        },
    );

    // One backend fails its check: it leaves the list.
    let failing = c.running("backend")[0]["ID"].as_str().unwrap().to_string();
    std::fs::remove_file(health_file(&c, &failing)).expect("remove the health file");
    c.wait_for(
        "the failing backend to leave the front's list",
        Duration::from_secs(20),
        |c| {
            let l = listing(c).unwrap_or_default();
            (l.len() == 2 && healthy_ports(c) == l, format!("{l:?}"))
        },
    );
    let info = c.ok(&["service", "info", "backend"]);
    assert!(info.contains("critical"), "{info}");
    c.wait_for(
        "dig to answer only the healthy ones",
        Duration::from_secs(10),
        |c| {
            let (found, healthy) = (dig_srv_ports(c), healthy_ports(c));
            (
                found == healthy && found.len() == 2,
                format!("{found:?} {healthy:?}"),
            )
        },
    );

    // Stopping the backend deregisters every instance, and the list empties.
    c.ok(&["stop", "backend"]);
    c.wait_for(
        "the catalogue and the front's list to empty",
        Duration::from_secs(30),
        |c| {
            let list = instances(c);
            let l = listing(c);
            (
                list.is_empty() && l == Some(vec![]),
                format!("{list:?} {l:?}"),
            )
        },
    );
    let events = c.ok(&["alloc", "status", &front_id[..8]]);
    assert!(
        events.contains("Signaling"),
        "the front was signalled: {events}"
    );
    c.ok(&["stop", "front"]);
}

#[test]
fn check_restart_restarts_a_task_whose_check_keeps_failing() {
    require_busybox();
    let c = Cluster::start("chkrs");
    let job = backend_job(1).replace(
        "        timeout  = \"1s\"\n      }",
        "        timeout  = \"1s\"\n        check_restart {\n          limit = 3\n          grace = \"10s\"\n        }\n      }",
    );
    assert!(job.contains("check_restart"), "{job}");
    let file = c.write_file("backend.hcl", &job);
    c.ok(&["apply", "-f", &file, "--wait", "--timeout", "120"]);
    c.wait_for("the backend healthy", Duration::from_secs(30), |c| {
        let h = healthy_ports(c);
        (h.len() == 1, format!("{h:?}"))
    });
    let id = c.running("backend")[0]["ID"].as_str().unwrap().to_string();
    std::fs::remove_file(health_file(&c, &id)).expect("remove the health file");
    // Three failed checks a second apart: the task restarts (its command writes the file
    // again), and the instance comes back healthy. The grace of 10 s keeps a slow start on a
    // loaded machine (the first check failing before httpd listens) from counting.
    c.wait_for(
        "the task restarted by its check",
        Duration::from_secs(30),
        |c| {
            let status = c.ok(&["alloc", "status", &id[..8]]);
            (status.contains("healthcheck: check"), status)
        },
    );
    c.wait_for("the backend healthy again", Duration::from_secs(30), |c| {
        let h = healthy_ports(c);
        (h.len() == 1, format!("{h:?}"))
    });
    let a = c.json(&["alloc", "status", &id[..8], "-o", "json"]);
    let restarts = a["TaskStates"]["httpd"]["Restarts"].as_u64();
    assert!(restarts >= Some(1), "{a}");
    c.ok(&["stop", "backend"]);
}
