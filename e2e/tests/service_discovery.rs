//! Service discovery through the real binary: a `backend` job's instances are registered by the
//! services loop once their agent reports them running, carry their http check's health,
//! show in `nctl service list|info` and `/v1/service/<name>` (Nomad's shape, with its index),
//! render into a `front` job's template through `nomadService`, and go when the job stops.

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
        path     = "/"
        interval = "1s"
        timeout  = "1s"
      }}
    }}

    task "httpd" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "mkdir -p www && echo up > www/index.html && exec /bin/busybox httpd -f -p 127.0.0.1:${{NOMAD_PORT_http}} -h www"]
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
        args    = ["-c", "cat local/backends.txt && exec sleep 3600"]
      }
      template {
        destination = "local/backends.txt"
        data        = <<EOT
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

fn instances(c: &Cluster) -> Vec<Value> {
    let v = c.json(&["service", "info", "backend", "--json"]);
    v.as_array().cloned().unwrap_or_default()
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
            let list = instances(c);
            let healthy = list.iter().filter(|r| r["Healthy"] == true).count();
            (healthy == 2, format!("{list:?}"))
        },
    );
    let list = instances(&c);
    let mut registered: Vec<u16> = list
        .iter()
        .map(|r| r["Port"].as_u64().unwrap() as u16)
        .collect();
    registered.sort_unstable();
    assert_eq!(registered, ports, "each instance on its allocation's port");
    for r in &list {
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
    let id = c.running("front")[0]["allocation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.wait_for(
        "the front's rendered list in its log",
        Duration::from_secs(20),
        |c| {
            let logs = c.ok(&["logs", &id[..8]]);
            let listed = ports
                .iter()
                .all(|p| logs.contains(&format!("backend 127.0.0.1:{p} v1,alloc-")));
            (listed, logs)
        },
    );

    // Stopping the backend deregisters every instance.
    c.ok(&["stop", "backend"]);
    c.wait_for("the catalogue to empty", Duration::from_secs(30), |c| {
        let list = instances(c);
        (list.is_empty(), format!("{list:?}"))
    });
    c.ok(&["stop", "front"]);
}
