//! End to end with ACLs on: `nctl server --acl-enabled`, driven only through `nctl` with
//! `NOMOS_TOKEN` (and `NOMAD_TOKEN`): bootstrap once, apply policies, create tokens; anonymous
//! callers are refused, a `read` token cannot apply, a token for namespace `a` cannot touch
//! `default`, and a deleted token stops working. Lists over every namespace show a scoped token
//! its own namespace's objects (`nctl get allocs`, `nctl deployment list`); roles group
//! policies (`nctl acl role ...`, `nctl acl token create -role-name`), and tokens may expire
//! (`-ttl`).

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
    let c = Cluster::start_acl_server("acl");
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
    ok_as(&c, &root, &["namespace", "apply", "a"]);
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
    // Lists over every namespace are filtered for it, not refused.
    ok_as(&c, &team_secret, &["-n", "*", "get", "allocs"]);
    ok_as(&c, &team_secret, &["-n", "a", "get", "allocs"]);
    ok_as(&c, &team_secret, &["-n", "*", "deployment", "list"]);
    ok_as(&c, &team_secret, &["-n", "a", "deployment", "list"]);
    let listed = ok_as(&c, &team_secret, &["-n", "*", "get", "jobs"]);
    assert!(listed.contains("web"), "{listed}");
    roles_and_expiry(&c, &root);
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

/// `nctl acl role create|list|info|update|delete` with Nomad's single-dash flags, a token that
/// gets its policies through a role (and loses them when the role changes), and `-ttl`.
fn roles_and_expiry(c: &Cluster, root: &str) {
    let created = ok_as(
        c,
        root,
        &[
            "acl",
            "role",
            "create",
            "-name",
            "team-role",
            "-description",
            "team a",
            "-policy",
            "team-a",
        ],
    );
    let id = field(&created, "ID");
    assert_eq!(field(&created, "Policies"), "team-a");
    assert!(ok_as(c, root, &["acl", "role", "list"]).contains("team-role"));
    assert!(ok_as(c, root, &["acl", "role", "info", &id]).contains("team a"));
    let by_name = ok_as(c, root, &["acl", "role", "info", "-by-name", "team-role"]);
    assert_eq!(field(&by_name, "ID"), id);
    refused(
        c,
        &[("NOMOS_TOKEN", root)],
        &[
            "acl",
            "role",
            "create",
            "-name",
            "team-role",
            "-policy",
            "team-a",
        ],
        "already exists",
    );

    let token = ok_as(
        c,
        root,
        &[
            "acl",
            "token",
            "create",
            "-name",
            "via-role",
            "-role-name",
            "team-role",
            "-ttl",
            "1h",
        ],
    );
    assert_ne!(field(&token, "Expiry Time"), "<none>");
    assert!(field(&token, "Roles").contains("team-role"));
    let secret = field(&token, "Secret ID");
    ok_as(c, &secret, &["-n", "a", "get", "jobs"]);
    ok_as(c, &secret, &["-n", "a", "get", "allocs"]);

    // The role now grants only `readonly`: namespace `a` is closed to the token at once.
    let updated = ok_as(
        c,
        root,
        &["acl", "role", "update", &id, "-policy", "readonly"],
    );
    assert_eq!(field(&updated, "Policies"), "readonly");
    assert_eq!(field(&updated, "Name"), "team-role");
    refused(
        c,
        &[("NOMOS_TOKEN", &secret)],
        &["-n", "a", "get", "jobs"],
        "Permission denied",
    );
    ok_as(c, &secret, &["get", "jobs"]);
    ok_as(c, root, &["acl", "role", "delete", &id]);
    refused(
        c,
        &[("NOMOS_TOKEN", &secret)],
        &["get", "jobs"],
        "Permission denied",
    );
    refused(
        c,
        &[("NOMOS_TOKEN", root)],
        &[
            "acl", "token", "create", "-policy", "readonly", "-ttl", "10s",
        ],
        "cannot be less than 1m",
    );
}
