#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind:
# unlike CPU time on a shared machine, the count barely moves between runs,
# so it shows a change of a few percent that run.sh's rounds cannot. The
# kernel's work (most of a keep-alive request) is not counted.
#
# Each server runs under callgrind; h2load sends WARMUP requests, the
# counters are zeroed, then it sends REQUESTS more (HTTP/1.1 keep-alive,
# 10 connections) and the counters are dumped.
#
#   bench/instructions.sh                          # kite and hyper, GET and POST
#   SERVERS="kite kite-mio hyper" MODES="get pipelined" bench/instructions.sh   # pipelined: 16 deep
# (not the io_uring transport: valgrind 3.19 cannot run a thread that
# blocks in io_uring_enter beside others)
#   SERVERS="kite old" OLD=path/to/kite bench/instructions.sh   # two Kite builds
#   SCHEME=https bench/instructions.sh             # over TLS 1.3 (the development certificate)
#
# Needs valgrind and h2load (Debian: apt-get install valgrind nghttp2-client).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-20000}
WARMUP=${WARMUP:-2000}
SERVERS=${SERVERS:-kite hyper}
MODES=${MODES:-get post}
OUT=${OUT:-bench/results/instructions}
BODY_BYTES=${BODY_BYTES:-4096}
SCHEME=${SCHEME:-http}

for tool in valgrind callgrind_control h2load; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (apt-get install valgrind nghttp2-client)" >&2; exit 1; }
done
cargo build --release -q -p kite-cli
cargo build --release -q -p kite-bench
mkdir -p "$OUT"
BODY="$OUT/body.bin"
head -c "$BODY_BYTES" /dev/zero | tr '\0' 'k' >"$BODY"
OUT=$(cd "$OUT" && pwd)
KITE_DEV_CERTS_DIR="$OUT/certs" target/release/kite dev-certs >/dev/null
CERT="$OUT/certs/localhost.pem"
KEY="$OUT/certs/localhost.key.pem"

# count NAME MODE: prints the instructions per request.
count() {
  local name=$1 mode=$2 log="$OUT/$1-$2.log" command port tls=() peer_tls=()
  if [ "$SCHEME" = https ]; then
    tls=(--certificate "$CERT" --certificate-key "$KEY")
    peer_tls=("$CERT" "$KEY")
  fi
  case $name in
    kite) command=(target/release/kite --urls "$SCHEME://127.0.0.1:0" --log warn "${tls[@]}") ;;
    kite-mio) command=(target/release/kite --transport mio --urls "$SCHEME://127.0.0.1:0" --log warn "${tls[@]}") ;;
    hyper) command=(target/release/hyper-peer 127.0.0.1:0 "${peer_tls[@]}") ;;
    old) command=("$OLD" --urls "$SCHEME://127.0.0.1:0" --log warn "${tls[@]}") ;;
    *) echo "bench: unknown server $name" >&2; exit 1 ;;
  esac
  rm -f "$OUT/$name-$mode.out"*
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$name-$mode.out" "${command[@]}" >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 600); do
    port=$(sed -n "s#^Now listening on: $SCHEME://127\.0\.0\.1:\([0-9]*\)\$#\1#p" "$log" | head -n1)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "bench: $name did not start" >&2; cat "$log" >&2; exit 1; }
  local args=(--h1 -c 10 -m 1) url="$SCHEME://127.0.0.1:$port/plaintext"
  # h2load pipelines HTTP/1.1 requests up to -m.
  [ "$mode" = pipelined ] && args=(--h1 -c 10 -m 16)
  if [ "$mode" = post ]; then
    args+=(-d "$BODY")
    url="$SCHEME://127.0.0.1:$port/echo"
  fi
  h2load "${args[@]}" -n "$WARMUP" "$url" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  h2load "${args[@]}" -n "$REQUESTS" "$url" | grep -q " 0 failed, 0 errored" || echo "bench: $name/$mode had failed requests" >&2
  callgrind_control -d "$pid" >/dev/null 2>&1
  # The dump is written asynchronously, by the next event in the process.
  for _ in $(seq 1 100); do
    ls "$OUT/$name-$mode.out".*1 >/dev/null 2>&1 && break
    sleep 0.1
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  grep -h '^summary:' "$OUT/$name-$mode.out".*1 | awk -v n="$REQUESTS" '{s += $2} END {printf "%.0f\n", s / n}'
}

printf '%-10s %-9s %14s\n' server mode instr/req
for mode in $MODES; do
  for name in $SERVERS; do
    printf '%-10s %-9s %14s\n' "$name" "$mode" "$(count "$name" "$mode")"
  done
done
echo "(user-space instructions per request under callgrind, HTTP/1.1 keep-alive over $SCHEME, $REQUESTS requests; lower is better)"
