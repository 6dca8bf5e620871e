//! `nctl validate` run as a real binary: exit codes, diagnostics and output formats.

use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../api-types/tests/fixtures")
        .join(name)
}

fn nctl(args: &[&str]) -> (i32, String, String) {
    nctl_in(std::path::Path::new("."), &[], args)
}

#[test]
fn a_valid_file_exits_zero_and_prints_nothing() {
    let f = fixture("web.hcl");
    let (code, out, err) = nctl(&["validate", f.to_str().unwrap()]);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "");
    assert_eq!(err, "");
}

#[test]
fn warnings_are_printed_but_the_exit_code_is_zero() {
    let f = fixture("unknown-driver.hcl");
    let (code, _, err) = nctl(&["validate", f.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        err.contains("unknown-driver.hcl:4:7: warning: unknown driver \"hyperv\""),
        "{err}"
    );
}

#[test]
fn an_invalid_file_exits_one_with_positioned_errors() {
    let good = fixture("web.hcl");
    let bad = fixture("bad-many.hcl");
    let (code, out, err) = nctl(&["validate", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 7, "{err}");
    assert!(
        lines[0]
            .ends_with("bad-many.hcl:4:13: count: expected a non-negative whole number, found -1"),
        "{err}"
    );
    assert!(err.contains("bad-many.hcl:11:7: unknown attribute \"drvier\" in task block (did you mean \"driver\"?)"), "{err}");
}

#[test]
fn json_output_is_the_canonical_form() {
    let f = fixture("web.hcl");
    let (code, out, err) = nctl(&["validate", "-o", "json", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["id"], "web");
    assert_eq!(v["groups"][0]["count"], 3);
    assert_eq!(v["update"]["min_healthy_time_ns"], 30_000_000_000u64);
}

#[test]
fn yaml_output_converts_hcl_to_a_manifest_that_validates() {
    let f = fixture("hcl1-port-map.nomad");
    let (code, out, err) = nctl(&["validate", "-o", "yaml", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("apiVersion: nomos/v1\nkind: Job\n"),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("old-web.yaml");
    std::fs::write(&manifest, &out).unwrap();
    let (code, _, err) = nctl(&["validate", manifest.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn vars_and_var_files_set_variables() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.hcl");
    std::fs::write(
        &job,
        "variable \"image\" {}\nvariable \"n\" {\n  type = number\n}\njob \"v\" {\n  group \"g\" {\n    count = var.n\n    task \"t\" {\n      driver = \"docker\"\n      config {\n        image = var.image\n      }\n    }\n  }\n}\n",
    )
    .unwrap();
    let (code, _, err) = nctl(&["validate", job.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("job.hcl:1:10: variable \"image\" has no value"),
        "{err}"
    );
    let vars = dir.path().join("vars.hcl");
    std::fs::write(&vars, "n = 4\n").unwrap();
    let (code, out, err) = nctl(&[
        "validate",
        "-o",
        "json",
        "--var",
        "image=redis:7",
        "--var-file",
        vars.to_str().unwrap(),
        job.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["groups"][0]["count"], 4);
    assert_eq!(v["groups"][0]["tasks"][0]["config"]["image"], "redis:7");
}

#[test]
fn nomad_style_single_dash_var_flags_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.hcl");
    std::fs::write(
        &job,
        "variable \"image\" {}\nvariable \"n\" {\n  type = number\n}\njob \"v\" {\n  group \"g\" {\n    count = var.n\n    task \"t\" {\n      driver = \"docker\"\n      config {\n        image = var.image\n      }\n    }\n  }\n}\n",
    )
    .unwrap();
    let vars = dir.path().join("vars.hcl");
    std::fs::write(&vars, "n = 2\n").unwrap();
    let var_file = format!("-var-file={}", vars.display());
    let (code, out, err) = nctl(&[
        "validate",
        "-var",
        "image=nginx:1",
        &var_file,
        "-o",
        "json",
        job.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["groups"][0]["count"], 2);
    assert_eq!(v["groups"][0]["tasks"][0]["config"]["image"], "nginx:1");
    let (code, out, err) = nctl(&[
        "validate",
        "-var=image=redis:7",
        "-var=n=3",
        "-o",
        "json",
        job.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["groups"][0]["count"], 3);
    assert_eq!(v["groups"][0]["tasks"][0]["config"]["image"], "redis:7");
}

#[test]
fn hcl_output_of_a_manifest_validates_as_hcl() {
    let f = fixture("manifest-full.yaml");
    let (code, out, err) = nctl(&["validate", "-o", "hcl", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("job \"full\" {\n"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let hcl = dir.path().join("full.hcl");
    std::fs::write(&hcl, &out).unwrap();
    let (code, json_from_hcl, err) = nctl(&["validate", "-o", "json", hcl.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (_, json_from_yaml, _) = nctl(&["validate", "-o", "json", f.to_str().unwrap()]);
    assert_eq!(json_from_hcl, json_from_yaml);
}

#[test]
fn standard_input_is_read_for_a_dash() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nctl"))
        .args(["validate", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"job \"x\" {\n  grup \"g\" {}\n}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("<stdin>:2:3: unknown block \"grup\" in job block (did you mean \"group\"?)"),
        "{err}"
    );
}

#[test]
fn fmt_rewrites_layout_keeps_comments_and_check_reports() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.nomad");
    std::fs::write(&job, "# keep me\njob \"x\" {\n    datacenters=[\"dc1\"]\n  group \"g\" {\n  task \"t\" {\n  driver = \"raw_exec\" // and me\n  }\n  }\n}\n").unwrap();
    let (code, out, _) = nctl(&["fmt", "--check", job.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("job.nomad"), "{out}");
    let (code, _, err) = nctl(&["fmt", job.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&job).unwrap();
    assert_eq!(
        text,
        "# keep me\njob \"x\" {\n  datacenters = [\"dc1\"]\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\" // and me\n    }\n  }\n}\n"
    );
    let (code, out, _) = nctl(&["fmt", "--check", job.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, ""));
}

/// Runs `nctl ARGS` in `dir` with `env` set.
fn nctl_in(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nctl"))
        .args(args)
        .current_dir(dir)
        .env_remove("NOMOS_NAMESPACE")
        .envs(env.iter().copied())
        .output()
        .expect("run nctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn var_files_are_relative_to_the_working_directory_and_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("jobs")).unwrap();
    std::fs::write(
        dir.path().join("jobs/job.hcl"),
        "variable \"image\" {}\nvariable \"n\" {\n  type = number\n}\njob \"v\" {\n  group \"g\" {\n    count = var.n\n    task \"t\" {\n      driver = \"docker\"\n      config {\n        image = var.image\n      }\n    }\n  }\n}\n",
    )
    .unwrap();
    // A decoy beside the job file: Nomad reads var files from the working directory.
    std::fs::write(
        dir.path().join("jobs/base.hcl"),
        "n = 99\nimage = \"decoy\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("base.hcl"), "n = 2\nimage = \"nginx:1\"\n").unwrap();
    std::fs::write(dir.path().join("prod.hcl"), "n = 5\n").unwrap();
    let args = [
        "validate",
        "-o",
        "json",
        "--var-file",
        "base.hcl",
        "-var-file",
        "prod.hcl",
        "jobs/job.hcl",
    ];
    let (code, out, err) = nctl_in(dir.path(), &[], &args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["groups"][0]["count"], 5, "the later var file wins");
    assert_eq!(v["groups"][0]["tasks"][0]["config"]["image"], "nginx:1");
    // From the job's folder, `base.hcl` is the decoy.
    let (code, out, err) = nctl_in(
        &dir.path().join("jobs"),
        &[],
        &[
            "validate",
            "-o",
            "json",
            "--var-file",
            "base.hcl",
            "job.hcl",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["groups"][0]["count"], 99);
}

#[test]
fn the_namespace_flag_and_env_name_the_namespace_of_a_job_without_one() {
    let f = fixture("web.hcl");
    let file = f.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ns_of = |env: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec!["validate", "-o", "json"];
        args.extend(extra);
        args.push(file);
        let (code, out, err) = nctl_in(dir.path(), env, &args);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["namespace"].as_str().unwrap().to_string()
    };
    assert_eq!(ns_of(&[], &[]), "default");
    assert_eq!(ns_of(&[], &["-n", "team-a"]), "team-a");
    assert_eq!(ns_of(&[("NOMOS_NAMESPACE", "team-b")], &[]), "team-b");
    assert_eq!(ns_of(&[], &["-namespace", "team-c"]), "team-c");
}

#[test]
fn pathexpand_reads_home_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.hcl"),
        "job \"p\" {\n  meta {\n    key = pathexpand(\"~/keys/id\")\n  }\n  group \"g\" {\n    task \"t\" {\n      driver = \"docker\"\n      config {\n        image = \"x\"\n      }\n    }\n  }\n}\n",
    )
    .unwrap();
    let (code, out, err) = nctl_in(
        dir.path(),
        &[("HOME", "/home/ada")],
        &["validate", "-o", "json", "job.hcl"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["meta"]["key"], "/home/ada/keys/id");
}
