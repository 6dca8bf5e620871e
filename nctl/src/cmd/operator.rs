//! `nctl operator root keyring list | rotate | remove KEY_ID`: Nomad's `nomad operator root
//! keyring` verbs over `/v1/operator/keyring/...` (operator read to list, write to change).

use nomos_server::keyring::endpoints::RotateView;
use nomos_server::keyring::KeyMeta;
use serde_json::{json, Value};

use super::client::{escape, Client};
use super::output;
use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum OperatorCommand {
    /// Root key operations.
    #[command(subcommand)]
    Root(RootCommand),
    /// Store snapshots: save, inspect, restore.
    #[command(subcommand)]
    Snapshot(super::snapshot::SnapshotCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum RootCommand {
    /// The servers' keyring: the root keys that seal Variables and sign workload identities.
    #[command(subcommand)]
    Keyring(KeyringCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum KeyringCommand {
    /// List the root keys with their state.
    List,
    /// Make a new active root key; the old one stays, inactive, and sealed data is
    /// re-encrypted with the new one.
    Rotate,
    /// Remove an inactive root key (the active one is refused).
    Remove {
        /// The key's ID, as `list` shows it.
        key_id: String,
    },
}

pub async fn run(g: &Global, cmd: OperatorCommand) -> anyhow::Result<i32> {
    let cmd = match cmd {
        OperatorCommand::Root(RootCommand::Keyring(cmd)) => cmd,
        OperatorCommand::Snapshot(cmd) => return super::snapshot::run(g, cmd).await,
    };
    let client = Client::new(g);
    match cmd {
        KeyringCommand::List => {
            let keys: Vec<KeyMeta> = client.get("/v1/operator/keyring/keys").await?;
            print_keys(&keys);
        }
        KeyringCommand::Rotate => {
            let r: RotateView = client
                .post("/v1/operator/keyring/rotate", &json!({}))
                .await?;
            print_keys(std::slice::from_ref(&r.key));
            println!("re-encrypted {} value(s) with the new key", r.reencrypted);
        }
        KeyringCommand::Remove { key_id } => {
            let _: Value = client
                .delete(&format!("/v1/operator/keyring/key/{}", escape(&key_id)))
                .await?;
            println!("Removed encryption key {key_id}");
        }
    }
    Ok(0)
}

fn print_keys(keys: &[KeyMeta]) {
    let mut t = output::table(&["Key", "State", "Create Time"]);
    for k in keys {
        let created = jiff::Timestamp::from_nanosecond(i128::from(k.create_time))
            .map(|t| t.to_string())
            .unwrap_or_else(|_| k.create_time.to_string());
        let state = serde_json::to_value(k.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        t.add_row(vec![k.key_id.clone(), state, created]);
    }
    output::print_table(&t);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(argv: &[&str]) -> Result<KeyringCommand, clap::Error> {
        let mut full = vec!["nctl", "operator", "root", "keyring"];
        full.extend_from_slice(argv);
        match crate::cmd::Cli::try_parse_from(full)?.command {
            crate::cmd::Command::Operator(OperatorCommand::Root(RootCommand::Keyring(k))) => Ok(k),
            other => panic!("not the keyring: {other:?}"),
        }
    }

    #[test]
    fn keyring_verbs_parse_as_nomads() {
        assert!(matches!(parse(&["list"]), Ok(KeyringCommand::List)));
        assert!(matches!(parse(&["rotate"]), Ok(KeyringCommand::Rotate)));
        match parse(&["remove", "k1"]) {
            Ok(KeyringCommand::Remove { key_id }) => assert_eq!(key_id, "k1"),
            other => panic!("{other:?}"),
        }
        assert!(parse(&["remove"]).is_err(), "remove needs a key id");
        assert!(parse(&["install"]).is_err());
    }
}
