//! The Nomad job specification as tables: for each block, its attributes and nested blocks,
//! the canonical field each maps to, and the blocks Nomos recognises but ignores.

/// How one HCL attribute or block maps into the canonical shape.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Str,
    /// Non-negative whole number.
    UInt,
    /// Whole number, may be negative.
    Int,
    /// 0..=65535.
    Port,
    Bool,
    /// Duration string → nanoseconds.
    Dur,
    StrList,
    /// Map of strings (block or attribute).
    StrMap,
    /// Any value, kept as given (driver `config`, `dns`).
    Free,
    Block(&'static Sch),
    Blocks(&'static Sch),
    /// `volume "name" { ... }` → map keyed by label, each body decoded against the schema.
    LabeledMap(&'static Sch),
    /// Recognised, not acted on: kept in `ignored`, warned.
    Ignored,
    /// Recognised, meaningless for Nomos: dropped silently.
    Dropped,
}

use Kind::*;

/// A block's schema.
#[derive(Debug)]
pub(crate) struct Sch {
    pub name: &'static str,
    /// The canonical field the block's label goes to.
    pub label: Option<&'static str>,
    pub fields: &'static [(&'static str, &'static str, Kind)],
    /// Whether the canonical object has an `ignored` map.
    pub has_ignored: bool,
}

impl Sch {
    pub fn field(&self, name: &str) -> Option<&(&'static str, &'static str, Kind)> {
        self.fields.iter().find(|(n, _, _)| *n == name)
    }
}

pub(crate) static CONSTRAINT: Sch = Sch {
    name: "constraint",
    label: None,
    has_ignored: false,
    fields: &[
        ("attribute", "attribute", Str),
        ("operator", "operator", Str),
        ("value", "value", Str),
        // HCL1-era shorthands, folded into operator/value by the decoder.
        ("distinct_hosts", "_distinct_hosts", Str),
        ("distinct_property", "_distinct_property", Str),
        ("regexp", "_regexp", Str),
        ("version", "_version", Str),
        ("semver", "_semver", Str),
        ("set_contains", "_set_contains", Str),
        ("set_contains_any", "_set_contains_any", Str),
        ("set_contains_all", "_set_contains_all", Str),
    ],
};

pub(crate) static AFFINITY: Sch = Sch {
    name: "affinity",
    label: None,
    has_ignored: false,
    fields: &[
        ("attribute", "attribute", Str),
        ("operator", "operator", Str),
        ("value", "value", Str),
        ("weight", "weight", Int),
        ("regexp", "_regexp", Str),
        ("version", "_version", Str),
        ("semver", "_semver", Str),
        ("set_contains", "_set_contains", Str),
        ("set_contains_any", "_set_contains_any", Str),
        ("set_contains_all", "_set_contains_all", Str),
    ],
};

pub(crate) static TARGET: Sch = Sch {
    name: "target",
    label: Some("value"),
    has_ignored: false,
    fields: &[("value", "value", Str), ("percent", "percent", UInt)],
};

pub(crate) static SPREAD: Sch = Sch {
    name: "spread",
    label: None,
    has_ignored: false,
    fields: &[
        ("attribute", "attribute", Str),
        ("weight", "weight", Int),
        ("target", "targets", Blocks(&TARGET)),
    ],
};

pub(crate) static UPDATE: Sch = Sch {
    name: "update",
    label: None,
    has_ignored: false,
    fields: &[
        ("max_parallel", "max_parallel", UInt),
        ("health_check", "health_check", Str),
        ("min_healthy_time", "min_healthy_time_ns", Dur),
        ("healthy_deadline", "healthy_deadline_ns", Dur),
        ("progress_deadline", "progress_deadline_ns", Dur),
        ("auto_revert", "auto_revert", Bool),
        ("auto_promote", "auto_promote", Bool),
        ("canary", "canary", UInt),
        ("stagger", "stagger_ns", Dur),
    ],
};

pub(crate) static MIGRATE: Sch = Sch {
    name: "migrate",
    label: None,
    has_ignored: false,
    fields: &[
        ("max_parallel", "max_parallel", UInt),
        ("health_check", "health_check", Str),
        ("min_healthy_time", "min_healthy_time_ns", Dur),
        ("healthy_deadline", "healthy_deadline_ns", Dur),
    ],
};

pub(crate) static PERIODIC: Sch = Sch {
    name: "periodic",
    label: None,
    has_ignored: false,
    fields: &[
        ("cron", "_cron", Str),
        ("crons", "crons", StrList),
        ("time_zone", "time_zone", Str),
        ("prohibit_overlap", "prohibit_overlap", Bool),
        ("enabled", "enabled", Bool),
    ],
};

pub(crate) static PARAMETERIZED: Sch = Sch {
    name: "parameterized",
    label: None,
    has_ignored: false,
    fields: &[
        ("payload", "payload", Str),
        ("meta_required", "meta_required", StrList),
        ("meta_optional", "meta_optional", StrList),
    ],
};

pub(crate) static DISPATCH_PAYLOAD: Sch = Sch {
    name: "dispatch_payload",
    label: None,
    has_ignored: false,
    fields: &[("file", "file", Str)],
};

pub(crate) static RESTART: Sch = Sch {
    name: "restart",
    label: None,
    has_ignored: false,
    fields: &[
        ("attempts", "attempts", UInt),
        ("interval", "interval_ns", Dur),
        ("delay", "delay_ns", Dur),
        ("mode", "mode", Str),
        ("render_templates", "render_templates", Bool),
    ],
};

pub(crate) static RESCHEDULE: Sch = Sch {
    name: "reschedule",
    label: None,
    has_ignored: false,
    fields: &[
        ("attempts", "attempts", UInt),
        ("interval", "interval_ns", Dur),
        ("delay", "delay_ns", Dur),
        ("delay_function", "delay_function", Str),
        ("max_delay", "max_delay_ns", Dur),
        ("unlimited", "unlimited", Bool),
    ],
};

pub(crate) static DISCONNECT: Sch = Sch {
    name: "disconnect",
    label: None,
    has_ignored: false,
    fields: &[
        ("lost_after", "lost_after_ns", Dur),
        ("replace", "replace", Bool),
        ("reconcile", "reconcile", Str),
        ("stop_on_client_after", "stop_on_client_after_ns", Dur),
    ],
};

pub(crate) static EPHEMERAL_DISK: Sch = Sch {
    name: "ephemeral_disk",
    label: None,
    has_ignored: false,
    fields: &[
        ("size", "size_mb", UInt),
        ("sticky", "sticky", Bool),
        ("migrate", "migrate", Bool),
    ],
};

pub(crate) static PORT: Sch = Sch {
    name: "port",
    label: Some("label"),
    has_ignored: false,
    fields: &[
        ("static", "static", Port),
        // `-1` (Nomad: the same as the allocated port) is folded to 0 by the decoder.
        ("to", "to", Int),
        ("host_network", "host_network", Str),
        ("ignore_collision", "", Dropped),
    ],
};

pub(crate) static CNI: Sch = Sch {
    name: "cni",
    label: None,
    has_ignored: false,
    fields: &[("args", "args", StrMap)],
};

pub(crate) static NETWORK: Sch = Sch {
    name: "network",
    label: None,
    has_ignored: false,
    fields: &[
        ("mode", "mode", Str),
        ("hostname", "hostname", Str),
        ("mbits", "mbits", UInt),
        ("port", "ports", Blocks(&PORT)),
        ("dns", "dns", Free),
        ("cni", "cni", Block(&CNI)),
        // Nomad 0.1's port lists, folded into `port` blocks by the decoder.
        ("reserved_ports", "_reserved_ports", Free),
        ("dynamic_ports", "_dynamic_ports", Free),
        ("cidr", "", Dropped),
        ("device", "", Dropped),
    ],
};

pub(crate) static CHECK_RESTART: Sch = Sch {
    name: "check_restart",
    label: None,
    has_ignored: false,
    fields: &[
        ("limit", "limit", UInt),
        ("grace", "grace_ns", Dur),
        ("ignore_warnings", "ignore_warnings", Bool),
    ],
};

pub(crate) static CHECK: Sch = Sch {
    name: "check",
    label: None,
    has_ignored: true,
    fields: &[
        ("name", "name", Str),
        ("type", "type", Str),
        ("port", "port", Str),
        ("path", "path", Str),
        ("method", "method", Str),
        ("protocol", "protocol", Str),
        ("command", "command", Str),
        ("args", "args", StrList),
        ("interval", "interval_ns", Dur),
        ("timeout", "timeout_ns", Dur),
        ("header", "header", Free),
        ("tls_skip_verify", "tls_skip_verify", Bool),
        ("success_before_passing", "success_before_passing", UInt),
        ("failures_before_critical", "failures_before_critical", UInt),
        ("on_update", "on_update", Str),
        ("check_restart", "check_restart", Block(&CHECK_RESTART)),
        ("grpc_service", "grpc_service", Str),
        ("grpc_use_tls", "grpc_use_tls", Bool),
        ("tls_server_name", "tls_server_name", Str),
        ("failures_before_warning", "failures_before_warning", UInt),
        ("initial_status", "", Ignored),
        ("body", "", Ignored),
        ("expose", "", Ignored),
        ("task", "", Ignored),
        ("address_mode", "", Ignored),
        ("notes", "", Ignored),
    ],
};

pub(crate) static SERVICE: Sch = Sch {
    name: "service",
    label: None,
    has_ignored: true,
    fields: &[
        ("name", "name", Str),
        ("port", "port", Str),
        ("provider", "provider", Str),
        ("tags", "tags", StrList),
        ("canary_tags", "canary_tags", StrList),
        ("address_mode", "address_mode", Str),
        ("check", "checks", Blocks(&CHECK)),
        ("meta", "meta", StrMap),
        ("check_restart", "check_restart", Block(&CHECK_RESTART)),
        ("connect", "", Ignored),
        ("canary_meta", "", Ignored),
        ("tagged_addresses", "", Ignored),
        ("enable_tag_override", "", Ignored),
        ("task", "", Ignored),
        ("on_update", "", Ignored),
        ("identity", "", Ignored),
        ("cluster", "", Ignored),
        ("weights", "", Ignored),
        ("address", "", Ignored),
        ("kind", "", Ignored),
    ],
};

pub(crate) static DEVICE: Sch = Sch {
    name: "device",
    label: Some("name"),
    has_ignored: false,
    fields: &[
        ("count", "count", UInt),
        ("constraint", "constraints", Blocks(&CONSTRAINT)),
        ("affinity", "affinities", Blocks(&AFFINITY)),
    ],
};

pub(crate) static RESOURCES: Sch = Sch {
    name: "resources",
    label: None,
    has_ignored: false,
    fields: &[
        ("cpu", "cpu", UInt),
        ("cores", "cores", UInt),
        ("memory", "memory_mb", UInt),
        // `-1`: no hard limit.
        ("memory_max", "memory_max_mb", Int),
        ("disk", "disk_mb", UInt),
        ("device", "devices", Blocks(&DEVICE)),
        ("network", "networks", Blocks(&NETWORK)),
        ("iops", "", Dropped),
        ("numa", "", Dropped),
        ("secrets", "", Dropped),
    ],
};

pub(crate) static ARTIFACT: Sch = Sch {
    name: "artifact",
    label: None,
    has_ignored: false,
    fields: &[
        ("source", "source", Str),
        ("destination", "destination", Str),
        ("mode", "mode", Str),
        ("options", "options", StrMap),
        ("headers", "headers", StrMap),
        ("chown", "", Dropped),
    ],
};

pub(crate) static CHANGE_SCRIPT: Sch = Sch {
    name: "change_script",
    label: None,
    has_ignored: false,
    fields: &[
        ("command", "command", Str),
        ("args", "args", StrList),
        ("timeout", "timeout_ns", Dur),
        ("fail_on_error", "fail_on_error", Bool),
    ],
};

pub(crate) static TEMPLATE: Sch = Sch {
    name: "template",
    label: None,
    has_ignored: false,
    fields: &[
        ("data", "data", Str),
        ("source", "source", Str),
        ("destination", "destination", Str),
        ("env", "env", Bool),
        ("change_mode", "change_mode", Str),
        ("change_signal", "change_signal", Str),
        ("perms", "perms", Str),
        ("left_delimiter", "left_delimiter", Str),
        ("right_delimiter", "right_delimiter", Str),
        ("error_on_missing_key", "error_on_missing_key", Bool),
        ("splay", "splay_ns", Dur),
        ("wait", "wait", Block(&TEMPLATE_WAIT)),
        ("uid", "uid", Int),
        ("gid", "gid", Int),
        ("change_script", "change_script", Block(&CHANGE_SCRIPT)),
        ("once", "", Dropped),
        ("vault_grace", "", Dropped),
    ],
};

pub(crate) static TEMPLATE_WAIT: Sch = Sch {
    name: "wait",
    label: None,
    has_ignored: false,
    fields: &[("min", "min_ns", Dur), ("max", "max_ns", Dur)],
};

pub(crate) static IDENTITY: Sch = Sch {
    name: "identity",
    label: None,
    has_ignored: false,
    fields: &[
        ("name", "name", Str),
        ("aud", "aud", StrList),
        ("env", "env", Bool),
        ("file", "file", Bool),
        ("ttl", "ttl_ns", Dur),
        ("change_mode", "change_mode", Str),
        ("change_signal", "change_signal", Str),
        ("filepath", "", Dropped),
    ],
};

pub(crate) static LIFECYCLE: Sch = Sch {
    name: "lifecycle",
    label: None,
    has_ignored: false,
    fields: &[("hook", "hook", Str), ("sidecar", "sidecar", Bool)],
};

pub(crate) static LOGS: Sch = Sch {
    name: "logs",
    label: None,
    has_ignored: false,
    fields: &[
        ("max_files", "max_files", UInt),
        ("max_file_size", "max_file_size_mb", UInt),
        ("disabled", "disabled", Bool),
        ("enabled", "_enabled", Bool),
    ],
};

pub(crate) static VOLUME: Sch = Sch {
    name: "volume",
    label: Some("name"),
    has_ignored: false,
    fields: &[
        ("type", "type", Str),
        ("source", "source", Str),
        ("read_only", "read_only", Bool),
        // CSI and dynamic host volume settings: warned and dropped (Nomos mounts static host
        // volumes only).
        ("access_mode", "", Ignored),
        ("attachment_mode", "", Ignored),
        ("mount_options", "", Ignored),
        ("per_alloc", "", Ignored),
        ("sticky", "", Ignored),
    ],
};

pub(crate) static VOLUME_MOUNT: Sch = Sch {
    name: "volume_mount",
    label: None,
    has_ignored: false,
    fields: &[
        ("volume", "volume", Str),
        ("destination", "destination", Str),
        ("read_only", "read_only", Bool),
        ("propagation_mode", "propagation_mode", Str),
        ("selinux_label", "", Ignored),
    ],
};

pub(crate) static TASK: Sch = Sch {
    name: "task",
    label: Some("name"),
    has_ignored: true,
    fields: &[
        ("driver", "driver", Str),
        ("config", "config", Free),
        ("env", "env", StrMap),
        ("resources", "resources", Block(&RESOURCES)),
        ("artifact", "artifacts", Blocks(&ARTIFACT)),
        ("template", "templates", Blocks(&TEMPLATE)),
        ("lifecycle", "lifecycle", Block(&LIFECYCLE)),
        ("service", "services", Blocks(&SERVICE)),
        ("constraint", "constraints", Blocks(&CONSTRAINT)),
        ("affinity", "affinities", Blocks(&AFFINITY)),
        ("kill_timeout", "kill_timeout_ns", Dur),
        ("kill_signal", "kill_signal", Str),
        ("user", "user", Str),
        ("leader", "leader", Bool),
        ("logs", "logs", Block(&LOGS)),
        ("meta", "meta", StrMap),
        ("restart", "restart", Block(&RESTART)),
        ("shutdown_delay", "shutdown_delay_ns", Dur),
        ("vault", "", Ignored),
        ("consul", "", Ignored),
        ("identity", "identities", Blocks(&IDENTITY)),
        ("csi_plugin", "", Ignored),
        (
            "dispatch_payload",
            "dispatch_payload",
            Block(&DISPATCH_PAYLOAD),
        ),
        ("scaling", "", Ignored),
        ("volume_mount", "volume_mounts", Blocks(&VOLUME_MOUNT)),
        ("kind", "", Ignored),
        ("action", "", Ignored),
        ("schedule", "", Ignored),
        ("secret", "", Ignored),
        ("template_config", "", Ignored),
    ],
};

pub(crate) static GROUP: Sch = Sch {
    name: "group",
    label: Some("name"),
    has_ignored: true,
    fields: &[
        ("count", "count", UInt),
        ("constraint", "constraints", Blocks(&CONSTRAINT)),
        ("affinity", "affinities", Blocks(&AFFINITY)),
        ("spread", "spreads", Blocks(&SPREAD)),
        ("network", "networks", Blocks(&NETWORK)),
        ("service", "services", Blocks(&SERVICE)),
        ("restart", "restart", Block(&RESTART)),
        ("reschedule", "reschedule", Block(&RESCHEDULE)),
        ("migrate", "migrate", Block(&MIGRATE)),
        ("update", "update", Block(&UPDATE)),
        ("disconnect", "disconnect", Block(&DISCONNECT)),
        ("ephemeral_disk", "ephemeral_disk", Block(&EPHEMERAL_DISK)),
        ("volume", "volumes", LabeledMap(&VOLUME)),
        ("meta", "meta", StrMap),
        ("task", "tasks", Blocks(&TASK)),
        ("shutdown_delay", "shutdown_delay_ns", Dur),
        (
            "stop_after_client_disconnect",
            "stop_after_client_disconnect_ns",
            Dur,
        ),
        ("max_client_disconnect", "max_client_disconnect_ns", Dur),
        ("max_run_duration", "max_run_duration_ns", Dur),
        ("prevent_reschedule_on_lost", "", Ignored),
        ("consul", "", Ignored),
        ("scaling", "", Ignored),
        ("vault", "", Ignored),
    ],
};

pub(crate) static JOB: Sch = Sch {
    name: "job",
    label: Some("id"),
    has_ignored: true,
    fields: &[
        ("name", "name", Str),
        ("namespace", "namespace", Str),
        ("region", "region", Str),
        ("datacenters", "datacenters", StrList),
        ("node_pool", "node_pool", Str),
        ("type", "type", Str),
        ("priority", "priority", Int),
        ("all_at_once", "all_at_once", Bool),
        // Nomos extension: the labels of a manifest's metadata.
        ("labels", "labels", StrMap),
        ("meta", "meta", StrMap),
        ("constraint", "constraints", Blocks(&CONSTRAINT)),
        ("affinity", "affinities", Blocks(&AFFINITY)),
        ("spread", "spreads", Blocks(&SPREAD)),
        ("update", "update", Block(&UPDATE)),
        ("periodic", "periodic", Block(&PERIODIC)),
        ("parameterized", "parameterized", Block(&PARAMETERIZED)),
        ("reschedule", "reschedule", Block(&RESCHEDULE)),
        ("migrate", "migrate", Block(&MIGRATE)),
        ("group", "groups", Blocks(&GROUP)),
        // A task directly in the job: the decoder wraps it in a group of the same name.
        ("task", "_tasks", Blocks(&TASK)),
        ("vault", "", Ignored),
        ("consul", "", Ignored),
        ("ui", "", Ignored),
        ("multiregion", "", Ignored),
        ("vault_token", "", Ignored),
        ("consul_token", "", Ignored),
        ("id", "", Ignored),
        ("version_tag", "", Ignored),
    ],
};
