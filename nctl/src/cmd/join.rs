//! Nodes joining a server on etcd: `nctl node join-token create` makes a one-time token, and
//! `nctl agent --join-token TOKEN --server-addr URL` spends it for the node's own etcd user
//! (`POST /v1/node/join`), saved in `<data-dir>/etcd-credentials.json` (mode 0600) and reused
//! on every later start.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nomos_server::join::{
    CreateJoinTokenRequest, CreateJoinTokenResponse, JoinRequest, JoinResponse,
};

use super::client::Client;
use super::output::print_kv;
use super::Global;

/// The file in the agent's data dir that keeps its etcd credentials.
pub const CREDENTIALS_FILE: &str = "etcd-credentials.json";
/// Largest credentials file read back (it holds two short strings).
const MAX_CREDENTIALS_BYTES: u64 = 4096;

#[derive(Debug, clap::Subcommand)]
pub enum JoinTokenCommand {
    /// Make a one-time token an agent joins with (`nctl agent --join-token`); it is printed
    /// once. Needs a management token when ACLs are on.
    Create {
        /// The only node the token admits (it may then re-join a node that already joined,
        /// which changes that node's etcd password).
        #[arg(long)]
        node: Option<String>,
        /// How long the token is valid: a duration ("30m", "1h", "7d") or seconds.
        #[arg(long, default_value = "1h", value_parser = parse_ttl_secs)]
        ttl: u64,
    },
}

/// `nctl agent`'s join flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct JoinArgs {
    /// A one-time join token (`nctl node join-token create`): before its first start the agent
    /// trades it at the server for its own etcd user, limited to this node's keys, and saves
    /// that in `<data-dir>/etcd-credentials.json`. Later starts reuse the file.
    #[arg(
        long,
        env = "NOMOS_JOIN_TOKEN",
        hide_env_values = true,
        conflicts_with = "etcd_user"
    )]
    pub join_token: Option<String>,
    /// A server's HTTP API (`https://10.0.0.1:4747`): where the agent joins with
    /// --join-token (default: --address / NOMOS_ADDR; the CLI's --ca-cert, --client-cert and
    /// --client-key apply) and where templates read Variables (default: the servers that
    /// advertise themselves in the store).
    #[arg(long)]
    pub server_addr: Option<String>,
}

/// The credentials file's contents.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SavedCredentials {
    pub etcd_user: String,
    pub etcd_password: String,
}

fn parse_ttl_secs(s: &str) -> Result<u64, String> {
    if let Ok(secs) = s.trim().parse::<u64>() {
        return Ok(secs);
    }
    let ns = nomos_api::duration::parse_duration(s)?;
    Ok(ns.div_ceil(1_000_000_000))
}

/// `nctl node join-token ...`.
pub async fn run_token(g: &Global, cmd: JoinTokenCommand) -> anyhow::Result<i32> {
    let JoinTokenCommand::Create { node, ttl } = cmd;
    let client = Client::new(g);
    let request = CreateJoinTokenRequest {
        node,
        ttl_secs: Some(ttl),
    };
    let made: CreateJoinTokenResponse = client.post("/v1/node/join-tokens", &request).await?;
    let expires = jiff::Timestamp::from_millisecond(made.expires_at_ms as i64)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| made.expires_at_ms.to_string());
    print_kv(&[
        ("Token", made.token),
        ("Node", made.node.unwrap_or_else(|| "<any>".into())),
        ("Expires", expires),
    ]);
    eprintln!("The token is shown only this once; it admits one node.");
    Ok(0)
}

/// The etcd credentials the agent in `data_dir` connects with: the saved file if there is
/// one, else (with a join token) the ones the server issues, saved first. `None`: neither.
pub async fn credentials(
    g: &Global,
    join: &JoinArgs,
    data_dir: &Path,
    node: &str,
) -> anyhow::Result<Option<SavedCredentials>> {
    let path = data_dir.join(CREDENTIALS_FILE);
    if let Some(saved) = read_saved(&path)? {
        if join.join_token.is_some() {
            eprintln!(
                "==> {} exists: using the saved etcd credentials; the join token was not used",
                path.display()
            );
        }
        return Ok(Some(saved));
    }
    let Some(token) = &join.join_token else {
        return Ok(None);
    };
    let mut global = g.clone();
    if let Some(addr) = &join.server_addr {
        global.address = addr.clone();
    }
    let client = Client::new(&global);
    let request = JoinRequest {
        token: token.clone(),
        node: node.to_string(),
    };
    let issued: JoinResponse = client
        .post("/v1/node/join", &request)
        .await
        .map_err(|e| anyhow::anyhow!("joining through {}: {e:#}", global.address))?;
    let saved = SavedCredentials {
        etcd_user: issued.etcd_user,
        etcd_password: issued.etcd_password,
    };
    save(&path, &saved)?;
    eprintln!(
        "==> joined as etcd user {}; credentials saved in {}",
        saved.etcd_user,
        path.display()
    );
    Ok(Some(saved))
}

fn read_saved(path: &PathBuf) -> anyhow::Result<Option<SavedCredentials>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    if meta.len() > MAX_CREDENTIALS_BYTES {
        anyhow::bail!(
            "{} is {} bytes; a credentials file holds at most {MAX_CREDENTIALS_BYTES}",
            path.display(),
            meta.len()
        );
    }
    let text =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let saved: SavedCredentials = serde_json::from_slice(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (expected {{\"etcd_user\": ..., \"etcd_password\": ...}})",
            path.display()
        )
    })?;
    Ok(Some(saved))
}

/// Writes the file readable by its owner only, refusing to replace one.
fn save(path: &Path, saved: &SavedCredentials) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    let text = serde_json::to_vec_pretty(saved)?;
    file.write_all(&text)
        .and_then(|_| file.sync_all())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn saved_credentials_are_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(CREDENTIALS_FILE);
        let saved = SavedCredentials {
            etcd_user: "nomos-node-n1".into(),
            etcd_password: "pw".into(),
        };
        save(&path, &saved).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = read_saved(&path.to_path_buf()).unwrap().unwrap();
        assert_eq!(back.etcd_user, "nomos-node-n1");
        assert!(save(&path, &saved).is_err(), "never replaced");
    }

    #[test]
    fn a_broken_or_huge_credentials_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE);
        std::fs::write(&path, b"{").unwrap();
        let e = read_saved(&path).err().unwrap().to_string();
        assert!(e.contains(CREDENTIALS_FILE), "{e}");
        std::fs::write(&path, vec![b' '; 5000]).unwrap();
        let e = read_saved(&path).err().unwrap().to_string();
        assert!(e.contains("at most"), "{e}");
        assert!(read_saved(&dir.path().join("none")).unwrap().is_none());
    }

    #[test]
    fn token_lifetimes_read_as_durations_or_seconds() {
        assert_eq!(parse_ttl_secs("1h").unwrap(), 3600);
        assert_eq!(parse_ttl_secs("90").unwrap(), 90);
        assert!(parse_ttl_secs("soon").is_err());
    }
}
