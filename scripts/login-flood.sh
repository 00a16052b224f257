#!/usr/bin/env bash
# Failed-login flood against a server with the default configuration (the
# default argon2id cost; the bench configuration lowers it), printing the
# server's memory before, at peak and after. Usage:
#   scripts/login-flood.sh [--attempts 1200 --addresses 40 --concurrency 64]
# IYAGI_BIN picks another server binary (to compare two builds in one sitting).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/iyagi-target}"
cargo build --release -q -p iyagi -p iyagi-bench
bin="$CARGO_TARGET_DIR/release"
server_bin="${IYAGI_BIN:-$bin/iyagi}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
IYAGI_DATABASE__URL="sqlite://$dir/iyagi.db" IYAGI_SERVER__LISTEN=127.0.0.1:8081 IYAGI_LOG__LEVEL=warn \
  "$server_bin" serve & server=$!
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/8081) 2>/dev/null && break; sleep 0.1; done
"$bin/iyagi-bench" --quiet --target 127.0.0.1:8081 --server-pid "$server" login-flood "$@"
kill "$server"; wait "$server" 2>/dev/null || true
