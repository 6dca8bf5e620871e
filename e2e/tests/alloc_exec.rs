//! `nctl alloc exec` and Nomad's exec websocket (`/v1/client/allocation/:id/exec`) against a
//! real `raw_exec` task under `nctl dev`, through the server's proxy to the agent: the exit
//! code comes back, stdin reaches the command, `-t` gives it a terminal, an ID prefix names
//! the allocation; the frames have Nomad's shapes; an unknown allocation, an unknown task, a
//! missing command and a stopped allocation are refused before the upgrade; with ACLs on (a
//! server and a separate agent), a token needs `alloc-exec`, and for `raw_exec` also
//! `alloc-node-exec`.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite;

mod common;

use common::*;

/// One raw_exec task that sleeps.
const SLEEPER: &str = r#"job "sleeper" {
  datacenters = ["*"]

  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "exec sleep 3600"]
      }
      resources {
        cpu    = 20
        memory = 32
      }
    }
  }
}
"#;

/// Applies the sleeper (as `token` when given) and returns its running allocation's ID.
fn run_sleeper(c: &Cluster, token: Option<&str>) -> String {
    let file = c.write_file("sleeper.hcl", SLEEPER);
    let out = nctl_as(c, token, &["apply", "-f", &file], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut id = String::new();
    c.wait_for("the sleeper to run", Duration::from_secs(90), |c| {
        let out = nctl_as(
            c,
            token,
            &["get", "allocs", "--job", "sleeper", "-o", "json"],
            None,
        );
        let allocs: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let running = allocs
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["ClientStatus"] == "running" && a["DesiredStatus"] == "run");
        if let Some(a) = running {
            id = a["ID"].as_str().unwrap_or_default().to_string();
        }
        (!id.is_empty(), format!("{allocs}"))
    });
    id
}

