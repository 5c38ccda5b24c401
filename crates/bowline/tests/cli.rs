//! The `bowline` binary as a user runs it: subcommands listed, exit codes, and every bad input
//! answered with one clear error naming file and line, never a panic.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn bowline(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bowline"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bowline starts");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("bowline finishes")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn validate_stdin(yaml: &str) -> (i32, String) {
    let o = bowline(&["validate", "-"], Some(yaml));
    (o.status.code().expect("exit code"), text(&o))
}

#[test]
fn help_lists_every_subcommand_with_one_line() {
    let o = bowline(&["--help"], None);
    assert!(o.status.success());
    let out = text(&o);
    for sub in ["version", "validate", "analyze"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(sub)),
            "{sub} missing from:\n{out}"
        );
    }
}

#[test]
fn version_prints_the_version() {
    let o = bowline(&["version"], None);
    assert!(o.status.success());
    assert!(text(&o).starts_with(&format!("bowline {}", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(bowline(&["validate"], None).status.code(), Some(2));
    let o = bowline(&["validate", "/nonexistent/file.yaml"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("/nonexistent/file.yaml"), "{}", text(&o));
}

#[test]
fn malformed_yaml_is_one_error_with_its_line() {
    let (code, out) = validate_stdin("apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("<stdin>:"), "{out}");
    assert!(out.contains("invalid YAML"), "{out}");
}

#[test]
fn duplicate_keys_are_refused_with_the_line() {
    let yaml =
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: a\n  name: b\n";
    let (code, out) = validate_stdin(yaml);
    assert_eq!(code, 1);
    assert!(
        out.contains("<stdin>:5:") && out.contains("duplicate key \"name\""),
        "{out}"
    );
}

#[test]
fn a_bad_document_does_not_hide_the_good_ones() {
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ok\n---\n: : :\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ok2\n";
    let (code, out) = validate_stdin(yaml);
    assert_eq!(code, 1);
    assert!(out.contains("2 valid, 1 invalid"), "{out}");
}

#[test]
fn unknown_kinds_in_istio_groups_and_wrong_versions_are_errors() {
    let (code, out) = validate_stdin(
        "apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata:\n  name: a\n",
    );
    assert_eq!(code, 1);
    assert!(out.contains("not a known kind"), "{out}");
    let (code, out) =
        validate_stdin("apiVersion: networking.istio.io/v2\nkind: Gateway\nmetadata:\n  name: a\n");
    assert_eq!(code, 1);
    assert!(out.contains("served versions"), "{out}");
}

#[test]
fn hostile_inputs_get_an_error_not_a_crash() {
    let deep = format!("a: {}", "[".repeat(100_000));
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..9 {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            format!("b{}", i - 1)
        };
        bomb.push_str(&format!(
            "b{i}: &b{i} [{}]\n",
            vec![format!("*{prev}"); 10].join(", ")
        ));
    }
    let huge = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: \"{}\"\n",
        "x".repeat(9 << 20)
    );
    for (name, input) in [
        ("deep", deep),
        ("bomb", bomb),
        ("huge", huge),
        ("binary", "\u{0}\u{1}\u{2}".to_string()),
        ("scalar", "42".to_string()),
    ] {
        let (code, out) = validate_stdin(&input);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(!out.contains("panicked"), "{name}: {out}");
    }
}

#[test]
fn analyze_json_names_code_level_and_origin() {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  ports:\n  - port: 8080\n";
    let o = bowline(&["analyze", "-o", "json", "-"], Some(yaml));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json array");
    let m = &v[0];
    assert_eq!(m["code"], "IST0118");
    assert_eq!(m["level"], "Info");
    assert_eq!(m["origin"], "Service shop/web");
    assert_eq!(m["reference"], "<stdin>:8");
}

#[test]
fn the_items_of_a_list_are_resources_of_their_own() {
    let yaml = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: a\n- apiVersion: networking.istio.io/v1\n  kind: Gateway\n  metadata:\n    name: g\n  spec:\n    servers:\n    - port: {number: 80, name: http, protocol: HTTP}\n      hosts: [\"*\"]\n      bogus: 1\n";
    let (code, out) = validate_stdin(yaml);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 valid, 1 invalid"), "{out}");
    assert!(
        out.contains("<stdin>:16: Gateway default/g: spec.servers[0].bogus"),
        "{out}"
    );
}

#[test]
fn the_bookinfo_example_is_valid_and_analyzes_clean() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/bookinfo");
    let o = bowline(&["validate", dir], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = bowline(&["analyze", dir], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("No validation issues found"),
        "{}",
        text(&o)
    );
}
