//! Validation of a defaulted [`Job`]: every problem found, each with the canonical field path
//! (`groups[0].tasks[1].driver`) that the front end's position map turns into `file:line:col`.

use std::collections::{HashMap, HashSet};

use crate::diag::Severity;
use crate::fieldpath::{index, join};
use crate::job::*;
use crate::names;

/// One validation finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub severity: Severity,
    pub message: String,
}

/// Drivers Nomos runs; any other driver is accepted with a warning.
pub const KNOWN_DRIVERS: &[&str] = &["docker", "exec", "java", "qemu", "raw_exec"];

/// Constraint operators, with Nomad's spelling.
pub const OPERATORS: &[&str] = &[
    "=",
    "==",
    "is",
    "!=",
    "not",
    ">",
    ">=",
    "<",
    "<=",
    "regexp",
    "version",
    "semver",
    "set_contains",
    "set_contains_all",
    "set_contains_any",
    "is_set",
    "is_not_set",
    "distinct_hosts",
    "distinct_property",
];

#[derive(Default)]
struct V {
    issues: Vec<Issue>,
}

impl V {
    fn err(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.issues.push(Issue {
            path: path.into(),
            severity: Severity::Error,
            message: msg.into(),
        });
    }
    fn warn(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.issues.push(Issue {
            path: path.into(),
            severity: Severity::Warning,
            message: msg.into(),
        });
    }
    fn one_of(&mut self, path: String, what: &str, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.err(
                path,
                format!(
                    "invalid {what} \"{value}\": expected one of {}",
                    quoted(allowed)
                ),
            );
        }
    }
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

pub use crate::names::MAX_NAME_BYTES;

/// Job ids, namespaces, group and task names become store key segments and path components
/// of task directories and log files ([`crate::names`] holds the rules).
fn check_names(v: &mut V, job: &Job) {
    if job.id.trim().is_empty() {
        v.err(
            "id",
            "missing job id: expected `job \"<id>\" { ... }` or `metadata.name`",
        );
    } else if let Err(why) = names::check_job_id(&job.id) {
        v.err("id", why);
    }
    if let Err(why) = names::check_display_name("job name", &job.name) {
        v.err("name", why);
    }
    if let Err(why) = names::check_namespace("namespace", &job.namespace) {
        v.err("namespace", why);
    }
}

/// Checks a job; returns errors and warnings (empty when the job is valid).
pub fn validate(job: &Job) -> Vec<Issue> {
    let mut v = V::default();
    check_names(&mut v, job);
    if !(1..=100).contains(&job.priority) {
        v.err(
            "priority",
            format!("priority must be between 1 and 100, found {}", job.priority),
        );
    }
    if job.datacenters.is_empty() {
        v.err("datacenters", "datacenters must not be empty");
    }
    check_placement(&mut v, "", &job.constraints, &job.affinities, &job.spreads);
    if let Some(u) = &job.update {
        check_update(&mut v, "update", u);
    }
    if let Some(p) = &job.periodic {
        check_periodic(&mut v, p);
        if !matches!(job.job_type, JobType::Batch | JobType::Sysbatch) {
            v.err(
                "periodic",
                format!(
                    "periodic is only for batch and sysbatch jobs, and this job's type is \"{}\"",
                    job.job_type.as_str()
                ),
            );
        }
    }
    if let Some(p) = &job.parameterized {
        if !matches!(job.job_type, JobType::Batch | JobType::Sysbatch) {
            v.err(
                "parameterized",
                format!(
                    "parameterized is only for batch and sysbatch jobs, and this job's type is \"{}\"",
                    job.job_type.as_str()
                ),
            );
        }
        v.one_of(
            "parameterized.payload".into(),
            "payload",
            &p.payload,
            &["optional", "required", "forbidden"],
        );
    }
    if let Some(r) = &job.reschedule {
        check_reschedule(&mut v, "reschedule", r);
    }
    if job.groups.is_empty() {
        v.err(
            "groups",
            format!(
                "job \"{}\" has no task groups: expected at least one `group` block",
                job.id
            ),
        );
    }
    let mut names = HashMap::new();
    for (gi, g) in job.groups.iter().enumerate() {
        let gp = index("groups", gi);
        if g.name.is_empty() {
            v.err(join(&gp, "name"), "group name must not be empty");
        } else if let Err(why) = names::check_member_name("group name", &g.name) {
            v.err(join(&gp, "name"), why);
        } else if let Some(first) = names.insert(g.name.clone(), gi) {
            v.err(
                join(&gp, "name"),
                format!(
                    "duplicate group name \"{}\" (also group #{})",
                    g.name,
                    first + 1
                ),
            );
        }
        check_group(&mut v, job, &gp, g);
    }
    let total: u64 = job.groups.iter().map(|g| u64::from(g.count)).sum();
    if let Err(why) = crate::limits::check_job_total(total) {
        v.err("groups", why);
    }
    v.issues
}

