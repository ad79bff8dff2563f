#!/usr/bin/env python3
"""The forgetting table of a sweep folder (tools/forgetting_sweep.sh): per run,
the final mAP50 and mIoU and, for the sequential family, the first task's
value at the switch, at the end, and the drop between them. For three-task
runs (`forgetting_sweep.sh allinone`): the final mAP50, mIoU, top-1 and
track score (their mean) and, for a sequence, how much of each earlier task
is forgotten: its value when its phase ended minus its value at the end.
The last column is the median time of a training step, in milliseconds
(each step's images over its images per second).

    python3 tools/forgetting_table.py runs/sweep [--markdown]

Reads each run's metrics.jsonl and its batch size from config.toml.
"""
import json
import statistics
import sys
import tomllib
from pathlib import Path


def read(run):
    evals, phases, step_ms = [], [], []
    batch = tomllib.loads((run / "config.toml").read_text())["data"]["batch_size"]
    for line in (run / "metrics.jsonl").open():
        event = json.loads(line)
        if event["event"] == "eval":
            evals.append(event)
        elif event["event"] == "phase" and " " in event["description"]:
            phases.append((event["phase"], event["step"], event["description"].split()[1]))
        elif event["event"] == "step" and event["images_per_sec"] > 0:
            tasks = 2 if event["tasks"] == "both" else event["tasks"].count("+") + 1
            step_ms.append(1000 * batch * tasks / event["images_per_sec"])
    return evals, phases, step_ms


def milliseconds(step_ms):
    return f"{statistics.median(step_ms):.0f}" if step_ms else "–"


METRIC = {"detection": "map50", "segmentation": "miou", "classification": "top1"}


def ended(phases):
    """(task, the step its phase ended) of each phase followed by another."""
    by_index = dict((index, (step, task)) for index, step, task in phases)
    return [(by_index[k][1], by_index[k + 1][0]) for k in sorted(by_index) if k + 1 in by_index]


# The sweep's order: the sequential family (each in both orders), then the rest.
PRESETS = ["naive", "sequential", "freeze", "lwf", "ewc", "replay", "pseudo",
           "alternate", "alternate-pseudo", "joint", "joint-pcgrad", "joint-uncertainty", "only-det", "only-seg", "only-cls"]


def order(run):
    name = run.name
    for suffix in ("-det-first", "-seg-first"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return (PRESETS.index(name) if name in PRESETS else len(PRESETS), run.name)


def shown(record, key):
    """A metric as the table prints it; "–" for a task the run does not train."""
    value = record.get(key)
    return "–" if value is None else f"{value:.3f}"


def two_task_row(run, evals, phases, step_ms):
    last = evals[-1]
    row = [run.name, shown(last, "map50"), shown(last, "miou"), "", "", "", "", milliseconds(step_ms)]
    for task, switch in ended(phases)[:1]:
        key = METRIC.get(task)
        at_switch = next((e[key] for e in evals if e["step"] == switch), None) if key else None
        if at_switch is not None:
            row[3:7] = [task, f"{at_switch:.3f}", f"{last[key]:.3f}", f"{at_switch - last[key]:.3f}"]
    return row


def three_task_row(run, evals, phases, step_ms):
    last = evals[-1]
    metrics = [last.get(key) for key in ("map50", "miou", "top1")]
    score = f"{sum(metrics) / 3:.3f}" if None not in metrics else "–"
    row = [run.name, shown(last, "map50"), shown(last, "miou"), shown(last, "top1"), score, "", "", "", milliseconds(step_ms)]
    for task, switch in ended(phases):
        key = METRIC[task]
        at_switch = next((e[key] for e in evals if e["step"] == switch), None)
        if at_switch is not None:
            row[5 + list(METRIC).index(task)] = f"{at_switch - last[key]:.3f} ({at_switch:.3f} → {last[key]:.3f})"
    return row


def main():
    folder = Path(sys.argv[1])
    markdown = "--markdown" in sys.argv
    runs = []
    for run in sorted((p for p in folder.iterdir() if (p / "metrics.jsonl").is_file()), key=order):
        evals, phases, step_ms = read(run)
        if evals:
            runs.append((run, evals, phases, step_ms))
    three = any(e.get("top1") is not None for _, evals, _, _ in runs for e in evals)
    if three:
        header = ["run", "mAP50", "mIoU", "top-1", "track score", "detection forgotten", "segmentation forgotten", "classification forgotten", "ms/step"]
        rows = [three_task_row(*r) for r in runs]
    else:
        header = ["run", "mAP50", "mIoU", "first task", "at switch", "at end", "forgotten", "ms/step"]
        rows = [two_task_row(*r) for r in runs]
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
