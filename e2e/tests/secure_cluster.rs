//! The secure cluster, end to end, as issue 15's "done when" describes it: `nctl server` with
//! Nomad's `tls` block (HTTPS with client certificates, mutual TLS to agents) and
//! `acl { enabled = true }`, one `nctl agent` holding a client certificate, everything driven
//! through `nctl`:
//! - an anonymous client (a valid certificate, no token) is refused every read and write;
//! - a `read` token reads but cannot apply; a token for namespace `a` cannot touch `default`;
//! - the agent's endpoint refuses a caller without a certificate of the CA;
//! - a task reads its Variable through a template (with its workload identity, over HTTPS);
//! - after `nctl operator root keyring rotate` the Variable still reads, through `nctl` and
//!   through the template of a restarted task.

use std::process::{Command, Output};
use std::time::Duration;

mod common;

use common::tls::{cli_env, https_get, make_certs, pem, tls_block};
use common::*;

fn server_hcl(c: &Cluster) -> String {
    let port = c.http_addr.rsplit(':').next().unwrap();
    format!(
        r#"data_dir  = "{data}"
bind_addr = "127.0.0.1"

ports {{
  http = {port}
}}

server {{
  enabled = true
}}

acl {{
  enabled = true
}}
{tls}"#,
        data = c.data_dir.display(),
        tls = tls_block(c.dir.path(), "server"),
    )
}

fn client_hcl(c: &Cluster) -> String {
    format!(
        r#"client {{
  enabled = true
}}

plugin "raw_exec" {{
  config {{
    enabled = true
  }}
}}
{tls}"#,
        tls = tls_block(c.dir.path(), "client"),
    )
}

