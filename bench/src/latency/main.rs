//! nomos-latency: how fast a real `nctl dev` turns an apply into running processes, and how much
//! memory it needs for many tasks. It starts the real binary (see [`dev`]) and reports, in the
//! same run:
//!
//! - the baseline: spawning `/bin/sleep 3600` directly, 1 and 50 at a time (the work itself,
//!   without the orchestrator), one sample right before each orchestrated run so that both see
//!   the same load on the machine;
//! - apply → running for a raw_exec job of 1 and of 50 allocations (`--runs` each, a fresh job
//!   each time, purged after): from just before `POST /v1/jobs` until the API's event stream
//!   (`GET /v1/event/stream`, a store watch) has shown every allocation `running`; p50, p99, max, and
//!   the ratio of the p50 to the baseline's;
//! - `nctl dev`'s own memory (VmRSS, VmHWM) with `--tasks` tasks running, after they settle:
//!   once in the fresh `nctl dev`, before the latency runs, and once after them (when the store
//!   still keeps the history of their purged allocations).
//!
//! The last line is `one_p50_ms=… one_p99_ms=… fifty_p50_ms=… fifty_p99_ms=…
//! baseline_one_p50_ms=… ratio_one=… fresh_rss_mib_at_<tasks>=… rss_mib_at_<tasks>=…` followed by the extra figures.
//!
//! Layout: [`dev`] runs and cleans up `nctl dev`; [`api`] calls its HTTP API and reads the
//! event stream ([`lines`]) into a [`tracker::Tracker`]; [`job`] is the submitted job; [`procs`]
//! is the baseline, `/proc` memory and leftover-process checks; [`stats`] the figures.

mod api;
mod dev;
mod error;
mod job;
mod lines;
mod procs;
mod stats;
mod tracker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::time::Instant;

use api::{Api, Events};
use error::LatencyError;
use stats::{Figures, Summary};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "nomos-latency",
    about = "Apply → running latency and memory of a real `nctl dev` with raw_exec tasks"
)]
struct Args {
    /// The nctl binary (default: `nctl` next to this executable).
    #[arg(long)]
    nctl: Option<PathBuf>,
    /// Measured runs of each size (1 and 50 allocations), and of each baseline.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Tasks running when the memory of `nctl dev` is read.
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Seconds `nctl dev` gets to start and register its node.
    #[arg(long, default_value_t = 60)]
    ready_timeout_secs: u64,
    /// Seconds one run (apply → running, or stop) may take.
    #[arg(long, default_value_t = 60)]
    run_timeout_secs: u64,
    /// Seconds the `--tasks` tasks may take to all run, or to all stop.
    #[arg(long, default_value_t = 600)]
    tasks_timeout_secs: u64,
    /// Seconds to wait, with every task running, before the memory is read.
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
}

/// Most measured runs of each kind.
const MAX_RUNS: usize = 10_000;
/// Longest any timeout or wait may be set to.
const MAX_SECS: u64 = 3600;
/// The sizes measured: one allocation, and a group of fifty.
const ONE: usize = 1;
const FIFTY: usize = 50;

