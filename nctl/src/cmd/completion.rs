//! `nctl completion SHELL`: prints a completion script for bash, zsh, fish, elvish or powershell.

use std::io::Write;

use clap::CommandFactory;

#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    pub shell: clap_complete::Shell,
}

pub fn run(args: CompletionArgs) -> anyhow::Result<i32> {
    let mut cmd = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "nctl", &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        other => other.map(|()| 0).map_err(Into::into),
    }
}
