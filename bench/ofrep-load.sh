#!/usr/bin/env bash
# OFREP over HTTP under load, against a bare axum endpoint measured in the same run.
#
# Usage: bench/ofrep-load.sh [--with-edge] [--no-build] [--perf TARGET] [--duration SECONDS]
#                            [--connections N] [--threads N]
#
# Builds `sluice` and `axum-floor` in release (honours CARGO_TARGET_DIR; `--no-build` uses
# what is already built), starts each
# server on 127.0.0.1 with an ephemeral port (Sluice with a fresh data directory), creates
# a client token and 200 flags through the admin API, then loads with wrk (Debian's; oha
# from crates.io only when wrk cannot be had), after a short warm-up, for each target:
#   floor   POST to axum-floor, which reads the body and returns a fixed small JSON body
#   single  POST /ofrep/v1/evaluate/flags/flag-000 with a client token
#   bulk    POST /ofrep/v1/evaluate/flags (200 flags) with a client token
#   edge    with --with-edge only: Unleash Edge 20.1.0 offline, POST /api/frontend with
#           200 equivalent toggles (installed with `cargo install` on first use, ~22 min)
# and prints req/s, p99 and the server's CPU time per request for each, and the ratios of
# the same run. `--perf single` (or floor, bulk, edge) samples that server with `perf record`
# during its run and prints where its CPU time went. Each flag is a plan
# rule with a percentage split (Edge: a flexibleRollout with a plan constraint); the
# context matches the rule, so every flag is bucketed.
#
# Every step has a time limit, everything started is stopped on exit, and nothing listens
# beyond 127.0.0.1. The machine is shared: quote ratios from one run, not absolute numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=10
CONNECTIONS=64
THREADS=2
WARMUP=2
FLAGS=200
WITH_EDGE=0
BUILD=1
PERF_TARGET=
EDGE_VERSION=20.1.0

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --with-edge) WITH_EDGE=1 ;;
    --no-build) BUILD=0 ;;
    --perf) PERF_TARGET=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --connections) CONNECTIONS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
EDGE_ROOT=${EDGE_ROOT:-$TARGET_DIR/unleash-edge-$EDGE_VERSION}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-ofrep-load.XXXXXX")
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "ofrep-load: $*" >&2; exit 1; }

for tool in curl jq; do
  command -v "$tool" >/dev/null || die "$tool is needed"
done

# The load generator: wrk, or oha when wrk cannot be installed.
LOADGEN=wrk
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing wrk from Debian"
    timeout 300 apt-get install -y wrk >/dev/null 2>&1 \
      || { timeout 300 apt-get update >/dev/null 2>&1 && timeout 300 apt-get install -y wrk >/dev/null 2>&1; } \
      || true
  fi
fi
if ! command -v wrk >/dev/null; then
  LOADGEN=oha
  OHA=$(command -v oha || true)
  if [ -z "$OHA" ]; then
    echo "== wrk is unavailable; installing oha from crates.io"
    timeout 1800 cargo install oha --locked --root "$TARGET_DIR/oha" >/dev/null
    OHA=$TARGET_DIR/oha/bin/oha
  fi
fi

if [ "$BUILD" = 1 ]; then
  echo "== building sluice and axum-floor (release)"
  timeout 1800 cargo build --release --locked -q -p sluice-cli --bin sluice -p sluice-bench --bin axum-floor
fi

# Waits up to 20 s for "$2" (a regex) in file $1 and prints the first match.
await_line() {
  local file=$1 pattern=$2 i
  for i in $(seq 1 200); do
    if grep -Eo "$pattern" "$file" 2>/dev/null | head -n 1 | grep .; then
      return 0
    fi
    sleep 0.1
  done
  cat "$file" >&2
  die "timed out waiting for /$pattern/ in $file"
}

# Waits up to 20 s for a URL to answer 200.
await_ok() {
  local i
  for i in $(seq 1 200); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@")" = 200 ]; then
      return 0
    fi
    sleep 0.1
  done
  die "timed out waiting for $*"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

CONTEXT='{"context":{"targetingKey":"user-42","plan":"pro"}}'
EDGE_CONTEXT='{"context":{"userId":"user-42","properties":{"plan":"pro"}}}'

