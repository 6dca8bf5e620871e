//! Several `nctl server` processes against one real etcd, over TLS with client certificates and
//! etcd's user/password authentication (`--etcd-endpoints`, `--etcd-ca/cert/key`,
//! `--etcd-user/--etcd-password`), with an `nctl agent` on the same etcd: both servers answer the
//! API, one leads the controllers, and when the leader is killed with `kill -9` the other takes
//! over and places what is applied next.

use std::time::Duration;

use nomos_store::test_util::{EtcdProcess, TestCerts};

mod common;

use common::*;

fn service(count: u32) -> String {
    loop_job("shared", "service", &format!("count = {count}"))
}

/// The flags that reach this etcd: TLS with the client certificate, and the root user.
fn etcd_flags(etcd: &EtcdProcess, certs: &TestCerts) -> Vec<String> {
    let path = |p: &std::path::Path| p.display().to_string();
    vec![
        "--etcd-ca".into(),
        path(&certs.ca_file),
        "--etcd-cert".into(),
        path(&certs.client_cert),
        "--etcd-key".into(),
        path(&certs.client_key),
        "--etcd-user".into(),
        "root".into(),
        "--etcd-password".into(),
        "e2e-secret".into(),
    ]
    .into_iter()
    .chain(std::iter::once(format!(
        "--etcd-endpoints={}",
        etcd.endpoint()
    )))
    .collect()
}

fn start_server(name: &str, etcd: &EtcdProcess, certs: &TestCerts) -> Cluster {
    let flags = etcd_flags(etcd, certs);
    let mut c = Cluster::start_custom(name, Mode::Server, |c| {
        let mut args = vec![
            "server".to_string(),
            "--http-addr".into(),
            c.http_addr.clone(),
        ];
        args.extend(flags);
        args
    });
    // Agents join through etcd itself.
    c.store_url = etcd.endpoint();
    c
}

/// Whether this server's process leads the jobs controller (its `/metrics`).
fn leads(c: &Cluster) -> bool {
    let port: u16 = c.http_addr.rsplit(':').next().unwrap().parse().unwrap();
    http_get_path(port, "/metrics")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("nomos_controller_leader") && l.ends_with(" 1"))
}

#[test]
fn servers_on_one_etcd_share_the_work_and_the_survivor_takes_over() {
    let certs_dir = tempfile::tempdir().expect("temp dir");
    let certs = TestCerts::generate(certs_dir.path());
    let etcd = EtcdProcess::start_tls(certs.clone());
    etcd.etcdctl(&["user", "add", "root", "--new-user-password=e2e-secret"]);
    etcd.etcdctl(&["auth", "enable"]);

    let mut first = start_server("etcd-a", &etcd, &certs);
    let mut second = start_server("etcd-b", &etcd, &certs);
    let flags = etcd_flags(&etcd, &certs);
    let agent_flags: Vec<&str> = flags
        .iter()
        .filter(|f| !f.starts_with("--etcd-endpoints"))
        .map(String::as_str)
        .collect();
    // Declared after the servers, so dropped (and purged, stopping its tasks) before their
    // temp dirs, which hold its data dir, go away.
    let _agent = first.start_agent_with("shared-node", &agent_flags);
    first.wait_nodes_ready(&["shared-node"]);

    // Applied through one server, seen and run through the other.
    let file = first.write_file("shared.hcl", &service(1));
    first.ok(&["apply", "-f", &file]);
    second.wait_for(
        "the job running, seen from the second server",
        Duration::from_secs(60),
        |c| {
            let r = c.running("shared");
            (r.len() == 1, format!("{r:?}"))
        },
    );
    first.wait_for("exactly one leader", Duration::from_secs(30), |_| {
        let (a, b) = (leads(&first), leads(&second));
        (a != b, format!("first leads: {a}, second leads: {b}"))
    });

    // Kill the leader; the other server takes over and places the next change.
    let (dead, alive) = if leads(&first) {
        (&mut first, &second)
    } else {
        (&mut second, &first)
    };
    dead.kill9();
    let file = alive.write_file("shared-3.hcl", &service(3));
    alive.ok(&["apply", "-f", &file]);
    alive.wait_for(
        "the surviving server to lead and place the new copies",
        Duration::from_secs(90),
        |c| {
            let r = c.running("shared");
            (
                r.len() == 3 && leads(c),
                format!("{} running, leads: {}", r.len(), leads(c)),
            )
        },
    );
}
