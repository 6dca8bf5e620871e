//! Nomad's defaults, filled into a job in canonical JSON shape wherever the file is silent
//! (`docs/jobspec.md` lists each with Nomad's value and where Nomos differs).
//!
//! Defaults are applied to the JSON value before it becomes a [`crate::Job`], only to keys that
//! are absent, so an explicit `count = 0` stays 0 and a canonical job (every key present) is a
//! fixed point: defaulting it again changes nothing.

use serde_json::{json, Map, Value};

const SEC: u64 = 1_000_000_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;

/// Fills absent keys of `target` from `defaults` (nested objects recurse). A null or an empty
/// string counts as absent: canonical JSON written by hand or by `serde` from a `Default`
/// value says "unset" that way.
fn fill(target: &mut Value, defaults: Value) {
    let (Some(t), Value::Object(d)) = (target.as_object_mut(), defaults) else {
        return;
    };
    for (k, v) in d {
        match t.get_mut(&k) {
            None | Some(Value::Null) => {
                t.insert(k, v);
            }
            Some(Value::String(s)) if s.is_empty() && v.is_string() => {
                t.insert(k, v);
            }
            Some(Value::Array(a)) if a.is_empty() && k == "datacenters" => {
                t.insert(k, v);
            }
            Some(existing) if v.is_object() && existing.is_object() => fill(existing, v),
            Some(_) => {}
        }
    }
}

fn fill_opt_block(obj: &mut Map<String, Value>, key: &str, defaults: Value, create: bool) {
    match obj.get_mut(key) {
        Some(v) if v.is_object() => fill(v, defaults),
        Some(Value::Null) | None if create => {
            obj.insert(key.to_string(), defaults);
        }
        _ => {}
    }
}

fn each_in(obj: &mut Map<String, Value>, key: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(Value::Array(items)) = obj.get_mut(key) {
        items.iter_mut().for_each(&mut f);
    }
}

/// The default `update` block of service jobs.
pub fn update_defaults() -> Value {
    json!({
        "max_parallel": 1, "health_check": "checks", "min_healthy_time_ns": 10 * SEC,
        "healthy_deadline_ns": 5 * MIN, "progress_deadline_ns": 10 * MIN, "auto_revert": false,
        "auto_promote": false, "canary": 0, "stagger_ns": 30 * SEC
    })
}

fn migrate_defaults() -> Value {
    json!({"max_parallel": 1, "health_check": "checks", "min_healthy_time_ns": 10 * SEC,
           "healthy_deadline_ns": 5 * MIN})
}

fn restart_defaults(job_type: &str) -> Value {
    if job_type == "batch" || job_type == "sysbatch" {
        json!({"attempts": 3, "interval_ns": 24 * HOUR, "delay_ns": 15 * SEC, "mode": "fail",
               "render_templates": false})
    } else {
        json!({"attempts": 2, "interval_ns": 30 * MIN, "delay_ns": 15 * SEC, "mode": "fail",
               "render_templates": false})
    }
}

fn reschedule_defaults(job_type: &str) -> Option<Value> {
    match job_type {
        "batch" => Some(
            json!({"attempts": 1, "interval_ns": 24 * HOUR, "delay_ns": 5 * SEC,
                               "delay_function": "constant", "max_delay_ns": 0,
                               "unlimited": false}),
        ),
        "service" => Some(
            json!({"attempts": 0, "interval_ns": 0, "delay_ns": 30 * SEC,
                                 "delay_function": "exponential", "max_delay_ns": HOUR,
                                 "unlimited": true}),
        ),
        _ => None,
    }
}

fn fill_constraints(obj: &mut Map<String, Value>) {
    each_in(obj, "constraints", |c| fill(c, json!({"operator": "="})));
    each_in(obj, "affinities", |c| {
        fill(c, json!({"operator": "=", "weight": 50}))
    });
    each_in(obj, "spreads", |c| fill(c, json!({"weight": 50})));
}

fn fill_services(obj: &mut Map<String, Value>) {
    each_in(obj, "services", |s| {
        fill(s, json!({"provider": "nomad", "address_mode": "auto"}));
        if let Some(s) = s.as_object_mut() {
            each_in(s, "checks", |c| {
                let is_http = c.get("type").and_then(Value::as_str) == Some("http");
                fill(c, json!({"interval_ns": 10 * SEC, "timeout_ns": 2 * SEC}));
                if is_http {
                    fill(c, json!({"method": "GET", "protocol": "http"}));
                }
            });
        }
    });
}

