//! Nomad's JSON job format (`{"Job": {...}}`, PascalCase keys, durations in nanoseconds, as
//! `nomad job inspect` prints it) converted to the canonical shape, field by field.
//!
//! Nomad's bookkeeping fields (indexes, status, submit time, ...) are dropped; other fields
//! Nomos does not act on go to the `ignored` map of the object that has one, with a warning.
//! The field tables serve the other direction too: [`crate::nomad_out`] walks them backwards.

use serde_json::{Map, Value};

use crate::diag::Diagnostic;
use crate::fieldpath::{index, join, PosMap};
use crate::frontend::RawJob;

/// How one field converts. The tables below are read in both directions: Nomad → canonical
/// here, canonical → Nomad in [`crate::nomad_out`].
#[derive(Clone, Copy)]
pub(crate) enum K {
    /// Copy as is.
    Plain,
    /// Copy as is; the canonical form leaves the field out while it holds this zero value,
    /// which Nomad writes out.
    Omitted(Zero),
    One(Table),
    Many(Table),
    /// An object of objects keyed by name (a group's `Volumes`), each converted with the table.
    Keyed(Table),
    /// Nomad's `Spec` string → `crons` list (written back for a single cron).
    SpecToList,
    /// Nomad's `Specs` list → `crons` list (written back for several crons: Nomad accepts
    /// `Spec` or `Specs`, not both).
    Specs,
    /// Reserved/dynamic ports.
    Ports,
}

/// Nomad's field name, the canonical field name, and how it converts.
pub(crate) type Table = &'static [(&'static str, &'static str, K)];

/// The zero value of a field that the canonical form omits while unset.
#[derive(Clone, Copy)]
pub(crate) enum Zero {
    False,
    Int,
    Str,
}

