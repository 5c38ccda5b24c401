#!/usr/bin/env bash
# Fuzz the config decoder (bytes -> documents -> typed resources -> validation) for N seconds
# (default 600). Seeds: examples/ and, when present, Istio's cases in ../shared/conformance.
# cargo-fuzz needs nightly-only flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them,
# and without a sanitizer (`-s none`) nothing else nightly is needed: the code is safe Rust,
# so what we look for is panics, hangs and runaway memory.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
corpus=target/fuzz-corpus
mkdir -p "$corpus"
cp examples/*/*.yaml "$corpus"/ 2>/dev/null || true
if [ -d ../shared/conformance ]; then
  i=0
  for f in ../shared/conformance/istio-validation/*.yaml ../shared/conformance/istio-analyzers/testdata/*.yaml; do
    i=$((i + 1)); cp "$f" "$corpus/istio-$i.yaml"
  done
fi
RUSTC_BOOTSTRAP=1 cargo fuzz run -s none parse_resources "$corpus" -- \
  -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048
