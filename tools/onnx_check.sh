#!/usr/bin/env bash
# ONNX export checked in ONNX Runtime: trains a short `quick` run, a
# ResNet-18 run, a three-task `allinone` run (classification head) and two
# single-task runs (segmentation, classification) on the synthetic data,
# compresses the first (prune:0.3+lowrank:0.9, and int8), exports the seven
# networks with `export onnx --decode --batch dynamic --reference`, and runs
# tools/onnx_check.py on them (onnx + onnxruntime from PyPI in a venv of its
# own). tools/test.sh runs it after the Rust tests.
#
# Usage: tools/onnx_check.sh [TWINHEAD_BINARY] [WORK_DIR]
#   ONNX_VENV=DIR reuses a venv holding onnx, onnxruntime and numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-${CARGO_TARGET_DIR:-target}/debug/twinhead}"
work="${2:-$(mktemp -d)}"
# A work folder of its own (runs, exports and the venv) goes when the check ends.
[ -n "${2:-}" ] || trap 'rm -rf "$work"' EXIT
venv="${ONNX_VENV:-$work/venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check onnx onnxruntime numpy
fi

# Short runs: the check compares two runtimes on one network, not how well it learned.
short=(--set steps=6 --set checkpoint.every=6 --set eval.every=6 --set eval.det_images=8 --set eval.seg_images=8
    --set data.batch_size=4 --set data.synthetic.det_images=24 --set data.synthetic.seg_images=24
    --set "data.voc=$work/synth/voc" --set "data.ade=$work/synth/ade")
"$bin" train --preset quick "${short[@]}" --out "$work/quick" > /dev/null
"$bin" train --preset quick "${short[@]}" --set model.backbone=resnet18 --out "$work/resnet" > /dev/null
"$bin" train --preset allinone "${short[@]}" --set data.synthetic.cls_images=48 --set eval.cls_images=8 \
    --set "data.cls=$work/synth/cls" --out "$work/allinone" > /dev/null
# Single-task networks: segmentation's head alone, and classification's (no neck in the graph).
"$bin" train --preset quick "${short[@]}" --set data.tasks=seg --out "$work/seg-only" > /dev/null
"$bin" train --preset allinone "${short[@]}" --set data.synthetic.cls_images=48 --set eval.cls_images=8 \
    --set "data.cls=$work/synth/cls" --set data.tasks=cls --out "$work/cls-only" > /dev/null
"$bin" compress --run "$work/quick" --method prune:0.3+lowrank:0.9 --finetune-steps 2 > /dev/null
"$bin" compress --run "$work/quick" --method int8 > /dev/null

cases=()
export_case() { # label run checkpoint [vs]
    local label="$1" run="$2" checkpoint="$3" vs="${4:-}"
    "$bin" export onnx --run "$run" --checkpoint "$checkpoint" --decode --batch dynamic \
        --out "$work/$label.onnx" --reference "$work/$label.reference" > /dev/null
    local extra=""
    [ -n "$vs" ] && extra=", \"vs\": \"$vs\""
    cases+=("{\"label\": \"$label\", \"onnx\": \"$work/$label.onnx\", \"reference\": \"$work/$label.reference\", \"run\": \"$run\", \"checkpoint\": \"$checkpoint\"$extra}")
}
export_case quick "$work/quick" last
export_case prune-lowrank "$work/quick" compressed/prune:0.3+lowrank:0.9
export_case resnet18 "$work/resnet" last
export_case int8 "$work/quick" compressed/int8 quick
export_case allinone "$work/allinone" last
export_case seg-only "$work/seg-only" last
export_case cls-only "$work/cls-only" last
(IFS=,; echo "[${cases[*]}]") > "$work/manifest.json"
"$venv/bin/python" tools/onnx_check.py "$work/manifest.json" --bin "$bin"
