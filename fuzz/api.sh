#!/usr/bin/env bash
# API fuzzing: schemathesis generates requests from the OpenAPI document and checks that no
# answer is a 5xx and every answer matches the document: its status, content type, promised
# headers and body schema. Runs against a fresh server on SQLite, then on PostgreSQL when
# SLUICE_TEST_POSTGRES_URL names an admin URL.
#
#   fuzz/api.sh              # 25 examples per operation and phase
#   fuzz/api.sh 100          # more
#
# Every operation is called with the credential it needs: an admin token, and a production
# server token for the operations only server (and client) tokens may call (the configuration
# feed, its stream, telemetry and OFREP), set per operation in a schemathesis.toml written
# here. fuzz/api_hooks.py keeps the run's own tokens from being revoked by the run. The
# document's links (create → get, update, commands, delete) drive the stateful phase.
#
# The stateful phase runs twenty times as many scenarios as the other phases have examples,
# of up to 12 steps each.
#
# Installs schemathesis 4.32.5 from PyPI (pip, user site) when it is missing. Prints schemathesis's
# stateful phase and summary per backend (the whole output is kept in
# ${SLUICE_FUZZ_OUT:-/tmp}/sluice-api-<backend>.txt) and the operations that never got past
# authentication (there should be none), and exits non-zero if either run found a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${1:-25}
export PATH="$HOME/.local/bin:$PATH"
if ! command -v st >/dev/null 2>&1; then
  echo "installing schemathesis"
  # The version the figures in docs/reliability.md were measured with.
  python3 -m pip install --quiet --user "schemathesis==4.32.5"
fi
cargo build --quiet -p sluice-cli
target=${CARGO_TARGET_DIR:-target}
sluice="$target/debug/sluice"

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  if [ -n "${database:-}" ]; then
    psql "$SLUICE_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

run() { # name, extra serve args...
  local name=$1
  shift
  # Port 0: the server picks a free port and prints it, so a busy machine cannot collide.
  "$sluice" serve --port 0 --data-dir "$work/$name" --rate-limit 0 "$@" >"$work/$name.log" 2>&1 &
  server_pid=$!
  local base=""
  for _ in $(seq 1 300); do
    base=$(grep -o 'Sluice is serving on http://[0-9.:]*' "$work/$name.log" | head -n 1 | cut -d' ' -f5)
    [ -n "$base" ] && curl -sf "$base/ready" >/dev/null && break
    sleep 0.2
  done
  if [ -z "$base" ]; then
    echo "$name: the server did not start" >&2
    tail -n 20 "$work/$name.log" >&2
    return 1
  fi
  local port=${base##*:}
  local admin server admin_id server_id
  admin=$(grep -o 'sluice_[0-9a-f]\{64\}' "$work/$name.log" | head -n 1)
  local created
  created=$(curl -sf -X POST "http://127.0.0.1:$port/api/v1/tokens" \
    -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d '{"name":"api fuzzing","scope":"server","environment":"production"}')
  server=$(echo "$created" | grep -o 'sluice_[0-9a-f]\{64\}')
  server_id=$(echo "$created" | grep -o '"id":"tok_[0-9a-f]*"' | cut -d'"' -f4)
  admin_id=$(curl -sf "http://127.0.0.1:$port/api/v1/tokens" -H "Authorization: Bearer $admin" |
    grep -o '"id":"tok_[0-9a-f]*","name":"first admin"' | cut -d'"' -f4)
  if [ -z "$admin_id" ] || [ -z "$server_id" ]; then
    echo "$name: cannot find the run's token ids" >&2
    tail -n 20 "$work/$name.log" >&2
    return 1
  fi
  cat >"$work/$name.toml" <<TOML
headers = { Authorization = "Bearer $admin" }
# Live streams never end: read their first event, and bound every request.
max-stream-events = 1
request-timeout = 10

[cache]
# Nothing is written to the repository.
enabled = false

[generation]
max-examples = $examples
# The credential is set above; generated X-API-Key values would only add noise.
with-security-parameters = false

[phases.stateful]
max-steps = 12

[phases.stateful.generation]
max-examples = $((examples * 20))

[[operations]]
include-operation-id = ["config", "stream", "postMetrics", "evaluateFlag", "evaluateFlags", "ofrepEvents"]
headers = { Authorization = "Bearer $server" }
TOML
  echo "== $name"
  set +e
  SLUICE_FUZZ_KEEP="$admin_id,$server_id" SCHEMATHESIS_HOOKS=api_hooks PYTHONPATH="$PWD/fuzz" \
    PYTHONDONTWRITEBYTECODE=1 \
    st --config-file "$work/$name.toml" run "http://127.0.0.1:$port/api/v1/openapi.json" \
    -c not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance \
    --phases examples,coverage,fuzzing,stateful \
    --seed 1 >"$work/$name.st" 2>&1
  local status=$?
  set -e
  if ! curl -sf -o /dev/null -H "Authorization: Bearer $admin" "http://127.0.0.1:$port/api/v1/status"; then
    echo "$name: the run's admin token no longer works"
    status=1
  fi
  cp "$work/$name.st" "${SLUICE_FUZZ_OUT:-/tmp}/sluice-api-$name.txt"
  # The stateful phase's scenarios and the links it followed, then the summary.
  grep -A 4 'Stateful (in' "$work/$name.st" | grep -E 'Stateful|Scenarios|API Links' || true
  sed -n '/= SUMMARY =/,$p' "$work/$name.st"
  # Operations that only ever answered 401 or 403: the run did not reach their handlers.
  sed -n '/^Authentication failed/,/^💡/p' "$work/$name.st" | grep -v '^ *$' | head -n 60 || true
  if [ "$status" -ne 0 ]; then
    sed -n '/= FAILURES =/,/= WARNINGS =/p' "$work/$name.st" | head -n 80
  fi
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  return "$status"
}

failed=0
run sqlite || failed=1
if [ -n "${SLUICE_TEST_POSTGRES_URL:-}" ]; then
  database="sluice_fuzz_$RANDOM$RANDOM"
  psql "$SLUICE_TEST_POSTGRES_URL" -qc "CREATE DATABASE $database" >/dev/null
  base=${SLUICE_TEST_POSTGRES_URL%/*}
  run postgres --database "$base/$database" || failed=1
fi
exit "$failed"
