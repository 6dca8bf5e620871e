//! The figures: percentiles of a set of durations (nearest rank), the summary line each
//! measurement prints, and the machine-readable last line.

use std::time::Duration;

/// p50, p99 and the maximum of one measurement, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub samples: usize,
}

/// The `p`-th percentile (0 < p ≤ 100) of `sorted` by the nearest-rank method: the smallest
/// sample that at least `p`% of the samples do not exceed. With 50 samples p99 is the maximum.
/// `None` for no samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The summary of `samples` (in any order); `None` for no samples.
pub fn summarize(samples: &[Duration]) -> Option<Summary> {
    let mut sorted = samples.to_vec();
    sorted.sort();
    Some(Summary {
        p50_ms: ms(percentile(&sorted, 50.0)?),
        p99_ms: ms(percentile(&sorted, 99.0)?),
        max_ms: ms(*sorted.last()?),
        samples: sorted.len(),
    })
}

/// `measured` over `baseline`, or 0 when the baseline is zero (nothing to compare with).
pub fn ratio(measured: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        measured / baseline
    } else {
        0.0
    }
}

/// One human-readable line: `what: p50 1.234 ms, p99 2.345 ms, max 3.456 ms (50 runs)`.
pub fn line(what: &str, s: &Summary) -> String {
    format!(
        "{what}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} runs)",
        s.p50_ms, s.p99_ms, s.max_ms, s.samples
    )
}

/// Everything the last line reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub one: Summary,
    pub fifty: Summary,
    pub baseline_one: Summary,
    pub baseline_fifty: Summary,
    /// How many tasks ran when the memory was read.
    pub tasks: usize,
    /// VmRSS with `tasks` running in a fresh `nctl dev` (before the latency runs).
    pub fresh_rss_mib: f64,
    /// VmRSS with `tasks` running again after the latency runs (their store history kept).
    pub rss_mib: f64,
    pub hwm_mib: f64,
    pub idle_rss_mib: f64,
}

/// The machine-readable last line: `one_p50_ms=… one_p99_ms=… fifty_p50_ms=… fifty_p99_ms=…
/// baseline_one_p50_ms=… ratio_one=… fresh_rss_mib_at_<tasks>=… rss_mib_at_<tasks>=…`, then
/// the extra figures.
pub fn last_line(f: &Figures) -> String {
    format!(
        "one_p50_ms={:.3} one_p99_ms={:.3} fifty_p50_ms={:.3} fifty_p99_ms={:.3} \
         baseline_one_p50_ms={:.3} ratio_one={:.1} fresh_rss_mib_at_{}={:.1} rss_mib_at_{}={:.1} \
         baseline_fifty_p50_ms={:.3} ratio_fifty={:.1} hwm_mib={:.1} idle_rss_mib={:.1}",
        f.one.p50_ms,
        f.one.p99_ms,
        f.fifty.p50_ms,
        f.fifty.p99_ms,
        f.baseline_one.p50_ms,
        ratio(f.one.p50_ms, f.baseline_one.p50_ms),
        f.tasks,
        f.fresh_rss_mib,
        f.tasks,
        f.rss_mib,
        f.baseline_fifty.p50_ms,
        ratio(f.fifty.p50_ms, f.baseline_fifty.p50_ms),
        f.hwm_mib,
        f.idle_rss_mib,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let hundred: Vec<u64> = (1..=100).collect();
        let fifty: Vec<u64> = (1..=50).collect();
        for (samples, p, want) in [
            (vec![], 50.0, None),
            (vec![7], 50.0, Some(7)),
            (vec![7], 99.0, Some(7)),
            (vec![1, 2], 50.0, Some(1)),
            (vec![1, 2], 99.0, Some(2)),
            (vec![1, 2, 3], 50.0, Some(2)),
            (hundred.clone(), 50.0, Some(50)),
            (hundred.clone(), 99.0, Some(99)),
            (hundred, 100.0, Some(100)),
            (fifty.clone(), 50.0, Some(25)),
            (fifty, 99.0, Some(50)),
        ] {
            let got = percentile(&millis(&samples), p);
            assert_eq!(got, want.map(Duration::from_millis), "p{p} of {samples:?}");
        }
    }

    #[test]
    fn a_summary_sorts_its_samples_first() {
        let s = summarize(&millis(&[30, 10, 20])).unwrap();
        assert_eq!(
            s,
            Summary {
                p50_ms: 20.0,
                p99_ms: 30.0,
                max_ms: 30.0,
                samples: 3
            }
        );
        assert_eq!(summarize(&[]), None);
    }

    #[test]
    fn ratios_against_a_zero_baseline_are_zero() {
        for (m, b, want) in [(10.0, 2.0, 5.0), (1.0, 4.0, 0.25), (3.0, 0.0, 0.0)] {
            assert_eq!(ratio(m, b), want, "{m} / {b}");
        }
    }

    #[test]
    fn the_last_line_names_every_figure_with_the_task_count() {
        let s = |p50: f64| Summary {
            p50_ms: p50,
            p99_ms: p50 * 2.0,
            max_ms: p50 * 3.0,
            samples: 50,
        };
        let f = Figures {
            one: s(8.0),
            fifty: s(40.0),
            baseline_one: s(0.5),
            baseline_fifty: s(20.0),
            tasks: 1000,
            fresh_rss_mib: 40.2,
            rss_mib: 48.4,
            hwm_mib: 50.0,
            idle_rss_mib: 20.0,
        };
        assert_eq!(
            last_line(&f),
            "one_p50_ms=8.000 one_p99_ms=16.000 fifty_p50_ms=40.000 fifty_p99_ms=80.000 \
             baseline_one_p50_ms=0.500 ratio_one=16.0 fresh_rss_mib_at_1000=40.2 rss_mib_at_1000=48.4 \
             baseline_fifty_p50_ms=20.000 ratio_fifty=2.0 hwm_mib=50.0 idle_rss_mib=20.0"
        );
        assert_eq!(
            line("x", &s(1.0)),
            "x: p50 1.000 ms, p99 2.000 ms, max 3.000 ms (50 runs)"
        );
    }
}