fn check_placement(v: &mut V, path: &str, cs: &[Constraint], aff: &[Affinity], spreads: &[Spread]) {
    for (i, c) in cs.iter().enumerate() {
        let p = index(&join(path, "constraints"), i);
        check_operator(v, &p, &c.operator);
        if c.attribute.is_empty() && !matches!(c.operator.as_str(), "distinct_hosts") {
            v.err(join(&p, "attribute"), "constraint is missing `attribute`");
        }
        if c.operator == "regexp" {
            if let Err(e) = check_regex(&c.value) {
                v.err(
                    join(&p, "value"),
                    format!("invalid regular expression \"{}\": {e}", c.value),
                );
            }
        }
    }
    for (i, a) in aff.iter().enumerate() {
        let p = index(&join(path, "affinities"), i);
        check_operator(v, &p, &a.operator);
        if a.weight == 0 || !(-100..=100).contains(&a.weight) {
            v.err(
                join(&p, "weight"),
                format!(
                    "affinity weight must be between -100 and 100 and not 0, found {}",
                    a.weight
                ),
            );
        }
    }
    for (i, s) in spreads.iter().enumerate() {
        let p = index(&join(path, "spreads"), i);
        if s.attribute.is_empty() {
            v.err(join(&p, "attribute"), "spread is missing `attribute`");
        }
        if !(0..=100).contains(&s.weight) {
            v.err(
                join(&p, "weight"),
                format!(
                    "spread weight must be between 0 and 100, found {}",
                    s.weight
                ),
            );
        }
        let sum: u32 = s.targets.iter().map(|t| t.percent).sum();
        if sum > 100 {
            v.err(
                join(&p, "targets"),
                format!("spread target percentages add up to {sum}, more than 100"),
            );
        }
    }
}

fn check_regex(re: &str) -> Result<(), String> {
    // A light syntax check: balanced brackets and parentheses (the agent compiles it for real).
    let mut depth: i32 = 0;
    let mut class = false;
    let mut escaped = false;
    for ch in re.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match ch {
            '\\' => escaped = true,
            '[' if !class => class = true,
            ']' if class => class = false,
            '(' if !class => depth += 1,
            ')' if !class => {
                depth -= 1;
                if depth < 0 {
                    return Err("unopened ')'".into());
                }
            }
            _ => {}
        }
    }
    if class {
        return Err("unclosed '['".into());
    }
    if depth != 0 {
        return Err("unclosed '('".into());
    }
    Ok(())
}

fn check_operator(v: &mut V, path: &str, op: &str) {
    if !OPERATORS.contains(&op) {
        let hint = crate::diag::did_you_mean(op, OPERATORS.iter().copied())
            .map(|s| format!(" (did you mean \"{s}\"?)"))
            .unwrap_or_default();
        v.err(
            join(path, "operator"),
            format!(
                "invalid constraint operator \"{op}\"{hint}: expected one of {}",
                quoted(OPERATORS)
            ),
        );
    }
}

