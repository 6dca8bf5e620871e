//! A task's `volume_mount`s resolved against this node's host volumes: which host directory
//! goes where, read-only or not ([`resolve`], pure), whether the directory is there when the
//! task starts ([`check_sources`]), and where a process task's bind lands ([`bind_target`]).
//!
//! The drivers make the binds: `exec` and `raw_exec` inside the task's own mount namespace
//! (so they vanish with the task and the host never sees them: removing the allocation's
//! directory cannot reach into a volume), `docker` as container binds.

use std::path::{Component, Path, PathBuf};

use indexmap::IndexMap;
use nomos_api::{HostVolume, Task, TaskGroup};

use crate::error::AgentError;

/// One host directory to bind into a task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeBind {
    /// The group volume's name (for messages).
    pub volume: String,
    /// The host directory (the node's `host_volume` path).
    pub source: PathBuf,
    /// As the job gave it: absolute inside the task's filesystem, or relative to the task
    /// directory.
    pub destination: String,
    pub read_only: bool,
    /// `private`, `host-to-task` or `bidirectional`.
    pub propagation: String,
}

fn refusal(message: String) -> AgentError {
    AgentError::Sandbox {
        what: "Volume".into(),
        message,
    }
}

/// The task's mounts, each resolved through the group's `volume` to this node's
/// `host_volume`. A mount the scheduler should never have let through (an undeclared volume, a
/// host volume this node lacks, write access to a read-only one, a destination with `..`) is
/// refused with the reason.
pub fn resolve(
    group: &TaskGroup,
    task: &Task,
    host: &IndexMap<String, HostVolume>,
) -> Result<Vec<VolumeBind>, AgentError> {
    let mut binds = Vec::new();
    for mount in &task.volume_mounts {
        let request = group.volumes.get(&mount.volume).ok_or_else(|| {
            refusal(format!(
                "volume_mount names volume {:?}, which group {:?} does not declare",
                mount.volume, group.name
            ))
        })?;
        let offered = host.get(&request.source).ok_or_else(|| {
            refusal(format!(
                "volume {:?} needs host volume {:?}, which this node does not have",
                mount.volume, request.source
            ))
        })?;
        let read_only = mount.is_read_only(request);
        if offered.read_only && !read_only {
            return Err(refusal(format!(
                "volume {:?} asks to write to host volume {:?}, which this node publishes read-only",
                mount.volume, request.source
            )));
        }
        nomos_api::volumes::check_destination(&mount.destination).map_err(refusal)?;
        if mount.destination.chars().any(char::is_control) {
            return Err(refusal(format!(
                "volume_mount destination {:?} contains a control character",
                mount.destination
            )));
        }
        binds.push(VolumeBind {
            volume: mount.volume.clone(),
            source: PathBuf::from(&offered.path),
            destination: mount.destination.clone(),
            read_only,
            propagation: match mount.propagation_mode.as_str() {
                "" => "private".into(),
                mode => mode.into(),
            },
        });
    }
    Ok(binds)
}

/// Each bind's host directory still exists and is a directory (it may have been removed since
/// the agent started): otherwise the task does not start, and the event says which.
pub fn check_sources(binds: &[VolumeBind]) -> Result<(), AgentError> {
    for b in binds {
        match std::fs::metadata(&b.source) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(refusal(format!(
                    "host volume path {} for volume {:?} is not a directory",
                    b.source.display(),
                    b.volume
                )))
            }
            Err(e) => {
                return Err(refusal(format!(
                    "host volume path {} for volume {:?} cannot be mounted: {e}",
                    b.source.display(),
                    b.volume
                )))
            }
        }
    }
    Ok(())
}

/// Where a process task's bind lands, as seen before it is chrooted: an absolute destination
/// under the chroot `root` (`/` for none), a relative one under the task directory (itself
/// reached through the chroot, where the allocation directory is bound at its own path).
pub fn bind_target(root: &Path, task_dir: &Path, destination: &str) -> PathBuf {
    let inside = |p: &Path| -> PathBuf {
        p.components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect()
    };
    let dest = Path::new(destination);
    if dest.is_absolute() {
        root.join(inside(dest))
    } else {
        root.join(inside(task_dir)).join(inside(dest))
    }
}

/// The container side of a docker bind: absolute as given, a relative one under `/` (the
/// container's task directory).
pub fn container_target(destination: &str) -> String {
    if destination.starts_with('/') {
        destination.to_string()
    } else {
        format!("/{destination}")
    }
}

