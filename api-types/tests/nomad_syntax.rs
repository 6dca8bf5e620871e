//! Nomad job-file syntax that Nomos reads with Nomad's meaning: a `task` straight in the job,
//! `max_run_duration`, `cni { args }`, `to = -1`, `memory_max = -1`, `check_restart` in a
//! service, Connect gateway groups without a task, `pathexpand()`, Nomad 0.1's port lists;
//! and the parse options `nctl` passes (`-n` for a job without a namespace, `-var-file`
//! paths as given). The diagnostics these files give are pinned in `tests/fixtures/nomad-*`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nomos_api::defaults::CONNECT_GATEWAY_DRIVER;
use nomos_api::{memory_bounds, parse_source, Job, MemFiles, ParseOptions, StdFiles};

fn fixture(name: &str) -> Job {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let text = std::fs::read_to_string(dir.join(name)).expect("fixture");
    let options = ParseOptions {
        files: Some(Arc::new(StdFiles)),
        base_dir: Some(dir),
        ..ParseOptions::default()
    };
    let parsed = parse_source(name, &text, &options).expect("fixture parses");
    parsed.jobs.into_iter().next().expect("one job")
}

#[test]
fn a_task_in_the_job_becomes_a_group_of_its_name_before_the_written_groups() {
    let job = fixture("nomad-lone-task.hcl");
    let names: Vec<&str> = job.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["dump", "upload"]);
    let dump = &job.groups[0];
    assert_eq!(dump.count, 1);
    assert_eq!(dump.tasks.len(), 1);
    assert_eq!(dump.tasks[0].name, "dump");
    assert_eq!(dump.tasks[0].driver, "raw_exec");
}

#[test]
fn a_task_in_the_job_is_reported_at_its_own_position() {
    let src = "job \"j\" {\n  task \"t\" {\n    driver = \"docker\"\n    config { image = \"x\" }\n    resources { memory = 5 }\n  }\n}\n";
    let errs = parse_source("j.hcl", src, &ParseOptions::default()).unwrap_err();
    let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["j.hcl:5:17: memory must be at least 10 MB, found 5"]
    );
}

#[test]
fn max_run_duration_and_an_unlimited_memory_max_are_kept() {
    let job = fixture("nomad-lone-task.hcl");
    let upload = &job.groups[1];
    assert_eq!(upload.max_run_duration_ns, Some(15 * 60 * 1_000_000_000));
    assert_eq!(job.groups[0].max_run_duration_ns, None);
    let r = &upload.tasks[0].resources;
    assert_eq!(r.memory_max_mb, -1);
    // No hard limit; `memory` stays the reservation.
    assert_eq!(
        memory_bounds(r.memory_mb, r.memory_max_mb),
        (None, Some(64))
    );
}

#[test]
fn memory_bounds_read_memory_and_memory_max_as_nomad_does() {
    let cases = [
        // (memory, memory_max) → (hard, soft)
        ((300, 0), (Some(300), None)),
        ((300, 500), (Some(500), Some(300))),
        ((300, -1), (None, Some(300))),
        ((0, 0), (None, None)),
    ];
    for ((mem, max), want) in cases {
        assert_eq!(
            memory_bounds(mem, max),
            want,
            "memory {mem}, memory_max {max}"
        );
    }
}

#[test]
fn network_forms_read_as_nomad_reads_them() {
    let job = fixture("nomad-network-forms.hcl");
    let g = &job.groups[0];
    let cni = g.networks[0].cni.as_ref().expect("cni block kept");
    assert_eq!(cni.args.get("Tier").map(String::as_str), Some("public"));
    let admin = &g.networks[0].ports[0];
    assert_eq!(
        (admin.label.as_str(), admin.to),
        ("admin", 0),
        "to = -1 is the allocated port"
    );
    let old: Vec<(&str, u16)> = g.networks[1]
        .ports
        .iter()
        .map(|p| (p.label.as_str(), p.static_port))
        .collect();
    assert_eq!(old, [("2222", 2222), ("web", 0)]);
}