fn check_update(v: &mut V, path: &str, u: &UpdateStrategy) {
    v.one_of(
        join(path, "health_check"),
        "health_check",
        &u.health_check,
        &["checks", "task_states", "manual"],
    );
    if u.healthy_deadline_ns > 0 && u.min_healthy_time_ns >= u.healthy_deadline_ns {
        v.err(
            join(path, "min_healthy_time_ns"),
            "min_healthy_time must be less than healthy_deadline",
        );
    }
    if u.progress_deadline_ns > 0 && u.healthy_deadline_ns > u.progress_deadline_ns {
        v.err(
            join(path, "healthy_deadline_ns"),
            "healthy_deadline must not exceed progress_deadline",
        );
    }
}

fn check_reschedule(v: &mut V, path: &str, r: &ReschedulePolicy) {
    if !r.delay_function.is_empty() {
        v.one_of(
            join(path, "delay_function"),
            "delay_function",
            &r.delay_function,
            &["constant", "exponential", "fibonacci"],
        );
    }
}

fn check_periodic(v: &mut V, p: &Periodic) {
    if p.crons.is_empty() {
        v.err("periodic.crons", "periodic block needs `cron` or `crons`");
    }
    if let Err(e) = check_time_zone(&p.time_zone) {
        v.err("periodic.time_zone", e);
    }
    for (i, c) in p.crons.iter().enumerate() {
        if let Err(e) = check_cron(c) {
            v.err(
                index("periodic.crons", i),
                format!("invalid cron expression \"{c}\": {e}"),
            );
        }
    }
}

/// Checks a periodic job's `time_zone`: an IANA zone name (`Europe/Berlin`), `UTC`, or
/// `Local` (the server's zone), as Nomad's Go `time.LoadLocation` accepts them.
pub fn check_time_zone(tz: &str) -> Result<(), String> {
    if tz.is_empty() || tz == "UTC" || tz == "Local" {
        return Ok(());
    }
    jiff::tz::TimeZone::get(tz).map(|_| ()).map_err(|_| {
        format!("unknown time zone \"{tz}\": expected an IANA name such as \"Europe/Berlin\", \"UTC\" or \"Local\"")
    })
}

/// Checks a cron expression as Nomad reads it ([`crate::cron`]: 5 fields, 6 with a year, 7
/// with a second and a year, or `@daily`-style shortcuts).
pub fn check_cron(expr: &str) -> Result<(), String> {
    crate::cron::parse(expr).map(|_| ())
}

fn check_group(v: &mut V, job: &Job, gp: &str, g: &TaskGroup) {
    check_placement(v, gp, &g.constraints, &g.affinities, &g.spreads);
    check_group_policies(v, job, gp, g);
    if let Err(why) = crate::limits::check_count(u64::from(g.count)) {
        v.err(join(gp, "count"), why);
    }
    if (job.job_type == JobType::System || job.job_type == JobType::Sysbatch) && g.count > 1 {
        v.warn(
            join(gp, "count"),
            format!(
                "count {} is ignored for {:?} jobs: they run one allocation per node",
                g.count, job.job_type
            )
            .to_lowercase(),
        );
    }
    if let Some(d) = g.max_run_duration_ns {
        if d == 0 {
            v.err(
                join(gp, "max_run_duration_ns"),
                "max_run_duration must be greater than zero",
            );
        }
        if !matches!(job.job_type, JobType::Batch | JobType::Sysbatch) {
            v.err(
                join(gp, "max_run_duration_ns"),
                format!(
                    "max_run_duration is only for batch and sysbatch jobs, and this job's type is \"{}\"",
                    job.job_type.as_str()
                ),
            );
        }
    }
    let port_labels = check_ports(v, gp, g);
    check_services(v, gp, &g.services, &port_labels);
    check_connect_gateway(v, gp, g);
    if g.tasks.is_empty() {
        v.err(
            join(gp, "tasks"),
            format!(
                "group \"{}\" has no tasks: expected at least one `task` block",
                g.name
            ),
        );
    }
    check_tasks(v, gp, g, &port_labels);
    v.issues.extend(crate::volumes::volume_issues(gp, g));
}

