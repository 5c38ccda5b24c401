#!/usr/bin/env bash
# Bowline's whole test suite, as CI runs it. Installs what the tests need when it is missing
# (Debian packages, Python packages, Rust components) and is safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v python3 >/dev/null || missing+=(python3 python3-pip)
command -v cc >/dev/null || missing+=(gcc)
# The node network tests (crates/node) run as root with real namespaces, veths and iptables.
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing+=(iproute2)
command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || missing+=(iptables)
command -v setpriv >/dev/null || missing+=(util-linux)
# The CA and TLS tests cross-check certificates and make encrypted keys with the openssl CLI.
command -v openssl >/dev/null || missing+=(openssl)
# The sidecar mesh tests check what curl reports for a connection STRICT mTLS resets; the local
# mesh tests (istio.io's tasks) run clients with curl inside pods and on the host.
command -v curl >/dev/null || missing+=(curl)
# The binary's tests send SIGTERM with /usr/bin/kill.
[ -x /usr/bin/kill ] || missing+=(procps)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# The conformance runners in ../shared read YAML with PyYAML.
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

echo "== format"
cargo fmt --all -- --check
echo "== lint"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== tests"
cargo test --workspace --no-fail-fast
