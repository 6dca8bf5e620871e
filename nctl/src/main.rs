//! `nctl`: the one Nomos binary. `main` parses the command line and hands each verb to its
//! module under `cmd/`; every module returns the process exit code.

mod args;
mod cmd;
mod console;
mod memtrim;

use clap::Parser;

fn main() {
    // Nomad spells long options with one dash (`-var x=1`, `-config FILE`); accept that too.
    let args = args::nomad_style(std::env::args_os(), args::SINGLE_DASH_LONGS);
    let cli = cmd::Cli::parse_from(args);
    let long_running = matches!(
        cli.command,
        cmd::Command::Dev(_) | cmd::Command::Server(_) | cmd::Command::Agent(_)
    );
    let trimmer = long_running.then(memtrim::Trimmer::start);
    let code = match cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            cmd::apply::report_error(&e);
            1
        }
    };
    drop(trimmer);
    std::process::exit(code);
}
