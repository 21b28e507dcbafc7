#!/usr/bin/env bash
# The soak: good clients mixed with every bad client against one release
# `kite` for SECONDS (default 60). Passes when the good clients saw no
# error and the server's RSS ended within 10% of where it started.
#
#   bench/soak.sh          # 60 s
#   bench/soak.sh 20       # shorter
#   KITE_TRANSPORT=uring bench/soak.sh   # on another transport (sockets, mio, uring)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p kite-cli
cargo build --release -q -p kite-bench --bin soak
exec target/release/soak target/release/kite "${1:-60}"
