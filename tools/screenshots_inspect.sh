#!/usr/bin/env bash
# Screenshots of the inspection views (dataset statistics, error view, PR
# curve, both confusion matrices, timeline) of a trained run, in the real
# window under Xvfb. The run should be the first in the list (the newest):
#
#   twinhead train --preset sequential --out runs/shots-seq
#   bash tools/screenshots_inspect.sh [OUT_DIR]      (default assets/screenshots)
#
# Needs what tools/screenshots.sh needs (xvfb, xdotool, imagemagick,
# libgl1-mesa-dri). Positions are for the 1600×1000 window.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-assets/screenshots}
source tools/window.sh :78
sleep 4

click 892 115; sleep 4; click 395 155                 # Check VOC, open its statistics
shot dataset-stats 2
click 72 76; click 305 12                             # focus the first run, Inspect
sleep 8
click 314 198                                         # Show errors
for _ in 1 2 3; do click 481 260; done                # Next, to image 4
xdotool mousemove 1200 600
shot inspect-errors 2
click 443 66                                          # Metrics (full validation splits)
xdotool mousemove 1500 900
shot inspect-pr 25
click 326 479                                         # Detection confusion matrix
shot inspect-det-confusion 2
click 326 479; sleep 1; click 326 114; sleep 1        # close it and the PR curve
click 326 156                                         # open the pixel matrix
shot inspect-pixel-confusion 2
click 573 66; sleep 5; click 589 152                  # Timeline: the newest step, fifth image
shot inspect-timeline 2
for _ in 1 2 3; do click 460 96; done                 # three steps back: before the switch
shot inspect-timeline-before 2