/// The arguments a process driver's bind script takes: the number of binds, then host
/// directory, target and `ro`/`rw` for each (see [`crate::driver::raw_exec::BIND_VOLUMES`]).
pub fn bind_args(binds: &[VolumeBind], root: &Path, task_dir: &Path) -> Vec<std::ffi::OsString> {
    let mut args = vec![binds.len().to_string().into()];
    for b in binds {
        args.push(b.source.clone().into());
        args.push(bind_target(root, task_dir, &b.destination).into());
        args.push(if b.read_only { "ro" } else { "rw" }.into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::{VolumeMount, VolumeRequest};

    fn group(read_only: bool) -> TaskGroup {
        let request = VolumeRequest {
            name: "data".into(),
            volume_type: "host".into(),
            source: "pg".into(),
            read_only,
        };
        TaskGroup {
            name: "db".into(),
            volumes: IndexMap::from([("data".to_string(), request)]),
            ..TaskGroup::default()
        }
    }

    fn task(volume: &str, destination: &str, read_only: bool) -> Task {
        Task {
            volume_mounts: vec![VolumeMount {
                volume: volume.into(),
                destination: destination.into(),
                read_only,
                propagation_mode: String::new(),
            }],
            ..Task::default()
        }
    }

    fn host(read_only: bool) -> IndexMap<String, HostVolume> {
        let v = HostVolume {
            path: "/srv/pg".into(),
            read_only,
        };
        IndexMap::from([("pg".to_string(), v)])
    }

    #[test]
    fn mounts_resolve_to_the_nodes_directory_read_only_when_anyone_says_so() {
        // (group read-only, mount read-only, host read-only) -> Ok(bind read-only) or Err(text)
        let cases: &[(bool, bool, bool, Result<bool, &str>)] = &[
            (false, false, false, Ok(false)),
            (true, false, false, Ok(true)),
            (false, true, false, Ok(true)),
            (true, true, true, Ok(true)),
            (false, true, true, Ok(true)),
            (false, false, true, Err("publishes read-only")),
        ];
        for &(group_ro, mount_ro, host_ro, ref expected) in cases {
            let got = resolve(
                &group(group_ro),
                &task("data", "/var/lib/pg", mount_ro),
                &host(host_ro),
            );
            let what = format!("group {group_ro}, mount {mount_ro}, host {host_ro}");
            match (got, expected) {
                (Ok(binds), Ok(ro)) => {
                    assert_eq!(binds.len(), 1, "{what}");
                    assert_eq!(binds[0].source, PathBuf::from("/srv/pg"), "{what}");
                    assert_eq!(binds[0].read_only, *ro, "{what}");
                    assert_eq!(binds[0].propagation, "private", "{what}");
                }
                (Err(e), Err(text)) => assert!(e.to_string().contains(text), "{what}: {e}"),
                (got, _) => panic!("{what}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_mount_this_node_cannot_serve_is_refused_with_the_reason() {
        let cases = [
            (
                task("logs", "/logs", false),
                host(false),
                "does not declare",
            ),
            (
                task("data", "/d", false),
                IndexMap::new(),
                "which this node does not have",
            ),
            (
                task("data", "../../etc", false),
                host(false),
                "must not contain \"..\"",
            ),
            (
                task("data", "a\nb", false),
                host(false),
                "control character",
            ),
        ];
        for (t, h, text) in cases {
            let e = resolve(&group(false), &t, &h).expect_err(text).to_string();
            assert!(e.starts_with("Volume: ") && e.contains(text), "{e}");
        }
    }

    #[test]
    fn a_missing_or_non_directory_host_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let bind = |source: PathBuf| VolumeBind {
            volume: "data".into(),
            source,
            ..VolumeBind::default()
        };
        assert!(check_sources(&[bind(dir.path().to_path_buf())]).is_ok());
        let gone = check_sources(&[bind(dir.path().join("gone"))])
            .unwrap_err()
            .to_string();
        assert!(
            gone.contains("cannot be mounted") && gone.contains("gone"),
            "{gone}"
        );
        let not_dir = check_sources(&[bind(file)]).unwrap_err().to_string();
        assert!(not_dir.contains("is not a directory"), "{not_dir}");
    }

    #[test]
    fn bind_targets_are_under_the_chroot_or_the_task_dir() {
        let task_dir = Path::new("/data/allocs/a1/web");
        let chroot = Path::new("/data/allocs/a1/web/.nomos/root");
        let cases = [
            (
                chroot,
                "/var/lib/pg",
                "/data/allocs/a1/web/.nomos/root/var/lib/pg",
            ),
            (
                chroot,
                "local/pg",
                "/data/allocs/a1/web/.nomos/root/data/allocs/a1/web/local/pg",
            ),
            (Path::new("/"), "/srv/x", "/srv/x"),
            (Path::new("/"), "data", "/data/allocs/a1/web/data"),
            (Path::new("/"), "./data/", "/data/allocs/a1/web/data"),
        ];
        for (root, dest, want) in cases {
            assert_eq!(
                bind_target(root, task_dir, dest),
                PathBuf::from(want),
                "{dest}"
            );
        }
        assert_eq!(container_target("/var/lib/pg"), "/var/lib/pg");
        assert_eq!(container_target("data"), "/data");
    }
}
