"""Forms of the consultant's booking set-up: session types, availability, calendar, retainer policy.

Times are typed the way people write them ("9-12:30, 13:00–17:00", "9am to 5pm"); reminder
offsets as "24h, 1h, 30m, 2d". Every error lands next to its field.
"""

from __future__ import annotations

import re
from datetime import time
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.db.models import QuerySet

from clients.models import Retainer
from delivery import slots
from delivery.models import BookingPolicy, Schedule
from retainers.fields import DateField
from retainers.forms import timezone_choices
from retainers.models import User

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MAX_RANGES_PER_DAY = 6
MAX_REMINDERS = 5

_TIME = re.compile(r"^(?P<h>\d{1,2})(?:[:.h](?P<m>\d{2}))?\s*(?P<ampm>am|pm|a\.m\.|p\.m\.)?$", re.I)
_RANGE_SPLIT = re.compile(r"\s*(?:-|–|—|\bto\b)\s*", re.I)
_OFFSET = re.compile(r"^(?P<n>\d{1,4})\s*(?P<unit>m|min|mins|minutes?|h|hrs?|hours?|d|days?)$", re.I)


def parse_time(text: str) -> time:
    """ "9", "9:30", "09.30", "9am", "5:15 pm", "24:00" (midnight at the day's end, kept as 00:00)."""
    match = _TIME.match(text.strip())
    if not match:
        raise forms.ValidationError(f"“{text.strip()}” is not a time: write it like 9:00 or 17:30.", code="time")
    hour, minute = int(match["h"]), int(match["m"] or 0)
    ampm = (match["ampm"] or "").lower().replace(".", "")
    if ampm:
        if not 1 <= hour <= 12:
            raise forms.ValidationError(f"“{text.strip()}”: with am/pm, hours go from 1 to 12.", code="time")
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    if hour == 24 and minute == 0:
        return time(0)
    if hour > 23 or minute > 59:
        raise forms.ValidationError(f"“{text.strip()}” is not a time of day.", code="time")
    return time(hour, minute)


def _minutes(moment: time) -> int:
    return 24 * 60 if moment == time(0) else moment.hour * 60 + moment.minute


def parse_ranges(text: str) -> list[slots.Range]:
    """Comma-separated ranges of one day, in order and not overlapping. An end of 24:00 is midnight."""
    ranges: list[slots.Range] = []
    for part in (p for p in re.split(r"[,;]", text) if p.strip()):
        pieces = _RANGE_SPLIT.split(part.strip())
        if len(pieces) != 2:
            raise forms.ValidationError(f"“{part.strip()}” is not a range: write it like 9:00-12:30.", code="range")
        start, end = parse_time(pieces[0]), parse_time(pieces[1])
        if start == time(0) and pieces[0].strip().startswith("24"):
            raise forms.ValidationError("A range cannot start at 24:00.", code="range")
        if _minutes(end) <= _minutes(start) or (start == time(0) and end == time(0)):
            raise forms.ValidationError(f"“{part.strip()}” ends before it starts.", code="order")
        ranges.append((start, end))
    ranges.sort(key=lambda r: _minutes(r[0]))
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        if _minutes(start) < _minutes(end):
            raise forms.ValidationError("These ranges overlap: merge them into one.", code="overlap")
    if len(ranges) > MAX_RANGES_PER_DAY:
        raise forms.ValidationError(f"{MAX_RANGES_PER_DAY} ranges a day at most.", code="too_many")
    return ranges


def format_ranges(ranges: list[slots.Range]) -> str:
    def show(moment: time, *, end: bool) -> str:
        return "24:00" if end and moment == time(0) else f"{moment:%H:%M}"

    return ", ".join(f"{show(s, end=False)}–{show(e, end=True)}" for s, e in ranges)


class RangesField(forms.CharField):
    def prepare_value(self, value: object) -> object:
        return format_ranges(value) if isinstance(value, list) else value

    def clean(self, value: object) -> list[slots.Range]:
        text = super().clean(value) or ""
        return parse_ranges(text)


