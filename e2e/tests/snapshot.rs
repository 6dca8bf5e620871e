//! Backup and restore of a server on the embedded store, as `docs/operations.md` describes it:
//! `etcdctl snapshot save` from the server's store endpoint, `nctl operator snapshot restore`
//! into a new data dir, a new server on it: the job applied before the snapshot is there.

use std::path::Path;
use std::process::Command;

mod common;

use common::*;

const ETCDCTL: &str = "/usr/bin/etcdctl";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("running a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn etcdctl_snapshot_save(endpoint: &str, file: &Path) {
    assert!(
        Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing (Debian's etcd-client)"
    );
    let printed = run(Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["snapshot", "save"])
        .arg(file));
    assert!(printed.contains("Snapshot saved at"), "{printed}");
}

#[test]
fn a_job_survives_snapshot_save_and_restore_into_a_new_data_dir() {
    let mut c = Cluster::start_server("snapshot");
    let job = c.write_file("web.hcl", &web_job("web", 1, "before the backup"));
    c.ok(&["apply", "-f", &job]);
    let file = c.dir.path().join("backup.db");
    etcdctl_snapshot_save(&c.store_url, &file);
    // nctl's own save reads the same endpoint and checks what it wrote.
    let nctl_file = c.dir.path().join("backup-nctl.db");
    let saved = c.ok(&[
        "operator",
        "snapshot",
        "save",
        nctl_file.to_str().unwrap(),
        "--endpoint",
        &c.store_url,
    ]);
    assert!(saved.contains("Snapshot saved at"), "{saved}");
    let inspected = c.ok(&["operator", "snapshot", "inspect", file.to_str().unwrap()]);
    assert!(inspected.contains("Revision"), "{inspected}");
    let (status, _) = c.interrupt();
    assert!(status.success(), "the server stops cleanly: {status}");

    let restored_dir = c.dir.path().join("restored");
    let printed = c.ok(&[
        "operator",
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        restored_dir.to_str().unwrap(),
    ]);
    assert!(printed.contains("Restored revision"), "{printed}");
    assert!(
        printed.contains("keyring.key"),
        "the restore names the key file to bring: {printed}"
    );
    std::fs::copy(
        c.data_dir.join("keyring.key"),
        restored_dir.join("keyring.key"),
    )
    .expect("bringing the keyring key file from the backup");
    let again = c.nctl(&[
        "operator",
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        restored_dir.to_str().unwrap(),
    ]);
    assert!(!again.status.success(), "a second restore needs --force");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let restored = Cluster::start_custom("snapshot-restored", Mode::Server, |r| {
        vec![
            "server".into(),
            "--data-dir".into(),
            restored_dir.display().to_string(),
            "--http-addr".into(),
            r.http_addr.clone(),
        ]
    });
    let jobs = restored.json(&["get", "jobs", "-o", "json"]);
    assert!(
        jobs.to_string().contains("\"web\""),
        "the job is back after the restore: {jobs}"
    );
}
