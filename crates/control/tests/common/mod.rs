//! Shared helpers: YAML fixtures, a store over a temporary directory, and waiting for a snapshot
//! that satisfies a condition (real time: notify delivers on its own thread).

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use control::store::{ConfigSnapshot, DirSource, ResourceKey, Store, StoreHandle};

pub fn vs(ns: &str, name: &str, subset: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: {ns}
spec:
  hosts:
  - {name}
  http:
  - route:
    - destination:
        host: {name}
        subset: {subset}
"
    )
}

/// A VirtualService that decodes but fails validation (a port number out of range).
pub fn invalid_vs(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: {ns}
spec:
  hosts:
  - {name}
  http:
  - route:
    - destination:
        host: {name}
        port:
          number: 70000
"
    )
}

pub fn dr(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {name}
  namespace: {ns}
spec:
  host: {name}
  subsets:
  - name: v1
    labels:
      version: v1
"
    )
}

pub fn service(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {ns}
spec:
  selector:
    app: {name}
  ports:
  - name: http
    port: 9080
"
    )
}

pub fn key(kind: api::Kind, ns: &str, name: &str) -> ResourceKey {
    ResourceKey {
        kind,
        namespace: ns.into(),
        name: name.into(),
    }
}

/// The subset the VirtualService's first route points at.
pub fn subset_of(snap: &ConfigSnapshot, ns: &str, name: &str) -> Option<String> {
    let e = snap.get(&key(api::Kind::VirtualService, ns, name))?;
    e.value()
        .pointer("/spec/http/0/route/0/destination/subset")
        .and_then(|v| v.as_str())
        .map(String::from)
}

pub fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(p, text).expect("write");
}

pub async fn start(dir: &Path, debounce: Duration) -> Store {
    let source = DirSource::new(dir, debounce).expect("watch the directory");
    Store::start(source).await.expect("start the store")
}

/// Wait (real time, 10 s at most) until the snapshot satisfies `f`.
pub async fn wait_for(
    h: &StoreHandle,
    what: &str,
    f: impl Fn(&ConfigSnapshot) -> bool,
) -> Arc<ConfigSnapshot> {
    let mut rx = h.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = h.load();
        if f(&s) {
            return s;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("store stopped while waiting for {what}"),
            Err(_) => panic!(
                "timed out waiting for {what}; last snapshot: {:#}",
                h.load().configz()
            ),
        }
    }
}

/// Let the watcher and the debounce run out, then return the snapshot.
pub async fn settle(h: &StoreHandle, debounce: Duration) -> Arc<ConfigSnapshot> {
    tokio::time::sleep(debounce * 5 + Duration::from_millis(300)).await;
    h.load()
}
