//! What the agent keeps on disk so that it can restart (even after `kill -9`) without the store
//! and without restarting tasks: the node id, and per allocation the allocation, its job spec,
//! each task's driver handle, restart history and observed state.
//!
//! Layout under the data dir: `node-id`, `cluster-id` (the `/nomos/cluster` ID the agent
//! belongs to, see [`crate::cluster_guard`]), `state/allocs/<alloc>.json`, and the allocation
//! directories `allocs/<alloc>/...`. Files are replaced atomically (write then rename).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use nomos_api::{AllocStatus, Allocation, Job};
use serde::{Deserialize, Serialize};

use crate::driver::TaskHandle;
use crate::error::AgentError;
use crate::restart::RestartTracker;

/// One task's persisted runtime record.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskRecord {
    pub handle: Option<TaskHandle>,
    pub tracker: RestartTracker,
    /// The task finished for good (complete, failed or killed); never start it again.
    pub done: bool,
}

/// One allocation's persisted record.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AllocRecord {
    pub alloc: Allocation,
    /// Shared: the allocations of one job version hold one copy.
    pub job: Arc<Job>,
    pub tasks: IndexMap<String, TaskRecord>,
    pub status: AllocStatus,
    /// The agent was told to stop this allocation (desired stop or key deleted).
    pub stopping: bool,
    /// The agent stopped it because its group's `max_run_duration` passed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub max_run_exceeded: bool,
}

/// Replaces `path` with `bytes` durably: written aside, flushed to disk, renamed over it (for
/// what must survive the machine: the node's and the cluster's identity).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    write_replacing(path, bytes, true)
}

/// Replaces `path` with `bytes`, written aside and renamed over it, so a reader (or an agent
/// that died mid-write) sees the old or the new content, never a mix. Flushed to disk first
/// only where `durable`: an allocation record is not, as it changes several times per start,
/// and a flush then made every start wait on the disk. A crash of the process keeps what was
/// written (the kernel holds it); only a crash of the machine can lose the last change, and
/// that ends the record's tasks too (no driver restarts them on boot), so the record they
/// named is moot: an unreadable one is skipped and the allocation starts afresh.
fn write_replacing(path: &Path, bytes: &[u8], durable: bool) -> Result<(), AgentError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| AgentError::io(dir, e))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| AgentError::io(&tmp, e))?;
    if durable {
        if let Ok(f) = std::fs::File::open(&tmp) {
            let _ = f.sync_all();
        }
    }
    std::fs::rename(&tmp, path).map_err(|e| AgentError::io(path, e))
}

/// Lets records that hold equal jobs share one copy (each record file holds its own).
fn share_jobs(records: &mut [AllocRecord]) {
    let mut shared: HashMap<(String, String, u64), Arc<Job>> = HashMap::new();
    for rec in records {
        let key = (
            rec.alloc.namespace.clone(),
            rec.alloc.job_id.clone(),
            rec.alloc.job_version,
        );
        match shared.get(&key) {
            Some(job) if **job == *rec.job => rec.job = job.clone(),
            Some(_) => {}
            None => {
                shared.insert(key, rec.job.clone());
            }
        }
    }
}

