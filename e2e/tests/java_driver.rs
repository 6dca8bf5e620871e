//! The `java` driver for real: a jar and a class, built here with the host's `javac` and `jar`,
//! are fetched by `artifact` blocks from a loopback HTTP server and run isolated as exec tasks
//! (user `nobody`, in a chroot); their output is read back with `nctl logs`. A java service is
//! found again after the agent restarts and ends with its job. A missing jar fails the
//! allocation with an event that says why; a bad config is refused by `nctl apply`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::files::FileServer;
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

/// Prints its arguments and who and where it runs, so the test sees the chroot and the user;
/// with `--stay` it then runs until it is stopped.
const HELLO_JAVA: &str = r#"
public class Hello {
    public static void main(String[] args) throws InterruptedException {
        boolean hostRoot = new java.io.File("/root").exists();
        System.out.println("hello from java: " + String.join(" ", args)
            + " (user " + System.getProperty("user.name")
            + ", host /root visible: " + hostRoot + ")");
        if (java.util.Arrays.asList(args).contains("--stay")) {
            Thread.sleep(Long.MAX_VALUE);
        }
    }
}
"#;

/// Compiles `Hello` into `dir` and packs it into `dir/hello.jar` with `Hello` as its main class.
/// Fails loudly when the JDK's tools are missing.
fn build_hello(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("Hello.java"), HELLO_JAVA).unwrap();
    run_tool("javac", &["-d", ".", "Hello.java"], dir);
    run_tool("jar", &["cfe", "hello.jar", "Hello", "Hello.class"], dir);
    dir.join("hello.jar")
}

fn run_tool(tool: &str, args: &[&str], dir: &Path) {
    let out = std::process::Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool} is needed for this test (a JDK, e.g. openjdk-17-jdk-headless): {e}")
        });
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A batch job of one java task that must not be restarted; `task_body` goes inside the task.
fn java_job(id: &str, task_body: &str) -> String {
    java_job_of_type(id, "batch", task_body)
}

fn java_job_of_type(id: &str, job_type: &str, task_body: &str) -> String {
    format!(
        r#"
job "{id}" {{
  datacenters = ["*"]
  type = "{job_type}"
  group "g" {{
    restart {{
      attempts = 0
      mode     = "fail"
    }}
    reschedule {{
      attempts  = 0
      unlimited = false
    }}
    task "app" {{
      driver = "java"
{task_body}
      resources {{
        cpu    = 100
        memory = 256
      }}
    }}
  }}
}}
"#
    )
}

/// Applies `job` and waits for its one allocation to end; returns it.
fn run_to_end(c: &Cluster, id: &str, job: &str) -> Value {
    let file = c.write_file(&format!("{id}.hcl"), job);
    c.ok(&["apply", "-f", &file]);
    let mut last = Value::Null;
    c.wait_for(&format!("the allocation of {id} to end"), WAIT, |c| {
        let allocs = c.allocs(id);
        let ended = allocs.len() == 1
            && matches!(
                allocs[0]["ClientStatus"].as_str(),
                Some("complete" | "failed")
            );
        last = allocs.first().cloned().unwrap_or_default();
        (ended, format!("{allocs:?}"))
    });
    last
}

fn alloc_id(alloc: &Value) -> String {
    alloc["ID"].as_str().expect("alloc id").to_string()
}

