"""docs/pareto.png: test metric vs p50 latency, one panel per task, one point per row."""
from __future__ import annotations

import os
from typing import Dict, List, Sequence

from benchmarks.profile import Profile
from benchmarks.rows import METRIC_LABEL


def plot_pareto(rows: List[Dict], tasks: Sequence[str], path: str, p: Profile) -> bool:
    """Metric vs p50 latency, one panel per task, one point per row (colour = variant, label = model)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter, ScalarFormatter
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(tasks), figsize=(7 * len(tasks), 5.5), squeeze=False)
    colors = {"teacher": "black", "no_kd": "tab:gray", "task_kd": "tab:blue", "two_stage_kd": "tab:green",
              "int8": "tab:purple", "tfidf_lr": "tab:orange"}
    for ax, t in zip(axes[0], tasks):
        pts = [r for r in rows if r["task"] == t and r["metric"] is not None and r["latency_ms_p50"]]
        missing = [r for r in rows if r["task"] == t and r["metric"] is not None and not r["latency_ms_p50"]]
        labelled, in_legend = {}, set()
        for r in pts:
            c = colors.get(r["variant"], "tab:red")
            y = 100 * r["metric"]
            err = 100 * r["metric_std"] if r.get("metric_std") else None
            ax.errorbar(r["latency_ms_p50"], y, yerr=err, fmt="o", color=c, capsize=3, markersize=6,
                        label=r["variant"] if r["variant"] not in in_legend else None)
            in_legend.add(r["variant"])
            short = r["model"] if r["variant"] == "tfidf_lr" else r["model"].replace("student ", "").split(" (")[0]
            short = short.replace("teacher MiniLM-L6-H384", "teacher")
            short = "teacher windows" if r["variant"] == "teacher_windows" else short.split(",")[0]
            if r["variant"] == "int8":
                short += " INT8"
            if r.get("latency_seq_len") and r["latency_seq_len"] != 128:
                short += f" @{r['latency_seq_len']} tok"
            if r.get("latency_per") == "review":   # whole-document rows: per real review, tokenization included
                short += " /review"
            key = (short, round(r["latency_ms_p50"], 3))
            if key not in labelled:   # one label per point group (variants of a model share the latency)
                top = max(100 * q["metric"] for q in pts if round(q["latency_ms_p50"], 3) == key[1])
                labelled[key] = (r["latency_ms_p50"], top)
        for short, (x, y) in ((k[0], xy) for k, xy in labelled.items()):
            # a label runs to the right of its point; if another labelled point sits just to the right at about
            # the same height, the text would cross it, so put this label on the left instead
            crowded = any(x < x2 < 1.6 * x and abs(y2 - y) < 3 for x2, y2 in labelled.values())
            ax.annotate(short, (x, y), textcoords="offset points", xytext=(-5, 6) if crowded else (5, 6),
                        ha="right" if crowded else "left", fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("p50 latency at batch 1 (ms, log scale; seq 128 unless marked)")
        metric = METRIC_LABEL.get(pts[0]["metric_name"] if pts else "", "metric")
        ax.set_ylabel(f"test {metric} (%)")
        title = p.tasks[t].title
        if missing:
            title += f"  ({len(missing)} rows without latency not shown)"
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3, which="both")
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(handles, labels, fontsize=8, loc="best")
    fig.suptitle("Test metric vs CPU latency (1 thread; upper left is better; error bars = std over seeds)",
                 fontsize=11)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
