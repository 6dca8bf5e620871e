//! What the pipeline in `parse` and the front ends (`hcl`, `manifest`, `nomad_json`) pass
//! each other: the front ends are given [`ParseOptions`] (reading files only through its
//! [`FileSource`]) and return one [`RawJob`] per job they found.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::fieldpath::PosMap;

/// Reads files for `file()` and `-var-file`; lets tests and servers stay off the disk.
pub trait FileSource: Send + Sync {
    fn read(&self, path: &Path) -> Result<String, String>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFiles;

impl FileSource for StdFiles {
    fn read(&self, path: &Path) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
}

/// An in-memory file source (tests, the HTTP API).
#[derive(Debug, Clone, Default)]
pub struct MemFiles(pub HashMap<PathBuf, String>);

impl FileSource for MemFiles {
    fn read(&self, path: &Path) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("cannot read {}: no such file", path.display()))
    }
}

#[derive(Clone, Default)]
pub struct ParseOptions {
    /// `-var name=value`, highest precedence.
    pub vars: Vec<(String, String)>,
    /// `-var-file FILE` (HCL `name = value` lines, or JSON), in order.
    pub var_files: Vec<PathBuf>,
    /// The environment (only `NOMAD_VAR_<name>` entries, and `HOME` for `pathexpand()`, are
    /// used), passed in by the caller.
    pub env: Vec<(String, String)>,
    /// The namespace of a job that names none (`nctl -n` / `NOMOS_NAMESPACE`); `None`: the
    /// default namespace.
    pub namespace: Option<String>,
    /// Directory that `file()` paths are relative to (the job file's directory).
    pub base_dir: Option<PathBuf>,
    /// Where `file()` and `-var-file` read from; `None` means reads fail (pure mode).
    pub files: Option<Arc<dyn FileSource>>,
}

impl fmt::Debug for ParseOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParseOptions")
            .field("vars", &self.vars)
            .field("var_files", &self.var_files)
            .field("env", &self.env)
            .field("base_dir", &self.base_dir)
            .field("namespace", &self.namespace)
            .field("files", &self.files.as_ref().map(|_| "<file source>"))
            .finish()
    }
}

impl ParseOptions {
    /// Reads `path` for `file()`: a relative path is taken from [`Self::base_dir`].
    pub(crate) fn read_file(&self, path: &Path) -> Result<String, String> {
        let full = match (&self.base_dir, path.is_absolute()) {
            (Some(base), false) => base.join(path),
            _ => path.to_path_buf(),
        };
        self.read_file_as_given(&full)
    }

    /// Reads `path` as given (`-var-file`: relative to the working directory).
    pub(crate) fn read_file_as_given(&self, full: &Path) -> Result<String, String> {
        match &self.files {
            Some(fs) => fs.read(full),
            None => Err(format!(
                "cannot read {}: file reads are not available here",
                full.display()
            )),
        }
    }
}

/// One job in canonical JSON shape, as a front end produced it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawJob {
    pub value: Value,
    pub pos: PosMap,
    /// Paths whose values were rejected by the front end (already reported); validation
    /// findings about them are not repeated.
    pub failed: Vec<String>,
}
