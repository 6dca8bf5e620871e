//! The `nctl` verbs no other end-to-end test runs, driven for real against one
//! `nctl dev --no-example`: `apply` of a directory tree (HCL, YAML and JSON), from stdin and with
//! `--check-index`; `plan`'s exit codes; `get` in every output form and with `--watch`; `status`,
//! `alloc status`, `node status`; `logs` (with a task, and `-f`); `alloc restart ALLOC TASK`;
//! `stop --purge`; `completion bash`; and `node drain` with `--ignore-system`, `--deadline`,
//! `--disable` and `--keep-ineligible`. Each step checks what the verb printed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::*;

/// A service job whose one task `loop` prints `<word> tick N` every second.
fn ticker_hcl(id: &str, word: &str, count: u32) -> String {
    format!(
        r#"job "{id}" {{
  datacenters = ["*"]
  type        = "service"

  group "main" {{
    count = {count}

    update {{
      max_parallel     = 1
      min_healthy_time = "1s"
    }}

    task "loop" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "i=0; while true; do echo \"{word} tick $i\"; i=$((i+1)); sleep 1; done"]
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

/// The same kind of job as a nomos/v1 YAML manifest.
fn ticker_yaml(id: &str, word: &str) -> String {
    format!(
        r#"apiVersion: nomos/v1
kind: Job
metadata:
  name: {id}
spec:
  datacenters: ["*"]
  type: service
  groups:
    - name: main
      count: 1
      update:
        max_parallel: 1
        min_healthy_time_ns: 1000000000
      tasks:
        - name: loop
          driver: raw_exec
          config:
            command: /bin/sh
            args: ["-c", "while true; do echo {word}; sleep 1; done"]
          resources:
            cpu: 10
            memory_mb: 10
"#
    )
}

/// The same kind of job as a nomos/v1 JSON manifest.
fn ticker_json(id: &str, word: &str) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "apiVersion": "nomos/v1",
        "kind": "Job",
        "metadata": { "name": id },
        "spec": {
            "datacenters": ["*"],
            "type": "service",
            "groups": [{
                "name": "main",
                "count": 1,
                "update": { "max_parallel": 1, "min_healthy_time_ns": 1_000_000_000u64 },
                "tasks": [{
                    "name": "loop",
                    "driver": "raw_exec",
                    "config": {
                        "command": "/bin/sh",
                        "args": ["-c", format!("while true; do echo {word}; sleep 1; done")]
                    },
                    "resources": { "cpu": 10, "memory_mb": 10 }
                }]
            }]
        }
    }))
    .unwrap()
}

/// A job with two tasks, `a` and `b`, each printing `<task> tick N` every second.
const TWO_TASKS: &str = r#"job "cli-stdin" {
  datacenters = ["*"]

  group "pair" {
    task "a" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "i=0; while true; do echo \"a tick $i\"; i=$((i+1)); sleep 1; done"]
      }
      resources {
        cpu    = 10
        memory = 10
      }
    }

    task "b" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "i=0; while true; do echo \"b tick $i\"; i=$((i+1)); sleep 1; done"]
      }
      resources {
        cpu    = 10
        memory = 10
      }
    }
  }
}
"#;

const WAIT: Duration = Duration::from_secs(60);

