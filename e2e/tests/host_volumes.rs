//! Host volumes end to end: an agent publishes directories from its config file
//! (`client { host_volume ... }`), `nctl node status` lists them, a task mounts them
//! (`raw_exec` under its task directory, `exec` inside its chroot), what one allocation writes
//! the replacement reads back, a read-only mount refuses writes, and a group asking for a volume
//! no node has is not placed, with Nomad's reason.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(90);

/// A cluster whose one agent publishes `shared` (writable) and `certs` (read-only), both
/// directories in the test's temp dir.
struct VolumeCluster {
    c: Cluster,
    _agent: Agent,
    node: String,
    shared: PathBuf,
    certs: PathBuf,
}

fn start(name: &str) -> VolumeCluster {
    let c = Cluster::start_server(name);
    let shared = c.dir.path().join("vol-shared");
    let certs = c.dir.path().join("vol-certs");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("ca.pem"), "not really a certificate\n").unwrap();
    // exec tasks run as `nobody`: the volume must be writable for them, as on a real host.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = format!(
        "client {{\n  host_volume \"shared\" {{\n    path = \"{}\"\n  }}\n  host_volume \"certs\" {{\n    path      = \"{}\"\n    read_only = true\n  }}\n}}\n",
        shared.display(),
        certs.display()
    );
    let file = c.write_file("agent.hcl", &config);
    let node = format!("{name}-node");
    let agent = c.start_agent_with(&node, &["--config", &file]);
    c.wait_nodes_ready(&[&node]);
    VolumeCluster {
        c,
        _agent: agent,
        node,
        shared,
        certs,
    }
}

/// A service job whose task prints what the last allocation left in the writable volume,
/// leaves its own allocation id there, tries to write to the read-only one, then sleeps.
fn keeper_job(id: &str, driver: &str, data: &str, certs: &str) -> String {
    let script = format!(
        "echo \\\"saw: $(cat {data}/last 2>/dev/null || echo nothing)\\\"; \
         echo $NOMAD_ALLOC_ID > {data}/last; \
         if echo x > {certs}/try; then echo 'certs: written'; else echo 'certs: refused'; fi; \
         echo \\\"ca: $(cat {certs}/ca.pem)\\\"; exec sleep 600"
    );
    format!(
        r#"
job "{id}" {{
  datacenters = ["*"]

  group "db" {{
    volume "data" {{
      type   = "host"
      source = "shared"
    }}

    volume "certs" {{
      type      = "host"
      source    = "certs"
      read_only = true
    }}

    task "db" {{
      driver = "{driver}"
      config {{
        command = "/bin/sh"
        args    = ["-c", "{script}"]
      }}
      volume_mount {{
        volume      = "data"
        destination = "{data}"
      }}
      volume_mount {{
        volume      = "certs"
        destination = "{certs}"
      }}
      resources {{
        cpu    = 20
        memory = 32
      }}
    }}
  }}
}}
"#
    )
}

/// The id of the one running allocation of `job`, once its log shows the volume lines.
fn running_alloc(c: &Cluster, job: &str, not: &[String]) -> (String, String) {
    c.wait_for("a running allocation that read its volumes", WAIT, |c| {
        let fresh: Vec<String> = c
            .running(job)
            .iter()
            .filter_map(|a| a["ID"].as_str().map(str::to_string))
            .filter(|id| !not.contains(id))
            .collect();
        let Some(id) = fresh.first() else {
            return (false, format!("{:#?}", c.allocs(job)));
        };
        let logs = String::from_utf8_lossy(&c.nctl(&["logs", &id[..8]]).stdout).to_string();
        (logs.contains("ca: "), logs)
    });
    let id = c
        .running(job)
        .iter()
        .filter_map(|a| a["ID"].as_str().map(str::to_string))
        .find(|id| !not.contains(id))
        .unwrap();
    let logs = c.ok(&["logs", &id[..8]]);
    (id, logs)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Writes, replaces the allocation, reads back: the data is the host volume's, not the
/// allocation's.
fn data_outlives_the_allocation(
    v: &VolumeCluster,
    job: &str,
    driver: &str,
    data: &str,
    certs: &str,
) {
    let c = &v.c;
    let file = c.write_file(&format!("{job}.hcl"), &keeper_job(job, driver, data, certs));
    c.ok(&["apply", "-f", &file]);
    let (first, logs) = running_alloc(c, job, &[]);
    assert!(logs.contains("saw: nothing"), "{logs}");
    assert!(
        logs.contains("certs: refused"),
        "a read-only mount refuses writes: {logs}"
    );
    assert!(logs.contains("ca: not really a certificate"), "{logs}");
    let stderr = c.ok(&["logs", "--stderr", &first[..8]]);
    assert_eq!(
        read(&v.shared.join("last")),
        first,
        "the host directory holds the write: {stderr}"
    );
    assert!(
        !v.certs.join("try").exists(),
        "nothing reached the read-only volume"
    );
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host_mounts.contains(&v.shared.display().to_string()),
        "the bind lives only in the task's mount namespace: {host_mounts}"
    );

    c.ok(&["alloc", "stop", &first[..8]]);
    let (second, logs) = running_alloc(c, job, std::slice::from_ref(&first));
    assert!(
        logs.contains(&format!("saw: {first}")),
        "the replacement reads it back: {logs}"
    );
    assert_eq!(read(&v.shared.join("last")), second);
    c.ok(&["stop", job, "--purge"]);
    c.wait_for("the allocations to be gone", WAIT, |c| {
        let running = c.running(job);
        (running.is_empty(), format!("{running:#?}"))
    });
    assert_eq!(
        read(&v.shared.join("last")),
        second,
        "the data survives the job"
    );
}