/// A service whose page is its template: the Variable's `password`, read with the task's
/// workload identity.
fn secret_page_job() -> String {
    r#"job "vault-free" {
  datacenters = ["*"]

  group "web" {
    network {
      port "http" {}
    }

    task "page" {
      driver = "raw_exec"
      config {
        command = "/bin/busybox"
        args    = ["httpd", "-f", "-p", "127.0.0.1:${NOMAD_PORT_http}", "-h", "local"]
      }
      template {
        destination = "local/index.html"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/vault-free" }}password={{ .password }}{{ end }}
          alloc={{ env "NOMAD_ALLOC_ID" }}
        EOT
      }
      identity {
        file = true
      }
      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"#
    .to_string()
}

/// `nctl ARGS` with the cluster's certificates and `token` (none: anonymous).
fn nctl_as(c: &Cluster, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(nctl_bin());
    cmd.args(args)
        .env("NOMOS_ADDR", &c.addr)
        .env_remove("NOMOS_TOKEN")
        .env_remove("NOMAD_TOKEN")
        .envs(c.env.iter().map(|(k, v)| (k, v)))
        .current_dir(c.dir.path());
    if let Some(t) = token {
        cmd.env("NOMOS_TOKEN", t);
    }
    cmd.output().expect("run nctl")
}

fn ok_as(c: &Cluster, token: &str, args: &[&str]) -> String {
    let out = nctl_as(c, Some(token), args);
    assert!(
        out.status.success(),
        "nctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn denied(c: &Cluster, token: Option<&str>, args: &[&str]) {
    let out = nctl_as(c, token, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Permission denied"),
        "nctl {args:?} as {token:?}: expected 403, got {}: {err}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

fn field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(key)
                .map(|r| r.trim().trim_start_matches('=').trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {key:?} in:\n{text}"))
}

/// The page the job's one running allocation serves, once it says `password=`.
fn wait_for_page(c: &Cluster, root: &str, not_alloc: Option<&str>) -> (String, String) {
    let mut page = (String::new(), String::new());
    c.wait_for(
        "the task's page to show its Variable",
        Duration::from_secs(90),
        |c| {
            let allocs = nctl_as(
                c,
                Some(root),
                &["get", "allocs", "--job", "vault-free", "-o", "json"],
            );
            let allocs: serde_json::Value =
                serde_json::from_slice(&allocs.stdout).unwrap_or_default();
            let running = allocs
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .find(|a| {
                    a["ClientStatus"] == "running"
                        && Some(a["ID"].as_str().unwrap_or_default()) != not_alloc
                });
            let Some(a) = running else {
                return (false, allocs.to_string());
            };
            let id = a["ID"].as_str().unwrap_or_default().to_string();
            match http_get(port_of(&a, "http")) {
                Some(body) if body.contains("password=") => {
                    page = (id, body);
                    (true, String::new())
                }
                other => (false, format!("{other:?} {a}")),
            }
        },
    );
    page
}

#[test]
fn a_cluster_with_mutual_tls_and_acls_serves_a_task_its_variable_across_a_key_rotation() {
    require_busybox();
    let c = Cluster::start_prepared("secure", Mode::Server, |c| {
        make_certs(c);
        c.env = cli_env(c.dir.path());
        let file = c.write_file("server.hcl", &server_hcl(c));
        let store_port = c.store_url.rsplit(':').next().unwrap().to_string();
        let store_addr = format!("127.0.0.1:{store_port}");
        ["server", "-config", &file, "--store-addr", &store_addr]
            .into_iter()
            .map(String::from)
            .collect()
    });
    assert!(c.addr.starts_with("https://"), "{}", c.addr);
    let dir = c.dir.path().to_path_buf();
    let job = c.write_file("page.hcl", &secret_page_job());

    // Anonymous: every read and write refused.
    for args in [
        &["get", "jobs"][..],
        &["get", "nodes"],
        &["get", "allocs"],
        &["apply", "-f", &job],
        &["var", "get", "nomad/jobs/vault-free"],
        &["var", "put", "nomad/jobs/vault-free", "password=x"],
        &["namespace", "apply", "a"],
        &["operator", "root", "keyring", "rotate"],
    ] {
        denied(&c, None, args);
    }

    let root = field(&ok_as(&c, "", &["acl", "bootstrap"]), "Secret ID");
    ok_as(&c, &root, &["namespace", "apply", "a"]);
    let read = c.write_file(
        "read.hcl",
        "namespace \"default\" {\n  policy = \"read\"\n}\n",
    );
    let team = c.write_file("team.hcl", "namespace \"a\" {\n  policy = \"write\"\n}\n");
    ok_as(&c, &root, &["acl", "policy", "apply", "readonly", &read]);
    ok_as(&c, &root, &["acl", "policy", "apply", "team-a", &team]);
    let token = |policy: &str| {
        let made = ok_as(
            &c,
            &root,
            &[
                "acl", "token", "create", "--name", policy, "--policy", policy,
            ],
        );
        field(&made, "Secret ID")
    };
    let (reader, team_a) = (token("readonly"), token("team-a"));

    // A read token reads and cannot apply; namespace a's token cannot touch default.
    ok_as(&c, &reader, &["get", "jobs"]);
    denied(&c, Some(&reader), &["apply", "-f", &job]);
    denied(&c, Some(&team_a), &["apply", "-f", &job]);
    denied(&c, Some(&team_a), &["var", "get", "nomad/jobs/vault-free"]);
    denied(
        &c,
        Some(&reader),
        &["var", "put", "nomad/jobs/vault-free", "password=x"],
    );

    // The agent joins over mutual TLS (the store endpoint too); its endpoint refuses callers
    // without a certificate.
    let plain_store = c.store_url.clone();
    let mut c = c;
    c.store_url = plain_store.replacen("http://", "https://", 1);
    let agent_file = c.write_file("client.hcl", &client_hcl(&c));
    let agent = c.start_agent_with("secure-1", &["-config", &agent_file]);
    c.env.push(("NOMOS_TOKEN".to_string(), root.clone()));
    c.wait_nodes_ready(&["secure-1"]);
    let node = c.json(&["node", "status", "secure-1", "-o", "json"])["node"].clone();
    let agent_url = node["HTTPAddr"].as_str().unwrap_or_default().to_string();
    assert!(agent_url.starts_with("https://"), "{node}");
    let ca = pem(&dir, "nomad-agent-ca");
    let without = https_get(&format!("{agent_url}/metrics"), ca.clone(), None);
    assert!(without.is_err(), "no certificate: {without:?}");
    // The store endpoint, too, refuses a client without a certificate (and plain HTTP).
    let store = c.store_url.clone();
    let without = https_get(&format!("{store}/version"), ca.clone(), None);
    assert!(without.is_err(), "no certificate: {without:?}");
    let plain = std::process::Command::new("etcdctl")
        .args([
            "--endpoints",
            &plain_store,
            "--dial-timeout",
            "2s",
            "get",
            "/nomos/",
            "--prefix",
            "--keys-only",
        ])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl (scripts/install-deps installs it)");
    assert!(
        !plain.status.success(),
        "plain etcdctl read the store: {}",
        String::from_utf8_lossy(&plain.stdout)
    );

    // The task reads its Variable through its template, with its own identity.
    c.ok(&[
        "var",
        "put",
        "nomad/jobs/vault-free",
        "password=hunter2-e2e",
    ]);
    c.ok(&["apply", "-f", &job]);
    let (first, page) = wait_for_page(&c, &root, None);
    assert!(
        page.contains("password=hunter2-e2e"),
        "{page}\n{}",
        agent.log_tail()
    );
    assert!(page.contains(&format!("alloc={first}")), "{page}");
    let token_file = agent
        .data_dir
        .join("allocs")
        .join(&first)
        .join("page/secrets/nomad_token");
    let jwt = std::fs::read_to_string(&token_file).unwrap_or_default();
    assert_eq!(
        jwt.split('.').count(),
        3,
        "{token_file:?} holds a JWT: {jwt:?}"
    );

    // Rotate the keyring: the Variable still reads, and a new allocation renders it again.
    c.ok(&["operator", "root", "keyring", "rotate"]);
    assert!(c
        .ok(&["var", "get", "nomad/jobs/vault-free"])
        .contains("hunter2-e2e"));
    c.ok(&["alloc", "stop", &first]);
    let (second, page) = wait_for_page(&c, &root, Some(&first));
    assert_ne!(first, second);
    assert!(
        page.contains("password=hunter2-e2e"),
        "{page}\n{}",
        agent.log_tail()
    );
    c.ok(&["stop", "vault-free"]);

    // SIGHUP: the agent serves a renewed certificate without a restart (here one of another
    // CA, so that a client can tell which it is served); the old CA no longer verifies it.
    let renew = dir.join("renew");
    std::fs::create_dir_all(&renew).unwrap();
    for args in [
        &["tls", "ca", "create"][..],
        &["tls", "cert", "create", "-client"],
    ] {
        let out = Command::new(nctl_bin())
            .args(args)
            .current_dir(&renew)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for name in ["global-client-nomad", "global-client-nomad-key"] {
        std::fs::copy(pem(&renew, name), pem(&dir, name)).unwrap();
    }
    agent.signal(libc::SIGHUP);
    let cli = (
        pem(&dir, "global-cli-nomad"),
        pem(&dir, "global-cli-nomad-key"),
    );
    let metrics = format!("{agent_url}/metrics");
    c.wait_for(
        "the agent to serve its renewed certificate",
        Duration::from_secs(20),
        |_| {
            let new = https_get(&metrics, pem(&renew, "nomad-agent-ca"), Some(cli.clone()));
            (new == Ok(200), format!("{new:?}"))
        },
    );
    assert!(https_get(&metrics, ca, Some(cli)).is_err());
}