impl Args {
    /// Refuses arguments out of range, before anything starts.
    fn check(&self) -> Result<(), LatencyError> {
        let bad = |m: String| Err(LatencyError::Args(m));
        if !(1..=MAX_RUNS).contains(&self.runs) {
            return bad(format!(
                "--runs must be 1 to {MAX_RUNS}, found {}",
                self.runs
            ));
        }
        if !(1..=job::MAX_COUNT).contains(&self.tasks) {
            let max = job::MAX_COUNT;
            return bad(format!(
                "--tasks must be 1 to {max} (one group's count), found {}",
                self.tasks
            ));
        }
        for (flag, v, min) in [
            ("--ready-timeout-secs", self.ready_timeout_secs, 1),
            ("--run-timeout-secs", self.run_timeout_secs, 1),
            ("--tasks-timeout-secs", self.tasks_timeout_secs, 1),
            ("--settle-secs", self.settle_secs, 0),
        ] {
            if !(min..=MAX_SECS).contains(&v) {
                return bad(format!("{flag} must be {min} to {MAX_SECS}, found {v}"));
            }
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nomos-latency: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts `nctl dev`, measures, always cleans up, then prints the figures.
fn run(args: Args) -> Result<(), LatencyError> {
    args.check()?;
    let nctl = dev::locate(args.nctl.clone())?;
    let marker = std::process::id().to_string();
    // One thread: the bench's own work should take as little CPU from `nctl dev` as it can.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| LatencyError::Spawn {
            what: "the async runtime".into(),
            source,
        })?;
    let ready = Duration::from_secs(args.ready_timeout_secs);
    let mut dev = dev::Dev::start(&nctl, &marker, ready)?;
    println!(
        "nctl dev: {} (pid {}), API {}",
        nctl.display(),
        dev.pid,
        dev.api
    );
    let result = rt.block_on(async {
        tokio::select! {
            r = measure(&dev, &args, &marker) => r,
            _ = tokio::signal::ctrl_c() => Err(LatencyError::Interrupted),
        }
    });
    if result.is_err() {
        eprintln!("--- nctl dev's log (last lines) ---\n{}", dev.log_tail(20));
    }
    if let Some(report) = dev.shutdown() {
        println!("{report}");
    }
    let figures = result?;
    report_goals(&figures);
    println!("{}", stats::last_line(&figures));
    Ok(())
}

/// Every measurement, in order: memory, 1 allocation, 50 allocations (each with its baseline),
/// memory again.
async fn measure(dev: &dev::Dev, args: &Args, marker: &str) -> Result<Figures, LatencyError> {
    let api = Api::new(&dev.api)?;
    dev.wait_ready(&api, Duration::from_secs(args.ready_timeout_secs))
        .await?;
    let mut events = api.events().await?;
    let idle = procs::memory(dev.pid)?;
    println!(
        "node {} ready; nctl dev idle: VmRSS {:.1} MiB; watching GET /v1/event/stream",
        dev::NODE,
        idle.rss_mib
    );
    let mut bench = Bench {
        api: &api,
        events: &mut events,
        args,
        marker,
        memory_runs: 0,
    };
    let fresh = bench.memory(dev.pid, "in a fresh nctl dev").await?;
    let (one, baseline_one) = bench.latency(ONE).await?;
    let (fifty, baseline_fifty) = bench.latency(FIFTY).await?;
    let memory = bench.memory(dev.pid, "after the latency runs").await?;
    Ok(Figures {
        one,
        fifty,
        baseline_one,
        baseline_fifty,
        tasks: args.tasks,
        fresh_rss_mib: fresh.rss_mib,
        rss_mib: memory.rss_mib,
        hwm_mib: memory.hwm_mib,
        idle_rss_mib: idle.rss_mib,
    })
}

fn summary(samples: &[Duration]) -> Summary {
    // `runs` is at least 1 (checked), so there is always a sample.
    stats::summarize(samples).unwrap_or(Summary {
        p50_ms: 0.0,
        p99_ms: 0.0,
        max_ms: 0.0,
        samples: 0,
    })
}

/// What the orchestrated measurements share.
struct Bench<'a> {
    api: &'a Api,
    events: &'a mut Events,
    args: &'a Args,
    marker: &'a str,
    /// Memory readings taken so far (each runs a job of its own).
    memory_runs: usize,
}

