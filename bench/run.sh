#!/usr/bin/env bash
# Kite (on the sockets and on the mio transport) against hyper 1.x +
# hyper-util (with tokio-rustls for HTTPS), actix-web 4 (rustls 0.23) and
# nginx (Debian's, one worker, OpenSSL), side by side in one run, with the
# machine's floor beside them: `canned`, a server that parses nothing and
# answers each request head with the same canned bytes (HTTP/1.1
# keep-alive and pipelining only). nginx answers GET /plaintext from its
# configuration (`return 200`); it has no echo, so it sits out the POST
# rows.
#
# Workloads: keepalive (HTTP/1.1, 50 connections), keepalive256 (the same
# with 256 connections), pipelined (x16; pipelined256 with 256
# connections), h2c
# (h2load: 16 connections x 32 streams, prior knowledge),
# https (HTTP/1.1 over TLS 1.3, 50 kept-alive connections), handshake (a
# new connection and a full TLS handshake per request, from the bench's own
# tls-handshakes client, since wrk resumes sessions), and post and post-h2c
# (a POST of BODY_BYTES, 4 KB by default, to /echo, which streams the body
# back: wrk on HTTP/1.1 with 50 connections, h2load -d on h2c with 16
# connections x 32 streams). HTTP/3, Kite only (hyper has none): h3
# (GET /plaintext, 16 QUIC connections x 32 streams, from the bench's own
# h3-load client, as h2load here has no HTTP/3) beside h2tls (the same
# over TLS with h2load), h3-handshake (a new QUIC connection with a
# full TLS 1.3 handshake per request) beside handshake, and h3-post (a
# POST of LARGE_BODY_BYTES, 2 MB by default, to /echo, 4 connections x 4
# streams) beside h2tls-post (the same with h2load over TLS). For these
# the run also prints each server's HTTP/3 figure over its TCP one. The
# HTTP/3 peer is Caddy (Debian's 2.6, on quic-go), answering /plaintext
# from its configuration (`respond`) with the same certificate, on the
# h2tls, handshake, h3 and h3-handshake rows (it has no echo).
#
# Each server runs pinned to CPU 0 and wrk to CPU 1; the servers take turns,
# ROUNDS times per workload. For each run it reads the server's user+sys CPU
# time from /proc/PID/stat and divides by the requests wrk completed: server
# CPU microseconds per request. It prints medians and ratios: each Kite
# transport against hyper, actix and the canned floor, and mio against
# sockets. actix has no h2c (HTTP/2 only over TLS), and no HTTP/3.
# Caddy, when SERVERS names it, runs with GOMAXPROCS=1 (pinned to one CPU
# as the others are) and its admin endpoint and automatic HTTPS off.
#
#   bench/run.sh                 # 3 rounds of 10 s per server and workload
#   ROUNDS=5 DURATION=15 bench/run.sh
#   SERVERS="kite hyper" WORKLOADS="https handshake" bench/run.sh   # a subset
#   KITE_B=path/to/kite SERVERS="kite kite-b" ...   # a second Kite binary (an older build, ring, glibc malloc), e.g.
#     cargo build --release -p kite-cli --no-default-features --features ring,mio --target-dir target/ring
#
# In the first round it also counts each server's system calls per request
# on SYSCALL_WORKLOADS (keepalive, keepalive256, pipelined, https, post by
# default): a separate 2-second load under `perf stat -e
# raw_syscalls:sys_enter`, so the counting does not touch the CPU figures.
#
# Needs wrk, h2load, nginx and taskset (Debian: apt-get install wrk
# nghttp2-client nginx util-linux), and perf for the system calls
# (linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-50}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
OUT=${OUT:-bench/results}
SERVERS=${SERVERS:-kite kite-mio kite-uring hyper actix nginx caddy canned}
WORKLOADS=${WORKLOADS:-keepalive keepalive256 pipelined pipelined256 h2c https handshake post post-h2c h2tls h3 h3-handshake h2tls-post h3-post}
BODY_BYTES=${BODY_BYTES:-4096}
LARGE_BODY_BYTES=${LARGE_BODY_BYTES:-2097152}
# The workloads whose system calls per request are counted (in round 1,
# in a separate 2-second load under perf).
SYSCALL_WORKLOADS=${SYSCALL_WORKLOADS:-keepalive keepalive256 pipelined pipelined256 https post}
PERF=
if perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then PERF=perf; else
  echo "bench: perf cannot count raw_syscalls:sys_enter here; the syscalls column stays empty (apt-get install linux-perf)" >&2
