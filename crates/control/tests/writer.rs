//! `apply`/`delete` through the store: kubectl-style results, files written atomically under
//! their own names, validation before any write, and refusal to touch hand-written
//! multi-document files.

mod common;

use std::time::Duration;

use api::Kind;
use common::*;
use control::store::{ConfigWriter, Outcome};

const DEBOUNCE: Duration = Duration::from_millis(50);

fn lines(results: &[control::store::WriteResult]) -> Vec<String> {
    results.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn apply_creates_configures_and_leaves_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), DEBOUNCE).await;
    let h = store.handle();
    let writer = ConfigWriter::new(dir.path(), h.clone());

    let input = format!(
        "{}---\n{}",
        vs("bookinfo", "reviews", "v1"),
        service("bookinfo", "reviews")
    );
    let out = writer.apply("reviews.yaml", &input);
    assert_eq!(
        lines(&out),
        [
            "virtualservice.networking.istio.io/reviews created",
            "service/reviews created"
        ]
    );
    let file = dir.path().join("virtualservice-bookinfo-reviews.yaml");
    assert_eq!(out[0].file.as_deref(), Some(file.as_path()));
    assert!(dir.path().join("service-bookinfo-reviews.yaml").exists());
    let written = std::fs::read_to_string(&file).expect("read");
    assert!(
        written.contains("kind: VirtualService\n"),
        "YAML, not the JSON fallback: {written}"
    );
    assert!(written.contains("namespace: bookinfo\n"), "{written}");
    // Only the two files: no temporary file left behind.
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 2);

    let snap = wait_for(&h, "the applied resources", |s| s.len() == 2).await;
    assert_eq!(
        subset_of(&snap, "bookinfo", "reviews").as_deref(),
        Some("v1")
    );
    assert!(snap.rejected.is_empty(), "{:?}", snap.rejected);

    // The same again is unchanged, even before the store has seen a write.
    let out = writer.apply("reviews.yaml", &vs("bookinfo", "reviews", "v1"));
    assert_eq!(
        lines(&out),
        ["virtualservice.networking.istio.io/reviews unchanged"]
    );
    let out = writer.apply("reviews.yaml", &vs("bookinfo", "reviews", "v2"));
    assert_eq!(
        lines(&out),
        ["virtualservice.networking.istio.io/reviews configured"]
    );
    let out = writer.apply("reviews.yaml", &vs("bookinfo", "reviews", "v2"));
    assert_eq!(out[0].outcome, Outcome::Unchanged);
    let snap = wait_for(&h, "v2", |s| {
        subset_of(s, "bookinfo", "reviews").as_deref() == Some("v2")
    })
    .await;
    assert_eq!(snap.len(), 2);
}

#[tokio::test]
async fn apply_rejects_invalid_documents_and_writes_nothing_for_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), DEBOUNCE).await;
    let writer = ConfigWriter::new(dir.path(), store.handle());

    let input = format!(
        "{}---\n{}---\nkey: [\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ../../etc\n",
        invalid_vs("bookinfo", "reviews"),
        dr("bookinfo", "reviews")
    );
    let out = writer.apply("in.yaml", &input);
    assert_eq!(out.len(), 4, "{:?}", lines(&out));
    assert!(
        matches!(&out[0].outcome, Outcome::Rejected(r) if r.contains("in.yaml:14")),
        "{}",
        out[0]
    );
    assert!(out[0]
        .to_string()
        .starts_with("error: virtualservice.networking.istio.io/reviews: "));
    assert_eq!(out[1].outcome, Outcome::Created);
    assert!(
        matches!(&out[2].outcome, Outcome::Rejected(r) if r.contains("invalid YAML")),
        "{}",
        out[2]
    );
    assert!(
        matches!(&out[3].outcome, Outcome::Rejected(_)),
        "{}",
        out[3]
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["destinationrule-bookinfo-reviews.yaml"]);
}

#[tokio::test]
async fn delete_removes_the_file_or_reports_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A single-document file written by hand is the resource's file: delete removes it.
    write(
        dir.path(),
        "mine/reviews.yaml",
        &vs("bookinfo", "reviews", "v1"),
    );
    let store = start(dir.path(), DEBOUNCE).await;
    let h = store.handle();
    let writer = ConfigWriter::new(dir.path(), h.clone());
    writer.apply(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bookinfo\n",
    );
    assert!(dir.path().join("namespace-bookinfo.yaml").exists());

    let out = writer.delete("x.yaml", &vs("bookinfo", "reviews", "whatever"));
    assert_eq!(
        lines(&out),
        ["virtualservice.networking.istio.io/reviews deleted"]
    );
    assert!(!dir.path().join("mine/reviews.yaml").exists());
    let out = writer.delete("x.yaml", &vs("bookinfo", "reviews", "whatever"));
    assert_eq!(
        lines(&out),
        ["Error from server (NotFound): virtualservices.networking.istio.io \"reviews\" not found"]
    );
    let out = writer.delete(
        "x.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bookinfo\n",
    );
    assert_eq!(lines(&out), ["namespace/bookinfo deleted"]);
    let snap = wait_for(&h, "everything deleted", |s| s.is_empty() && s.version > 1).await;
    assert!(snap
        .get(&key(Kind::VirtualService, "bookinfo", "reviews"))
        .is_none());
}

#[tokio::test]
async fn resources_in_hand_written_multi_document_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "{}---\n{}",
        vs("bookinfo", "reviews", "v1"),
        dr("bookinfo", "reviews")
    );
    write(dir.path(), "bookinfo.yaml", &text);
    let store = start(dir.path(), DEBOUNCE).await;
    let writer = ConfigWriter::new(dir.path(), store.handle());

    let out = writer.apply("in.yaml", &vs("bookinfo", "reviews", "v2"));
    let Outcome::Rejected(reason) = &out[0].outcome else {
        panic!("expected a refusal, got {}", out[0]);
    };
    assert!(reason.contains("bookinfo.yaml"), "{reason}");
    assert!(reason.contains("2 documents"), "{reason}");
    let out = writer.delete("in.yaml", &dr("bookinfo", "reviews"));
    assert!(matches!(&out[0].outcome, Outcome::Rejected(r) if r.contains("bookinfo.yaml")));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("bookinfo.yaml")).expect("read"),
        text
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("ls").count(),
        1,
        "nothing written"
    );
}

#[tokio::test]
async fn apply_fixes_a_rejected_resource_in_its_own_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "reviews.yaml", &vs("bookinfo", "reviews", "v1"));
    let store = start(dir.path(), DEBOUNCE).await;
    let h = store.handle();
    write(
        dir.path(),
        "reviews.yaml",
        &invalid_vs("bookinfo", "reviews"),
    );
    wait_for(&h, "the rejection", |s| !s.rejected.is_empty()).await;

    let writer = ConfigWriter::new(dir.path(), h.clone());
    let out = writer.apply("fix.yaml", &vs("bookinfo", "reviews", "v3"));
    assert_eq!(
        lines(&out),
        ["virtualservice.networking.istio.io/reviews configured"]
    );
    assert_eq!(
        out[0].file.as_deref(),
        Some(dir.path().join("reviews.yaml").as_path())
    );
    let snap = wait_for(&h, "the fix", |s| s.rejected.is_empty()).await;
    assert_eq!(
        subset_of(&snap, "bookinfo", "reviews").as_deref(),
        Some("v3")
    );
}
