//! Smoke test of `nomos-latency`: runs the real bench, small (`--runs 2 --tasks 10`), against
//! the debug `nctl` and checks that it prints every figure and leaves no task process behind.
//!
//! The `nctl` used: `NCTL_BIN` if set, else `nctl` in this build's target dir (`scripts/test`
//! builds every binary first with `cargo build --workspace --bins`); when that is missing the
//! test builds it with `cargo build -p nctl`.

use std::path::PathBuf;
use std::process::Command;

/// The figures the last line must carry (with `--tasks 10`).
const FIGURES: &[&str] = &[
    "one_p50_ms",
    "one_p99_ms",
    "fifty_p50_ms",
    "fifty_p99_ms",
    "baseline_one_p50_ms",
    "ratio_one",
    "rss_mib_at_10",
];

fn nctl() -> PathBuf {
    if let Some(p) = std::env::var_os("NCTL_BIN") {
        return PathBuf::from(p);
    }
    // This test runs from <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let nctl = profile_dir.join("nctl");
    if !nctl.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "nctl"])
            .status()
            .expect("run cargo build -p nctl");
        assert!(status.success(), "cargo build -p nctl failed");
    }
    nctl
}

/// Processes whose environment carries the bench's marker (`NOMOS_LATENCY_OWNER=<its pid>`).
fn marked(pid: u32) -> Vec<String> {
    let want = format!("NOMOS_LATENCY_OWNER={pid}");
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == want.as_bytes()))
        })
        .map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            format!("{:?} {}", e.file_name(), String::from_utf8_lossy(&cmd))
        })
        .collect()
}

/// `key=value` pairs of a line.
fn pairs(line: &str) -> Vec<(&str, &str)> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

#[test]
fn the_bench_prints_every_figure_and_leaves_no_task_behind() {
    let child = Command::new(env!("CARGO_BIN_EXE_nomos-latency"))
        .arg("--nctl")
        .arg(nctl())
        .args(["--runs", "2", "--tasks", "10", "--settle-secs", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start nomos-latency");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for nomos-latency");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(out.status.success(), "nomos-latency failed; {context}");

    let last = stdout.lines().last().unwrap_or_default();
    let figures = pairs(last);
    for name in FIGURES {
        let value = figures.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        let number = value.and_then(|v| v.parse::<f64>().ok());
        assert!(
            number.is_some_and(|n| n > 0.0),
            "{name} missing or not a positive number in the last line {last:?}; {context}"
        );
    }
    assert!(
        stdout.contains("task processes left after the purge: 0"),
        "the purge left tasks; {context}"
    );
    assert_eq!(
        marked(pid),
        Vec::<String>::new(),
        "processes left behind; {context}"
    );
}

#[test]
fn a_missing_nctl_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_nomos-latency"))
        .args(["--nctl", "/nonexistent/nctl", "--runs", "1"])
        .output()
        .expect("run nomos-latency");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no nctl binary at /nonexistent/nctl")
            && stderr.contains("cargo build --release -p nctl"),
        "{stderr}"
    );
}