/// Applies every default to a job in canonical JSON shape.
pub fn apply(job: &mut Value) {
    let Some(obj) = job.as_object_mut() else {
        return;
    };
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if obj
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        obj.insert("name".into(), Value::String(id));
    }
    fill(
        job,
        json!({"namespace": "default", "region": "global", "datacenters": ["*"],
               "node_pool": "default", "type": "service", "priority": 50}),
    );
    let Some(obj) = job.as_object_mut() else {
        return;
    };
    let job_type = obj
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("service")
        .to_string();
    fill_constraints(obj);
    if let Some(p) = obj.get_mut("periodic").filter(|p| p.is_object()) {
        fill(
            p,
            json!({"time_zone": "UTC", "prohibit_overlap": false, "enabled": true}),
        );
    }
    if let Some(p) = obj.get_mut("parameterized").filter(|p| p.is_object()) {
        fill(p, json!({"payload": "optional"}));
    }
    let inherited = fill_job_policies(obj, job_type);
    each_in(obj, "groups", |g| fill_group(g, &inherited));
}

/// What a group inherits from its job: job-level update/migrate/reschedule are defaults for
/// the groups (Nomad merges them).
struct Inherited {
    job_type: String,
    /// The job's `update` as written (the defaults for it are filled into the group's).
    update: Option<Value>,
    /// The job's `migrate` and `reschedule` with their defaults filled.
    migrate: Option<Value>,
    reschedule: Option<Value>,
}

/// Fills the job's own update/migrate/reschedule blocks and returns what the groups inherit.
fn fill_job_policies(obj: &mut Map<String, Value>, job_type: String) -> Inherited {
    let update = obj.get("update").cloned().filter(Value::is_object);
    if let Some(u) = obj.get_mut("update").filter(|u| u.is_object()) {
        fill(u, update_defaults());
    }
    if let Some(m) = obj.get_mut("migrate").filter(|m| m.is_object()) {
        fill(m, migrate_defaults());
    }
    if let (Some(r), Some(d)) = (
        obj.get_mut("reschedule").filter(|r| r.is_object()),
        reschedule_defaults(&job_type),
    ) {
        fill(r, d);
    }
    Inherited {
        job_type,
        update,
        migrate: obj.get("migrate").cloned().filter(Value::is_object),
        reschedule: obj.get("reschedule").cloned().filter(Value::is_object),
    }
}

fn fill_group(g: &mut Value, job: &Inherited) {
    let Some(g) = g.as_object_mut() else { return };
    let job_type = job.job_type.as_str();
    let is_service = job_type == "service";
    if !g.contains_key("count") {
        g.insert("count".into(), json!(1));
    }
    fill_constraints(g);
    fill_services(g);
    each_in(g, "networks", |n| fill(n, json!({"mode": "host"})));
    if let Some(u) = job.update.clone() {
        fill_opt_block(g, "update", u, true);
    }
    if is_service || g.get("update").is_some_and(Value::is_object) {
        fill_opt_block(g, "update", update_defaults(), is_service);
    }
    if let Some(m) = job.migrate.clone() {
        fill_opt_block(g, "migrate", m, true);
    }
    fill_opt_block(g, "migrate", migrate_defaults(), is_service);
    if let Some(r) = job.reschedule.clone() {
        fill_opt_block(g, "reschedule", r, true);
    }
    if let Some(r) = reschedule_defaults(job_type) {
        fill_opt_block(g, "reschedule", r, true);
    }
    fill_opt_block(g, "restart", restart_defaults(job_type), true);
    let group_restart = g.get("restart").cloned();
    fill_opt_block(
        g,
        "ephemeral_disk",
        json!({"size_mb": 300, "sticky": false, "migrate": false}),
        true,
    );
    if let Some(d) = g.get_mut("disconnect").filter(|d| d.is_object()) {
        fill(
            d,
            json!({"lost_after_ns": 0, "replace": false, "reconcile": "keep_original"}),
        );
    }
    if let Some(Value::Object(volumes)) = g.get_mut("volumes") {
        for (name, volume) in volumes.iter_mut() {
            fill(volume, json!({"name": name}));
        }
    }
    inject_gateway_task(g);
    each_in(g, "tasks", |t| fill_task(t, group_restart.as_ref()));
}