def format_offsets(minutes: list[int]) -> str:
    def show(m: int) -> str:
        if m % (24 * 60) == 0:
            return f"{m // (24 * 60)}d"
        if m % 60 == 0:
            return f"{m // 60}h"
        return f"{m}m"

    return ", ".join(show(m) for m in sorted(minutes, reverse=True))


class OffsetsField(forms.CharField):
    """Reminder offsets before a session: "24h, 1h", "2d", "30m". Empty: no reminders."""

    def prepare_value(self, value: object) -> object:
        return format_offsets(value) if isinstance(value, list) else value

    def clean(self, value: object) -> list[int]:
        text = super().clean(value) or ""
        found = set()
        for part in (p.strip() for p in re.split(r"[,;]", text) if p.strip()):
            match = _OFFSET.match(part)
            if not match:
                raise forms.ValidationError(f"“{part}” is not a delay: write it like 24h, 90m or 2d.", code="offset")
            unit = match["unit"][0].lower()
            minutes = int(match["n"]) * {"m": 1, "h": 60, "d": 24 * 60}[unit]
            if not 5 <= minutes <= 14 * 24 * 60:
                raise forms.ValidationError(f"“{part}”: reminders go from 5 minutes to 14 days before.", code="range")
            found.add(minutes)
        if len(found) > MAX_REMINDERS:
            raise forms.ValidationError(f"{MAX_REMINDERS} reminders at most.", code="too_many")
        return sorted(found, reverse=True)


# --- Session types ----------------------------------------------------------------------------


class SessionTypeForm(forms.Form):
    name = forms.CharField(label="Name", max_length=120, help_text="What clients see, e.g. “Coaching call”.")
    member = forms.ModelChoiceField(label="With", queryset=User.objects.none(), empty_label=None)
    duration_minutes = forms.IntegerField(label="Length (minutes)", min_value=5, max_value=12 * 60, initial=60)
    hours = forms.DecimalField(
        label="Hours drawn per booking",
        min_value=Decimal("0.01"),
        max_value=Decimal("24"),
        decimal_places=2,
        initial=Decimal("1"),
        help_text="From retainers counted in hours.",
    )
    sessions = forms.IntegerField(
        label="Sessions drawn per booking",
        min_value=1,
        max_value=10,
        initial=1,
        help_text="From retainers counted in sessions.",
    )
    location = forms.CharField(
        label="Where", max_length=500, required=False, help_text="An address, a phone number or the video link."
    )
    reminder_minutes = OffsetsField(
        label="Reminders before",
        required=False,
        initial=[24 * 60],
        help_text="E.g. “24h, 1h”. Both you and the client are reminded. Empty: no reminders.",
    )
    all_retainers = forms.BooleanField(label="Any retainer of any client may book it", required=False, initial=True)
    retainers = forms.ModelMultipleChoiceField(
        label="Only these retainers",
        queryset=Retainer.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Used when the box above is not ticked.",
    )

    def __init__(self, *args: Any, members: QuerySet[User], retainers: QuerySet[Retainer], **kwargs: Any):
        super().__init__(*args, **kwargs)
        member = cast("forms.ModelChoiceField[User]", self.fields["member"])
        member.queryset = members
        member.label_from_instance = lambda user: user.get_full_name()  # type: ignore[method-assign, assignment]  # Django idiom: a per-instance label function, which the stubs see as a method
        chosen = cast("forms.ModelMultipleChoiceField[Retainer]", self.fields["retainers"])
        chosen.queryset = retainers
        chosen.label_from_instance = lambda r: f"{r.client.name}: {r.name} ({r.get_unit_display()})"  # type: ignore[method-assign, assignment]  # Django idiom: a per-instance label function, which the stubs see as a method

    def clean(self) -> dict[str, object]:
        data = super().clean()
        assert data is not None  # Form.clean() returns cleaned_data
        if not data.get("all_retainers") and "retainers" in data and not data["retainers"]:
            self.add_error("retainers", "Choose at least one retainer, or tick the box above.")
        return data


