#!/usr/bin/env bash
# What following a run costs the run: `twinhead serve` trains the same short
# run (the quick preset, 200 steps, evaluated only at the end) PAIRS times
# with a client following its events over HTTP (`curl -N …/events?follow=true`,
# as the workbench follows a server's run) and PAIRS times without, the two
# interleaved, and prints each run's median images/s and their ratio.
#
#   bash tools/follow_overhead.sh [PAIRS] [BIN]      (default 3, target/release/twinhead)
set -euo pipefail
pairs=${1:-3}
bin=$(realpath "${2:-target/release/twinhead}")
preset=$(realpath "$(dirname "$0")/../presets/quick.toml")
work=$(mktemp -d)
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --runs runs --datasets . 2>serve.log & server=$!
api=http://127.0.0.1:$port/api/v1
for _ in $(seq 50); do curl -sf "$api/version" >/dev/null && break; sleep 0.2; done

run() { # name, followed (yes/no): prints the run's median images/s
    local name=$1 followed=$2
    sed -e "s/^name = .*/name = \"$name\"/" -e 's/^steps = .*/steps = 200/' \
        -e '/^\[eval\]/,/^\[/ s/^every = .*/every = 1000/' "$preset" > "$name.toml"
    curl -sf --data-binary @"$name.toml" -H "Content-Type: application/toml" "$api/runs" >/dev/null
    if [ "$followed" = yes ]; then
        curl -sN "$api/runs/$name/events?follow=true" >/dev/null & follower=$!
    fi
    until grep -q '"finished"' "runs/$name/metrics.jsonl" 2>/dev/null; do sleep 1; done
    [ "$followed" = yes ] && { kill $follower 2>/dev/null || true; }
    python3 - "runs/$name/metrics.jsonl" <<'PY'
import json, statistics, sys
rates = [e["images_per_sec"] for e in map(json.loads, open(sys.argv[1])) if e.get("event") == "step" and e["step"] > 20]
print(f"{statistics.median(rates):.1f}")
PY
}

for i in $(seq "$pairs"); do
    with=$(run "with-$i" yes)
    without=$(run "without-$i" no)
    python3 -c "print(f'pair $i: followed $with images/s, not followed $without images/s, ratio {float(\"$with\") / float(\"$without\"):.3f}')"
done