/// `nctl ARGS` against the cluster with `input` on stdin.
fn nctl_with_stdin(c: &Cluster, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(nctl_bin())
        .args(args)
        .env("NOMOS_ADDR", &c.addr)
        .current_dir(c.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("nctl output")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A long-running `nctl` (`--watch`, `-f`) whose stdout lines are read as they come; killed on
/// drop.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Follower {
    fn start(c: &Cluster, args: &[&str]) -> Follower {
        let mut child = c.spawn_nctl(args);
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line matching `pred`; panics with what it saw after `timeout`.
    fn wait_line(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = pred(&line);
                    self.seen.push(line.clone());
                    if hit {
                        return line;
                    }
                }
                Err(e) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "no line with {what} within {}s ({e}; exited: {status:?}); saw:\n{}",
                        timeout.as_secs(),
                        self.seen.join("\n")
                    );
                }
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `Key = Value` lines of Nomad-style detail output (the first of each key).
fn kv(out: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (k, v) in out.lines().filter_map(|l| l.split_once(" = ")) {
        map.entry(k.trim().to_string())
            .or_insert_with(|| v.trim().to_string());
    }
    map
}

/// The job's modify index, from `status JOB -o json`.
fn modify_index(c: &Cluster, job: &str) -> i64 {
    c.json(&["status", job, "-o", "json"])["job"]["JobModifyIndex"]
        .as_i64()
        .expect("modify index")
}

/// Ids of `get jobs -o json`.
fn job_ids(c: &Cluster) -> Vec<String> {
    let mut ids: Vec<String> = c
        .json(&["get", "jobs", "-o", "json"])
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|j| j["ID"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// Waits until `job` has `n` running allocations; returns them.
fn wait_running(c: &Cluster, job: &str, n: usize) -> Vec<Value> {
    c.wait_for(&format!("{n} running allocation(s) of {job}"), WAIT, |c| {
        let r = c.running(job);
        (r.len() == n, format!("{r:?}"))
    });
    c.running(job)
}

fn alloc_id(a: &Value) -> String {
    a["ID"].as_str().expect("alloc id").to_string()
}

/// The shortest prefix (at least 4 characters) of `id` that no other allocation shares.
fn unique_prefix(c: &Cluster, id: &str) -> String {
    let all: Vec<String> = c
        .json(&["get", "allocs", "-o", "json"])
        .as_array()
        .expect("a list")
        .iter()
        .map(alloc_id)
        .collect();
    (4..=id.len())
        .map(|n| &id[..n])
        .find(|p| all.iter().filter(|other| other.starts_with(p)).count() == 1)
        .expect("a unique prefix")
        .to_string()
}

/// Asserts the first line holds `columns` in order and no line is wider than 80 columns.
fn assert_table(out: &str, columns: &[&str], what: &str) {
    let header = out.lines().next().unwrap_or_default();
    let mut at = 0;
    for col in columns {
        let pos = header[at..]
            .find(col)
            .unwrap_or_else(|| panic!("{what}: column {col:?} missing in order: {out}"));
        at += pos + col.len();
    }
    for line in out.lines() {
        assert!(
            line.chars().count() <= 80,
            "{what}: a line is {} columns wide: {line:?}\n{out}",
            line.chars().count()
        );
    }
}

#[test]
fn cli_verbs_against_a_dev_cluster() {
    let c = Cluster::start("cli");
    completion_bash(&c);
    apply_a_directory_tree(&c);
    apply_from_stdin(&c);
    apply_with_check_index(&c);
    plan_exit_codes(&c);
    get_in_every_form(&c);
    get_allocs_watch(&c);
    status_views(&c);
    logs_with_task_and_follow(&c);
    alloc_restart_one_task(&c);
    stop_purge(&c);
    node_drain_flags(&c);
}

fn completion_bash(c: &Cluster) {
    let script = c.ok(&["completion", "bash"]);
    assert!(script.contains("_nctl()"), "a bash function: {script}");
    for verb in ["apply", "plan", "logs", "drain"] {
        assert!(script.contains(verb), "completes {verb}");
    }
    let path = c.write_file("nctl.bash", &script);
    let out = Command::new("bash")
        .args(["-c", &format!("source {path} && complete -p nctl")])
        .output()
        .expect("run bash");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "bash sources it: {stderr}");
    assert!(
        stdout.contains("-F _nctl") && stdout.trim_end().ends_with(" nctl"),
        "registers the completion for nctl: {stdout}"
    );
}

fn apply_a_directory_tree(c: &Cluster) {
    let root = c.dir.path().join("jobs");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("hcl.hcl"), ticker_hcl("cli-hcl", "hcl", 1)).unwrap();
    std::fs::write(root.join("notes.txt"), "not a job file").unwrap();
    std::fs::write(root.join("sub/yaml.yaml"), ticker_yaml("cli-yaml", "yaml")).unwrap();
    std::fs::write(
        root.join("sub/deeper/json.json"),
        ticker_json("cli-json", "json"),
    )
    .unwrap();
    let dir = root.display().to_string();

    // Without -R only the top level is read.
    let out = c.ok(&["apply", "-f", &dir]);
    assert!(out.contains("job \"cli-hcl\" created"), "{out}");
    assert!(
        !out.contains("cli-yaml") && !out.contains("cli-json"),
        "{out}"
    );
    assert_eq!(job_ids(c), ["cli-hcl"]);

    // With -R the subdirectories too; the HCL job is already there and unchanged.
    let out = c.ok(&["apply", "-f", &dir, "-R"]);
    assert!(out.contains("job \"cli-hcl\" unchanged"), "{out}");
    assert!(out.contains("job \"cli-yaml\" created"), "{out}");
    assert!(out.contains("job \"cli-json\" created"), "{out}");
    assert_eq!(job_ids(c), ["cli-hcl", "cli-json", "cli-yaml"]);
    for job in ["cli-hcl", "cli-yaml", "cli-json"] {
        wait_running(c, job, 1);
    }
}

fn apply_from_stdin(c: &Cluster) {
    let out = nctl_with_stdin(c, &["apply", "-f", "-"], TWO_TASKS);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "apply -f -: {stdout}{stderr}");
    assert!(stdout.contains("job \"cli-stdin\" created"), "{stdout}");
    let a = &wait_running(c, "cli-stdin", 1)[0];
    c.wait_for("both tasks to run", WAIT, |c| {
        let a = c.json(&["alloc", "status", &alloc_id(a), "-o", "json"]);
        let states = &a["TaskStates"];
        (
            states["a"]["State"] == "running" && states["b"]["State"] == "running",
            states.to_string(),
        )
    });
}

