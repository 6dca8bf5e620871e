//! `nctl var put | get | list | purge` against `nctl server --acl-enabled`, with Nomad's flags
//! (`-check-index`, `-force`, `-item`, `-out json`, `@file`), a token whose policy's
//! `variables` block reads one path glob only, and `nctl acl policy apply -job` binding a
//! policy to a job's workload identities.

use std::process::{Command, Output};

mod common;

use common::*;

fn nctl_as(c: &Cluster, token: &str, args: &[&str]) -> Output {
    Command::new(nctl_bin())
        .args(args)
        .env("NOMOS_ADDR", &c.addr)
        .env_remove("NOMAD_TOKEN")
        .env("NOMOS_TOKEN", token)
        .current_dir(c.dir.path())
        .output()
        .expect("run nctl")
}

fn ok_as(c: &Cluster, token: &str, args: &[&str]) -> String {
    let out = nctl_as(c, token, args);
    assert!(
        out.status.success(),
        "nctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails_as(c: &Cluster, token: &str, args: &[&str], why: &str) {
    let out = nctl_as(c, token, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(why),
        "nctl {args:?}: expected a failure saying {why:?}, got {}: {err}",
        out.status
    );
}

fn secret_of(bootstrap: &str) -> String {
    bootstrap
        .lines()
        .find_map(|l| l.trim().strip_prefix("Secret ID"))
        .map(|r| r.trim().trim_start_matches('=').trim().to_string())
        .unwrap_or_else(|| panic!("no Secret ID in {bootstrap}"))
}

#[test]
fn nctl_var_verbs_with_check_index_and_acls() {
    let c = Cluster::start_acl_server("vars-cli");
    let root = secret_of(&c.ok(&["acl", "bootstrap"]));

    let out = ok_as(&c, &root, &["var", "put", "app/db", "user=me", "pass=pw1"]);
    assert!(out.contains("Created variable \"app/db\""), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&ok_as(&c, &root, &["var", "get", "-out", "json", "app/db"])).unwrap();
    assert_eq!(v["Items"]["pass"], "pw1");
    let index = v["ModifyIndex"].as_i64().unwrap();

    // A stale check index is refused with Nomad's explanation; the right one, or -force, writes.
    let stale = (index - 1).to_string();
    fails_as(
        &c,
        &root,
        &["var", "put", "-check-index", &stale, "app/db", "pass=pw2"],
        "Check-Index Conflict",
    );
    ok_as(
        &c,
        &root,
        &[
            "var",
            "put",
            "-check-index",
            &index.to_string(),
            "app/db",
            "pass=pw2",
        ],
    );
    // A file from `var get -out json` carries its ModifyIndex, now stale: refused unless -force.
    let spec = c.write_file("db.json", &v.to_string());
    fails_as(
        &c,
        &root,
        &["var", "put", "app/db", &format!("@{spec}")],
        "Check-Index Conflict",
    );
    ok_as(
        &c,
        &root,
        &["var", "put", "-force", "app/db", &format!("@{spec}")],
    );
    assert_eq!(
        ok_as(&c, &root, &["var", "get", "-item", "pass", "app/db"]).trim(),
        "pw1"
    );
    fails_as(
        &c,
        &root,
        &["var", "get", "-item", "nope", "app/db"],
        "no item \"nope\"",
    );
    fails_as(&c, &root, &["var", "put", "a..b", "k=v"], "holds '.'");

    ok_as(&c, &root, &["var", "put", "other/x", "k=v"]);
    let list = ok_as(&c, &root, &["var", "list"]);
    assert!(
        list.contains("app/db") && list.contains("other/x"),
        "{list}"
    );

    // A token reading app/* only.
    let rules = c.write_file(
        "app-read.hcl",
        "namespace \"default\" {\n  variables {\n    path \"app/*\" { capabilities = [\"read\"] }\n  }\n}\n",
    );
    ok_as(&c, &root, &["acl", "policy", "apply", "app-read", &rules]);
    let token = ok_as(
        &c,
        &root,
        &["acl", "token", "create", "--policy", "app-read"],
    );
    let reader = secret_of(&token);
    assert_eq!(
        ok_as(&c, &reader, &["var", "get", "-item", "user", "app/db"]).trim(),
        "me"
    );
    fails_as(
        &c,
        &reader,
        &["var", "put", "app/db", "user=evil"],
        "Permission denied",
    );
    fails_as(&c, &reader, &["var", "get", "other/x"], "Permission denied");
    let list = ok_as(&c, &reader, &["var", "list"]);
    assert!(
        list.contains("app/db") && !list.contains("other/x"),
        "{list}"
    );
    fails_as(
        &c,
        &reader,
        &["var", "purge", "app/db"],
        "Permission denied",
    );

    // Purge, with a stale check index first.
    fails_as(
        &c,
        &root,
        &["var", "purge", "-check-index", "1", "app/db"],
        "Check-Index Conflict",
    );
    ok_as(&c, &root, &["var", "purge", "app/db"]);
    fails_as(&c, &root, &["var", "get", "app/db"], "not found");

    // A policy bound to a job's workload identities.
    ok_as(
        &c,
        &root,
        &[
            "acl", "policy", "apply", "-job", "web", "-group", "g", "web-vars", &rules,
        ],
    );
    let info = ok_as(&c, &root, &["acl", "policy", "info", "web-vars"]);
    assert!(info.contains("default/web/g"), "{info}");
}
