#!/usr/bin/env bash
# One benchmark sitting: every scenario of docs/benchmarks.md in order, each
# against iyagi and then the relay (scripts/bench.sh), so the figures of one
# table come from one machine state. The open-loop latency runs take their
# rates from the maximum measured at the start of the same sitting.
#   scripts/bench-sitting.sh            # all, embedded defaults then PostgreSQL + Redis
#   SKIP_IDLE=1 SKIP_POSTGRES=1 scripts/bench-sitting.sh
# Results: one JSON line per run in $BENCH_OUT (default
# /tmp/iyagi-bench-sitting.jsonl, emptied first); the log in $BENCH_OUT.log.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_OUT="${BENCH_OUT:-/tmp/iyagi-bench-sitting.jsonl}"
: > "$BENCH_OUT"
log="$BENCH_OUT.log"
: > "$log"
run() {
  echo "== $*" | tee -a "$log"
  "$@" --quiet 2>&1 | grep -v '^{' >> "$log"
}

if [ -z "${SKIP_IDLE:-}" ]; then
  run scripts/bench.sh idle --connections 19000 --users 500 --hold-secs 20
fi
run scripts/bench.sh pairs --pairs 100 --window 16 --messages 3000
# The maximum is iyagi's delivered rate in the run just made (the
# second-to-last line; the last is the relay's).
max=$(tail -n2 "$BENCH_OUT" | head -n1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["figures"]["delivered_per_second"])')
for divisor in 2 4 8; do
  rate=$(python3 -c "print(round($max / $divisor))")
  run scripts/bench.sh pairs --pairs 100 --messages 2000 --rate "$rate"
done
run scripts/bench.sh fanout --members 1000 --senders 10 --rate 50 --secs 10
run scripts/bench.sh catchup --messages 10000
if [ -z "${SKIP_POSTGRES:-}" ]; then
  run env BACKEND=postgres scripts/bench.sh pairs --pairs 100 --window 16 --messages 1000
  run env BACKEND=postgres scripts/bench.sh pairs --pairs 100 --messages 1000 --rate 4000
  run env BACKEND=postgres scripts/bench.sh fanout --members 1000 --senders 10 --rate 50 --secs 10
fi
echo "results: $BENCH_OUT ($(wc -l < "$BENCH_OUT") runs); log: $log"