/// The on-disk state of one agent.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(data_dir: &Path) -> Self {
        StateDir {
            root: data_dir.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This agent's id: the first 16 hex digits of the SHA-256 of the data dir's canonical
    /// path. Two agents on one host have different data dirs, so different ids, even when one
    /// data dir is a copy of the other; tasks carry the id of the agent that started them.
    pub fn agent_id(&self) -> String {
        use sha2::{Digest, Sha256};
        use std::os::unix::ffi::OsStrExt;
        let path = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        let digest = Sha256::digest(path.as_os_str().as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The node id, created on first use.
    pub fn node_id(&self) -> Result<String, AgentError> {
        let path = self.root.join("node-id");
        match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
            _ => {
                let id = uuid::Uuid::new_v4().to_string();
                write_atomic(&path, id.as_bytes())?;
                Ok(id)
            }
        }
    }

    /// The cluster ID (`/nomos/cluster`) this agent first ran tasks for, if it saw one.
    pub fn cluster_id(&self) -> Result<Option<String>, AgentError> {
        let path = self.root.join("cluster-id");
        match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => Ok(Some(id.trim().to_string())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AgentError::io(&path, e)),
        }
    }

    /// Remembers the cluster ID this agent belongs to (`cluster-id` in the data dir).
    pub fn remember_cluster_id(&self, id: &str) -> Result<(), AgentError> {
        write_atomic(&self.root.join("cluster-id"), id.as_bytes())
    }

    fn allocs_dir(&self) -> PathBuf {
        self.root.join("state").join("allocs")
    }

    pub fn alloc_path(&self, alloc_id: &str) -> PathBuf {
        self.allocs_dir().join(format!("{alloc_id}.json"))
    }

    /// `<data_dir>/allocs/<alloc>`: the allocation's working directories.
    pub fn alloc_root(&self, alloc_id: &str) -> PathBuf {
        self.root.join("allocs").join(alloc_id)
    }

    /// Persists `rec`; an allocation id that is not one path component is refused.
    pub fn save(&self, rec: &AllocRecord) -> Result<(), AgentError> {
        crate::confine::check_name("Allocation", "id", &rec.alloc.id)?;
        let bytes = serde_json::to_vec(rec).map_err(|e| AgentError::Decode {
            what: format!("alloc record {}", rec.alloc.id),
            source: e,
        })?;
        write_replacing(&self.alloc_path(&rec.alloc.id), &bytes, false)
    }

    /// Every persisted allocation record; unreadable ones are skipped with a warning.
    pub fn load_all(&self) -> Vec<AllocRecord> {
        let Ok(dir) = std::fs::read_dir(self.allocs_dir()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in dir.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<AllocRecord>(&b).map_err(|e| e.to_string()))
            {
                Ok(r) => out.push(r),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "skipping unreadable allocation record")
                }
            }
        }
        share_jobs(&mut out);
        out
    }

    /// Forgets an allocation: its record and its directories (nothing for an id that is not
    /// one path component: no path was ever made of it).
    pub fn remove(&self, alloc_id: &str) {
        if !crate::confine::is_single_component(alloc_id) {
            return;
        }
        let _ = std::fs::remove_file(self.alloc_path(alloc_id));
        let _ = std::fs::remove_dir_all(self.alloc_root(alloc_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path());
        let a = s.node_id().unwrap();
        assert_eq!(StateDir::new(dir.path()).node_id().unwrap(), a);
    }

    #[test]
    fn agent_ids_follow_the_data_dir_not_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let id = StateDir::new(&a).agent_id();
        assert_eq!(id.len(), 16);
        assert_eq!(
            StateDir::new(&a.join(".")).agent_id(),
            id,
            "same dir, other spelling"
        );
        assert_ne!(StateDir::new(&b).agent_id(), id);
    }

    #[test]
    fn records_round_trip_and_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path());
        let mut rec = AllocRecord::default();
        rec.alloc.id = "a1".into();
        rec.tasks.insert(
            "t".into(),
            TaskRecord {
                handle: Some(TaskHandle {
                    pid: Some(5),
                    start_time: Some(7),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        s.save(&rec).unwrap();
        assert_eq!(s.load_all(), vec![rec]);
        s.remove("a1");
        assert!(s.load_all().is_empty());
    }

    /// A record for allocation `id` of version `version` of job `web`, whose job says `image`.
    fn record(id: &str, version: u64, image: &str) -> AllocRecord {
        let mut rec = AllocRecord::default();
        rec.alloc.id = id.into();
        rec.alloc.job_id = "web".into();
        rec.alloc.job_version = version;
        let mut job = Job {
            id: "web".into(),
            ..Default::default()
        };
        job.meta.insert("image".into(), image.into());
        rec.job = Arc::new(job);
        rec
    }

    #[test]
    fn loaded_records_of_one_job_version_share_its_job_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::new(dir.path());
        let written = [
            record("a1", 1, "v1"),
            record("a2", 1, "v1"),
            record("a3", 2, "v2"),
            // Same version, other content (a record written before an in-place update).
            record("a4", 1, "v1-edited"),
        ];
        for rec in &written {
            s.save(rec).unwrap();
        }
        let mut loaded = s.load_all();
        loaded.sort_by(|a, b| a.alloc.id.cmp(&b.alloc.id));
        assert_eq!(loaded, written, "content unchanged");
        assert!(Arc::ptr_eq(&loaded[0].job, &loaded[1].job));
        assert!(!Arc::ptr_eq(&loaded[0].job, &loaded[2].job));
        assert!(!Arc::ptr_eq(&loaded[0].job, &loaded[3].job));
        assert_eq!(loaded[3].job.meta["image"], "v1-edited");
    }
}
