//! The command line: one file per verb.

pub mod validate;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "nctl", version, about = "Nomos: a Nomad-style workload orchestrator")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check job files; print warnings, or FILE:LINE:COL errors and exit 1.
    Validate(validate::ValidateArgs),
}

/// Runs a parsed command line and returns the exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
    }
}
