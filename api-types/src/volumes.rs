//! Host volumes in a job: the checks on a group's `volume` blocks and its tasks' `volume_mount`s
//! (only `type = "host"`, every mount naming a declared volume, destinations that stay where
//! they belong), each finding with the canonical field path that becomes `file:line:col`.

use std::path::{Component, Path};

use crate::diag::Severity;
use crate::fieldpath::{index, join};
use crate::job::{TaskGroup, VolumeMount, PROPAGATION_MODES, VOLUME_TYPE_HOST};
use crate::validate::Issue;

/// Every problem with the group's volumes and its tasks' mounts; `gp` is the group's path.
pub fn volume_issues(gp: &str, g: &TaskGroup) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut err = |path: String, message: String| {
        issues.push(Issue {
            path,
            severity: Severity::Error,
            message,
        })
    };
    for (name, volume) in &g.volumes {
        let vp = join(&join(gp, "volumes"), name);
        match volume.volume_type.as_str() {
            VOLUME_TYPE_HOST => {}
            "csi" => err(
                join(&vp, "type"),
                format!("volume {name:?}: CSI volumes are not supported by Nomos: use type = \"host\" with a host_volume of the agent"),
            ),
            other => err(
                join(&vp, "type"),
                format!("volume {name:?}: invalid type {other:?}: expected \"host\""),
            ),
        }
        if volume.source.is_empty() {
            err(
                join(&vp, "source"),
                format!("volume {name:?} needs a source: the name of a host_volume of the agent"),
            );
        }
        if !volume.name.is_empty() && volume.name != *name {
            err(
                join(&vp, "name"),
                format!(
                    "volume name {:?} differs from its key {name:?}",
                    volume.name
                ),
            );
        }
    }
    for (ti, t) in g.tasks.iter().enumerate() {
        let tp = index(&join(gp, "tasks"), ti);
        for (mi, mount) in t.volume_mounts.iter().enumerate() {
            let mp = index(&join(&tp, "volume_mounts"), mi);
            for (field, why) in mount_problems(mount, g) {
                err(join(&mp, field), why);
            }
        }
    }
    issues
}

/// What is wrong with one mount, by field.
fn mount_problems(mount: &VolumeMount, g: &TaskGroup) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if mount.volume.is_empty() {
        out.push((
            "volume",
            "volume_mount needs a volume: the name of one of the group's volume blocks".to_string(),
        ));
    } else if !g.volumes.contains_key(&mount.volume) {
        let declared: Vec<&str> = g.volumes.keys().map(String::as_str).collect();
        let known = if declared.is_empty() {
            "the group declares no volume".to_string()
        } else {
            format!("the group declares {}", declared.join(", "))
        };
        out.push((
            "volume",
            format!(
                "volume_mount names volume {:?}, which group {:?} does not declare ({known})",
                mount.volume, g.name
            ),
        ));
    }
    if let Err(why) = check_destination(&mount.destination) {
        out.push(("destination", why));
    }
    let mode = mount.propagation_mode.as_str();
    if !mode.is_empty() && !PROPAGATION_MODES.contains(&mode) {
        out.push((
            "propagation_mode",
            format!(
                "invalid propagation_mode {mode:?}: expected one of {}",
                PROPAGATION_MODES.join(", ")
            ),
        ));
    }
    let volume_read_only = g.volumes.get(&mount.volume).is_some_and(|v| v.read_only);
    if mode == "bidirectional" && (mount.read_only || volume_read_only) {
        out.push((
            "propagation_mode",
            "propagation_mode \"bidirectional\" needs a writable mount, and this one is read-only"
                .to_string(),
        ));
    }
    out
}

