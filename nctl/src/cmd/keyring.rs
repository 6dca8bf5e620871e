//! Start-up of the servers' keyring for `nctl server` and `nctl dev`: load (or create) the
//! keyring key file, refuse to start when it cannot unwrap the keys in the store, and run the
//! workload identity loop beside the API.

use std::path::Path;

use nomos_server::keyring::Kek;
use nomos_server::AppState;
use tokio::task::JoinSet;

use super::runtime::Shutdown;

/// `state` with its keyring wrapped by the key in `key_file` (created if missing), started: a
/// key that cannot unwrap the stored root keys is an error naming the file.
pub async fn configure(state: AppState, key_file: &Path) -> anyhow::Result<AppState> {
    let kek = Kek::load_or_create(key_file)?;
    let state = state.with_keyring_key(kek);
    state
        .keyring
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the keyring: {e}"))?;
    Ok(state)
}

/// Runs the workload identity loop until shutdown.
pub fn spawn_identities(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    state: AppState,
    shutdown: &Shutdown,
) {
    let stop = shutdown.wait();
    tasks.spawn(async move {
        nomos_server::identity::run(state, stop).await;
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nomos_store::{EmbeddedStore, Store};

    use super::*;

    #[tokio::test]
    async fn a_second_server_with_another_key_file_refuses_to_start_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        let first = dir.path().join("one/keyring.key");
        configure(AppState::with_store(store.clone()), &first)
            .await
            .expect("the first server creates its key file and the first key");
        configure(AppState::with_store(store.clone()), &first)
            .await
            .expect("a server with the same file starts");
        let other = dir.path().join("two/keyring.key");
        let Err(err) = configure(AppState::with_store(store), &other).await else {
            panic!("another key file cannot unwrap the stored keys");
        };
        assert!(
            err.to_string().contains(&other.display().to_string()),
            "{err}"
        );
    }
}
