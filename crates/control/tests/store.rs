//! The config store over a real directory watched with notify: initial load, per-document
//! rejection with file and line, last good versions, deletes, debounce, mesh config, duplicates,
//! and publishing only on change.

mod common;

use std::time::Duration;

use api::Kind;
use common::*;

const DEBOUNCE: Duration = Duration::from_millis(100);

#[tokio::test]
async fn initial_load_indexes_every_file_recursively() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "bookinfo/reviews.yaml",
        &vs("bookinfo", "reviews", "v1"),
    );
    write(
        dir.path(),
        "bookinfo/more.yml",
        &format!(
            "{}---\n{}",
            dr("bookinfo", "reviews"),
            service("bookinfo", "reviews")
        ),
    );
    write(dir.path(), "notes.txt", "not config");
    write(dir.path(), ".hidden.yaml", "garbage: [");
    let store = start(dir.path(), DEBOUNCE).await;
    let snap = store.handle().load();

    assert_eq!(snap.version, 1);
    assert_eq!(snap.len(), 3, "{:#}", snap.configz());
    assert!(snap.rejected.is_empty(), "{:?}", snap.rejected);
    assert_eq!(
        subset_of(&snap, "bookinfo", "reviews").as_deref(),
        Some("v1")
    );
    let dr = snap
        .get(&key(Kind::DestinationRule, "bookinfo", "reviews"))
        .expect("DestinationRule indexed");
    assert!(dr.file().ends_with("bookinfo/more.yml"));
    assert_eq!(dr.line(), 1);
    let svc = snap
        .get(&key(Kind::Service, "bookinfo", "reviews"))
        .expect("Service indexed");
    assert_eq!(svc.line(), 13, "second document starts after the separator");
    assert_eq!(snap.of_kind(Kind::VirtualService).count(), 1);
    assert!(snap.resources[&Kind::Service].contains_key("bookinfo/reviews"));
    // No mesh.yaml: Istio's defaults.
    assert_eq!(snap.mesh.root_namespace(), "istio-system");
    assert_eq!(snap.mesh.trust_domain(), "cluster.local");
    assert!(snap.mesh_source.file.is_none());
}

#[tokio::test]
async fn bad_documents_are_rejected_with_file_and_line_while_the_rest_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "{}---\n{}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: typo\nspec:\n  host: x\n  trafficPolicee: {{}}\n---\nkey: [unclosed\n",
        vs("default", "good", "v1"),
        invalid_vs("default", "bad"),
    );
    write(dir.path(), "mixed.yaml", &text);
    write(dir.path(), "other.yaml", &dr("default", "good"));
    let store = start(dir.path(), DEBOUNCE).await;
    let snap = store.handle().load();

    assert_eq!(snap.len(), 2, "{:#}", snap.configz());
    assert!(snap
        .get(&key(Kind::VirtualService, "default", "good"))
        .is_some());
    assert!(snap
        .get(&key(Kind::DestinationRule, "default", "good"))
        .is_some());
    assert_eq!(snap.rejected.len(), 3, "{:#?}", snap.rejected);
    let file = dir.path().join("mixed.yaml").display().to_string();
    let invalid = &snap.rejected[0];
    assert_eq!(invalid.file, file);
    assert_eq!(
        invalid.key,
        Some(key(Kind::VirtualService, "default", "bad"))
    );
    assert_eq!(invalid.line, 28, "the line of the bad port: {invalid}");
    assert!(
        invalid.to_string().contains("70000") || invalid.to_string().contains("port"),
        "{invalid}"
    );
    assert!(!invalid.kept_last_good);
    let unknown = &snap.rejected[1];
    assert_eq!(unknown.line, 36, "{unknown}");
    assert!(unknown.to_string().contains("trafficPolicee"), "{unknown}");
    let syntax = &snap.rejected[2];
    assert_eq!(syntax.key, None);
    assert!(syntax.line >= 38, "{syntax}");
    assert!(syntax.to_string().contains("invalid YAML"), "{syntax}");

    let configz = snap.configz();
    assert_eq!(configz["rejected"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        configz["resources"]["VirtualService"][0]["origin"],
        format!("{file}:1")
    );
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_last_good_version_until_fixed() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "reviews.yaml", &vs("bookinfo", "reviews", "v1"));
    write(dir.path(), "ratings.yaml", &vs("bookinfo", "ratings", "v1"));
    let store = start(dir.path(), DEBOUNCE).await;
    let h = store.handle();

    write(
        dir.path(),
        "reviews.yaml",
        &invalid_vs("bookinfo", "reviews"),
    );
    let snap = wait_for(&h, "the rejection", |s| !s.rejected.is_empty()).await;
    assert_eq!(snap.version, 2);
    assert_eq!(
        subset_of(&snap, "bookinfo", "reviews").as_deref(),
        Some("v1"),
        "last good kept"
    );
    assert_eq!(snap.len(), 2);
    let r = &snap.rejected[0];
    assert!(r.kept_last_good);
    assert_eq!(
        r.key,
        Some(key(Kind::VirtualService, "bookinfo", "reviews"))
    );
    assert!(r.to_string().contains("reviews.yaml:"), "{r}");

    write(dir.path(), "reviews.yaml", &vs("bookinfo", "reviews", "v2"));
    let snap = wait_for(&h, "the fix", |s| s.rejected.is_empty()).await;
    assert_eq!(snap.version, 3);
    assert_eq!(
        subset_of(&snap, "bookinfo", "reviews").as_deref(),
        Some("v2")
    );
}

