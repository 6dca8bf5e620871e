//! The CLI's rough edges (issue 19), each driven through the real `nctl`: a peer that hangs up
//! is an error, not a death by SIGPIPE, while a closed output pipe still ends quietly.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

mod common;

use common::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A batch job whose one task prints three lines and exits.
fn batch_hcl(id: &str, meta: &str) -> String {
    format!(
        r#"job "{id}" {{
  datacenters = ["*"]
  type        = "batch"
  meta {{
    note = "{meta}"
  }}
  group "g" {{
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "echo one; echo two; echo three"]
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

/// A TCP server that takes `connections` connections, reads what `read` says, then hangs up
/// with what the client sent still unread, so the kernel resets the connection.
fn hang_up_server(
    connections: usize,
    read: fn(&mut std::net::TcpStream),
) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        for _ in 0..connections {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            read(&mut conn);
        }
    });
    (addr, server)
}

/// Reads a request's head (up to the blank line), leaving its body unread.
fn read_head(conn: &mut std::net::TcpStream) {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
        seen.push(byte[0]);
    }
}

fn nctl_at(addr: &str, args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(nctl_bin())
        .args(args)
        .env("NOMOS_ADDR", addr)
        .current_dir(dir)
        .output()
        .expect("run nctl")
}

#[test]
fn a_server_that_hangs_up_is_an_error_with_exit_1_never_a_death_by_sigpipe() {
    let dir = tempfile::tempdir().unwrap();
    // A job file of 4 MiB: the server hangs up after the head, while nctl still sends the body.
    let big = "x".repeat(4 << 20);
    std::fs::write(dir.path().join("big.hcl"), batch_hcl("big", &big)).unwrap();
    let tries = 4;
    let (addr, server) = hang_up_server(tries, read_head);
    for _ in 0..tries {
        let out = nctl_at(
            &format!("http://{addr}"),
            &["apply", "-f", "big.hcl"],
            dir.path(),
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "a reset upload ends with exit 1 ({:?}): {}",
            out.status,
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(&format!("cannot reach the Nomos server at http://{addr}")),
            "{}",
            text(&out.stderr)
        );
    }
    server.join().unwrap();

    // HTTPS to a server that resets the handshake.
    let (addr, server) = hang_up_server(1, |_| {});
    let out = nctl_at(&format!("https://{addr}"), &["get", "jobs"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{:?}", out.status);
    assert!(
        text(&out.stderr).contains(&format!("cannot reach the Nomos server at https://{addr}")),
        "{}",
        text(&out.stderr)
    );
    server.join().unwrap();
}

/// Runs `nctl ARGS` with its standard output a pipe whose reading end is already closed.
fn with_closed_stdout(cmd: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    cmd.stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run nctl")
}

#[test]
fn a_closed_output_pipe_ends_a_client_verb_quietly_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("j.hcl"), batch_hcl("j", "m")).unwrap();
    let out = with_closed_stdout(
        Command::new(nctl_bin())
            .args(["validate", "-o", "json", "j.hcl"])
            .current_dir(dir.path()),
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", out.status);
    assert_eq!(text(&out.stderr), "");

    // The shell's way: `nctl ... | head -c1` under pipefail.
    let line = format!(
        "set -o pipefail; {} validate -o json j.hcl | head -c1",
        nctl_bin().display()
    );
    let out = Command::new("bash")
        .args(["-c", &line])
        .current_dir(dir.path())
        .output()
        .expect("bash");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{");
}

/// Runs `line` under a pseudo-terminal of script(1) with `env`; returns what the terminal got.
fn on_a_terminal(line: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new("script")
        .args(["-qec", line, "/dev/null"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("script(1) (bsdutils) runs");
    text(&out.stdout)
}

const ESC: char = '\x1b';

#[test]
fn get_watch_clears_the_screen_only_on_a_terminal_and_logs_have_no_colours_in_a_file() {
    let c = Cluster::start("edges-tty");
    let log = std::fs::read_to_string(c.dir.path().join("dev.log")).unwrap();
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains(ESC), "no ANSI codes in a log file: {log:?}");

    // Into a pipe: each listing after a blank line, no escapes.
    let mut watch = c.spawn_nctl(&["get", "jobs", "-w"]);
    std::thread::sleep(Duration::from_millis(3000));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let piped = text(&out.stdout);
    assert!(piped.matches("No jobs").count() >= 2, "{piped:?}");
    assert!(piped.contains("No jobs\n\nNo jobs"), "{piped:?}");
    assert!(!piped.contains(ESC), "{piped:?}");

    // On a terminal the screen is cleared before each listing.
    let line = format!("timeout 3 {} get jobs -w", nctl_bin().display());
    let shown = on_a_terminal(&line, &[("NOMOS_ADDR", &c.addr)]);
    assert!(shown.contains("\x1b[2J\x1b[H"), "{shown:?}");
    assert!(shown.contains("No jobs"), "{shown:?}");
}

#[test]
fn server_logs_are_coloured_on_a_terminal_unless_no_color_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let run = |no_color: &str| {
        let line = format!(
            "timeout -s INT 4 {} server --data-dir {} --http-addr 127.0.0.1:{} \
             --store-addr 127.0.0.1:0 --dns-addr off --insecure",
            nctl_bin().display(),
            dir.path().join("data").display(),
            free_port()
        );
        on_a_terminal(&line, &[("NO_COLOR", no_color), ("RUST_LOG", "info")])
    };
    let coloured = run("");
    assert!(coloured.contains("INFO"), "{coloured:?}");
    assert!(
        coloured.contains(ESC),
        "colours on a terminal: {coloured:?}"
    );
    let plain = run("1");
    assert!(plain.contains("INFO"), "{plain:?}");
    assert!(!plain.contains(ESC), "NO_COLOR=1 turns them off: {plain:?}");
}

#[test]
fn disabling_a_drain_clears_its_strategy_and_records_it_cancelled() {
    let c = Cluster::start("edges-drain");
    let node_json =
        |c: &Cluster| c.json(&["node", "status", &c.node, "-o", "json"])["node"].clone();
    let out = c.ok(&[
        "node",
        "drain",
        "-enable",
        "-deadline",
        "10m",
        "-yes",
        &c.node,
    ]);
    assert!(out.contains("drain started"), "{out}");
    c.wait_for(
        "the empty node's drain to complete",
        Duration::from_secs(30),
        |c| {
            let n = node_json(c);
            (n["DrainReport"]["State"] == "complete", n.to_string())
        },
    );
    let out = c.ok(&["node", "drain", "-disable", "-yes", &c.node]);
    assert!(out.contains("drain cancelled"), "{out}");
    c.wait_for(
        "the drain recorded as cancelled",
        Duration::from_secs(30),
        |c| {
            let n = node_json(c);
            (n["LastDrain"]["Status"] == "canceled", n.to_string())
        },
    );
    let n = node_json(&c);
    assert_eq!(n["Drain"], false, "{n}");
    assert!(n["DrainStrategy"].is_null(), "{n}");
    assert_eq!(n["SchedulingEligibility"], "eligible", "{n}");
    assert_eq!(n["DrainReport"]["State"], "cancelled", "{n}");
    assert_eq!(
        n["DrainReport"]["Deadline"], 0,
        "no deadline counts down: {n}"
    );
    let shown = c.ok(&["node", "status", &c.node]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("State ") && l.ends_with("= cancelled")),
        "{shown}"
    );
}

/// A job of `job_type` whose one task runs `script` with /bin/sh.
fn script_job(id: &str, job_type: &str, script: &str) -> String {
    format!(
        r#"job "{id}" {{
  datacenters = ["*"]
  type        = "{job_type}"
  group "g" {{
    restart {{
      attempts = 0
      mode     = "fail"
    }}
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "{script}"]
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

/// The job's allocations in `ns`, once one is `status`.
fn wait_alloc(c: &Cluster, ns: &str, job: &str, status: &str) -> String {
    let mut id = String::new();
    c.wait_for(
        &format!("{ns}/{job} {status}"),
        Duration::from_secs(60),
        |c| {
            let v = c.json(&["-n", ns, "get", "allocs", "--job", job, "-o", "json"]);
            let found = v.as_array().and_then(|a| {
                a.iter()
                    .find(|a| a["ClientStatus"] == status)
                    .map(|a| a["ID"].as_str().unwrap_or_default().to_string())
            });
            id = found.clone().unwrap_or_default();
            (found.is_some(), v.to_string())
        },
    );
    id
}

#[test]
fn plan_logs_get_allocs_task_events_and_the_queue_gauge_say_what_is_so() {
    let c = Cluster::start("edges-verbs");
    c.ok(&["namespace", "apply", "team"]);
    let batch = c.write_file(
        "batch.hcl",
        &script_job("done", "batch", "echo one; echo two; echo three"),
    );
    c.ok(&["apply", "-f", &batch]);
    let done = wait_alloc(&c, "default", "done", "complete");
    plan_of_a_completed_batch_job_changes_nothing(&c, &batch);
    logs_tail_prints_the_last_lines(&c, &done);
    get_allocs_shows_the_job_and_one_namespace_unless_asked_for_all(&c);
    a_task_event_says_its_exit_code_once(&c);
    logs_tail_follow_goes_on_from_the_last_lines(&c);
    an_idle_cluster_has_queue_depth_0(&c);
}

fn plan_of_a_completed_batch_job_changes_nothing(c: &Cluster, file: &str) {
    let out = c.nctl(&["plan", "-f", file]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("(no change; count 1, 0 running now)"),
        "{stdout}"
    );
    let applied = c.ok(&["apply", "-f", file]);
    assert!(applied.contains("unchanged"), "{applied}");
}

fn logs_tail_prints_the_last_lines(c: &Cluster, alloc: &str) {
    assert_eq!(c.ok(&["logs", alloc, "--tail", "2"]), "two\nthree\n");
    assert_eq!(c.ok(&["logs", alloc, "--tail", "9"]), "one\ntwo\nthree\n");
    assert_eq!(c.ok(&["logs", alloc, "--tail", "0"]), "");
    assert_eq!(c.ok(&["logs", alloc, "t", "--tail", "1", "-f"]), "three\n");
}

fn get_allocs_shows_the_job_and_one_namespace_unless_asked_for_all(c: &Cluster) {
    let other = c.write_file("team.hcl", &script_job("elsewhere", "batch", "echo hi"));
    c.ok(&["-n", "team", "apply", "-f", &other]);
    wait_alloc(c, "team", "elsewhere", "complete");
    let mine = c.ok(&["get", "allocs"]);
    let header: Vec<&str> = mine.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[..3], ["ID", "Job", "Node"], "{mine}");
    assert!(!mine.contains("elsewhere"), "only -n's namespace: {mine}");
    // Rows as the wide table prints them, never wrapped to 80 columns.
    let mine = c.ok(&["get", "allocs", "-o", "wide"]);
    assert!(
        mine.lines()
            .any(|l| l.split_whitespace().nth(1) == Some("done")),
        "{mine}"
    );
    let team = c.ok(&["-n", "team", "get", "allocs", "-o", "wide"]);
    assert!(
        team.contains("elsewhere") && !team.contains("done"),
        "{team}"
    );
    let all = c.ok(&["-n", "*", "get", "allocs"]);
    let header: Vec<&str> = all.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[..4], ["ID", "Namespace", "Job", "Node"], "{all}");
    let all = c.ok(&["-n", "*", "get", "allocs", "-o", "wide"]);
    let row = |job: &str| {
        all.lines()
            .find(|l| l.contains(job))
            .map(|l| l.split_whitespace().take(3).skip(1).collect::<Vec<_>>())
    };
    assert_eq!(row("elsewhere"), Some(vec!["team", "elsewhere"]), "{all}");
    assert_eq!(row("done"), Some(vec!["default", "done"]), "{all}");
}

fn a_task_event_says_its_exit_code_once(c: &Cluster) {
    let file = c.write_file("exit3.hcl", &script_job("exit3", "batch", "exit 3"));
    c.ok(&["apply", "-f", &file]);
    let id = wait_alloc(c, "default", "exit3", "failed");
    let port: u16 = c.http_addr.rsplit(':').next().unwrap().parse().unwrap();
    let html = http_get_path(port, &format!("/ui/allocation/{id}")).expect("the UI answers");
    // The event's row says it once (it read "Exit Code: 3 <small>exit code 3</small>").
    assert!(
        html.contains("<td>Terminated</td><td>Exit Code: 3</td>"),
        "said once: {html}"
    );
}

fn logs_tail_follow_goes_on_from_the_last_lines(c: &Cluster) {
    let file = c.write_file(
        "ticker.hcl",
        &script_job(
            "ticker",
            "service",
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done",
        ),
    );
    c.ok(&["apply", "-f", &file]);
    let id = wait_alloc(c, "default", "ticker", "running");
    c.wait_for("five lines logged", Duration::from_secs(30), |c| {
        let out = c.ok(&["logs", &id]);
        (out.lines().count() >= 5, out)
    });
    let mut follow = c.spawn_nctl(&["logs", &id, "--tail", "2", "-f"]);
    let mut reader = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut numbers = Vec::new();
    for _ in 0..8 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        let n: u32 = line
            .trim()
            .strip_prefix("line ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a ticker line: {line:?}"));
        numbers.push(n);
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(numbers[0] >= 3, "starts at the last lines: {numbers:?}");
    let consecutive: Vec<u32> = (numbers[0]..numbers[0] + 8).collect();
    assert_eq!(numbers, consecutive, "no line twice, none missed");
    c.ok(&["stop", "ticker"]);
}

fn an_idle_cluster_has_queue_depth_0(c: &Cluster) {
    let port: u16 = c.http_addr.rsplit(':').next().unwrap().parse().unwrap();
    c.wait_for(
        "queue depth 0 on the idle cluster",
        Duration::from_secs(60),
        |_| {
            let metrics = http_get_path(port, "/metrics").unwrap_or_default();
            let depths: Vec<&str> = metrics
                .lines()
                .filter(|l| l.starts_with("nomos_controller_queue_depth{"))
                .collect();
            let idle = !depths.is_empty() && depths.iter().all(|l| l.ends_with(" 0"));
            (idle, depths.join("\n"))
        },
    );
    let metrics = http_get_path(port, "/metrics").unwrap_or_default();
    assert!(
        metrics.contains("nomos_controller_queue_delayed{controller=\"jobs\"}"),
        "{metrics}"
    );
}
