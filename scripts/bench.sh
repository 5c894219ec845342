#!/usr/bin/env bash
# scripts/bench.sh: imedge against nginx, side by side, on this machine.
#
# Usage:
#   scripts/bench.sh [--quick] [--rounds N] [--duration SECONDS]
#                    [--forward-batch N] [--out FILE] [--keep] [--only decide]
#
# Builds imedge (or uses $IMEDGE_BIN), makes a PKI with `imedge certs`,
# starts a counting sink (internal/benchsink, HTTP on loopback), imedge
# (--rate-limit-exempt for the load's ClientIP, state in a temporary
# directory) and nginx (configured as Tencent's IM guide does, with
# ssl_verify_client on and ssl_client_certificate, but TLS 1.2+, proxying to
# the same sink with upstream keep-alive, worker_processes auto). nginx is
# installed with apt-get when missing (as root).
#
# Then, alternating the servers' order each round, for --rounds rounds of
# --duration seconds each (`imedge load` is the client):
#   keepalive  64 keep-alive connections
#   new-conn   32 workers, a new connection with a full TLS handshake per request
#              (this and resume run for half of --duration)
#   resume     32 workers, a new connection per request resuming a TLS session
# then, one round through every server:
#   mixed      keepalive load cycling through the catalog's 49 after-callbacks,
#              each with its example body
# and for imedge alone:
#   sinkdown   keepalive load while the sink is stopped (answers while events
#              pile up in the outbox), then the sink is restarted and the
#              outbox drains
#   dedupe     keepalive load where half of the requests repeat a body
#   1m-ips     1 000 000 requests from 1 000 000 distinct ClientIPs, each with
#              a new body (1 M limiter keys and 1 M dedupe keys), on a fresh
#              imedge with --rate-max-keys 1000000; then its RSS
# With --forward-batch N, a second imedge tuned for the comparison (imedge-bN)
# joins the three main scenarios: it delivers N events per request, offers
# nginx's key exchanges (--tls-curves X25519,P-256,P-384: no ML-KEM hybrid)
# and runs with GOGC=400 GOMEMLIMIT=256MiB GOMAXPROCS=1 in its environment (one
# processor for Go code: the load generator takes the other core, and the
# journal flushes through io_uring); 1m-ips then uses the same settings. 1m-ips always runs with GOMEMLIMIT=160MiB.
#
# Output: a table of, per scenario and server (medians over rounds):
#   ok/s        callbacks answered OK per second (new connections per second
#               for new-conn and resume)
#   deliv/s     events delivered TO THE SINK per second: the clock stops when
#               the sink has counted every event imedge accepted (its outbox
#               drained), not when the load ends
#   cpu_us/ev   server CPU (utime+stime from /proc/PID/stat; nginx: master and
#               workers) per delivered event, over the same interval
#   p50/p99     answer latency seen by the client, ms
#   rss_MiB     peak RSS (VmHWM; nginx: sum over its processes)
# and the imedge/nginx ratios. --out FILE also writes the per-round rows (TSV).
#
# Then the decide scenario (alone with --only decide): before-callbacks
# (C2C.CallbackBeforeSendMsg, `imedge load --command`) answered by a
# decision service (internal/benchsink: every answer an allow), through
# imedge (--decide '*=URL', default flags otherwise) and through nginx
# proxying to the same service as IM's guide does (proxy_pass), and called
# directly over the same TLS client (benchsink serving HTTPS): decisions/s
# with 64 keep-alive connections and CPU per decision, with go-floor
# alongside (benchsink --proxy: a relay on net/http's server and client with
# mutual TLS and no checks, what Go's standard HTTP stack costs before any
# of imedge's work); p50/p99 at 1 000
# decisions/s and imedge's added latency over the direct call; with the
# service stalled, every answer's latency (goal: within --decide-timeout +
# 50 ms) and then with the circuit open (goal: p99 under 5 ms), and nginx's
# answers against IM's 2 s deadline. The goals are printed with the
# figures, met or not.
#
# --quick makes every round 1 s, one round, and 1m-ips 5 000 requests: a
# smoke test of the whole script (well under a minute). Everything listens
# on 127.0.0.1 only; every process started is stopped by its PID on exit.
set -euo pipefail

