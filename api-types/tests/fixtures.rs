//! The fixture corpus in `tests/fixtures/`, driven by one table test.
//!
//! Each job file is parsed. A file with a sibling `<file>.expected` must fail with exactly
//! those `file:line:col: message` lines (errors and warnings, sorted by position); any other
//! file must parse, printing exactly the lines of `<file>.warnings` (none if it is absent), and
//! every job in it must round-trip through the canonical JSON and the YAML manifest form.
//! `BLESS=1 cargo test -p nomos-api --test fixtures` rewrites the expectation files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nomos_api::{
    parse_source, parse_stored_spec, to_canonical_json, to_manifest_yaml, ParseOptions, StdFiles,
};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn job_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("hcl" | "nomad" | "yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    files
}

fn options() -> ParseOptions {
    ParseOptions {
        files: Some(Arc::new(StdFiles)),
        base_dir: Some(fixtures_dir()),
        ..ParseOptions::default()
    }
}

fn read_lines(path: &Path) -> Option<Vec<String>> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.lines().map(str::to_string).collect())
}

fn with_ext(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

#[test]
fn every_fixture_gives_exactly_its_expected_diagnostics() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for path in job_files() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let source = std::fs::read_to_string(&path).expect("read fixture");
        let result = parse_source(&name, &source, &options());
        let (ok, lines): (bool, Vec<String>) = match &result {
            Ok(p) => (true, p.warnings.iter().map(ToString::to_string).collect()),
            Err(d) => (false, d.iter().map(ToString::to_string).collect()),
        };
        let expected_path = with_ext(&path, ".expected");
        let warnings_path = with_ext(&path, ".warnings");
        if bless {
            let _ = std::fs::remove_file(&expected_path);
            let _ = std::fs::remove_file(&warnings_path);
            if !ok {
                std::fs::write(&expected_path, lines.join("\n") + "\n").unwrap();
            } else if !lines.is_empty() {
                std::fs::write(&warnings_path, lines.join("\n") + "\n").unwrap();
            }
            continue;
        }
        match read_lines(&expected_path) {
            Some(expected) => {
                if ok {
                    failures.push(format!("{name}: expected errors, but it parsed"));
                } else if lines != expected {
                    failures.push(format!(
                        "{name}:\n  expected: {expected:#?}\n  actual:   {lines:#?}"
                    ));
                }
            }
            None => {
                let expected = read_lines(&warnings_path).unwrap_or_default();
                if !ok {
                    failures.push(format!("{name}: expected to parse, got {lines:#?}"));
                } else if lines != expected {
                    failures.push(format!(
                        "{name} warnings:\n  expected: {expected:#?}\n  actual:   {lines:#?}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_is_large_enough() {
    let files = job_files();
    let invalid = files
        .iter()
        .filter(|p| with_ext(p, ".expected").exists())
        .count();
    assert!(files.len() >= 40, "only {} fixtures", files.len());
    assert!(invalid >= 15, "only {invalid} invalid fixtures");
}

#[test]
fn every_valid_fixture_round_trips_through_canonical_json_and_yaml() {
    for path in job_files() {
        if with_ext(&path, ".expected").exists() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let source = std::fs::read_to_string(&path).unwrap();
        let parsed =
            parse_source(&name, &source, &options()).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        assert!(!parsed.jobs.is_empty(), "{name}: no jobs");
        for job in &parsed.jobs {
            let json = to_canonical_json(job);
            let key = format!("/nomos/jobs/{}/{}", job.namespace, job.id);
            let again = parse_stored_spec(&key, json.as_bytes())
                .unwrap_or_else(|d| panic!("{name}: canonical: {d:?}"));
            assert_eq!(
                again.jobs,
                vec![job.clone()],
                "{name}: canonical JSON round trip"
            );
            assert_eq!(
                to_canonical_json(&again.jobs[0]),
                json,
                "{name}: canonical JSON is stable"
            );
            let yaml = to_manifest_yaml(job);
            let from_yaml = parse_source("roundtrip.yaml", &yaml, &ParseOptions::default())
                .unwrap_or_else(|d| panic!("{name}: manifest: {d:?}\n{yaml}"));
            assert_eq!(
                from_yaml.jobs,
                vec![job.clone()],
                "{name}: YAML manifest round trip"
            );
        }
    }
}

#[test]
fn every_valid_fixture_round_trips_through_hcl() {
    for path in job_files() {
        if with_ext(&path, ".expected").exists() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let source = std::fs::read_to_string(&path).unwrap();
        let parsed = parse_source(&name, &source, &options()).unwrap();
        for job in &parsed.jobs {
            let hcl = nomos_api::to_hcl(job);
            let again = parse_source("roundtrip.hcl", &hcl, &ParseOptions::default())
                .unwrap_or_else(|d| panic!("{name}: {d:?}\n{hcl}"));
            assert_eq!(
                again.jobs,
                vec![job.clone()],
                "{name}: HCL round trip\n{hcl}"
            );
        }
    }
}

#[test]
fn the_examples_in_manifests_examples_are_valid_without_warnings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("manifests/examples") {
        let path = entry.unwrap().path();
        let parsed = nomos_api::parse_file(&path, &ParseOptions::default())
            .unwrap_or_else(|d| panic!("{}: {d:#?}", path.display()));
        assert!(
            parsed.warnings.is_empty(),
            "{}: {:#?}",
            path.display(),
            parsed.warnings
        );
        assert!(!parsed.jobs.is_empty());
        count += 1;
    }
    assert!(count >= 2);
}

#[test]
fn formatting_a_fixture_keeps_its_meaning_and_is_idempotent() {
    for path in job_files() {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "hcl" | "nomad") || with_ext(&path, ".expected").exists() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let source = std::fs::read_to_string(&path).unwrap();
        let formatted = nomos_api::format_hcl(&source);
        assert_eq!(
            nomos_api::format_hcl(&formatted),
            formatted,
            "{name}: not idempotent"
        );
        let before = parse_source(&name, &source, &options()).unwrap();
        let after = parse_source(&name, &formatted, &options())
            .unwrap_or_else(|d| panic!("{name}: {d:#?}\n{formatted}"));
        assert_eq!(
            before.jobs, after.jobs,
            "{name}: meaning changed\n{formatted}"
        );
        let strip = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        assert_eq!(
            strip(&source),
            strip(&formatted),
            "{name}: only whitespace may change"
        );
    }
}
