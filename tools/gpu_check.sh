#!/usr/bin/env bash
# The GPU check: what can only be measured on a real GPU, as one short script
# (about 8 minutes on one H200; the `device` tool's machines allow 10 per call).
#
#   tools/gpu_check.sh [BIN] [OUT]
#
# BIN: a release binary built with CUDA (`cargo build --release --features cuda`,
# which also has wgpu); it needs no Rust toolchain where it runs, only the
# NVIDIA driver (burn-cuda loads libcuda and NVRTC at run time). OUT: where the
# runs, logs and the summary go. For the device tool: build here, copy the
# binary into an ignored folder named in `carry` (e.g. .gpu/), run
# `bash tools/gpu_check.sh .gpu/twinhead $OUT`.
#
# It checks, on CUDA: a short `quick` run learns (both losses fall, metrics
# above chance); the trained run evaluates to the same metrics on the GPU and
# the CPU (inference parity on the real kernels, 2e-3); predict runs on the
# GPU; training speed and device memory at 96 px and at the `voc-ade` size
# (512 px) against the CPU; and wgpu through the NVIDIA Vulkan driver where a
# loader is present.
set -uo pipefail
BIN=${1:-target/release/twinhead}
OUT=${2:-gpu-check}
mkdir -p "$OUT"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
LOG="$OUT/gpu_check.log"
say() { echo "== $*" | tee -a "$LOG"; }
run() { echo "\$ $*" >>"$LOG"; "$@" 2>&1 | tee -a "$LOG"; return "${PIPESTATUS[0]}"; }
failed=0
check() { if "$@"; then say "ok: $*"; else say "FAILED: $*"; failed=1; fi; }

say "machine"
run nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
run "$BIN" devices

say "train: quick preset, 200 steps on cuda"
RUN="$OUT/runs/quick-cuda"
rm -rf "$RUN"
check run "$BIN" train --preset quick --device cuda --set steps=200 --set eval.every=100 --out "$RUN"

say "the trained run scored on cuda and on the cpu (same weights, two sets of kernels)"
run "$BIN" eval --run "$RUN" --device cuda --json >"$OUT/eval-cuda.json"
run "$BIN" eval --run "$RUN" --device cpu --json >"$OUT/eval-cpu.json"
check python3 - "$OUT/eval-cuda.json" "$OUT/eval-cpu.json" <<'EOF'
import json, sys
gpu, cpu = (json.load(open(p)) for p in sys.argv[1:3])
for task, key in (("det", "map50"), ("seg", "miou")):
    g, c = gpu[task][key], cpu[task][key]
    print(f"{key}: cuda {g:.4f} cpu {c:.4f}")
    assert abs(g - c) <= 2e-3, key
assert gpu["seg"]["miou"] > 0.2, "segmentation did not learn"
EOF

say "predict on cuda"
mkdir -p "$OUT/images"
find datasets/synth/voc/JPEGImages -name '*.jpg' 2>/dev/null | head -4 | xargs -r cp -t "$OUT/images"
check run "$BIN" predict --run "$RUN" --device cuda --out "$OUT/predicted" "$OUT"/images/*.jpg

say "training speed and device memory (bench train), cuda against cpu"
run "$BIN" bench train --preset quick --device cuda --warmup 5 --steps 30
run "$BIN" bench train --preset quick --device cpu --warmup 2 --steps 5
say "at the voc-ade size (512 px, batch 16, model s) on the synthetic data"
run "$BIN" bench train --preset quick --device cuda --set data.image_size=512 --set model.size=s \
    --set data.batch_size=16 --warmup 3 --steps 20

if ldconfig -p | grep -q libvulkan; then
    say "wgpu through the Vulkan driver"
    run "$BIN" bench train --preset quick --device wgpu --warmup 5 --steps 30
else
    say "wgpu: no Vulkan loader on this machine (skipped)"
fi

say "done: $([ $failed = 0 ] && echo all checks passed || echo some checks FAILED); log in $LOG"
exit $failed
