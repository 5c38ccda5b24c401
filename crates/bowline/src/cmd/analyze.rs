//! `bowline analyze [-o text|json|yaml] [--mesh-config FILE] PATH...`: Istio's cross-resource
//! analysis over files and directories. Exit 1 when any Error-level message is found.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use api::analyze::{self, Code, Level, Message};
use api::types::mesh::MeshConfig;
use api::{Decoded, Problem};

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Yaml,
}

#[derive(clap::Args)]
pub struct Args {
    /// Output format
    #[arg(short, long, value_enum, default_value = "text")]
    output: Format,
    /// Mesh config file (Istio's meshConfig as YAML); defaults apply without it
    #[arg(long)]
    mesh_config: Option<PathBuf>,
    /// Files or directories of YAML/JSON; `-` reads standard input
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let inputs = super::input::read_all(&args.paths)?;
    let mesh = match &args.mesh_config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            load_mesh(&p.display().to_string(), &text)?
        }
        None => MeshConfig::default(),
    };
    let mut resources = Vec::new();
    let mut others = Vec::new();
    let mut unreadable: Vec<Problem> = Vec::new();
    for input in &inputs {
        for d in api::load_str(&input.name, &input.text) {
            match d {
                Decoded::Resource(r) => resources.push(*r),
                Decoded::Other(o) => others.push(*o),
                Decoded::Invalid(p) => unreadable.extend(p),
            }
        }
    }
    let cx = analyze::Context::new(resources.iter().collect(), others.iter().collect(), &mesh);
    for note in analyze::partial_input_notes(&cx) {
        eprintln!("note: {note}");
    }
    let mut messages = analyze::analyze(&cx);
    // Documents that could not even be decoded are schema errors too.
    messages.extend(
        unreadable
            .iter()
            .filter(|p| !is_mesh_config_doc(p))
            .map(unreadable_message),
    );
    print(
        &messages,
        args.output,
        &inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
    )?;
    let failed = messages.iter().any(|m| m.level == Level::Error);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Mesh config files may be passed among the inputs (istioctl accepts them there); they have no
/// apiVersion or kind and are not resources.
fn is_mesh_config_doc(p: &Problem) -> bool {
    p.resource.is_none() && p.path == "apiVersion" && p.message == "missing apiVersion"
}

fn load_mesh(name: &str, text: &str) -> Result<MeshConfig> {
    api::types::mesh::load_mesh_config(name, text).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow::anyhow!("invalid mesh config:\n{}", lines.join("\n"))
    })
}

fn unreadable_message(p: &Problem) -> Message {
    let code = Code::SchemaValidationError;
    Message {
        code: code.code(),
        level: code.level(),
        type_name: code.type_name(),
        message: if p.path.is_empty() {
            p.message.clone()
        } else {
            format!("{}: {}", p.path, p.message)
        },
        origin: p.resource.clone().unwrap_or_else(|| p.file.clone()),
        reference: Some(format!("{}:{}", p.file, p.line)),
        documentation_url: format!(
            "https://istio.io/latest/docs/reference/config/analysis/{}/",
            code.code().to_ascii_lowercase()
        ),
    }
}

fn print(messages: &[Message], format: Format, inputs: &[&str]) -> Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(messages)?),
        Format::Yaml => print!("{}", to_yaml(&serde_json::to_value(messages)?)),
        Format::Text => {
            if messages.is_empty() {
                println!(
                    "✔ No validation issues found when analyzing {}.",
                    inputs.join(", ")
                );
            }
            for m in messages {
                println!("{m}");
            }
        }
    }
    Ok(())
}

pub(crate) fn to_yaml(v: &serde_json::Value) -> String {
    use yaml_rust2::{Yaml, YamlEmitter};
    fn conv(v: &serde_json::Value) -> Yaml {
        match v {
            serde_json::Value::Null => Yaml::Null,
            serde_json::Value::Bool(b) => Yaml::Boolean(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Yaml::Integer(i),
                None => Yaml::Real(n.to_string()),
            },
            serde_json::Value::String(s) => Yaml::String(s.clone()),
            serde_json::Value::Array(a) => Yaml::Array(a.iter().map(conv).collect()),
            serde_json::Value::Object(o) => Yaml::Hash(
                o.iter()
                    .map(|(k, v)| (Yaml::String(k.clone()), conv(v)))
                    .collect(),
            ),
        }
    }
    let mut out = String::new();
    let mut e = YamlEmitter::new(&mut out);
    if e.dump(&conv(v)).is_err() {
        return String::new();
    }
    out.push('\n');
    out
}