fn apply_with_check_index(c: &Cluster) {
    let index = modify_index(c, "cli-json");
    let changed = c.write_file("json-v2.json", &ticker_json("cli-json", "json-v2"));

    for stale in [index - 1, 0] {
        let out = c.nctl(&["apply", "--check-index", &stale.to_string(), "-f", &changed]);
        let (stdout, stderr) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "a stale check-index is refused: {stdout}{stderr}"
        );
        let why = if stale == 0 {
            "job already exists".to_string()
        } else {
            format!("job exists with conflicting job modify index: {index}")
        };
        assert!(
            stderr.contains(&format!("Enforcing job modify index {stale}: {why}")),
            "the error says why (Nomad's words): {stderr}"
        );
        assert!(!stdout.contains("updated"), "{stdout}");
    }
    assert_eq!(modify_index(c, "cli-json"), index, "nothing was written");
    let spec = c.json(&["status", "cli-json", "-o", "json"]);
    let args = &spec["job"]["TaskGroups"][0]["Tasks"][0]["Config"]["args"];
    assert_eq!(args[1], "while true; do echo json; sleep 1; done", "{spec}");

    let out = c.ok(&[
        "apply",
        "--check-index",
        &index.to_string(),
        "-f",
        &changed,
        "--wait",
        "--timeout",
        "60",
    ]);
    assert!(out.contains("job \"cli-json\" updated"), "{out}");
    assert!(
        out.contains("config.args[1]"),
        "the change is listed: {out}"
    );
    assert!(out.contains("rollout complete"), "{out}");
    assert!(modify_index(c, "cli-json") > index);
}

