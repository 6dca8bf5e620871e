//! The embedded store's twin of `etcd_node_join.rs`: with authentication enabled on a server's
//! store endpoint (`etcdctl user add root`, `etcdctl auth enable` against `--store-addr`), a
//! node joins with a one-time token, gets its own store user and role limited to its node's
//! keys, runs a job with only that, and its credentials cannot read another node's
//! allocations, the ACL keys, or write jobs. An unknown token is refused with 403.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;

const ROOT_PASSWORD: &str = "e2e-root";

/// Runs etcdctl against the store endpoint, as `user` (`name:password`) when given; does not
/// assert success.
fn etcdctl(c: &Cluster, user: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new("/usr/bin/etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", c.store_url));
    if let Some(user) = user {
        cmd.arg(format!("--user={user}"));
    }
    cmd.args(args).output().expect("run /usr/bin/etcdctl")
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// Runs `nctl agent` joining with `token` as `node`, expects it to exit with an error, and
/// answers its stderr.
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
fn a_node_joined_on_the_embedded_store_runs_jobs_with_only_its_own_keys() {
    let c = Cluster::start_server("embedded-join");
    let add_root = etcdctl(
        &c,
        None,
        &[
            "user",
            "add",
            "root",
            &format!("--new-user-password={ROOT_PASSWORD}"),
        ],
    );
    assert_ok(&add_root, "adding root");
    assert_ok(&etcdctl(&c, None, &["auth", "enable"]), "enabling auth");
    let anonymous = etcdctl(&c, None, &["get", "--prefix", "/nomos/"]);
    assert!(
        String::from_utf8_lossy(&anonymous.stderr).contains("user name is empty"),
        "{anonymous:?}"
    );

    let stderr = agent_join_fails(&c, "node-x", "nomos-join-made-up");
    assert!(stderr.contains("Permission denied"), "{stderr}");

    let token = create_token(&c, &["-ttl", "10m"]);
    let agent = c.start_agent_with(
        "node-a",
        &["--join-token", &token, "--server-addr", &c.addr],
    );
    c.wait_nodes_ready(&["node-a"]);
    let saved = agent.data_dir.join("etcd-credentials.json");
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved).expect("saved credentials")).unwrap();
    assert_eq!(creds["etcd_user"], "nomos-node-node-a");
    let user = format!(
        "nomos-node-node-a:{}",
        creds["etcd_password"].as_str().unwrap()
    );

    let file = c.write_file("joined.hcl", &loop_job("joined", "service", "count = 1"));
    c.ok(&["apply", "-f", &file]);
    c.wait_for(
        "the job running on the joined node",
        Duration::from_secs(60),
        |c| {
            let r = c.running("joined");
            (
                r.len() == 1,
                format!("{r:?}\nagent log:\n{}", agent.log_tail()),
            )
        },
    );

    let own = etcdctl(
        &c,
        Some(&user),
        &["get", "--prefix", "--keys-only", "/nomos/allocs/node-a/"],
    );
    assert_ok(&own, "reading its own allocations");
    assert!(
        String::from_utf8_lossy(&own.stdout).contains("/nomos/allocs/node-a/"),
        "{own:?}"
    );
    let cases: [(&[&str], &str); 5] = [
        (
            &["get", "--prefix", "/nomos/allocs/node-b/"],
            "reading another node's allocations",
        ),
        (
            &["get", "--prefix", "/nomos/allocs/"],
            "reading every allocation",
        ),
        (&["get", "--prefix", "/nomos/acl/"], "reading the ACL keys"),
        (&["put", "/nomos/jobs/default/evil", "{}"], "writing a job"),
        (
            &["put", "/nomos/allocstatus/node-b/x", "{}"],
            "writing another node's status",
        ),
    ];
    for (args, what) in cases {
        assert_denied(&etcdctl(&c, Some(&user), args), what);
    }

    // The token is spent: a second node cannot use it.
    let stderr = agent_join_fails(&c, "node-b", &token);
    assert!(stderr.contains("Permission denied"), "{stderr}");
}
