//! Reading an allocation's directory for Nomad's client filesystem API (`ls`, `stat`, `cat`,
//! `readat`, `stream`): `<data_dir>/allocs/<alloc>/` with the shared `alloc/` (`logs`, `data`,
//! `tmp`) and one directory per task (`local`, `secrets`, `tmp`).
//!
//! A request names a path relative to that directory (a leading `/` is the directory itself,
//! as in Nomad). `..` is refused, and so is every task's `secrets/` (Nomad's rule). The path
//! is walked from the allocation directory's descriptor one component at a time with
//! `O_NOFOLLOW`, so a symbolic link the task planted is never followed, inside or out: tasks
//! own their directories and could point a link at any host file. Reads are bounded by
//! [`MAX_READ_BYTES`], listings by [`MAX_LIST_ENTRIES`].

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, openat, OFlag};
use nix::sys::stat::{fstat, FileStat, Mode};
use nomos_api::allocfs::{file_mode_string, AllocFileInfo, MAX_LIST_ENTRIES, MAX_READ_BYTES};

use crate::confine::is_single_component;

/// Why a path of an allocation's directory could not be read. Every variant but `Io` is the
/// client's mistake.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{0}")]
    Refused(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    WrongKind(String),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

const WALK_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_CLOEXEC);

/// `path` as normal components: `.` and a leading `/` dropped; `..`, NUL, and any task's
/// `secrets` directory refused.
pub fn clean_path(path: &str) -> Result<PathBuf, FsError> {
    if path.contains('\0') {
        return Err(FsError::Refused(format!("path {path:?} holds NUL")));
    }
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(FsError::Refused(format!(
                    "path {path:?} leaves the allocation directory (\"..\" is refused)"
                )))
            }
        }
    }
    let mut parts = out.components();
    if let (Some(task), Some(Component::Normal(second))) = (parts.next(), parts.next()) {
        if task.as_os_str() != "alloc" && second == "secrets" {
            return Err(FsError::Refused(format!(
                "path {path:?}: a task's secrets directory is not readable"
            )));
        }
    }
    Ok(out)
}

/// An opened file or directory of an allocation, with its status.
struct Opened {
    fd: OwnedFd,
    stat: FileStat,
    shown: String,
}

/// Opens `path` beneath `alloc_root` without following any link.
fn open_beneath(alloc_root: &Path, alloc: &str, path: &str) -> Result<Opened, FsError> {
    if !is_single_component(alloc) {
        return Err(FsError::Refused(format!(
            "allocation id {alloc:?} is not one path component"
        )));
    }
    let rel = clean_path(path)?;
    let shown = format!("{alloc}/{}", rel.display());
    let mut fd = match open(alloc_root, WALK_FLAGS | OFlag::O_DIRECTORY, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            return Err(FsError::NotFound(format!("allocation {alloc}'s directory")))
        }
        Err(e) => return Err(io_error(&shown, e)),
    };
    for name in rel.components().map(|c| c.as_os_str()) {
        fd = match openat(&fd, name, WALK_FLAGS, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::ELOOP) => return Err(link_refusal(&shown)),
            Err(Errno::ENOENT) => return Err(FsError::NotFound(shown)),
            Err(Errno::ENOTDIR) => {
                return Err(FsError::WrongKind(format!("{shown}: a file is in the way")))
            }
            Err(e) => return Err(io_error(&shown, e)),
        };
    }
    let stat = fstat(&fd).map_err(|e| io_error(&shown, e))?;
    Ok(Opened { fd, stat, shown })
}

fn link_refusal(shown: &str) -> FsError {
    FsError::Refused(format!(
        "{shown}: a symbolic link is in the way (links in an allocation directory are never followed)"
    ))
}

fn io_error(shown: &str, e: Errno) -> FsError {
    FsError::Io {
        path: shown.to_string(),
        source: e.into(),
    }
}

/// What `ls` and `stat` say of one entry, from its mode, size and modification time.
fn info(name: String, mode: u32, size: i64, mtime: (i64, i64)) -> AllocFileInfo {
    let nanos = i128::from(mtime.0) * 1_000_000_000 + i128::from(mtime.1);
    let mod_time = jiff::Timestamp::from_nanosecond(nanos)
        .map(|t| t.to_string())
        .unwrap_or_default();
    AllocFileInfo {
        name,
        is_dir: mode & libc::S_IFMT == libc::S_IFDIR,
        size,
        file_mode: file_mode_string(mode),
        mod_time,
        content_type: String::new(),
    }
}

fn stat_info(name: String, st: &FileStat) -> AllocFileInfo {
    info(
        name,
        st.st_mode,
        st.st_size,
        (st.st_mtime, st.st_mtime_nsec),
    )
}

/// `stat`: the entry `path` names.
pub fn stat(alloc_root: &Path, alloc: &str, path: &str) -> Result<AllocFileInfo, FsError> {
    let opened = open_beneath(alloc_root, alloc, path)?;
    let name = clean_path(path)?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    Ok(stat_info(name, &opened.stat))
}