fn plan_exit_codes(c: &Cluster) {
    let same = c.dir.path().join("jobs/hcl.hcl").display().to_string();
    let index = modify_index(c, "cli-hcl");
    let before: Vec<String> = c.running("cli-hcl").iter().map(alloc_id).collect();
    assert_eq!(before.len(), 1);

    let out = c.nctl(&["plan", "-f", &same]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "an unchanged job at its count plans no change: {stdout}{stderr}"
    );
    assert!(stdout.contains("Job: \"cli-hcl\""), "{stdout}");
    assert!(
        stdout.contains("Task Group \"main\" (no change; count 1, 1 running now)"),
        "{stdout}"
    );
    assert!(!stdout.contains("Placed on"), "{stdout}");
    assert!(
        stdout.contains(&format!("nctl apply --check-index {index} -f {same}")),
        "{stdout}"
    );

    // A change the allocation takes in place (the job's priority): no allocation moves, exit 0.
    let in_place = c.write_file(
        "hcl-priority.hcl",
        &ticker_hcl("cli-hcl", "hcl", 1).replace(
            "type        = \"service\"",
            "type        = \"service\"\n  priority    = 70",
        ),
    );
    let out = c.nctl(&["plan", "-f", &in_place]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "an in-place change moves no allocation: {stdout}{stderr}"
    );
    assert!(stdout.contains("priority: 50 => 70"), "{stdout}");
    assert!(
        stdout.contains("(1 in-place update; count 1, 1 running now)"),
        "{stdout}"
    );
    assert!(!stdout.contains("Placed on"), "{stdout}");

    let more = c.write_file("hcl-3.hcl", &ticker_hcl("cli-hcl", "hcl", 3));
    let out = c.nctl(&["plan", "-f", &more]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a count change places allocations: {stdout}{stderr}"
    );
    assert!(stdout.contains("+/- Job: \"cli-hcl\""), "{stdout}");
    assert!(stdout.contains("groups[main].count: 1 => 3"), "{stdout}");
    assert!(
        stdout.contains("(2 create, 1 in-place update; count 3, 1 running now)"),
        "only the two missing copies are placed: {stdout}"
    );
    assert!(stdout.contains("Placed on:"), "{stdout}");

    assert_eq!(modify_index(c, "cli-hcl"), index, "plan writes nothing");
    let after: Vec<String> = c.running("cli-hcl").iter().map(alloc_id).collect();
    assert_eq!(after, before, "plan moves no allocation");
}

fn get_in_every_form(c: &Cluster) {
    let hcl_alloc = alloc_id(&c.running("cli-hcl")[0]);
    let deployments = c.json(&["get", "deployments", "-o", "json"]);
    let deployment = deployments
        .as_array()
        // (Version 0 has a deployment of its own, as in Nomad; the update's is version 1's.)
        .and_then(|ds| {
            ds.iter()
                .find(|d| d["JobID"] == "cli-json" && d["JobVersion"] == 1)
        })
        .unwrap_or_else(|| panic!("the cli-json update made a deployment: {deployments}"))["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let short = |id: &str| id.chars().take(8).collect::<String>();

    // (kind, table columns, extra wide columns, in the table, in the wide table, id path)
    type Case<'a> = (
        &'a str,
        &'a [&'a str],
        &'a [&'a str],
        Vec<String>,
        Vec<String>,
        &'a [&'a str],
    );
    let cases: Vec<Case> = vec![
        (
            "jobs",
            &["ID", "Type", "Priority", "Status", "Running"],
            &["Namespace", "Version", "Modify Index"],
            vec!["cli-hcl".into(), "cli-stdin".into(), "service".into()],
            vec!["default".into()],
            &["ID"],
        ),
        (
            "allocs",
            &[
                "ID",
                "Job",
                "Node",
                "Task Group",
                "Desired",
                "Status",
                "Created",
            ],
            &["Version", "Ports"],
            vec![short(&hcl_alloc), c.node.clone(), "running".into()],
            vec![hcl_alloc.clone(), "cli-hcl".into()],
            &["ID"],
        ),
        (
            "nodes",
            &[
                "ID",
                "DC",
                "Name",
                "Class",
                "Drain",
                "Eligibility",
                "Status",
            ],
            &["Address", "Allocs"],
            vec![c.node.clone(), "eligible".into(), "ready".into()],
            vec![c.node.clone()],
            &["Name"],
        ),
        (
            "deployments",
            &["ID", "Job ID", "Job Version", "Status", "Description"],
            &[],
            // Deployment IDs (`<job>-v<version>`) are never cut to 8 characters.
            vec![deployment.clone(), "cli-json".into(), "successful".into()],
            vec![deployment.clone()],
            &["ID"],
        ),
    ];
    for (kind, columns, wide_columns, in_table, in_wide, id_path) in cases {
        let table = c.ok(&["get", kind]);
        assert_table(&table, columns, &format!("get {kind}"));
        for want in &in_table {
            assert!(table.contains(want.as_str()), "get {kind}: {want}: {table}");
        }

        let wide = c.ok(&["get", kind, "-o", "wide"]);
        let header = wide.lines().next().unwrap_or_default();
        for col in columns.iter().chain(wide_columns) {
            assert!(header.contains(col), "get {kind} -o wide: {col}: {wide}");
        }
        for want in &in_wide {
            assert!(
                wide.contains(want.as_str()),
                "get {kind} -o wide: {want}: {wide}"
            );
        }

        let ids = |v: &Value| -> Vec<String> {
            let mut ids: Vec<String> = v
                .as_array()
                .unwrap_or_else(|| panic!("get {kind}: a list: {v}"))
                .iter()
                .map(|item| {
                    id_path
                        .iter()
                        .fold(item, |v, k| &v[*k])
                        .as_str()
                        .unwrap_or_else(|| panic!("get {kind}: {id_path:?} in {item}"))
                        .to_string()
                })
                .collect();
            ids.sort();
            ids
        };
        let json = c.json(&["get", kind, "-o", "json"]);
        let json_ids = ids(&json);
        assert!(!json_ids.is_empty(), "get {kind} -o json lists something");

        let yaml_text = c.ok(&["get", kind, "-o", "yaml"]);
        let yaml: Value = serde_saphyr::from_str(&yaml_text)
            .unwrap_or_else(|e| panic!("get {kind} -o yaml is not YAML ({e}): {yaml_text}"));
        assert_eq!(ids(&yaml), json_ids, "get {kind}: YAML and JSON agree");
    }
}

