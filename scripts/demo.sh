#!/usr/bin/env bash
# The main job: the local mesh with Istio's Bookinfo, every app in its own pod (a network
# namespace) with a Bowline sidecar capturing its traffic as Istio's does, the control plane and
# the ingress gateway on this machine: http://127.0.0.1:8080/productpage. Stays in the foreground
# until Ctrl-C, then removes every namespace, link and rule it made.
#
# Needs root (network namespaces, iptables): run it as root or with sudo. Arguments go to
# `bowline demo` (e.g. `all` for Bookinfo, httpbin and tcp-echo). Meanwhile, in another
# terminal: `sudo target/release/bowline exec sleep -- curl -s http://productpage:9080/productpage`
# or `target/release/bowline apply -f examples/mesh/tasks/virtual-service-all-v1.yaml`.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v cc >/dev/null || missing+=(gcc)
command -v curl >/dev/null || missing+=(curl)
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing+=(iproute2)
command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || missing+=(iptables)
command -v setpriv >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
cargo build --release --quiet -p bowline
bin=$PWD/target/release/bowline
echo "== bowline validate examples/mesh"
"$bin" validate examples/mesh
# Every run starts from the samples' base config alone (the tasks' changes of a previous run go).
rm -rf "$PWD/target/mesh"
exec_demo=("$bin" demo "$@" --config-dir "$PWD/target/mesh")
if [ "$(id -u)" = 0 ]; then exec "${exec_demo[@]}"; else exec sudo "${exec_demo[@]}"; fi
