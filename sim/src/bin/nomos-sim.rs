//! `nomos-sim`: runs the control-plane simulation. One seed (`--seed N`, with its whole trace),
//! a range of seeds (`--seeds 0..200`), or random seeds for as long as asked (`--for 10m`),
//! stopping at the first failing seed, whose trace it prints.

use std::time::{Duration, Instant};

use clap::Parser;
use nomos_sim::{run_blocking, RunConfig};

#[derive(Parser, Debug)]
#[command(about = "Deterministic simulation of the Nomos control plane")]
struct Args {
    /// Run this one seed and print its whole trace.
    #[arg(long)]
    seed: Option<u64>,
    /// Run the seeds in `A..B`.
    #[arg(long, value_name = "A..B")]
    seeds: Option<String>,
    /// Run random seeds for this long (`90s`, `10m`, `2h`).
    #[arg(long = "for", value_name = "DURATION")]
    duration: Option<String>,
    /// Steps per run (before the settle phase).
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Settle steps (5 simulated seconds each) after the faults stop.
    #[arg(long, default_value_t = 150)]
    settle: usize,
    /// Print the names of the invariants and exit.
    #[arg(long)]
    list: bool,
}

fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse()?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        other => anyhow::bail!("unknown duration unit {other:?} in {s:?} (use s, m or h)"),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.list {
        for n in nomos_sim::invariants::names() {
            println!("{n}");
        }
        return Ok(());
    }
    let config = RunConfig {
        steps: args.steps,
        settle_steps: args.settle,
    };
    if let Some(seed) = args.seed {
        let r = run_blocking(seed, config);
        println!("{}", r.trace.tail(usize::MAX));
        println!(
            "seed {seed}: {} ({} simulated s, digest {:016x})",
            if r.passed() { "passed" } else { "FAILED" },
            r.simulated_ms / 1000,
            r.digest
        );
        if !r.passed() {
            println!("{}", r.explain(0));
            std::process::exit(1);
        }
        return Ok(());
    }
    let seeds: Box<dyn Iterator<Item = u64>> = match (&args.seeds, &args.duration) {
        (Some(range), _) => {
            let (a, b) = range
                .split_once("..")
                .ok_or_else(|| anyhow::anyhow!("--seeds wants A..B, found {range:?}"))?;
            Box::new(a.parse::<u64>()?..b.parse::<u64>()?)
        }
        (None, Some(d)) => {
            let until = Instant::now() + parse_duration(d)?;
            let start = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos() as u64;
            Box::new(
                (0..)
                    .map(move |i: u64| start.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
                    .take_while(move |_| Instant::now() < until),
            )
        }
        (None, None) => Box::new(0..200),
    };
    let started = Instant::now();
    let mut runs = 0u64;
    for seed in seeds {
        let r = run_blocking(seed, config);
        runs += 1;
        if !r.passed() {
            println!("{}", r.explain(300));
            println!(
                "{runs} seeds run in {:.1}s; seed {seed} failed",
                started.elapsed().as_secs_f64()
            );
            std::process::exit(1);
        }
    }
    println!(
        "{runs} seeds passed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