fn get_allocs_watch(c: &Cluster) {
    let mut watch = Follower::start(c, &["get", "allocs", "--job", "cli-watch", "--watch"]);
    watch.wait_line("the first listing", WAIT, |l| l.contains("No allocations"));

    let file = c.write_file("watch.hcl", &ticker_hcl("cli-watch", "watch", 1));
    c.ok(&["apply", "-f", &file]);
    let mut id = String::new();
    c.wait_for("cli-watch to be placed", WAIT, |c| {
        let allocs = c.allocs("cli-watch");
        if let Some(a) = allocs.first() {
            id = alloc_id(a);
        }
        (!id.is_empty(), format!("{allocs:?}"))
    });
    let short: String = id.chars().take(8).collect();
    let line = watch.wait_line(&format!("allocation {short}"), WAIT, |l| l.contains(&short));
    assert!(line.contains(&c.node) && line.contains("main"), "{line}");
    drop(watch);
}

fn status_views(c: &Cluster) {
    let hcl_alloc = alloc_id(&c.running("cli-hcl")[0]);

    // status JOB: details, the per-group summary and the allocations.
    let out = c.ok(&["status", "cli-hcl"]);
    let details = kv(&out);
    assert_eq!(
        details.get("ID").map(String::as_str),
        Some("cli-hcl"),
        "{out}"
    );
    assert_eq!(
        details.get("Type").map(String::as_str),
        Some("service"),
        "{out}"
    );
    assert_eq!(
        details.get("Status").map(String::as_str),
        Some("running"),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "Summary")
        .unwrap_or_else(|| panic!("a Summary section: {out}"));
    let header: Vec<&str> = lines[at + 1].split_whitespace().collect();
    assert_eq!(
        header,
        ["Task", "Group", "Queued", "Starting", "Running", "Failed", "Complete", "Lost"],
        "{out}"
    );
    let row: Vec<&str> = lines[at + 2].split_whitespace().collect();
    assert_eq!(row, ["main", "0", "0", "1", "0", "0", "0"], "{out}");
    let allocs_at = lines
        .iter()
        .position(|l| *l == "Allocations")
        .unwrap_or_else(|| panic!("an Allocations section: {out}"));
    assert!(
        lines[allocs_at..]
            .iter()
            .any(|l| l.starts_with(&hcl_alloc[..8])),
        "{out}"
    );

    // alloc status by unique prefix.
    let prefix = unique_prefix(c, &hcl_alloc);
    assert!(prefix.len() < hcl_alloc.len());
    let out = c.ok(&["alloc", "status", &prefix]);
    let details = kv(&out);
    assert_eq!(details.get("ID"), Some(&hcl_alloc), "{out}");
    assert_eq!(
        details.get("Job ID").map(String::as_str),
        Some("cli-hcl"),
        "{out}"
    );
    assert_eq!(
        details.get("Client Status").map(String::as_str),
        Some("running"),
        "{out}"
    );
    assert!(out.contains("Task \"loop\" is \"running\""), "{out}");

    // node status: the table, and one node with its allocations.
    let out = c.ok(&["node", "status"]);
    assert_table(
        &out,
        &["ID", "Name", "Eligibility", "Status"],
        "node status",
    );
    let row = out
        .lines()
        .find(|l| l.contains(&c.node))
        .unwrap_or_else(|| panic!("the node is listed: {out}"));
    assert!(row.contains("ready") && row.contains("eligible"), "{row}");

    let out = c.ok(&["node", "status", &c.node]);
    let details = kv(&out);
    assert_eq!(details.get("Name"), Some(&c.node), "{out}");
    assert_eq!(
        details.get("Status").map(String::as_str),
        Some("ready"),
        "{out}"
    );
    assert_eq!(
        details.get("Eligibility").map(String::as_str),
        Some("eligible"),
        "{out}"
    );
    assert!(
        details
            .get("Drivers")
            .is_some_and(|d| d.contains("raw_exec")),
        "{out}"
    );
    assert!(out.contains(&hcl_alloc[..8]), "its allocations: {out}");
}