/// A mount destination: not empty, and without `..` (an absolute one is inside the task's
/// filesystem, a relative one inside the task directory; neither may climb out).
pub fn check_destination(destination: &str) -> Result<(), String> {
    if destination.trim().is_empty() {
        return Err(
            "volume_mount needs a destination: where the volume appears in the task".into(),
        );
    }
    let climbs = Path::new(destination)
        .components()
        .any(|c| matches!(c, Component::ParentDir));
    if climbs {
        return Err(format!(
            "volume_mount destination {destination:?} must not contain \"..\": it would leave the task's filesystem"
        ));
    }
    if destination.contains('\0') {
        return Err(format!(
            "volume_mount destination {destination:?} contains a NUL byte"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Task, VolumeRequest};

    fn group(volumes: &[(&str, &str, bool)], mounts: &[(&str, &str, bool, &str)]) -> TaskGroup {
        TaskGroup {
            name: "db".into(),
            volumes: volumes
                .iter()
                .map(|&(name, ty, read_only)| {
                    let v = VolumeRequest {
                        name: name.into(),
                        volume_type: ty.into(),
                        source: format!("{name}-src"),
                        read_only,
                    };
                    (name.to_string(), v)
                })
                .collect(),
            tasks: vec![Task {
                name: "t".into(),
                volume_mounts: mounts
                    .iter()
                    .map(|&(volume, destination, read_only, mode)| VolumeMount {
                        volume: volume.into(),
                        destination: destination.into(),
                        read_only,
                        propagation_mode: mode.into(),
                    })
                    .collect(),
                ..Task::default()
            }],
            ..TaskGroup::default()
        }
    }

    /// The issues expected: field path and a part of the message.
    type Expected = &'static [(&'static str, &'static str)];

    #[test]
    fn volume_checks_name_the_field_and_the_reason() {
        let cases: &[(&str, TaskGroup, Expected)] = &[
            (
                "a host volume mounted absolutely",
                group(
                    &[("data", "host", false)],
                    &[("data", "/var/lib/db", false, "private")],
                ),
                &[],
            ),
            (
                "a relative destination",
                group(
                    &[("data", "host", false)],
                    &[("data", "local/db", true, "")],
                ),
                &[],
            ),
            (
                "csi is refused",
                group(&[("data", "csi", false)], &[]),
                &[("g.volumes.data.type", "CSI volumes are not supported")],
            ),
            (
                "an unknown type",
                group(&[("data", "nfs", false)], &[]),
                &[("g.volumes.data.type", "invalid type \"nfs\"")],
            ),
            (
                "an empty type",
                group(&[("data", "", false)], &[]),
                &[("g.volumes.data.type", "invalid type \"\"")],
            ),
            (
                "an undeclared volume",
                group(
                    &[("data", "host", false)],
                    &[("logs", "/logs", false, "private")],
                ),
                &[(
                    "g.tasks[0].volume_mounts[0].volume",
                    "does not declare (the group declares data)",
                )],
            ),
            (
                "no volume at all",
                group(&[], &[("logs", "/logs", false, "private")]),
                &[(
                    "g.tasks[0].volume_mounts[0].volume",
                    "the group declares no volume",
                )],
            ),
            (
                "an empty destination",
                group(
                    &[("data", "host", false)],
                    &[("data", " ", false, "private")],
                ),
                &[(
                    "g.tasks[0].volume_mounts[0].destination",
                    "needs a destination",
                )],
            ),
            (
                "a climbing destination",
                group(
                    &[("data", "host", false)],
                    &[("data", "../../etc", false, "private")],
                ),
                &[(
                    "g.tasks[0].volume_mounts[0].destination",
                    "must not contain \"..\"",
                )],
            ),
            (
                "a climbing absolute destination",
                group(
                    &[("data", "host", false)],
                    &[("data", "/srv/../etc", false, "private")],
                ),
                &[(
                    "g.tasks[0].volume_mounts[0].destination",
                    "must not contain \"..\"",
                )],
            ),
            (
                "a bad propagation mode",
                group(
                    &[("data", "host", false)],
                    &[("data", "/d", false, "shared")],
                ),
                &[(
                    "g.tasks[0].volume_mounts[0].propagation_mode",
                    "invalid propagation_mode \"shared\"",
                )],
            ),
            (
                "bidirectional on a read-only volume",
                group(
                    &[("data", "host", true)],
                    &[("data", "/d", false, "bidirectional")],
                ),
                &[(
                    "g.tasks[0].volume_mounts[0].propagation_mode",
                    "needs a writable mount",
                )],
            ),
        ];
        for (what, g, expected) in cases {
            let issues = volume_issues("g", g);
            assert_eq!(issues.len(), expected.len(), "{what}: {issues:?}");
            for (issue, (path, text)) in issues.iter().zip(expected.iter()) {
                assert_eq!(issue.path, *path, "{what}");
                assert!(issue.message.contains(text), "{what}: {}", issue.message);
            }
        }
    }

    #[test]
    fn hcl_volumes_and_mounts_are_typed_and_defaulted() {
        let src = r#"job "pg" {
  group "db" {
    volume "data" {
      type      = "host"
      source    = "pg-data"
      read_only = true
    }
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
      volume_mount {
        volume      = "data"
        destination = "data"
      }
    }
  }
}"#;
        let parsed =
            crate::parse_source("pg.hcl", src, &crate::ParseOptions::default()).expect("valid");
        let g = &parsed.jobs[0].groups[0];
        let expected = VolumeRequest {
            name: "data".into(),
            volume_type: "host".into(),
            source: "pg-data".into(),
            read_only: true,
        };
        assert_eq!(g.volumes["data"], expected);
        let mount = &g.tasks[0].volume_mounts[0];
        assert_eq!(mount.propagation_mode, "private");
        assert!(
            mount.is_read_only(&g.volumes["data"]),
            "the volume's read_only reaches the mount"
        );
    }

    #[test]
    fn a_job_without_volumes_keeps_its_stored_shape() {
        let src = "job \"web\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n      config { command = \"/bin/true\" }\n    }\n  }\n}\n";
        let parsed =
            crate::parse_source("web.hcl", src, &crate::ParseOptions::default()).expect("valid");
        let json = crate::to_canonical_json(&parsed.jobs[0]);
        assert!(json.contains("\"volumes\": {}"), "{json}");
        assert!(!json.contains("volume_mounts"), "{json}");
    }

    #[test]
    fn a_volume_without_a_source_is_refused() {
        let mut g = group(&[("data", "host", false)], &[]);
        g.volumes["data"].source.clear();
        let issues = volume_issues("g", &g);
        assert_eq!(issues[0].path, "g.volumes.data.source");
    }
}
