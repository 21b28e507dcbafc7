#!/usr/bin/env bash
# Scaling out on this 2-core machine: Kite as one process (a tokio runtime
# of 2 threads), Kite with --workers 1 and --workers 2 (SO_REUSEPORT
# sockets, a supervisor), and hyper (a runtime of 2 threads), side by side
# in alternating rounds. Nothing is pinned: the servers may use both cores,
# and wrk (1 thread, 50 connections, HTTP/1.1 keep-alive on /plaintext)
# shares them. For each run it reports requests/s and the server's CPU per
# request (user+sys of every process of the server, from /proc), with
# ratios against one Kite process and against hyper.
#
#   bench/workers.sh                  # 3 rounds of 8 s
#   ROUNDS=5 DURATION=10 bench/workers.sh
#
# Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-50}
OUT=${OUT:-bench/results}
SERVERS=${SERVERS:-kite kite-w1 kite-w2 hyper}
command -v wrk >/dev/null || { echo "bench: wrk is required (apt-get install wrk)" >&2; exit 1; }

cargo build --release -q -p kite-cli
cargo build --release -q -p kite-bench
KITE=target/release/kite
HYPER=target/release/hyper-peer
mkdir -p "$OUT"
TICKS=$(getconf CLK_TCK)

server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

start() {
  local log="$OUT/workers-$1.log"
  case $1 in
    kite) "$KITE" --urls http://127.0.0.1:0 --log warn >"$log" 2>&1 & ;;
    kite-w1) "$KITE" --urls http://127.0.0.1:0 --log warn --workers 1 >"$log" 2>&1 & ;;
    kite-w2) "$KITE" --urls http://127.0.0.1:0 --log warn --workers 2 >"$log" 2>&1 & ;;
    hyper) "$HYPER" 127.0.0.1:0 >"$log" 2>&1 & ;;
  esac
  server_pid=$!
  for _ in $(seq 1 200); do
    port=$(sed -n 's#^Now listening on: http://127\.0\.0\.1:\([0-9]*\)$#\1#p' "$log" | head -n1)
    [ -n "$port" ] && return 0
    sleep 0.05
  done
  echo "bench: $1 did not report its address" >&2; exit 1
}

# The CPU ticks of a process and its children (the workers).
cpu_ticks() {
  local total=0 pid
  for pid in $1 $(pgrep -P "$1" || true); do
    [ -r "/proc/$pid/stat" ] && total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

measure() {
  start "$1"
  local url="http://127.0.0.1:$port/plaintext" before after out requests
  # --workers 1 is a supervisor and a worker: wait for the worker.
  wrk -t1 -c"$CONNECTIONS" -d2s "$url" >/dev/null
  before=$(cpu_ticks "$server_pid")
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$url")
  after=$(cpu_ticks "$server_pid")
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
  awk -v r="$requests" -v d="$DURATION" -v t=$((after - before)) -v hz="$TICKS" \
    'BEGIN { printf "%.0f %.3f\n", r / d, (t / hz) * 1e6 / r }'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

for server in $SERVERS; do : >"$OUT/workers.$server"; done
for round in $(seq 1 "$ROUNDS"); do
  for server in $SERVERS; do
    measure "$server" >>"$OUT/workers.$server"
  done
done

printf '%-9s %10s %12s\n' server req/s cpu_us/req
for server in $SERVERS; do
  printf '%-9s %10s %12s\n' "$server" "$(cut -d' ' -f1 "$OUT/workers.$server" | median)" \
    "$(cut -d' ' -f2 "$OUT/workers.$server" | median)"
done
echo
printf '%-16s %10s %12s\n' ratio req/s cpu_us/req
for pair in "kite-w1 kite" "kite-w2 kite" "kite hyper" "kite-w2 hyper"; do
  set -- $pair
  if [[ " $SERVERS " == *" $1 "* && " $SERVERS " == *" $2 "* ]]; then
    printf '%-16s %10.3f %12.3f\n' "$1/$2" \
      "$(paste -d' ' "$OUT/workers.$1" "$OUT/workers.$2" | awk '{print $1 / $3}' | median)" \
      "$(paste -d' ' "$OUT/workers.$1" "$OUT/workers.$2" | awk '{print $2 / $4}' | median)"
  fi
done
echo "(medians of $ROUNDS alternating rounds of ${DURATION}s; unpinned, wrk on the same 2 cores)"