/// The largest `<word> tick N` in `out`.
fn last_tick(out: &str, word: &str) -> Option<u64> {
    let prefix = format!("{word} tick ");
    out.lines()
        .filter_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .max()
}

fn logs_with_task_and_follow(c: &Cluster) {
    // logs ALLOC TASK: only that task's output.
    let pair = alloc_id(&c.running("cli-stdin")[0]);
    let mut out = String::new();
    c.wait_for("task b to print", WAIT, |c| {
        out = c.ok(&["logs", &pair, "b"]);
        (last_tick(&out, "b").is_some(), out.clone())
    });
    assert!(out.starts_with("b tick 0\n"), "{out}");
    assert!(!out.contains("a tick"), "only task b's output: {out}");
    let out = c.ok(&["logs", &pair[..8], "a"]);
    assert!(
        out.starts_with("a tick 0\n") && !out.contains("b tick"),
        "{out}"
    );

    // logs -f ALLOC (one task): the output so far, then new lines as they are written.
    let alloc = alloc_id(&c.running("cli-hcl")[0]);
    let mut follow = Follower::start(c, &["logs", "-f", &alloc]);
    follow.wait_line("the first tick", WAIT, |l| l == "hcl tick 0");
    // Once it has caught up, a line written after this point must still arrive.
    let so_far = last_tick(&c.ok(&["logs", &alloc]), "hcl").expect("hcl ticks");
    let line = follow.wait_line(&format!("a tick after {so_far}"), WAIT, |l| {
        last_tick(l, "hcl").is_some_and(|n| n > so_far)
    });
    assert!(line.starts_with("hcl tick "), "{line}");
    drop(follow);
}

fn task_state(c: &Cluster, alloc: &str, task: &str) -> Value {
    c.json(&["alloc", "status", alloc, "-o", "json"])["TaskStates"][task].clone()
}

