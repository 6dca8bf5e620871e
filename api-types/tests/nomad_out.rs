//! Jobs written in Nomad's API shapes (`nomad_out`) read back through the Nomad JSON front end
//! as the same job: for generated jobs (a property), for the job files in `tests/fixtures`,
//! and, field by field, for hand-written service, periodic batch and system jobs.

use indexmap::IndexMap;
use nomos_api::nomad_out::{job_list_stub, job_to_nomad, ChildrenSummary, JobMeta};
use nomos_api::*;
use proptest::prelude::*;
use serde_json::{json, Value};

mod strategies;

const SEC: u64 = 1_000_000_000;

fn parse_one(name: &str, source: &str) -> Result<Parsed, String> {
    let options = ParseOptions {
        files: Some(std::sync::Arc::new(StdFiles)),
        base_dir: Some(fixtures_dir()),
        ..ParseOptions::default()
    };
    parse_source(name, source, &options).map_err(|d| format!("{d:?}\n{source}"))
}

/// The job written as Nomad answers it and read back as a registration body would be.
fn through_nomad(job: &Job) -> Result<Parsed, String> {
    let body = json!({"Job": job_to_nomad(job, &JobMeta::default())});
    parse_one("job.json", &body.to_string())
}

/// What Nomad's JSON cannot carry, taken out of a job read from another format: the blocks
/// recorded but not acted on, a manifest's labels, and the order of ports across the reserved
/// and dynamic lists.
fn comparable(mut job: Job) -> Job {
    job.ignored.clear();
    job.labels.clear();
    for g in &mut job.groups {
        g.ignored.clear();
        for n in &mut g.networks {
            n.ports.sort_by_key(|p| p.static_port == 0);
        }
        for s in &mut g.services {
            forget_service_ignored(s);
        }
        for t in &mut g.tasks {
            t.ignored.clear();
            t.services.iter_mut().for_each(forget_service_ignored);
        }
    }
    job
}

fn forget_service_ignored(s: &mut Service) {
    s.ignored.clear();
    s.checks.iter_mut().for_each(|c| c.ignored.clear());
}