# --- the floor -------------------------------------------------------------------------
"$TARGET_DIR/release/axum-floor" 127.0.0.1:0 >"$WORK/floor.log" 2>&1 &
PIDS+=($!); FLOOR_PID=$!
FLOOR=$(await_line "$WORK/floor.log" 'http://127\.0\.0\.1:[0-9]+')
await_ok -X POST -d "$CONTEXT" "$FLOOR/"

# --- Sluice ----------------------------------------------------------------------------
"$TARGET_DIR/release/sluice" serve --bind 127.0.0.1 --port 0 --data-dir "$WORK/data" --rate-limit 0 >"$WORK/sluice.log" 2>&1 &
PIDS+=($!); SLUICE_PID=$!
SLUICE=$(await_line "$WORK/sluice.log" 'http://127\.0\.0\.1:[0-9]+')
ADMIN=$(await_line "$WORK/sluice.log" 'sluice_[0-9a-f]{64}')
await_ok "$SLUICE/ready"

# Flag i: plan in [pro, enterprise] gets a split with (5 + (i mod 19) × 5)% on.
jq -n --argjson n "$FLAGS" '
  def pad: tostring | ("000" + .)[-3:];
  def pct: 5 + (. % 19) * 5;
  {version: 1, flags: ([range(0; $n) | {key: ("flag-" + pad), value: {
    type: "boolean", variants: {on: true, off: false}, default_variant: "off", off_variant: "off",
    rules: [{name: "paying plans",
             when: [{attribute: "plan", op: "in", values: ["pro", "enterprise"]}],
             split: [{variant: "on", weight: (pct * 1000)}, {variant: "off", weight: (100000 - pct * 1000)}]}]
  }}] | from_entries)}' >"$WORK/flags.json"
curl -sf --max-time 30 -X POST "$SLUICE/api/v1/import?reason=load%20benchmark" \
  -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  --data-binary @"$WORK/flags.json" >/dev/null || die "the import failed"
CLIENT=$(curl -sf --max-time 10 -X POST "$SLUICE/api/v1/tokens" \
  -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"name":"load benchmark","scope":"client","environment":"production"}' | jq -r .secret)
[ -n "$CLIENT" ] && [ "$CLIENT" != null ] || die "cannot create a client token"

SINGLE_URL="$SLUICE/ofrep/v1/evaluate/flags/flag-000"
BULK_URL="$SLUICE/ofrep/v1/evaluate/flags"
single=$(curl -sf --max-time 5 -X POST "$SINGLE_URL" -H "Authorization: Bearer $CLIENT" \
  -H 'Content-Type: application/json' -d "$CONTEXT") || die "single evaluation failed"
echo "single evaluation answers: $single"
bulk_count=$(curl -sf --max-time 5 -X POST "$BULK_URL" -H "Authorization: Bearer $CLIENT" \
  -H 'Content-Type: application/json' -d "$CONTEXT" | jq '[.flags[] | select(.value != null)] | length')
[ "$bulk_count" = "$FLAGS" ] || die "bulk evaluation returned $bulk_count flags, not $FLAGS"
bulk_bytes=$(curl -sf --max-time 5 -X POST "$BULK_URL" -H "Authorization: Bearer $CLIENT" \
  -H 'Content-Type: application/json' -d "$CONTEXT" | wc -c)
echo "bulk evaluation answers $bulk_count flags in $bulk_bytes bytes"

