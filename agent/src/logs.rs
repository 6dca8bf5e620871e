//! Task log files: where they live, size-based rotation by copy-truncate, and reading them back.
//!
//! A task writes straight to `<alloc dir>/alloc/logs/<task>.stdout` (and `.stderr`), opened in
//! append mode, so logging never depends on the agent process being alive. The agent rotates
//! from outside: when the live file exceeds `max_file_size`, its content is copied to
//! `<task>.stdout.<n>` (n increasing) and the live file truncated; only the newest
//! `max_files - 1` archives are kept. Readers see archives in ascending order, then the live file.
//! The log dir belongs to the task's user, so no log file is opened through a link.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::confine::is_single_component;

/// Which output stream of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "stdout" => Some(LogStream::Stdout),
            "stderr" => Some(LogStream::Stderr),
            _ => None,
        }
    }
}

/// The log directory of an allocation: `<data_dir>/allocs/<alloc>/alloc/logs`.
pub fn log_dir(data_dir: &Path, alloc_id: &str) -> PathBuf {
    data_dir
        .join("allocs")
        .join(alloc_id)
        .join("alloc")
        .join("logs")
}

/// The live log file of a task.
pub fn live_path(log_dir: &Path, task: &str, stream: LogStream) -> PathBuf {
    log_dir.join(format!("{task}.{}", stream.as_str()))
}

