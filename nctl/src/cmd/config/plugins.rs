//! The agent configuration's `plugin "NAME" { config { ... } }` blocks. Nomos reads the
//! settings that decide what a job may do on the node, as in Nomad: raw_exec's `enabled` and
//! docker's `volumes { enabled }` (both off by default), and qemu's `image_paths` and
//! `args_allowlist`. The java plugin is known but has nothing to set (java's isolation is
//! exec's). Other settings, and other plugins, are Nomad's and warned about.

use super::{Entry, FileConfig, Reader, Section};

const RAW_EXEC: Section = Section {
    name: "plugin.raw_exec",
    known: &["config"],
    ignored: &["args"],
};
const RAW_EXEC_CONFIG: Section = Section {
    name: "plugin.raw_exec.config",
    known: &["enabled"],
    ignored: &["no_cgroups", "denied_host_uids", "denied_host_gids"],
};
const JAVA: Section = Section {
    name: "plugin.java",
    known: &["config"],
    ignored: &["args"],
};
const JAVA_CONFIG: Section = Section {
    name: "plugin.java.config",
    known: &[],
    ignored: &["default_pid_mode", "default_ipc_mode", "allow_caps"],
};
const QEMU: Section = Section {
    name: "plugin.qemu",
    known: &["config"],
    ignored: &["args"],
};
const QEMU_CONFIG: Section = Section {
    name: "plugin.qemu.config",
    known: &["image_paths", "args_allowlist"],
    ignored: &[],
};
const DOCKER: Section = Section {
    name: "plugin.docker",
    known: &["config"],
    ignored: &["args"],
};
const DOCKER_CONFIG: Section = Section {
    name: "plugin.docker.config",
    known: &["volumes"],
    ignored: &[
        "endpoint",
        "auth",
        "tls",
        "gc",
        "allow_privileged",
        "allow_caps",
        "allow_runtimes",
        "pull_activity_timeout",
        "pids_limit",
        "infra_image",
        "infra_image_pull_timeout",
        "image_pull_timeout",
        "extra_labels",
        "logging",
        "disable_log_collection",
        "windows_allow_insecure_container_admin",
    ],
};
const DOCKER_VOLUMES: Section = Section {
    name: "plugin.docker.config.volumes",
    known: &["enabled"],
    ignored: &["selinuxlabel"],
};

/// `plugin "NAME" { config { ... } }`: Nomos reads raw_exec's `enabled`, docker's `volumes {
/// enabled }` and qemu's `image_paths` / `args_allowlist`; other plugins' settings are Nomad's
/// and warned about.
pub(super) fn read_plugins(r: &mut Reader<'_>, plugins: &[Entry], out: &mut FileConfig) {
    for p in plugins {
        let (section, config) = match p.key.as_str() {
            "raw_exec" => (&RAW_EXEC, &RAW_EXEC_CONFIG),
            "docker" => (&DOCKER, &DOCKER_CONFIG),
            "java" => (&JAVA, &JAVA_CONFIG),
            "qemu" => (&QEMU, &QEMU_CONFIG),
            _ => {
                r.ignored(&format!("plugin.{}", p.key), p.at);
                continue;
            }
        };
        for c in r.section(section.name, &p.value) {
            if c.key != "config" {
                r.unknown(section, c);
                continue;
            }
            for setting in r.section(config.name, &c.value) {
                read_plugin_setting(r, config, setting, out);
            }
        }
    }
}

/// One setting of a plugin's `config` block.
fn read_plugin_setting(r: &mut Reader<'_>, config: &Section, e: &Entry, out: &mut FileConfig) {
    match (config.name, e.key.as_str()) {
        ("plugin.raw_exec.config", "enabled") => {
            out.raw_exec_enabled = r.boolean("plugin.raw_exec.config.enabled", &e.value)
        }
        ("plugin.docker.config", "volumes") => {
            for v in r.section(DOCKER_VOLUMES.name, &e.value) {
                match v.key.as_str() {
                    "enabled" => {
                        out.docker_volumes_enabled =
                            r.boolean("plugin.docker.config.volumes.enabled", &v.value)
                    }
                    _ => r.unknown(&DOCKER_VOLUMES, v),
                }
            }
        }
        ("plugin.qemu.config", "image_paths") => {
            out.qemu_image_paths = r.strings("plugin.qemu.config.image_paths", &e.value)
        }
        ("plugin.qemu.config", "args_allowlist") => {
            out.qemu_args_allowlist = Some(r.strings("plugin.qemu.config.args_allowlist", &e.value))
        }
        _ => r.unknown(config, e),
    }
}