# --- Unleash Edge (optional) -------------------------------------------------------------
EDGE_URL=
if [ "$WITH_EDGE" = 1 ]; then
  EDGE_BIN=${EDGE_BIN:-$EDGE_ROOT/bin/unleash-edge}
  if [ ! -x "$EDGE_BIN" ]; then
    echo "== installing unleash-edge $EDGE_VERSION (about 22 minutes on 2 cores)"
    timeout 3600 cargo install "unleash-edge@$EDGE_VERSION" --locked --no-default-features \
      --root "$EDGE_ROOT" --target-dir "$TARGET_DIR/unleash-edge-build"
    EDGE_BIN=$EDGE_ROOT/bin/unleash-edge
  fi
  # The same 200 flags as Unleash toggles: a flexibleRollout on the default stickiness
  # (userId) with a plan constraint.
  jq -n --argjson n "$FLAGS" '
    def pad: tostring | ("000" + .)[-3:];
    def pct: 5 + (. % 19) * 5;
    {version: 2, features: [range(0; $n) | {
      name: ("flag-" + pad), type: "release", enabled: true, project: "default",
      strategies: [{name: "flexibleRollout",
                    constraints: [{contextName: "plan", operator: "IN", values: ["pro", "enterprise"],
                                   inverted: false, caseInsensitive: false}],
                    parameters: {rollout: (pct | tostring), stickiness: "default", groupId: ("flag-" + pad)}}],
      variants: []}]}' >"$WORK/features.json"
  EDGE_TOKEN='*:production.sluice-load-frontend'
  EDGE_PORT=$(free_port)
  "$EDGE_BIN" -i 127.0.0.1 -p "$EDGE_PORT" offline -b "$WORK/features.json" \
    -c '*:production.sluice-load-client' -f "$EDGE_TOKEN" >"$WORK/edge.log" 2>&1 &
  PIDS+=($!); EDGE_PID=$!
  EDGE_URL="http://127.0.0.1:$EDGE_PORT/api/frontend"
  await_ok -X POST -H "Authorization: $EDGE_TOKEN" -H 'Content-Type: application/json' \
    -d "$EDGE_CONTEXT" "$EDGE_URL"
  edge_answer=$(curl -sf --max-time 5 -X POST "$EDGE_URL" -H "Authorization: $EDGE_TOKEN" \
    -H 'Content-Type: application/json' -d "$EDGE_CONTEXT")
  echo "edge answers $(jq '.toggles | length' <<<"$edge_answer") enabled toggles of $FLAGS in $(wc -c <<<"$edge_answer") bytes"
fi

# --- load ------------------------------------------------------------------------------
# Writes a wrk script that POSTs $2 with the header lines in $3.
wrk_script() {
  local file=$1 body=$2 headers=$3
  {
    echo 'wrk.method = "POST"'
    printf 'wrk.body = [[%s]]\n' "$body"
    echo 'wrk.headers["Content-Type"] = "application/json"'
    printf '%s\n' "$headers"
  } >"$file"
}

# Converts wrk's latency (such as 850.00us, 1.23ms or 1.02s) to milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
    printf "%.2f", n
  }'
}

