//! `bowline validate FILE...`: Istio's validation, per document, with file and line.
//! Exit 0 when every document is valid (warnings go to stderr), 1 when any is invalid, 2 on
//! usage or IO errors.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use api::{Decoded, Severity};

#[derive(clap::Args)]
pub struct Args {
    /// Files or directories of YAML/JSON; `-` reads standard input
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print nothing for valid documents (by default a summary line is printed)
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let inputs = super::input::read_all(&args.files)?;
    let (mut valid, mut invalid) = (0usize, 0usize);
    for input in &inputs {
        for d in api::load_str(&input.name, &input.text) {
            let problems = match d {
                Decoded::Resource(r) => r.problems(),
                Decoded::Other(_) => continue,
                Decoded::Invalid(p) => p,
            };
            let mut bad = false;
            for p in &problems {
                match p.severity {
                    Severity::Error => {
                        bad = true;
                        println!("{p}");
                    }
                    Severity::Warning => eprintln!("{p}"),
                }
            }
            if bad {
                invalid += 1;
            } else {
                valid += 1;
            }
        }
    }
    if !args.quiet {
        println!("{valid} valid, {invalid} invalid");
    }
    Ok(if invalid > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
