#!/usr/bin/env bash
# Evaluation benchmarks: Sluice against unleash-yggdrasil in one run, then a table of ratios.
#
# Usage: bench/eval.sh [criterion arguments...]
# Honours CARGO_TARGET_DIR; criterion writes its estimates under <target>/criterion.
# The machine is shared, so quote only the ratios from a single run.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p sluice-bench --bench evaluation -- "$@"
