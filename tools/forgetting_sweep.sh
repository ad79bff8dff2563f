#!/usr/bin/env bash
# The forgetting sweeps of docs/benchmarks.md, then the table of
# tools/forgetting_table.py.
#
#   tools/forgetting_sweep.sh [OUT]             (default runs/sweep; release build, ~1.5 hours on 2 cores)
#   tools/forgetting_sweep.sh allinone [OUT]    (default runs/sweep-allinone)
#   tools/forgetting_sweep.sh gradients [OUT]   (default runs/sweep-gradients; ~15 min)
#
# Two tasks: every strategy preset on the embedded default (synthetic twin
# datasets, 500 steps, switch at 250), the sequential family in both orders,
# evaluated every 50 steps (so the switch is evaluated).
# allinone: the three synthetic sets, 600 steps evaluated every 50: naive
# three-phase sequential (detection, segmentation, classification, switching
# at 200 and 400, lr ×1) against replay, pseudo, alternate, joint (summed and
# pcgrad), and the
# single-task references (a run of that task alone, `data.tasks`: the same
# steps, the one head).
# gradients: on the embedded default, `joint` with its task gradients summed
# and by pcgrad, `alternate`, and the single-task references.
#
# A run already complete in OUT is kept, so a stopped sweep continues.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${TWINHEAD:-target/release/twinhead}"
[ -x "$bin" ] || cargo build --release --locked

# Trains run `name` from `preset` into $out (set before the call), evaluated every 50 steps.
train() { # name, preset, extra --set arguments
    local name=$1 preset=$2
    shift 2
    if grep -q '"event":"finished".*"completed"' "$out/$name/metrics.jsonl" 2>/dev/null; then
        echo "$name: done before"
        return
    fi
    echo "$name: training ($(date +%H:%M:%S))"
    "$bin" train --preset "$preset" --out "$out/$name" --set eval.every=50 "$@" > "$out/$name.log" 2>&1 \
        || { echo "$name failed: see $out/$name.log"; exit 1; }
}
if [ "${1:-}" = gradients ]; then
    out="${2:-runs/sweep-gradients}"
    mkdir -p "$out"
    train joint joint
    train joint-pcgrad joint --set strategy.gradients=pcgrad
    train alternate alternate
    train only-det joint --set data.tasks=det
    train only-seg joint --set data.tasks=seg
    python3 tools/forgetting_table.py "$out"
    exit
fi

if [ "${1:-}" = allinone ]; then
    out="${2:-runs/sweep-allinone}"
    mkdir -p "$out/configs"
    three() { # name, the tasks trained (all: every task), then the [strategy] table's lines
        local name=$1 tasks=$2
        shift 2
        # ONLY="joint joint-pcgrad" trains those runs alone.
        [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $name "* ]] || return 0
        printf 'base = "allinone"\nname = "%s"\nsteps = 600\n\n[eval]\nevery = 50\n\n' "$name" > "$out/configs/$name.toml"
        [ "$tasks" = all ] || printf '[data]\ntasks = "%s"\n\n' "$tasks" >> "$out/configs/$name.toml"
        printf '[strategy]\n' >> "$out/configs/$name.toml"
        printf '%s\n' "$@" >> "$out/configs/$name.toml"
        if grep -q '"event":"finished".*"completed"' "$out/$name/metrics.jsonl" 2>/dev/null; then
            echo "$name: done before"
            return
        fi
        echo "$name: training ($(date +%H:%M:%S))"
        "$bin" train --preset "$out/configs/$name.toml" --out "$out/$name" > "$out/$name.log" 2>&1 \
            || { echo "$name failed: see $out/$name.log"; exit 1; }
    }
    sequence=('order = ["det", "seg", "cls"]' 'switch_steps = [200, 400]' 'lr_factor = 1.0')
    three alternate all 'kind = "alternate"'
    three naive all 'kind = "sequential"' "${sequence[@]}"
    three joint all 'kind = "joint"'
    three joint-pcgrad all 'kind = "joint"' 'gradients = "pcgrad"'
    three replay all 'kind = "replay"' "${sequence[@]}"
    three pseudo all 'kind = "pseudo"' "${sequence[@]}"
    three only-det det 'kind = "joint"'
    three only-seg seg 'kind = "joint"'
    three only-cls cls 'kind = "joint"'
    python3 tools/forgetting_table.py "$out"
    exit
fi

out="${1:-runs/sweep}"
# The mitigations the issue measures first, then the rest.
first_family=(naive replay pseudo)
first_others=(alternate alternate-pseudo)
then_family=(sequential freeze lwf ewc)
then_others=(joint joint-pcgrad joint-uncertainty)
mkdir -p "$out"
for group in first then; do
    family="${group}_family[@]"
    for preset in "${!family}"; do
        train "$preset-det-first" "$preset" --set strategy.first=det
        train "$preset-seg-first" "$preset" --set strategy.first=seg
    done
    others="${group}_others[@]"
    for preset in "${!others}"; do
        train "$preset" "$preset"
    done
    if [ "$group" = first ]; then
        # alternate + specialists' pseudo-labels (MuST): the naive runs'
        # switch checkpoints, 250 steps of one task each, label the other
        # dataset's images from the first step.
        train alternate-specialists alternate \
            --set "strategy.pseudo_labels.det_teacher=$out/naive-det-first/checkpoints/switch" \
            --set "strategy.pseudo_labels.seg_teacher=$out/naive-seg-first/checkpoints/switch" \
            --set strategy.pseudo_labels.weight=0.3
    fi
done
python3 tools/forgetting_table.py "$out"
