//! `nctl operator snapshot save | inspect | restore`: backups of the store.
//!
//! `save` fetches a snapshot over etcd's protocol (`Maintenance.Snapshot`, what `etcdctl
//! snapshot save` calls) from a Nomos server's store endpoint, or from etcd itself; `inspect`
//! reads a Nomos snapshot (etcd's `etcdctl snapshot status` reads only its own format);
//! `restore` makes a server's data directory from one (`docs/operations.md`).

use std::path::{Path, PathBuf};

use nomos_store::embedded::{inspect_snapshot, restore_snapshot, RestoreOptions, SnapshotInfo};
use nomos_store::{EtcdConfig, EtcdStore};
use serde_json::json;

use super::server::EtcdArgs;
use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum SnapshotCommand {
    /// Save a consistent snapshot of the store to FILE (written to FILE.part, checked, then
    /// renamed).
    Save {
        /// Where to write the snapshot.
        file: PathBuf,
        /// The store endpoint: a Nomos server's `--store-addr` (or `nctl dev`'s), or an etcd
        /// member; `https://` URLs use --etcd-ca/--etcd-cert/--etcd-key, else --ca-cert,
        /// --client-cert and --client-key.
        #[arg(long, env = "NOMOS_STORE_ENDPOINT", default_value_t = default_endpoint())]
        endpoint: String,
        #[command(flatten)]
        etcd: EtcdArgs,
    },
    /// Check a snapshot's hash and show its revision, key count, size and SHA-256.
    #[command(alias = "status")]
    Inspect {
        file: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Restore a server's data directory (its `--data-dir`) from a snapshot.
    Restore {
        file: PathBuf,
        /// The data directory to write (`nctl dev` keeps its store in `<data-dir>/store`).
        #[arg(long)]
        data_dir: PathBuf,
        /// Replace the store the directory already holds (its server must be stopped).
        #[arg(long)]
        force: bool,
    },
}

fn default_endpoint() -> String {
    format!("http://{}", nomos_store_server::DEFAULT_ADDR)
}

pub async fn run(g: &Global, cmd: SnapshotCommand) -> anyhow::Result<i32> {
    match cmd {
        SnapshotCommand::Save {
            file,
            endpoint,
            etcd,
        } => save(g, &file, endpoint, &etcd).await,
        SnapshotCommand::Inspect { file, json } => {
            let info = inspect_snapshot(&file)?;
            print_info(&info, json);
            Ok(0)
        }
        SnapshotCommand::Restore {
            file,
            data_dir,
            force,
        } => restore(&file, &data_dir, force),
    }
}

/// The connection settings: the etcd flags, else the client TLS flags for `https://`.
fn etcd_config(g: &Global, endpoint: String, etcd: &EtcdArgs) -> EtcdConfig {
    let https = endpoint.starts_with("https://");
    let mut config = EtcdConfig::new([endpoint]);
    let tls = g.tls.client_tls();
    let etcd_tls = etcd.etcd_ca.is_some() || etcd.etcd_cert.is_some();
    config.ca_file = etcd.etcd_ca.clone();
    config.cert_file = etcd.etcd_cert.clone();
    config.key_file = etcd.etcd_key.clone();
    if https && !etcd_tls {
        config.ca_file = tls.ca_file;
        config.cert_file = tls.cert_file;
        config.key_file = tls.key_file;
    }
    if let Some(user) = &etcd.etcd_user {
        let password = etcd.etcd_password.clone().unwrap_or_default();
        config.user = Some((user.clone(), password));
    }
    config
}

async fn save(g: &Global, file: &Path, endpoint: String, etcd: &EtcdArgs) -> anyhow::Result<i32> {
    let config = etcd_config(g, endpoint.clone(), etcd);
    let store = EtcdStore::connect(config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the store at {endpoint}: {e}"))?;
    let saved = store
        .save_snapshot(file)
        .await
        .map_err(|e| anyhow::anyhow!("cannot save a snapshot from {endpoint}: {e}"))?;
    println!(
        "Snapshot saved at {} ({} bytes, revision {})",
        file.display(),
        saved.bytes,
        saved.revision
    );
    match inspect_snapshot(file) {
        Ok(info) => print_info(&info, false),
        Err(_) => println!(
            "This is a snapshot of etcd itself: read it with `etcdctl snapshot status` and \
             restore it with `etcdctl snapshot restore`."
        ),
    }
    Ok(0)
}

fn restore(file: &Path, data_dir: &Path, force: bool) -> anyhow::Result<i32> {
    let info = restore_snapshot(file, data_dir, RestoreOptions { force })?;
    println!(
        "Restored revision {} ({} keys, {} leases) into {}",
        info.revision,
        info.keys,
        info.leases,
        data_dir.display()
    );
    if !data_dir.join("keyring.key").exists() {
        println!(
            "Note: {} has no keyring.key. Copy the servers' keyring key file from the same \
             backup (or pass the server --keyring-key-file): a server refuses to start with a \
             key that does not open the keyring in the store.",
            data_dir.display()
        );
    }
    Ok(0)
}

fn print_info(info: &SnapshotInfo, as_json: bool) {
    if as_json {
        let value = json!({
            "revision": info.revision,
            "compact_revision": info.compact_revision,
            "keys": info.keys,
            "history_rows": info.history_rows,
            "leases": info.leases,
            "store_id": info.store_id,
            "size": info.file_size(),
            "sha256": info.sha256_hex(),
        });
        println!("{value:#}");
        return;
    }
    let rows = [
        ("Revision", info.revision.to_string()),
        ("Compact revision", info.compact_revision.to_string()),
        ("Keys", info.keys.to_string()),
        ("History rows", info.history_rows.to_string()),
        ("Leases", info.leases.to_string()),
        (
            "Store ID",
            info.store_id.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Size", format!("{} bytes", info.file_size())),
        ("SHA-256", info.sha256_hex()),
    ];
    for (name, value) in rows {
        println!("{name:<17} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(argv: &[&str]) -> Result<SnapshotCommand, clap::Error> {
        let mut full = vec!["nctl", "operator", "snapshot"];
        full.extend_from_slice(argv);
        match crate::cmd::Cli::try_parse_from(full)?.command {
            crate::cmd::Command::Operator(super::super::operator::OperatorCommand::Snapshot(c)) => {
                Ok(c)
            }
            other => panic!("not a snapshot command: {other:?}"),
        }
    }

    #[test]
    fn snapshot_verbs_parse_with_their_flags() {
        match parse(&["save", "b.db", "--endpoint", "https://10.0.0.1:4748"]) {
            Ok(SnapshotCommand::Save { file, endpoint, .. }) => {
                assert_eq!(file, PathBuf::from("b.db"));
                assert_eq!(endpoint, "https://10.0.0.1:4748");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["status", "b.db"]),
            Ok(SnapshotCommand::Inspect { .. })
        ));
        match parse(&["restore", "b.db", "--data-dir", "/d", "--force"]) {
            Ok(SnapshotCommand::Restore {
                data_dir, force, ..
            }) => {
                assert_eq!(data_dir, PathBuf::from("/d"));
                assert!(force);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            parse(&["restore", "b.db"]).is_err(),
            "restore needs --data-dir"
        );
    }
}
