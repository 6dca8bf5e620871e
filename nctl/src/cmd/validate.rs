//! `nctl validate FILE...`: parse and validate job files (HCL, YAML or JSON manifests, Nomad
//! JSON) without a server. Diagnostics go to stderr as `FILE:LINE:COL: message`; exit 0 when
//! every file is valid (warnings allowed), 1 otherwise. `-o json` prints the canonical JSON,
//! `-o yaml` the `nomos/v1` manifest (so a Nomad HCL file converts to a manifest), and `-o hcl`
//! Nomad-style HCL2.

use std::io::Read;
use std::path::PathBuf;

use nomos_api::{parse_file, parse_source, to_canonical_json, to_hcl, to_manifest_yaml, Job};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValidateOutput {
    /// Only diagnostics.
    Text,
    /// The canonical JSON of each job.
    Json,
    /// Each job as a `nomos/v1` YAML manifest.
    Yaml,
    /// Each job as Nomad-style HCL2 (complete, every default written out).
    Hcl,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Job files (HCL, YAML or JSON); `-` reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// What to print for valid files.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: ValidateOutput,
    #[command(flatten)]
    pub vars: super::jobvars::VarArgs,
}

pub fn run(g: &super::Global, args: ValidateArgs) -> anyhow::Result<i32> {
    let options = args.vars.options(&g.namespace)?;
    let mut failed = false;
    let mut jobs: Vec<Job> = Vec::new();
    for file in &args.files {
        let result = if file.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            let mut opts = options.clone();
            opts.base_dir = Some(PathBuf::from("."));
            parse_source("<stdin>", &text, &opts)
        } else {
            parse_file(file, &options)
        };
        match result {
            Ok(parsed) => {
                for w in &parsed.warnings {
                    eprintln!("{w}");
                }
                jobs.extend(parsed.jobs);
            }
            Err(diags) => {
                failed = true;
                for d in &diags {
                    eprintln!("{d}");
                }
            }
        }
    }
    if failed {
        return Ok(1);
    }
    match args.output {
        ValidateOutput::Text => {}
        ValidateOutput::Json => {
            if jobs.len() == 1 {
                println!("{}", to_canonical_json(&jobs[0]));
            } else {
                let items: Vec<String> = jobs.iter().map(to_canonical_json).collect();
                println!("[\n{}\n]", items.join(",\n"));
            }
        }
        ValidateOutput::Hcl => {
            let docs: Vec<String> = jobs.iter().map(to_hcl).collect();
            print!("{}", docs.join("\n"));
        }
        ValidateOutput::Yaml => {
            let docs: Vec<String> = jobs.iter().map(to_manifest_yaml).collect();
            print!("{}", docs.join("---\n"));
        }
    }
    Ok(0)
}