fi

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for tool in wrk h2load taskset; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (apt-get install wrk nghttp2-client util-linux)" >&2; exit 1; }
done
if [[ " $SERVERS " == *" nginx "* ]] && [ ! -x "$NGINX" ]; then
  echo "bench: nginx is required for SERVERS=nginx (apt-get install nginx)" >&2; exit 1
fi
if [[ " $SERVERS " == *" caddy "* ]] && ! command -v caddy >/dev/null; then
  echo "bench: caddy is required for SERVERS=caddy (apt-get install caddy)" >&2; exit 1
fi

cargo build --release -q -p kite-cli
cargo build --release -q -p kite-bench
KITE=target/release/kite
HYPER=target/release/hyper-peer
ACTIX=target/release/actix-peer
CANNED=target/release/canned
HANDSHAKES=target/release/tls-handshakes
H3LOAD=target/release/h3-load
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd) # absolute: nginx and the TLS servers read files in it
TICKS=$(getconf CLK_TCK)
# One certificate (ECDSA P-256) for every TLS server.
KITE_DEV_CERTS_DIR="$OUT/certs" "$KITE" dev-certs >/dev/null
CERT="$OUT/certs/localhost.pem"
KEY="$OUT/certs/localhost.key.pem"
# The POST body, for h2load -d (wrk's comes from bench/post.lua).
BODY="$OUT/body.bin"
head -c "$BODY_BYTES" /dev/zero | tr '\0' 'k' >"$BODY"
LARGE_BODY="$OUT/large-body.bin"
head -c "$LARGE_BODY_BYTES" /dev/zero | tr '\0' 'k' >"$LARGE_BODY"
export BODY_BYTES

server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

# start NAME SCHEME: starts a server on a free port, sets server_pid and port.
start() {
  local log="$OUT/$1.log" scheme=$2 kite_tls=() hyper_tls=()
  if [ "$scheme" = https ]; then
    kite_tls=(--certificate "$CERT" --certificate-key "$KEY" --protocols Http1AndHttp2AndHttp3)
    hyper_tls=("$CERT" "$KEY")
  fi
  case $1 in
    kite) taskset -c "$SERVER_CPU" "$KITE" --urls "$scheme://127.0.0.1:0" --log warn "${kite_tls[@]}" >"$log" 2>&1 & ;;
    kite-mio) taskset -c "$SERVER_CPU" "$KITE" --transport mio --urls "$scheme://127.0.0.1:0" --log warn "${kite_tls[@]}" >"$log" 2>&1 & ;;
    kite-uring) taskset -c "$SERVER_CPU" "$KITE" --transport uring --urls "$scheme://127.0.0.1:0" --log warn "${kite_tls[@]}" >"$log" 2>&1 & ;;
    hyper) taskset -c "$SERVER_CPU" "$HYPER" 127.0.0.1:0 "${hyper_tls[@]}" >"$log" 2>&1 & ;;
    actix) taskset -c "$SERVER_CPU" "$ACTIX" 127.0.0.1:0 "${hyper_tls[@]}" >"$log" 2>&1 & ;;
    canned) taskset -c "$SERVER_CPU" "$CANNED" 127.0.0.1:0 >"$log" 2>&1 & ;;
    nginx) start_nginx "$scheme" "$log"; return 0 ;;
    caddy) start_caddy "$log"; return 0 ;;
    # A second Kite build, when KITE_B names its binary.
    kite-b) taskset -c "$SERVER_CPU" "$KITE_B" --urls "$scheme://127.0.0.1:0" --log warn "${kite_tls[@]}" >"$log" 2>&1 & ;;
    *) echo "bench: unknown server $1" >&2; exit 1 ;;
  esac
  server_pid=$!
  for _ in $(seq 1 200); do
    port=$(sed -n "s#^Now listening on: $scheme://127\.0\.0\.1:\([0-9]*\)\$#\1#p" "$log" | head -n1)
    [ -n "$port" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.05
  done
  echo "bench: $1 did not report its address" >&2; exit 1
}