/// The group's update, reschedule, restart and disconnect blocks.
fn check_group_policies(v: &mut V, job: &Job, gp: &str, g: &TaskGroup) {
    // Blocks inherited from the job were checked there already.
    if let Some(u) = g
        .update
        .as_ref()
        .filter(|u| job.update.as_ref() != Some(*u))
    {
        check_update(v, &join(gp, "update"), u);
    }
    if let Some(r) = g
        .reschedule
        .as_ref()
        .filter(|r| job.reschedule.as_ref() != Some(*r))
    {
        check_reschedule(v, &join(gp, "reschedule"), r);
    }
    if let Some(r) = &g.restart {
        v.one_of(
            join(gp, "restart.mode"),
            "restart mode",
            &r.mode,
            &["fail", "delay"],
        );
    }
    if let Some(d) = &g.disconnect {
        v.one_of(
            join(gp, "disconnect.reconcile"),
            "disconnect reconcile",
            &d.reconcile,
            &[
                "keep_original",
                "keep_replacement",
                "best_score",
                "longest_running",
            ],
        );
    }
}

/// Networks and their ports: valid modes, unique labels, no two static ports alike. Returns
/// the group's port labels (services and tasks refer to them).
fn check_ports<'g>(v: &mut V, gp: &str, g: &'g TaskGroup) -> HashSet<&'g str> {
    let mut labels: HashSet<&str> = HashSet::new();
    let mut statics: HashMap<u16, &str> = HashMap::new();
    let mut port_labels: HashSet<&str> = HashSet::new();
    for (ni, n) in g.networks.iter().enumerate() {
        let np = index(&join(gp, "networks"), ni);
        let mode_ok =
            matches!(n.mode.as_str(), "host" | "bridge" | "none") || n.mode.starts_with("cni/");
        if !mode_ok {
            v.err(join(&np, "mode"), format!("invalid network mode \"{}\": expected \"host\", \"bridge\", \"none\" or \"cni/<name>\"", n.mode));
        }
        if n.cni.is_some() {
            let hint = if n.mode.starts_with("cni/") {
                ""
            } else {
                " (and only apply to a `cni/<name>` network mode)"
            };
            v.warn(
                join(&np, "cni"),
                format!("cni args are recorded but not acted on: Nomos agents set up no CNI networks{hint}"),
            );
        }
        for (pi, p) in n.ports.iter().enumerate() {
            let pp = index(&join(&np, "ports"), pi);
            if p.label.is_empty() {
                v.err(join(&pp, "label"), "port label must not be empty");
            } else if !labels.insert(&p.label) {
                v.err(
                    join(&pp, "label"),
                    format!(
                        "duplicate port label \"{}\" in group \"{}\"",
                        p.label, g.name
                    ),
                );
            }
            port_labels.insert(&p.label);
            if p.static_port != 0 {
                if let Some(other) = statics.insert(p.static_port, &p.label) {
                    v.err(
                        join(&pp, "static"),
                        format!(
                            "static port {} of \"{}\" collides with port \"{}\" in group \"{}\"",
                            p.static_port, p.label, other, g.name
                        ),
                    );
                }
            }
        }
    }
    port_labels
}

