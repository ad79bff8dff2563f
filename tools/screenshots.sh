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
bin=${TWINHEAD_BIN:-target/release/twinhead}
[ -x "$bin" ] || cargo build --release --locked
mkdir -p "$out"
home=$(mktemp -d)
display=:77
Xvfb $display -screen 0 1600x1000x24 -nolisten tcp & xvfb=$!
app=
cleanup() { [ -n "$app" ] && kill "$app" 2>/dev/null; kill "$xvfb" 2>/dev/null; rm -rf "$home"; }
trap cleanup EXIT
export DISPLAY=$display
sleep 1
HOME=$home LIBGL_ALWAYS_SOFTWARE=1 "$bin" > "$out/workbench.log" 2>&1 & app=$!
for _ in $(seq 60); do xdotool search --name '^Twinhead$' > /dev/null 2>&1 && break; sleep 1; done
win=$(xdotool search --name '^Twinhead$' | head -1)
xdotool windowmove "$win" 0 0 windowsize "$win" 1600 1000
shot() { sleep "${2:-2}"; import -window root "$out/$1.png"; echo "saved $out/$1.png"; }
# No window manager under Xvfb: give the window the keyboard focus first.
key() { xdotool windowfocus --sync "$win" key --clearmodifiers "$1"; }
# Positions in the 1600×1000 window (see the first screenshot).
click() { xdotool mousemove --sync "$1" "$2" click 1; }

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