# start_nginx SCHEME LOG: nginx with one worker on a free port: over TLS
# HTTP/1.1 and HTTP/2 by ALPN; in cleartext HTTP/1.1, or h2c by prior
# knowledge alone for the h2c workloads (nginx's cleartext `http2` listener
# speaks nothing else).
start_nginx() {
  local scheme=$1 log=$2 conf="$OUT/nginx.conf" listen
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  listen="127.0.0.1:$port"
  case $WORKLOAD in h2c | post-h2c) listen="127.0.0.1:$port http2" ;; esac
  [ "$scheme" = https ] && listen="127.0.0.1:$port ssl http2; ssl_certificate $CERT; ssl_certificate_key $KEY; ssl_protocols TLSv1.2 TLSv1.3"
  cat >"$conf" <<NGINX
worker_processes 1;
daemon off;
pid $OUT/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 600s;
  keepalive_requests 100000000;
  http2_max_concurrent_streams 128;
  server {
    listen $listen;
    location /plaintext { default_type text/plain; return 200 "Hello, World!"; }
  }
}
NGINX
  taskset -c "$SERVER_CPU" "$NGINX" -c "$conf" -e stderr >"$log" 2>&1 &
  server_pid=$!
  wait_for_port nginx "$log"
}

# wait_for_port NAME LOG: wait until the server started as $server_pid
# accepts on $port; exit with its log if it dies or never listens.
wait_for_port() {
  for _ in $(seq 1 200); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$2" >&2; exit 1; }
    sleep 0.05
  done
  echo "bench: $1 did not start" >&2; cat "$2" >&2; exit 1
}

# start_caddy LOG: Caddy on a free port, HTTPS only (HTTP/1.1, HTTP/2 and
# HTTP/3 on the same port), answering /plaintext from its configuration.
start_caddy() {
  local log=$1 conf="$OUT/Caddyfile"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$conf" <<CADDY
{
	admin off
	auto_https off
	servers {
		protocols h1 h2 h3
	}
}
https://:$port {
	bind 127.0.0.1
	tls $CERT $KEY
	respond /plaintext "Hello, World!" 200
}
CADDY
  GOMAXPROCS=1 XDG_DATA_HOME="$OUT/caddy" XDG_CONFIG_HOME="$OUT/caddy" \
    taskset -c "$SERVER_CPU" caddy run --config "$conf" --adapter caddyfile >"$log" 2>&1 &
  server_pid=$!
  wait_for_port caddy "$log"
}