/// Opens a log file without following a link: the log dir belongs to the task's user, who
/// could have put a link to any host file under a log file's name.
fn open_nofollow(opts: &mut OpenOptions, path: &Path) -> std::io::Result<File> {
    opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Opens (creating) the live file in append mode, as the task's stdout or stderr (never
/// through a link).
pub fn open_for_task(log_dir: &Path, task: &str, stream: LogStream) -> std::io::Result<File> {
    fs::create_dir_all(log_dir)?;
    let path = live_path(log_dir, task, stream);
    open_nofollow(OpenOptions::new().create(true).append(true), &path)
}

/// Indices of the archives of one stream, ascending.
pub fn archive_indices(log_dir: &Path, task: &str, stream: LogStream) -> Vec<u64> {
    let prefix = format!("{task}.{}.", stream.as_str());
    let mut out: Vec<u64> = fs::read_dir(log_dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix(&prefix).and_then(|i| i.parse().ok()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// Which archives to delete so that at most `keep` remain (pure).
pub fn archives_to_remove(indices: &[u64], keep: usize) -> Vec<u64> {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    let excess = sorted.len().saturating_sub(keep);
    sorted.into_iter().take(excess).collect()
}

/// Rotates one stream if its live file is larger than `max_size` bytes. Returns whether it
/// rotated. `max_files` counts the live file, as Nomad's `logs.max_files` does.
pub fn rotate_if_needed(
    log_dir: &Path,
    task: &str,
    stream: LogStream,
    max_files: u32,
    max_size: u64,
) -> std::io::Result<bool> {
    let live = live_path(log_dir, task, stream);
    let len = match fs::symlink_metadata(&live) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if max_size == 0 || len <= max_size {
        return Ok(false);
    }
    let indices = archive_indices(log_dir, task, stream);
    let next = indices.last().map(|i| i + 1).unwrap_or(0);
    let archive = log_dir.join(format!("{task}.{}.{next}", stream.as_str()));
    let mut from = open_nofollow(OpenOptions::new().read(true).write(true), &live)?;
    let mut to = open_nofollow(OpenOptions::new().write(true).create_new(true), &archive)?;
    std::io::copy(&mut from, &mut to)?;
    from.set_len(0)?;
    let mut all = indices;
    all.push(next);
    let keep = max_files.max(1) as usize - 1;
    for i in archives_to_remove(&all, keep) {
        let _ = fs::remove_file(log_dir.join(format!("{task}.{}.{i}", stream.as_str())));
    }
    Ok(true)
}

/// A piece of a task's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub data: Vec<u8>,
    /// Offset to ask for next to continue after this chunk.
    pub next_offset: u64,
}

/// Reads up to `limit` bytes of a task's log from `offset`, over the archives (oldest first) and
/// then the live file. Offsets count bytes in that concatenation, so they shift when old archives
/// are removed; a follower that sees its offset beyond the end starts again from the live file.
pub fn read_logs(
    log_dir: &Path,
    task: &str,
    stream: LogStream,
    offset: u64,
    limit: usize,
) -> std::io::Result<LogChunk> {
    let mut files: Vec<PathBuf> = archive_indices(log_dir, task, stream)
        .into_iter()
        .map(|i| log_dir.join(format!("{task}.{}.{i}", stream.as_str())))
        .collect();
    files.push(live_path(log_dir, task, stream));
    let mut data = Vec::new();
    let mut pos = 0u64;
    for f in files {
        let Ok(mut file) = open_nofollow(OpenOptions::new().read(true), &f) else {
            continue;
        };
        let len = match file.metadata() {
            Ok(m) if m.is_file() => m.len(),
            _ => continue,
        };
        if offset < pos + len && data.len() < limit {
            let start = offset.saturating_sub(pos);
            file.seek(SeekFrom::Start(start))?;
            let want = (limit - data.len()) as u64;
            file.take(want).read_to_end(&mut data)?;
        }
        pos += len;
    }
    let next_offset = if offset > pos {
        pos
    } else {
        offset + data.len() as u64
    };
    Ok(LogChunk { data, next_offset })
}

/// Reads a task's log given the agent's data dir; the function the agent's and the server's
/// HTTP endpoints share. An allocation id or task name that is not one path component is
/// refused (`InvalidInput`), so a request cannot name a file elsewhere.
pub fn read_task_logs(
    data_dir: &Path,
    alloc_id: &str,
    task: &str,
    stream: LogStream,
    offset: u64,
    limit: usize,
) -> std::io::Result<LogChunk> {
    if !is_single_component(alloc_id) || !is_single_component(task) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("allocation {alloc_id:?} / task {task:?}: not a single path component"),
        ));
    }
    read_logs(&log_dir(data_dir, alloc_id), task, stream, offset, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn archives_to_remove_keeps_the_newest() {
        let cases: &[(&[u64], usize, &[u64])] = &[
            (&[], 3, &[]),
            (&[0, 1, 2], 3, &[]),
            (&[0, 1, 2, 3], 2, &[0, 1]),
            (&[5, 3, 4], 1, &[3, 4]),
            (&[1], 0, &[1]),
        ];
        for (have, keep, want) in cases {
            assert_eq!(
                archives_to_remove(have, *keep),
                want.to_vec(),
                "have {have:?} keep {keep}"
            );
        }
    }

    #[test]
    fn rotation_copies_truncates_and_bounds_the_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = open_for_task(dir.path(), "web", LogStream::Stdout).unwrap();
        for round in 0..5u8 {
            f.write_all(&[b'a' + round; 100]).unwrap();
            assert!(rotate_if_needed(dir.path(), "web", LogStream::Stdout, 3, 50).unwrap());
        }
        f.write_all(b"tail").unwrap();
        assert_eq!(
            archive_indices(dir.path(), "web", LogStream::Stdout),
            vec![3, 4]
        );
        let all = read_logs(dir.path(), "web", LogStream::Stdout, 0, usize::MAX).unwrap();
        let mut want = vec![b'd'; 100];
        want.extend([b'e'; 100]);
        want.extend(b"tail");
        assert_eq!(all.data, want);
        assert_eq!(all.next_offset, 204);
        let part = read_logs(dir.path(), "web", LogStream::Stdout, 150, 10).unwrap();
        assert_eq!(part.data, vec![b'e'; 10]);
        assert_eq!(part.next_offset, 160);
        assert!(!rotate_if_needed(dir.path(), "web", LogStream::Stdout, 3, 50).unwrap());
    }

    #[test]
    fn reading_past_the_end_returns_nothing_and_the_end_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = open_for_task(dir.path(), "t", LogStream::Stderr).unwrap();
        f.write_all(b"hello").unwrap();
        let c = read_logs(dir.path(), "t", LogStream::Stderr, 99, 10).unwrap();
        assert!(c.data.is_empty());
        assert_eq!(c.next_offset, 5);
    }
}
