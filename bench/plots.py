"""PNG figures for bench/run_all.py: one figure per question, bars of the median with a dot per
round (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import statistics
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

COLOURS = {"direct": "#8c8c8c", "pgbouncer": "#4c72b0", "endpoint": "#dd8452",
           "rdsiam": "#dd8452", "pytest-postgresql": "#4c72b0"}
LABELS = {"direct": "direct TLS", "pgbouncer": "PgBouncer", "endpoint": "endpoint",
          "rdsiam": "pytest --rdsiam-emulator", "pytest-postgresql": "pytest-postgresql"}


@dataclass
class Panel:
    """One axis: ``groups`` are (label, {target: per-round values}); bars side by side per
    group, in the order of the targets' first appearance."""

    title: str
    unit: str
    groups: list[tuple[str, Mapping[str, Sequence[float | None]]]]
    reference: float | None = None  # a dashed horizontal line (e.g. a target)
    reference_label: str = ""
    log: bool = False  # log y axis (ratios: 0.5x and 2x equally far from 1x)


@dataclass
class Figure:
    """A whole PNG: the question as title, panels side by side, a footnote."""

    filename: str
    question: str
    panels: list[Panel]
    note: str = ""
    kind: str = "bars"  # "bars", or "lines" (x = index in each list, e.g. churn rounds)
    extra: dict[str, object] = field(default_factory=dict)


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _bars(ax: plt.Axes, panel: Panel) -> None:
    targets: list[str] = []
    for _, values in panel.groups:
        targets += [t for t in values if t not in targets]
    width = 0.8 / max(len(targets), 1)
    for gi, (_, values) in enumerate(panel.groups):
        for ti, target in enumerate(targets):
            rounds = [v for v in values.get(target, []) if v is not None]
            if not rounds:
                continue
            x = gi + (ti - (len(targets) - 1) / 2) * width
            med = statistics.median(rounds)
            ax.bar(x, med, width * 0.9, color=COLOURS.get(target, "#55a868"),
                   label=LABELS.get(target, target) if gi == 0 else None)
            offsets = [(i - (len(rounds) - 1) / 2) * width * 0.12 for i in range(len(rounds))]
            ax.scatter([x + o for o in offsets], rounds, s=12, color="black", zorder=3)
            # above the highest dot, so the label never sits on the dots
            ax.annotate(_fmt(med), (x, max(med, *rounds)), ha="center", va="bottom",
                        fontsize=8, xytext=(0, 4), textcoords="offset points")
    ax.set_xticks(range(len(panel.groups)), [g for g, _ in panel.groups],
                  rotation=30 if len(panel.groups) > 4 else 0)
    if len(panel.groups) == 1 and not panel.groups[0][0]:
        ax.set_xticks([])
    if panel.reference is not None:
        ax.axhline(panel.reference, color="red", linestyle="--", linewidth=1,
                   label=panel.reference_label or None)
    if panel.log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.margins(y=0.15)


def _lines(ax: plt.Axes, panel: Panel) -> None:
    for label, values in panel.groups:
        for target, series in values.items():
            ax.plot(range(1, len(series) + 1), series, marker="o",
                    color=COLOURS.get(target, "#55a868"), label=label)
    ax.set_xlabel("churn round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    if panel.reference is not None:
        ax.axhline(panel.reference, color="red", linestyle="--", linewidth=1,
                   label=panel.reference_label or None)


def render(figure: Figure, out_dir: Path) -> Path:
    """Write ``figure`` as ``out_dir/figure.filename``; returns the path."""
    width = max(8.0, sum(max(5.2, 1.1 * len(p.groups)) for p in figure.panels))
    fig, axes = plt.subplots(1, len(figure.panels), figsize=(width, 4.4), squeeze=False)
    for ax, panel in zip(axes[0], figure.panels, strict=True):
        (_lines if figure.kind == "lines" else _bars)(ax, panel)
        ax.set_title(panel.title, fontsize=10)
        ax.set_ylabel(panel.unit)
        ax.legend(fontsize=8, loc="best")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(figure.question, fontsize=12, fontweight="bold")
    if figure.note:
        fig.text(0.5, 0.01, "\n".join(textwrap.wrap(figure.note, int(width * 17))),
                 ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.06 if figure.note else 0, 1, 0.95))
    path = out_dir / figure.filename
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
