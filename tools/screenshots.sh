#!/usr/bin/env bash
# Retakes every screenshot the README and docs/ show, in the real workbench
# window under Xvfb (Mesa's software OpenGL).
#
#   bash tools/screenshots.sh [OUT_DIR]      (default docs/screenshots)
#
# 1. Trains, headless, the runs the screenshots show (a short strategy sweep
#    on the embedded data, a compressed run, two three-task runs) in a scratch folder
#    (target/screenshots/, kept: a finished run is not trained again).
# 2. Opens the window there with a fresh HOME (as on a first launch) and plays
#    tools/screenshots.demo: widgets are found by their labels in the AccessKit
#    tree, never by position, and each screenshot is the window's own frame.
#    A step whose widget does not appear fails the script, naming its line.
#
# Needs Debian's xvfb and libgl1-mesa-dri. TWINHEAD_BIN picks the binary
# (default: the release build, built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=$(realpath -m "${1:-docs/screenshots}")
bin=${TWINHEAD_BIN:-target/release/twinhead}
[ -x "$bin" ] || cargo build --release --locked
bin=$(realpath "$bin")
work=$repo/target/screenshots
mkdir -p "$work" "$out"
cd "$work"

# A run in the sweep: 300 steps, evaluated every 50, the sequential family switching at 150.
train() {
    local name=$1; shift
    if grep -q '"reason":"completed"' "runs/$name/metrics.jsonl" 2>/dev/null; then return; fi
    rm -rf "runs/$name"
    echo "training runs/$name"
    "$bin" train --out "runs/$name" --set steps=300 --set eval.every=50 --set checkpoint.every=50 "$@" 2>&1 | tail -1
}
for strategy in naive sequential replay pseudo; do
    train "$strategy" --preset "$strategy" --set strategy.switch_step=150
done
for strategy in alternate joint; do
    train "$strategy" --preset "$strategy"
done
# Three tasks (allinone): a 400-step joint run, and a 180-step sequence over
# detection, segmentation and classification (60 steps each, lr ×1).
three() { # name, steps, evaluation period, the [strategy] table's lines
    local name=$1 steps=$2 every=$3
    shift 3
    if grep -q '"reason":"completed"' "runs/$name/metrics.jsonl" 2>/dev/null; then return; fi
    rm -rf "runs/$name"
    echo "training runs/$name"
    printf 'base = "allinone"\nname = "%s"\nsteps = %s\n\n[eval]\nevery = %s\n\n[strategy]\n' "$name" "$steps" "$every" > "$name.toml"
    printf '%s\n' "$@" >> "$name.toml"
    "$bin" train --preset "$name.toml" --out "runs/$name" 2>&1 | tail -1
}
three three-joint 400 50 'kind = "joint"'
three three-seq 180 30 'kind = "sequential"' 'order = ["det", "seg", "cls"]' 'switch_steps = [60, 120]' 'lr_factor = 1.0'
# The compressed models of the alternate run, for the Compress tab.
if [ ! -f runs/alternate/compressed/report.json ]; then
    "$bin" compress --run runs/alternate --method int8
    "$bin" compress --run runs/alternate --method prune:0.3 --finetune-steps 100
    "$bin" compress --run runs/alternate --method prune:0.5+lowrank:0.9+int8 --finetune-steps 100
fi

# The window trains its own quick run (Start): a fresh one each time.
rm -rf runs/quick runs/quick-*

# Runs trained elsewhere (docs/remote.md): a `twinhead train` in another
# process beside the window, and a `twinhead serve` with a finished run and a
# live one, which the demo connects to. The two live runs are paused through
# their control files until the demo resumes them from the window, so they
# leave the CPU to the window's own run meanwhile.
rm -rf runs/cli-quick server-runs/live
pause_when_started() { # run folder: pause it once it has taken a step
    until grep -q '"event":"step"' "$1/metrics.jsonl" 2>/dev/null; do sleep 1; done
    echo '{"id":"screenshots-pause","control":"Pause"}' >> "$1/control.jsonl"
}
"$bin" train --out runs/cli-quick --set steps=100000 --set eval.every=100 >/dev/null 2>&1 & cli=$!
pause_when_started runs/cli-quick
if ! grep -q '"reason":"completed"' server-runs/box-quick/metrics.jsonl 2>/dev/null; then
    rm -rf server-runs/box-quick
    "$bin" train --out server-runs/box-quick --set steps=200 --set eval.every=50 2>&1 | tail -1
fi
"$bin" serve --listen 127.0.0.1:7979 --runs server-runs --datasets . 2>"$work/serve.log" & server=$!
sleep 2
sed -e 's/^name = .*/name = "live"/' -e 's/^steps = .*/steps = 100000/' runs/alternate/config.toml \
    | curl -sf --data-binary @- -H "Content-Type: application/toml" http://127.0.0.1:7979/api/v1/runs
echo
pause_when_started server-runs/live

display=:77
Xvfb "$display" -screen 0 1600x1000x24 -nolisten tcp & xvfb=$!
home=$(mktemp -d)
trap 'kill $xvfb $cli $server 2>/dev/null; rm -rf "$home"' EXIT
sleep 1
echo "playing tools/screenshots.demo (log: $work/workbench.log)"
HOME=$home DISPLAY=$display LIBGL_ALWAYS_SOFTWARE=1 \
    "$bin" --demo-script "$repo/tools/screenshots.demo" --shots "$out" >"$work/workbench.log" 2>&1 \
    || { tail -5 "$work/workbench.log"; exit 2; }
grep -E "saved|UI layout time" "$work/workbench.log"
