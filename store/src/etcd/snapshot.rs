//! Saving a snapshot over etcd's protocol (`Maintenance.Snapshot`), from etcd itself or from a
//! Nomos server's store endpoint, as `etcdctl snapshot save` does: the stream goes to
//! `FILE.part`, is synced, its SHA-256 trailer is checked, and only then is it renamed to
//! `FILE`.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::{map_err, EtcdStore};
use crate::{Result, StoreError};

/// What [`EtcdStore::save_snapshot`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSnapshot {
    /// Bytes of the file (database and 32-byte hash).
    pub bytes: u64,
    /// The revision the first response's header named (0 when the server sent none).
    pub revision: i64,
}

fn io_error(what: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::Backend(format!("{what}: {e}"))
}

impl EtcdStore {
    /// Streams a snapshot of the store from the first endpoint that answers into `path`.
    /// A stream that breaks off or arrives damaged leaves no file at `path`.
    pub async fn save_snapshot(&self, path: &Path) -> Result<SavedSnapshot> {
        let part = PathBuf::from(format!("{}.part", path.display()));
        let result = self.stream_into(&part).await.and_then(|saved| {
            crate::embedded::verify_snapshot_hash(&part)?;
            Ok(saved)
        });
        match result {
            Ok(saved) => {
                std::fs::rename(&part, path).map_err(io_error(format!(
                    "renaming {} to {}",
                    part.display(),
                    path.display()
                )))?;
                Ok(saved)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                Err(e)
            }
        }
    }

    async fn stream_into(&self, part: &Path) -> Result<SavedSnapshot> {
        let mut file = tokio::fs::File::create(part)
            .await
            .map_err(io_error(format!("creating {}", part.display())))?;
        let mut stream = self
            .repeatable(|mut client| async move { client.snapshot().await })
            .await
            .map_err(map_err)?;
        let mut saved = SavedSnapshot {
            bytes: 0,
            revision: 0,
        };
        while let Some(resp) = stream.message().await.map_err(map_err)? {
            if saved.bytes == 0 {
                saved.revision = resp.header().map_or(0, |h| h.revision());
            }
            file.write_all(resp.blob())
                .await
                .map_err(io_error(format!("writing {}", part.display())))?;
            saved.bytes += resp.blob().len() as u64;
        }
        file.sync_all()
            .await
            .map_err(io_error(format!("syncing {}", part.display())))?;
        Ok(saved)
    }
}
