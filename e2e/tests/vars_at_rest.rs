//! Variables are encrypted at rest: a variable put through `nctl var put` on a real
//! `nctl server` never appears in the clear in what the store keeps on disk, on the embedded
//! store (the SQLite file and its WAL) and on a real etcd (`etcdctl snapshot save`), while its
//! path, which is not secret, does (which shows the grep looks at the right bytes). The server's
//! log never holds it either.

use std::path::Path;

use nomos_store::test_util::EtcdProcess;

mod common;

use common::*;

/// A value no other bytes would hold by chance.
const SECRET: &str = "s3cr3t-value-6a1f0e9b-at-rest";
const VAR_PATH: &str = "app/at-rest-probe";

/// Does `needle` occur in `haystack`?
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every file under `dir`, recursively, with its bytes.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
    out
}

/// Puts the probe variable through the CLI and reads it back.
fn put_and_read(c: &Cluster) {
    let out = c.ok(&["var", "put", VAR_PATH, &format!("password={SECRET}")]);
    assert!(out.contains("Created variable"), "{out}");
    let read = c.ok(&["var", "get", "-item", "password", VAR_PATH]);
    assert_eq!(read.trim(), SECRET);
    let listed = c.ok(&["var", "list", "app/"]);
    assert!(
        listed.contains(VAR_PATH) && !listed.contains(SECRET),
        "{listed}"
    );
}

#[test]
fn the_sqlite_store_never_holds_a_variables_value() {
    let c = Cluster::start_server("vars-sqlite");
    put_and_read(&c);
    let files = files_under(&c.data_dir);
    assert!(
        files
            .iter()
            .any(|(name, _)| name.contains("sqlite") || name.ends_with(".db")),
        "no SQLite file under {}: {:?}",
        c.data_dir.display(),
        files.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, bytes) in &files {
        assert!(
            !contains(bytes, SECRET),
            "{name} holds the variable's value in the clear"
        );
    }
    assert!(
        files.iter().any(|(_, bytes)| contains(bytes, VAR_PATH)),
        "the variable's path is in no file under {}: the grep looked at the wrong bytes",
        c.data_dir.display()
    );
    assert!(
        !c.log_tail().contains(SECRET),
        "the server logged the value"
    );
}

#[test]
fn an_etcd_snapshot_never_holds_a_variables_value() {
    let etcd = EtcdProcess::start();
    let c = Cluster::start_custom("vars-etcd", Mode::Server, |c| {
        vec![
            "server".to_string(),
            "--http-addr".into(),
            c.http_addr.clone(),
            "--data-dir".into(),
            c.data_dir.display().to_string(),
            format!("--etcd-endpoints={}", etcd.endpoint()),
        ]
    });
    put_and_read(&c);
    let snapshot = c.dir.path().join("etcd.snapshot");
    etcd.etcdctl(&["snapshot", "save", &snapshot.display().to_string()]);
    let bytes = std::fs::read(&snapshot).expect("the snapshot file");
    assert!(
        !contains(&bytes, SECRET),
        "the etcd snapshot holds the variable's value"
    );
    assert!(
        contains(&bytes, &format!("/nomos/vars/default/{VAR_PATH}")),
        "the variable's key is not in the snapshot: the grep looked at the wrong bytes"
    );
    for (name, bytes) in files_under(&etcd.data_dir()) {
        assert!(
            !contains(&bytes, SECRET),
            "etcd's {name} holds the value in the clear"
        );
    }
    assert!(
        !c.log_tail().contains(SECRET),
        "the server logged the value"
    );
}
