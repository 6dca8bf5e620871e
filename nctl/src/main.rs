//! `nctl`: the one Nomos binary. `main` parses the command line and hands each verb to its
//! module under `cmd/`; every module returns the process exit code.

mod cmd;

use clap::Parser;

fn main() {
    // Nomad spells it `-config FILE`; accept that as well as `--config`.
    let args = std::env::args_os().map(|a| match a.to_str() {
        Some("-config") => "--config".into(),
        Some(s) if s.starts_with("-config=") => format!("-{s}").into(),
        _ => a,
    });
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