const CONSTRAINT: Table = &[
    ("LTarget", "attribute", K::Plain),
    ("RTarget", "value", K::Plain),
    ("Operand", "operator", K::Plain),
];
const AFFINITY: Table = &[
    ("LTarget", "attribute", K::Plain),
    ("RTarget", "value", K::Plain),
    ("Operand", "operator", K::Plain),
    ("Weight", "weight", K::Plain),
];
const SPREAD_TARGET: Table = &[
    ("Value", "value", K::Plain),
    ("Percent", "percent", K::Plain),
];
const SPREAD: Table = &[
    ("Attribute", "attribute", K::Plain),
    ("Weight", "weight", K::Plain),
    ("SpreadTarget", "targets", K::Many(SPREAD_TARGET)),
];
const UPDATE: Table = &[
    ("MaxParallel", "max_parallel", K::Plain),
    ("HealthCheck", "health_check", K::Plain),
    ("MinHealthyTime", "min_healthy_time_ns", K::Plain),
    ("HealthyDeadline", "healthy_deadline_ns", K::Plain),
    ("ProgressDeadline", "progress_deadline_ns", K::Plain),
    ("AutoRevert", "auto_revert", K::Plain),
    ("AutoPromote", "auto_promote", K::Plain),
    ("Canary", "canary", K::Plain),
    ("Stagger", "stagger_ns", K::Plain),
];
const MIGRATE: Table = &[
    ("MaxParallel", "max_parallel", K::Plain),
    ("HealthCheck", "health_check", K::Plain),
    ("MinHealthyTime", "min_healthy_time_ns", K::Plain),
    ("HealthyDeadline", "healthy_deadline_ns", K::Plain),
];
const PERIODIC: Table = &[
    ("Spec", "crons", K::SpecToList),
    ("Specs", "crons", K::Specs),
    ("TimeZone", "time_zone", K::Plain),
    ("ProhibitOverlap", "prohibit_overlap", K::Plain),
    ("Enabled", "enabled", K::Plain),
];
const PARAM: Table = &[
    ("Payload", "payload", K::Plain),
    ("MetaRequired", "meta_required", K::Plain),
    ("MetaOptional", "meta_optional", K::Plain),
];
const RESTART: Table = &[
    ("Attempts", "attempts", K::Plain),
    ("Interval", "interval_ns", K::Plain),
    ("Delay", "delay_ns", K::Plain),
    ("Mode", "mode", K::Plain),
    ("RenderTemplates", "render_templates", K::Plain),
];
const RESCHEDULE: Table = &[
    ("Attempts", "attempts", K::Plain),
    ("Interval", "interval_ns", K::Plain),
    ("Delay", "delay_ns", K::Plain),
    ("DelayFunction", "delay_function", K::Plain),
    ("MaxDelay", "max_delay_ns", K::Plain),
    ("Unlimited", "unlimited", K::Plain),
];
const DISCONNECT: Table = &[
    ("LostAfter", "lost_after_ns", K::Plain),
    ("Replace", "replace", K::Plain),
    ("Reconcile", "reconcile", K::Plain),
    ("StopOnClientAfter", "stop_on_client_after_ns", K::Plain),
];
const DISK: Table = &[
    ("SizeMB", "size_mb", K::Plain),
    ("Sticky", "sticky", K::Plain),
    ("Migrate", "migrate", K::Plain),
];
const NETWORK: Table = &[
    ("Mode", "mode", K::Plain),
    ("Hostname", "hostname", K::Plain),
    ("MBits", "mbits", K::Plain),
    ("ReservedPorts", "ports", K::Ports),
    ("DynamicPorts", "ports", K::Ports),
    ("DNS", "dns", K::Plain),
    ("CNI", "cni", K::One(CNI)),
];
const CNI: Table = &[("Args", "args", K::Plain)];
const CHECK: Table = &[
    ("Name", "name", K::Plain),
    ("Type", "type", K::Plain),
    ("PortLabel", "port", K::Plain),
    ("Path", "path", K::Plain),
    ("Method", "method", K::Plain),
    ("Protocol", "protocol", K::Plain),
    ("Command", "command", K::Plain),
    ("Args", "args", K::Plain),
    ("Interval", "interval_ns", K::Plain),
    ("Timeout", "timeout_ns", K::Plain),
    ("Header", "header", K::Plain),
    ("TLSSkipVerify", "tls_skip_verify", K::Omitted(Zero::False)),
    (
        "SuccessBeforePassing",
        "success_before_passing",
        K::Omitted(Zero::Int),
    ),
    (
        "FailuresBeforeCritical",
        "failures_before_critical",
        K::Omitted(Zero::Int),
    ),
    ("OnUpdate", "on_update", K::Omitted(Zero::Str)),
    ("CheckRestart", "check_restart", K::One(CHECK_RESTART)),
    (
        "FailuresBeforeWarning",
        "failures_before_warning",
        K::Omitted(Zero::Int),
    ),
    ("GRPCService", "grpc_service", K::Omitted(Zero::Str)),
    ("GRPCUseTLS", "grpc_use_tls", K::Omitted(Zero::False)),
    ("TLSServerName", "tls_server_name", K::Omitted(Zero::Str)),
];
const CHECK_RESTART: Table = &[
    ("Limit", "limit", K::Plain),
    ("Grace", "grace_ns", K::Plain),
    ("IgnoreWarnings", "ignore_warnings", K::Plain),
];
const SERVICE: Table = &[
    ("Name", "name", K::Plain),
    ("PortLabel", "port", K::Plain),
    ("Provider", "provider", K::Plain),
    ("Tags", "tags", K::Plain),
    ("CanaryTags", "canary_tags", K::Plain),
    ("AddressMode", "address_mode", K::Plain),
    ("Checks", "checks", K::Many(CHECK)),
    ("Meta", "meta", K::Plain),
    ("CheckRestart", "check_restart", K::One(CHECK_RESTART)),
];
const DEVICE: Table = &[
    ("Name", "name", K::Plain),
    ("Count", "count", K::Plain),
    ("Constraints", "constraints", K::Many(CONSTRAINT)),
    ("Affinities", "affinities", K::Many(AFFINITY)),
];
const RESOURCES: Table = &[
    ("CPU", "cpu", K::Plain),
    ("Cores", "cores", K::Plain),
    ("MemoryMB", "memory_mb", K::Plain),
    ("MemoryMaxMB", "memory_max_mb", K::Plain),
    ("DiskMB", "disk_mb", K::Plain),
    ("Devices", "devices", K::Many(DEVICE)),
    ("Networks", "networks", K::Many(NETWORK)),
];
const ARTIFACT: Table = &[
    ("GetterSource", "source", K::Plain),
    ("RelativeDest", "destination", K::Plain),
    ("GetterMode", "mode", K::Plain),
    ("GetterOptions", "options", K::Plain),
    ("GetterHeaders", "headers", K::Plain),
];
const TEMPLATE: Table = &[
    ("EmbeddedTmpl", "data", K::Plain),
    ("SourcePath", "source", K::Plain),
    ("DestPath", "destination", K::Plain),
    ("Envvars", "env", K::Plain),
    ("ChangeMode", "change_mode", K::Plain),
    ("ChangeSignal", "change_signal", K::Plain),
    ("Perms", "perms", K::Plain),
    ("LeftDelim", "left_delimiter", K::Plain),
    ("RightDelim", "right_delimiter", K::Plain),
    (
        "ErrMissingKey",
        "error_on_missing_key",
        K::Omitted(Zero::False),
    ),
    ("Splay", "splay_ns", K::Plain),
    ("Wait", "wait", K::One(TEMPLATE_WAIT)),
    ("Uid", "uid", K::Plain),
    ("Gid", "gid", K::Plain),
    ("ChangeScript", "change_script", K::One(CHANGE_SCRIPT)),
];
const CHANGE_SCRIPT: Table = &[
    ("Command", "command", K::Plain),
    ("Args", "args", K::Plain),
    ("Timeout", "timeout_ns", K::Plain),
    ("FailOnError", "fail_on_error", K::Plain),
];
const TEMPLATE_WAIT: Table = &[("Min", "min_ns", K::Plain), ("Max", "max_ns", K::Plain)];
const IDENTITY: Table = &[
    ("Name", "name", K::Plain),
    ("Audience", "aud", K::Plain),
    ("Env", "env", K::Plain),
    ("File", "file", K::Plain),
    ("TTL", "ttl_ns", K::Plain),
    ("ChangeMode", "change_mode", K::Plain),
    ("ChangeSignal", "change_signal", K::Plain),
];
const LIFECYCLE: Table = &[("Hook", "hook", K::Plain), ("Sidecar", "sidecar", K::Plain)];
const LOGS: Table = &[
    ("MaxFiles", "max_files", K::Plain),
    ("MaxFileSizeMB", "max_file_size_mb", K::Plain),
    ("Disabled", "disabled", K::Plain),
];
const TASK: Table = &[
    ("Name", "name", K::Plain),
    ("Driver", "driver", K::Plain),
    ("Config", "config", K::Plain),
    ("Env", "env", K::Plain),
    ("Resources", "resources", K::One(RESOURCES)),
    ("Artifacts", "artifacts", K::Many(ARTIFACT)),
    ("Templates", "templates", K::Many(TEMPLATE)),
    ("Identities", "identities", K::Many(IDENTITY)),
    ("Lifecycle", "lifecycle", K::One(LIFECYCLE)),
    ("Services", "services", K::Many(SERVICE)),
    ("Constraints", "constraints", K::Many(CONSTRAINT)),
    ("Affinities", "affinities", K::Many(AFFINITY)),
    ("KillTimeout", "kill_timeout_ns", K::Plain),
    ("KillSignal", "kill_signal", K::Plain),
    ("User", "user", K::Plain),
    ("Leader", "leader", K::Plain),
    ("LogConfig", "logs", K::One(LOGS)),
    ("Meta", "meta", K::Plain),
    ("RestartPolicy", "restart", K::One(RESTART)),
    ("ShutdownDelay", "shutdown_delay_ns", K::Plain),
    (
        "DispatchPayload",
        "dispatch_payload",
        K::One(DISPATCH_PAYLOAD),
    ),
    ("VolumeMounts", "volume_mounts", K::Many(VOLUME_MOUNT)),
];
const DISPATCH_PAYLOAD: Table = &[("File", "file", K::Plain)];
const VOLUME: Table = &[
    ("Name", "name", K::Plain),
    ("Type", "type", K::Plain),
    ("Source", "source", K::Plain),
    ("ReadOnly", "read_only", K::Plain),
];
const VOLUME_MOUNT: Table = &[
    ("Volume", "volume", K::Plain),
    ("Destination", "destination", K::Plain),
    ("ReadOnly", "read_only", K::Plain),
    ("PropagationMode", "propagation_mode", K::Plain),
];
const GROUP: Table = &[
    ("Name", "name", K::Plain),
    ("Count", "count", K::Plain),
    ("Constraints", "constraints", K::Many(CONSTRAINT)),
    ("Affinities", "affinities", K::Many(AFFINITY)),
    ("Spreads", "spreads", K::Many(SPREAD)),
    ("Networks", "networks", K::Many(NETWORK)),
    ("Services", "services", K::Many(SERVICE)),
    ("RestartPolicy", "restart", K::One(RESTART)),
    ("ReschedulePolicy", "reschedule", K::One(RESCHEDULE)),
    ("Migrate", "migrate", K::One(MIGRATE)),
    ("Update", "update", K::One(UPDATE)),
    ("Disconnect", "disconnect", K::One(DISCONNECT)),
    ("EphemeralDisk", "ephemeral_disk", K::One(DISK)),
    ("Volumes", "volumes", K::Keyed(VOLUME)),
    ("Meta", "meta", K::Plain),
    ("Tasks", "tasks", K::Many(TASK)),
    ("ShutdownDelay", "shutdown_delay_ns", K::Plain),
    (
        "StopAfterClientDisconnect",
        "stop_after_client_disconnect_ns",
        K::Plain,
    ),
    ("MaxClientDisconnect", "max_client_disconnect_ns", K::Plain),
    ("MaxRunDuration", "max_run_duration_ns", K::Plain),
];
pub(crate) const JOB: Table = &[
    ("ID", "id", K::Plain),
    ("Name", "name", K::Plain),
    ("Namespace", "namespace", K::Plain),
    ("Region", "region", K::Plain),
    ("Datacenters", "datacenters", K::Plain),
    ("NodePool", "node_pool", K::Plain),
    ("Type", "type", K::Plain),
    ("Priority", "priority", K::Plain),
    ("AllAtOnce", "all_at_once", K::Plain),
    ("Meta", "meta", K::Plain),
    ("Constraints", "constraints", K::Many(CONSTRAINT)),
    ("Affinities", "affinities", K::Many(AFFINITY)),
    ("Spreads", "spreads", K::Many(SPREAD)),
    ("Update", "update", K::One(UPDATE)),
    ("Periodic", "periodic", K::One(PERIODIC)),
    ("ParameterizedJob", "parameterized", K::One(PARAM)),
    ("Reschedule", "reschedule", K::One(RESCHEDULE)),
    ("Migrate", "migrate", K::One(MIGRATE)),
    ("TaskGroups", "groups", K::Many(GROUP)),
    ("Stop", "stop", K::Plain),
];

