#!/usr/bin/env python3
"""The forgetting table of a sweep folder (tools/forgetting_sweep.sh): per run,
the final mAP50 and mIoU and, for the sequential family, the first task's
value at the switch, at the end, and the drop between them.

    python3 tools/forgetting_table.py runs/sweep [--markdown]

Reads each run's metrics.jsonl (evaluation and phase events) only.
"""
import json
import sys
from pathlib import Path


def read(run):
    evals, switch, first = [], None, None
    for line in (run / "metrics.jsonl").open():
        event = json.loads(line)
        if event["event"] == "eval":
            evals.append(event)
        elif event["event"] == "phase" and event["phase"] == 1:
            switch = event["step"]
        elif event["event"] == "phase" and event["phase"] == 0 and " " in event["description"]:
            first = event["description"].split()[1]
    return evals, switch, first


# The sweep's order: the sequential family (each in both orders), then the rest.
PRESETS = ["naive", "sequential", "freeze", "lwf", "ewc", "replay", "pseudo",
           "alternate", "alternate-pseudo", "joint", "joint-uncertainty"]


def order(run):
    name = run.name
    for suffix in ("-det-first", "-seg-first"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return (PRESETS.index(name) if name in PRESETS else len(PRESETS), run.name)


def main():
    folder = Path(sys.argv[1])
    markdown = "--markdown" in sys.argv
    header = ["run", "mAP50", "mIoU", "first task", "at switch", "at end", "forgotten"]
    rows = []
    for run in sorted((p for p in folder.iterdir() if (p / "metrics.jsonl").is_file()), key=order):
        evals, switch, first = read(run)
        if not evals:
            continue
        last = evals[-1]
        row = [run.name, f"{last['map50']:.3f}", f"{last['miou']:.3f}", "", "", "", ""]
        if switch is not None and first in ("detection", "segmentation"):
            key = "map50" if first == "detection" else "miou"
            at_switch = next((e[key] for e in evals if e["step"] == switch), None)
            if at_switch is not None:
                row[3:] = [first, f"{at_switch:.3f}", f"{last[key]:.3f}", f"{at_switch - last[key]:.3f}"]
        rows.append(row)
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
        for row in [header] + rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))


if __name__ == "__main__":
    main()
