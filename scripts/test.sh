#!/usr/bin/env bash
# Runs every test. Starts the local PostgreSQL when it is installed but down, so the store
# contract tests run against it; without PostgreSQL they print a notice and skip.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${SLUICE_TEST_POSTGRES_URL:-}" ]; then
  if command -v pg_isready >/dev/null 2>&1; then
    if ! pg_isready -h 127.0.0.1 -p 5432 -q && [ -d /etc/postgresql ]; then
      echo "starting PostgreSQL"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
      for _ in $(seq 1 30); do
        pg_isready -h 127.0.0.1 -p 5432 -q && break
        sleep 1
      done
    fi
    if pg_isready -h 127.0.0.1 -p 5432 -q; then
      export SLUICE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
    fi
  fi
fi
if [ -n "${SLUICE_TEST_POSTGRES_URL:-}" ]; then
  echo "PostgreSQL tests use ${SLUICE_TEST_POSTGRES_URL}"
else
  echo "PostgreSQL is not available: its tests will print a notice and skip"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace: cargo's own last line is often a crate's
# empty doc-test run.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;/) p += $(i-1); if ($(i) ~ /^failed;/) f += $(i-1) } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