# CPU time a process has used, user and system, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# load NAME PID URL BODY AUTH_HEADER_NAME AUTH_HEADER_VALUE: prints
# "rps p99_ms errors server_cpu_us_per_request". The CPU time is the server process's own,
# so it moves far less with the machine's other load than req/s does.
load() {
  local name=$1 pid=$2 url=$3 body=$4 header=$5 value=$6 out=$WORK/$1.out
  local before after
  if [ "$LOADGEN" = wrk ]; then
    local lines=
    if [ -n "$header" ]; then lines="wrk.headers[\"$header\"] = \"$value\""; fi
    wrk_script "$WORK/$name.lua" "$body" "$lines"
    timeout $((WARMUP + 20)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$WORK/$name.lua" "$url" >/dev/null
    before=$(cpu_ticks "$pid")
    if [ "$PERF_TARGET" = "$name" ]; then
      perf record -q -F 1999 -e cpu-clock -g -p "$pid" -o "$WORK/perf.data" -- sleep "$DURATION" 2>/dev/null &
    fi
    timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
      -s "$WORK/$name.lua" "$url" >"$out"
    after=$(cpu_ticks "$pid")
    if [ "$PERF_TARGET" = "$name" ]; then
      wait
      perf report -i "$WORK/perf.data" ${PERF_REPORT_ARGS:---no-children --percent-limit 1} --stdio -g none 2>/dev/null \
        | grep -v '^#' | grep -v '^$' >"$WORK/perf.txt" || true
    fi
    local rps p99 errors requests
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    requests=$(awk '/requests in/ {print $1}' "$out")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    errors=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$out")
    echo "$rps $p99 $errors $(awk -v t=$((after - before)) -v u="$TICK_US" -v n="$requests" 'BEGIN { printf "%.1f", (n > 0 ? t * u / n : 0) }')"
  else
    local args=(--no-tui -c "$CONNECTIONS" -m POST -H 'Content-Type: application/json' -d "$body")
    if [ -n "$header" ]; then args+=(-H "$header: $value"); fi
    local json_flag=-j
    if "$OHA" --help 2>/dev/null | grep -q -- '--output-format'; then json_flag=--output-format=json; fi
    timeout $((WARMUP + 20)) "$OHA" "${args[@]}" -z "${WARMUP}s" "$url" >/dev/null
    before=$(cpu_ticks "$pid")
    timeout $((DURATION + 30)) "$OHA" "${args[@]}" -z "${DURATION}s" "$json_flag" "$url" >"$out"
    after=$(cpu_ticks "$pid")
    jq -r --argjson t $((after - before)) --argjson u "$TICK_US" '[(.summary.requestsPerSec | floor),
            ((.latencyPercentiles.p99 // 0) * 1000 * 100 | round / 100),
            ([.statusCodeDistribution | to_entries[] | select(.key | test("^2") | not) | .value] | add // 0),
            ((.summary.requestsPerSec * (.summary.total // 0)) as $n
             | if $n > 0 then ($t * $u / $n * 10 | round / 10) else 0 end)]
           | map(tostring) | join(" ")' "$out"
  fi
}

echo "== load: $LOADGEN, $CONNECTIONS connections, $THREADS threads, ${DURATION} s each after ${WARMUP} s of warm-up"
result=$(load floor "$FLOOR_PID" "$FLOOR/" "$CONTEXT" "" "")
read -r floor_rps floor_p99 floor_err floor_cpu <<<"$result"
result=$(load single "$SLUICE_PID" "$SINGLE_URL" "$CONTEXT" Authorization "Bearer $CLIENT")
read -r single_rps single_p99 single_err single_cpu <<<"$result"
result=$(load bulk "$SLUICE_PID" "$BULK_URL" "$CONTEXT" Authorization "Bearer $CLIENT")
read -r bulk_rps bulk_p99 bulk_err bulk_cpu <<<"$result"
if [ -n "$EDGE_URL" ]; then
  result=$(load edge "$EDGE_PID" "$EDGE_URL" "$EDGE_CONTEXT" Authorization "$EDGE_TOKEN")
  read -r edge_rps edge_p99 edge_err edge_cpu <<<"$result"
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo
echo "| target | req/s | p99 (ms) | server CPU (µs/req) | errors |"
echo "|---|---:|---:|---:|---:|"
printf '| floor: bare axum, fixed JSON | %.0f | %s | %s | %s |\n' "$floor_rps" "$floor_p99" "$floor_cpu" "$floor_err"
printf '| OFREP single evaluation | %.0f | %s | %s | %s |\n' "$single_rps" "$single_p99" "$single_cpu" "$single_err"
printf '| OFREP bulk, %s flags | %.0f | %s | %s | %s |\n' "$FLAGS" "$bulk_rps" "$bulk_p99" "$bulk_cpu" "$bulk_err"
if [ -n "$EDGE_URL" ]; then
  printf '| Unleash Edge %s POST /api/frontend, %s toggles | %.0f | %s | %s | %s |\n' \
    "$EDGE_VERSION" "$FLAGS" "$edge_rps" "$edge_p99" "$edge_cpu" "$edge_err"
fi
echo
echo "single / floor (req/s): $(ratio "$single_rps" "$floor_rps")   (target ≥ 0.50)"
echo "bulk / floor (req/s):   $(ratio "$bulk_rps" "$floor_rps")"
if [ -n "$EDGE_URL" ]; then
  echo "bulk / Edge (req/s):    $(ratio "$bulk_rps" "$edge_rps")   (target ≥ 10)"
  echo "Edge / bulk (server CPU per request): $(ratio "$edge_cpu" "$bulk_cpu")"
else
  echo "Unleash Edge: skipped; pass --with-edge to install ($EDGE_VERSION, ~22 min) and compare"
fi
if [ -s "$WORK/perf.txt" ]; then
  echo
  echo "== where $PERF_TARGET's server spent its CPU (perf, symbols over 1%)"
  cat "$WORK/perf.txt"
fi
total_errors=$((floor_err + single_err + bulk_err + ${edge_err:-0}))
if [ "$total_errors" -gt 0 ]; then
  echo "WARNING: $total_errors non-2xx responses or socket errors; the numbers above are not valid" >&2
  exit 1
fi
