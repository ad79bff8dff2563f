#!/usr/bin/env bash
# Runs the AdamW parity test of tests/it/wgpu.rs (one training step of the whole
# tiny network on the wgpu backend against the CPU) N times, each with a cold
# autotune cache, and reports how many failed. Autotuning picks kernels by
# timing, so a wrong kernel shows up only in some runs: before
# patches/cubek-matmul, 2 of 6 cold runs got gradients 57 % off.
#
#   bash tools/autotune_soak.sh [N]      (default 10; a few minutes a run on lavapipe)
#
# Needs a Vulkan adapter (Mesa's lavapipe: apt-get install mesa-vulkan-drivers).
# A failed run's log is kept as target/autotune-soak/run-K.log, with the
# autotune cache it tuned (target/autotune-soak/run-K.autotune/) to bisect.
set -uo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
out=target/autotune-soak
cache=target/autotune   # CubeCL's default cache root inside a Cargo project
mkdir -p "$out"
export TWINHEAD_REQUIRE_WGPU=1
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
cargo test --locked --test it --no-run 2>&1 | tail -1
failed=0
for i in $(seq 1 "$n"); do
    rm -rf "$cache"
    started=$(date +%s)
    if cargo test --locked --test it wgpu::an_adamw_step_with_clipping_updates_the_weights_alike -- --exact >"$out/run-$i.log" 2>&1; then
        echo "run $i of $n: passed ($(( $(date +%s) - started )) s)"
        rm -f "$out/run-$i.log"
    else
        failed=$((failed + 1))
        rm -rf "$out/run-$i.autotune" && cp -r "$cache" "$out/run-$i.autotune" 2>/dev/null
        echo "run $i of $n: FAILED ($(( $(date +%s) - started )) s): $out/run-$i.log"
        grep -m3 -E "panicked|off by|differ" "$out/run-$i.log"
    fi
done
echo "$failed of $n cold-cache runs failed"
[ "$failed" = 0 ]
