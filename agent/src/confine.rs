//! Confinement of the paths a job spec names: whatever a template, an artifact or a name says,
//! the agent (running as root) reads and writes only beneath the directory it belongs to, even
//! when the task, which owns its task directory, planted symbolic links there.
//!
//! - [`check_name`]: a task name or allocation id becomes exactly one path component, or
//!   nothing at all.
//! - [`rel_path`]: the lexical rule for a path inside a directory: `.` dropped, a leading `/`
//!   meaning the directory itself (as Nomad reads template destinations), `..` only while it stays
//!   inside.
//! - [`Beneath`]: a directory opened once; every path below it is walked from its descriptor
//!   one component at a time with `O_NOFOLLOW`, making missing directories on the way, so no
//!   symbolic link is ever followed (a link in the way is refused, never written through) and
//!   nothing outside is touched, whatever the task renames meanwhile. Files are created with
//!   `O_CREAT | O_EXCL | O_NOFOLLOW` after the old name is unlinked, so a planted hard link is
//!   not written through either. This works on every kernel (`openat2`'s `RESOLVE_BENEATH`
//!   needs 5.6) and is stricter: links pointing inside are not followed either.
//! - [`read_source`]: a `source` of a template or artifact: beneath the task directory, or from
//!   the host only when the agent's `allow_host_paths` says so.
//!
//! Every refusal is an [`AgentError::Sandbox`]; the task fails with it before it starts.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{linkat, symlinkat, unlinkat, UnlinkatFlags};

use crate::error::AgentError;

/// Whether `name` is one normal path component: not empty, `.` or `..`, no `/` or NUL.
pub fn is_single_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Refuses a name (task name, allocation id) that would not be one directory of its own.
/// `what` is the block (`Task`), `field` what the name is (`name`).
pub fn check_name(what: &str, field: &str, name: &str) -> Result<(), AgentError> {
    if is_single_component(name) {
        return Ok(());
    }
    Err(AgentError::sandbox(
        what,
        format!(
            "{field} {name:?} is not a single path component (empty, \".\", \"..\", or holding \
             \"/\" or NUL); refusing to make a path of it"
        ),
    ))
}

/// `path` inside a directory, as normal components only: `.` dropped, a leading `/` meaning
/// the directory itself, `..` removing the component before it. `None` when it would leave
/// the directory.
pub fn rel_path(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Some(out)
}

/// Reads a `source` of `what` (`Template`, `Artifact`): a relative path inside the task
/// directory through [`Beneath::read`]; an absolute path, one leaving the task directory or a
/// `file://` URL only with `allow_host_paths`, and then from the host.
pub fn read_source(
    task: &Beneath,
    what: &str,
    source: &str,
    allow_host_paths: bool,
) -> Result<Vec<u8>, AgentError> {
    let host = source.strip_prefix("file://");
    let inside = match host {
        None if !Path::new(source).is_absolute() => rel_path(source),
        _ => None,
    };
    match inside {
        Some(rel) => task
            .read(&rel)
            .map_err(|e| e.about(what, &format!("source {source:?}"))),
        None if allow_host_paths => {
            let p = task.path().join(host.unwrap_or(source));
            std::fs::read(&p).map_err(|e| AgentError::io(p, e))
        }
        None => Err(AgentError::sandbox(
            what,
            format!(
                "source {source:?} is outside the task directory (host paths need \
                 allow_host_paths in the agent's configuration)"
            ),
        )),
    }
}

