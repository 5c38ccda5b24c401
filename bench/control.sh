#!/usr/bin/env bash
# Control-plane benchmark. Usage: bench/run control [--quick]
#
# Starts `bowline control` over a generated mesh of M ServiceEntries with K endpoints each and
# opens N simulated proxy streams (xds-load) that subscribe and ACK like proxies. Measures the
# time until all N have their full config, one endpoint change's and one VirtualService change's
# convergence across all N (p50/p99, measured from the file write: store and push debounce are
# 10 ms each here), bytes per endpoint change per proxy, config bytes per proxy with and without a
# Sidecar scope, and the control plane's peak RSS and CPU time. Writes target/bench/control.json
# and target/bench/control.md. Full size: N=1000, M=10000, K=5; --quick: N=50, M=500, K=5.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/target/bench"
QUICK=0
for a in "$@"; do
    case "$a" in
        --quick) QUICK=1 ;;
        *) echo "usage: bench/run control [--quick]" >&2; exit 2 ;;
    esac
done
if ((QUICK)); then N=50; M=500; K=5; R=5; else N=1000; M=10000; K=5; R=10; fi

echo "bench: building release binaries" >&2
cargo build -q --release -p bowline -p bowline-xds --bin bowline --bin xds-load
mkdir -p "$OUT"
timeout 1800 "$ROOT/target/release/xds-load" --bowline "$ROOT/target/release/bowline" \
    --work "$OUT/work-control" --proxies "$N" --services "$M" --endpoints "$K" --changes "$R" \
    >"$OUT/control.json"
rm -rf "$OUT/work-control"
python3 - "$OUT/control.json" "$OUT/control.md" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rows = [
    ("proxies", d["proxies"], ""),
    ("services x endpoints", f'{d["services"]} x {d["endpoints_per_service"]}', ""),
    ("full push to all proxies", f'{d["full_push_s"]:.2f} s', ""),
    ("endpoint change p50", f'{d["endpoint_change_p50_ms"]:.1f} ms', ""),
    ("endpoint change p99", f'{d["endpoint_change_p99_ms"]:.1f} ms', "goal < 100 ms at 1000 x 10000 x 5"),
    ("VirtualService change p99", f'{d["vs_change_p99_ms"]:.1f} ms', ""),
    ("control plane peak RSS", f'{d["rss_mb"]:.0f} MB', "goal < 500 MB at 1000 x 10000 x 5"),
    ("control plane CPU", f'{d["cpu_s"]:.1f} s', ""),
    ("bytes per endpoint change per proxy", d["bytes_per_endpoint_change_per_proxy"], ""),
    ("config bytes per proxy", d["config_bytes_per_proxy"], ""),
    ("config bytes per proxy, Sidecar-scoped", d["config_bytes_per_proxy_scoped"], ""),
]
with open(sys.argv[2], "w") as f:
    f.write(f'# Control plane (debounce {d["debounce_ms"]} ms; latencies from the config file write)\n\n')
    f.write("| measure | value | note |\n|---|---|---|\n")
    for name, value, note in rows:
        f.write(f"| {name} | {value} | {note} |\n")
PY
echo "bench: wrote $OUT/control.json and $OUT/control.md" >&2
cat "$OUT/control.md"