# The CPU time of a server and its children (nginx's worker), in ticks.
cpu_ticks() {
  local pid total=0
  for pid in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

# load WORKLOAD SECONDS: runs the workload's load generator against the
# server on $port for SECONDS; prints its output, then a last line with
# the requests it completed and whether it saw errors.
load() {
  local workload=$1 seconds=$2 scheme=http out requests errors=0
  case $workload in https | handshake | h2tls | h3 | h3-handshake | h2tls-post | h3-post) scheme=https ;; esac
  local url="$scheme://127.0.0.1:$port/plaintext" h2data=()
  case $workload in post | post-h2c | h2tls-post) url="$scheme://127.0.0.1:$port/echo" ;; esac
  [ "$workload" = post-h2c ] && h2data=(-d "$BODY" -H "content-type: application/octet-stream")
  [ "$workload" = h2tls-post ] && h2data=(-d "$LARGE_BODY" -H "content-type: application/octet-stream")
  if [ "$workload" = h3 ] || [ "$workload" = h3-handshake ] || [ "$workload" = h3-post ]; then
    local shape=(16 32)
    [ "$workload" = h3-handshake ] && shape=(16 handshake)
    [ "$workload" = h3-post ] && shape=(4 4 "$LARGE_BODY_BYTES")
    out=$(taskset -c "$CLIENT_CPU" "$H3LOAD" "127.0.0.1:$port" "$seconds" "${shape[@]}")
    requests=$(echo "$out" | awk '/^requests:/ {print $2}')
    echo "$out" | grep -q '^errors: 0$' || errors=1
  elif [ "$workload" = h2c ] || [ "$workload" = post-h2c ] || [ "$workload" = h2tls ] || [ "$workload" = h2tls-post ]; then
    # 16 connections x 32 concurrent streams, prior knowledge; 4 x 4 for
    # the large bodies.
    local shape=(-c16 -m32)
    [ "$workload" = h2tls-post ] && shape=(-c4 -m4)
    out=$(taskset -c "$CLIENT_CPU" h2load "${shape[@]}" -D"$seconds" "${h2data[@]}" "$url")
    requests=$(echo "$out" | awk '/^requests:/ {print $8}')
    echo "$out" | grep -q " 0 failed, 0 errored" || errors=1
  elif [ "$workload" = handshake ]; then
    out=$(taskset -c "$CLIENT_CPU" "$HANDSHAKES" "127.0.0.1:$port" "$seconds" 16)
    requests=$(echo "$out" | awk '/^handshakes:/ {print $2}')
    echo "$out" | grep -q '^errors: 0$' || errors=1
  else
    local connections=$CONNECTIONS script=()
    case $workload in keepalive256 | pipelined256) connections=256 ;; esac
    case $workload in pipelined | pipelined256) script=(-s bench/pipeline.lua) ;; esac
    [ "$workload" = post ] && script=(-s bench/post.lua)
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$connections" -d"${seconds}s" "${script[@]}" "$url" -- 16)
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    if echo "$out" | grep -q "Non-2xx\|Socket errors"; then errors=1; fi
  fi
  echo "$out"
  echo "requests $requests $errors"
}

# The processes of a server (nginx's worker is a child), comma-separated.
server_pids() { echo "$1" $(pgrep -P "$1" || true) | tr ' ' ','; }

# syscalls_per_request WORKLOAD: a separate short load with perf counting
# the server's system calls (the raw_syscalls:sys_enter tracepoint); not
# during the timed load, whose CPU figure the counting would inflate.
syscalls_per_request() {
  local perf_out="$OUT/syscalls.perf" perf_pid result requests
  perf stat -x, -e raw_syscalls:sys_enter -p "$(server_pids "$server_pid")" -o "$perf_out" 2>/dev/null &
  perf_pid=$!
  sleep 0.2
  result=$(load "$1" 2 | tail -n1)
  kill -INT "$perf_pid" 2>/dev/null; wait "$perf_pid" 2>/dev/null || true
  requests=$(echo "$result" | awk '{print $2}')
  awk -F, -v r="$requests" '/raw_syscalls/ { if (r > 0) printf "%.3f", $1 / r; found = 1 } END { if (!found) printf "-" }' "$perf_out"
}

# measure NAME WORKLOAD: prints "requests_per_second cpu_us_per_request
# syscalls_per_request" (the last "-" where not counted).
measure() {
  local name=$1 workload=$2 scheme=http
  WORKLOAD=$workload
  case $workload in https | handshake | h2tls | h3 | h3-handshake | h2tls-post | h3-post) scheme=https ;; esac
  start "$name" "$scheme"
  load "$workload" 2 >/dev/null   # warm-up
  local before after out summary requests syscalls=-
  before=$(cpu_ticks "$server_pid")
  out=$(load "$workload" "$DURATION")
  after=$(cpu_ticks "$server_pid")
  summary=$(echo "$out" | tail -n1)
  requests=$(echo "$summary" | awk '{print $2}')
  if [ "$(echo "$summary" | awk '{print $3}')" != 0 ]; then
    echo "bench: $name/$workload reported errors:" >&2; echo "$out" | tail -n 20 >&2
  fi
  if [ "$round" = 1 ] && [[ " $SYSCALL_WORKLOADS " == *" $workload "* ]] && [ -n "$PERF" ]; then
    syscalls=$(syscalls_per_request "$workload")
  fi
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
  echo "$out" >"$OUT/$name-$workload-$round.out"
  awk -v r="$requests" -v d="$DURATION" -v t=$((after - before)) -v hz="$TICKS" -v s="$syscalls" \
    'BEGIN { printf "%.0f %.3f %s\n", r / d, (t / hz) * 1e6 / r, s }'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# ratio A B WORKLOAD: the median of the per-round ratios of A's CPU per
