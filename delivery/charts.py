"""Server-rendered SVG charts: the geometry is computed here, the markup lives in templates.

No JavaScript and no inline styles (strict CSP): templates draw with SVG presentation
attributes. Each chart carries a title, a one-sentence summary and the rows of its data,
so screen-reader users get the same numbers as everyone else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from retainers.dates import period_range

ZERO = Decimal("0.00")


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def _day(day: date, *, year: bool = False) -> str:
    """Like 5 Jan (or 5 Jan 2026), without the platform-specific %-d."""
    return f"{day.day} {day:%b}" + (f" {day:%Y}" if year else "")


@dataclass(frozen=True)
class Tick:
    x: str
    y: str
    label: str


@dataclass(frozen=True)
class BurndownRow:
    day: date
    delivered: Decimal
    remaining: Decimal


@dataclass(frozen=True)
class Burndown:
    """A period's burn-down: the ideal line from what is available to zero, and what actually remains."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    ideal_points: str
    actual_points: str
    zero_y: str
    today_x: str | None
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    title: str
    summary: str
    rows: list[BurndownRow] = field(default_factory=list)
    last_x: str = ""
    last_y: str = ""


def burndown(
    *,
    start_on: date,
    end_on: date,
    available: Decimal,
    used_by_day: Mapping[date, Decimal],
    today: date,
    unit: str,
    width: int = 960,
    height: int = 260,
) -> Burndown:
    """The burn-down of the period [start_on, end_on) as of `today`.

    x runs over the period's days: day i spans [x(i), x(i + 1)], so the line starts at
    the period start with everything available and a day's deliveries show at its end.
    The actual line stops at the end of today (or of the period, once it is over).
    Usage dated outside the period (never, for the open one) is ignored.
    """
    left, right, top, bottom = 52, 12, 14, 30
    days = max((end_on - start_on).days, 1)
    shown_days = min(max((today - start_on).days + 1, 0), days)  # days whose deliveries are in

    remaining = available
    points: list[tuple[int, Decimal]] = [(0, available)]
    rows = []
    for i in range(shown_days):
        day = start_on + timedelta(days=i)
        delivered = used_by_day.get(day, ZERO)
        remaining -= delivered
        points.append((i + 1, remaining))
        if delivered:
            rows.append(BurndownRow(day, delivered, remaining))

    values = [v for _, v in points] + [ZERO, available]
    top_value, bottom_value = max(values), min(values)
    if top_value == bottom_value:
        top_value = bottom_value + 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: float) -> float:
        return left + plot_w * i / days

    def y(v: Decimal) -> float:
        return top + plot_h * float((top_value - v) / (top_value - bottom_value))

    ideal = f"{_fmt(x(0))},{_fmt(y(available))} {_fmt(x(days))},{_fmt(y(ZERO))}"
    actual = " ".join(f"{_fmt(x(i))},{_fmt(y(v))}" for i, v in points)
    today_index = (today - start_on).days
    today_x = _fmt(x(today_index + 1)) if 0 <= today_index < days else None

    x_ticks = [Tick(_fmt(x(0)), str(height - 10), _day(start_on))]
    middle = days // 2
    if days >= 6:
        x_ticks.append(Tick(_fmt(x(middle)), str(height - 10), _day(start_on + timedelta(days=middle))))
    x_ticks.append(Tick(_fmt(x(days)), str(height - 10), _day(end_on - timedelta(days=1))))
    y_values = sorted({top_value, ZERO, bottom_value} if bottom_value < 0 else {top_value, ZERO}, reverse=True)
    y_ticks = [Tick(str(left - 6), _fmt(y(v) + 4), f"{v.normalize():f}") for v in y_values]

    used = available - remaining
    last_day = start_on + timedelta(days=shown_days - 1) if shown_days else None
    days_left = max((end_on - today).days, 0)
    # What an even pace would have left by the end of the shown days, to compare with.
    on_pace = available - available * Decimal(shown_days) / Decimal(days)
    title = f"Burn-down, {period_range(start_on, end_on)}"
    if last_day is None:
        summary = f"{available} {unit} available; the period has not started yet."
    else:
        summary = (
            f"{available} {unit} available at the start; {used} used by {_day(last_day)}, "
            f"{remaining} remaining with {days_left} day{'s' if days_left != 1 else ''} left. "
            f"At an even pace {on_pace.quantize(Decimal('0.01'))} would remain."
        )
    last_x, last_y = points[-1]
    return Burndown(
        width=width,
        height=height,
        left=left,
        right=width - right,
        top=top,
        bottom=height - bottom,
        ideal_points=ideal,
        actual_points=actual,
        zero_y=_fmt(y(ZERO)),
        today_x=today_x,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        title=title,
        summary=summary,
        rows=rows,
        last_x=_fmt(x(last_x)),
        last_y=_fmt(y(last_y)),
    )


@dataclass(frozen=True)
class Bar:
    x: str
    y: str
    width: str
    height: str
    label: str
    label_x: str
    value: str
    over: bool


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int
    right: int
    baseline_y: str
    full_y: str
    bars: list[Bar]
    title: str
    summary: str


def utilisation_bars(
    periods: Sequence[tuple[str, int | None, bool]], *, width: int = 960, height: int = 220
) -> BarChart:
    """One bar per period (label, utilisation percent, went over): the share of its available units
    used (retainers.units.utilisation), the 100% line drawn, the periods that went over flagged."""
    left, right, top, bottom = 44, 12, 14, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    ceiling = max([Decimal(100), *(Decimal(p) for _, p, _ in periods if p is not None)])
    slot = plot_w / max(len(periods), 1)
    bar_w = max(min(slot * 0.7, 48), 2)

    def y(v: Decimal) -> float:
        return top + plot_h * float((ceiling - v) / ceiling)

    bars = []
    for i, (label, percent, over) in enumerate(periods):
        value = Decimal(percent) if percent is not None else Decimal(0)
        x0 = left + slot * i + (slot - bar_w) / 2
        bars.append(
            Bar(
                x=_fmt(x0),
                y=_fmt(y(value)),
                width=_fmt(bar_w),
                height=_fmt(y(Decimal(0)) - y(value)),
                label=label,
                label_x=_fmt(x0 + bar_w / 2),
                value="–" if percent is None else f"{percent:.0f}%",
                over=over,
            )
        )
    known = [p for _, p, _ in periods if p is not None]
    if known:
        average = Decimal(sum(known)) / len(known)
        over_count = sum(1 for _, _, over in periods if over)
        summary = (
            f"{len(periods)} period{'s' if len(periods) != 1 else ''}; average utilisation {average:.0f}%"
            f"{f', {over_count} over 100%' if over_count else ''}."
        )
    else:
        summary = "No periods with units to use yet."
    return BarChart(
        width=width,
        height=height,
        left=left,
        right=width - right,
        baseline_y=_fmt(y(Decimal(0))),
        full_y=_fmt(y(Decimal(100))),
        bars=bars,
        title="Utilisation by period",
        summary=summary,
    )
