#!/usr/bin/env bash
# The main job: Bookinfo behind Bowline's ingress gateway, on this machine, from the Istio YAML in
# examples/bookinfo. It builds bowline, checks the configuration (validate, analyze), starts the
# Bookinfo apps on loopback addresses (the `bowline.io/address` of each Deployment), starts a
# Bowline proxy in the gateway role compiled from the Gateway and VirtualService, waits until
# http://127.0.0.1:8080/productpage answers, and stays in the foreground until Ctrl-C.
#
# Until the local mesh (pods in network namespaces with sidecars) lands, the hops between the
# apps go direct: productpage -> details and reviews v2 -> ratings.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc; }
command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl; }
cargo build --release --quiet -p bowline
bin=$PWD/target/release/bowline
config=examples/bookinfo

echo "== bowline validate $config"
"$bin" validate "$config"
echo "== bowline analyze $config"
"$bin" analyze "$config"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

app() { # app NAME VERSION ADDRESS [ENV=VALUE...]
  local name=$1 version=$2 addr=$3
  shift 3
  env "$@" "$bin" demo-app "$name" --version "$version" --bind "$addr" --port 9080 &
  pids+=($!)
}
app details v1 127.0.10.2
app ratings v1 127.0.10.6
app reviews v2 127.0.10.4 RATINGS_HOSTNAME=127.0.10.6
app productpage v1 127.0.10.1 DETAILS_HOSTNAME=127.0.10.2 REVIEWS_HOSTNAME=127.0.10.4

echo "== bowline proxy --role gateway (istio=ingressgateway) on :8080"
"$bin" proxy --config-dir "$config" --role gateway --namespace istio-system \
  --labels istio=ingressgateway,app=istio-ingressgateway \
  --admin-addr 127.0.0.1:15000 --health-addr 127.0.0.1:15021 &
pids+=($!)

for _ in $(seq 100); do
  if curl -fsS -o /dev/null http://127.0.0.1:8080/productpage 2>/dev/null; then
    echo
    echo "Bookinfo: http://127.0.0.1:8080/productpage"
    echo "Gateway admin: http://127.0.0.1:15000/config_dump  http://127.0.0.1:15000/stats/prometheus"
    echo "Press Ctrl-C to stop."
    wait
    exit 0
  fi
  sleep 0.2
done
echo "Bookinfo did not answer on http://127.0.0.1:8080/productpage within 20 s" >&2
exit 1
