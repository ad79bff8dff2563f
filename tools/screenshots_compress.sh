#!/usr/bin/env bash
# Screenshot of the Compress tab in the real window under Xvfb, for a run
# compressed with tools/compress_table.sh that is the first in the list:
#
#   bash tools/compress_table.sh runs/NAME
#   bash tools/screenshots_compress.sh [OUT_DIR]      (default assets/screenshots)
#
# Needs what tools/screenshots.sh needs. Positions are for the 1600×1000 window.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-assets/screenshots}
source tools/window.sh :78
sleep 5
click 72 76; click 433 12                             # focus the first run, Compress
xdotool mousemove 1500 950
shot compress 3