#[tokio::test]
async fn broken_yaml_keeps_the_resources_of_its_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "reviews.yaml", &vs("bookinfo", "reviews", "v1"));
    let store = start(dir.path(), DEBOUNCE).await;
    let h = store.handle();

    write(
        dir.path(),
        "reviews.yaml",
        "apiVersion: networking.istio.io/v1\nkind: [\n",
    );
    let snap = wait_for(&h, "the syntax rejection", |s| !s.rejected.is_empty()).await;
    assert_eq!(
        subset_of(&snap, "bookinfo", "reviews").as_deref(),
        Some("v1")
    );
    assert!(snap.rejected[0].kept_last_good);
    assert_eq!(snap.rejected[0].key, None);
}

#[tokio::test]
async fn deleting_a_file_removes_its_resources() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "a/reviews.yaml",
        &vs("bookinfo", "reviews", "v1"),
    );
    write(
        dir.path(),
        "b/svc.yaml",
        &format!(
            "{}---\n{}",
            service("bookinfo", "reviews"),
            dr("bookinfo", "reviews")
        ),
    );
    let store = start(dir.path(), DEBOUNCE).await;
    let h = store.handle();
    assert_eq!(h.load().len(), 3);

    std::fs::remove_file(dir.path().join("b/svc.yaml")).expect("rm");
    let snap = wait_for(&h, "the removal", |s| s.len() == 1).await;
    assert_eq!(snap.version, 2);
    assert!(snap
        .get(&key(Kind::Service, "bookinfo", "reviews"))
        .is_none());
    assert!(snap.files.keys().all(|f| !f.ends_with("svc.yaml")));

    // A whole directory going away counts too.
    std::fs::remove_dir_all(dir.path().join("a")).expect("rm -r");
    let snap = wait_for(&h, "the directory removal", |s| s.is_empty()).await;
    assert_eq!(snap.version, 3);
}

