#!/usr/bin/env bash
# Live-stream fan-out: 1,000 SSE subscribers on loopback, 20 flag writes; prints p50, p99 and
# max from a flag write to its delivery (crates/bench/src/bin/fanout.rs).
#
# Usage: bench/fanout.sh [--subscribers N] [--writes W] [--pause-ms P]
# Each subscriber holds a socket in this process and one in the server's, so the open-file
# limit is raised (up to the hard limit) first. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

want=8192
hard=$(ulimit -Hn)
if [ "$hard" != "unlimited" ] && [ "$hard" -lt "$want" ]; then
    want=$hard
fi
ulimit -Sn "$want"

cargo run --release -q -p sluice-bench --bin fanout -- "$@"
