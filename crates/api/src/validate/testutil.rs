//! Helpers shared by the validation unit tests: decode a YAML document, validate it, and assert
//! on the findings.

use crate::{load_str, Decoded, Report};

/// Validate the first document of `yaml`, which must decode.
pub fn check(yaml: &str) -> Report {
    match load_str("t.yaml", yaml).into_iter().next() {
        Some(Decoded::Resource(r)) => r.validate(),
        other => panic!("not decoded: {other:?}"),
    }
}

/// Validate the last document of `yaml`; decoding problems come back as errors.
pub fn report(yaml: &str) -> Report {
    match load_str("t.yaml", yaml).pop() {
        Some(Decoded::Resource(r)) => r.validate(),
        Some(Decoded::Invalid(p)) => {
            let mut r = Report::default();
            for p in p {
                r.error(p.path, p.message);
            }
            r
        }
        _ => panic!("no resource"),
    }
}

/// The errors as `path: message`.
pub fn errors(r: &Report) -> Vec<String> {
    r.errors()
        .map(|f| format!("{}: {}", f.path, f.message))
        .collect()
}

/// `yaml` has an error at `path` whose message contains `needle`.
#[track_caller]
pub fn assert_error(yaml: &str, path: &str, needle: &str) {
    let r = check(yaml);
    assert!(
        r.errors()
            .any(|f| f.path == path && f.message.contains(needle)),
        "want {path}: {needle}; got {:?}",
        errors(&r)
    );
}

/// `yaml` has no errors; its report, for looking at warnings.
#[track_caller]
pub fn assert_valid(yaml: &str) -> Report {
    let r = check(yaml);
    assert!(!r.has_errors(), "unexpected errors: {:?}", errors(&r));
    r
}