#[tokio::test]
async fn a_burst_of_writes_is_one_version() {
    let debounce = Duration::from_millis(200);
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "reviews.yaml", &vs("bookinfo", "reviews", "v0"));
    let store = start(dir.path(), debounce).await;
    let h = store.handle();
    let mut rx = h.subscribe();

    for i in 1..=10 {
        write(
            dir.path(),
            "reviews.yaml",
            &vs("bookinfo", "reviews", &format!("v{i}")),
        );
        write(
            dir.path(),
            &format!("extra-{i}.yaml"),
            &dr("bookinfo", &format!("d{i}")),
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let snap = wait_for(&h, "the burst", |s| s.len() == 11).await;
    assert_eq!(
        subset_of(&snap, "bookinfo", "reviews").as_deref(),
        Some("v10")
    );
    let snap = settle(&h, debounce).await;
    assert_eq!(snap.version, 2, "ten writes, one version");
    assert!(rx.has_changed().expect("open"));
    rx.mark_unchanged();
    assert_eq!(*rx.borrow(), 2);
}

#[tokio::test]
async fn mesh_yaml_changes_reach_the_snapshot_with_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = start(dir.path(), DEBOUNCE).await;
    let h = store.handle();
    assert_eq!(h.load().mesh.trust_domain(), "cluster.local");

    write(
        dir.path(),
        "mesh.yaml",
        "trustDomain: example.org\ndefaultConfig:\n  drainDuration: 10s\n",
    );
    let snap = wait_for(&h, "the mesh config", |s| s.mesh_source.file.is_some()).await;
    assert_eq!(snap.mesh.trust_domain.as_deref(), Some("example.org"));
    // Defaults filled in around what was written, as Istio's ApplyMeshConfig does.
    assert_eq!(snap.mesh.root_namespace.as_deref(), Some("istio-system"));
    assert_eq!(snap.mesh.enable_auto_mtls, Some(true));
    let proxy = snap.mesh.default_config.as_ref().expect("defaultConfig");
    assert_eq!(proxy.drain_duration().as_nanos(), 10_000_000_000);
    assert_eq!(proxy.proxy_admin_port, Some(15000));
    assert!(snap.is_empty(), "mesh.yaml is not a resource file");

    // A broken mesh file keeps the mesh config in force and says why.
    write(
        dir.path(),
        "mesh.yaml",
        "trustDomain: example.org\nnoSuchField: 1\n",
    );
    let snap = wait_for(&h, "the mesh rejection", |s| !s.rejected.is_empty()).await;
    assert_eq!(snap.mesh.trust_domain.as_deref(), Some("example.org"));
    assert!(snap.rejected[0].kept_last_good);
    assert_eq!(snap.rejected[0].line, 2, "{}", snap.rejected[0]);
    assert!(snap.rejected[0].to_string().contains("noSuchField"));

    std::fs::remove_file(dir.path().join("mesh.yaml")).expect("rm");
    let snap = wait_for(&h, "the default mesh", |s| s.mesh_source.file.is_none()).await;
    assert_eq!(snap.mesh.trust_domain(), "cluster.local");
    assert!(snap.rejected.is_empty());
}

#[tokio::test]
async fn a_duplicate_in_a_later_file_is_rejected_and_the_first_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "b.yaml", &vs("bookinfo", "reviews", "from-b"));
    write(
        dir.path(),
        "a/reviews.yaml",
        &vs("bookinfo", "reviews", "from-a"),
    );
    let store = start(dir.path(), DEBOUNCE).await;
    let h = store.handle();
    let snap = h.load();
    assert_eq!(
        subset_of(&snap, "bookinfo", "reviews").as_deref(),
        Some("from-a")
    );
    assert_eq!(snap.rejected.len(), 1);
    let r = &snap.rejected[0];
    assert!(r.file.ends_with("b.yaml"), "{r}");
    assert_eq!(r.line, 1);
    assert!(
        r.to_string()
            .contains("duplicate of VirtualService bookinfo/reviews"),
        "{r}"
    );
    assert!(r.to_string().contains("a/reviews.yaml:1"), "{r}");

    // Removing the first makes the second the one in force.
    std::fs::remove_file(dir.path().join("a/reviews.yaml")).expect("rm");
    let snap = wait_for(&h, "b's version", |s| s.rejected.is_empty()).await;
    assert_eq!(
        subset_of(&snap, "bookinfo", "reviews").as_deref(),
        Some("from-b")
    );
}

#[tokio::test]
async fn unchanged_rescans_do_not_wake_subscribers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = vs("bookinfo", "reviews", "v1");
    write(dir.path(), "reviews.yaml", &text);
    let store = start(dir.path(), DEBOUNCE).await;
    let h = store.handle();
    let mut rx = h.subscribe();

    // Same bytes rewritten, and a file the store does not read: events, rescans, no change.
    write(dir.path(), "reviews.yaml", &text);
    write(dir.path(), "README.txt", "hello");
    let snap = settle(&h, DEBOUNCE).await;
    assert_eq!(snap.version, 1);
    assert!(
        !rx.has_changed().expect("open"),
        "no wake-up without a change"
    );

    write(dir.path(), "reviews.yaml", &vs("bookinfo", "reviews", "v2"));
    tokio::time::timeout(Duration::from_secs(10), rx.changed())
        .await
        .expect("woken on change")
        .expect("open");
    assert_eq!(*rx.borrow_and_update(), 2);
    assert_eq!(
        subset_of(&h.load(), "bookinfo", "reviews").as_deref(),
        Some("v2")
    );
}
