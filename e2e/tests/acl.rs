//! End to end with ACLs on: `nctl server --acl-enabled`, driven only through `nctl` with
//! `NOMOS_TOKEN` (and `NOMAD_TOKEN`): bootstrap once, apply policies, create tokens; anonymous
//! callers are refused, a `read` token cannot apply, a token for namespace `a` cannot touch
//! `default`, and a deleted token stops working.

use std::process::{Command, Output};

mod common;

use common::*;

/// `nctl ARGS` against `c` with `env` set (`NOMOS_TOKEN=...`).
fn nctl_with(c: &Cluster, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(nctl_bin())
        .args(args)
        .env("NOMOS_ADDR", &c.addr)
        .env_remove("NOMOS_TOKEN")
        .env_remove("NOMAD_TOKEN")
        .envs(env.iter().copied())
        .current_dir(c.dir.path())
        .output()
        .expect("run nctl")
}

fn ok_as(c: &Cluster, token: &str, args: &[&str]) -> String {
    let out = nctl_with(c, &[("NOMOS_TOKEN", token)], args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "nctl {args:?} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Asserts `nctl ARGS` fails and its error says `why`.
fn refused(c: &Cluster, env: &[(&str, &str)], args: &[&str], why: &str) {
    let out = nctl_with(c, env, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(why),
        "nctl {args:?} with {env:?}: expected failure with {why:?}, got {}: {err}",
        out.status
    );
}

/// The value of `Key = value` in nctl's key/value output.
fn field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(key)
                .map(|r| r.trim().trim_start_matches('=').trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {key:?} in:\n{text}"))
}

fn job_in(c: &Cluster, file: &str, id: &str, namespace: &str) -> String {
    let text = web_job(id, 1, "hi").replacen(
        &format!("job \"{id}\" {{"),
        &format!("job \"{id}\" {{\n  namespace = \"{namespace}\""),
        1,
    );
    c.write_file(file, &text)
}

#[test]
fn acl_bootstrap_policies_and_tokens_through_nctl() {
    let c = Cluster::start_custom("acl", Mode::Server, |c| {
        vec![
            "server".into(),
            "--data-dir".into(),
            c.data_dir.display().to_string(),
            "--http-addr".into(),
            c.http_addr.clone(),
            "--acl-enabled".into(),
        ]
    });
    let none: &[(&str, &str)] = &[];
    refused(&c, none, &["get", "jobs"], "Permission denied");

    let boot = c.ok(&["acl", "bootstrap"]);
    let root = field(&boot, "Secret ID");
    refused(
        &c,
        none,
        &["acl", "bootstrap"],
        "ACL bootstrap already done",
    );

    let read = c.write_file(
        "read.hcl",
        "namespace \"default\" {\n  policy = \"read\"\n}\n",
    );
    let team = c.write_file("team.hcl", "namespace \"a\" {\n  policy = \"write\"\n}\n");
    ok_as(&c, &root, &["acl", "policy", "apply", "readonly", &read]);
    ok_as(&c, &root, &["acl", "policy", "apply", "team-a", &team]);
    assert!(ok_as(&c, &root, &["acl", "policy", "list"]).contains("team-a"));

    let reader = field(
        &ok_as(
            &c,
            &root,
            &[
                "acl", "token", "create", "--name", "r", "--policy", "readonly",
            ],
        ),
        "Secret ID",
    );
    let created = ok_as(
        &c,
        &root,
        &[
            "acl", "token", "create", "--name", "a", "--policy", "team-a",
        ],
    );
    let (team_accessor, team_secret) =
        (field(&created, "Accessor ID"), field(&created, "Secret ID"));

    let web = job_in(&c, "web.hcl", "web", "default");
    let web_a = job_in(&c, "web-a.hcl", "web", "a");
    // A read token reads, but cannot apply.
    ok_as(&c, &reader, &["get", "jobs"]);
    refused(
        &c,
        &[("NOMOS_TOKEN", &reader)],
        &["apply", "-f", &web],
        "Permission denied",
    );
    // Nomad's variable works too.
    refused(
        &c,
        &[("NOMAD_TOKEN", &reader)],
        &["apply", "-f", &web],
        "Permission denied",
    );
    // A token for namespace `a` applies there, not in `default`.
    ok_as(&c, &team_secret, &["apply", "-f", &web_a]);
    refused(
        &c,
        &[("NOMOS_TOKEN", &team_secret)],
        &["apply", "-f", &web],
        "Permission denied",
    );
    refused(
        &c,
        &[("NOMOS_TOKEN", &team_secret)],
        &["get", "jobs"],
        "Permission denied",
    );
    ok_as(&c, &team_secret, &["-n", "a", "get", "jobs"]);
    // Management does everything.
    ok_as(&c, &root, &["apply", "-f", &web]);
    assert!(ok_as(&c, &root, &["acl", "token", "self"]).contains("management"));
    // A deleted token stops working.
    ok_as(&c, &root, &["acl", "token", "delete", &team_accessor]);
    refused(
        &c,
        &[("NOMOS_TOKEN", &team_secret)],
        &["-n", "a", "get", "jobs"],
        "ACL token not found",
    );
    // An invalid policy is reported with its file, line and column before anything is sent.
    let bad = c.write_file("bad.hcl", "namespace \"a\" {\n  policy = \"reed\"\n}\n");
    refused(
        &c,
        &[("NOMOS_TOKEN", &root)],
        &["acl", "policy", "apply", "bad", &bad],
        "bad.hcl:2:12: unknown policy",
    );
}
