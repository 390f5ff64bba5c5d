#!/usr/bin/env bash
# Soak: a server under mixed load for a bounded time, sampled from /proc.
#
#   bench/soak.sh            # 30 minutes
#   bench/soak.sh 60         # 60 minutes
#   SLUICE_SOAK_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres bench/soak.sh   # on PostgreSQL
#
# The load, all at once: OFREP evaluations from two loops, one flag write a second, live-stream
# (SSE) clients connecting and disconnecting, and an environment created and deleted every
# five seconds. Every 10 s it samples the server's RSS, open descriptors and threads from
# /proc and writes them to a CSV. At the end it stops the load, waits, and prints the RSS
# slope after warm-up (the first fifth) by least squares, and descriptors against the
# baseline taken after a minute of warm-up load has stopped and settled.
#
# Pass: RSS grows less than 1 MiB per 10 minutes after warm-up, and descriptors return to
# their baseline (within 2) once the load stops. Exits 0 on pass, 1 on fail. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-30}
seconds=$((minutes * 60))
target=${CARGO_TARGET_DIR:-target}
profile=${SLUICE_SOAK_PROFILE:-release}
if [ "$profile" = release ]; then
  cargo build --release --quiet -p sluice-cli
else
  cargo build --quiet -p sluice-cli
fi
sluice="$target/$profile/sluice"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -n "${soak_db:-}" ]; then
    psql "$SLUICE_SOAK_POSTGRES" -qc "DROP DATABASE IF EXISTS $soak_db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# SLUICE_SOAK_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres soaks on a fresh PostgreSQL
# database made there (and dropped after) instead of SQLite.
store=()
if [ -n "${SLUICE_SOAK_POSTGRES:-}" ]; then
  soak_db="sluice_soak_$RANDOM$RANDOM"
  psql "$SLUICE_SOAK_POSTGRES" -qc "CREATE DATABASE $soak_db" >/dev/null
  store=(--database "${SLUICE_SOAK_POSTGRES%/*}/$soak_db")
fi

port=$((20000 + RANDOM % 20000))
base="http://127.0.0.1:$port"
"$sluice" serve --port "$port" --data-dir "$work/data" --rate-limit 0 "${store[@]}" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -sf "$base/ready" >/dev/null && break
  sleep 0.2
done
admin=$(grep -o 'sluice_[0-9a-f]\{64\}' "$work/server.log" | head -n 1)
api() { curl -sf -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' "$@"; }
token() { api -X POST "$base/api/v1/tokens" -d "{\"name\":\"soak\",\"scope\":\"$1\",\"environment\":\"production\"}" |
  grep -o 'sluice_[0-9a-f]\{64\}'; }
flag='{"type":"boolean","variants":{"on":true,"off":false},"default_variant":"off"}'
api -X POST "$base/api/v1/flags/soak" -d "$flag" >/dev/null
client=$(token client)
server_token=$(token server)

sample() { # elapsed seconds, rss KiB, fds, threads
  local rss fds threads
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server/status")
  fds=$(find "/proc/$server/fd" -mindepth 1 -maxdepth 1 | wc -l)
  threads=$(find "/proc/$server/task" -mindepth 1 -maxdepth 1 | wc -l)
  echo "$1,$rss,$fds,$threads"
}
echo "soak: $minutes min against $base (pid $server, ${soak_db:-SQLite}), after a minute of warm-up"

# The load, started in the background; stop_load ends it.
start_load() {
  for _ in 1 2; do
    (while true; do
      curl -s -o /dev/null -X POST "$base/ofrep/v1/evaluate/flags/soak" \
        -H "Authorization: Bearer $client" -H 'Content-Type: application/json' \
        -d "{\"context\":{\"targetingKey\":\"u$RANDOM\"}}" || true
    done) &
    pids+=($!)
  done
  (i=0; while true; do
    i=$((i + 1))
    default=$([ $((i % 2)) -eq 0 ] && echo on || echo off)
    api -X PUT "$base/api/v1/flags/soak" \
      -d "{\"type\":\"boolean\",\"variants\":{\"on\":true,\"off\":false},\"default_variant\":\"$default\"}" >/dev/null || true
    sleep 1
  done) &
  pids+=($!)
  for _ in 1 2 3 4 5; do
    (while true; do
      timeout "$((2 + RANDOM % 4))" curl -s -N -o /dev/null "$base/api/v1/stream" \
        -H "Authorization: Bearer $server_token" || true
    done) &
    pids+=($!)
  done
  (i=0; while true; do
    i=$((i + 1))
    api -X POST "$base/api/v1/environments/soak-$i" -d '{"description":"soak"}' >/dev/null || true
    sleep 2.5
    api -X DELETE "$base/api/v1/environments/soak-$i" >/dev/null || true
    sleep 2.5
  done) &
  pids+=($!)
}

stop_load() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  pkill -P $$ curl 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}

# Warm-up: a minute of load fills the database pool and caches; the descriptor baseline is
# taken once it has stopped and settled, so connections the pool keeps are not counted as a leak.
start_load
sleep 60
stop_load
sleep 10
baseline_fds=$(sample 0 | cut -d, -f3)
echo "warm-up done: baseline $baseline_fds descriptors"
start_load

echo "elapsed_s,rss_kib,fds,threads" >"$work/samples.csv"
started=$(date +%s)
while true; do
  now=$(($(date +%s) - started))
  [ "$now" -ge "$seconds" ] && break
  sample "$now" >>"$work/samples.csv"
  sleep 10
done

stop_load
sleep 10
final_fds=$(sample 0 | cut -d, -f3)
evaluations=$(curl -s "$base/metrics" | awk '/^sluice_evaluations_total/ {s += $NF} END {printf "%d", s}')

# RSS slope after the first fifth, by least squares, in MiB per 10 minutes.
slope=$(awk -F, -v warm=$((seconds / 5)) 'NR > 1 && $1 >= warm {
    n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2 }
  END { if (n < 3) { print "nan"; exit }
        b = (n * sxy - sx * sy) / (n * sxx - sx * sx); printf "%.3f", b * 600 / 1024 }' "$work/samples.csv")
first=$(sed -n 2p "$work/samples.csv")
last=$(tail -n 1 "$work/samples.csv")
echo "samples: $(($(wc -l <"$work/samples.csv") - 1)); first $first; last $last (elapsed_s,rss_kib,fds,threads)"
echo "evaluations served: $evaluations"
echo "RSS slope after warm-up: $slope MiB per 10 min (pass: < 1)"
echo "descriptors: $baseline_fds after the warm-up, $final_fds after the load stopped (pass: within 2)"
cp "$work/samples.csv" "${SLUICE_SOAK_CSV:-/tmp/sluice-soak.csv}"
echo "samples kept in ${SLUICE_SOAK_CSV:-/tmp/sluice-soak.csv}"
if awk -v s="$slope" 'BEGIN { exit !(s != "nan" && s < 1) }' && [ $((final_fds - baseline_fds)) -le 2 ]; then
  echo "PASS"
else
  echo "FAIL"
  exit 1
fi