/// A group whose service declares a Consul Connect gateway: Nomad runs Envoy for it in a task
/// it injects (so the group may have none); Nomos keeps that task (see
/// [`crate::defaults::CONNECT_GATEWAY_DRIVER`]) and says that it will not place it.
fn check_connect_gateway(v: &mut V, gp: &str, g: &TaskGroup) {
    for (si, s) in g.services.iter().enumerate() {
        let Some(gateway) = s.ignored.get("connect").and_then(|c| c.get("gateway")) else {
            continue;
        };
        let kind = ["ingress", "terminating", "mesh"]
            .into_iter()
            .find(|k| gateway.get(k).is_some())
            .unwrap_or("unknown");
        let injected = g
            .tasks
            .iter()
            .find(|t| t.driver == crate::defaults::CONNECT_GATEWAY_DRIVER)
            .map(|t| {
                format!(
                    ": its Envoy task \"{}\" is kept but will not be placed",
                    t.name
                )
            })
            .unwrap_or_default();
        v.warn(
            index(&join(gp, "services"), si),
            format!("service \"{}\" is a Consul Connect {kind} gateway, which Nomos cannot run (it has no Consul Connect){injected}", s.name),
        );
    }
}

/// Task names unique and non-empty, at most one leader, then each task.
fn check_tasks(v: &mut V, gp: &str, g: &TaskGroup, port_labels: &HashSet<&str>) {
    let mut tnames = HashMap::new();
    let mut leaders = 0;
    for (ti, t) in g.tasks.iter().enumerate() {
        let tp = index(&join(gp, "tasks"), ti);
        if t.name.is_empty() {
            v.err(join(&tp, "name"), "task name must not be empty");
        } else if let Err(why) = names::check_member_name("task name", &t.name) {
            v.err(join(&tp, "name"), why);
        } else if let Some(first) = tnames.insert(t.name.as_str(), ti) {
            v.err(
                join(&tp, "name"),
                format!(
                    "duplicate task name \"{}\" in group \"{}\" (also task #{})",
                    t.name,
                    g.name,
                    first + 1
                ),
            );
        }
        if t.leader {
            leaders += 1;
            if leaders > 1 {
                v.err(
                    join(&tp, "leader"),
                    format!("group \"{}\" has more than one leader task", g.name),
                );
            }
        }
        check_task(v, &tp, t, port_labels, g.restart.as_ref());
    }
}

fn check_services(v: &mut V, path: &str, services: &[Service], ports: &HashSet<&str>) {
    for (si, s) in services.iter().enumerate() {
        let sp = index(&join(path, "services"), si);
        if !s.name.is_empty() && !s.name.contains("${") {
            if let Some(why) = crate::service::unfit_service_name(&s.name) {
                v.err(join(&sp, "name"), why);
            }
        }
        if !s.port.is_empty()
            && s.port.parse::<u16>().is_err()
            && !ports.contains(s.port.as_str())
            && !s.port.contains("${")
        {
            v.err(
                join(&sp, "port"),
                format!(
                    "service port \"{}\" is not a port label of the group (labels: {})",
                    s.port,
                    {
                        let mut l: Vec<&str> = ports.iter().copied().collect();
                        l.sort();
                        if l.is_empty() {
                            "none".to_string()
                        } else {
                            l.join(", ")
                        }
                    }
                ),
            );
        }
        v.one_of(
            join(&sp, "provider"),
            "service provider",
            &s.provider,
            &["nomad", "consul"],
        );
        for (ci, c) in s.checks.iter().enumerate() {
            let cp = index(&join(&sp, "checks"), ci);
            v.one_of(
                join(&cp, "type"),
                "check type",
                &c.check_type,
                &["http", "tcp", "script", "grpc"],
            );
            v.one_of(
                join(&cp, "on_update"),
                "check on_update",
                &c.on_update,
                &["", "require_healthy", "ignore_warnings", "ignore"],
            );
            if c.check_type == "http" && c.path.is_empty() {
                v.err(join(&cp, "path"), "http check is missing `path`");
            }
            if c.check_type == "script" && c.command.is_empty() {
                v.err(join(&cp, "command"), "script check is missing `command`");
            }
            if c.interval_ns == 0 {
                v.err(
                    join(&cp, "interval_ns"),
                    "check interval must be greater than 0",
                );
            }
            if !c.port.is_empty()
                && c.port.parse::<u16>().is_err()
                && !ports.contains(c.port.as_str())
            {
                v.err(
                    join(&cp, "port"),
                    format!("check port \"{}\" is not a port label of the group", c.port),
                );
            }
        }
    }
}