/// The driver of the task that stands for a Consul Connect gateway's Envoy: no node offers
/// it, so the group is kept, shown and never placed (Nomos has no Consul Connect).
pub const CONNECT_GATEWAY_DRIVER: &str = "connect-gateway";

/// A group without tasks whose service is a Consul Connect gateway gets the task Nomad
/// injects for it: `connect-<kind>-<service>`, of kind `connect-<kind>:<service>` (kept in
/// the task's `ignored`), with [`CONNECT_GATEWAY_DRIVER`] for a driver.
fn inject_gateway_task(g: &mut Map<String, Value>) {
    if g.get("tasks")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty())
    {
        return;
    }
    let Some((kind, service)) = g
        .get("services")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(connect_gateway)
    else {
        return;
    };
    let task = json!({
        "name": format!("connect-{kind}-{service}"),
        "driver": CONNECT_GATEWAY_DRIVER,
        "resources": {"cpu": 250, "memory_mb": 128},
        "ignored": {"kind": format!("connect-{kind}:{service}")},
    });
    g.insert("tasks".into(), Value::Array(vec![task]));
}

/// The kind (`ingress`, `terminating`, `mesh`) and service name of a service whose
/// `connect { gateway { ... } }` block declares a gateway.
pub fn connect_gateway(service: &Value) -> Option<(String, String)> {
    let gateway = service.get("ignored")?.get("connect")?.get("gateway")?;
    let kind = ["ingress", "terminating", "mesh"]
        .into_iter()
        .find(|k| gateway.get(k).is_some())?;
    let name = service.get("name").and_then(Value::as_str).unwrap_or("");
    Some((kind.to_string(), name.to_string()))
}

/// A task's defaults; its `restart` defaults to its group's.
fn fill_task(t: &mut Value, group_restart: Option<&Value>) {
    let Some(t) = t.as_object_mut() else { return };
    fill_constraints(t);
    fill_services(t);
    if let Some(r) = group_restart.cloned() {
        fill_opt_block(t, "restart", r, true);
    }
    if let Some(Value::Object(res)) = t.get_mut("resources") {
        if res.get("cores").and_then(Value::as_u64).unwrap_or(0) > 0 && !res.contains_key("cpu") {
            res.insert("cpu".into(), json!(0));
        }
    }
    let mut tv = Value::Object(std::mem::take(t));
    fill(
        &mut tv,
        json!({"kill_timeout_ns": 5 * SEC, "kill_signal": "SIGINT",
               "logs": {"max_files": 10, "max_file_size_mb": 10, "disabled": false},
               "resources": {"cpu": 100, "memory_mb": 300}}),
    );
    if let Value::Object(m) = tv {
        *t = m;
    }
    if let Some(Value::Object(res)) = t.get_mut("resources") {
        each_in(res, "devices", |d| fill(d, json!({"count": 1})));
    }
    each_in(t, "templates", |tpl| {
        fill(
            tpl,
            json!({"change_mode": "restart", "perms": "0644", "left_delimiter": "{{",
                   "right_delimiter": "}}"}),
        );
        if tpl.get("change_mode").and_then(Value::as_str) == Some("signal") {
            fill(tpl, json!({"change_signal": "SIGHUP"}));
        }
        if let Some(script) = tpl.get_mut("change_script").filter(|s| s.is_object()) {
            fill(script, json!({"timeout_ns": 5 * SEC}));
        }
    });
    each_in(t, "artifacts", |a| fill(a, json!({"mode": "any"})));
    each_in(t, "volume_mounts", |m| {
        fill(m, json!({"propagation_mode": "private"}))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_fixed_point() {
        let mut v = json!({"id": "web", "groups": [{"name": "g", "tasks": [{"name": "t", "driver": "docker"}]}]});
        apply(&mut v);
        let once = v.clone();
        apply(&mut v);
        assert_eq!(v, once);
        assert_eq!(v["groups"][0]["count"], 1);
        assert_eq!(v["groups"][0]["tasks"][0]["resources"]["memory_mb"], 300);
    }

    #[test]
    fn explicit_zero_count_is_kept() {
        let mut v = json!({"id": "web", "groups": [{"name": "g", "count": 0}]});
        apply(&mut v);
        assert_eq!(v["groups"][0]["count"], 0);
    }
}
