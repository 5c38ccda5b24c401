//! The store over a source other than a directory (as a Kubernetes source will be), driven by
//! hand with paused time: subscribers are woken on a change and only then, and versions count
//! changes, not rescans.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use control::store::{ConfigSource, SourceError, SourceSet, SourceText, Store};
use tokio::sync::mpsc;

/// A source whose content the test sets, and whose change notifications the test sends.
struct ChannelSource {
    content: Arc<Mutex<SourceSet>>,
    changes: mpsc::UnboundedReceiver<()>,
}

impl ConfigSource for ChannelSource {
    fn scan(&mut self) -> Result<SourceSet, SourceError> {
        Ok(self.content.lock().expect("lock").clone())
    }

    async fn changed(&mut self) -> bool {
        self.changes.recv().await.is_some()
    }
}

fn text(name: &str, text: &str) -> SourceText {
    SourceText {
        name: name.into(),
        text: Ok(text.into()),
    }
}

const GW: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: public
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - '*'
";

#[tokio::test(start_paused = true)]
async fn subscribers_wake_on_change_only() {
    let content = Arc::new(Mutex::new(SourceSet::default()));
    let (tx, changes) = mpsc::unbounded_channel();
    let store = Store::start(ChannelSource {
        content: content.clone(),
        changes,
    })
    .await
    .expect("start");
    let h = store.handle();
    assert_eq!(h.load().version, 1);
    assert!(h.load().is_empty());
    let mut rx = h.subscribe();

    // A notification with nothing new: rescanned, not published.
    tx.send(()).expect("send");
    let woke = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
    assert!(woke.is_err(), "woken without a change");
    assert_eq!(h.load().version, 1);

    content.lock().expect("lock").texts = vec![text("k8s/istio-system/public", GW)];
    tx.send(()).expect("send");
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("woken by the change")
        .expect("open");
    let snap = h.load();
    assert_eq!(*rx.borrow_and_update(), 2);
    assert_eq!(snap.version, 2);
    assert_eq!(snap.len(), 1);
    let entry = snap
        .of_kind(api::Kind::Gateway)
        .next()
        .expect("the gateway");
    assert_eq!(entry.file(), "k8s/istio-system/public");

    // Readers holding the old snapshot keep it whole.
    let held = h.load();
    content.lock().expect("lock").texts.clear();
    tx.send(()).expect("send");
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("woken by the removal")
        .expect("open");
    assert_eq!(held.len(), 1);
    assert_eq!(h.load().version, 3);
    assert!(h.load().is_empty());

    // The source ending stops the store's task but not its readers.
    drop(tx);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.load().version, 3);
}

#[tokio::test(start_paused = true)]
async fn unreadable_texts_reject_without_dropping_last_good() {
    let content = Arc::new(Mutex::new(SourceSet {
        texts: vec![text("gw.yaml", GW)],
        mesh: None,
    }));
    let (tx, changes) = mpsc::unbounded_channel();
    let store = Store::start(ChannelSource {
        content: content.clone(),
        changes,
    })
    .await
    .expect("start");
    let h = store.handle();
    let mut rx = h.subscribe();

    content.lock().expect("lock").texts = vec![SourceText {
        name: "gw.yaml".into(),
        text: Err("not UTF-8 text".into()),
    }];
    tx.send(()).expect("send");
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("woken")
        .expect("open");
    let snap = h.load();
    assert_eq!(snap.len(), 1, "the gateway stays");
    assert_eq!(snap.rejected.len(), 1);
    assert!(snap.rejected[0].kept_last_good);
    assert!(snap.rejected[0].to_string().contains("not UTF-8"));
    let configz = snap.configz();
    assert_eq!(configz["rejected"][0]["keptLastGood"], true);
    assert_eq!(configz["resources"]["Gateway"][0]["origin"], "gw.yaml:1");
}

#[tokio::test(start_paused = true)]
async fn warnings_are_kept_with_the_accepted_resource() {
    let gw = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: tcp
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    hosts:
    - '*'
    tls:
      mode: SIMPLE
      credentialName: tcp-cert
      minProtocolVersion: TLSV1_0
";
    let content = Arc::new(Mutex::new(SourceSet {
        texts: vec![text("gw.yaml", gw)],
        mesh: None,
    }));
    let (_tx, changes) = mpsc::unbounded_channel();
    let store = Store::start(ChannelSource { content, changes })
        .await
        .expect("start");
    let snap = store.handle().load();
    assert!(snap.rejected.is_empty(), "{:?}", snap.rejected);
    assert_eq!(snap.len(), 1, "a warning does not reject");
    assert_eq!(snap.warnings.len(), 1, "{:?}", snap.warnings);
    let w = snap.warnings[0].to_string();
    assert!(w.starts_with("gw.yaml:19: warning:"), "{w}");
    assert!(w.contains("TLSV1_2"), "{w}");
    let entry = snap.of_kind(api::Kind::Gateway).next().expect("gateway");
    assert_eq!(entry.warnings, snap.warnings);
    assert_eq!(
        snap.configz()["resources"]["Gateway"][0]["warnings"][0],
        w.as_str()
    );
}
