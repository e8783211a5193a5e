"""The consultant's booking set-up: session types, a member's schedule and overrides, retainer policies.

Small writes, each one function the views (and the demo, and tests) call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal

from django.db import transaction

from clients.models import Retainer, RetainerTerms
from delivery import slots
from delivery.models import BookingPolicy, DateOverride, Schedule, SessionType, SessionTypeRetainer, WeeklyHours
from retainers.models import Membership, User, Workspace


class SetupError(Exception):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def schedule_of(workspace: Workspace, member: User) -> Schedule:
    """The member's schedule, made with the defaults on first use."""
    schedule, _ = Schedule.objects.get_or_create(workspace=workspace, member=member)
    return schedule


def weekly_ranges(schedule: Schedule) -> dict[int, list[slots.Range]]:
    ranges: dict[int, list[slots.Range]] = {day: [] for day in range(7)}
    if schedule.pk is None:
        return ranges
    for hours in WeeklyHours.objects.filter(workspace_id=schedule.workspace_id, schedule=schedule):
        ranges[hours.weekday].append((hours.starts, hours.ends))
    return ranges


@transaction.atomic
def save_schedule(
    *, workspace: Workspace, member: User, settings: Mapping[str, object], weekly: Mapping[int, Sequence[slots.Range]]
) -> Schedule:
    """Replace the member's booking rules and weekly hours. Existing bookings keep their times."""
    schedule = Schedule.objects.select_for_update().get(pk=schedule_of(workspace, member).pk)
    for name in (
        "timezone",
        "buffer_before_minutes",
        "buffer_after_minutes",
        "min_notice_minutes",
        "horizon_days",
        "daily_cap",
        "step_minutes",
    ):
        setattr(schedule, name, settings[name])
    schedule.save()
    WeeklyHours.objects.filter(workspace=workspace, schedule=schedule).delete()
    WeeklyHours.objects.bulk_create(
        WeeklyHours(workspace=workspace, schedule=schedule, weekday=day, starts=start, ends=end)
        for day, ranges in sorted(weekly.items())
        for start, end in ranges
    )
    return schedule


@transaction.atomic
def set_override(*, workspace: Workspace, member: User, on: date, ranges: Sequence[slots.Range]) -> None:
    """Give one date its own hours (none: unavailable all day), replacing what it had."""
    schedule = schedule_of(workspace, member)
    DateOverride.objects.filter(workspace=workspace, schedule=schedule, on=on).delete()
    if not ranges:
        DateOverride.objects.create(workspace=workspace, schedule=schedule, on=on)
        return
    DateOverride.objects.bulk_create(
        DateOverride(workspace=workspace, schedule=schedule, on=on, starts=start, ends=end) for start, end in ranges
    )


@transaction.atomic
def clear_override(*, workspace: Workspace, member: User, on: date) -> None:
    schedule = schedule_of(workspace, member)
    DateOverride.objects.filter(workspace=workspace, schedule=schedule, on=on).delete()


def overrides(schedule: Schedule, *, since: date) -> list[tuple[date, list[slots.Range]]]:
    """The schedule's date overrides from `since` on, each date with its ranges ([] = unavailable)."""
    days: dict[date, list[slots.Range]] = {}
    if schedule.pk is None:
        return []
    for override in DateOverride.objects.filter(
        workspace_id=schedule.workspace_id, schedule=schedule, on__gte=since
    ).order_by("on", "starts"):
        days.setdefault(override.on, [])
        if override.starts is not None and override.ends is not None:  # both or neither (a check constraint)
            days[override.on].append((override.starts, override.ends))
    return sorted(days.items())


@transaction.atomic
def save_session_type(
    *,
    workspace: Workspace,
    session_type: SessionType | None,
    member: User,
    name: str,
    duration_minutes: int,
    hours: Decimal,
    sessions: int,
    location: str,
    reminder_minutes: list[int],
    all_retainers: bool,
    retainers: Iterable[Retainer],
) -> SessionType:
    """Create or change a session type. Bookings made already keep their times and units."""
    if not Membership.objects.filter(workspace=workspace, user=member).exists():
        raise SetupError("Choose a member of this workspace.", field="member")
    name = name.strip()
    clash = SessionType.objects.for_workspace(workspace).filter(member=member, name__iexact=name)
    if session_type is not None:
        clash = clash.exclude(pk=session_type.pk)
    if clash.exists():
        raise SetupError("This member already has a session type with that name.", field="name")
    retainers = [r for r in retainers if r.workspace_id == workspace.pk and r.model != RetainerTerms.Model.DELIVERABLES]
    if not all_retainers and not retainers:
        raise SetupError("Choose at least one retainer counted in hours or sessions.", field="retainers")
    session_type = session_type or SessionType(workspace=workspace)
    session_type.member = member
    session_type.name = name
    session_type.duration_minutes = duration_minutes
    session_type.hours = hours
    session_type.sessions = sessions
    session_type.location = location.strip()
    session_type.reminder_minutes = reminder_minutes
    session_type.all_retainers = all_retainers
    session_type.save()
    SessionTypeRetainer.objects.filter(workspace=workspace, session_type=session_type).delete()
    if not all_retainers:
        SessionTypeRetainer.objects.bulk_create(
            SessionTypeRetainer(workspace=workspace, session_type=session_type, retainer=r) for r in retainers
        )
    return session_type


@transaction.atomic
def set_session_type_active(*, session_type: SessionType, active: bool) -> SessionType:
    """Deactivate (no new bookings; booked sessions stay) or bring back a session type."""
    SessionType.objects.filter(pk=session_type.pk).update(active=active)
    session_type.active = active
    return session_type


@transaction.atomic
def save_policy(
    *,
    retainer: Retainer,
    cancel_window_hours: int,
    late_cancel: str,
    no_show: str,
    nudge_after_days: int | None,
) -> BookingPolicy:
    policy, _ = BookingPolicy.objects.update_or_create(
        workspace_id=retainer.workspace_id,
        retainer=retainer,
        defaults={
            "cancel_window_hours": cancel_window_hours,
            "late_cancel": late_cancel,
            "no_show": no_show,
            "nudge_after_days": nudge_after_days,
        },
    )
    return policy
