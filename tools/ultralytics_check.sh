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
# A work folder of its own (with the venv, gigabytes) goes when the check ends,
# also when it fails; a venv given in ULTRALYTICS_VENV is kept.
[ -n "${2:-}" ] || trap 'rm -rf "$work"' EXIT
venv="${ULTRALYTICS_VENV:-$work/venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import ultralytics" 2>/dev/null; then
    # torch with its CUDA libraries: about 6 GB installed, and pip unpacks beside it.
    need_kb=$((8 * 1024 * 1024))
    mkdir -p "$(dirname "$venv")"
    free_kb="$(df -Pk "$(dirname "$venv")" | awk 'NR == 2 { print $4 }')"
    if [ "$free_kb" -lt "$need_kb" ]; then
        echo "tools/ultralytics_check.sh: installing ultralytics (with torch) in $venv needs about 8 GB; $((free_kb / 1024)) MB free there" >&2
        exit 2
    fi
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --no-cache-dir --disable-pip-version-check ultralytics
fi
"$bin" data synth --out "$work/synth" --det-images 16 --seg-images 0 --cls-images 0 --size 64 --det-format yolo > /dev/null
mkdir -p "$work/elsewhere"
(cd "$work/elsewhere" && YOLO_OFFLINE=1 "$venv/bin/python" "$repo/tools/ultralytics_check.py" "$work/synth")
[ -n "${ULTRALYTICS_VENV:-}" ] || [ -z "${2:-}" ] || rm -rf "$venv"
