//! Random simulation runs over a range of seeds, as CI runs them: seeds `0..200` by default, or
//! the range in `NOMOS_SIM_SEEDS` (`"0..1000"`, or `"500"` for `0..500`). The seeds are shared
//! out over every available core; the test fails with the explanation (broken invariant, replay
//! command, end of the trace) of every seed that failed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use nomos_sim::{run_blocking, RunConfig, RunReport};

const DEFAULT_SEEDS: std::ops::Range<u64> = 0..200;
const TRACE_TAIL: usize = 60;

/// The seeds to run, from `NOMOS_SIM_SEEDS` when set.
fn seeds_to_run() -> std::ops::Range<u64> {
    let Ok(text) = std::env::var("NOMOS_SIM_SEEDS") else {
        return DEFAULT_SEEDS;
    };
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("NOMOS_SIM_SEEDS wants A..B or N, found {text:?} ({e})"))
    };
    match text.split_once("..") {
        Some((a, b)) => parse(a)..parse(b),
        None => 0..parse(&text),
    }
}

/// Runs every seed of `seeds` on `threads` threads; returns the reports of the failing ones,
/// by seed.
fn run_seeds(seeds: std::ops::Range<u64>, threads: usize) -> Vec<RunReport> {
    let next = AtomicU64::new(seeds.start);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    return;
                }
                let report = run_blocking(seed, RunConfig::default());
                if !report.passed() {
                    failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(report);
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    failures.sort_by_key(|r| r.seed);
    failures
}

#[test]
fn every_seed_keeps_every_invariant_and_converges() {
    let seeds = seeds_to_run();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let failures = run_seeds(seeds.clone(), threads);
    eprintln!(
        "seeds {seeds:?}: {} failed, in {:.1} s on {threads} thread(s)",
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        return;
    }
    let failing: Vec<String> = failures.iter().map(|r| r.seed.to_string()).collect();
    let explained: Vec<String> = failures.iter().map(|r| r.explain(TRACE_TAIL)).collect();
    panic!(
        "{} of the seeds {seeds:?} failed: {}\n\n{}",
        failures.len(),
        failing.join(", "),
        explained.join("\n")
    );
}