/// Nomad's bookkeeping fields, dropped without a warning.
const BOOKKEEPING: &[&str] = &[
    "Status",
    "StatusDescription",
    "Stable",
    "Version",
    "SubmitTime",
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
    "ParentID",
    "Dispatched",
    "DispatchIdempotencyToken",
    "Payload",
    "NomadTokenID",
    "VaultToken",
    "ConsulToken",
    "VaultNamespace",
    "ConsulNamespace",
    "VersionTag",
    "SpecType",
    "Sticky",
    "Canonicalized",
    "IP",
    "CIDR",
    "Device",
    // What Nomos adds to a job it answers (`GET /v1/job/{id}`), so a job read and sent back
    // registers unchanged.
    "NomosStatus",
    "InvalidSpec",
];

struct Conv<'a> {
    file: &'a str,
    src: &'a PosMap,
    pos: PosMap,
    warnings: Vec<Diagnostic>,
    errors: Vec<Diagnostic>,
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

impl Conv<'_> {
    fn object(&mut self, v: &Value, spath: &str, mpath: &str, table: &[(&str, &str, K)]) -> Value {
        let Value::Object(obj) = v else {
            if !v.is_null() {
                self.errors.push(Diagnostic::error(
                    self.file,
                    self.src.lookup(spath),
                    format!("{spath}: expected an object"),
                ));
            }
            return Value::Null;
        };
        self.pos.insert(mpath, self.src.lookup(spath));
        let mut out = Map::new();
        let mut ignored = Map::new();
        for (k, val) in obj {
            let sp = join(spath, k);
            let Some((_, target, kind)) = table.iter().find(|(n, _, _)| n == k) else {
                if !BOOKKEEPING.contains(&k.as_str()) && !is_empty(val) {
                    ignored.insert(snake_case(k), val.clone());
                    self.warnings.push(Diagnostic::warning(
                        self.file,
                        self.src.lookup(&sp),
                        format!(
                            "Nomad JSON field \"{k}\" is not used by Nomos and will be ignored"
                        ),
                    ));
                }
                continue;
            };
            if val.is_null() {
                continue;
            }
            let mp = join(mpath, target);
            self.pos.insert(mp.clone(), self.src.lookup(&sp));
            let converted = match kind {
                K::Plain | K::Omitted(_) | K::Specs => val.clone(),
                K::One(t) => self.object(val, &sp, &mp, t),
                K::Many(t) => match val {
                    Value::Array(items) => Value::Array(
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, it)| self.object(it, &index(&sp, i), &index(&mp, i), t))
                            .collect(),
                    ),
                    _ => val.clone(),
                },
                K::Keyed(t) => match val {
                    Value::Object(items) => Value::Object(
                        items
                            .iter()
                            .map(|(name, it)| {
                                (
                                    name.clone(),
                                    self.object(it, &join(&sp, name), &join(&mp, name), t),
                                )
                            })
                            .collect(),
                    ),
                    _ => val.clone(),
                },
                K::SpecToList => {
                    if is_empty(val) {
                        continue;
                    }
                    Value::Array(vec![val.clone()])
                }
                K::Ports => {
                    let mut ports = match out.remove("ports") {
                        Some(Value::Array(p)) => p,
                        _ => Vec::new(),
                    };
                    let dynamic = k == "DynamicPorts";
                    if let Value::Array(items) = val {
                        for (i, p) in items.iter().enumerate() {
                            let pp = index(&mp, ports.len());
                            self.pos.insert(pp, self.src.lookup(&index(&sp, i)));
                            let mut m = Map::new();
                            m.insert(
                                "label".into(),
                                p.get("Label")
                                    .cloned()
                                    .unwrap_or(Value::String(String::new())),
                            );
                            let stat = if dynamic {
                                Value::from(0)
                            } else {
                                p.get("Value").cloned().unwrap_or(Value::from(0))
                            };
                            m.insert("static".into(), stat);
                            m.insert(
                                "to".into(),
                                p.get("To")
                                    .cloned()
                                    .filter(|v| v.as_i64() != Some(-1))
                                    .unwrap_or(Value::from(0)),
                            );
                            m.insert(
                                "host_network".into(),
                                p.get("HostNetwork")
                                    .cloned()
                                    .filter(|v| v.as_str() != Some("default"))
                                    .unwrap_or(Value::String(String::new())),
                            );
                            ports.push(Value::Object(m));
                        }
                    }
                    Value::Array(ports)
                }
            };
            if target == &"crons" && out.contains_key("crons") {
                continue;
            }
            out.insert(target.to_string(), converted);
        }
        let has_ignored = std::ptr::eq(table, JOB)
            || std::ptr::eq(table, GROUP)
            || std::ptr::eq(table, TASK)
            || std::ptr::eq(table, SERVICE)
            || std::ptr::eq(table, CHECK);
        if has_ignored && !ignored.is_empty() {
            out.insert("ignored".into(), Value::Object(ignored));
        }
        Value::Object(out)
    }
}

