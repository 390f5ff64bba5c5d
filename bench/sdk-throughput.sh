#!/usr/bin/env bash
# SDK evaluation throughput: sluice::Client::bool against unleash-yggdrasil, in one run.
#
# Usage: bench/sdk-throughput.sh [--no-criterion] [sdk-throughput arguments...]
#   1. `sdk-throughput` (crates/bench/src/bin/sdk-throughput.rs): evaluations per second on
#      1 and 2 threads for yggdrasil and three Sluice clients (file mode, server mode with
#      telemetry, server mode without), with Sluice / yggdrasil ratios from the same run.
#      Arguments such as `--seconds 3 --rounds 5 --threads 1,2` are passed to it.
#   2. Unless --no-criterion: `cargo bench --bench sdk` (crates/bench/benches/sdk.rs), one
#      thread, nanoseconds per evaluation, and what telemetry adds (about two minutes).
# Honours CARGO_TARGET_DIR. The machine is shared, so quote only ratios from a single run.
set -euo pipefail
cd "$(dirname "$0")/.."

criterion=1
arguments=()
for argument in "$@"; do
    if [ "$argument" = "--no-criterion" ]; then
        criterion=0
    else
        arguments+=("$argument")
    fi
done

cargo run --release -q -p sluice-bench --bin sdk-throughput -- "${arguments[@]}"
if [ "$criterion" = 1 ]; then
    cargo bench -p sluice-bench --bench sdk
fi
