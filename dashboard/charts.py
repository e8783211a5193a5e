"""The revenue chart's geometry. The markup is the template's: SVG presentation attributes only
(strict CSP), a title and summary for screen readers, and the same figures as a table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from babel.numbers import format_compact_currency

from retainers.money import format_money, from_minor


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is at least `value` (> 0): a round top for the axis."""
    magnitude = Decimal(1)
    while magnitude * 10 <= value:
        magnitude *= 10
    while magnitude > value:
        magnitude /= 10
    for step in (1, 2, Decimal("2.5"), 5, 10):
        if magnitude * step >= value:
            return magnitude * step
    return magnitude * 10  # unreachable: 10 × magnitude > value by construction


@dataclass(frozen=True)
class Gridline:
    y: str
    label: str


@dataclass(frozen=True)
class MonthBar:
    month: date
    label: str  # "Mar"
    long_label: str  # "March 2026"
    amount: str  # "£12,400.00"
    net_minor: int
    x: str
    y: str
    width: str
    height: str
    label_x: str
    current: bool


@dataclass(frozen=True)
class RevenueChart:
    currency: str
    width: int
    height: int
    left: int
    right: int
    baseline_y: str
    gridlines: list[Gridline]
    bars: list[MonthBar]
    title: str
    summary: str
    total: str
    has_data: bool


def revenue_chart(
    *,
    currency: str,
    months: list[date],
    net_by_month: dict[date, int],
    locale: str,
    width: int = 640,
    height: int = 220,
) -> RevenueChart:
    """One bar per month (the last one is the current, partial month). Refunds larger than the
    month's payments make a bar that hangs below the baseline."""
    left, right, top, bottom = 56, 8, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [net_by_month.get(month, 0) for month in months]
    high = from_minor(max([*values, 0]), currency)
    low = from_minor(min([*values, 0]), currency)
    top_value = nice_ceiling(high) if high > 0 else Decimal(1)
    bottom_value = -nice_ceiling(-low) if low < 0 else Decimal(0)
    span = top_value - bottom_value

    def y(value: Decimal) -> float:
        return top + plot_h * float((top_value - value) / span)

    def compact(value: Decimal) -> str:
        return format_compact_currency(value, currency, locale=locale, fraction_digits=1)

    gridlines = [Gridline(_fmt(y(v)), compact(v)) for v in (top_value, top_value / 2, Decimal(0))]
    if bottom_value < 0:
        gridlines.append(Gridline(_fmt(y(bottom_value)), compact(bottom_value)))

    slot = plot_w / max(len(months), 1)
    bar_w = min(slot * 0.68, 40)
    bars = []
    for i, (month, net) in enumerate(zip(months, values, strict=True)):
        value = from_minor(net, currency)
        x0 = left + slot * i + (slot - bar_w) / 2
        y_top, y_bottom = sorted((y(value), y(Decimal(0))))
        bars.append(
            MonthBar(
                month=month,
                label=f"{month:%b}",
                long_label=f"{month:%B %Y}",
                amount=format_money(net, currency, locale),
                net_minor=net,
                x=_fmt(x0),
                y=_fmt(y_top),
                width=_fmt(bar_w),
                height=_fmt(max(y_bottom - y_top, 0)),
                label_x=_fmt(x0 + bar_w / 2),
                current=i == len(months) - 1,
            )
        )
    total_minor = sum(values)
    total = format_money(total_minor, currency, locale)
    best = max(bars, key=lambda bar: bar.net_minor) if bars else None
    if not any(values):
        summary = f"No {currency} collected from {months[0]:%B %Y} to {months[-1]:%B %Y}."
    else:
        assert best is not None  # a month with a value is a bar
        summary = (
            f"{total} collected from {months[0]:%B %Y} to {months[-1]:%B %Y} (this month so far); "
            f"the best month was {best.long_label} with {best.amount}."
        )
    return RevenueChart(
        currency=currency,
        width=width,
        height=height,
        left=left,
        right=width - right,
        baseline_y=_fmt(y(Decimal(0))),
        gridlines=gridlines,
        bars=bars,
        title=f"Revenue collected per month, {currency}",
        summary=summary,
        total=total,
        has_data=any(values),
    )