fn assert_reads_back_unchanged(job: &Job) -> Result<(), String> {
    let back = through_nomad(job)?;
    if let Some(w) = back
        .warnings
        .iter()
        .find(|w| w.message.contains("Nomad JSON field"))
    {
        return Err(format!("a field the reader does not know was written: {w}"));
    }
    let (want, got) = (comparable(job.clone()), comparable(back.jobs[0].clone()));
    if want != got {
        return Err(format!(
            "read back differently:\n{}\n---\n{}",
            to_canonical_json(&want),
            to_canonical_json(&got)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The property: any job that validates reads back unchanged.

/// Blocks the shared generator leaves out, added where the job type allows them; each flag
/// turns one on.
fn enrich(mut job: Job, on: [bool; 10], n: u32, d: u64) -> Job {
    let batch = matches!(job.job_type, JobType::Batch | JobType::Sysbatch);
    if on[0] {
        job.update = Some(UpdateStrategy {
            max_parallel: n,
            health_check: "task_states".into(),
            canary: n - 1,
            auto_promote: on[1],
            auto_revert: on[2],
            ..UpdateStrategy::default()
        });
    }
    if on[1] && batch {
        job.periodic = Some(Periodic {
            crons: vec!["*/5 * * * *".into(), "0 3 * * 1-5".into()][..n.min(2) as usize].to_vec(),
            time_zone: "Europe/Berlin".into(),
            prohibit_overlap: on[2],
            enabled: on[3],
        });
    }
    if on[2] && batch {
        job.parameterized = Some(Parameterized {
            payload: "required".into(),
            meta_required: vec!["customer".into()],
            meta_optional: vec![],
        });
    }
    if on[3] {
        job.spreads = vec![Spread {
            attribute: "${node.datacenter}".into(),
            weight: 70,
            targets: vec![SpreadTarget {
                value: "dc1".into(),
                percent: 60,
            }],
        }];
        job.node_pool = "gpu".into();
        job.datacenters = vec!["dc1".into(), "dc2".into()];
        job.all_at_once = true;
        job.name = format!("{} display", job.id);
    }
    job.stop = on[9];
    let group = &mut job.groups[0];
    enrich_group(group, on, n, d);
    enrich_task(&mut group.tasks[0], on, n, d);
    if group.volumes.contains_key("data") {
        group.tasks[0].volume_mounts = vec![VolumeMount {
            volume: "data".into(),
            destination: "/var/lib/data".into(),
            read_only: on[1],
            propagation_mode: "private".into(),
        }];
    }
    job
}

fn enrich_group(g: &mut TaskGroup, on: [bool; 10], n: u32, d: u64) {
    let port = g.networks.first().map(|net| net.ports[0].label.clone());
    if on[4] {
        g.services = vec![service(port.unwrap_or_default(), on, n, d)];
    }
    if on[5] {
        g.restart = Some(RestartPolicy {
            attempts: n,
            interval_ns: 60 * SEC + d,
            delay_ns: d,
            mode: "delay".into(),
            render_templates: on[6],
        });
        g.ephemeral_disk = Some(EphemeralDisk {
            size_mb: 500,
            sticky: true,
            migrate: on[7],
        });
        g.disconnect = Some(Disconnect {
            lost_after_ns: d,
            replace: on[6],
            reconcile: "best_score".into(),
            stop_on_client_after_ns: on[7].then_some(d),
        });
        g.shutdown_delay_ns = d;
        g.volumes = [(
            "data".to_string(),
            VolumeRequest {
                name: "data".into(),
                volume_type: "host".into(),
                source: "pg-data".into(),
                read_only: on[8],
            },
        )]
        .into();
    }
    if on[6] {
        if let Some(net) = g.networks.first_mut() {
            net.mode = "bridge".into();
            net.hostname = "web".into();
            net.dns = Some(json!({"servers": ["1.1.1.1"]}));
            net.ports[0].host_network = "public".into();
        }
    }
}

fn service(port: String, on: [bool; 10], n: u32, d: u64) -> Service {
    let types: &[&str] = if port.is_empty() {
        &["script"]
    } else {
        &["http", "tcp", "script", "grpc"]
    };
    Service {
        name: "web-svc".into(),
        port: port.clone(),
        provider: if on[7] { "consul" } else { "nomad" }.into(),
        tags: vec!["a".into(), "b".into()],
        canary_tags: if on[8] { vec!["canary".into()] } else { vec![] },
        address_mode: "host".into(),
        checks: types.iter().map(|t| check(t, &port, on, n, d)).collect(),
        meta: [("team".to_string(), "web".to_string())].into(),
        check_restart: on[6].then_some(CheckRestart {
            limit: 2,
            grace_ns: SEC,
            ignore_warnings: false,
        }),
        ..Service::default()
    }
}

/// A check of `check_type` with what that type needs, and every optional field set by `on`.
fn check(check_type: &str, port: &str, on: [bool; 10], n: u32, d: u64) -> Check {
    let only = |ty: &str, text: &str| if ty == check_type { text } else { "" }.to_string();
    Check {
        name: format!("{check_type}-check"),
        check_type: check_type.into(),
        port: port.into(),
        path: only("http", "/health"),
        command: only("script", "/bin/check"),
        args: vec![only("script", "-q")],
        interval_ns: 5 * SEC + d,
        timeout_ns: SEC,
        header: [("X-A".to_string(), vec!["1".to_string(), "2".to_string()])].into(),
        tls_skip_verify: on[7],
        success_before_passing: n,
        failures_before_critical: n + 1,
        failures_before_warning: n - 1,
        grpc_service: only("grpc", "app.v1"),
        grpc_use_tls: check_type == "grpc" && on[8],
        on_update: if on[8] { "ignore_warnings" } else { "" }.into(),
        check_restart: on[5].then_some(CheckRestart {
            limit: n,
            grace_ns: d,
            ignore_warnings: on[6],
        }),
        ..Check::default()
    }
}

fn enrich_task(t: &mut Task, on: [bool; 10], n: u32, d: u64) {
    if on[7] {
        t.templates = vec![template(on, d)];
        t.artifacts = vec![Artifact {
            source: "https://example.com/app.tgz".into(),
            destination: "local/app".into(),
            mode: "file".into(),
            options: [("checksum".to_string(), "sha256:ab".to_string())].into(),
            headers: IndexMap::new(),
        }];
    }
    if on[8] {
        t.identities = vec![WorkloadIdentity {
            env: true,
            file: on[0],
            ttl_ns: d,
            ..Default::default()
        }];
        t.resources.devices = vec![Device {
            name: "nvidia/gpu".into(),
            count: n,
            constraints: vec![Constraint {
                attribute: "${device.attr.memory}".into(),
                operator: ">=".into(),
                value: "2 GiB".into(),
            }],
            affinities: vec![],
        }];
        t.logs = LogConfig {
            max_files: n,
            max_file_size_mb: 20,
            disabled: on[0],
        };
        t.kill_signal = "SIGTERM".into();
        t.user = "nobody".into();
        t.leader = true;
        t.shutdown_delay_ns = d;
        t.meta = [("k".to_string(), "v".to_string())].into();
    }
}

fn template(on: [bool; 10], d: u64) -> Template {
    Template {
        data: "x={{ env \"NOMAD_JOB_NAME\" }}".into(),
        destination: "local/x.env".into(),
        env: on[8],
        change_mode: if on[6] { "script" } else { "signal" }.into(),
        change_signal: "SIGUSR1".into(),
        splay_ns: on[5].then_some(d.min(3_600 * SEC)),
        wait: on[4].then_some(TemplateWait {
            min_ns: SEC,
            max_ns: on[3].then_some(4 * SEC),
        }),
        uid: on[2].then_some(1000),
        gid: on[2].then_some(-1),
        error_on_missing_key: on[1],
        change_script: on[6].then(|| ChangeScript {
            command: "/bin/reload".into(),
            args: vec!["now".into()],
            timeout_ns: d,
            fail_on_error: on[0],
        }),
        ..Template::default()
    }
}

fn rich_job() -> impl Strategy<Value = Job> {
    (
        strategies::job(),
        any::<[bool; 10]>(),
        1u32..4,
        1u64..600_000_000_000,
    )
        .prop_map(|(job, on, n, d)| enrich(job, on, n, d))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_valid_job_written_for_nomad_reads_back_as_the_same_job(job in rich_job()) {
        let once = parse_one("job.json", &serde_json::to_string(&job).unwrap())
            .map_err(TestCaseError::fail)?;
        assert_reads_back_unchanged(&once.jobs[0]).map_err(TestCaseError::fail)?;
    }
}

// ---------------------------------------------------------------------------------------------
// The fixtures: every Nomad JSON and HCL job file that parses reads back unchanged.

fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn every_hcl_and_nomad_json_fixture_reads_back_unchanged_from_nomads_shape() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        let is_nomad_json = name.ends_with(".json") && source.contains("\"TaskGroups\"");
        if !(name.ends_with(".hcl") || name.ends_with(".nomad") || is_nomad_json) {
            continue;
        }
        let Ok(parsed) = parse_one(&name, &source) else {
            continue; // a fixture of an error
        };
        for job in &parsed.jobs {
            checked += 1;
            if let Err(e) = assert_reads_back_unchanged(job) {
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(checked >= 25, "only {checked} fixtures were checked");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------------------------
// Field by field: names, nesting and types as Nomad's clients decode them.

fn nomad(hcl: &str, meta: &JobMeta) -> Value {
    let parsed = parse_one("job.hcl", hcl).unwrap();
    job_to_nomad(&parsed.jobs[0], meta)
}

const SERVICE_JOB: &str = r#"
job "web" {
  datacenters = ["dc1"]
  update {
    max_parallel     = 2
    canary           = 2
    min_healthy_time = "15s"
    auto_promote     = true
  }
  group "api" {
    count = 3
    network {
      port "http" { to = 8080 }
      port "admin" { static = 9000 }
    }
    service {
      name = "api"
      port = "http"
      tags = ["v2"]
      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
        check_restart {
          limit = 3
          grace = "30s"
        }
      }
    }
    task "server" {
      driver = "docker"
      config { image = "example/api:2" }
      template {
        data          = "port={{ env \"NOMAD_PORT_http\" }}"
        destination   = "local/app.env"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        splay         = "3s"
        wait {
          min = "2s"
          max = "10s"
        }
      }
      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
"#;

#[test]
fn a_service_job_carries_its_bookkeeping_and_null_for_what_is_empty() {
    let meta = JobMeta {
        status: "running".into(),
        version: 3,
        stable: true,
        submit_time_ns: 1_700_000_000_123_456_789,
        create_index: 10,
        modify_index: 42,
        job_modify_index: 40,
        ..JobMeta::default()
    };
    let v = nomad(SERVICE_JOB, &meta);
    assert_eq!(
        (v["ID"].as_str(), v["Type"].as_str()),
        (Some("web"), Some("service"))
    );
    assert_eq!(v["Region"], "global");
    assert_eq!(v["Status"], "running");
    assert_eq!(v["Version"], 3);
    assert_eq!(v["SubmitTime"].as_i64(), Some(1_700_000_000_123_456_789));
    assert_eq!(
        (v["ModifyIndex"].as_u64(), v["JobModifyIndex"].as_u64()),
        (Some(42), Some(40))
    );
    assert_eq!(v["Stable"], true);
    assert_eq!(v["Update"]["MinHealthyTime"].as_u64(), Some(15 * SEC));
    assert_eq!(v["Meta"], Value::Null, "an empty map is null");
    assert_eq!(v["Constraints"], Value::Null, "an empty list is null");
    assert_eq!(v["Periodic"], Value::Null, "an absent block is null");
}

#[test]
fn a_service_groups_policies_are_in_nanoseconds_and_its_ports_split_by_kind() {
    let v = nomad(SERVICE_JOB, &JobMeta::default());
    let g = &v["TaskGroups"][0];
    assert_eq!(g["Count"], 3);
    assert_eq!(g["Update"]["Canary"], 2);
    assert_eq!(g["Update"]["AutoPromote"], true);
    assert_eq!(g["Update"]["HealthyDeadline"].as_u64(), Some(300 * SEC));
    assert_eq!(g["RestartPolicy"]["Delay"].as_u64(), Some(15 * SEC));
    assert_eq!(g["ReschedulePolicy"]["DelayFunction"], "exponential");
    assert_eq!(g["EphemeralDisk"]["SizeMB"], 300);
    let net = &g["Networks"][0];
    assert_eq!(net["Mode"], "host");
    assert_eq!(
        net["DynamicPorts"],
        json!([{"Label": "http", "Value": 0, "To": 8080, "HostNetwork": "default"}])
    );
    assert_eq!(
        net["ReservedPorts"],
        json!([{"Label": "admin", "Value": 9000, "To": 0, "HostNetwork": "default"}])
    );
}

#[test]
fn a_service_check_has_nomads_names_and_writes_the_flags_left_unset() {
    let v = nomad(SERVICE_JOB, &JobMeta::default());
    let g = &v["TaskGroups"][0];
    let check = &g["Services"][0]["Checks"][0];
    assert_eq!(g["Services"][0]["PortLabel"], "http");
    assert_eq!(g["Services"][0]["Tags"], json!(["v2"]));
    assert_eq!(
        (check["Type"].as_str(), check["Path"].as_str()),
        (Some("http"), Some("/health"))
    );
    assert_eq!(check["Interval"].as_u64(), Some(10 * SEC));
    assert_eq!(check["Timeout"].as_u64(), Some(2 * SEC));
    assert_eq!(
        check["CheckRestart"],
        json!({"Limit": 3, "Grace": 30 * SEC, "IgnoreWarnings": false})
    );
    assert_eq!(
        check["TLSSkipVerify"], false,
        "a flag the canonical form omits is written"
    );
    assert_eq!(check["SuccessBeforePassing"], 0);
    assert_eq!(check["Header"], Value::Null);
}

#[test]
fn a_task_and_its_template_have_nomads_names() {
    let v = nomad(SERVICE_JOB, &JobMeta::default());
    let task = &v["TaskGroups"][0]["Tasks"][0];
    assert_eq!(task["Config"], json!({"image": "example/api:2"}));
    assert_eq!(task["Resources"]["CPU"], 500);
    assert_eq!(task["Resources"]["MemoryMB"], 256);
    assert_eq!(task["KillTimeout"].as_u64(), Some(5 * SEC));
    assert_eq!(
        task["LogConfig"],
        json!({"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": false})
    );
    assert_eq!(task["Lifecycle"], Value::Null);
    let tpl = &task["Templates"][0];
    assert_eq!(
        (tpl["ChangeMode"].as_str(), tpl["ChangeSignal"].as_str()),
        (Some("signal"), Some("SIGHUP"))
    );
    assert_eq!(tpl["DestPath"], "local/app.env");
    assert_eq!(tpl["Splay"].as_u64(), Some(3 * SEC));
    assert_eq!(tpl["Wait"], json!({"Min": 2 * SEC, "Max": 10 * SEC}));
    assert_eq!(tpl["ChangeScript"], Value::Null);
}

const PERIODIC_JOB: &str = r#"
job "report" {
  type = "batch"
  periodic {
    cron             = "*/15 * * * *"
    prohibit_overlap = true
    time_zone        = "Europe/Berlin"
  }
  group "r" {
    task "r" {
      driver = "exec"
      config { command = "/bin/report" }
    }
  }
}
"#;

#[test]
fn a_periodic_batch_job_has_its_cron_as_the_spec_string() {
    let v = nomad(PERIODIC_JOB, &JobMeta::default());
    assert_eq!(v["Type"], "batch");
    assert_eq!(
        v["Periodic"],
        json!({"Spec": "*/15 * * * *", "SpecType": "cron", "Specs": null,
               "TimeZone": "Europe/Berlin", "ProhibitOverlap": true, "Enabled": true})
    );
    let g = &v["TaskGroups"][0];
    assert_eq!(g["Update"], Value::Null);
    assert_eq!(
        g["RestartPolicy"]["Interval"].as_u64(),
        Some(24 * 3600 * SEC)
    );
    assert_eq!(g["ReschedulePolicy"]["Attempts"], 1);
    assert_eq!(g["ReschedulePolicy"]["Unlimited"], false);
}

#[test]
fn several_crons_are_written_as_specs_and_no_spec() {
    let two = PERIODIC_JOB.replace(
        "cron             = \"*/15 * * * *\"",
        "crons = [\"*/15 * * * *\", \"0 3 * * *\"]",
    );
    let v = nomad(&two, &JobMeta::default());
    assert_eq!(v["Periodic"]["Spec"], "");
    assert_eq!(v["Periodic"]["Specs"], json!(["*/15 * * * *", "0 3 * * *"]));
}

const SYSTEM_JOB: &str = r#"
job "agent" {
  type        = "system"
  datacenters = ["dc1", "dc2"]
  node_pool   = "all"
  priority    = 80
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }
  group "a" {
    task "a" {
      driver = "raw_exec"
      config { command = "/usr/bin/agent" }
      env { MODE = "node" }
    }
  }
}
"#;

#[test]
fn a_system_job_has_its_placement_and_no_reschedule_policy() {
    let v = nomad(
        SYSTEM_JOB,
        &JobMeta {
            status: "pending".into(),
            ..JobMeta::default()
        },
    );
    assert_eq!(v["Type"], "system");
    assert_eq!(v["Priority"], 80);
    assert_eq!(v["NodePool"], "all");
    assert_eq!(v["Datacenters"], json!(["dc1", "dc2"]));
    assert_eq!(
        v["Constraints"],
        json!([{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}])
    );
    assert_eq!(v["Stop"], false);
    assert_eq!(v["TaskGroups"][0]["ReschedulePolicy"], Value::Null);
    assert_eq!(
        v["TaskGroups"][0]["Tasks"][0]["Env"],
        json!({"MODE": "node"})
    );
    assert_eq!(v["TaskGroups"][0]["Tasks"][0]["Services"], Value::Null);
}

#[test]
fn a_job_stopped_by_its_user_or_its_spec_is_written_stopped() {
    let parsed = parse_one("job.hcl", SYSTEM_JOB).unwrap();
    let mut job = parsed.jobs[0].clone();
    let stopped = JobMeta {
        stop: true,
        ..JobMeta::default()
    };
    assert_eq!(job_to_nomad(&job, &stopped)["Stop"], true);
    job.stop = true;
    assert_eq!(job_to_nomad(&job, &JobMeta::default())["Stop"], true);
}

#[test]
fn a_list_entry_carries_the_counts_of_every_group() {
    let parsed = parse_one("job.hcl", PERIODIC_JOB).unwrap();
    let meta = JobMeta {
        status: "running".into(),
        create_index: 5,
        modify_index: 9,
        job_modify_index: 7,
        submit_time_ns: 1_000,
        ..JobMeta::default()
    };
    let counts = [(
        "r".to_string(),
        GroupSummary {
            running: 2,
            failed: 1,
            ..GroupSummary::default()
        },
    )];
    let children = ChildrenSummary {
        pending: 1,
        running: 2,
        dead: 3,
    };
    let stub = job_list_stub(&parsed.jobs[0], &meta, &counts.into(), children);
    assert_eq!(stub["ID"], "report");
    assert_eq!(
        (
            stub["Periodic"].as_bool(),
            stub["ParameterizedJob"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert_eq!(stub["Multiregion"], Value::Null);
    assert_eq!(stub["Datacenters"], json!(["*"]));
    assert_eq!(stub["JobModifyIndex"], 7);
    assert_eq!(
        stub["JobSummary"],
        json!({
            "JobID": "report", "Namespace": "default",
            "Summary": {"r": {"Queued": 0, "Complete": 0, "Failed": 1, "Running": 2,
                              "Starting": 0, "Lost": 0, "Unknown": 0}},
            "Children": {"Pending": 1, "Running": 2, "Dead": 3},
            "CreateIndex": 5, "ModifyIndex": 9,
        })
    );
}
