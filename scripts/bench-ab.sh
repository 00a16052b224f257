#!/usr/bin/env bash
# Two server builds in one sitting, alternating run by run (base, new, base,
# new...), on the message path's scenarios: the way to show a change did not
# slow it. Usage:
#   BASE_BIN=/tmp/iyagi-base BASE_CONFIG=/tmp/base-bench.toml NEW_BIN=target/release/iyagi scripts/bench-ab.sh
# (BASE_CONFIG: the base build's own crates/bench/iyagi-bench.toml, since a
# newer file may carry keys an older build refuses.) Build the base in a
# target directory of its own: two checkouts sharing one target directory
# overwrite each other's artifacts. Results: one JSON line per run in
# $BENCH_OUT (default /tmp/iyagi-bench-ab.jsonl), each tagged with its build.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASE_BIN:?}" "${NEW_BIN:?}"
out="${BENCH_OUT:-/tmp/iyagi-bench-ab.jsonl}"
: > "$out"
rounds="${ROUNDS:-2}"
one() { # build-name bin config scenario args...
  local name=$1 bin=$2 config=$3; shift 3
  BENCH_OUT=/tmp/iyagi-bench-ab-one.jsonl SKIP_RELAY=1 IYAGI_BIN="$bin" IYAGI_BENCH_CONFIG="$config" \
    scripts/bench.sh "$@" --quiet >/dev/null 2>&1
  tail -n1 /tmp/iyagi-bench-ab-one.jsonl | python3 -c "import json,sys; r=json.load(sys.stdin); r['build']='$name'; print(json.dumps(r))" >> "$out"
  tail -n1 "$out" | python3 -c "import json,sys; r=json.load(sys.stdin); print(r['build'], r['scenario'], {k: round(v, 2) if isinstance(v, float) else v for k, v in r['figures'].items() if any(w in k for w in ('per_second', 'p50', 'p99', 'cpu', 'kib', 'loss', 'dup', 'secs'))})"
}
both() {
  for _ in $(seq 1 "$rounds"); do
    one base "$BASE_BIN" "${BASE_CONFIG:-crates/bench/iyagi-bench.toml}" "$@"
    one new "$NEW_BIN" crates/bench/iyagi-bench.toml "$@"
  done
}
both pairs --pairs 100 --window 16 --messages 3000
both pairs --pairs 500 --window 1 --messages 200
both pairs --pairs 100 --messages 2000 --rate "${HALF_RATE:-30000}"
both catchup --messages 10000
ROUNDS=1 both fanout --members 1000 --senders 10 --rate 50 --secs 10
ROUNDS=1 both idle --connections "${IDLE_CONNECTIONS:-10000}" --users 500 --hold-secs 10
echo "results: $out"
