//! `nctl`: the one Nomos binary. `main` parses the command line and hands each verb to its
//! module under `cmd/`; every module returns the process exit code.

mod args;
mod cmd;

use clap::Parser;

fn main() {
    // Nomad spells long options with one dash (`-var x=1`, `-config FILE`); accept that too.
    let args = args::nomad_style(std::env::args_os(), args::SINGLE_DASH_LONGS);
    let cli = cmd::Cli::parse_from(args);
    let code = match cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            cmd::apply::report_error(&e);
            1
        }
    };
    std::process::exit(code);
}
