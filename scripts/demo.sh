#!/usr/bin/env bash
# The main job. Until the local mesh lands, this builds Bowline and runs it over the Bookinfo
# configuration in examples/bookinfo: Istio's validation, then Istio's cross-resource analysis.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc; }
cargo build --release --quiet -p bowline
bin=target/release/bowline
echo "== bowline validate examples/bookinfo"
"$bin" validate examples/bookinfo
echo "== bowline analyze examples/bookinfo"
"$bin" analyze examples/bookinfo
