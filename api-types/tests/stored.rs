//! Specs read back from the store: canonical JSON from the API, and JSON or YAML manifests
//! written by GitOps or `etcdctl put`. Errors name the key and the field path.

use nomos_api::{parse_source, parse_stored_spec, to_canonical_json, ParseOptions};

fn errors(key: &str, value: &str) -> Vec<String> {
    parse_stored_spec(key, value.as_bytes())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_yaml_manifest_written_by_etcdctl_is_accepted() {
    let yaml = "apiVersion: nomos/v1\nkind: Job\nmetadata:\n  name: web\nspec:\n  groups:\n    - name: g\n      tasks:\n        - name: t\n          driver: raw_exec\n";
    let parsed = parse_stored_spec("/nomos/jobs/default/web", yaml.as_bytes()).unwrap();
    assert_eq!(parsed.jobs[0].id, "web");
    assert_eq!(parsed.jobs[0].groups[0].count, 1);
}

#[test]
fn a_spec_without_id_takes_it_from_the_key() {
    let json = r#"{"groups": [{"name": "g", "tasks": [{"name": "t", "driver": "exec"}]}]}"#;
    let parsed = parse_stored_spec("/nomos/jobs/team-a/batch1", json.as_bytes()).unwrap();
    assert_eq!(parsed.jobs[0].id, "batch1");
    assert_eq!(parsed.jobs[0].namespace, "team-a");
}

#[test]
fn errors_name_the_key_and_the_field_path() {
    let json = "{\n  \"id\": \"web\",\n  \"groups\": [\n    {\"name\": \"g\", \"count\": -1, \"tasks\": [{\"name\": \"t\"}]}\n  ]\n}";
    assert_eq!(errors("/nomos/jobs/default/web", json), vec![
        "/nomos/jobs/default/web:4:19: groups[0].count: expected a non-negative whole number, found integer -1".to_string()
    ]);
    let json = r#"{"id": "web", "groups": [{"name": "g", "tasks": [{"name": "t"}]}]}"#;
    assert_eq!(errors("/nomos/jobs/default/web", json), vec![
        "/nomos/jobs/default/web:1:50: groups[0].tasks[0].driver: task \"t\" is missing `driver`".to_string()
    ]);
}

#[test]
fn a_spec_that_contradicts_its_key_is_refused() {
    let json = r#"{"id": "other", "groups": []}"#;
    assert_eq!(
        errors("/nomos/jobs/default/web", json),
        vec![
            "/nomos/jobs/default/web:1:2: id: the spec says \"other\" but the key says \"web\""
                .to_string()
        ]
    );
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert_eq!(
        errors("/nomos/jobs/default/x", ""),
        vec!["/nomos/jobs/default/x:0:0: empty value: expected a job spec".to_string()]
    );
    let bad = parse_stored_spec("/nomos/jobs/default/x", &[0xff, 0xfe, 0x00]).unwrap_err();
    assert!(bad[0].message.starts_with("value is not UTF-8"), "{bad:?}");
}

#[test]
fn canonical_json_is_stable_and_complete() {
    let src =
        "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n    }\n  }\n}\n";
    let job = &parse_source("j.hcl", src, &ParseOptions::default())
        .unwrap()
        .jobs[0];
    let json = to_canonical_json(job);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    // Every default is written out.
    assert_eq!(v["groups"][0]["restart"]["attempts"], 2);
    assert_eq!(
        v["groups"][0]["tasks"][0]["kill_timeout_ns"],
        5_000_000_000u64
    );
    assert_eq!(v["datacenters"], serde_json::json!(["*"]));
    let again = parse_stored_spec("/nomos/jobs/default/j", json.as_bytes()).unwrap();
    assert_eq!(to_canonical_json(&again.jobs[0]), json);
}

#[test]
fn yaml_manifests_keep_strings_that_look_like_other_yaml_types() {
    let tricky = [
        "yes",
        "no",
        "on",
        "off",
        "null",
        "~",
        "0x10",
        "1e3",
        "-",
        ": x",
        "#x",
        "'q'",
        "\"d\"",
        "true",
        "012",
        "1_000",
        ".inf",
        "@daily",
        "*",
        "a: b",
        "- item",
        "|",
        ">",
        "%{x}",
        "${attr.x}",
        "",
        " lead",
        "trail ",
        "multi\nline",
        "tab\there",
        "ünï",
    ];
    let meta: String = tricky
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "    k{i} = {}\n",
                serde_json::to_string(v)
                    .unwrap()
                    .replace("${", "$${")
                    .replace("%{", "%%{")
            )
        })
        .collect();
    let src = format!(
        "job \"y\" {{\n  meta = {{\n{meta}  }}\n  group \"g\" {{\n    task \"t\" {{\n      driver = \"exec\"\n    }}\n  }}\n}}\n"
    );
    let job = &parse_source("y.hcl", &src, &ParseOptions::default())
        .unwrap()
        .jobs[0];
    for (i, v) in tricky.iter().enumerate() {
        assert_eq!(job.meta[&format!("k{i}")], *v, "HCL read of {v:?}");
    }
    let yaml = nomos_api::to_manifest_yaml(job);
    let back = parse_source("y.yaml", &yaml, &ParseOptions::default())
        .unwrap_or_else(|d| panic!("{d:?}\n{yaml}"));
    assert_eq!(&back.jobs[0], job, "{yaml}");
}

