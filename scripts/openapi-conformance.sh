#!/usr/bin/env bash
# Checks that /v1/openapi.json describes what the server does: schemathesis
# (an OpenAPI fuzzer, pinned below) generates requests from the document
# and checks every answer against it (status documented, body matching its
# schema, schema-valid requests accepted, invalid ones refused...), against
# a real server started here on a free port with its own database.
# .ci/run calls this; run it alone the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/iyagi-target}"
SCHEMATHESIS_VERSION=4.32.5
venv="$CARGO_TARGET_DIR/schemathesis-$SCHEMATHESIS_VERSION"
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
cargo build -q --locked -p iyagi
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# Cheap hashing and high limits: the fuzzer logs in and registers thousands of times.
IYAGI_DATABASE__URL="sqlite://$dir/iyagi.db" IYAGI_SERVER__LISTEN="127.0.0.1:$port" IYAGI_LOG__LEVEL=warn \
IYAGI_AUTH__PASSWORD__MEMORY_KIB=256 IYAGI_AUTH__PASSWORD__ITERATIONS=1 \
IYAGI_MEDIA__PATH="$dir/media" IYAGI_MEDIA__SPOOL_PATH="$dir/spool" \
IYAGI_AUTH__RATE_LIMIT__LOGIN_PER_ACCOUNT_PER_MINUTE=1000000 \
IYAGI_AUTH__RATE_LIMIT__LOGIN_PER_ADDRESS_PER_MINUTE=1000000 \
IYAGI_AUTH__RATE_LIMIT__REGISTER_PER_ADDRESS_PER_MINUTE=1000000 \
  "$CARGO_TARGET_DIR/debug/iyagi" serve >"$dir/server.log" 2>&1 & server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done

token() { # a fresh device session of a user of its own
  curl -sf -X POST "$base/v1/auth/register" -H 'content-type: application/json' \
    -d "{\"username\": \"$1\", \"password\": \"correct horse\"}" >/dev/null
  curl -sf -X POST "$base/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\": \"$1\", \"password\": \"correct horse\", \"device\": {\"id\": \"fuzz\", \"platform\": \"other\"}}" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
st=("$venv/bin/st" --config-file scripts/schemathesis.toml run "$base/v1/openapi.json" --checks all --seed 20261202
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" --workers 2 --no-color)
# Operations that end the caller's session are fuzzed apart, each with a
# session of its own, so that the others keep a valid token throughout.
session_enders='^/v1/(auth/logout|auth/logout-all|devices/\{device_id\})$'
"${st[@]}" -H "Authorization: Bearer $(token fuzz_main)" --exclude-path-regex "$session_enders"
for path in /v1/auth/logout /v1/auth/logout-all '/v1/devices/{device_id}'; do
  "${st[@]}" -H "Authorization: Bearer $(token "fuzz_$RANDOM")" --include-path "$path"
done
echo "openapi conformance: ok"