/// A directory opened once, beneath which paths are resolved without following links.
#[derive(Debug)]
pub struct Beneath {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

fn is_symlink(dir: impl AsFd, name: &OsStr) -> bool {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map(|s| SFlag::from_bits_truncate(s.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK)
        .unwrap_or(false)
}

fn symlink_refusal(rel: &Path) -> AgentError {
    AgentError::sandbox(
        "",
        format!(
            "the symbolic link {rel:?} is in the way (links inside a task directory are never \
             followed)"
        ),
    )
}

impl Beneath {
    /// Opens `dir`, making it (and its parents) first. `dir` is a path the agent formed itself
    /// (the task or allocation directory); its last component must not be a link.
    pub fn open(dir: &Path) -> Result<Self, AgentError> {
        std::fs::create_dir_all(dir).map_err(|e| AgentError::io(dir, e))?;
        let fd = nix::fcntl::open(dir, DIR_FLAGS, Mode::empty())
            .map_err(|e| AgentError::io(dir, e.into()))?;
        Ok(Beneath {
            fd,
            path: dir.to_path_buf(),
        })
    }

    /// The directory's path (for messages and for what the task sees).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory `rel` (normal components only, see [`rel_path`]) beneath this one, made
    /// (0755) where missing.
    pub fn dir(&self, rel: &Path) -> Result<Beneath, AgentError> {
        Ok(Beneath {
            fd: self.walk(rel, true)?,
            path: self.path.join(rel),
        })
    }

    /// Opens the directories of `rel` one by one from this directory's descriptor.
    fn walk(&self, rel: &Path, create: bool) -> Result<OwnedFd, AgentError> {
        let mut cur = self
            .fd
            .try_clone()
            .map_err(|e| AgentError::io(&self.path, e))?;
        let mut so_far = PathBuf::new();
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(AgentError::sandbox(
                    "",
                    format!("{rel:?} is not a plain relative path"),
                ));
            };
            so_far.push(name);
            let mut opened = openat(&cur, name, DIR_FLAGS, Mode::empty());
            if matches!(opened, Err(Errno::ENOENT)) && create {
                match mkdirat(&cur, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(AgentError::io(self.path.join(&so_far), e.into())),
                }
                opened = openat(&cur, name, DIR_FLAGS, Mode::empty());
            }
            cur = match opened {
                Ok(fd) => fd,
                Err(_) if is_symlink(&cur, name) => return Err(symlink_refusal(&so_far)),
                Err(e) => return Err(AgentError::io(self.path.join(&so_far), e.into())),
            };
        }
        Ok(cur)
    }

