"""A sweep's aggregate: a CSV (one row per run and task), a markdown table, a figure."""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Any

from .reference import published
from .runner import Outcome

__all__ = ["main_value", "rows", "write_tables"]

_FIRST = ["model", "pretrained", "dataset", "task", "main_metric", "value", "published", "seconds", "error"]


def main_value(result: dict[str, Any]) -> tuple[str, float | None]:
    """``(metric name, value)`` a run is compared by: the dataset's main metric (results.json's
    ``main_metric``; the probe's own ``lp_`` form), else acc1, or the mean of the retrieval recalls@1."""
    metrics: dict[str, float] = result.get("metrics", {})
    if result.get("task") == "zeroshot_retrieval":
        pair = [metrics.get("image_retrieval_recall@1"), metrics.get("text_retrieval_recall@1")]
        if None in pair:
            return "mean_recall@1", None
        return "mean_recall@1", (float(pair[0]) + float(pair[1])) / 2  # type: ignore[arg-type]
    name = str(result.get("main_metric") or "acc1")
    if result.get("task") == "linear_probe" and not name.startswith("lp_"):
        name = f"lp_{name}"
    value = metrics.get(name)
    return name, None if value is None else float(value)


def rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """One row per run and task (a failed run: one row with its error)."""
    out: list[dict[str, Any]] = []
    for o in outcomes:
        base = {"model": o.run.model, "dataset": o.run.dataset}
        if o.error is not None:
            out.append(
                {**base, "task": "+".join(o.run.run_tasks), "error": o.error, "seconds": round(o.seconds, 3)}
            )
            continue
        for task, result in o.results.items():
            name, value = main_value(result)
            reference = (
                published(o.run.model, o.run.dataset) if result.get("pretrained") == "openai" else None
            )
            seconds = result.get("seconds", round(o.seconds, 3))
            row = {**base, "pretrained": result.get("pretrained"), "task": task, "main_metric": name}
            row.update(value=value, published=reference, seconds=seconds, error="")
            row.update(result.get("metrics", {}))
            out.append(row)
    return out


def _percent(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def markdown(table: list[dict[str, Any]], average_name: str) -> str:
    """Models x datasets of each task's main metric in %, ``ours (published)``, and their average."""
    lines: list[str] = []
    for task in dict.fromkeys(r["task"] for r in table):
        part = [r for r in table if r["task"] == task]
        datasets = list(dict.fromkeys(r["dataset"] for r in part))
        models = list(dict.fromkeys(r["model"] for r in part))
        lines += [f"### {task}", "", "| model | " + " | ".join(datasets) + f" | {average_name} |"]
        lines.append("|---" * (len(datasets) + 2) + "|")
        for model in models:
            cells, values = [], []
            for dataset in datasets:
                row = next((r for r in part if r["model"] == model and r["dataset"] == dataset), None)
                if row is None:
                    cells.append("")
                elif row.get("error"):
                    cells.append("error: " + str(row["error"]).replace("|", "/")[:120])
                else:
                    values.append(row["value"])
                    ref = f" ({_percent(row['published'])})" if row.get("published") is not None else ""
                    cells.append(_percent(row["value"]) + ref)
            ok = [v for v in values if v is not None]
            mean = sum(ok) / len(ok) if ok else None
            count = f" ({len(ok)} of {len(datasets)})" if len(ok) != len(datasets) else ""
            lines.append(f"| {model} | " + " | ".join(cells) + f" | {_percent(mean)}{count} |")
        lines.append("")
    lines.append("Main metric in %; published numbers (OpenAI's weights, open_clip's table) in parentheses.")
    return "\n".join(lines) + "\n"


def _figure(table: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in table if not r.get("error") and r.get("value") is not None]
    if not ok:
        return
    labels = list(dict.fromkeys(f"{r['dataset']}\n{r['task']}" for r in ok))
    models = list(dict.fromkeys(r["model"] for r in ok))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(labels) * max(1, len(models)) / 2), 4.0))
    for m, model in enumerate(models):
        xs, ys = [], []
        for i, label in enumerate(labels):
            row = next(
                (r for r in ok if r["model"] == model and f"{r['dataset']}\n{r['task']}" == label), None
            )
            if row is not None:
                xs.append(i + m * width)
                ys.append(100 * row["value"])
        ax.bar(xs, ys, width=width, label=model)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels, fontsize=7)
    ax.set_ylabel("main metric (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_tables(outcomes: list[Outcome], output: str, average_name: str = "average") -> dict[str, str]:
    """Write ``suite.csv``, ``suite.md`` and ``suite.png`` into ``output``; return their paths."""
    table = rows(outcomes)
    keys = _FIRST + sorted({k for r in table for k in r} - set(_FIRST))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    paths = {"csv": os.path.join(output, "suite.csv"), "markdown": os.path.join(output, "suite.md")}
    for kind, content in (("csv", text.getvalue()), ("markdown", markdown(table, average_name))):
        with open(paths[kind], "w", encoding="utf-8") as f:
            f.write(content)
    paths["figure"] = os.path.join(output, "suite.png")
    _figure(table, paths["figure"])
    return paths