# request to B's, so drift between rounds cancels.
ratio() {
  paste -d' ' "$OUT/$3.$1" "$OUT/$3.$2" | awk '{print $2 / $5}' | median
}

# The servers a workload runs on: HTTP/3 is Kite's and Caddy's, and QUIC
# runs on its own UDP socket whatever Kite's TCP transport; actix speaks
# no h2c; nginx and Caddy have no echo; Caddy here serves only HTTPS; the
# canned floor answers only HTTP/1.1 GETs.
servers_for() {
  local s
  for s in $SERVERS; do
    case "$1:$s" in
      h3:kite | h3-handshake:kite | h3-post:kite | h3:caddy | h3-handshake:caddy) echo "$s" ;;
      h3:* | h3-handshake:* | h3-post:*) ;;
      h2tls:caddy | handshake:caddy) echo "$s" ;;
      *:caddy) ;;
      h2tls-post:nginx) ;;
      h2c:actix | post-h2c:actix) ;;
      post:nginx | post-h2c:nginx) ;;
      keepalive:canned | keepalive256:canned | pipelined:canned | pipelined256:canned) echo "$s" ;;
      *:canned) ;;
      *) echo "$s" ;;
    esac
  done
}

for workload in $WORKLOADS; do
  for server in $(servers_for "$workload"); do : >"$OUT/$workload.$server"; done
  for round in $(seq 1 "$ROUNDS"); do
    for server in $(servers_for "$workload"); do
      measure "$server" "$workload" >>"$OUT/$workload.$server"
    done
  done
done

printf '%-12s %-10s %12s %12s %14s\n' workload server req/s cpu_us/req syscalls/req
for workload in $WORKLOADS; do
  for server in $(servers_for "$workload"); do
    printf '%-12s %-10s %12s %12s %14s\n' "$workload" "$server" \
      "$(cut -d' ' -f1 "$OUT/$workload.$server" | median)" "$(cut -d' ' -f2 "$OUT/$workload.$server" | median)" \
      "$(head -n1 "$OUT/$workload.$server" | cut -d' ' -f3)"
  done
done
echo
printf '%-12s %-22s %8s\n' workload ratio value
for workload in $WORKLOADS; do
  for pair in "kite hyper" "kite actix" "kite nginx" "kite canned" "hyper canned" "actix canned" "nginx canned" \
    "kite-mio hyper" "kite-mio kite" "kite-uring hyper" "kite-uring actix" "kite-uring nginx" "kite-uring canned" \
    "kite-uring kite" "kite-b kite" "kite-b hyper" "kite caddy"; do
    set -- $pair
    # Only servers measured in this workload; result files of earlier runs stay.
    ran=" $(servers_for "$workload" | tr '\n' ' ') "
    if [[ "$ran" == *" $1 "* && "$ran" == *" $2 "* ]]; then
      printf '%-12s %-22s %8.3f\n' "$workload" "$1/$2" "$(ratio "$1" "$2" "$workload")"
    fi
  done
done
# Each HTTP/3 server's HTTP/3 against its own TCP figure on the same route.
for pair in "h3 h2tls" "h3-handshake handshake" "h3-post h2tls-post"; do
  set -- $pair
  for server in kite caddy; do
    if [[ " $WORKLOADS " == *" $1 "* && " $WORKLOADS " == *" $2 "* && -s "$OUT/$1.$server" && -s "$OUT/$2.$server" ]] \
      && [[ " $(servers_for "$1" | tr '\n' ' ') " == *" $server "* ]]; then
      printf '%-12s %-22s %8.3f\n' "$1" "$server $1/$2" \
        "$(paste -d' ' "$OUT/$1.$server" "$OUT/$2.$server" | awk '{print $2 / $5}' | median)"
    fi
  done
done
echo "(server CPU per request; medians of $ROUNDS alternating rounds of ${DURATION}s; lower is better)"