/// A `dispatch_payload` file: a relative path that stays inside the task's `local/`.
fn check_payload_file(v: &mut V, path: &str, file: &str) {
    let p = std::path::Path::new(file);
    let escapes = p
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)));
    if file.is_empty() || escapes {
        v.err(
            path,
            format!("dispatch_payload file {file:?} must be a relative path inside the task's local directory, without \"..\""),
        );
    }
}

fn check_task(
    v: &mut V,
    tp: &str,
    t: &Task,
    ports: &HashSet<&str>,
    group_restart: Option<&RestartPolicy>,
) {
    if t.driver.is_empty() {
        v.err(
            join(tp, "driver"),
            format!("task \"{}\" is missing `driver`", t.name),
        );
    } else if t.driver == crate::defaults::CONNECT_GATEWAY_DRIVER {
        // Warned about at the gateway's service (check_connect_gateway).
    } else if !KNOWN_DRIVERS.contains(&t.driver.as_str()) {
        v.warn(join(tp, "driver"), format!("unknown driver \"{}\": Nomos runs docker, exec, java, qemu and raw_exec; this task will not be placed", t.driver));
    } else if t.driver == "java" {
        if let Err(e) = crate::java_config::parse_java_config(&t.config) {
            v.err(join(tp, "config"), e);
        }
    }
    let r = &t.resources;
    if r.cpu > 0 && r.cores > 0 {
        v.err(
            join(tp, "resources.cores"),
            "set only one of `cpu` and `cores`",
        );
    }
    if r.memory_mb < 10 {
        v.err(
            join(tp, "resources.memory_mb"),
            format!("memory must be at least 10 MB, found {}", r.memory_mb),
        );
    }
    if r.memory_max_mb < 0 && r.memory_max_mb != MEMORY_NO_LIMIT {
        v.err(
            join(tp, "resources.memory_max_mb"),
            format!(
                "memory_max must be -1 (no limit) or a size in MB, found {}",
                r.memory_max_mb
            ),
        );
    } else if r.memory_max_mb > 0 && r.memory_max_mb < i64::from(r.memory_mb) {
        v.err(
            join(tp, "resources.memory_max_mb"),
            format!(
                "memory_max ({}) must not be less than memory ({})",
                r.memory_max_mb, r.memory_mb
            ),
        );
    }
    check_placement(v, tp, &t.constraints, &t.affinities, &[]);
    check_services(v, tp, &t.services, ports);
    if let Some(d) = &t.dispatch_payload {
        check_payload_file(v, &join(tp, "dispatch_payload.file"), &d.file);
    }
    if let Some(l) = &t.lifecycle {
        v.one_of(
            join(tp, "lifecycle.hook"),
            "lifecycle hook",
            &l.hook,
            &["prestart", "poststart", "poststop"],
        );
    }
    for (i, a) in t.artifacts.iter().enumerate() {
        if a.source.is_empty() {
            v.err(
                join(&index(&join(tp, "artifacts"), i), "source"),
                "artifact is missing `source`",
            );
        }
        if !a.mode.is_empty() {
            v.one_of(
                join(&index(&join(tp, "artifacts"), i), "mode"),
                "artifact mode",
                &a.mode,
                &["any", "file", "dir"],
            );
        }
    }
    for (i, tpl) in t.templates.iter().enumerate() {
        let p = index(&join(tp, "templates"), i);
        if tpl.destination.is_empty() {
            v.err(join(&p, "destination"), "template is missing `destination`");
        }
        if tpl.data.is_empty() == tpl.source.is_empty() {
            v.err(
                p.clone(),
                "template needs exactly one of `data` and `source`",
            );
        }
        v.one_of(
            join(&p, "change_mode"),
            "template change_mode",
            &tpl.change_mode,
            &["restart", "signal", "noop", "script"],
        );
        check_change_script(v, &p, tpl);
        if let Some(e) = template_parse_error(tpl) {
            v.err(join(&p, "data"), e);
        }
        check_template_timing_and_owner(v, &p, tpl);
    }
    validate_identities(v, tp, &t.identities);
    if let Some(r) = t.restart.as_ref().filter(|r| group_restart != Some(*r)) {
        v.one_of(
            join(tp, "restart.mode"),
            "restart mode",
            &r.mode,
            &["fail", "delay"],
        );
    }
    for (k, val) in &t.config {
        if k == "ports" {
            if let Some(items) = val.as_array() {
                for (i, item) in items.iter().enumerate() {
                    if let Some(label) = item.as_str() {
                        if !ports.contains(label) && !label.contains("${") {
                            v.err(index(&join(tp, "config.ports"), i), format!("port \"{label}\" in task config is not a port label of the group"));
                        }
                    }
                }
            }
        }
    }
}

