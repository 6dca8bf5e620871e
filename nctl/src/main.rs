//! `nctl`: the one Nomos binary. `main` parses the command line and hands each verb to its
//! module under `cmd/`; every module returns the process exit code.

mod cmd;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cmd::Cli::parse();
    let code = cmd::run(cli)?;
    std::process::exit(code);
}
