#!/usr/bin/env bash
# API fuzzing: schemathesis generates requests from the OpenAPI document and checks that no
# answer is a 5xx and every answer matches the document. Runs against a fresh server on
# SQLite, then on PostgreSQL when SLUICE_TEST_POSTGRES_URL names an admin URL.
#
#   fuzz/api.sh              # 25 examples per operation and phase
#   fuzz/api.sh 100          # more
#
# Installs schemathesis from PyPI (pip, user site) when it is missing. Prints schemathesis's
# summary per backend and exits non-zero if either run found a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${1:-25}
if ! command -v st >/dev/null 2>&1; then
  echo "installing schemathesis"
  python3 -m pip install --quiet --user schemathesis
  export PATH="$HOME/.local/bin:$PATH"
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
  local port=$((20000 + RANDOM % 20000))
  "$sluice" serve --port "$port" --data-dir "$work/$name" --rate-limit 0 "$@" >"$work/$name.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 50); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
    sleep 0.2
  done
  local token
  token=$(grep -o 'sluice_[0-9a-f]\{64\}' "$work/$name.log" | head -n 1)
  echo "== $name"
  set +e
  st run "http://127.0.0.1:$port/api/v1/openapi.json" \
    -H "Authorization: Bearer $token" \
    -c not_a_server_error,response_schema_conformance \
    --max-examples "$examples" --phases examples,coverage,fuzzing,stateful \
    --seed 1 >"$work/$name.st" 2>&1
  local status=$?
  set -e
  sed -n '/= SUMMARY =/,$p' "$work/$name.st"
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