/// A template's `change_script`: required, with a `command`, by `change_mode = "script"`;
/// without that mode it is never run (a warning).
fn check_change_script(v: &mut V, p: &str, tpl: &crate::Template) {
    match (&tpl.change_script, tpl.change_mode == "script") {
        (None, true) => v.err(
            join(p, "change_mode"),
            "change_mode \"script\" needs a `change_script` block with a `command`",
        ),
        (Some(cs), true) if cs.command.is_empty() => v.err(
            join(p, "change_script.command"),
            "change_script is missing `command`",
        ),
        (Some(_), false) => v.warn(
            join(p, "change_script"),
            format!(
                "change_script is run only with change_mode \"script\" (this template's is {:?})",
                tpl.change_mode
            ),
        ),
        _ => {}
    }
}

/// The template functions a node offers besides Go's and consul-template's own (`env`, and
/// the Variables read with the task's workload identity).
pub const TEMPLATE_FUNCTIONS: &[&str] = &[
    "env",
    "nomadVar",
    "nomadVarList",
    "nomadVarExists",
    "nomadService",
    "nomadServices",
    "key",
    "keyOrDefault",
    "ls",
    "file",
    "sockaddr",
];

/// How a template block parses on a node: its delimiters (`{{` `}}` unless set), its
/// missing-key rule and the node's [`TEMPLATE_FUNCTIONS`]. The agent renders with the same.
pub fn template_options(tpl: &crate::Template) -> nomos_template::Options {
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            s.to_string()
        }
    };
    nomos_template::Options {
        left_delim: or(&tpl.left_delimiter, "{{"),
        right_delim: or(&tpl.right_delimiter, "}}"),
        missing_key_error: tpl.error_on_missing_key,
        external_functions: TEMPLATE_FUNCTIONS.iter().map(|f| f.to_string()).collect(),
    }
}

/// Why a template's `data` would not render (a syntax error, an unknown function), with its
/// line and column inside the template; `None` when it parses or has no actions.
fn template_parse_error(tpl: &crate::Template) -> Option<String> {
    let opts = template_options(tpl);
    if tpl.data.is_empty() || !tpl.data.contains(&opts.left_delim) {
        return None;
    }
    nomos_template::Template::parse("data", &tpl.data, &opts)
        .err()
        .map(|e| e.to_string())
}

