#!/usr/bin/env bash
# Ultralytics trains on Twinhead's YOLO export, from a folder other than the
# dataset's (tools/ultralytics_check.py): `data synth --det-format yolo`
# writes a small set, and Ultralytics (from PyPI, in a venv of its own; about
# 6 GB with torch) trains one epoch on its data.yaml. tools/test.sh runs it
# after the ONNX check.
#
# Usage: tools/ultralytics_check.sh [TWINHEAD_BINARY] [WORK_DIR]
#   ULTRALYTICS_VENV=DIR reuses (and keeps) a venv holding ultralytics.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
bin="$(realpath "${1:-${CARGO_TARGET_DIR:-target}/debug/twinhead}")"
work="$(realpath "${2:-$(mktemp -d)}")"
venv="${ULTRALYTICS_VENV:-$work/venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import ultralytics" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --no-cache-dir --disable-pip-version-check ultralytics
fi
"$bin" data synth --out "$work/synth" --det-images 16 --seg-images 0 --cls-images 0 --size 64 --det-format yolo > /dev/null
mkdir -p "$work/elsewhere"
(cd "$work/elsewhere" && YOLO_OFFLINE=1 "$venv/bin/python" "$repo/tools/ultralytics_check.py" "$work/synth")
# A venv of its own is gigabytes: gone with the check unless it was given.
[ -n "${ULTRALYTICS_VENV:-}" ] || rm -rf "$venv"