#[test]
fn check_restart_in_a_service_is_kept_for_its_checks() {
    let job = fixture("nomad-network-forms.hcl");
    let s = &job.groups[0].services[0];
    let cr = s.check_restart.expect("service check_restart");
    assert_eq!((cr.limit, cr.grace_ns), (2, 30_000_000_000));
}

#[test]
fn a_gateway_group_gets_the_task_nomad_injects_and_is_never_placed() {
    let job = fixture("nomad-connect-gateway.hcl");
    let g = &job.groups[1];
    assert_eq!(g.tasks.len(), 1);
    let t = &g.tasks[0];
    assert_eq!(t.name, "connect-ingress-public-ingress");
    assert_eq!(t.driver, CONNECT_GATEWAY_DRIVER);
    assert_eq!(t.ignored["kind"], "connect-ingress:public-ingress");
    // The group that has its own task is left alone.
    assert_eq!(job.groups[0].tasks[0].name, "api");
}

#[test]
fn pathexpand_expands_the_home_directory_from_the_given_environment() {
    let src = r#"job "j" {
  meta {
    key  = pathexpand("~/.ssh/id_ed25519")
    home = pathexpand("~")
    abs  = pathexpand("/etc/hosts")
  }
  group "g" {
    task "t" {
      driver = "docker"
      config { image = "x" }
    }
  }
}
"#;
    let options = ParseOptions {
        env: vec![("HOME".into(), "/home/ada".into())],
        ..ParseOptions::default()
    };
    let job = parse_source("j.hcl", src, &options).unwrap().jobs.remove(0);
    assert_eq!(job.meta["key"], "/home/ada/.ssh/id_ed25519");
    assert_eq!(job.meta["home"], "/home/ada");
    assert_eq!(job.meta["abs"], "/etc/hosts");
    let errs = parse_source("j.hcl", src, &ParseOptions::default()).unwrap_err();
    assert!(
        errs[0].to_string().starts_with("j.hcl:3:12: pathexpand(): cannot expand \"~/.ssh/id_ed25519\": the home directory is not known here"),
        "{}",
        errs[0]
    );
}

const SIMPLE: &str = r#"variable "image" {}
job "j" {
  group "g" {
    task "t" {
      driver = "docker"
      config { image = var.image }
    }
  }
}
"#;

#[test]
fn the_given_namespace_applies_to_a_job_that_names_none() {
    let options = ParseOptions {
        namespace: Some("team-a".into()),
        vars: vec![("image".into(), "x".into())],
        ..ParseOptions::default()
    };
    let job = parse_source("j.hcl", SIMPLE, &options)
        .unwrap()
        .jobs
        .remove(0);
    assert_eq!(job.namespace, "team-a");
    let named = SIMPLE.replace("job \"j\" {", "job \"j\" {\n  namespace = \"ops\"");
    let job = parse_source("j.hcl", &named, &options)
        .unwrap()
        .jobs
        .remove(0);
    assert_eq!(
        job.namespace, "ops",
        "the file's own namespace wins, as in Nomad"
    );
}

#[test]
fn var_files_are_read_as_given_not_from_the_job_files_folder() {
    let files = MemFiles(HashMap::from([
        (
            PathBuf::from("vars.hcl"),
            "image = \"from-cwd\"\n".to_string(),
        ),
        (
            PathBuf::from("jobs/vars.hcl"),
            "image = \"from-job-folder\"\n".to_string(),
        ),
    ]));
    let options = ParseOptions {
        var_files: vec![PathBuf::from("vars.hcl")],
        base_dir: Some(PathBuf::from("jobs")),
        files: Some(Arc::new(files)),
        ..ParseOptions::default()
    };
    let job = parse_source("jobs/j.hcl", SIMPLE, &options)
        .unwrap()
        .jobs
        .remove(0);
    assert_eq!(job.groups[0].tasks[0].config["image"], "from-cwd");
}
