"""Server-rendered charts for the KPI page: the geometry of horizontal bar charts, drawn as SVG
by templates/kpi.html (no chart library, no JavaScript; labels are escaped by the template).

A chart is groups (one per partner) of bars (one per series: documents in / out, median / p90,
a rate); a value of None (nothing to measure) draws no bar and says "n/a"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LABEL_WIDTH = 150
PLOT_WIDTH = 420
BAR_HEIGHT = 14
GROUP_GAP = 10
VALUE_WIDTH = 70
SERIES_COLOURS = ("#2b6cb0", "#dd6b20", "#2f855a", "#805ad5")


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: where it is drawn, its length, and what it says."""

    series: str
    y: int
    width: float
    text: str
    colour: str


@dataclass(frozen=True, slots=True)
class Group:
    """One partner's bars, with its label's position."""

    label: str
    y: int
    bars: list[Bar]


@dataclass(frozen=True, slots=True)
class Chart:
    """A horizontal bar chart: its title, series (legend), groups and size."""

    title: str
    series: list[tuple[str, str]]
    groups: list[Group]
    width: int
    height: int
    label_width: int = LABEL_WIDTH
    plot_width: int = PLOT_WIDTH


def bar_chart(
    title: str,
    series: list[str],
    rows: list[tuple[str, list[float | None]]],
    *,
    unit: str = "",
    scale: float | None = None,
) -> Chart:
    """Bars of ``rows`` (label, one value per series), scaled to ``scale`` (default: the
    largest value); a value is written beside its bar with ``unit``."""
    values = [v for _, row in rows for v in row if v is not None]
    top = scale or max(values, default=0) or 1
    colours = [SERIES_COLOURS[i % len(SERIES_COLOURS)] for i in range(len(series))]
    groups: list[Group] = []
    y = 0
    for label, row in rows:
        bars = []
        for i, value in enumerate(row):
            width = 0.0 if value is None else round(PLOT_WIDTH * min(value / top, 1), 1)
            text = "n/a" if value is None else f"{value:g}{unit}"
            bars.append(Bar(series[i], y + i * BAR_HEIGHT, width, text, colours[i]))
        groups.append(Group(label, y, bars))
        y += len(row) * BAR_HEIGHT + GROUP_GAP
    width = LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH
    return Chart(title, list(zip(series, colours, strict=True)), groups, width, max(y, 1))


def kpi_charts(partners: list[dict[str, Any]]) -> list[Chart]:
    """The KPI page's charts from ``kpi_report`` rows: documents in and out, response time
    (median, p90), on-time despatch and first-time-right rates (in %)."""

    def pct(rate: float | None) -> float | None:
        return None if rate is None else round(rate * 100, 1)

    names = [p["partner"] for p in partners]
    documents: list[list[float | None]] = [
        [float(sum(p["documents_in"].values())), float(sum(p["documents_out"].values()))]
        for p in partners
    ]
    hours = [[p["response_hours"]["median"], p["response_hours"]["p90"]] for p in partners]
    rates = [
        [
            pct(p["on_time_despatch"]["rate"]),
            pct(p["first_time_right"]["rate"]),
            pct(p["first_time_right"]["delivery_rate"]),
        ]
        for p in partners
    ]
    return [
        bar_chart("Documents in and out", ["in", "out"], list(zip(names, documents, strict=True))),
        bar_chart(
            "Response time (hours)",
            ["median", "p90"],
            list(zip(names, hours, strict=True)),
            unit=" h",
        ),
        bar_chart(
            "Rates (%)",
            ["on-time despatch", "first time right (in)", "delivered at first attempt"],
            list(zip(names, rates, strict=True)),
            unit=" %",
            scale=100,
        ),
    ]
