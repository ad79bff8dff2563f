#!/usr/bin/env bash
# The project's test command (README "Run it, test it"; .ci/run calls it).
# Builds in the dev profile (dependencies optimised, see Cargo.toml) and runs
# every unit, integration and CLI test (cargo-nextest, or cargo test), then
# tools/onnx_check.sh and tools/ultralytics_check.sh. Real-data tests read ../shared/realdata
# when it is present and say so when it is not.
#
# The wgpu tests (tests/it/wgpu.rs) run burn's GPU kernels on Mesa's software
# Vulkan adapter (lavapipe): installed here when missing and this runs as root
# on Debian/Ubuntu (as CI does); with it present they must run, not skip.
set -euo pipefail
cd "$(dirname "$0")/.."

lavapipe() { compgen -G "/usr/share/vulkan/icd.d/lvp_icd.*.json" >/dev/null; }
if ! lavapipe && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Mesa's software Vulkan driver for the wgpu tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null; }
fi
if lavapipe; then
    export TWINHEAD_REQUIRE_WGPU=1
else
    echo "no software Vulkan driver (mesa-vulkan-drivers): the wgpu tests will say they skipped"
fi
# wgpu wants a runtime folder.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

# cargo-nextest runs each test in a process of its own, two at a time (one per
# core): the training tests no longer share one process's allocator and
# autodiff graph lock, which made train_engine 30 % slower under `cargo test`
# (docs/tests.md). .config/nextest.toml runs the training runs on the software
# adapter one at a time, so they compile and autotune their kernels once.
# There are no doctests. A machine without nextest gets it from crates.io
# (`cargo install --locked cargo-nextest`), so every machine runs the suite
# the same way; `cargo test` only where that install fails.
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest (cargo install --locked cargo-nextest)"
    cargo install --locked cargo-nextest >/dev/null 2>&1 || echo "cargo-nextest did not install: running cargo test"
fi
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --no-fail-fast "$@"
else
    cargo test --locked "$@"
fi

# The whole suite (no arguments) also checks the ONNX export in ONNX Runtime
# and the YOLO export in Ultralytics, with the binary the tests just built
# (onnx, onnxruntime and ultralytics from PyPI).
#
# Ultralytics brings torch with its CUDA libraries (a 6 GB venv). On CI
# (TWINHEAD_CI=1, set by .ci/run on its fresh clone) the test build is
# removed first, keeping the binary aside, so that both fit on its disk: a
# landing once failed there with "No space left on device". A developer's
# target folder is never touched.
if [ $# -eq 0 ]; then
    bin="${CARGO_TARGET_DIR:-target}/debug/twinhead"
    if [ "${TWINHEAD_CI:-}" = 1 ]; then
        kept="$(mktemp -d)"
        trap 'rm -rf "$kept"' EXIT
        cp "$bin" "$kept/twinhead"
        bin="$kept/twinhead"
        cargo clean >/dev/null 2>&1
        echo "TWINHEAD_CI: test build removed before the Python checks; $(df -h --output=avail "$kept" | tail -1 | tr -d ' ') free"
    fi
    bash tools/onnx_check.sh "$bin"
    bash tools/ultralytics_check.sh "$bin"
fi
