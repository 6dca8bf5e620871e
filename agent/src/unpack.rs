//! Unpacking artifact archives (tar, tar.gz, zip; a `.gz` is one file) into their destination
//! without leaving it: every entry goes through [`crate::confine::Beneath`], so none is written
//! through a link, whether the link came from the archive or was already there.
//!
//! Refused (the whole artifact fails, as a sandbox refusal): an entry with an absolute path or a
//! `..`, a symbolic link whose target is absolute or leads outside the destination, a hard link
//! to an entry outside it. Devices, FIFOs and other special entries are skipped. File
//! permissions keep the archive's `rwx` bits only (no setuid, setgid or sticky bit).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::confine::{rel_path, Beneath};
use crate::error::AgentError;

/// What one archive entry makes.
enum Kind {
    Dir,
    File(u32),
    Symlink(PathBuf),
    HardLink(PathBuf),
}

/// Archive formats the agent unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    TarGz,
    Gz,
    Zip,
}

/// The archive kind from the file name, unless `options.archive = "false"`.
pub fn archive_kind(file_name: &str, archive_option: Option<&str>) -> Option<ArchiveKind> {
    if archive_option == Some("false") {
        return None;
    }
    let n = file_name.to_ascii_lowercase();
    if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
        Some(ArchiveKind::TarGz)
    } else if n.ends_with(".tar") {
        Some(ArchiveKind::Tar)
    } else if n.ends_with(".gz") {
        Some(ArchiveKind::Gz)
    } else if n.ends_with(".zip") {
        Some(ArchiveKind::Zip)
    } else {
        None
    }
}

/// Unpacks `bytes` (an archive of `kind` named `name`) into `dest`.
pub fn unpack(
    bytes: &[u8],
    kind: ArchiveKind,
    dest: &Beneath,
    name: &str,
) -> Result<(), AgentError> {
    match kind {
        ArchiveKind::Tar => unpack_tar(bytes, dest),
        ArchiveKind::TarGz => unpack_tar(flate2::read::GzDecoder::new(bytes), dest),
        ArchiveKind::Gz => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .map_err(|e| AgentError::io(dest.path(), e))?;
            let stem = name.strip_suffix(".gz").unwrap_or(name);
            place(
                dest,
                Path::new(stem),
                Kind::File(0o644),
                &mut out.as_slice(),
            )
        }
        ArchiveKind::Zip => unpack_zip(bytes, dest),
    }
}

fn unpack_tar(r: impl Read, dest: &Beneath) -> Result<(), AgentError> {
    let io = |e: std::io::Error| AgentError::io(dest.path(), e);
    let mut archive = tar::Archive::new(r);
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let path = entry.path().map_err(io)?.into_owned();
        let link = || -> Result<PathBuf, AgentError> {
            let target = entry.link_name().map_err(io)?;
            target.map(|t| t.into_owned()).ok_or_else(|| {
                refusal(format!("archive entry {path:?} is a link without a target"))
            })
        };
        let kind = match entry.header().entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                Kind::File(entry.header().mode().unwrap_or(0o644))
            }
            tar::EntryType::Symlink => Kind::Symlink(link()?),
            tar::EntryType::Link => Kind::HardLink(link()?),
            _ => continue,
        };
        place(dest, &path, kind, &mut entry)?;
    }
    Ok(())
}

fn unpack_zip(bytes: &[u8], dest: &Beneath) -> Result<(), AgentError> {
    let zip_err = |e: zip::result::ZipError| AgentError::io(dest.path(), std::io::Error::other(e));
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(zip_err)?;
    for i in 0..z.len() {
        let mut f = z.by_index(i).map_err(zip_err)?;
        let path = PathBuf::from(f.name());
        let kind = if f.is_dir() {
            Kind::Dir
        } else if f.is_symlink() {
            let mut target = String::new();
            f.read_to_string(&mut target)
                .map_err(|e| AgentError::io(dest.path(), e))?;
            Kind::Symlink(target.into())
        } else {
            Kind::File(f.unix_mode().unwrap_or(0o644))
        };
        place(dest, &path, kind, &mut f)?;
    }
    Ok(())
}

fn refusal(message: String) -> AgentError {
    AgentError::sandbox("", message)
}

/// An entry's path inside the destination: relative, no `..` at all.
fn entry_path(path: &Path) -> Result<PathBuf, AgentError> {
    let plain = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    match path.to_str().and_then(rel_path) {
        Some(rel) if plain => Ok(rel),
        _ => Err(refusal(format!(
            "archive entry {path:?} is outside the destination"
        ))),
    }
}

/// Whether a symbolic link at `entry` pointing to `target` stays inside the destination.
fn link_stays_inside(entry: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let base = entry.parent().unwrap_or(Path::new(""));
    base.join(target).to_str().and_then(rel_path).is_some()
}

