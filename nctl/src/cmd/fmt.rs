//! `nctl fmt FILE...`: lays out HCL job files canonically (two-space indentation, aligned `=`,
//! no trailing blanks), keeping every comment. Rewrites the files in place; `--check` only
//! lists the files that would change and exits 1 if there are any; `-` formats standard input
//! to standard output. A file whose job would read differently after formatting is left alone.

use std::io::Read;
use std::path::PathBuf;

use nomos_api::{format_hcl, parse_source, ParseOptions};

#[derive(Debug, clap::Args)]
pub struct FmtArgs {
    /// HCL job files; `-` reads standard input and writes standard output.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Do not write; list files that are not formatted and exit 1 if there are any.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: FmtArgs) -> anyhow::Result<i32> {
    let mut unformatted = false;
    for file in &args.files {
        if file.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            let formatted = format_hcl(&text);
            if args.check {
                unformatted |= formatted != text;
            } else {
                print!("{formatted}");
            }
            continue;
        }
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?;
        let formatted = format_hcl(&text);
        if formatted == text {
            continue;
        }
        let options = ParseOptions {
            files: Some(std::sync::Arc::new(nomos_api::StdFiles)),
            base_dir: file.parent().map(PathBuf::from),
            ..ParseOptions::default()
        };
        if let Ok(before) = parse_source(&name, &text, &options) {
            let same =
                parse_source(&name, &formatted, &options).is_ok_and(|a| a.jobs == before.jobs);
            if !same {
                eprintln!(
                    "{name}: not formatted: the result would read differently (please report this)"
                );
                unformatted = true;
                continue;
            }
        }
        unformatted = true;
        if args.check {
            println!("{name}");
        } else {
            std::fs::write(file, formatted)
                .map_err(|e| anyhow::anyhow!("cannot write {name}: {e}"))?;
            println!("{name}");
        }
    }
    Ok(i32::from(args.check && unformatted))
}
