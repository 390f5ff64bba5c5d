#!/usr/bin/env bash
# Runs every fuzz target for a while and prints what each found.
#
#   fuzz/run.sh                 # each target for 10 minutes (the figure docs/reliability.md quotes)
#   fuzz/run.sh 60 sse flagd    # 60 seconds each, for the named targets only
#
# Needs cargo-fuzz (installed here if missing). The toolchain is stable; libFuzzer's
# instrumentation flags are unstable, so RUSTC_BOOTSTRAP=1 lets stable rustc take them.
# Inputs that crash, time out (10 s) or exceed 2 GiB are written to fuzz/artifacts/<target>/;
# each finding becomes a regression test in the crate it concerns.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(flag_file flagd evaluate sse metrics_batch dry_run)
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

failed=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
  log=$(mktemp)
  echo "== $target: ${seconds}s"
  set +e
  cargo fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  status=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*')
  corpus=$(ls "corpus/$target" | wc -l)
  if [ "$status" -eq 0 ]; then
    echo "$target: ok, ${runs:-?} runs in ${seconds}s, coverage ${cov:-?} edges, corpus $corpus inputs"
  else
    failed=1
    echo "$target: FAILED (exit $status); the last lines of its log:"
    tail -n 30 "$log"
    ls "artifacts/$target" 2>/dev/null || true
  fi
  rm -f "$log"
done
exit "$failed"