#[test]
fn the_spec_hash_survives_the_store_and_tells_changed_specs_apart() {
    let json = r#"{"id": "web", "groups": [{"name": "g", "tasks": [{"name": "t", "driver": "raw_exec", "config": {"command": "/bin/true"}}]}]}"#;
    let job = parse_stored_spec("/nomos/jobs/default/web", json.as_bytes())
        .unwrap()
        .jobs
        .remove(0);
    // What a controller stores as a version, read back by an agent.
    let stored = serde_json::to_vec(&job).unwrap();
    let read: nomos_api::Job = serde_json::from_slice(&stored).unwrap();
    assert_eq!(nomos_api::spec_hash(&read), nomos_api::spec_hash(&job));
    assert_eq!(nomos_api::spec_hash(&job).len(), 16);
    let mut changed = job.clone();
    changed.groups[0].tasks[0].config =
        serde_json::from_str(r#"{"command": "/bin/false"}"#).unwrap();
    assert_ne!(nomos_api::spec_hash(&changed), nomos_api::spec_hash(&job));
}

#[test]
fn identity_blocks_parse_and_a_named_one_is_a_warning() {
    let src = r#"job "j" {
  group "g" {
    task "t" {
      driver = "exec"
      identity {
        env  = true
        file = true
      }
      identity {
        name = "vault_default"
        aud  = ["vault.io"]
      }
    }
  }
}
"#;
    let parsed = parse_source("j.hcl", src, &ParseOptions::default()).unwrap();
    let ids = &parsed.jobs[0].groups[0].tasks[0].identities;
    assert_eq!(ids.len(), 2);
    assert!(ids[0].is_default() && ids[0].env && ids[0].file);
    assert_eq!(ids[1].aud, vec!["vault.io".to_string()]);
    let warning = parsed
        .warnings
        .iter()
        .find(|w| w.message.contains("vault_default"))
        .unwrap_or_else(|| panic!("no warning in {:?}", parsed.warnings));
    assert_eq!(warning.line, 9, "{warning:?}");
    // The stored form round-trips and a spec without identities keeps its old shape.
    let json = to_canonical_json(&parsed.jobs[0]);
    assert!(json.contains("\"identities\""));
    let again = parse_stored_spec("/nomos/jobs/default/j", json.as_bytes()).unwrap();
    assert_eq!(again.jobs[0].groups[0].tasks[0].identities, *ids);

    let plain =
        "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n    }\n  }\n}\n";
    let plain = parse_source("j.hcl", plain, &ParseOptions::default()).unwrap();
    let json = to_canonical_json(&plain.jobs[0]);
    assert!(!json.contains("identities") && !json.contains("error_on_missing_key"));
}

#[test]
fn two_default_identities_are_refused_with_their_position() {
    let src = "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n      identity { env = true }\n      identity { file = true }\n    }\n  }\n}\n";
    let err = parse_source("j.hcl", src, &ParseOptions::default()).unwrap_err();
    assert!(
        err.iter().any(|d| d.message.contains("duplicate identity")),
        "{err:?}"
    );
}

