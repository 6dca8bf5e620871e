//! What `validate`, `apply` and `plan` share for reading job files: `--var name=value` and
//! `--var-file FILE` (both repeatable; var files relative to the working directory, as
//! Nomad reads them), the environment a job file may read (`NOMAD_VAR_<name>`, and `HOME`
//! for `pathexpand()`), and the namespace of a job that names none (`-n` / `NOMOS_NAMESPACE`).

use std::path::PathBuf;

use nomos_api::ParseOptions;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct VarArgs {
    /// Set an HCL input variable: `--var name=value` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Read HCL input variables from a file, relative to the working directory (repeatable;
    /// later files win).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
}

impl VarArgs {
    /// `--var` values as `(name, value)` pairs.
    pub fn pairs(&self) -> anyhow::Result<Vec<(String, String)>> {
        self.vars
            .iter()
            .map(|v| {
                v.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                    .ok_or_else(|| anyhow::anyhow!("--var {v:?}: expected NAME=VALUE"))
            })
            .collect()
    }

    /// The parse options for job files read with these variables; `namespace` is where a job
    /// that names none goes.
    pub fn options(&self, namespace: &str) -> anyhow::Result<ParseOptions> {
        // Resolved now, so no later base directory (the job file's) can change what they mean.
        let cwd = std::env::current_dir()?;
        Ok(ParseOptions {
            vars: self.pairs()?,
            var_files: self.var_files.iter().map(|f| cwd.join(f)).collect(),
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("NOMAD_VAR_") || k == "HOME")
                .collect(),
            namespace: Some(namespace.to_string()).filter(|n| !n.is_empty()),
            files: Some(std::sync::Arc::new(nomos_api::StdFiles)),
            ..ParseOptions::default()
        })
    }

    /// The var files' text, as a job submission records it (Nomad's `Variables`).
    pub fn var_file_text(&self) -> String {
        self.var_files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