/// `ls`: the entries of the directory `path` names, by name (links shown, not followed).
pub fn list(alloc_root: &Path, alloc: &str, path: &str) -> Result<Vec<AllocFileInfo>, FsError> {
    let opened = open_beneath(alloc_root, alloc, path)?;
    if opened.stat.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(FsError::WrongKind(format!(
            "{} is not a directory",
            opened.shown
        )));
    }
    let shown = opened.shown;
    let io = |e: std::io::Error| FsError::Io {
        path: shown.clone(),
        source: e,
    };
    // The opened directory itself, through its descriptor: no path is resolved again.
    let through_fd = format!("/proc/self/fd/{}", opened.fd.as_raw_fd());
    let mut out = Vec::new();
    for entry in std::fs::read_dir(through_fd).map_err(io)? {
        let entry = entry.map_err(io)?;
        if out.len() >= MAX_LIST_ENTRIES {
            return Err(FsError::WrongKind(format!(
                "{shown} holds more than {MAX_LIST_ENTRIES} entries"
            )));
        }
        // A directory entry's metadata is the entry's own: a link is not followed.
        let meta = entry.metadata().map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        out.push(info(
            name,
            meta.mode(),
            meta.size() as i64,
            (meta.mtime(), meta.mtime_nsec()),
        ));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `readat` / `cat`: up to `limit` bytes (at most [`MAX_READ_BYTES`]) of the regular file
/// `path` from `offset`.
pub fn read_at(
    alloc_root: &Path,
    alloc: &str,
    path: &str,
    offset: u64,
    limit: u64,
) -> Result<Vec<u8>, FsError> {
    let opened = open_beneath(alloc_root, alloc, path)?;
    if opened.stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(FsError::WrongKind(format!(
            "{} is not a regular file",
            opened.shown
        )));
    }
    let shown = opened.shown;
    let io = |e: std::io::Error| FsError::Io {
        path: shown.clone(),
        source: e,
    };
    let mut file = File::from(opened.fd);
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut data = Vec::new();
    file.take(limit.min(MAX_READ_BYTES))
        .read_to_end(&mut data)
        .map_err(io)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An allocation directory `a1` with a task `web` and a log line.
    fn alloc_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a1");
        std::fs::create_dir_all(root.join("alloc/logs")).unwrap();
        std::fs::create_dir_all(root.join("web/local")).unwrap();
        std::fs::create_dir_all(root.join("web/secrets")).unwrap();
        std::fs::write(root.join("alloc/logs/web.stdout"), b"hello\nworld\n").unwrap();
        std::fs::write(root.join("web/secrets/token"), b"s3cret").unwrap();
        dir
    }

    #[test]
    fn paths_leaving_the_directory_or_into_secrets_are_refused() {
        for bad in [
            "..",
            "alloc/../..",
            "/../etc/passwd",
            "web/secrets",
            "web/secrets/token",
            "a\0b",
        ] {
            assert!(matches!(clean_path(bad), Err(FsError::Refused(_))), "{bad}");
        }
        assert_eq!(
            clean_path("/alloc/./logs").unwrap(),
            PathBuf::from("alloc/logs")
        );
        assert_eq!(clean_path("/").unwrap(), PathBuf::new());
        assert_eq!(
            clean_path("alloc/secrets").unwrap(),
            PathBuf::from("alloc/secrets")
        );
    }

    #[test]
    fn files_are_listed_stated_and_read_at_an_offset() {
        let dir = alloc_dir();
        let root = dir.path().join("a1");
        let names: Vec<String> = list(&root, "a1", "/")
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["alloc", "web"]);
        let st = stat(&root, "a1", "alloc/logs/web.stdout").unwrap();
        assert_eq!(
            (st.name.as_str(), st.size, st.is_dir),
            ("web.stdout", 12, false)
        );
        assert_eq!(st.file_mode.len(), 10);
        assert!(st.mod_time.ends_with('Z'), "{}", st.mod_time);
        assert_eq!(
            read_at(&root, "a1", "alloc/logs/web.stdout", 6, 3).unwrap(),
            b"wor"
        );
        assert_eq!(
            read_at(&root, "a1", "alloc/logs/web.stdout", 99, 3).unwrap(),
            b""
        );
        assert!(matches!(
            read_at(&root, "a1", "alloc", 0, 3),
            Err(FsError::WrongKind(_))
        ));
        assert!(matches!(
            list(&root, "a1", "alloc/nope"),
            Err(FsError::NotFound(_))
        ));
        assert!(matches!(
            list(&root, "a1", "alloc/logs/web.stdout"),
            Err(FsError::WrongKind(_))
        ));
    }

    #[test]
    fn a_link_is_never_followed_even_when_it_points_inside() {
        let dir = alloc_dir();
        let root = dir.path().join("a1");
        std::os::unix::fs::symlink("/etc", root.join("web/local/etc")).unwrap();
        std::os::unix::fs::symlink("../../alloc", root.join("web/local/up")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("web/local/host")).unwrap();
        for path in [
            "web/local/etc/hostname",
            "web/local/up/logs",
            "web/local/host",
        ] {
            assert!(
                matches!(read_at(&root, "a1", path, 0, 10), Err(FsError::Refused(_))),
                "{path}"
            );
        }
        let local = list(&root, "a1", "web/local").unwrap();
        assert!(
            local.iter().all(|f| f.file_mode.starts_with('L')),
            "{local:?}"
        );
        assert!(matches!(
            stat(&root, "../a1", "/"),
            Err(FsError::Refused(_))
        ));
    }
}