/// Runs `nctl ARGS` with `token` and `stdin`.
fn nctl_as(c: &Cluster, token: Option<&str>, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(nctl_bin());
    cmd.args(args)
        .env("NOMOS_ADDR", &c.addr)
        .env_remove("NOMOS_TOKEN")
        .env_remove("NOMAD_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.env("NOMOS_TOKEN", t);
    }
    let mut child = cmd.spawn().expect("run nctl");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        pipe.write_all(data).unwrap();
    }
    drop(pipe);
    child.wait_with_output().expect("nctl ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The exec URL of the cluster's API for `alloc`, `task` and `command`.
fn exec_url(c: &Cluster, alloc: &str, task: Option<&str>, command: Option<&[&str]>) -> String {
    let mut url = reqwest::Url::parse(&format!(
        "ws://{}/v1/client/allocation/{alloc}/exec",
        c.http_addr
    ))
    .unwrap();
    if let Some(t) = task {
        url.query_pairs_mut().append_pair("task", t);
    }
    if let Some(cmd) = command {
        url.query_pairs_mut()
            .append_pair("command", &serde_json::to_string(cmd).unwrap());
    }
    url.to_string()
}

/// The status and body a refused websocket handshake got.
fn refused_upgrade(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    match rt.block_on(tokio_tungstenite::connect_async(url)) {
        Err(tungstenite::Error::Http(resp)) => (
            resp.status().as_u16(),
            text(resp.body().as_deref().unwrap_or_default()),
        ),
        Ok(_) => panic!("{url}: the upgrade was accepted"),
        Err(e) => panic!("{url}: {e}"),
    }
}

#[test]
fn nctl_alloc_exec_runs_commands_inside_a_raw_exec_task() {
    let c = Cluster::start("allocexec");
    let id = run_sleeper(&c, None);
    let prefix = &id[..8];

    let out = nctl_as(
        &c,
        None,
        &["alloc", "exec", prefix, "sh", "-c", "exit 3"],
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    let out = nctl_as(
        &c,
        None,
        &["alloc", "exec", "-i", &id, "cat"],
        Some(b"hello\n"),
    );
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "hello\n".into())
    );

    let out = nctl_as(
        &c,
        None,
        &[
            "alloc",
            "exec",
            "--task",
            "t",
            &id,
            "sh",
            "-c",
            "pwd; echo oops >&2",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).trim_end().ends_with(&format!("{id}/t")),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(text(&out.stderr), "oops\n");

    // Under a pseudo-terminal of script(1), `-t` gives the command one too.
    let line = format!("{} alloc exec -t {id} tty", nctl_bin().display());
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("NOMOS_ADDR", &c.addr)
        .stdin(Stdio::null())
        .output()
        .expect("script(1) (bsdutils) runs");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("/dev/pts/"),
        "{}",
        text(&out.stdout)
    );

    let out = nctl_as(&c, None, &["alloc", "exec", "0000dead", "true"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("0000dead"),
        "{}",
        text(&out.stderr)
    );

    // Refusals before the upgrade, in plain text.
    let cases = [
        (
            exec_url(&c, "0000dead", Some("t"), Some(&["true"])),
            404,
            "0000dead",
        ),
        (
            exec_url(&c, &id, Some("nope"), Some(&["true"])),
            400,
            "nope",
        ),
        (exec_url(&c, &id, Some("t"), None), 400, "missing command"),
    ];
    for (url, status, needle) in cases {
        let (got, body) = refused_upgrade(&url);
        assert_eq!(got, status, "{url}: {body}");
        assert!(body.contains(needle), "{url}: {body}");
    }

    frames_have_nomads_shapes(&c, &id);
    a_slow_reader_writing_late_still_gets_everything(&c, &id);

    c.ok(&["stop", "sleeper"]);
    c.wait_for("the sleeper to stop", Duration::from_secs(60), |c| {
        let a = c.allocs("sleeper");
        (
            a.iter().all(|a| a["ClientStatus"] != "running"),
            format!("{a:?}"),
        )
    });
    let out = nctl_as(&c, None, &["alloc", "exec", &id, "true"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not running"),
        "{}",
        text(&out.stderr)
    );
}

/// A client of our own: stdin in, stdout and stderr out as base64 frames, the exit code last.
fn frames_have_nomads_shapes(c: &Cluster, id: &str) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let url = exec_url(
        c,
        id,
        Some("t"),
        Some(&["sh", "-c", "cat; echo err >&2; exit 7"]),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let frames: Vec<Value> = rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("upgrade");
        let send = |v: Value| tungstenite::Message::Text(v.to_string().into());
        ws.send(send(json!({"tty_size": {"height": 24, "width": 80}})))
            .await
            .unwrap();
        ws.send(send(json!({}))).await.unwrap();
        ws.send(send(json!({"stdin": {"data": b64.encode("hi\n")}})))
            .await
            .unwrap();
        ws.send(send(json!({"stdin": {"close": true}})))
            .await
            .unwrap();
        let mut frames = Vec::new();
        let read = async {
            while let Some(Ok(msg)) = ws.next().await {
                if let tungstenite::Message::Text(t) = msg {
                    frames.push(serde_json::from_str::<Value>(&t).expect("a JSON frame"));
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the session ends");
        frames
    });
    let decode = |stream: &str| -> String {
        frames
            .iter()
            .filter_map(|f| f[stream]["data"].as_str())
            .map(|d| text(&b64.decode(d).unwrap()))
            .collect()
    };
    assert_eq!(decode("stdout"), "hi\n", "{frames:?}");
    assert_eq!(decode("stderr"), "err\n", "{frames:?}");
    assert_eq!(
        frames.last(),
        Some(&json!({"exited": true, "result": {"exit_code": 7}})),
        "{frames:?}"
    );
}

/// A client that reads slowly and writes after the command has exited (a user typing on,
/// a terminal's last resize): the server must not shut the socket with those frames unread,
/// which resets the connection and throws away what the client has not read yet, the
/// output's tail and the exit code.
fn a_slow_reader_writing_late_still_gets_everything(c: &Cluster, id: &str) {
    // More than the client's socket takes unread, less than it and the server's together:
    // the server has written it all and ended when the late frames arrive.
    let size = 300_000;
    let script = format!("head -c {size} /dev/zero; exit 3");
    let url = exec_url(c, id, Some("t"), Some(&["sh", "-c", &script]));
    let b64 = base64::engine::general_purpose::STANDARD;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stdout, last) = rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("upgrade");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        for _ in 0..4 {
            let late = json!({"stdin": {"data": "AA=="}}).to_string();
            if ws
                .send(tungstenite::Message::Text(late.into()))
                .await
                .is_err()
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (mut stdout, mut last) = (0usize, Value::Null);
        let read = async {
            while let Some(msg) = ws.next().await {
                match msg {
                    Ok(tungstenite::Message::Text(t)) => {
                        let frame: Value = serde_json::from_str(&t).expect("a JSON frame");
                        if let Some(d) = frame["stdout"]["data"].as_str() {
                            stdout += b64.decode(d).unwrap().len();
                        }
                        last = frame;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        last = json!({ "error": e.to_string() });
                        break;
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the session ends");
        (stdout, last)
    });
    assert_eq!(
        (stdout, last),
        (size, json!({"exited": true, "result": {"exit_code": 3}}))
    );
}

#[test]
fn exec_needs_alloc_exec_and_for_raw_exec_alloc_node_exec() {
    // A server with a separate agent: the server reaches the task through the agent's HTTP.
    let c = Cluster::start_acl_server("allocexecacl");
    let _agent = c.start_agent("exec-acl-node");
    let boot = nctl_as(&c, None, &["acl", "bootstrap"], None);
    let root = secret_id(&text(&boot.stdout));
    let id = run_sleeper(&c, Some(&root));
    let token_with = |name: &str, caps: &str| -> String {
        let policy = c.write_file(
            &format!("{name}.hcl"),
            &format!("namespace \"default\" {{\n  capabilities = [{caps}]\n}}\n"),
        );
        let out = nctl_as(
            &c,
            Some(&root),
            &["acl", "policy", "apply", name, &policy],
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let args = ["acl", "token", "create", "--name", name, "--policy", name];
        secret_id(&text(&nctl_as(&c, Some(&root), &args, None).stdout))
    };
    let reader = token_with("reader", "\"read-job\"");
    let execer = token_with("execer", "\"alloc-exec\"");
    let node_execer = token_with("nodeexecer", "\"alloc-exec\", \"alloc-node-exec\"");
    let refused_to = |token: &str| {
        let out = nctl_as(&c, Some(token), &["alloc", "exec", &id, "true"], None);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("Permission denied"),
            "{}",
            text(&out.stderr)
        );
    };
    refused_to(&reader);
    refused_to(&execer);
    let out = nctl_as(
        &c,
        Some(&node_execer),
        &["alloc", "exec", &id, "sh", "-c", "exit 2"],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // A new version that changes the driver and cannot be placed: the raw_exec allocation
    // keeps running, and it is still raw_exec that decides what exec into it needs.
    let docker = SLEEPER
        .replace("driver = \"raw_exec\"", "driver = \"docker\"")
        .replace(
            "command = \"/bin/sh\"",
            "image   = \"nomos-test/none:latest\"\n        command = \"/bin/sh\"",
        )
        .replace(
            "  group \"g\" {",
            "  constraint {\n    attribute = \"${node.unique.name}\"\n    value     = \"nowhere\"\n  }\n\n  group \"g\" {",
        );
    let file = c.write_file("sleeper-docker.hcl", &docker);
    let out = nctl_as(&c, Some(&root), &["apply", "-f", &file], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = nctl_as(
        &c,
        Some(&root),
        &["job", "history", "sleeper", "-o", "json"],
        None,
    );
    assert!(
        text(&out.stdout).contains("docker"),
        "{}",
        text(&out.stdout)
    );
    refused_to(&execer);
    let out = nctl_as(
        &c,
        Some(&node_execer),
        &["alloc", "exec", &id, "true"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// The `Secret ID` line of `nctl acl bootstrap` / `acl token create`.
fn secret_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Secret ID"))
        .map(|rest| rest.trim_start_matches([' ', '=', ':']).trim().to_string())
        .unwrap_or_else(|| panic!("no Secret ID in {out}"))
}
