//! A seed fixes a whole run: running it again gives the same trace, line for line (the
//! evaluations the controllers record included), and so the same digest, whatever else runs
//! beside it; and the seed matters (two seeds tell different stories). Without this, a
//! failing seed could not be replayed.

use nomos_sim::{run_blocking, RunConfig, RunReport};

/// Runs the seeds side by side, each on its own thread (and its own runtime).
fn run_side_by_side(seeds: [u64; 2]) -> [RunReport; 2] {
    let config = RunConfig::default();
    std::thread::scope(|scope| {
        let runs = seeds.map(|seed| scope.spawn(move || run_blocking(seed, config)));
        runs.map(|h| h.join().expect("a run does not panic"))
    })
}

/// The index of the first line where two traces differ, with both lines.
fn first_difference(a: &RunReport, b: &RunReport) -> Option<(usize, String, String)> {
    let n = a.trace.lines.len().max(b.trace.lines.len());
    (0..n).find_map(|i| {
        let (x, y) = (a.trace.lines.get(i), b.trace.lines.get(i));
        (x != y).then(|| {
            let show = |l: Option<&String>| l.cloned().unwrap_or_else(|| "<end>".into());
            (i, show(x), show(y))
        })
    })
}

#[test]
fn one_seed_run_twice_tells_the_same_story() {
    let [first, second] = run_side_by_side([7, 7]);
    if let Some((line, a, b)) = first_difference(&first, &second) {
        panic!("seed 7 ran twice differs at trace line {line}:\n  first:  {a}\n  second: {b}");
    }
    assert_eq!(first.digest, second.digest);
    // The controllers' evaluations are part of the story, so they replay too.
    assert!(
        first.trace.lines.iter().any(|l| l.contains(" eval ")),
        "seed 7 records evaluations"
    );
    assert_eq!(first.simulated_ms, second.simulated_ms);
    assert_eq!(first.passed(), second.passed());
}

#[test]
fn two_seeds_tell_different_stories() {
    let [a, b] = run_side_by_side([1, 2]);
    assert_ne!(a.digest, b.digest, "seeds 1 and 2 gave the same digest");
    assert_ne!(a.trace.lines, b.trace.lines);
}
