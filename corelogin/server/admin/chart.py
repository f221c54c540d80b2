"""The dashboard's chart, drawn on the server as SVG markup (issue 12).

No CDN is reachable from where the page is used, and the page's Content-Security-Policy allows
no script: the chart is plain SVG inside the HTML, coloured by the page's style sheet (classes,
not ``style`` attributes, which the CSP would refuse). Each bar has a ``<title>`` (its day and
count, shown on hover and read by screen readers); the figures are also in a table beside it.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Final

import attrs
from markupsafe import Markup, escape

__all__ = ["Series", "bar_chart", "last_days"]

WIDTH: Final = 600
HEIGHT: Final = 180
TOP: Final = 16  # room for the top value's label
BOTTOM: Final = 22  # room for the dates
LEFT: Final = 4
PLOT: Final = HEIGHT - TOP - BOTTOM


@attrs.frozen
class Series:
    """One kind of count per day, drawn in the colour of its CSS class."""

    name: str  # "joins", "logins": said in each bar's title
    css_class: str
    counts: Mapping[str, int]  # YYYY-MM-DD -> count (missing days: 0)


def last_days(now: float, days: int) -> list[str]:
    """The ``days`` UTC days that end with the one of ``now``, oldest first, as YYYY-MM-DD."""
    today = datetime.datetime.fromtimestamp(now, datetime.UTC).date()
    return [(today - datetime.timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def bar_chart(days: Sequence[str], series: Sequence[Series], *, label: str) -> Markup:
    """Bars of each series side by side for every day of ``days``; ``label`` names the chart
    for screen readers. Every text is escaped."""
    top = max([1, *(s.counts.get(day, 0) for s in series for day in days)])
    slot = (WIDTH - LEFT) / max(1, len(days))
    bar = slot * 0.8 / max(1, len(series))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + PLOT}" x2="{WIDTH}" y2="{TOP + PLOT}"/>',
        f'<text class="label" x="{LEFT}" y="{TOP - 4}">{top}</text>',
    ]
    for index, day in enumerate(days):
        for number, one in enumerate(series):
            count = one.counts.get(day, 0)
            height = PLOT * count / top
            x = LEFT + index * slot + slot * 0.1 + number * bar
            parts.append(
                f'<rect class="{escape(one.css_class)}" x="{_number(x)}" '
                f'y="{_number(TOP + PLOT - height)}" width="{_number(bar)}" '
                f'height="{_number(height)}"><title>{escape(day)}: {count} '
                f"{escape(one.name)}</title></rect>"
            )
    if days:
        y = HEIGHT - 6
        parts.append(f'<text class="label" x="{LEFT}" y="{y}">{escape(days[0])}</text>')
        parts.append(
            f'<text class="label" x="{WIDTH - 2}" y="{y}" text-anchor="end">'
            f"{escape(days[-1])}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (built here, every text escaped)