/// The task's events as JSON text, read from `nctl alloc status -o json`.
fn event_messages(c: &Cluster, alloc: &Value) -> Vec<String> {
    let status = c.json(&["alloc", "status", &alloc_id(alloc), "-o", "json"]);
    status["TaskStates"]["app"]["Events"]
        .as_array()
        .map(|events| events.iter().map(Value::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn java_runs_a_jar_and_a_class_fetched_by_artifacts_isolated_as_exec() {
    let c = Cluster::start("java");
    let build = tempfile::tempdir().unwrap();
    build_hello(build.path());
    let server = FileServer::start(build.path().to_path_buf());

    let node = c.json(&["node", "status", &c.node, "-o", "json"]);
    let attrs = &node["node"]["Attributes"];
    assert_eq!(attrs["driver.java"], "1", "java is offered: {node}");
    let version = attrs["driver.java.version"].as_str().unwrap_or_default();
    assert!(
        version.starts_with(|ch: char| ch.is_ascii_digit()),
        "driver.java.version: {node}"
    );
    for key in ["driver.java.runtime", "driver.java.vm"] {
        assert!(
            attrs[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}: {node}"
        );
    }

    // (job, file the artifact fetches, config block, the program's arguments as it prints them)
    let cases = [
        (
            "java-jar",
            "hello.jar",
            r#"jar_path    = "local/hello.jar"
        jvm_options = ["-Xms16m"]
        args        = ["from", "a jar"]"#,
            "from a jar",
        ),
        (
            "java-class",
            "Hello.class",
            r#"class      = "Hello"
        class_path = "${NOMAD_TASK_DIR}"
        args       = ["from a class"]"#,
            "from a class",
        ),
    ];
    for (id, file, config, printed) in cases {
        let task = artifact_and_config(&server.url(file), config);
        let alloc = run_to_end(&c, id, &java_job(id, &task));
        let events = event_messages(&c, &alloc);
        assert_eq!(alloc["ClientStatus"], "complete", "{id}: {events:?}");
        let logs = c.ok(&["logs", &alloc_id(&alloc)[..8]]);
        assert_eq!(
            logs,
            format!("hello from java: {printed} (user nobody, host /root visible: false)\n"),
            "{id}"
        );
    }
}

/// A task body: an artifact fetched from `url` and a config block holding `config`.
fn artifact_and_config(url: &str, config: &str) -> String {
    format!(
        "      artifact {{\n        source = \"{url}\"\n      }}\n      config {{\n        {config}\n      }}"
    )
}

#[test]
fn a_java_service_is_found_again_after_an_agent_restart_and_ends_with_its_job() {
    let mut c = Cluster::start("java-svc");
    let build = tempfile::tempdir().unwrap();
    build_hello(build.path());
    let server = FileServer::start(build.path().to_path_buf());
    let config = r#"jar_path = "local/hello.jar"
        args     = ["--stay"]"#;
    let task = artifact_and_config(&server.url("hello.jar"), config);
    let file = c.write_file("svc.hcl", &java_job_of_type("java-svc", "service", &task));
    c.ok(&["apply", "-f", &file]);
    c.wait_for("the java service to run", WAIT, |c| {
        let running = c.running("java-svc");
        (running.len() == 1, format!("{:?}", c.allocs("java-svc")))
    });
    let alloc = alloc_id(&c.running("java-svc")[0]);
    let jvm_pids = || -> Vec<i32> {
        pids_of_alloc(&alloc)
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmd| cmd.starts_with(b"/usr/bin/java\0"))
            })
            .collect()
    };
    let before = jvm_pids();
    assert_eq!(before.len(), 1, "one JVM runs the task: {before:?}");
    // A way into the running JVM's task, isolated as the task is: its user, its chroot.
    let out = c.nctl(&[
        "alloc",
        "exec",
        &alloc[..8],
        "sh",
        "-c",
        "id -u; ls /root; exit 5",
    ]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "65534\n");

    c.restart();
    c.wait_nodes_ready(&[&c.node.clone()]);
    c.wait_for("the service to be reported running again", WAIT, |c| {
        let running = c.running("java-svc");
        (running.len() == 1, format!("{:?}", c.allocs("java-svc")))
    });
    assert_eq!(alloc_id(&c.running("java-svc")[0]), alloc);
    assert_eq!(jvm_pids(), before, "the same JVM, not a new one");
    let logs = c.ok(&["logs", &alloc[..8]]);
    assert_eq!(
        logs,
        "hello from java: --stay (user nobody, host /root visible: false)\n"
    );
    c.ok(&["stop", "java-svc"]);
    c.wait_for("the JVM to end with its job", WAIT, |_| {
        let left = jvm_pids();
        (left.is_empty(), format!("{left:?}"))
    });
}

#[test]
fn a_missing_jar_fails_the_allocation_and_a_bad_config_is_refused_at_apply() {
    let c = Cluster::start("java-bad");
    let missing = r#"      config {
        jar_path = "local/absent.jar"
      }"#;
    let alloc = run_to_end(&c, "java-nojar", &java_job("java-nojar", missing));
    let events = event_messages(&c, &alloc);
    assert_eq!(alloc["ClientStatus"], "failed", "{events:?}");
    let why = "absent.jar\\\" not found in the task directory";
    assert!(
        events
            .iter()
            .any(|e| e.contains("Driver Failure") && e.contains(why)),
        "no Driver Failure event saying {why:?} in {events:?}"
    );

    // (job, config block, what the refusal says)
    let cases = [
        (
            "java-badopts",
            r#"      config {
        jar_path    = "local/app.jar"
        jvm_options = "-Xmx1g"
      }"#,
            "config.jvm_options must be a list of strings, found a string",
        ),
        (
            "java-neither",
            r#"      config {
        args = ["x"]
      }"#,
            "config needs jar_path or class",
        ),
        (
            "java-typo",
            r#"      config {
        jar = "local/app.jar"
      }"#,
            "unknown key config.jar",
        ),
    ];
    for (id, body, why) in cases {
        let file = c.write_file(&format!("{id}.hcl"), &java_job(id, body));
        let out = c.nctl(&["apply", "-f", &file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{id} was accepted");
        assert!(stderr.contains(why), "{id}: {stderr}");
        assert!(stderr.contains(&format!("{id}.hcl:")), "{id}: {stderr}");
    }
}
