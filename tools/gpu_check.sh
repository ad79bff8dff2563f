#!/usr/bin/env bash
# The GPU check: what can only be measured on a real GPU, as one short script
# (under 8 minutes on one H200; the `device` tool's machines allow 10 per call).
#
#   tools/gpu_check.sh [BIN] [OUT]
#   BASELINE=BIN_FIXED tools/gpu_check.sh BIN OUT     (also times a second binary)
#   DEVICE=wgpu:cpu STEPS=20 SHAPES=quick tools/gpu_check.sh BIN OUT   (tries it without a GPU)
#
# BIN: a release binary built with CUDA (`cargo build --release --features cuda`,
# which also has wgpu); it needs no Rust toolchain where it runs, only the
# NVIDIA driver (burn-cuda loads libcuda and NVRTC at run time). OUT: where the
# runs, logs and the summary go. For the device tool: build here, strip it,
# copy it into an ignored folder named in `carry` (e.g. .gpu/), run
# `bash tools/gpu_check.sh .gpu/twinhead $OUT`. BASELINE: a binary to time
# beside BIN at both shapes, e.g. one built before autotuning was turned on
# (burn's fixed, direct-convolution kernels), so the speed-up is a ratio
# measured side by side.
#
# It checks, on CUDA: a short `quick` run learns (both losses fall, metrics
# above chance); the trained run evaluates to the same metrics on the GPU and
# the CPU (inference parity on the real kernels, 2e-3); predict runs on the
# GPU; training speed at 96 px and at the `voc-ade` shape (model s, 512 px,
# batch 16): images/s, the FLOPs per step (forward MACs x 2 x 3) and the
# achieved TFLOP/s as a fraction of the GPU's f32 peak, peak device memory,
# the kernels autotuning chose; the same step in PyTorch on the same GPU where
# `import torch` works; and wgpu through the NVIDIA Vulkan driver where a
# loader is present.
set -uo pipefail
BIN=${1:-target/release/twinhead}
OUT=${2:-gpu-check}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-200}
SHAPES=${SHAPES:-quick voc-ade}
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

say "train: quick preset, $STEPS steps on $DEVICE"
RUN="$OUT/runs/quick-gpu"
rm -rf "$RUN"
check run "$BIN" train --preset quick --device "$DEVICE" --set steps="$STEPS" --set eval.every=$((STEPS / 2)) --out "$RUN"

say "the trained run scored on $DEVICE and on the cpu (same weights, two sets of kernels)"
run "$BIN" eval --run "$RUN" --device "$DEVICE" --json >"$OUT/eval-gpu.json"
run "$BIN" eval --run "$RUN" --device cpu --json >"$OUT/eval-cpu.json"
check python3 - "$OUT/eval-gpu.json" "$OUT/eval-cpu.json" "$STEPS" <<'EOF'
import json, sys
gpu, cpu = (json.load(open(p)) for p in sys.argv[1:3])
for task, key in (("det", "map50"), ("seg", "miou")):
    g, c = gpu[task][key], cpu[task][key]
    print(f"{key}: gpu {g:.4f} cpu {c:.4f}")
    assert abs(g - c) <= 2e-3, key
if int(sys.argv[3]) >= 200:
    assert gpu["seg"]["miou"] > 0.2, "segmentation did not learn"
EOF

say "predict on $DEVICE"
mkdir -p "$OUT/images"
find datasets/synth/voc/JPEGImages -name '*.jpg' 2>/dev/null | head -4 | xargs -r cp -t "$OUT/images"
check run "$BIN" predict --run "$RUN" --device "$DEVICE" --out "$OUT/predicted" "$OUT"/images/*.jpg

# f32 peak in TFLOP/s of common GPUs (vendor figures, without sparsity), by name.
peak_tflops() {
    case "$1" in
        *H200*|*H100*SXM*|*"H100 80GB HBM3"*) echo 67 ;; *H100*PCIe*|*H100*) echo 51 ;;
        *A100*) echo 19.5 ;; *L40S*) echo 91.6 ;; *L40*) echo 90.5 ;; *L4*) echo 30.3 ;;
        *A10G*|*A10*) echo 31.2 ;; *V100*) echo 15.7 ;; *T4*) echo 8.1 ;;
        *"RTX 4090"*) echo 82.6 ;; *"RTX 4080"*) echo 48.7 ;; *"RTX 3090"*) echo 35.6 ;; *"RTX 3080"*) echo 29.8 ;;
        *) echo "" ;;
    esac
}
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
peak=$(peak_tflops "$gpu_name")
# bench train's images/s and TFLOP/s, with the fraction of the f32 peak.
bench() {
    local label=$1; shift
    run "$@" | tee "$OUT/bench.txt" >/dev/null
    local tflops
    tflops=$(awk '/^compute/ {for (i = 1; i <= NF; i++) if ($i == "TFLOP/s") print $(i - 1)}' "$OUT/bench.txt")
    local ips
    ips=$(awk '/^images\/s/ {print $2}' "$OUT/bench.txt")
    if [ -n "$peak" ] && [ -n "$tflops" ]; then
        say "$label: $ips images/s, $tflops TFLOP/s = $(python3 -c "print(f'{100 * $tflops / $peak:.1f}')")% of $gpu_name's f32 peak ($peak TFLOP/s)"
    else
        say "$label: $ips images/s, ${tflops:-?} TFLOP/s (no f32 peak known for '$gpu_name')"
    fi
}
quick=(bench train --preset quick --warmup 5 --steps 30)
voc_ade=(bench train --preset quick --set model.size=s --set data.image_size=512 --set data.batch_size=16 --warmup 3 --steps 15)

say "training speed (bench train) on $DEVICE: quick (96 px) and the voc-ade shape (model s, 512 px, batch 16)"
for shape in $SHAPES; do
    if [ "$shape" = quick ]; then args=("${quick[@]}"); else args=("${voc_ade[@]}"); fi
    # The kernel listing once, for the small shape (a baseline binary may not have it).
    if [ "$shape" = quick ]; then kernels=(--kernels); else kernels=(); fi
    bench "$DEVICE $shape" "$BIN" "${args[@]}" --device "$DEVICE" "${kernels[@]}"
    if [ -n "${BASELINE:-}" ]; then
        bench "baseline $DEVICE $shape" "$BASELINE" "${args[@]}" --device "$DEVICE"
    fi
done
say "the cpu, for scale"
bench "cpu quick" "$BIN" bench train --preset quick --device cpu --warmup 2 --steps 5

say "the same steps in PyTorch on this GPU"
if [ "$DEVICE" != "${DEVICE#cuda}" ] && python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    run python3 tools/bench_train_torch.py --device cuda --warmup 5 --steps 30
    run python3 tools/bench_train_torch.py --device cuda --size s --image-size 512 --batch 16 --warmup 3 --steps 15
else
    say "PyTorch: no CUDA-enabled torch on this machine (pip install torch where it can be reached), not measured"
fi

if [ "$DEVICE" = "${DEVICE#wgpu}" ] && ldconfig -p | grep -q libvulkan; then
    say "wgpu through the Vulkan driver"
    run "$BIN" bench train --preset quick --device wgpu --warmup 5 --steps 30
else
    say "wgpu: no Vulkan loader on this machine (skipped)"
fi

say "done: $([ $failed = 0 ] && echo all checks passed || echo some checks FAILED); log in $LOG"
exit $failed
