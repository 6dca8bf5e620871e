//! HCL input variables, locals and `file()`: where values come from, in which order, and
//! the errors when they are missing or wrong.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use nomos_api::{parse_source, Job, MemFiles, ParseOptions};

const JOB: &str = r#"
variable "image" {
  type = string
}
variable "replicas" {
  type    = number
  default = 1
}
variable "tags" {
  type    = list(string)
  default = []
}
variable "debug" {
  type    = bool
  default = false
}
job "v" {
  meta = {
    debug = var.debug
    tags  = join(",", var.tags)
  }
  group "g" {
    count = var.replicas
    task "t" {
      driver = "docker"
      config {
        image = var.image
      }
    }
  }
}
"#;

fn parse(opts: &ParseOptions) -> Result<Job, Vec<String>> {
    parse_source("job.hcl", JOB, opts)
        .map(|p| p.jobs.into_iter().next().expect("one job"))
        .map_err(|d| d.iter().map(ToString::to_string).collect())
}

fn files(entries: &[(&str, &str)]) -> Option<Arc<dyn nomos_api::FileSource>> {
    let map: HashMap<PathBuf, String> = entries
        .iter()
        .map(|(k, v)| (PathBuf::from(k), v.to_string()))
        .collect();
    Some(Arc::new(MemFiles(map)))
}

#[test]
fn a_variable_without_a_value_is_an_error_naming_it() {
    let errs = parse(&ParseOptions::default()).unwrap_err();
    assert_eq!(errs, vec![
        "job.hcl:2:10: variable \"image\" has no value: give it a default, or set it with -var image=..., a -var-file, or NOMAD_VAR_image".to_string()
    ]);
}

