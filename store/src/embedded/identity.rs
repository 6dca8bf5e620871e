//! The data directory's identity: a small file beside the database, written when the store is
//! created, that tells a new data directory from one whose database was lost.
//!
//! | identity file | database                           | result                          |
//! | ------------- | ---------------------------------- | ------------------------------- |
//! | absent        | absent                             | a new store: create both        |
//! | absent        | present, valid (earlier versions)  | adopt it: write the file        |
//! | present       | missing, empty, corrupt, other ID  | refuse to start                 |
//! | either        | zero bytes long                    | refuse to start                 |
//!
//! The same ID is kept in the database's `meta` table, so a database copied in from another
//! store is refused too.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

/// File name of the identity file inside the data directory.
pub const ID_FILE: &str = "nomos-store.id";

/// What the operator can do when the store refuses its data directory.
const WHAT_TO_DO: &str = "restore the data directory from a snapshot (or a backup of both files), \
     or, to start a new and empty cluster on purpose, remove the data directory";

/// The refusal for a data directory whose database cannot be trusted.
pub(crate) fn refuse(path: &Path, problem: impl Into<String>) -> StoreError {
    StoreError::DataDirRefused {
        path: path.to_path_buf(),
        problem: problem.into(),
        what_to_do: WHAT_TO_DO.to_string(),
    }
}

/// The identity file's path in `dir`.
pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(ID_FILE)
}

/// Reads the store ID from the identity file; `None` when there is no file.
pub(crate) fn read(dir: &Path) -> Result<Option<String>> {
    let path = path(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if id.is_empty() {
                return Err(refuse(&path, "the identity file is empty"));
            }
            Ok(Some(id.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(refuse(&path, format!("cannot read the identity file: {e}"))),
    }
}

/// Writes the identity file durably (write a temporary file, sync it, rename, sync the dir).
pub(crate) fn write(dir: &Path, id: &str) -> Result<()> {
    let path = path(dir);
    let tmp = dir.join(format!("{ID_FILE}.tmp"));
    let failed = |e: std::io::Error| {
        StoreError::Backend(format!(
            "cannot write identity file {}: {e}",
            path.display()
        ))
    };
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp).map_err(failed)?;
        file.write_all(format!("{id}\n").as_bytes())
            .map_err(failed)?;
        file.sync_all().map_err(failed)?;
    }
    std::fs::rename(&tmp, &path).map_err(failed)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(failed)
}

/// A new random store ID: 128 bits from the OS, written as a UUID is (never read as a number).
pub fn new_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| StoreError::Backend(format!("cannot read /dev/urandom: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}