/// Makes one entry beneath `dest`.
fn place(
    dest: &Beneath,
    path: &Path,
    kind: Kind,
    content: &mut dyn Read,
) -> Result<(), AgentError> {
    let rel = entry_path(path)?;
    match kind {
        Kind::Dir => dest.dir(&rel).map(drop),
        Kind::File(mode) => {
            let mut f = dest.create(&rel, mode & 0o777)?;
            std::io::copy(content, &mut f)
                .map(drop)
                .map_err(|e| AgentError::io(dest.path().join(&rel), e))
        }
        Kind::Symlink(target) => {
            if !link_stays_inside(&rel, &target) {
                return Err(refusal(format!(
                    "archive entry {path:?} is a link to {target:?}, outside the destination"
                )));
            }
            dest.symlink(&rel, &target)
        }
        Kind::HardLink(target) => dest.hard_link(&entry_path(&target)?, &rel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry: path, type, link target, content.
    type Entry<'a> = (&'a str, tar::EntryType, &'a str, &'a [u8]);

    /// A tar archive built header by header, so that entries `tar::Builder` refuses to write
    /// (`../x`, absolute paths) can be made.
    fn tar_of(entries: &[Entry<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, kind, link, data) in entries {
            let mut h = tar::Header::new_gnu();
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o4755);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn setup() -> (tempfile::TempDir, Beneath) {
        let dir = tempfile::tempdir().unwrap();
        let dest = Beneath::open(&dir.path().join("task/local")).unwrap();
        (dir, dest)
    }

    #[test]
    fn entries_links_and_modes_land_inside() {
        let (dir, dest) = setup();
        let reg = tar::EntryType::Regular;
        let tar = tar_of(&[
            ("./bin/", tar::EntryType::Directory, "", b""),
            ("bin/tool", reg, "", b"#!/bin/sh\n"),
            ("bin/alias", tar::EntryType::Symlink, "tool", b""),
            ("lib/up", tar::EntryType::Symlink, "../bin/tool", b""),
            ("bin/hard", tar::EntryType::Link, "bin/tool", b""),
        ]);
        unpack(&tar, ArchiveKind::Tar, &dest, "a.tar").unwrap();
        // Again: a fetch before every start finds its own entries there.
        unpack(&tar, ArchiveKind::Tar, &dest, "a.tar").unwrap();
        let local = dir.path().join("task/local");
        assert_eq!(
            std::fs::read(local.join("bin/hard")).unwrap(),
            b"#!/bin/sh\n"
        );
        assert_eq!(
            std::fs::read_link(local.join("bin/alias")).unwrap(),
            Path::new("tool")
        );
        let meta = std::fs::metadata(local.join("bin/tool")).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
        assert_eq!(mode & 0o7777, 0o755, "setuid dropped");
    }

    #[test]
    fn escaping_entries_are_refused_and_nothing_lands_outside() {
        let reg = tar::EntryType::Regular;
        let sym = tar::EntryType::Symlink;
        let cases: &[&[Entry<'_>]] = &[
            &[("../escaped", reg, "", b"x")],
            &[("sub/../../escaped", reg, "", b"x")],
            &[("/tmp/escaped-abs", reg, "", b"x")],
            &[("evil", sym, "/", b"")],
            &[("evil", sym, "../..", b"")],
            &[("a/evil", sym, "../../escaped", b"")],
            &[("hard", tar::EntryType::Link, "../escaped", b"")],
        ];
        for entries in cases {
            let (dir, dest) = setup();
            let e = unpack(&tar_of(entries), ArchiveKind::Tar, &dest, "a.tar").unwrap_err();
            assert!(
                e.to_string().contains("outside the destination"),
                "{entries:?}: {e}"
            );
            assert!(!dir.path().join("task/escaped").exists());
        }
    }

    #[test]
    fn an_entry_is_not_written_through_a_link_already_there() {
        let (dir, dest) = setup();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("task/local/out")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("task/local/d")).unwrap();
        for path in ["out", "d/victim"] {
            let tar = tar_of(&[(path, tar::EntryType::Regular, "", b"pwned")]);
            let e = unpack(&tar, ArchiveKind::Tar, &dest, "a.tar").unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn zip_entries_are_confined_too() {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file("ok/a.txt", opts).unwrap();
        w.write_all(b"a").unwrap();
        w.start_file("../escaped", opts).unwrap();
        w.write_all(b"x").unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let (dir, dest) = setup();
        let e = unpack(&bytes, ArchiveKind::Zip, &dest, "a.zip").unwrap_err();
        assert!(e.to_string().contains("outside the destination"), "{e}");
        assert!(!dir.path().join("task/escaped").exists());
        assert_eq!(
            std::fs::read(dir.path().join("task/local/ok/a.txt")).unwrap(),
            b"a"
        );
    }
}