#[test]
fn var_flags_are_converted_to_the_declared_type() {
    let opts = ParseOptions {
        vars: vec![
            ("image".into(), "redis:7".into()),
            ("replicas".into(), "3".into()),
            ("tags".into(), r#"["a", "b"]"#.into()),
            ("debug".into(), "true".into()),
        ],
        ..ParseOptions::default()
    };
    let job = parse(&opts).unwrap();
    assert_eq!(job.groups[0].count, 3);
    assert_eq!(job.groups[0].tasks[0].config["image"], "redis:7");
    assert_eq!(job.meta["tags"], "a,b");
    assert_eq!(job.meta["debug"], "true");
}

#[test]
fn precedence_is_default_then_env_then_var_files_then_var_flags() {
    let env_only = ParseOptions {
        env: vec![
            ("NOMAD_VAR_image".into(), "from-env".into()),
            ("NOMAD_VAR_replicas".into(), "2".into()),
            ("PATH".into(), "/bin".into()),
        ],
        ..ParseOptions::default()
    };
    let job = parse(&env_only).unwrap();
    assert_eq!(job.groups[0].tasks[0].config["image"], "from-env");
    assert_eq!(job.groups[0].count, 2);

    let with_file = ParseOptions {
        var_files: vec!["a.hcl".into(), "b.json".into()],
        files: files(&[
            ("a.hcl", "image = \"from-file\"\nreplicas = 4\n"),
            ("b.json", r#"{"replicas": 5}"#),
        ]),
        ..env_only.clone()
    };
    let job = parse(&with_file).unwrap();
    assert_eq!(job.groups[0].tasks[0].config["image"], "from-file");
    assert_eq!(job.groups[0].count, 5, "later var files win");

    let with_flag = ParseOptions {
        vars: vec![
            ("image".into(), "from-flag".into()),
            ("image".into(), "last-flag".into()),
        ],
        ..with_file
    };
    let job = parse(&with_flag).unwrap();
    assert_eq!(job.groups[0].tasks[0].config["image"], "last-flag");
}

#[test]
fn a_badly_typed_value_and_an_undeclared_var_flag_are_errors() {
    let opts = ParseOptions {
        vars: vec![
            ("image".into(), "x".into()),
            ("replicas".into(), "three".into()),
            ("nope".into(), "1".into()),
        ],
        ..ParseOptions::default()
    };
    let errs = parse(&opts).unwrap_err();
    assert_eq!(
        errs,
        vec![
            "job.hcl:0:0: -var \"nope\": no variable \"nope\" is declared in this file".to_string(),
            "job.hcl:5:10: variable \"replicas\" from -var: expected a number, found \"three\""
                .to_string(),
        ]
    );
}

#[test]
fn a_missing_var_file_is_reported() {
    let opts = ParseOptions {
        var_files: vec!["missing.hcl".into()],
        files: files(&[]),
        vars: vec![("image".into(), "x".into())],
        ..ParseOptions::default()
    };
    let errs = parse(&opts).unwrap_err();
    assert_eq!(
        errs,
        vec!["missing.hcl:0:0: cannot read missing.hcl: no such file".to_string()]
    );
}

#[test]
fn file_reads_go_through_the_file_source_relative_to_base_dir() {
    let src = "job \"f\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n      config {\n        command = trimspace(file(\"cmd.txt\"))\n      }\n    }\n  }\n}\n";
    let opts = ParseOptions {
        base_dir: Some("/jobs".into()),
        files: files(&[("/jobs/cmd.txt", "/bin/echo\n")]),
        ..ParseOptions::default()
    };
    let job = &parse_source("f.hcl", src, &opts).unwrap().jobs[0];
    assert_eq!(job.groups[0].tasks[0].config["command"], "/bin/echo");

    // Without a file source (pure mode) the read is an error at the call.
    let errs = parse_source("f.hcl", src, &ParseOptions::default()).unwrap_err();
    assert_eq!(
        errs[0].to_string(),
        "f.hcl:6:29: file(): cannot read cmd.txt: file reads are not available here"
    );
}

#[test]
fn locals_resolve_in_any_order_and_cycles_are_errors() {
    let ok = "locals {\n  b = \"${local.a}-b\"\n  a = upper(\"a\")\n}\njob \"l\" {\n  meta = { x = local.b }\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n    }\n  }\n}\n";
    let job = &parse_source("l.hcl", ok, &ParseOptions::default())
        .unwrap()
        .jobs[0];
    assert_eq!(job.meta["x"], "A-b");

    let cyclic = "locals {\n  a = local.b\n  b = local.a\n}\njob \"l\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n    }\n  }\n}\n";
    let errs: Vec<String> = parse_source("l.hcl", cyclic, &ParseOptions::default())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        vec![
            "l.hcl:2:7: local \"a\" is part of a cycle through local \"b\"".to_string(),
            "l.hcl:3:7: local \"b\" is part of a cycle through local \"a\"".to_string(),
        ]
    );
}

#[test]
fn runtime_references_stay_literal_while_variables_are_expanded() {
    let src = "variable \"dc\" {\n  default = \"east\"\n}\njob \"r\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n      env {\n        A = \"${var.dc}/${node.unique.name}/${NOMAD_ALLOC_ID}/${upper(var.dc)}\"\n        B = \"%{ if var.dc == \"east\" }e%{ else }w%{ endif }\"\n      }\n    }\n  }\n}\n";
    let job = &parse_source("r.hcl", src, &ParseOptions::default())
        .unwrap()
        .jobs[0];
    assert_eq!(
        job.groups[0].tasks[0].env["A"],
        "east/${node.unique.name}/${NOMAD_ALLOC_ID}/EAST"
    );
    assert_eq!(job.groups[0].tasks[0].env["B"], "e");
}

#[test]
fn a_validation_with_can_and_regex_accepts_and_rejects_values() {
    let src = r#"
variable "image" {
  type = string
  validation {
    condition     = can(regex("^[a-z0-9./-]+:[0-9.]+$", var.image))
    error_message = "image must be NAME:VERSION"
  }
}
job "v" {
  group "g" {
    task "t" {
      driver = "docker"
      config {
        image = try(regex("^(.*):", var.image)[0], "none")
      }
    }
  }
}
"#;
    let with = |image: &str| ParseOptions {
        vars: vec![("image".into(), image.into())],
        ..ParseOptions::default()
    };
    let job = parse_source("job.hcl", src, &with("redis:7.2"))
        .map(|p| p.jobs.into_iter().next().expect("one job"))
        .expect("a valid image passes the validation");
    assert_eq!(job.groups[0].tasks[0].config["image"], "redis");
    let errs: Vec<String> = parse_source("job.hcl", src, &with("Redis latest"))
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("job.hcl:5:") && errs[0].ends_with("image must be NAME:VERSION"),
        "{errs:?}"
    );
}
