"""The slot arithmetic (delivery.slots): pure, so no database. DST in three zones across 2026's changes:

- Europe/London: forward 29 Mar 01:00 GMT -> 02:00 BST; back 25 Oct 02:00 BST -> 01:00 GMT
- America/New_York: forward 8 Mar 02:00 -> 03:00; back 1 Nov 02:00 -> 01:00
- Australia/Sydney: back 5 Apr 03:00 -> 02:00; forward 4 Oct 02:00 -> 03:00
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery.slots import Busy, Refusal, Rules, bookable_days, day_starts, free_starts, refusal, resolve

LONDON, NEW_YORK, SYDNEY = ZoneInfo("Europe/London"), ZoneInfo("America/New_York"), ZoneInfo("Australia/Sydney")
NIGHT = [(time(0), time(4))]  # the hours around the changes, every day
EVERY_DAY_NIGHT = dict.fromkeys(range(7), NIGHT)


def rules(zone: ZoneInfo = LONDON, **changes) -> Rules:
    values = {
        "zone": zone,
        "weekly": {day: [(time(9), time(12)), (time(13), time(17))] for day in range(5)},
        "duration": timedelta(hours=1),
        "step": timedelta(minutes=30),
        "horizon_days": 60,
    }
    values.update(changes)
    return Rules(**values)


def local(starts: list[datetime], zone: ZoneInfo) -> list[str]:
    return [f"{s.astimezone(zone):%H:%M%z}" for s in starts]


def starts_on(r: Rules, day: date) -> list[datetime]:
    return list(day_starts(r, day))


NO_BUSY = Busy([])
MONDAY = date(2026, 3, 9)
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_a_day_offers_each_step_whose_session_ends_within_its_range():
    starts = starts_on(rules(), MONDAY)
    assert [f"{s:%H:%M}" for s in starts] == [
        "09:00", "09:30", "10:00", "10:30", "11:00",
        "13:00", "13:30", "14:00", "14:30", "15:00", "15:30", "16:00",
    ]  # fmt: skip
    assert all(s.tzinfo is UTC for s in starts)


def test_weekends_and_overrides():
    r = rules(overrides={MONDAY: [], MONDAY + timedelta(days=1): [(time(18), time(20))]})
    assert starts_on(r, date(2026, 3, 7)) == []  # Saturday
    assert starts_on(r, MONDAY) == []  # unavailable all day
    assert local(starts_on(r, MONDAY + timedelta(days=1)), LONDON) == ["18:00+0000", "18:30+0000", "19:00+0000"]


def test_a_range_may_run_to_midnight():
    r = rules(weekly={0: [(time(22), time(0))]})
    assert [f"{s:%H:%M}" for s in starts_on(r, MONDAY)] == ["22:00", "22:30", "23:00"]


def test_free_starts_are_clamped_to_the_horizon_whatever_range_is_asked():
    r = rules(horizon_days=10)
    starts = free_starts(r, now=NOW, first=date(2000, 1, 1), last=date(2099, 12, 31), busy=NO_BUSY, booked_per_day={})
    assert starts and min(starts).date() >= NOW.date()
    assert max(starts).date() == date(2026, 3, 10)  # 1 March + 10 days, exclusive
    assert bookable_days(r, now=NOW, first=date(2026, 3, 12), last=date(2026, 4, 1)) is None


def test_minimum_notice_and_the_past():
    now = datetime(2026, 3, 9, 10, 15, tzinfo=UTC)
    r = rules(min_notice=timedelta(hours=2))
    starts = free_starts(r, now=now, first=MONDAY, last=MONDAY, busy=NO_BUSY, booked_per_day={})
    assert f"{starts[0]:%H:%M}" == "13:00"  # 12:15 is the earliest, and 11:00-12:00 is before it
    assert refusal(r, datetime(2026, 3, 9, 9, tzinfo=UTC), now=now, busy=NO_BUSY, booked_per_day={}) == Refusal.PAST
    assert refusal(r, datetime(2026, 3, 9, 11, tzinfo=UTC), now=now, busy=NO_BUSY, booked_per_day={}) == (
        Refusal.NOTICE
    )


def test_busy_times_block_the_session_and_its_buffers():
    busy = Busy([(datetime(2026, 3, 9, 11, tzinfo=UTC), datetime(2026, 3, 9, 11, 30, tzinfo=UTC))])
    plain = [
        f"{s:%H:%M}" for s in free_starts(rules(), now=NOW, first=MONDAY, last=MONDAY, busy=busy, booked_per_day={})
    ]
    assert plain[:4] == ["09:00", "09:30", "10:00", "13:00"]  # 10:30 and 11:00 overlap 11:00-11:30
    buffered = rules(buffer_before=timedelta(minutes=15), buffer_after=timedelta(minutes=15))
    assert [
        f"{s:%H:%M}" for s in free_starts(buffered, now=NOW, first=MONDAY, last=MONDAY, busy=busy, booked_per_day={})
    ][:3] == ["09:00", "09:30", "13:00"]  # 10:00-11:00 plus 15 minutes after reaches into 11:00
    assert refusal(rules(), datetime(2026, 3, 9, 10, 30, tzinfo=UTC), now=NOW, busy=busy, booked_per_day={}) == (
        Refusal.TAKEN
    )


def test_a_day_at_its_cap_offers_nothing():
    r = rules(daily_cap=2)
    starts = free_starts(
        r, now=NOW, first=MONDAY, last=MONDAY + timedelta(days=1), busy=NO_BUSY, booked_per_day={MONDAY: 2}
    )
    assert {s.date() for s in starts} == {MONDAY + timedelta(days=1)}
    nine = datetime(2026, 3, 9, 9, tzinfo=UTC)
    assert refusal(r, nine, now=NOW, busy=NO_BUSY, booked_per_day={MONDAY: 2}) == Refusal.FULL
    assert refusal(r, nine, now=NOW, busy=NO_BUSY, booked_per_day={MONDAY: 1}) is None


def test_refusals_outside_hours_off_step_and_beyond_the_horizon():
    r = rules(horizon_days=30)
    off_step = datetime(2026, 3, 9, 9, 10, tzinfo=UTC)
    evening = datetime(2026, 3, 9, 20, tzinfo=UTC)
    too_late = datetime(2026, 3, 9, 16, 30, tzinfo=UTC)  # would end 17:30, after the range
    far = datetime(2026, 4, 1, 9, tzinfo=UTC)
    for moment in (off_step, evening, too_late):
        assert refusal(r, moment, now=NOW, busy=NO_BUSY, booked_per_day={}) == Refusal.OUTSIDE
    assert refusal(r, far, now=NOW, busy=NO_BUSY, booked_per_day={}) == Refusal.HORIZON


# --- DST -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # The skipped hour is not offered; the times either side are real instants.
        (LONDON, date(2026, 3, 29), ["00:00+0000", "00:30+0000", "02:00+0100", "02:30+0100", "03:00+0100"]),
        (NEW_YORK, date(2026, 3, 8), ["00:00-0500", "00:30-0500", "01:00-0500", "01:30-0500", "03:00-0400"]),
        (SYDNEY, date(2026, 10, 4), ["00:00+1000", "00:30+1000", "01:00+1000", "01:30+1000", "03:00+1100"]),
    ],
)
def test_local_times_the_clocks_skip_are_not_offered(zone, day, expected):
    starts = starts_on(rules(zone, weekly=EVERY_DAY_NIGHT), day)
    assert local(starts, zone) == expected
    assert all(resolve(s.astimezone(zone).date(), s.astimezone(zone).time(), zone) == s for s in starts)
    # A session lasts its real hour: 01:30 EST in New York ends at 03:30 EDT, inside the range.
    assert all(s + timedelta(hours=1) <= datetime.combine(day, time(4), tzinfo=zone) for s in starts)


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # A wall time that happens twice means its first occurrence, always; then the day goes on.
        (LONDON, date(2026, 10, 25), ["00:00+0100", "00:30+0100", "01:00+0100", "01:30+0100", "02:00+0000", "02:30+0000", "03:00+0000"]),
        (NEW_YORK, date(2026, 11, 1), ["00:00-0400", "00:30-0400", "01:00-0400", "01:30-0400", "02:00-0500", "02:30-0500", "03:00-0500"]),
        (SYDNEY, date(2026, 4, 5), ["00:00+1100", "00:30+1100", "01:00+1100", "01:30+1100", "02:00+1100", "02:30+1100", "03:00+1000"]),
    ],
)  # fmt: skip
def test_local_times_that_happen_twice_resolve_to_the_first(zone, day, expected):
    starts = starts_on(rules(zone, weekly=EVERY_DAY_NIGHT), day)
    assert local(starts, zone) == expected
    assert starts == sorted(set(starts))  # ascending, no instant twice


@pytest.mark.parametrize("zone", [LONDON, NEW_YORK, SYDNEY])
def test_weekday_hours_stay_at_the_same_local_time_across_both_changes(zone):
    r = rules(zone, weekly=dict.fromkeys(range(7), [(time(9), time(10))]))
    offsets = set()
    for day in (date(2026, 1, 1) + timedelta(days=n) for n in range(365)):
        (start,) = starts_on(r, day)
        assert start.astimezone(zone).time() == time(9)
        offsets.add(start.astimezone(zone).utcoffset())
    assert len(offsets) == 2  # both sides of the changes were crossed


def test_a_session_across_the_change_lasts_its_real_length():
    r = rules(LONDON, weekly=EVERY_DAY_NIGHT, duration=timedelta(minutes=90))
    starts = starts_on(r, date(2026, 3, 29))
    # 00:30 GMT + 90 minutes = 03:00 BST: inside the range (which ends 04:00 BST); 02:30 BST would end 04:00.
    assert local(starts, LONDON) == ["00:00+0000", "00:30+0000", "02:00+0100", "02:30+0100"]


def test_a_range_ending_in_the_skipped_hour_ends_when_the_clocks_change():
    r = rules(LONDON, weekly=dict.fromkeys(range(7), [(time(0), time(1, 30))]), duration=timedelta(minutes=30))
    assert local(starts_on(r, date(2026, 3, 29)), LONDON) == ["00:00+0000", "00:30+0000"]  # 00:30 ends at 01:00 UTC
    r = rules(NEW_YORK, weekly=dict.fromkeys(range(7), [(time(1), time(2, 30))]), duration=timedelta(minutes=60))
    assert local(starts_on(r, date(2026, 3, 8)), NEW_YORK) == ["01:00-0500"]  # ends 03:00 EDT, the change


# --- Free starts and refusals agree -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from([LONDON, NEW_YORK, SYDNEY]),
    busy_offsets=st.lists(st.tuples(st.integers(0, 14 * 24 * 4), st.integers(1, 16)), max_size=30),
    cap=st.one_of(st.none(), st.integers(1, 4)),
    buffer=st.integers(0, 3),
    notice_hours=st.integers(0, 48),
)
def test_every_free_start_is_bookable_and_every_other_day_start_says_why_not(
    zone, busy_offsets, cap, buffer, notice_hours
):
    now = datetime(2026, 3, 25, 7, 45, tzinfo=UTC)  # London and New York cross a change in this fortnight
    r = rules(
        zone,
        weekly=dict.fromkeys(range(7), [(time(0), time(4)), (time(9), time(17))]),
        buffer_before=timedelta(minutes=15 * buffer),
        buffer_after=timedelta(minutes=15 * buffer),
        min_notice=timedelta(hours=notice_hours),
        daily_cap=cap,
        horizon_days=14,
    )
    base = datetime(2026, 3, 25, tzinfo=UTC)
    busy = Busy(
        (base + timedelta(minutes=15 * start), base + timedelta(minutes=15 * (start + length)))
        for start, length in busy_offsets
    )
    per_day = {date(2026, 3, 27): 1, date(2026, 3, 30): 2}
    first, last = date(2026, 3, 20), date(2026, 4, 30)
    free = free_starts(r, now=now, first=first, last=last, busy=busy, booked_per_day=per_day)
    assert free == sorted(set(free))
    for start in free:
        assert refusal(r, start, now=now, busy=busy, booked_per_day=per_day) is None
    free_set = set(free)
    day = date(2026, 3, 25)
    while day <= date(2026, 4, 7):
        for start in day_starts(r, day):
            if start not in free_set:
                assert refusal(r, start, now=now, busy=busy, booked_per_day=per_day) is not None
        day += timedelta(days=1)
