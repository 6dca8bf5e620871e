//! A node joins a server on a real etcd with authentication enabled by spending a one-time
//! join token (`nctl node join-token create`, `nctl agent --join-token`): it gets its own etcd
//! user and role, limited to its node's keys, runs a job with only that, and its credentials
//! cannot read another node's allocations, the ACL keys, or write jobs. A token joins once;
//! an unknown one is refused with 403.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nomos_store::test_util::EtcdProcess;

mod common;

use common::*;

const ROOT_PASSWORD: &str = "e2e-root";

/// `nctl server` on `etcd`, connected as root.
fn start_server(etcd: &EtcdProcess) -> Cluster {
    let endpoints = format!("--etcd-endpoints={}", etcd.endpoint());
    let mut c = Cluster::start_custom("etcd-join", Mode::Server, |c| {
        vec![
            "server".into(),
            "--http-addr".into(),
            c.http_addr.clone(),
            endpoints,
            "--etcd-user".into(),
            "root".into(),
            "--etcd-password".into(),
            ROOT_PASSWORD.into(),
        ]
    });
    c.store_url = etcd.endpoint();
    c
}

/// Runs etcdctl as `user` (`name:password`); does not assert success.
fn etcdctl_as(etcd: &EtcdProcess, user: &str, args: &[&str]) -> Output {
    Command::new("/usr/bin/etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", etcd.endpoint()))
        .arg(format!("--user={user}"))
        .args(args)
        .output()
        .expect("run /usr/bin/etcdctl")
}

fn assert_denied(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("permission denied"),
        "{what} should be denied; status {}, stdout {}, stderr {stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The secret `nctl node join-token create` printed.
fn create_token(c: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["node", "join-token", "create"];
    all.extend_from_slice(args);
    let out = c.ok(&all);
    out.lines()
        .find_map(|l| {
            l.strip_prefix("Token")
                .map(|v| v.trim_start_matches([' ', '=']))
        })
        .unwrap_or_else(|| panic!("no token in {out}"))
        .trim()
        .to_string()
}

/// Runs `nctl agent` joining with `token` as `node` and expects it to fail before it starts
/// (the join is refused); answers its stderr.
fn agent_join_fails(c: &Cluster, node: &str, token: &str) -> String {
    let dir = c.dir.path().join(format!("agent-{node}"));
    let mut child = Command::new(nctl_bin())
        .args(["agent", "--no-docker", "--name", node, "--store-endpoints"])
        .arg(&c.store_url)
        .arg("--data-dir")
        .arg(&dir)
        .args(["--http-addr", "127.0.0.1:0", "--join-token", token])
        .args(["--server-addr", &c.addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nctl agent");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait for the agent") {
            let out = child.wait_with_output().expect("agent output");
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!status.success(), "the join should fail: {stderr}");
            assert!(
                !dir.join("etcd-credentials.json").exists(),
                "nothing saved after a refused join"
            );
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nctl agent with a refused token kept running");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_node_joined_with_a_token_runs_jobs_with_only_its_own_keys() {
    let etcd = EtcdProcess::start();
    etcd.etcdctl(&[
        "user",
        "add",
        "root",
        &format!("--new-user-password={ROOT_PASSWORD}"),
    ]);
    etcd.etcdctl(&["auth", "enable"]);
    let c = start_server(&etcd);

    let stderr = agent_join_fails(&c, "node-x", "nomos-join-made-up");
    assert!(stderr.contains("Permission denied"), "{stderr}");

    let token = create_token(&c, &["-ttl", "10m"]);
    let agent = c.start_agent_with(
        "node-a",
        &["--join-token", &token, "--server-addr", &c.addr],
    );
    c.wait_nodes_ready(&["node-a"]);

    let saved = agent.data_dir.join("etcd-credentials.json");
    let mode = std::fs::metadata(&saved)
        .expect("the agent saved its credentials")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credentials are owner-only");
    let creds: serde_json::Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(creds["etcd_user"], "nomos-node-node-a");
    let user = format!(
        "nomos-node-node-a:{}",
        creds["etcd_password"].as_str().unwrap()
    );

    // The node registers, keeps its lease, reads its allocations and job versions, and
    // reports status, all with its own role only.
    let file = c.write_file("joined.hcl", &loop_job("joined", "service", "count = 1"));
    c.ok(&["apply", "-f", &file]);
    c.wait_for(
        "the job running on the joined node",
        Duration::from_secs(60),
        |c| {
            let r = c.running("joined");
            (r.len() == 1, format!("{r:?}"))
        },
    );

    let own = etcdctl_as(
        &etcd,
        &user,
        &["get", "--prefix", "--keys-only", "/nomos/allocs/node-a/"],
    );
    assert!(own.status.success(), "{own:?}");
    assert!(
        String::from_utf8_lossy(&own.stdout).contains("/nomos/allocs/node-a/"),
        "{own:?}"
    );
    let other = etcdctl_as(&etcd, &user, &["get", "--prefix", "/nomos/allocs/node-b/"]);
    assert_denied(&other, "reading another node's allocations");
    let all = etcdctl_as(&etcd, &user, &["get", "--prefix", "/nomos/allocs/"]);
    assert_denied(&all, "reading every allocation");
    let acl = etcdctl_as(&etcd, &user, &["get", "--prefix", "/nomos/acl/"]);
    assert_denied(&acl, "reading the ACL keys");
    let job = etcdctl_as(&etcd, &user, &["put", "/nomos/jobs/default/evil", "{}"]);
    assert_denied(&job, "writing a job");
    let other_status = etcdctl_as(&etcd, &user, &["put", "/nomos/allocstatus/node-b/x", "{}"]);
    assert_denied(&other_status, "writing another node's status");

    // The token is spent: a second node cannot use it.
    let stderr = agent_join_fails(&c, "node-b", &token);
    assert!(stderr.contains("Permission denied"), "{stderr}");

    // A restart reuses the saved credentials (the spent token is not sent again).
    agent.signal(libc::SIGKILL);
    let again = c.start_agent_with(
        "node-a",
        &["--join-token", &token, "--server-addr", &c.addr],
    );
    c.wait_for(
        "the restarted agent to connect with its saved credentials",
        Duration::from_secs(30),
        |_| {
            let log = std::fs::read_to_string(&again.log_path).unwrap_or_default();
            (
                log.contains("using the saved etcd credentials") && log.contains("heartbeat lease"),
                again.log_tail(),
            )
        },
    );
    c.wait_nodes_ready(&["node-a"]);
}
