//! Nomad's client API against a real `raw_exec` task under `nctl dev`: a line the task
//! writes after a followed `GET /v1/client/fs/logs/{alloc}?follow=true` opened arrives in it
//! as a frame; the allocation's directory lists its task; its resource usage shows the task's
//! memory; and the task's secrets stay unreadable.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

mod common;

use common::*;

/// Says hello, then waits for a file to appear in its `local/` before saying more.
const WAITER: &str = r#"job "waiter" {
  datacenters = ["*"]

  group "g" {
    task "say" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo hello; while [ ! -e \"$NOMAD_TASK_DIR/go\" ]; do sleep 0.2; done; echo after-go; exec sleep 3600"]
      }
      resources {
        cpu    = 20
        memory = 32
      }
    }
  }
}
"#;

/// A followed response read as it arrives (HTTP/1.0: the body is the bytes after the head).
struct Followed {
    stream: TcpStream,
    seen: Vec<u8>,
}

impl Followed {
    fn open(port: u16, path: &str) -> Followed {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the API");
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        Followed {
            stream,
            seen: Vec::new(),
        }
    }

    /// The frames received so far (complete lines after the head).
    fn frames(&self) -> Vec<Value> {
        let text = String::from_utf8_lossy(&self.seen);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return Vec::new();
        };
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        body.split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).expect("a frame is one JSON line"))
            .collect()
    }

    /// The decoded data of every frame so far.
    fn text(&self) -> String {
        self.frames()
            .iter()
            .filter_map(|f| f["Data"].as_str())
            .map(|d| {
                let bytes = base64::engine::general_purpose::STANDARD.decode(d).unwrap();
                String::from_utf8_lossy(&bytes).into_owned()
            })
            .collect()
    }

    /// Reads until the decoded text holds `needle`; panics after `timeout`.
    fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while !self.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {:?}",
                self.text()
            );
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("the stream ended before {needle:?}: {}", self.text()),
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("reading the stream: {e}"),
            }
        }
    }
}

#[test]
fn a_raw_exec_tasks_new_log_line_arrives_in_a_followed_log_stream() {
    let c = Cluster::start("clientfs");
    let port: u16 = c.http_addr.rsplit(':').next().unwrap().parse().unwrap();
    let file = c.write_file("waiter.hcl", WAITER);
    c.ok(&["apply", "-f", &file]);
    c.wait_for("waiter to run", Duration::from_secs(90), |c| {
        let r = c.running("waiter");
        (r.len() == 1, format!("{r:?}"))
    });
    let id = c.running("waiter")[0]["ID"].as_str().unwrap().to_string();

    let mut logs = Followed::open(
        port,
        &format!("/v1/client/fs/logs/{id}?task=say&follow=true"),
    );
    logs.wait_for("hello\n", Duration::from_secs(30));
    assert!(!logs.text().contains("after-go"), "{}", logs.text());
    let local = c.data_dir.join("agent/allocs").join(&id).join("say/local");
    std::fs::write(local.join("go"), b"").expect("the task's local directory exists");
    logs.wait_for("after-go\n", Duration::from_secs(30));
    let frames = logs.frames();
    assert!(
        frames.iter().all(|f| f["File"] == "alloc/logs/say.stdout"),
        "{frames:?}"
    );
    assert_eq!(frames.last().unwrap()["Offset"], "hello\nafter-go\n".len());

    let listing = http_get_path(port, &format!("/v1/client/fs/ls/{id}?path=/say/local")).unwrap();
    let listing: Value = serde_json::from_str(&listing).expect(&listing);
    assert_eq!(listing[0]["Name"], "go", "{listing}");
    let secret = http_get_path(
        port,
        &format!("/v1/client/fs/cat/{id}?path=say/secrets/nomad_token"),
    )
    .unwrap();
    assert!(
        secret.contains("secrets directory is not readable"),
        "{secret}"
    );

    let usage = http_get_path(port, &format!("/v1/client/allocation/{id}/stats")).unwrap();
    let usage: Value = serde_json::from_str(&usage).expect(&usage);
    let rss = &usage["Tasks"]["say"]["ResourceUsage"]["MemoryStats"]["RSS"];
    assert!(rss.as_u64().unwrap_or(0) > 0, "{usage}");
    let host = http_get_path(port, "/v1/client/stats").unwrap();
    let host: Value = serde_json::from_str(&host).expect(&host);
    assert!(host["Memory"]["Total"].as_u64().unwrap_or(0) > 0, "{host}");
}
