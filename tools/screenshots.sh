#!/usr/bin/env bash
# Opens the real workbench window under Xvfb (Mesa's software OpenGL), clicks
# through its panels with xdotool and saves a screenshot of each, plus the
# window's log (which ends with the frame-time figures).
#
#   bash tools/screenshots.sh [OUT_DIR]      (default docs/screenshots)
#
# Needs Debian's xvfb, xdotool, imagemagick, libgl1-mesa-dri. Uses a fresh
# HOME, so the window starts as on a first launch; runs go to ./runs as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/screenshots}
window_log="$out/workbench.log"
source tools/window.sh :77
# No window manager under Xvfb: give the window the keyboard focus first.
key() { xdotool windowfocus --sync "$win" key --clearmodifiers "$1"; }
# Positions in the 1600×1000 window (see the first screenshot).

shot 1-first-launch 6
tab() { case $1 in setup) click 127 12;; curves) click 180 12;; compare) click 242 12;; inspect) click 305 12;; preview) click 365 12;; esac; }
tab setup; shot 2-setup 1
click "${START_X:-325}" "${START_Y:-488}"            # Start (queues the quick run, shows Curves)
shot 3-curves-training "${TRAIN_SECONDS:-150}"
click 22 233; click 22 330                            # also check the next two runs in the list, to compare
shot 3-curves-compared 2
click 151 77                                          # Checkpoint now (the focused run), for Inspect
tab compare; shot 4-compare 1
tab inspect; shot 5-inspect 20
tab preview; shot 6-preview 2
tab curves; shot 7-curves 2
# Ctrl+Q closes the window like its close button: the run stops cleanly, keeping its last checkpoint.
key ctrl+q
wait "$app" || true
app=
tail -3 "$out/workbench.log"
