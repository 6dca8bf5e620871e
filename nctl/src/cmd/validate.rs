//! `nctl validate FILE...`: parse and validate job files.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Job files (HCL, YAML or JSON).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(_args: ValidateArgs) -> anyhow::Result<i32> {
    anyhow::bail!("validate is being built")
}