QUICK=0 ROUNDS=3 DURATION=10 BATCH=0 OUT="" KEEP=0 ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --forward-batch) BATCH=$2; shift ;;
    --out) OUT=$2; shift ;;
    --keep) KEEP=1 ;;
    --only) ONLY=$2; shift; [ "$ONLY" = decide ] || { echo "bench.sh: --only takes decide" >&2; exit 2; } ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
MILLION=1000000
if [ "$QUICK" = 1 ]; then
  ROUNDS=1 DURATION=1 MILLION=5000
fi
HS_DURATION=$(((DURATION + 1) / 2)) # handshake rates settle quickly

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/imedge-bench.XXXXXX")
PIDS=()
SINK_PID=""

stop_pid() { # stop_pid PID: TERM, wait up to 10 s, then KILL
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [ "$KEEP" = 1 ]; then echo "bench.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench: $*" >&2; }
die() { echo "bench.sh: $*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------
command -v curl >/dev/null || die "curl is needed"
NGINX=$(command -v nginx || true)
[ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
if [ -z "$NGINX" ]; then
  [ "$(id -u)" = 0 ] || die "nginx is not installed (apt-get install nginx, as root)"
  log "installing nginx"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >&2
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
[ -x "$NGINX" ] || die "nginx not found after installing it"

IMEDGE=${IMEDGE_BIN:-}
if [ -z "$IMEDGE" ]; then
  log "building imedge"
  (cd "$ROOT" && go build -o "$WORK/imedge" ./cmd/imedge)
  IMEDGE=$WORK/imedge
fi
log "building the counting sink"
(cd "$ROOT" && go build -o "$WORK/benchsink" ./internal/benchsink)
BENCHSINK=$WORK/benchsink

# --- PKI -----------------------------------------------------------------
P=$WORK/pki
mkdir -p "$P"
"$IMEDGE" certs ca --out-cert "$P/ca.pem" --out-key "$P/ca-key.pem" --cn "bench IM CA" >/dev/null
"$IMEDGE" certs issue --ca-cert "$P/ca.pem" --ca-key "$P/ca-key.pem" --server --dns localhost --ip 127.0.0.1 \
  --out-cert "$P/server.pem" --out-key "$P/server-key.pem" >/dev/null
"$IMEDGE" certs issue --ca-cert "$P/ca.pem" --ca-key "$P/ca-key.pem" --client --cn im-callback \
  --uri spiffe://tencent-im/callback --out-cert "$P/client.pem" --out-key "$P/client-key.pem" >/dev/null
APPID=1400000000

# --- process helpers ---------------------------------------------------------
wait_for() { # wait_for SECONDS CMD...: poll CMD every 50 ms
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}
children_of() { # PIDs whose parent is $1
  local f
  if [ -r "/proc/$1/task/$1/children" ]; then
    cat "/proc/$1/task/$1/children"
    return
  fi
  for f in /proc/[0-9]*/stat; do
    sed 's/^.*) //' "$f" 2>/dev/null | awk -v pp="$1" -v f="$f" '$2 == pp { split(f, a, "/"); print a[3] }'
  done
}
cpu_ticks() { # summed utime+stime of the PIDs given
  local t=0 p v
  for p in "$@"; do
    v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
hwm_kib() { # summed VmHWM of the PIDs given, KiB
  local t=0 p v
  for p in "$@"; do
    v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null) || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
free_port() {
  local p
  for ((;;)); do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
now_ns() { date +%s%N; }

start_sink() { # start_sink [ADDR]: sets SINK_PID and SINK
  local out=$WORK/sink.$RANDOM.out
  "$BENCHSINK" --listen "${1:-127.0.0.1:0}" >"$out" 2>&1 &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  wait_for 10 grep -q "sink listening on" "$out" || die "the sink did not start: $(cat "$out")"
  SINK=$(sed -n 's/^sink listening on //p' "$out")
}
sink_events() { curl -fsS --max-time 5 "http://$SINK/count" | sed 's/.*"events":\([0-9]*\).*/\1/'; }
# shellcheck disable=SC2317 # called through wait_for
sink_reached() { # sink_reached BASE WANT: the sink counted WANT events since BASE
  local n
  n=$(sink_events) || return 1
  [ $((n - $1)) -ge "$2" ]
}

declare -A ADDR PIDOF
# shellcheck disable=SC2317 # called through wait_for
listening() { # listening PID LOG: the log says so; also true once PID exited
  kill -0 "$1" 2>/dev/null || return 0
  grep -q '"msg":"listening"' "$2"
}
IMEDGE_ENV=() # VAR=VALUE settings of the Go runtime for the next start_imedge
start_imedge() { # start_imedge NAME EXTRA-SERVE-FLAGS...
  local name=$1; shift
  local logf=$WORK/$name.log
  # The admin port is the kernel's choice: a probed free port can be taken
  # by another process before imedge binds it.
  env "${IMEDGE_ENV[@]}" "$IMEDGE" serve --admin-listen 127.0.0.1:0 --listen 127.0.0.1:0 --cert "$P/server.pem" --key "$P/server-key.pem" \
    --client-ca "$P/ca.pem" --sdkappid "$APPID" --forward-url "http://$SINK/events" \
    --state-dir "$WORK/state-$name" --audit-log "$WORK/$name-audit.log" \
    --outbox-max-events 3000000 --outbox-max-bytes 4GiB --retry-base 50ms --retry-max 1s \
    "$@" 2>"$logf" &
  local pid=$!
  PIDS+=("$pid")
  if ! wait_for 30 listening "$pid" "$logf" || ! kill -0 "$pid" 2>/dev/null; then
    die "imedge $name did not start: $(tail -5 "$logf")"
  fi
  ADDR[$name]=$(grep '"msg":"listening"' "$logf" | head -1 | sed 's/.*"addr":"\([^"]*\)".*/\1/')
  PIDOF[$name]=$pid
  verify "$name"
}

# launch_nginx NAME DIR: start nginx on DIR/nginx.conf.in, whose listen port
# is @PORT@, on a free port; a port found free can be taken by another
# process before nginx binds it, so on "Address already in use" it tries
# another.
launch_nginx() {
  local name=$1 d=$2 port pid attempt
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    sed "s/@PORT@/$port/" "$d/nginx.conf.in" >"$d/nginx.conf"
    : >"$d/logs/error.log"
    "$NGINX" -p "$d" -c "$d/nginx.conf" >"$d/logs/stdout" 2>&1 &
    pid=$!
    ADDR[$name]=127.0.0.1:$port
    PIDOF[$name]=$pid
    if wait_for 10 verify "$name"; then
      PIDS+=("$pid")
      return 0
    fi
    stop_pid "$pid"
    grep -q 'Address already in use' "$d/logs/error.log" "$d/logs/stdout" || break
    log "$name: port $port was taken before nginx bound it (try $attempt); another"
  done
  die "$name did not start: $(cat "$d/logs/error.log" "$d/logs/stdout")"
}

# nginx_conf DIR UPSTREAM [SERVER-LINES]: writes DIR/nginx.conf.in, nginx as
# Tencent's IM guide configures it (ssl_verify_client on,
# ssl_client_certificate, proxy_pass), but TLS 1.2+, proxying to UPSTREAM
# (host:port) with upstream keep-alive; SERVER-LINES go into its server
# block. Its listen port is @PORT@ (see launch_nginx).
nginx_conf() {
  local d=$1 upstream=$2 extra=${3:-}
  mkdir -p "$d/tmp" "$d/logs"
  cat >"$d/nginx.conf.in" <<EOF
worker_processes auto;
daemon off;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  upstream app { server $upstream; keepalive 64; }
  server {
    listen 127.0.0.1:@PORT@ ssl;
    server_name localhost;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $P/server.pem;
    ssl_certificate_key $P/server-key.pem;
    ssl_verify_client on;
    ssl_client_certificate $P/ca.pem;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
$extra
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
}

start_nginx() { # nginx: the sink behind it, with TLS session resumption
  nginx_conf "$WORK/nginx" "$SINK" "    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;"
  launch_nginx nginx "$WORK/nginx"
}

server_pids() { # the PIDs whose CPU and memory count for a server
  local kids=""
  [ "$1" = nginx ] && kids=$(children_of "${PIDOF[nginx]}" | tr '\n' ' ')
  echo "${PIDOF[$1]} $kids"
}

sim() { # sim SERVER ARGS...: imedge send/load against a server
  local cmd=$1 server=$2; shift 2
  "$IMEDGE" "$cmd" --addr "${ADDR[$server]}" --server-name localhost --cert "$P/client.pem" \
    --key "$P/client-key.pem" --cacert "$P/ca.pem" --sdkappid "$APPID" "$@"
}
verify() { sim send "$1" --client-ip 10.0.0.1 --from "verify-$RANDOM$RANDOM" >/dev/null; }
jnum() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" "$2"; }

# MEDIANS_AWK reads a results TSV (scenario, server, round, then the figures
# in columns 4..last) and gives its END block median(scenario SUBSEP server
# SUBSEP column), with order[1..n] the scenario/server pairs as first seen.
# shellcheck disable=SC2016 # awk's fields, not the shell's
MEDIANS_AWK='
  function median(key,   n, i, j, v, t) {
    n = split(vals[key], v, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  NR == 1 { next }
  {
    k = $1 SUBSEP $2
    if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    for (c = 4; c <= last; c++) vals[k SUBSEP c] = vals[k SUBSEP c] " " $c
  }
'
RESULTS=$WORK/results.tsv
printf 'scenario\tserver\tround\tok_per_s\tdelivered_per_s\tcpu_us_per_event\tp50_ms\tp99_ms\trss_mib\tfailed\thandshakes\tresumed\n' >"$RESULTS"

# run_case SCENARIO SERVER ROUND LOAD-FLAGS...: one measured run. The clock
# and the CPU account run from the start of the load until the sink counted
# every event the server accepted.
run_case() {
  local scen=$1 server=$2 round=$3; shift 3
  local out=$WORK/$scen-$server-$round.json pids c0 c1 t0 t1 s0 want got
  read -ra pids < <(server_pids "$server")
  s0=$(sink_events)
  c0=$(cpu_ticks "${pids[@]}")
  t0=$(now_ns)
  sim load "$server" --json --run-id "${scen:0:2}$round${server:0:1}$RANDOM" "$@" >"$out" ||
    die "load against $server failed: $(cat "$out")"
  want=$(jnum fresh "$out")
  [ "$server" = nginx ] && want=$(jnum ok "$out") # nginx forwards every request
  wait_for 120 sink_reached "$s0" "$want" || log "$scen/$server: sink got $(($(sink_events) - s0)) of $want events"
  t1=$(now_ns)
  c1=$(cpu_ticks "${pids[@]}")
  got=$(($(sink_events) - s0))
  record "$scen" "$server" "$round" "$out" "$got" "$((t1 - t0))" "$((c1 - c0))" "$(hwm_kib "${pids[@]}")"
}
record() { # record SCEN SERVER ROUND LOADJSON DELIVERED NS TICKS HWM_KIB
  local hz
  hz=$(getconf CLK_TCK)
  awk -v s="$1" -v sv="$2" -v r="$3" -v okps="$(jnum ok_per_s "$4")" -v d="$5" -v ns="$6" -v t="$7" -v hz="$hz" \
    -v p50="$(jnum p50 "$4")" -v p99="$(jnum p99 "$4")" -v hwm="$8" -v f="$(jnum failed "$4")" \
    -v hs="$(jnum handshakes "$4")" -v rs="$(jnum resumed "$4")" 'BEGIN {
      dps = (ns > 0) ? d / (ns / 1e9) : 0
      cpu = (d > 0) ? (t / hz * 1e6) / d : 0
      printf "%s\t%s\t%s\t%.0f\t%.0f\t%.1f\t%.3f\t%.3f\t%.1f\t%d\t%d\t%d\n", s, sv, r, okps, dps, cpu, p50, p99, hwm / 1024, f, hs, rs
    }' >>"$RESULTS"
  tail -1 "$RESULTS" | awk -F'\t' '{ printf "bench: %-9s %-10s round %s: %s ok/s, %s delivered/s, %s us/event, p99 %s ms, %s failed\n", $1, $2, $3, $4, $5, $6, $8, $10 }' >&2
}

# --- decide: before-callbacks, imedge vs nginx --------------------------------
# A decision service is a benchsink: its OK reply is an allow; GET /stall?on=1
# holds every POST until its caller gives up. DEC[NAME] is its address.
declare -A DEC
start_decision_service() { # start_decision_service NAME [BENCHSINK-FLAGS...]
  local name=$1; shift
  local out=$WORK/decision-$name.out
  "$BENCHSINK" --listen 127.0.0.1:0 "$@" >"$out" 2>&1 &
  PIDS+=("$!")
  PIDOF[$name]=$!
  wait_for 10 grep -q "sink listening on" "$out" || die "decision service $name did not start: $(cat "$out")"
  DEC[$name]=$(sed -n 's/^sink listening on //p' "$out")
}
stall_decisions() { curl -fsS --max-time 5 "http://${DEC[service]}/stall?on=$1" >/dev/null; }
decision_calls() { curl -fsS --max-time 5 "http://${DEC[service]}/count" | sed 's/.*"requests":\([0-9]*\).*/\1/'; }

start_go_floor() { # go-floor: net/http's server and client relaying to the decision service, no checks
  local out=$WORK/go-floor.out
  "$BENCHSINK" --listen 127.0.0.1:0 --tls-cert "$P/server.pem" --tls-key "$P/server-key.pem" --client-ca "$P/ca.pem" \
    --proxy "http://${DEC[service]}/decide" >"$out" 2>&1 &
  PIDS+=("$!")
  PIDOF[go-floor]=$!
  wait_for 10 grep -q "sink listening on" "$out" || die "go-floor did not start: $(cat "$out")"
  ADDR[go-floor]=$(sed -n 's/^sink listening on //p' "$out")
  verify go-floor
}
start_nginx_decide() { # nginx-dec: IM's guide for before-callbacks, proxy_pass to the decision service
  nginx_conf "$WORK/nginx-dec" "${DEC[service]}"
  launch_nginx nginx-dec "$WORK/nginx-dec"
}
decide_pids() { # the PIDs whose CPU counts for a server of the decide scenario
  local kids=""
  [ "$1" = nginx-dec ] && kids=$(children_of "${PIDOF[nginx-dec]}" | tr '\n' ' ')
  echo "${PIDOF[$1]} $kids"
}

DEC_RESULTS=$WORK/decide.tsv
# decide_case SCEN SERVER ROUND LOAD-FLAGS...: one measured run of
# before-callbacks; CPU and clock from the start to the end of the load.
decide_case() {
  local scen=$1 server=$2 round=$3; shift 3
  local out=$WORK/decide-$scen-$server-$round.json pids c0 c1 t0 t1 calls0 hz
  read -ra pids < <(decide_pids "$server")
  c0=$(cpu_ticks "${pids[@]}")
  calls0=$(decision_calls)
  t0=$(now_ns)
  sim load "$server" --json --run-id "dc$round${server:0:1}$RANDOM" --command C2C.CallbackBeforeSendMsg "$@" >"$out" || true
  t1=$(now_ns)
  c1=$(cpu_ticks "${pids[@]}")
  [ -s "$out" ] || die "decide load against $server printed nothing"
  hz=$(getconf CLK_TCK)
  awk -v s="$scen" -v sv="$server" -v r="$round" -v okps="$(jnum ok_per_s "$out")" -v ok="$(jnum ok "$out")" \
    -v t="$((c1 - c0))" -v hz="$hz" -v p50="$(jnum p50 "$out")" -v p99="$(jnum p99 "$out")" -v mx="$(jnum max "$out")" \
    -v f="$(jnum failed "$out")" -v allow="$(jnum allow "$out")" -v calls="$(($(decision_calls) - calls0))" -v ns="$((t1 - t0))" 'BEGIN {
      cpu = (ok > 0) ? (t / hz * 1e6) / ok : 0
      printf "%s\t%s\t%s\t%.0f\t%.1f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%d\t%.1f\n", s, sv, r, okps, cpu, p50, p99, mx, f, allow, calls, ns / 1e9
    }' >>"$DEC_RESULTS"
  tail -1 "$DEC_RESULTS" | awk -F'\t' '{ printf "bench: decide %-10s %-10s round %s: %s decisions/s, %s us/decision, p50 %s ms, p99 %s ms, max %s ms, %s failed, %s allowed, %s service calls\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' >&2
}

run_decide() {
  [ -n "${SINK:-}" ] || start_sink # imedge needs a --forward-url; nothing is forwarded
  start_decision_service service
  start_decision_service direct --tls-cert "$P/server.pem" --tls-key "$P/server-key.pem"
  ADDR[direct]=${DEC[direct]}
  start_imedge imedge-dec --decide "*=http://${DEC[service]}/decide"
  # For information, imedge tuned as imedge-bN is in the main comparison
  # (less batching, which decisions cannot have).
  IMEDGE_ENV=(GOGC=400 GOMEMLIMIT=256MiB GOMAXPROCS=1)
  start_imedge imedge-dec-t --decide "*=http://${DEC[service]}/decide" --tls-curves "X25519,P-256,P-384"
  IMEDGE_ENV=()
  start_nginx_decide
  start_go_floor
  local timeout_ms=1500 r s order # timeout_ms: --decide-timeout's default
  printf 'scenario\tserver\tround\tdecisions_per_s\tcpu_us_per_decision\tp50_ms\tp99_ms\tmax_ms\tfailed\tallowed\tservice_calls\tseconds\n' >"$DEC_RESULTS"
  for ((r = 1; r <= ROUNDS; r++)); do
    order=(imedge-dec imedge-dec-t nginx-dec go-floor)
    if ((r % 2 == 0)); then order=(go-floor nginx-dec imedge-dec-t imedge-dec); fi
    for s in "${order[@]}"; do
      decide_case throughput "$s" "$r" --mode keepalive --concurrency 64 --duration "${DURATION}s"
    done
    for s in "${order[@]}" direct; do
      [ "$s" = go-floor ] && continue # a bound on throughput only
      decide_case rate1k "$s" "$r" --mode keepalive --concurrency 16 --rate 1000 --duration "${DURATION}s"
    done
  done
  # The service stalls: imedge answers every callback with its fallback
  # within --decide-timeout and opens the circuit; nginx holds IM past its
  # 2 s deadline (the client gives up at 2 s, as IM does).
  stall_decisions 1
  decide_case stalled imedge-dec 1 --mode keepalive --concurrency 64 --duration "${DURATION}s" --timeout 5s
  decide_case open imedge-dec 1 --mode keepalive --concurrency 16 --rate 1000 --duration "${DURATION}s" --timeout 5s
  decide_case stalled nginx-dec 1 --mode keepalive --concurrency 64 --duration "$(((DURATION + 1) / 2))s" --timeout 2s
  stall_decisions 0

  echo
  echo "decide: before-callbacks (C2C.CallbackBeforeSendMsg) on $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg) at the end; medians over $ROUNDS round(s) of ${DURATION}s"
  echo "the decision service is internal/benchsink on loopback (allow); direct = the same service over TLS, called by the same client"
  awk -F'\t' -v tmo="$timeout_ms" -v last=11 "$MEDIANS_AWK"'
    END {
      printf "decide %-10s %-10s %9s %10s %8s %8s %9s %7s %8s\n", "scenario", "server", "dec/s", "cpu_us/dec", "p50_ms", "p99_ms", "max_ms", "failed", "allowed"
      for (i = 1; i <= n; i++) {
        split(order[i], kk, SUBSEP)
        for (c = 4; c <= 11; c++) m[order[i] SUBSEP c] = median(order[i] SUBSEP c)
        printf "decide %-10s %-10s %9.0f %10.1f %8.2f %8.2f %9.2f %7d %8d\n", kk[1], kk[2], m[order[i] SUBSEP 4], m[order[i] SUBSEP 5],
          m[order[i] SUBSEP 6], m[order[i] SUBSEP 7], m[order[i] SUBSEP 8], m[order[i] SUBSEP 9], m[order[i] SUBSEP 10]
      }
      T = "throughput"; R = "rate1k"
      ratio = m[T SUBSEP "imedge-dec" SUBSEP 4] / m[T SUBSEP "nginx-dec" SUBSEP 4]
      tratio = m[T SUBSEP "imedge-dec-t" SUBSEP 4] / m[T SUBSEP "nginx-dec" SUBSEP 4]
      fratio = m[T SUBSEP "go-floor" SUBSEP 4] / m[T SUBSEP "nginx-dec" SUBSEP 4]
      added = m[R SUBSEP "imedge-dec" SUBSEP 7] - m[R SUBSEP "direct" SUBSEP 7]
      added50 = m[R SUBSEP "imedge-dec" SUBSEP 6] - m[R SUBSEP "direct" SUBSEP 6]
      nadded = m[R SUBSEP "nginx-dec" SUBSEP 7] - m[R SUBSEP "direct" SUBSEP 7]
      smax = m["stalled" SUBSEP "imedge-dec" SUBSEP 8]; sp99 = m["stalled" SUBSEP "imedge-dec" SUBSEP 7]
      op99 = m["open" SUBSEP "imedge-dec" SUBSEP 7]; omax = m["open" SUBSEP "imedge-dec" SUBSEP 8]
      nfail = m["stalled" SUBSEP "nginx-dec" SUBSEP 9]; nok = m["stalled" SUBSEP "nginx-dec" SUBSEP 10]
      print ""
      printf "goal: imedge decisions/s vs nginx (default flags): %.2fx (goal >= 1.0x: %s); tuned (imedge-dec-t): %.2fx\n", ratio, (ratio >= 1.0) ? "met" : "NOT met", tratio
      printf "bound: go-floor (net/http server and client, mutual TLS, no checks) vs nginx: %.2fx; imedge vs go-floor: %.2fx\n", fratio, m[T SUBSEP "imedge-dec" SUBSEP 4] / m[T SUBSEP "go-floor" SUBSEP 4]
      printf "goal: added latency at 1000 decisions/s over calling the service directly: p50 %+.2f ms, p99 %+.2f ms (goal p99 <= 2 ms: %s); nginx adds p99 %+.2f ms\n", added50, added, (added <= 2) ? "met" : "NOT met", nadded
      printf "goal: service stalled: p99 %.2f ms (goal <= --decide-timeout + 50 ms = %d ms: %s); slowest answer %.2f ms (IM'"'"'s deadline 2000 ms: %s)\n", sp99, tmo + 50, (sp99 <= tmo + 50) ? "met" : "NOT met", smax, (smax < 2000) ? "met" : "NOT met"
      printf "goal: circuit open: p99 %.2f ms (goal < 5 ms: %s); slowest %.2f ms (the one trial call per second waits out the budget)\n", op99, (op99 < 5) ? "met" : "NOT met", omax
      printf "nginx with the service stalled: %d answers missed IM'"'"'s 2 s deadline, %d answered (IM then applies its own policy: by default, allow)\n", nfail, nok
    }' "$DEC_RESULTS"
  [ -n "$OUT" ] && cp "$DEC_RESULTS" "${OUT%.tsv}-decide.tsv"
  return 0
}

if [ "$ONLY" = decide ]; then
  run_decide
  exit 0
fi

# --- the servers -------------------------------------------------------------
TUNED=(--forward-batch "$BATCH" --tls-curves "X25519,P-256,P-384")
TUNED_ENV=(GOGC=400 GOMEMLIMIT=256MiB GOMAXPROCS=1)
start_sink
log "sink on $SINK"
SERVERS=(imedge nginx)
start_imedge imedge --rate-limit-exempt 10.0.0.1
if [ "$BATCH" -gt 1 ]; then
  # Tuned for the comparison: batched delivery; the classic key exchanges
  # nginx offers (Debian's nginx, on OpenSSL 3.0, has no ML-KEM); a garbage
  # collector that runs a quarter as often, bounded by a memory limit; one
  # processor for Go code, as the load generator keeps the other core busy.
  IMEDGE_ENV=("${TUNED_ENV[@]}")
  start_imedge "imedge-b$BATCH" --rate-limit-exempt 10.0.0.1 "${TUNED[@]}"
  IMEDGE_ENV=()
  SERVERS=(imedge "imedge-b$BATCH" nginx)
fi
start_nginx
log "imedge on ${ADDR[imedge]}, nginx on ${ADDR[nginx]} ($NGINX, $("$NGINX" -v 2>&1 | sed 's/.*: //'))"

# --- main scenarios, servers alternating -------------------------------------
for ((r = 1; r <= ROUNDS; r++)); do
  order=("${SERVERS[@]}")
  if ((r % 2 == 0)); then mapfile -t order < <(printf '%s\n' "${SERVERS[@]}" | tac); fi
  for scen in keepalive new-conn resume; do
    for s in "${order[@]}"; do
      case $scen in
        keepalive) run_case "$scen" "$s" "$r" --mode keepalive --concurrency 64 --duration "${DURATION}s" ;;
        *) run_case "$scen" "$s" "$r" --mode "$scen" --concurrency 32 --duration "${HS_DURATION}s" ;;
      esac
    done
  done
done

# Mixed: the 49 after-callbacks of the catalog in turn, each with its example
# body, through every server (one round): the whole stream, not one command.
AFTER=$("$IMEDGE" commands | awk '$2 == "after" { print $1 }' | paste -sd, -)
[ -n "$AFTER" ] || die "imedge commands listed no after-callback"
for s in "${SERVERS[@]}"; do
  run_case mixed "$s" 1 --mode keepalive --concurrency 64 --duration "${DURATION}s" --commands "$AFTER"
done

# --- imedge alone ---------------------------------------------------------------
run_case dedupe imedge 1 --mode keepalive --concurrency 64 --duration "${DURATION}s" --duplicates 0.5

# Sink down: answers while events pile up, then the drain once it is back.
sink_addr=$SINK
stop_pid "$SINK_PID"
out=$WORK/sinkdown.json
read -ra pids < <(server_pids imedge)
c0=$(cpu_ticks "${pids[@]}")
t0=$(now_ns)
sim load imedge --json --run-id "dn$RANDOM" --mode keepalive --concurrency 64 --duration "${DURATION}s" >"$out" ||
  die "load with the sink down failed: $(cat "$out")"
start_sink "$sink_addr"
want=$(jnum fresh "$out")
tu=$(now_ns)
wait_for 300 sink_reached 0 "$want" || log "sinkdown: sink got $(sink_events) of $want events"
t1=$(now_ns)
record sinkdown imedge 1 "$out" "$(sink_events)" "$((t1 - t0))" "$(($(cpu_ticks "${pids[@]}") - c0))" "$(hwm_kib "${pids[@]}")"
DRAIN_S=$(awk -v a="$tu" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
DRAIN_N=$want

# 1 M distinct ClientIPs and 1 M new bodies on a fresh imedge.
stop_pid "${PIDOF[imedge]}"
ONE_M=(--rate 20 --burst 40 --rate-max-keys "$MILLION" --dedupe-size "$MILLION")
IMEDGE_ENV=(GOMEMLIMIT=160MiB)
if [ "$BATCH" -gt 1 ]; then
  ONE_M+=("${TUNED[@]}")
  IMEDGE_ENV=("${TUNED_ENV[@]}" GOMEMLIMIT=160MiB) # the last GOMEMLIMIT wins
fi
start_imedge imedge-1m "${ONE_M[@]}"
IMEDGE_ENV=()
run_case 1m-ips imedge-1m 1 --mode keepalive --concurrency 64 --duration 0 --requests "$MILLION" --distinct-client-ips "$MILLION"
RSS_1M=$(($(rss_kib "${PIDOF[imedge-1m]}") / 1024))

# --- the table ------------------------------------------------------------------
echo
echo "imedge vs nginx on $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(date -u +%Y-%m-%d)"
echo "rounds: $ROUNDS x ${DURATION}s; medians; ok/s = answered per second (new-conn/resume: connections per second)"
awk -F'\t' -v last=10 "$MEDIANS_AWK"'
  END {
    printf "%-9s %-12s %9s %9s %10s %8s %8s %8s %7s\n", "scenario", "server", "ok/s", "deliv/s", "cpu_us/ev", "p50_ms", "p99_ms", "rss_MiB", "failed"
    for (i = 1; i <= n; i++) {
      split(order[i], kk, SUBSEP)
      for (c = 4; c <= 10; c++) m[order[i] SUBSEP c] = median(order[i] SUBSEP c)
      printf "%-9s %-12s %9.0f %9.0f %10.1f %8.2f %8.2f %8.1f %7d\n", kk[1], kk[2], m[order[i] SUBSEP 4], m[order[i] SUBSEP 5],
        m[order[i] SUBSEP 6], m[order[i] SUBSEP 7], m[order[i] SUBSEP 8], m[order[i] SUBSEP 9], m[order[i] SUBSEP 10]
    }
    print ""
    printf "%-9s %-12s %9s %9s %10s\n", "ratios", "vs nginx", "ok/s", "deliv/s", "cpu/ev"
    for (i = 1; i <= n; i++) {
      split(order[i], kk, SUBSEP)
      ng = kk[1] SUBSEP "nginx"
      if (kk[2] == "nginx" || !(ng in seen)) continue
      printf "%-9s %-12s %8.2fx %8.2fx %9.2fx\n", kk[1], kk[2], m[order[i] SUBSEP 4] / m[ng SUBSEP 4],
        m[order[i] SUBSEP 5] / m[ng SUBSEP 5], m[order[i] SUBSEP 6] / m[ng SUBSEP 6]
    }
  }' "$RESULTS"
echo
awk -F'\t' '$1 == "resume" { h[$2] += $11; r[$2] += $12 }
  END { printf "resumption:"; for (s in h) printf " %s %d of %d connections resumed;", s, r[s], r[s] + h[s]; print "" }' "$RESULTS"
echo "sinkdown: $DRAIN_N events drained in ${DRAIN_S}s once the sink was back"
echo "1m-ips: imedge RSS after $MILLION distinct ClientIPs and $MILLION dedupe keys: ${RSS_1M} MiB"
[ -n "$OUT" ] && cp "$RESULTS" "$OUT"
run_decide
exit 0
