#!/usr/bin/env bash
# The media benchmark (docs/benchmarks.md): image uploads of 1 MP and 12 MP
# photo-like JPEGs (decode, strip, two thumbnails, blurhash) at 1, 4 and 16
# uploads at once, and voice uploads (60 s of AAC each). Each run on a fresh
# server (scripts/bench.sh). Prints one JSON line per run.
#   scripts/bench-media.sh            # writes to /tmp/iyagi-bench-media.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
out="${BENCH_OUT:-/tmp/iyagi-bench-media.jsonl}"
: > "$out"
run() { BENCH_OUT="$out" scripts/bench.sh media --quiet "$@" >/dev/null; tail -n1 "$out"; }
for c in 1 4 16; do run --megapixels 1 --uploads 96 --concurrency "$c"; done
for c in 1 4 16; do run --megapixels 12 --uploads 32 --concurrency "$c"; done
for c in 1 16; do run --voice-secs 60 --uploads 16 --concurrency "$c"; done
