"""The report's pictures: a bar chart of the group means, and the groups' curves over steps.

Each is drawn on an explicit Agg canvas, which keeps pyplot's global backend state untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from augssl.report.curves import Curve
from augssl.report.tables import (
    GroupStats,
    Report,
    default_title,
    group_label,
    natural_key,
    summary_label,
    use_percent,
)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _legend_outside(axes, title: str) -> None:
    # Outside the axes so the legend never hides bars or lines.
    axes.legend(title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=120)
    return path


@dataclass(frozen=True)
class BarLayout:
    """Groups arranged as a grouped bar chart: x categories, and one bar series per colour."""

    x_name: str
    x_labels: tuple[str, ...]
    series_name: str
    series_labels: tuple[str, ...]
    cells: Mapping[tuple[str, str], GroupStats]
    """(x_label, series_label) -> group; combinations without runs are absent."""


def bar_layout(report: Report) -> BarLayout:
    """With two or more group keys the first key becomes the series (one colour per value)
    and the remaining keys the x categories, e.g. one colour per policy over label budgets."""
    split = len(report.group_by) >= 2
    x_names = report.group_by[1:] if split else report.group_by
    x_keys: dict[tuple[str, ...], str] = {}
    series: list[str] = []
    cells: dict[tuple[str, str], GroupStats] = {}
    for group in report.groups:
        series_label = group.key[0] if split else ""
        x_key = group.key[1:] if split else group.key
        x_label = group_label(x_key)
        x_keys.setdefault(x_key, x_label)
        if series_label not in series:
            series.append(series_label)
        cells[(x_label, series_label)] = group
    return BarLayout(
        x_name=", ".join(x_names),
        x_labels=tuple(x_keys[key] for key in sorted(x_keys, key=natural_key)),
        series_name=report.group_by[0] if split else "",
        series_labels=tuple(series),
        cells=cells,
    )


def plot_report(report: Report, path: str | Path, *, title: str | None = None,
                percent: bool | None = None) -> Path:
    """Bar chart of group means with sample-std error bars, saved as PNG."""
    as_percent = use_percent(report, percent)
    scale = 100.0 if as_percent else 1.0
    layout = bar_layout(report)
    series_count = len(layout.series_labels)
    width = 0.8 / series_count
    bar_count = len(layout.x_labels) * series_count
    figure, axes = _figure(min(20.0, max(5.0, 2.5 + 0.6 * bar_count)), 4.5)
    for index, series_label in enumerate(layout.series_labels):
        positions, means, errors = [], [], []
        for x_index, x_label in enumerate(layout.x_labels):
            group = layout.cells.get((x_label, series_label))
            if group is None:
                continue
            positions.append(x_index + (index - (series_count - 1) / 2) * width)
            means.append(group.mean * scale)
            errors.append(0.0 if group.n < 2 else group.std * scale)
        axes.bar(positions, means, width=width, yerr=errors, capsize=4,
                 label=series_label or None)
    crowded = sum(len(label) for label in layout.x_labels) > 60
    axes.set_xticks(range(len(layout.x_labels)))
    axes.set_xticklabels(layout.x_labels, rotation=30 if crowded else 0,
                         ha="right" if crowded else "center")
    axes.set_xlabel(layout.x_name)
    axes.set_ylabel(f"{report.metric} ({summary_label(report)}){' [%]' if as_percent else ''}")
    axes.set_title(title or default_title(report))
    if series_count > 1:
        _legend_outside(axes, layout.series_name)
    return _save(figure, path)


def curves_figure(report: Report, curves: Sequence[Curve], *, title: str | None = None,
                  percent: bool | None = None):
    """The groups' curves of ``report.metric`` against the step: a line through the means, a
    band of ± one std around it (for groups of two runs or more), one colour per group. Curves
    without steps are left out. Returns the matplotlib Figure."""
    scale = 100.0 if use_percent(report, percent) else 1.0
    figure, axes = _figure(7.5, 4.5)
    for curve in curves:
        if not curve.steps:
            continue
        mean = [value * scale for value in curve.mean]
        (line,) = axes.plot(curve.steps, mean, marker="o" if len(curve.steps) <= 30 else None,
                            markersize=3, label=curve.label)
        if curve.runs > 1:
            spread = [std * scale for std in curve.std]
            axes.fill_between(curve.steps, [m - s for m, s in zip(mean, spread)],
                              [m + s for m, s in zip(mean, spread)],
                              color=line.get_color(), alpha=0.2, linewidth=0)
    axes.set_xlabel("step")
    axes.set_ylabel(f"{report.metric}{' [%]' if scale != 1.0 else ''}")
    axes.set_title(title or f"{report.experiment_name}: {report.metric}")
    _legend_outside(axes, ", ".join(report.group_by))
    return figure


def plot_curves(report: Report, curves: Sequence[Curve], path: str | Path, *,
                title: str | None = None, percent: bool | None = None) -> Path:
    """``curves_figure`` saved as PNG."""
    return _save(curves_figure(report, curves, title=title, percent=percent), path)