#[test]
fn a_template_that_would_not_render_is_refused_at_validate() {
    let src = "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n      template {\n        destination = \"local/a\"\n        data = \"x {{ nomadvar \\\"p\\\" }}\"\n      }\n      template {\n        destination = \"local/b\"\n        data = \"{{ with nomadVar \\\"nomad/jobs/j\\\" }}{{ .pw }}{{ end }} {{ env \\\"HOME\\\" }}\"\n      }\n    }\n  }\n}\n";
    let err = parse_source("j.hcl", src, &ParseOptions::default()).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].message.contains("nomadvar") && err[0].message.contains("1:"),
        "{err:?}"
    );
    assert_eq!(err[0].line, 7, "{err:?}");
}

#[test]
fn change_scripts_and_grpc_checks_parse_from_hcl_and_nomad_json_and_stay_out_of_old_specs() {
    let src = r#"job "j" {
  group "g" {
    network {
      port "rpc" {}
    }
    service {
      name = "rpc"
      port = "rpc"
      check {
        type                    = "grpc"
        grpc_service            = "orders"
        grpc_use_tls            = true
        tls_server_name         = "orders.internal"
        interval                = "5s"
        failures_before_warning = 2
      }
    }
    task "t" {
      driver = "exec"
      template {
        data        = "x"
        destination = "local/x"
        change_mode = "script"
        change_script {
          command = "/bin/reload"
          args    = ["now"]
        }
      }
    }
  }
}
"#;
    let parsed = parse_source("j.hcl", src, &ParseOptions::default()).unwrap();
    let job = &parsed.jobs[0];
    let check = &job.groups[0].services[0].checks[0];
    assert_eq!(
        (
            check.grpc_service.as_str(),
            check.grpc_use_tls,
            check.failures_before_warning,
            check.tls_server_name.as_str()
        ),
        ("orders", true, 2, "orders.internal")
    );
    let script = job.groups[0].tasks[0].templates[0]
        .change_script
        .clone()
        .unwrap();
    assert_eq!(script.command, "/bin/reload");
    assert_eq!(script.args, vec!["now".to_string()]);
    assert_eq!(script.timeout_ns, 5_000_000_000, "Nomad's default timeout");
    assert!(!script.fail_on_error);
    let json = to_canonical_json(job);
    let again = parse_stored_spec("/nomos/jobs/default/j", json.as_bytes()).unwrap();
    assert_eq!(again.jobs[0], *job);

    let nomad = r#"{"Job": {"ID": "n", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t",
      "Driver": "exec", "Services": [{"Name": "s", "Checks": [{"Type": "grpc",
      "GRPCUseTLS": true, "TLSServerName": "s.internal"}]}],
      "Templates": [{"EmbeddedTmpl": "x", "DestPath": "local/x",
      "ChangeMode": "script", "ChangeScript": {"Command": "/bin/reload", "Args": ["a"],
      "Timeout": 3000000000, "FailOnError": true}}]}]}]}}"#;
    let parsed = parse_source("n.json", nomad, &ParseOptions::default()).unwrap();
    let script = parsed.jobs[0].groups[0].tasks[0].templates[0]
        .change_script
        .clone()
        .unwrap();
    assert_eq!(
        (script.timeout_ns, script.fail_on_error),
        (3_000_000_000, true)
    );
    let check = &parsed.jobs[0].groups[0].tasks[0].services[0].checks[0];
    assert_eq!(check.tls_server_name, "s.internal");

    // A spec without them keeps its stored form, and so its hash.
    let plain = "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n      template {\n        data = \"x\"\n        destination = \"local/x\"\n      }\n    }\n  }\n}\n";
    let plain = parse_source("j.hcl", plain, &ParseOptions::default()).unwrap();
    let json = to_canonical_json(&plain.jobs[0]);
    for field in [
        "change_script",
        "grpc_service",
        "grpc_use_tls",
        "tls_server_name",
        "failures_before_warning",
    ] {
        assert!(!json.contains(field), "{field} in {json}");
    }
}