# --- Availability -----------------------------------------------------------------------------------


class ScheduleForm(forms.Form):
    timezone = forms.ChoiceField(label="Time zone", required=False)
    monday = RangesField(label="Monday", required=False)
    tuesday = RangesField(label="Tuesday", required=False)
    wednesday = RangesField(label="Wednesday", required=False)
    thursday = RangesField(label="Thursday", required=False)
    friday = RangesField(label="Friday", required=False)
    saturday = RangesField(label="Saturday", required=False)
    sunday = RangesField(label="Sunday", required=False)
    step_minutes = forms.TypedChoiceField(
        label="Start times", choices=Schedule.Step.choices, coerce=int, initial=Schedule.Step.THIRTY
    )
    buffer_before_minutes = forms.IntegerField(
        label="Free time before each session (minutes)", min_value=0, max_value=240, initial=0
    )
    buffer_after_minutes = forms.IntegerField(
        label="Free time after each session (minutes)", min_value=0, max_value=240, initial=0
    )
    min_notice_hours = forms.IntegerField(
        label="Minimum notice (hours)", min_value=0, max_value=30 * 24, initial=12,
        help_text="How long before a session it can still be booked.",
    )  # fmt: skip
    horizon_days = forms.IntegerField(label="Bookable up to (days ahead)", min_value=1, max_value=365, initial=60)
    daily_cap = forms.IntegerField(
        label="Most sessions a day", min_value=1, max_value=50, required=False, help_text="Empty: no limit."
    )

    def __init__(self, *args: Any, workspace_timezone: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["timezone"]).choices = [
            ("", f"The workspace's ({workspace_timezone})"),
            *timezone_choices(),
        ]
        for day in WEEKDAYS:
            self.fields[day].help_text = "E.g. 9:00-12:30, 13:30-17:00. Empty: not available."
            self.fields[day].widget.attrs["autocomplete"] = "off"
        self.fields["sunday"].help_text = "Empty: not available."


class OverrideForm(forms.Form):
    on = DateField(label="Date", widget=forms.DateInput(attrs={"type": "date"}))
    unavailable = forms.BooleanField(label="Not available that day", required=False)
    hours = RangesField(
        label="Hours that day", required=False, help_text="E.g. 10:00-14:00; they replace the weekday's."
    )

    def clean(self) -> dict[str, object]:
        data = super().clean()
        assert data is not None  # Form.clean() returns cleaned_data
        if "hours" in data and not data.get("unavailable") and not data["hours"]:
            self.add_error("hours", "Enter the day's hours, or tick “Not available that day”.")
        if data.get("unavailable") and data.get("hours"):
            self.add_error("hours", "Leave the hours empty when you are not available all day.")
        return data


# --- Calendar --------------------------------------------------------------------------------------


class CalendarConnectForm(forms.Form):
    url = forms.URLField(
        label="CalDAV address",
        max_length=1000,
        assume_scheme="https",
        help_text="Your calendar's (or your account's) CalDAV address, e.g. https://caldav.fastmail.com/",
    )
    username = forms.CharField(label="Username", max_length=254, help_text="Usually your email address.")
    password = forms.CharField(
        label="App password",
        max_length=500,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Make one in your calendar account's security settings; it is stored encrypted.",
    )


# --- A retainer's booking policy ----------------------------------------------------------------------


class BookingPolicyForm(forms.Form):
    cancel_window_hours = forms.IntegerField(
        label="Cancellation window (hours)",
        min_value=0,
        max_value=30 * 24,
        help_text="Clients move or cancel freely until this long before a session.",
    )
    late_cancel = forms.ChoiceField(label="Cancelled later than that", choices=BookingPolicy.LateCancel.choices)
    no_show = forms.ChoiceField(label="The client does not come", choices=BookingPolicy.NoShow.choices)
    nudge_after_days = forms.IntegerField(
        label="Nudge to book after (days)",
        min_value=1,
        max_value=365,
        required=False,
        help_text="Email the client when nothing was booked this long. Empty: never.",
    )
