"""The free start times of a session type: pure functions over a member's rules and busy times.

Nothing here touches the database (delivery.booking loads the inputs), so it is fast and tested
without one. The rules, in order:

- days run in the member's zone, from today to the horizon (today plus `horizon_days`, exclusive),
  whatever range is asked for: slots are never computed for an unbounded range;
- a day's hours are its date override if it has one (no ranges: unavailable all day), else its
  weekday's ranges; starts step through each range by `step` in local wall-clock time, and a
  session must end by the range's end;
- a local time that does not exist (the hour skipped when clocks go forward) is not offered; a
  local time that happens twice (clocks going back) means its first occurrence, always; a range
  that ends inside the skipped hour ends when the clocks change; durations are real time;
- a start needs the minimum notice from now;
- a session plus its buffers ([start - before, end + after)) must not overlap anything busy:
  active bookings (stored with their own buffers) and busy blocks read from calendars;
- a day that has `daily_cap` bookings offers nothing more.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Range = tuple[time, time]  # local start, local end; an end of 00:00 is midnight at the day's end
Interval = tuple[datetime, datetime]  # aware, half-open
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Rules:
    zone: ZoneInfo
    weekly: Mapping[int, Sequence[Range]]  # weekday (0 = Monday) -> ranges
    overrides: Mapping[date, Sequence[Range]] = field(default_factory=dict)  # date -> ranges ([] = off)
    duration: timedelta = timedelta(hours=1)
    step: timedelta = timedelta(minutes=30)
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    min_notice: timedelta = timedelta(0)
    horizon_days: int = 60
    daily_cap: int | None = None

    def blocked(self, start: datetime) -> Interval:
        """What a session starting at `start` keeps busy: itself and its buffers."""
        return start - self.buffer_before, start + self.duration + self.buffer_after


class Refusal(enum.StrEnum):
    """Why a start time cannot be booked, in the order they are checked."""

    PAST = "past"
    NOTICE = "notice"
    HORIZON = "horizon"
    OUTSIDE = "outside"
    FULL = "full"
    TAKEN = "taken"


class Busy:
    """Busy intervals merged into disjoint, sorted ones, so an overlap test is one bisection."""

    def __init__(self, intervals: Iterable[Interval]) -> None:
        merged: list[list[datetime]] = []
        for start, end in sorted(intervals):
            if end <= start:
                continue
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self.starts = [m[0] for m in merged]
        self.ends = [m[1] for m in merged]

    def overlaps(self, start: datetime, end: datetime) -> bool:
        # The last interval starting before `end` is the only one that can reach past `start`:
        # the intervals are disjoint and sorted, so their ends are sorted too.
        index = bisect.bisect_left(self.starts, end) - 1
        return index >= 0 and self.ends[index] > start


def resolve(day: date, wall: time, zone: ZoneInfo) -> datetime | None:
    """The instant (UTC) of a local wall-clock time: None in a DST gap, the first one in a fold."""
    naive = datetime.combine(day, wall)
    instant = naive.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the earlier of two
    if instant.astimezone(zone).replace(tzinfo=None) != naive:
        return None  # the clocks skipped this wall time
    return instant


def _range_end(day: date, end: time, zone: ZoneInfo) -> datetime:
    """The instant a range ends. Midnight (00:00) is the end of the day; an end inside a DST gap
    ("until 01:30" on the night 01:00 becomes 02:00) is the moment the clocks change."""
    if end == time(0):
        day, end = day + timedelta(days=1), time(0)
    exact = resolve(day, end, zone)
    if exact is not None:
        return exact
    naive = datetime.combine(day, end)
    # In a gap, fold=1 reads the wall time with the offset after the change (an instant before it),
    # fold=0 with the offset before (an instant after it): the change lies between, on a minute.
    moment = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    latest = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    before = moment.astimezone(zone).utcoffset()
    while moment < latest and (moment + MINUTE).astimezone(zone).utcoffset() == before:
        moment += MINUTE
    return moment + MINUTE


def day_ranges(rules: Rules, day: date) -> Sequence[Range]:
    return rules.overrides.get(day, rules.weekly.get(day.weekday(), ()))


def day_starts(rules: Rules, day: date) -> Iterator[datetime]:
    """Every start the day's hours offer (UTC, ascending), before notice, busy times and the cap."""
    seen: set[datetime] = set()
    for start, end in sorted(day_ranges(rules, day)):
        ends_at = _range_end(day, end, rules.zone)
        wall = datetime.combine(day, start)
        last_wall = datetime.combine(day + timedelta(days=1) if end == time(0) else day, end)
        while wall < last_wall:
            instant = resolve(wall.date(), wall.time(), rules.zone)
            if instant is not None and instant + rules.duration <= ends_at and instant not in seen:
                seen.add(instant)
                yield instant
            wall += rules.step


def local_day(instant: datetime, zone: ZoneInfo) -> date:
    return instant.astimezone(zone).date()


def bookable_days(rules: Rules, *, now: datetime, first: date, last: date) -> tuple[date, date] | None:
    """[first, last] clamped to today..the horizon in the member's zone; None when nothing is left."""
    today = local_day(now, rules.zone)
    first = max(first, today)
    last = min(last, today + timedelta(days=max(rules.horizon_days, 1) - 1))
    return (first, last) if first <= last else None


def free_starts(
    rules: Rules,
    *,
    now: datetime,
    first: date,
    last: date,
    busy: Busy,
    booked_per_day: Mapping[date, int],
) -> list[datetime]:
    """The bookable starts (UTC, ascending) on the local days [first, last], clamped to the horizon."""
    days = bookable_days(rules, now=now, first=first, last=last)
    if days is None:
        return []
    earliest = now + rules.min_notice
    found: list[datetime] = []
    day = days[0]
    while day <= days[1]:
        if rules.daily_cap is None or booked_per_day.get(day, 0) < rules.daily_cap:
            for start in day_starts(rules, day):
                if start >= earliest and not busy.overlaps(*rules.blocked(start)):
                    found.append(start)
        day += timedelta(days=1)
    return found


def refusal(
    rules: Rules, start: datetime, *, now: datetime, busy: Busy, booked_per_day: Mapping[date, int]
) -> Refusal | None:
    """Why `start` cannot be booked now, or None when it can. The same rules as `free_starts`."""
    if start <= now:
        return Refusal.PAST
    if start < now + rules.min_notice:
        return Refusal.NOTICE
    day = local_day(start, rules.zone)
    if bookable_days(rules, now=now, first=day, last=day) is None:
        return Refusal.HORIZON
    if start not in set(day_starts(rules, day)):
        return Refusal.OUTSIDE
    if rules.daily_cap is not None and booked_per_day.get(day, 0) >= rules.daily_cap:
        return Refusal.FULL
    if busy.overlaps(*rules.blocked(start)):
        return Refusal.TAKEN
    return None