    /// The directory holding `rel` (walked, made where missing when `create`) and its last
    /// component.
    fn parent_of<'a>(
        &self,
        rel: &'a Path,
        create: bool,
    ) -> Result<(OwnedFd, &'a OsStr), AgentError> {
        let name = rel
            .file_name()
            .ok_or_else(|| AgentError::sandbox("", "names the directory itself, not a file"))?;
        let parent = self.walk(rel.parent().unwrap_or(Path::new("")), create)?;
        Ok((parent, name))
    }

    /// `rel` as a path to hand another program (Docker's bind mounts): its directories walked
    /// (made where missing) without following links, and its last component, if it exists,
    /// not a link. It stays safe only while nothing can change the directory, so hand it over
    /// while the task is not running.
    pub fn bind_source(&self, rel: &Path) -> Result<PathBuf, AgentError> {
        let (parent, name) = self.parent_of(rel, true)?;
        if is_symlink(&parent, name) {
            return Err(symlink_refusal(rel));
        }
        Ok(self.path.join(rel))
    }

    /// Reads the regular file `rel`; a link, a FIFO or a device is refused.
    pub fn read(&self, rel: &Path) -> Result<Vec<u8>, AgentError> {
        let (parent, name) = self.parent_of(rel, false)?;
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match openat(&parent, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(_) if is_symlink(&parent, name) => return Err(symlink_refusal(rel)),
            Err(e) => return Err(AgentError::io(self.path.join(rel), e.into())),
        };
        let st = fstat(&fd).map_err(|e| AgentError::io(self.path.join(rel), e.into()))?;
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
            return Err(AgentError::sandbox(
                "",
                format!("{rel:?} is not a regular file"),
            ));
        }
        let mut out = Vec::new();
        File::from(fd)
            .read_to_end(&mut out)
            .map_err(|e| AgentError::io(self.path.join(rel), e))?;
        Ok(out)
    }

    /// Makes `name` in `parent` free for a new entry: a link there is refused (when
    /// `refuse_links`) or removed, any other non-directory removed (a hard link loses this
    /// name only). Unlinking never follows a link.
    fn clear(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        rel: &Path,
        refuse_links: bool,
    ) -> Result<(), AgentError> {
        if is_symlink(parent, name) && refuse_links {
            return Err(symlink_refusal(rel));
        }
        match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(AgentError::io(self.path.join(rel), e.into())),
        }
    }

    /// Creates the file `rel` (replacing a file of that name; a link there is refused) with
    /// permissions `mode`, making its directories.
    pub fn create(&self, rel: &Path, mode: u32) -> Result<File, AgentError> {
        let (parent, name) = self.parent_of(rel, true)?;
        self.clear(&parent, name, rel, true)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let perms = Mode::from_bits_truncate(mode & 0o777);
        let io = |e: Errno| AgentError::io(self.path.join(rel), e.into());
        let fd = openat(&parent, name, flags, perms).map_err(io)?;
        fchmod(&fd, perms).map_err(io)?;
        Ok(File::from(fd))
    }

    /// Writes `bytes` to the file `rel`, as [`Beneath::create`] makes it.
    pub fn write(&self, rel: &Path, bytes: &[u8], mode: u32) -> Result<(), AgentError> {
        self.create(rel, mode)?
            .write_all(bytes)
            .map_err(|e| AgentError::io(self.path.join(rel), e))
    }

    /// Makes `rel` a symbolic link to `target` (replacing a file or link of that name). The
    /// caller decides whether `target` may point where it points; it is never followed here.
    pub fn symlink(&self, rel: &Path, target: &Path) -> Result<(), AgentError> {
        let (parent, name) = self.parent_of(rel, true)?;
        self.clear(&parent, name, rel, false)?;
        symlinkat(target, &parent, name).map_err(|e| AgentError::io(self.path.join(rel), e.into()))
    }

    /// Makes `rel` a hard link to the existing entry `existing` beneath this directory (a link
    /// there is linked as the link itself, never followed).
    pub fn hard_link(&self, existing: &Path, rel: &Path) -> Result<(), AgentError> {
        let (old_parent, old_name) = self.parent_of(existing, false)?;
        let (parent, name) = self.parent_of(rel, true)?;
        self.clear(&parent, name, rel, false)?;
        linkat(&old_parent, old_name, &parent, name, AtFlags::empty())
            .map_err(|e| AgentError::io(self.path.join(rel), e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_components() {
        for ok in ["web", "a.b", "...", "x-1_2", "3f2a-uuid"] {
            assert!(check_name("Task", "name", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "/abs/path", "a/b", "a\0b"] {
            let e = check_name("Task", "name", bad).unwrap_err();
            assert!(e.to_string().starts_with("Task: name "), "{e}");
        }
    }

    #[test]
    fn relative_paths_stay_inside_or_are_none() {
        let cases = [
            ("local/a.conf", Some("local/a.conf")),
            ("/local/a.conf", Some("local/a.conf")),
            ("./local/../secrets/x", Some("secrets/x")),
            ("", Some("")),
            ("..", None),
            ("../x", None),
            ("local/../../x", None),
        ];
        for (input, want) in cases {
            assert_eq!(rel_path(input), want.map(PathBuf::from), "{input}");
        }
    }

    #[test]
    fn files_are_written_and_read_beneath_and_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("victim");
        std::fs::write(&outside, "keep").unwrap();
        let task = Beneath::open(&dir.path().join("task")).unwrap();
        task.write(Path::new("local/sub/a"), b"hello", 0o640)
            .unwrap();
        assert_eq!(task.read(Path::new("local/sub/a")).unwrap(), b"hello");
        let meta = std::fs::metadata(dir.path().join("task/local/sub/a")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o640
        );

        std::os::unix::fs::symlink(&outside, dir.path().join("task/local/out")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("task/up")).unwrap();
        for rel in ["local/out", "up/victim", "up/new"] {
            let e = task.write(Path::new(rel), b"pwned", 0o644).unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{rel}: {e}");
        }
        assert!(task.read(Path::new("local/out")).is_err());
        assert!(task.read(Path::new("up/victim")).is_err());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
        assert!(!dir.path().join("new").exists());
    }

    #[test]
    fn a_planted_hard_link_loses_its_name_instead_of_being_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let task = Beneath::open(&dir.path().join("task")).unwrap();
        let other = dir.path().join("task/other");
        std::fs::write(&other, "keep").unwrap();
        std::fs::hard_link(&other, dir.path().join("task/linked")).unwrap();
        task.write(Path::new("linked"), b"new", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "keep");
        assert_eq!(task.read(Path::new("linked")).unwrap(), b"new");
    }

    #[test]
    fn host_sources_need_allow_host_paths() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host.txt");
        std::fs::write(&host, "host").unwrap();
        let task = Beneath::open(&dir.path().join("task")).unwrap();
        task.write(Path::new("local/in.txt"), b"in", 0o644).unwrap();
        assert_eq!(
            read_source(&task, "Template", "local/in.txt", false).unwrap(),
            b"in"
        );
        let abs = host.display().to_string();
        for src in [abs.clone(), format!("file://{abs}"), "../host.txt".into()] {
            let e = read_source(&task, "Template", &src, false).unwrap_err();
            let want = format!("Template: source {src:?} is outside the task directory");
            assert!(e.to_string().starts_with(&want), "{e}");
            assert_eq!(read_source(&task, "Template", &src, true).unwrap(), b"host");
        }
    }
}
