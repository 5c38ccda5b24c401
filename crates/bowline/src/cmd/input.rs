//! Reading the files and directories named on a command line (`-` is standard input).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// One input file's name (as the user will recognise it) and text.
pub struct Input {
    pub name: String,
    pub text: String,
}

/// Read every named file; directories are walked recursively for `.yaml`, `.yml` and `.json`,
/// in sorted order so that output is stable.
pub fn read_all(paths: &[PathBuf]) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            out.push(Input {
                name: "<stdin>".into(),
                text,
            });
        } else if p.is_dir() {
            let mut files = Vec::new();
            walk(p, &mut files)?;
            files.sort();
            for f in files {
                out.push(read_file(&f)?);
            }
        } else {
            out.push(read_file(p)?);
        }
    }
    Ok(out)
}

fn read_file(p: &Path) -> Result<Input> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    let text =
        String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", p.display()))?;
    Ok(Input {
        name: p.display().to_string(),
        text,
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}