#[test]
fn host_volumes_keep_data_across_allocations_and_show_on_the_node() {
    let v = start("hostvol");
    let status = v.c.ok(&["node", "status", &v.node]);
    let volumes = status
        .split("Host Volumes")
        .nth(1)
        .unwrap_or_else(|| panic!("no Host Volumes section: {status}"));
    let row = |name: &str| {
        volumes
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(
        row("certs"),
        ["certs", "true", &v.certs.display().to_string()],
        "{status}"
    );
    assert_eq!(
        row("shared"),
        ["shared", "false", &v.shared.display().to_string()],
        "{status}"
    );

    // raw_exec: relative destinations, under the task directory.
    data_outlives_the_allocation(&v, "keeper-raw", "raw_exec", "data", "certs");
    // exec: absolute destinations, inside the task's chroot.
    std::fs::remove_file(v.shared.join("last")).unwrap();
    data_outlives_the_allocation(&v, "keeper-exec", "exec", "/srv/data", "/etc-certs");
}

#[test]
fn a_volume_no_node_has_is_not_placed_and_the_reason_is_nomads() {
    let v = start("novol");
    let job = keeper_job("lost", "raw_exec", "data", "certs")
        .replace("source = \"shared\"", "source = \"not-here\"");
    let file = v.c.write_file("lost.hcl", &job);
    let out =
        v.c.nctl(&["apply", "-f", &file, "--wait", "--timeout", "60"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("missing compatible host volumes"),
        "the wait ends with the reason: {stderr}"
    );
    let status = v.c.ok(&["status", "lost"]);
    assert!(status.contains("Placement Failure"), "{status}");
    assert!(
        status.contains("missing compatible host volumes"),
        "{status}"
    );
    assert!(v.c.allocs("lost").is_empty());

    // A read-write request for a read-only volume does not fit either.
    let job = keeper_job("writer", "raw_exec", "data", "certs")
        .replace("source = \"shared\"", "source = \"certs\"");
    let file = v.c.write_file("writer.hcl", &job);
    v.c.ok(&["apply", "-f", &file]);
    v.c.wait_for("the placement failure", WAIT, |c| {
        let status = c.ok(&["status", "writer"]);
        (status.contains("missing compatible host volumes"), status)
    });
}

#[test]
fn an_agent_with_a_missing_host_volume_path_does_not_start() {
    let c = Cluster::start_server("badvol");
    let missing = c.dir.path().join("no-such-dir");
    let config = format!(
        "client {{\n  host_volume \"pg\" {{\n    path = \"{}\"\n  }}\n}}\n",
        missing.display()
    );
    let file = c.write_file("bad-agent.hcl", &config);
    let data_dir = c.dir.path().join("agent-badvol");
    let data_dir = data_dir.display().to_string();
    let args = [
        "agent",
        "--no-docker",
        "--name",
        "badvol-node",
        "--store-endpoints",
        &c.store_url,
        "--data-dir",
        &data_dir,
        "--http-addr",
        "127.0.0.1:0",
        "--config",
        &file,
    ];
    let mut agent = c.spawn_nctl(&args);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = agent.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = agent.kill();
            let _ = agent.wait();
            panic!("the agent kept running with a missing host volume path");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(agent.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "the agent exits with an error: {stderr}");
    let expected = format!(
        "host_volume \"pg\": path {:?} cannot be used",
        missing.display().to_string()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}