fn alloc_restart_one_task(c: &Cluster) {
    let alloc = alloc_id(&c.running("cli-stdin")[0]);
    let prefix = unique_prefix(c, &alloc);
    assert_eq!(task_state(c, &alloc, "a")["Restarts"], 0);
    assert_eq!(task_state(c, &alloc, "b")["Restarts"], 0);

    let out = c.ok(&["alloc", "restart", &prefix, "a"]);
    assert!(
        out.contains(&format!("allocation {alloc}: task \"a\" restarting")),
        "{out}"
    );
    c.wait_for("task a to run again after one restart", WAIT, |c| {
        let a = task_state(c, &alloc, "a");
        (a["Restarts"] == 1 && a["State"] == "running", a.to_string())
    });
    let b = task_state(c, &alloc, "b");
    assert_eq!(b["Restarts"], 0, "task b was left alone: {b}");
    assert_eq!(b["State"], "running", "{b}");

    let out = c.nctl(&["alloc", "restart", &prefix, "nosuch"]);
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "an unknown task is refused: {stdout}"
    );
    assert!(stderr.contains("no task \"nosuch\""), "{stderr}");
}

fn stop_purge(c: &Cluster) {
    assert!(job_ids(c).contains(&"cli-yaml".to_string()));
    let out = c.ok(&["stop", "cli-yaml", "--purge"]);
    assert!(out.contains("job \"cli-yaml\" purged"), "{out}");
    assert!(!job_ids(c).contains(&"cli-yaml".to_string()));
    let table = c.ok(&["get", "jobs"]);
    assert!(!table.contains("cli-yaml"), "{table}");
    assert!(table.contains("cli-hcl"), "{table}");
    let out = c.nctl(&["status", "cli-yaml"]);
    assert!(!out.status.success(), "the purged job is unknown");
}

/// The node as `nctl node status NODE -o json` shows it (Nomad's `Node`).
fn node_json(c: &Cluster) -> Value {
    c.json(&["node", "status", &c.node, "-o", "json"])["node"].clone()
}

fn node_drain_flags(c: &Cluster) {
    let node = c.node.as_str();
    let out = c.ok(&[
        "node",
        "drain",
        node,
        "--ignore-system",
        "--deadline",
        "30s",
    ]);
    assert!(
        out.contains(&format!("node {node}: drain started")),
        "{out}"
    );
    let n = node_json(c);
    assert_eq!(n["Drain"], true, "{n}");
    assert_eq!(n["SchedulingEligibility"], "ineligible", "{n}");
    let drain = &n["DrainStrategy"];
    assert_eq!(drain["IgnoreSystemJobs"], true, "{n}");
    assert_eq!(drain["Deadline"], 30_000_000_000_i64, "a 30s deadline: {n}");
    let table = c.ok(&["node", "status", node]);
    assert_eq!(
        kv(&table).get("Drain").map(String::as_str),
        Some("true"),
        "{table}"
    );

    let out = c.ok(&["node", "drain", node, "--disable"]);
    assert!(
        out.contains(&format!("node {node}: drain cancelled")),
        "{out}"
    );
    let n = node_json(c);
    assert_eq!(n["Drain"], false, "{n}");
    assert_eq!(
        n["SchedulingEligibility"], "eligible",
        "cancelling makes the node eligible: {n}"
    );
    assert!(n["spec"]["drain"].is_null(), "{n}");

    c.ok(&["node", "drain", node, "--deadline", "30s"]);
    assert_eq!(node_json(c)["Drain"], true);
    let out = c.ok(&["node", "drain", node, "--disable", "--keep-ineligible"]);
    assert!(out.contains("drain cancelled"), "{out}");
    let n = node_json(c);
    assert_eq!(n["Drain"], false, "{n}");
    assert_eq!(
        n["SchedulingEligibility"], "ineligible",
        "--keep-ineligible: {n}"
    );
    let table = c.ok(&["get", "nodes"]);
    assert!(table.contains("ineligible"), "{table}");

    c.ok(&["node", "eligibility", node, "--enable"]);
    assert_eq!(node_json(c)["SchedulingEligibility"], "eligible");
}
