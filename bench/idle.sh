#!/usr/bin/env bash
# What an idle keep-alive connection costs each server: Kite, hyper,
# actix-web and nginx (Debian's), plain and TLS. For each, COUNT
# connections each make one request and stay open; the script reports the
# server's RSS growth per connection, and its RSS after they all close
# against before.
#
#   bench/idle.sh                    # 10,000 connections
#   COUNT=2000 SERVERS="kite hyper" bench/idle.sh
#   KITE=path/to/kite SERVERS=kite bench/idle.sh   # another Kite build
#   SERVERS="kite kite-mio kite-uring" bench/idle.sh  # Kite's three transports
#
# Needs nginx (Debian: apt-get install nginx).
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-10000}
OUT=${OUT:-bench/results}
SERVERS=${SERVERS:-kite kite-mio kite-uring hyper actix nginx}
SCHEMES=${SCHEMES:-http https}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
ulimit -n "$(ulimit -Hn)"   # as many descriptors as allowed; COUNT + 1024 are needed

cargo build --release -q -p kite-cli
cargo build --release -q -p kite-bench
KITE=${KITE:-target/release/kite}
HYPER=target/release/hyper-peer
ACTIX=target/release/actix-peer
IDLE=target/release/idle
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd) # absolute: nginx and the TLS servers read files in it
KITE_DEV_CERTS_DIR="$OUT/certs" "$KITE" dev-certs >/dev/null
CERT="$OUT/certs/localhost.pem"
KEY="$OUT/certs/localhost.key.pem"

server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

# The RSS in KB of a process and its children (nginx's workers).
rss() {
  local total=0 pid
  for pid in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

start() {
  local name=$1 scheme=$2 log="$OUT/idle-$1-$2.log" tls=()
  case $name in
    kite | kite-mio | kite-uring)
      local transport=sockets
      [ "$name" != kite ] && transport=${name#kite-}
      [ "$scheme" = https ] && tls=(--certificate "$CERT" --certificate-key "$KEY")
      "$KITE" --transport "$transport" --urls "$scheme://127.0.0.1:0" --log warn "${tls[@]}" >"$log" 2>&1 &
      server_pid=$! ;;
    hyper)
      [ "$scheme" = https ] && tls=("$CERT" "$KEY")
      "$HYPER" 127.0.0.1:0 "${tls[@]}" >"$log" 2>&1 &
      server_pid=$! ;;
    actix)
      [ "$scheme" = https ] && tls=("$CERT" "$KEY")
      "$ACTIX" 127.0.0.1:0 "${tls[@]}" >"$log" 2>&1 &
      server_pid=$! ;;
    nginx)
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
      local conf="$OUT/idle-nginx.conf" ssl=""
      [ "$scheme" = https ] && ssl="ssl; ssl_certificate $CERT; ssl_certificate_key $KEY; ssl_protocols TLSv1.3"
      cat >"$conf" <<NGINX
worker_processes 1;
daemon off;
pid $OUT/idle-nginx.pid;
error_log stderr error;
events { worker_connections $((COUNT + 1024)); }
http {
  access_log off;
  keepalive_timeout 600s;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port $ssl;
    location /plaintext { return 200 "Hello, World!"; }
  }
}
NGINX
      "$NGINX" -c "$conf" -e stderr >"$log" 2>&1 &
      server_pid=$!
      for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0; sleep 0.05; done
      echo "bench: nginx did not start" >&2; cat "$log" >&2; exit 1 ;;
  esac
  for _ in $(seq 1 200); do
    port=$(sed -n "s#^Now listening on: $scheme://127\.0\.0\.1:\([0-9]*\)\$#\1#p" "$log" | head -n1)
    [ -n "$port" ] && return 0
    sleep 0.05
  done
  echo "bench: $name did not report its address" >&2; exit 1
}

printf '%-10s %-6s %10s %12s %14s %12s\n' server scheme idle KB/conn after-close before
for scheme in $SCHEMES; do
  for name in $SERVERS; do
    start "$name" "$scheme"
    mode=""; [ "$scheme" = https ] && mode=tls
    # Warm the server up (first-use allocations) before the baseline.
    coproc warm { "$IDLE" "127.0.0.1:$port" 20 $mode; }
    read -r _ <&"${warm[0]}"; echo >&"${warm[1]}"; wait "$warm_PID" 2>/dev/null || true
    sleep 1
    before=$(rss "$server_pid")
    coproc client { "$IDLE" "127.0.0.1:$port" "$COUNT" $mode; }
    read -r idle_line <&"${client[0]}"; read -r errors_line <&"${client[0]}"
    # A few quiet seconds for every server (the kite binary gives freed
    # memory back after its first quiet second).
    sleep 3
    during=$(rss "$server_pid")
    echo >&"${client[1]}"; read -r _ <&"${client[0]}"; wait "$client_PID" 2>/dev/null || true
    sleep 3
    after=$(rss "$server_pid")
    held=${idle_line#idle: }
    printf '%-10s %-6s %10s %12.2f %14s %12s\n' "$name" "$scheme" "$held" \
      "$(awk -v a="$during" -v b="$before" -v n="$held" 'BEGIN {print (a - b) / n}')" "${after} KB" "${before} KB"
    [ "$errors_line" = "errors: 0" ] || echo "bench: $name/$scheme: $errors_line" >&2
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
  done
done
echo "(RSS growth per idle keep-alive connection, after one request each; lower is better)"
