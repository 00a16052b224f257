#!/usr/bin/env bash
# The push benchmark sitting (issue 12), in one sitting:
# 1. the message path with push off and on, alternating run by run:
#    base = a build from before push (BASE_BIN, with BASE_CONFIG), then this
#    build with no registrations (notifications recorded, nothing to
#    deliver), then this build with every receiver registered for FCM and a
#    fake FCM that answers at once (each message is a push);
# 2. the push scenario: a group of 1,000 members, none connected, each with
#    an FCM registration, one sender at a fixed rate.
# Usage:
#   BASE_BIN=/tmp/iyagi-base BASE_CONFIG=/tmp/base-bench.toml scripts/bench-push.sh
# Results: one JSON line per run in $BENCH_OUT (default
# /tmp/iyagi-bench-push.jsonl), each tagged with its build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/iyagi-target}"
: "${BASE_BIN:?}"
new_bin="$CARGO_TARGET_DIR/release/iyagi"
out="${BENCH_OUT:-/tmp/iyagi-bench-push.jsonl}"
: > "$out"
rounds="${ROUNDS:-4}"
one() { # build-name bin config push(0/1) scenario args...
  local name=$1 bin=$2 config=$3 push=$4; shift 4
  local env=(BENCH_OUT=/tmp/iyagi-bench-push-one.jsonl SKIP_RELAY=1 IYAGI_BIN="$bin" IYAGI_BENCH_CONFIG="$config")
  [ "$push" = 1 ] && env+=(PUSH=1)
  env "${env[@]}" scripts/bench.sh "$@" --quiet >/dev/null 2>&1
  tail -n1 /tmp/iyagi-bench-push-one.jsonl | python3 -c "import json,sys; r=json.load(sys.stdin); r['build']='$name'; print(json.dumps(r))" >> "$out"
  tail -n1 "$out" | python3 -c "import json,sys; r=json.load(sys.stdin); print(r['build'], r['scenario'], {k: round(v, 2) if isinstance(v, float) else v for k, v in r['figures'].items() if any(w in k for w in ('per_second', 'p50', 'p99', 'cpu', 'loss', 'dup', 'delivered', 'expected'))})"
}
three() {
  for _ in $(seq 1 "$rounds"); do
    one base "$BASE_BIN" "${BASE_CONFIG:-crates/bench/iyagi-bench.toml}" 0 "$@"
    one push-off "$new_bin" crates/bench/iyagi-bench.toml 0 "$@"
    one push-on "$new_bin" crates/bench/iyagi-bench.toml 1 "$@" --push
  done
}
three pairs --pairs 100 --window 16 --messages 3000
three pairs --pairs 100 --messages 2000 --rate "${HALF_RATE:-20000}"
ROUNDS=1 one push "$new_bin" crates/bench/iyagi-bench.toml 1 push --members 1000 --rate "${PUSH_RATE:-5}" --secs 10
# Medians per build and scenario (the figures docs/benchmarks.md reports).
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
for rate in (False, True):
    for build in ("base", "push-off", "push-on"):
        runs = [r["figures"] for r in rows if r["build"] == build and r["scenario"] == "pairs"
                and ("offered_messages_per_second" in r["figures"]) == rate]
        if runs:
            med = lambda k: statistics.median(f[k] for f in runs)
            print("pairs", "at a fixed rate" if rate else "saturated", build,
                  f"msg/s {med('delivered_per_second'):.0f}", f"p50 {med('latency_p50_us') / 1000:.1f} ms",
                  f"p99 {med('latency_p99_us') / 1000:.1f} ms", f"cpu {med('server_cpu_us_per_delivered'):.1f} us/msg")
PY
echo "results: $out"
