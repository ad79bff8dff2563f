#!/usr/bin/env bash
# The compression table of docs/benchmarks.md: the five variants of a finished
# `quick` run and prune:0.7 fine-tuned 900 steps, each measured beside its baseline, then `compress report`.
# Usage: tools/compress_table.sh RUN_DIR [TWINHEAD_BINARY]
# Run it on an otherwise idle machine: latencies are wall-clock.
set -euo pipefail
run="${1:?run folder, e.g. runs/quick}"
bin="${2:-target/release/twinhead}"
for method in int8 prune:0.3 prune:0.5 lowrank:0.9 prune:0.3+lowrank:0.9+int8; do
    "$bin" compress --run "$run" --method "$method" > /dev/null
done
# The fastest variant within 0.03 of the baseline on both tasks: more pruned, fine-tuned longer.
"$bin" compress --run "$run" --method prune:0.7 --finetune-steps 900 > /dev/null
"$bin" compress report --run "$run"