/// A template's `splay` and `wait` (each at most [`MAX_TEMPLATE_DELAY_NS`], `min` not above
/// `max`) and its `uid` / `gid` (a negative one means "unchanged", as in Nomad).
fn check_template_timing_and_owner(v: &mut V, p: &str, tpl: &crate::Template) {
    let too_long = |what: &str, ns: u64| {
        format!(
            "template {what} of {} is more than the limit of {}",
            crate::duration::format_duration(ns),
            crate::duration::format_duration(MAX_TEMPLATE_DELAY_NS)
        )
    };
    if let Some(splay) = tpl.splay_ns.filter(|s| *s > MAX_TEMPLATE_DELAY_NS) {
        v.err(join(p, "splay_ns"), too_long("splay", splay));
    }
    if let Some(w) = &tpl.wait {
        let wp = join(p, "wait");
        let max = w.max_or_default();
        if w.min_ns > MAX_TEMPLATE_DELAY_NS {
            v.err(join(&wp, "min_ns"), too_long("wait min", w.min_ns));
        } else if max > MAX_TEMPLATE_DELAY_NS && w.max_ns.is_some() {
            v.err(join(&wp, "max_ns"), too_long("wait max", max));
        } else if w.min_ns > max {
            v.err(
                join(&wp, "max_ns"),
                format!(
                    "template wait max ({}) must not be less than min ({})",
                    crate::duration::format_duration(max),
                    crate::duration::format_duration(w.min_ns)
                ),
            );
        }
    }
    for (field, id) in [("uid", tpl.uid), ("gid", tpl.gid)] {
        if let Some(id) = id.filter(|id| *id >= i64::from(u32::MAX)) {
            v.err(
                join(p, field),
                format!("template {field} {id} is not a valid ID (0 to {}, or -1 to leave it unchanged)", u32::MAX - 1),
            );
        }
    }
}

/// A task's `identity` blocks: one default identity at most, names unique, known change
/// modes; a named one (for Vault or Consul) is accepted with a warning, as it is not issued.
fn validate_identities(v: &mut V, tp: &str, identities: &[crate::WorkloadIdentity]) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, id) in identities.iter().enumerate() {
        let p = index(&join(tp, "identities"), i);
        let name = if id.is_default() { "default" } else { &id.name };
        if !seen.insert(name.to_string()) {
            v.err(join(&p, "name"), format!("duplicate identity {name:?}"));
        }
        if !id.change_mode.is_empty() {
            v.one_of(
                join(&p, "change_mode"),
                "identity change_mode",
                &id.change_mode,
                &["noop", "restart", "signal"],
            );
        }
        if !id.is_default() {
            v.warn(
                p,
                format!("identity {name:?} is not issued by Nomos (only the default identity is); it is ignored"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{check_time_zone, validate};
    use crate::build::{group, job, task};
    use crate::TaskGroup;

    #[test]
    fn a_job_whose_names_could_form_a_path_is_invalid_at_the_field_that_says_so() {
        let bad_task = TaskGroup {
            tasks: vec![task("../../x", 100, 64)],
            ..group("g", 1)
        };
        let mut j = job("web").with_group(bad_task).build();
        j.namespace = "..".into();
        let issues = validate(&j);
        let at = |path: &str| {
            issues
                .iter()
                .find(|i| i.path == path)
                .map(|i| i.message.clone())
                .unwrap_or_else(|| panic!("no issue at {path}: {issues:?}"))
        };
        assert!(at("namespace").contains("must not be \".\" or \"..\""));
        assert!(at("groups[0].tasks[0].name").contains("must not contain '/'"));

        let j = job("..").group("/g", 1).build();
        let issues = validate(&j);
        assert!(issues.iter().any(|i| i.path == "id"), "{issues:?}");
        assert!(
            issues.iter().any(|i| i.path == "groups[0].name"),
            "{issues:?}"
        );
    }

    #[test]
    fn time_zones_are_iana_names_utc_or_local() {
        let cases = [
            ("", true),
            ("UTC", true),
            ("Local", true),
            ("America/New_York", true),
            ("Europe/Berlin", true),
            ("Etc/GMT+5", true),
            ("Europe/Berln", false),
            ("Mars/Olympus", false),
            ("../../etc/passwd", false),
            ("+05:00", false),
        ];
        for (tz, ok) in cases {
            assert_eq!(check_time_zone(tz).is_ok(), ok, "{tz:?}");
        }
    }
}
