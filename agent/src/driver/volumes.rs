//! Docker volumes: where a docker task's `volumes` entries (`host:container[:opts]`) may point
//! on the host. As in Nomad, a relative host side is inside the task directory (and may not
//! leave it) and an absolute one needs the docker plugin's `volumes { enabled = true }`. Docker
//! follows links when it binds, so a path inside the task directory is walked without following
//! links first: a link the task planted there cannot point Docker at the host.

use std::path::PathBuf;

use super::{config_list, TaskSpec};
use crate::confine::{rel_path, Beneath};
use crate::error::AgentError;

/// Where a `volumes` entry's host side is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A path on the host, outside the task directory.
    Host(PathBuf),
    /// A path inside the task directory (normal components only).
    Task(PathBuf),
}

/// The host side of a `volumes` entry, as Nomad reads it: a relative path is inside the task
/// directory and may not leave it; an absolute one is a host path, allowed only when the
/// agent's docker plugin allows host volumes (`host_volumes`).
pub fn volume_source(host: &str, host_volumes: bool) -> Result<VolumeSource, String> {
    if host.starts_with('/') {
        return if host_volumes {
            Ok(VolumeSource::Host(PathBuf::from(host)))
        } else {
            Err(format!(
                "host path {host:?} needs the docker plugin's `volumes {{ enabled = true }}` \
                 in the agent's configuration"
            ))
        };
    }
    match rel_path(host) {
        Some(rel) => Ok(VolumeSource::Task(rel)),
        None => Err(format!("{host:?} leaves the task directory")),
    }
}

/// The task's `volumes` as bind mounts: each host side checked by [`volume_source`], and one
/// inside the task directory walked without following links (its directories made where
/// missing), so a link the task planted there cannot point Docker at the host.
pub fn task_volumes(spec: &TaskSpec, host_volumes: bool) -> Result<Vec<String>, AgentError> {
    let mut out = Vec::new();
    for v in config_list(&spec.config, "volumes") {
        let (host, rest) = v.split_once(':').unwrap_or((v.as_str(), ""));
        let refusal = |why: String| AgentError::sandbox("Volume", format!("{v:?}: {why}"));
        let host = match volume_source(host, host_volumes).map_err(refusal)? {
            VolumeSource::Host(path) => path,
            VolumeSource::Task(rel) if rel.as_os_str().is_empty() => spec.task_dir.clone(),
            VolumeSource::Task(rel) => Beneath::open(&spec.task_dir)?
                .bind_source(&rel)
                .map_err(|e| refusal(e.to_string()))?,
        };
        out.push(format!("{}:{rest}", host.display()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(config: serde_json::Value) -> TaskSpec {
        TaskSpec {
            config: serde_json::from_value(config).unwrap(),
            task_dir: "/d/allocs/a1/t".into(),
            ..Default::default()
        }
    }

    #[test]
    fn volume_host_paths_need_the_plugin_and_relative_ones_stay_in_the_task_dir() {
        use VolumeSource::*;
        let cases = [
            ("data", false, Ok(Task("data".into()))),
            ("local/conf/../app", false, Ok(Task("local/app".into()))),
            ("/etc/x", true, Ok(Host("/etc/x".into()))),
            ("/etc/x", false, Err("needs the docker plugin")),
            ("../../etc", false, Err("leaves the task directory")),
            ("local/../../x", true, Err("leaves the task directory")),
        ];
        for (host, allowed, want) in cases {
            match (volume_source(host, allowed), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{host}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{host}: {e}"),
                (got, w) => panic!("{host} (host volumes {allowed}): {got:?}, wanted {w:?}"),
            }
        }
    }

    #[test]
    fn a_link_planted_where_a_volume_points_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(serde_json::json!({"image": "x", "volumes": ["data:/var/data"]}));
        s.task_dir = dir.path().join("t");
        std::fs::create_dir_all(&s.task_dir).unwrap();
        let made = task_volumes(&s, false).expect("a plain relative volume");
        assert_eq!(
            made,
            vec![format!("{}:/var/data", s.task_dir.join("data").display())]
        );
        let _ = std::fs::remove_dir(s.task_dir.join("data"));
        std::os::unix::fs::symlink("/etc", s.task_dir.join("data")).unwrap();
        let err = task_volumes(&s, false).expect_err("the link is refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let host = spec(serde_json::json!({"image": "x", "volumes": ["/etc:/host-etc:ro"]}));
        let err = task_volumes(&host, false).expect_err("host paths are off by default");
        assert!(
            err.to_string().contains("volumes { enabled = true }"),
            "{err}"
        );
        assert_eq!(
            task_volumes(&host, true).unwrap(),
            vec!["/etc:/host-etc:ro".to_string()]
        );
    }
}