impl Bench<'_> {
    /// Apply → running for a job of `count` allocations, `--runs` times, each run right after
    /// its baseline sample (spawning `count` sleeps directly), so both see the same load on
    /// the machine. Returns the summaries of both.
    async fn latency(&mut self, count: usize) -> Result<(Summary, Summary), LatencyError> {
        let timeout = Duration::from_secs(self.args.run_timeout_secs);
        let mut samples = Vec::with_capacity(self.args.runs);
        let mut baseline = Vec::with_capacity(self.args.runs);
        for i in 0..self.args.runs {
            baseline.push(procs::spawn_batch(count, self.marker)?);
            let id = format!("latency-{count}-{i}");
            samples.push(self.apply_until_running(&id, count, timeout).await?);
            self.purge(&id, timeout).await?;
        }
        let (s, b) = (summary(&samples), summary(&baseline));
        let direct = format!(
            "baseline: spawn {count} × {} {} directly",
            procs::SLEEP,
            procs::SLEEP_ARG
        );
        println!("{}", stats::line(&direct, &b));
        let what = format!("apply → running, {count} allocation(s)");
        println!(
            "{}; p50 {:.1}× the baseline's",
            stats::line(&what, &s),
            stats::ratio(s.p50_ms, b.p50_ms)
        );
        Ok((s, b))
    }

    /// Submits job `id` with `count` allocations and returns the time until all run.
    async fn apply_until_running(
        &mut self,
        id: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Duration, LatencyError> {
        let text = job::hcl(id, count, self.marker);
        let start = Instant::now();
        self.api.apply(&format!("{id}.hcl"), &text).await?;
        let all_running = |t: &tracker::Tracker| {
            let p = t.progress(id);
            match p.failure {
                Some(event) => Err(LatencyError::TaskFailed {
                    job: id.to_string(),
                    event,
                }),
                None => Ok(p.wanted == count && p.running == count),
            }
        };
        if self.events.until(start + timeout, all_running).await? {
            return Ok(start.elapsed());
        }
        let p = self.events.tracker.progress(id);
        Err(LatencyError::Timeout {
            job: id.to_string(),
            running: p.running,
            wanted: count,
            secs: timeout.as_secs(),
            waiting: format!(
                "all to run; the job's status: {}",
                self.api.job_summary(id).await
            ),
        })
    }

    /// Purges job `id` and waits until none of its allocations is left running.
    async fn purge(&mut self, id: &str, timeout: Duration) -> Result<(), LatencyError> {
        self.api.purge(id).await?;
        let stopped = |t: &tracker::Tracker| Ok(t.progress(id).live == 0);
        let done = self.events.until(Instant::now() + timeout, stopped).await?;
        let p = self.events.tracker.progress(id);
        self.events.tracker.forget(id);
        if done {
            return Ok(());
        }
        Err(LatencyError::Timeout {
            job: id.to_string(),
            running: p.live,
            wanted: 0,
            secs: timeout.as_secs(),
            waiting: "them to stop after the purge".into(),
        })
    }

    /// Runs `--tasks` tasks, lets them settle, reads `nctl dev`'s memory, stops them; `when`
    /// says which reading it is.
    async fn memory(&mut self, pid: u32, when: &str) -> Result<procs::Memory, LatencyError> {
        let tasks = self.args.tasks;
        let id = format!("latency-memory-{}", self.memory_runs);
        self.memory_runs += 1;
        let id = id.as_str();
        let timeout = Duration::from_secs(self.args.tasks_timeout_secs);
        let took = self.apply_until_running(id, tasks, timeout).await?;
        println!(
            "{tasks} tasks running {:.2} s after the apply",
            took.as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(self.args.settle_secs)).await;
        let m = procs::memory(pid)?;
        println!(
            "memory {when}: nctl dev with {tasks} running tasks: VmRSS {:.1} MiB, VmHWM {:.1} MiB, {} threads",
            m.rss_mib, m.hwm_mib, m.threads
        );
        let start = Instant::now();
        self.purge(id, timeout).await?;
        println!(
            "{tasks} tasks stopped {:.2} s after the purge",
            start.elapsed().as_secs_f64()
        );
        Ok(m)
    }
}

/// The goals, next to the figures: p99 under 20 ms for one allocation, under 64 MB at
/// 1,000 tasks.
fn report_goals(f: &Figures) {
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "goal p99(1 allocation) < 20 ms: {} ({:.3} ms)",
        verdict(f.one.p99_ms < 20.0),
        f.one.p99_ms
    );
    for (when, mib) in [
        ("in a fresh nctl dev", f.fresh_rss_mib),
        (
            "after the latency runs (their purged allocations' store history kept, up to --store-history revisions)",
            f.rss_mib,
        ),
    ] {
        let mb = mib * 1.048_576;
        println!(
            "goal RSS < 64 MB at 1000 tasks, {when}: {} ({mb:.1} MB = {mib:.1} MiB at {} tasks)",
            verdict(mb < 64.0),
            f.tasks
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["nomos-latency"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn arguments_out_of_range_are_refused_with_the_flag_named() {
        for (extra, want) in [
            (vec![], None),
            (vec!["--runs", "2", "--tasks", "10"], None),
            (
                vec!["--runs", "0"],
                Some("--runs must be 1 to 10000, found 0"),
            ),
            (vec!["--runs", "10001"], Some("--runs must be 1 to 10000")),
            (vec!["--tasks", "0"], Some("--tasks must be 1 to 10000")),
            (vec!["--tasks", "10001"], Some("found 10001")),
            (
                vec!["--run-timeout-secs", "0"],
                Some("--run-timeout-secs must be 1 to 3600"),
            ),
            (vec!["--settle-secs", "0"], None),
            (
                vec!["--settle-secs", "3601"],
                Some("--settle-secs must be 0 to 3600"),
            ),
            (
                vec!["--ready-timeout-secs", "0"],
                Some("--ready-timeout-secs"),
            ),
            (
                vec!["--tasks-timeout-secs", "0"],
                Some("--tasks-timeout-secs"),
            ),
        ] {
            let got = args(&extra).check().err().map(|e| e.to_string());
            match want {
                None => assert_eq!(got, None, "{extra:?}"),
                Some(w) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(w)),
                    "{extra:?}: {got:?} should say {w:?}"
                ),
            }
        }
    }
}
