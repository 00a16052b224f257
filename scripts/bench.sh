#!/usr/bin/env bash
# Runs one benchmark scenario against a fresh iyagi server and against the
# bare relay, with the same generator and arguments, and prints both JSON
# result lines. Usage:
#   scripts/bench.sh pairs --pairs 50 --window 16 --messages 2000
#   BACKEND=postgres scripts/bench.sh fanout --members 1000 --rate 50
# BACKEND=postgres uses PostgreSQL + Redis (IYAGI_BENCH_POSTGRES_URL,
# IYAGI_BENCH_REDIS_URL) instead of the embedded defaults. To compare two
# builds in one sitting: IYAGI_BIN=path/to/iyagi (with IYAGI_BENCH_CONFIG
# for its configuration file), SKIP_RELAY=1 to leave the relay out.
# PUSH=1 (and the push scenario) also starts a fake FCM on :9300 and
# configures the server to push to it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/iyagi-target}"
cargo build --release -q -p iyagi -p iyagi-bench
bin="$CARGO_TARGET_DIR/release"
scenario="$1"; shift
out="${BENCH_OUT:-/tmp/iyagi-bench-results.jsonl}"

wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

rm -rf /tmp/iyagi-bench && mkdir -p /tmp/iyagi-bench
extra=()
if [ "${BACKEND:-embedded}" = postgres ]; then
  db="iyagi_bench_$$"
  psql "${IYAGI_BENCH_POSTGRES_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -qc "CREATE DATABASE $db" >/dev/null
  export IYAGI_DATABASE__URL="postgres://postgres@127.0.0.1:5432/$db"
  export IYAGI_DATABASE__MAX_CONNECTIONS=20
  export IYAGI_SESSION__STORE=redis IYAGI_SESSION__REDIS_PREFIX="iyagi_bench_$$"
fi
fake=""
if [ -n "${PUSH:-}" ] || [ "$scenario" = push ]; then
  # A fake FCM (answers at once) for the server to push to. It stands for
  # Google's servers, which are not on the server's machine: at nice 19 it
  # takes only CPU the server leaves.
  nice -n 19 "$bin/iyagi-bench" fake-fcm --listen 127.0.0.1:9300 --key-file /tmp/iyagi-bench/fcm.json & fake=$!
  wait_port 9300
  for _ in $(seq 1 100); do [ -f /tmp/iyagi-bench/fcm.json ] && break; sleep 0.1; done
  export IYAGI_PUSH__FCM__SERVICE_ACCOUNT_FILE=/tmp/iyagi-bench/fcm.json IYAGI_PUSH__FCM__BASE_URL=http://127.0.0.1:9300
fi
"${IYAGI_BIN:-$bin/iyagi}" serve --config "${IYAGI_BENCH_CONFIG:-crates/bench/iyagi-bench.toml}" "${extra[@]}" & server=$!
wait_port 8080
"$bin/iyagi-bench" --target 127.0.0.1:8080 --server-pid "$server" "$scenario" "$@" | tee /tmp/iyagi-bench/iyagi.out
kill "$server"; wait "$server" 2>/dev/null || true
[ -n "$fake" ] && { kill "$fake"; wait "$fake" 2>/dev/null || true; }
if [ "${BACKEND:-embedded}" = postgres ]; then
  psql "${IYAGI_BENCH_POSTGRES_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -qc "DROP DATABASE $db" >/dev/null
  redis-cli --scan --pattern "iyagi_bench_$$:*" | xargs -r redis-cli del >/dev/null
fi

tail -n1 /tmp/iyagi-bench/iyagi.out >> "$out"
[ -n "${SKIP_RELAY:-}" ] || [ "$scenario" = push ] || [ "$scenario" = media ] && exit 0

"$bin/iyagi-bench" relay --listen 127.0.0.1:9090 & relay=$!
wait_port 9090
"$bin/iyagi-bench" --relay --target 127.0.0.1:9090 --server-pid "$relay" "$scenario" "$@" | tee /tmp/iyagi-bench/relay.out
kill "$relay"; wait "$relay" 2>/dev/null || true
tail -n1 /tmp/iyagi-bench/relay.out >> "$out"
