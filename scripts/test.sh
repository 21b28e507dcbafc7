#!/usr/bin/env bash
# The README's test command: installs what the end-to-end tests drive, then
# runs the whole suite with --no-fail-fast, so one failing test binary does
# not hide the others.
#
# What it installs, and only where it is missing:
# - Debian packages: curl, nghttp2-client (nghttp), nginx, haproxy,
#   apache2 (the reverse proxies in front of Kite), iproute2 (`ip`, for the
#   fleet test's network namespaces), pebble (Let's Encrypt's test ACME
#   server and its DNS, for the ACME tests), and python3 and python3-venv if the
#   machine has no Python that makes venvs (as root it runs apt-get;
#   otherwise it names them and stops);
# - Python clients, in a virtual environment under target/test-venv:
#   h2 (hand-made HTTP/2 frames), aioquic (HTTP/3 frames) and kosoku
#   (the Autobahn WebSocket cases).
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p kite-http-core`).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have curl || packages+=(curl)
have nghttp || packages+=(nghttp2-client)
have nginx || packages+=(nginx)
have haproxy || packages+=(haproxy)
have apache2 || packages+=(apache2)
have ip || packages+=(iproute2)
have pebble || packages+=(pebble)
python=${PYTHON:-python3}
have "$python" || packages+=(python3)
# A virtual environment needs ensurepip, which Debian ships apart.
if [ ! -x target/test-venv/bin/python ] && ! "$python" -c 'import ensurepip' >/dev/null 2>&1; then
  packages+=(python3-venv)
fi
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test: the tests need these Debian packages: ${packages[*]}" >&2
    echo "test: install them (sudo apt-get install ${packages[*]}) or run this as root" >&2
    exit 1
  fi
  echo "test: installing Debian packages: ${packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

venv=target/test-venv
if [ ! -x "$venv/bin/python" ]; then
  echo "test: making a Python virtual environment in $venv"
  mkdir -p target
  "$python" -m venv "$venv"
fi
requirements=('h2>=4.1,<5' 'aioquic>=1.2,<2' 'kosoku>=0.1,<0.2')
if ! "$venv/bin/python" -c 'import h2, aioquic, kosoku' 2>/dev/null; then
  echo "test: installing Python packages in $venv: ${requirements[*]}"
  "$venv/bin/pip" install -q --disable-pip-version-check "${requirements[@]}"
fi
export KITE_PYTHON="$PWD/$venv/bin/python"

# No incremental build state: a one-off build of every test binary is
# faster without it, and it would take tens of gigabytes of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "test: cargo test --workspace --all-features --no-fail-fast $*"
exec cargo test --workspace --all-features --no-fail-fast "$@"