/// `CSIPluginConfig` → `csi_plugin_config`, `Vault` → `vault` (keys of `ignored` follow the
/// HCL names, as they do for HCL files).
fn snake_case(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower = i > 0 && chars[i - 1].is_lowercase();
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if i > 0 && (prev_lower || (next_lower && chars[i - 1].is_uppercase())) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

/// Converts a Nomad JSON document (`{"Job": {...}}` or the bare job object).
pub(crate) fn convert(
    file: &str,
    value: &Value,
    src: &PosMap,
    warnings: &mut Vec<Diagnostic>,
) -> Result<RawJob, Vec<Diagnostic>> {
    let (job, spath) = match value.get("Job") {
        Some(j) => (j, "Job"),
        None => (value, ""),
    };
    let mut c = Conv {
        file,
        src,
        pos: PosMap::default(),
        warnings: Vec::new(),
        errors: Vec::new(),
    };
    let mut out = c.object(job, spath, "", JOB);
    // Nomad JSON always carries Name; Nomos keys jobs by ID.
    if let Value::Object(m) = &mut out {
        if !m.contains_key("id") {
            if let Some(name) = m.get("name").cloned() {
                m.insert("id".into(), name);
            }
        }
        if let Some(Value::Array(groups)) = m.get_mut("groups") {
            for g in groups {
                move_resource_networks(g);
            }
        }
    }
    warnings.append(&mut c.warnings);
    if c.errors.is_empty() {
        Ok(RawJob {
            value: out,
            pos: c.pos,
            failed: Vec::new(),
        })
    } else {
        Err(c.errors)
    }
}

/// Networks under a task's resources (old Nomad) belong to the group.
pub(crate) fn move_resource_networks(group: &mut Value) {
    let Some(g) = group.as_object_mut() else {
        return;
    };
    let mut moved = Vec::new();
    if let Some(Value::Array(tasks)) = g.get_mut("tasks") {
        for t in tasks {
            if let Some(Value::Object(res)) = t.get_mut("resources") {
                if let Some(Value::Array(nets)) = res.remove("networks") {
                    moved.extend(nets);
                }
            }
        }
    }
    if !moved.is_empty() {
        let nets = g
            .entry("networks")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(n) = nets {
            n.extend(moved);
        }
    }
}
