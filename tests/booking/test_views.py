"""The consultant's booking set-up pages (delivery.booking_views): they work, they show errors next to
fields, bad input never 500s, and another workspace's visitor gets 404 everywhere."""

from __future__ import annotations

import re
from datetime import date, time
from decimal import Decimal as D

import pytest

from delivery import booking_setup, feeds
from delivery.models import BookingPolicy, CalendarConnection, DateOverride, Schedule, SessionType, WeeklyHours
from tests import factories
from tests.booking.conftest import RADICALE_PASSWORD, RADICALE_USER

pytestmark = pytest.mark.django_db


def url(workspace, path: str) -> str:
    return f"/w/{workspace.slug}/{path}"


def html(response) -> str:
    return response.content.decode()


def field_error(response, field: str) -> str:
    """The error shown under one field (forms/field.html puts it in #id_<field>_error)."""
    match = re.search(rf'<ul class="errorlist" id="id_{field}_error"><li>(.*?)</li>', html(response))
    assert match, f"no error shown for {field}"
    return match.group(1)


# --- Session types ------------------------------------------------------------------------------------


def test_a_member_adds_and_edits_a_session_type(member_client, workspace, bob, retainer):
    assert member_client.get(url(workspace, "booking/session-types/")).status_code == 200
    assert member_client.get(url(workspace, "booking/session-types/new/")).status_code == 200
    response = member_client.post(
        url(workspace, "booking/session-types/new/"),
        {
            "name": "Strategy call",
            "member": bob.pk,
            "duration_minutes": "45",
            "hours": "0.75",
            "sessions": "1",
            "location": "Zoom",
            "reminder_minutes": "1d, 2h",
            "retainers": [retainer.pk],
        },
    )
    assert response.status_code == 302
    made = SessionType.objects.get(workspace=workspace)
    assert (made.member, made.duration_minutes, made.hours, made.reminder_minutes) == (bob, 45, D("0.75"), [1440, 120])
    assert not made.all_retainers and [link.retainer for link in made.retainer_links.all()] == [retainer]
    page = member_client.get(url(workspace, f"booking/session-types/{made.pk}/"))
    assert 'value="1d, 2h"' in html(page)
    response = member_client.post(
        url(workspace, f"booking/session-types/{made.pk}/"),
        {"name": "Strategy call", "member": bob.pk, "duration_minutes": "60", "hours": "1", "sessions": "1",
         "reminder_minutes": "", "all_retainers": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    made.refresh_from_db()
    assert made.all_retainers and made.reminder_minutes == [] and made.retainer_links.count() == 0
    assert (
        member_client.post(url(workspace, f"booking/session-types/{made.pk}/active/"), {"active": "0"}).status_code
        == 302
    )
    made.refresh_from_db()
    assert not made.active and "Not bookable" in html(member_client.get(url(workspace, "booking/session-types/")))


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required"),
        ({"duration_minutes": "0"}, "duration_minutes", "greater than or equal to 5"),
        ({"hours": "abc"}, "hours", "Enter a number"),
        ({"reminder_minutes": "tomorrow"}, "reminder_minutes", "is not a delay"),
        ({"reminder_minutes": "30d"}, "reminder_minutes", "from 5 minutes to 14 days"),
        ({"all_retainers": ""}, "retainers", "Choose at least one retainer"),
        ({"member": "999999"}, "member", "Select a valid choice"),
    ],
)
def test_bad_session_type_input_shows_an_error_next_to_the_field(member_client, workspace, bob, data, field, message):
    values = {"name": "Call", "member": bob.pk, "duration_minutes": "60", "hours": "1", "sessions": "1",
              "all_retainers": "on", **data}  # fmt: skip
    values = {k: v for k, v in values.items() if v != ""}
    response = member_client.post(url(workspace, "booking/session-types/new/"), values)
    assert response.status_code == 200
    assert message in field_error(response, field)
    assert SessionType.objects.count() == 0


def test_names_are_unique_per_member(member_client, workspace, bob, session_type):
    data = {"name": "coaching CALL", "member": bob.pk, "duration_minutes": "60", "hours": "1", "sessions": "1",
            "all_retainers": "on"}  # fmt: skip
    response = member_client.post(url(workspace, "booking/session-types/new/"), data)
    assert "already has a session type with that name" in field_error(response, "name")


def test_plain_members_set_up_their_own_sessions_only(member_client, owner_client, workspace, alice, bob, session_type):
    theirs = booking_setup.save_session_type(
        workspace=workspace, session_type=None, member=alice, name="Audit", duration_minutes=30, hours=D("0.5"),
        sessions=1, location="", reminder_minutes=[], all_retainers=True, retainers=[],
    )  # fmt: skip
    assert member_client.get(url(workspace, f"booking/session-types/{theirs.pk}/")).status_code == 403
    assert member_client.post(url(workspace, f"booking/session-types/{theirs.pk}/active/")).status_code == 403
    response = member_client.post(
        url(workspace, "booking/session-types/new/"),
        {"name": "For Alice", "member": alice.pk, "duration_minutes": "30", "hours": "1", "sessions": "1", "all_retainers": "on"},
    )  # fmt: skip
    assert "Select a valid choice" in field_error(response, "member")
    assert owner_client.get(url(workspace, f"booking/session-types/{session_type.pk}/")).status_code == 200
    listed = html(member_client.get(url(workspace, "booking/session-types/")))
    assert f"session-types/{session_type.pk}/" in listed and f"session-types/{theirs.pk}/" not in listed


# --- Availability ---------------------------------------------------------------------------------------


def availability_data(**changes) -> dict[str, str]:
    data = {
        "timezone": "America/New_York",
        "monday": "9-12:30, 1:30pm to 5pm",
        "tuesday": "09:00–17:00",
        "wednesday": "",
        "thursday": "22:00-24:00",
        "friday": "9am-11am",
        "saturday": "",
        "sunday": "",
        "step_minutes": "15",
        "buffer_before_minutes": "5",
        "buffer_after_minutes": "10",
        "min_notice_hours": "24",
        "horizon_days": "30",
        "daily_cap": "4",
    }
    data.update(changes)
    return data


def test_a_member_saves_their_availability(member_client, workspace, bob):
    page = member_client.get(url(workspace, "booking/availability/"))
    assert page.status_code == 200 and "The workspace&#x27;s (Europe/London)" in html(page)
    assert not Schedule.objects.exists()  # looking writes nothing
    response = member_client.post(url(workspace, "booking/availability/"), availability_data())
    assert response.status_code == 302
    schedule = Schedule.objects.get(workspace=workspace, member=bob)
    assert (schedule.timezone, schedule.step_minutes, schedule.min_notice_minutes, schedule.daily_cap) == (
        "America/New_York", 15, 24 * 60, 4,
    )  # fmt: skip
    hours = sorted(WeeklyHours.objects.filter(schedule=schedule).values_list("weekday", "starts", "ends"))
    assert hours == [
        (0, time(9), time(12, 30)),
        (0, time(13, 30), time(17)),
        (1, time(9), time(17)),
        (3, time(22), time(0)),
        (4, time(9), time(11)),
    ]
    page = html(member_client.get(url(workspace, "booking/availability/")))
    assert 'value="09:00–12:30, 13:30–17:00"' in page and 'value="22:00–24:00"' in page


@pytest.mark.parametrize(
    ("day", "value", "message"),
    [
        ("monday", "9", "is not a range"),
        ("monday", "12-9", "ends before it starts"),
        ("monday", "9-12, 11-14", "overlap"),
        ("tuesday", "25:00-26:00", "is not a time"),
        ("tuesday", "13pm-2pm", "hours go from 1 to 12"),
        ("friday", "lunch", "is not a range"),
    ],
)
def test_bad_hours_show_an_error_next_to_the_day(member_client, workspace, bob, day, value, message):
    response = member_client.post(url(workspace, "booking/availability/"), availability_data(**{day: value}))
    assert response.status_code == 200
    assert message in field_error(response, day)
    assert not WeeklyHours.objects.exists()


def test_other_bad_availability_input(member_client, workspace):
    response = member_client.post(
        url(workspace, "booking/availability/"),
        availability_data(timezone="Mars/Olympus", horizon_days="1000", step_minutes="7", daily_cap="-1"),
    )
    assert response.status_code == 200
    for field in ("timezone", "horizon_days", "step_minutes", "daily_cap"):
        field_error(response, field)


def test_date_overrides_are_added_and_removed(member_client, workspace, bob, now):
    assert member_client.post(url(workspace, "booking/availability/overrides/"), {"on": "2026-03-20", "unavailable": "on"}).status_code == 302  # fmt: skip
    assert member_client.post(url(workspace, "booking/availability/overrides/"), {"on": "2026-03-21", "hours": "10-14"}).status_code == 302  # fmt: skip
    rows = sorted(DateOverride.objects.values_list("on", "starts", "ends"))
    assert rows == [(date(2026, 3, 20), None, None), (date(2026, 3, 21), time(10), time(14))]
    page = html(member_client.get(url(workspace, "booking/availability/")))
    assert "Not available" in page and "10:00–14:00" in page
    response = member_client.post(url(workspace, "booking/availability/overrides/"), {"on": "2026-03-21"})
    assert "or tick" in field_error(response, "hours")
    response = member_client.post(
        url(workspace, "booking/availability/overrides/"), {"on": "2026-03-01", "unavailable": "on"}
    )
    assert "today or a later date" in field_error(response, "on")
    response = member_client.post(url(workspace, "booking/availability/overrides/"), {"on": "someday"})
    assert response.status_code == 200 and field_error(response, "on")
    assert (
        member_client.post(url(workspace, "booking/availability/overrides/remove/"), {"on": "2026-03-20"}).status_code
        == 302
    )
    assert (
        member_client.post(url(workspace, "booking/availability/overrides/remove/"), {"on": "garbage"}).status_code
        == 404
    )
    assert list(DateOverride.objects.values_list("on", flat=True)) == [date(2026, 3, 21)]


# --- Calendar -----------------------------------------------------------------------------------------


def test_the_calendar_page_connects_syncs_and_disconnects(member_client, workspace, bob, radicale, caldav_settings):
    assert "Connect calendar" in html(member_client.get(url(workspace, "booking/calendar/")))
    calendar_url = radicale.new_calendar()
    response = member_client.post(
        url(workspace, "booking/calendar/"), {"url": calendar_url, "username": RADICALE_USER, "password": "nope"}
    )
    assert "refused this username" in field_error(response, "password")
    assert RADICALE_PASSWORD not in html(response) and "nope" not in html(response)  # passwords are never echoed
    response = member_client.post(
        url(workspace, "booking/calendar/"),
        {"url": calendar_url, "username": RADICALE_USER, "password": RADICALE_PASSWORD},
        follow=True,
    )
    assert "Calendar synced" in html(response) and "Working" in html(response)
    assert member_client.post(url(workspace, "booking/calendar/sync/"), follow=True).status_code == 200
    assert member_client.post(url(workspace, "booking/calendar/disconnect/")).status_code == 302
    assert not CalendarConnection.objects.exists()
    assert member_client.post(url(workspace, "booking/calendar/sync/")).status_code == 404


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"url": "not a url", "username": "bob", "password": "x"}, "url"),
        ({"url": "http://127.0.0.1:9/", "username": "bob", "password": "x"}, "url"),
        ({"url": "https://cal.example.com/", "username": "", "password": "x"}, "username"),
        ({"url": "https://cal.example.com/", "username": "bob", "password": ""}, "password"),
    ],
)
def test_bad_calendar_input_shows_an_error_next_to_the_field(member_client, workspace, caldav_settings, data, field):
    response = member_client.post(url(workspace, "booking/calendar/"), data)
    assert response.status_code == 200 and field_error(response, field)
    assert not CalendarConnection.objects.exists()


def test_the_subscription_url_is_made_shown_and_replaced(member_client, client, workspace, bob):
    member_client.post(url(workspace, "booking/calendar/feed/"))
    first = feeds.feed_url(feeds.current_feed(workspace, bob))
    assert first in html(member_client.get(url(workspace, "booking/calendar/")))
    member_client.post(url(workspace, "booking/calendar/feed/"))
    second = feeds.feed_url(feeds.current_feed(workspace, bob))
    assert second != first
    assert client.get(first.removeprefix("http://127.0.0.1:8000")).status_code == 404
    assert client.get(second.removeprefix("http://127.0.0.1:8000")).status_code == 200
    assert client.head(second.removeprefix("http://127.0.0.1:8000")).status_code == 200  # some calendars check first
    member_client.post(url(workspace, "booking/calendar/feed/revoke/"))
    assert feeds.current_feed(workspace, bob) is None


# --- A retainer's booking policy -------------------------------------------------------------------------


def test_a_retainers_booking_policy_is_set(member_client, workspace, retainer):
    page = member_client.get(url(workspace, f"retainers/{retainer.pk}/booking-policy/"))
    assert page.status_code == 200 and 'value="24"' in html(page)  # the defaults, not saved
    assert not BookingPolicy.objects.exists()
    response = member_client.post(
        url(workspace, f"retainers/{retainer.pk}/booking-policy/"),
        {"cancel_window_hours": "48", "late_cancel": "return", "no_show": "consume", "nudge_after_days": "21"},
    )
    assert response.status_code == 302
    policy = BookingPolicy.objects.get(retainer=retainer)
    assert (policy.cancel_window_hours, policy.late_cancel, policy.no_show, policy.nudge_after_days) == (
        48,
        "return",
        "consume",
        21,
    )
    response = member_client.post(
        url(workspace, f"retainers/{retainer.pk}/booking-policy/"),
        {"cancel_window_hours": "-3", "late_cancel": "maybe", "no_show": "consume", "nudge_after_days": "0"},
    )
    assert response.status_code == 200
    for field in ("cancel_window_hours", "late_cancel", "nudge_after_days"):
        field_error(response, field)


# --- Tenancy ---------------------------------------------------------------------------------------------


PAGES = [
    ("get", "booking/session-types/"),
    ("get", "booking/session-types/new/"),
    ("get", "booking/session-types/{session_type}/"),
    ("post", "booking/session-types/{session_type}/active/"),
    ("get", "booking/availability/"),
    ("post", "booking/availability/"),
    ("post", "booking/availability/overrides/"),
    ("post", "booking/availability/overrides/remove/"),
    ("get", "booking/calendar/"),
    ("post", "booking/calendar/"),
    ("post", "booking/calendar/sync/"),
    ("post", "booking/calendar/disconnect/"),
    ("post", "booking/calendar/feed/"),
    ("post", "booking/calendar/feed/revoke/"),
    ("get", "retainers/{retainer}/booking-policy/"),
    ("post", "retainers/{retainer}/booking-policy/"),
]


@pytest.mark.parametrize(("method", "path"), PAGES)
def test_another_workspace_gets_404_at_every_url(outsider_client, workspace, session_type, retainer, method, path):
    response = getattr(outsider_client, method)(
        url(workspace, path.format(session_type=session_type.pk, retainer=retainer.pk))
    )
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["booking/session-types/{session_type}/", "retainers/{retainer}/booking-policy/"])
def test_another_workspaces_objects_are_404_in_mine(owner_client, workspace, other_workspace, charlie, path):
    theirs = factories.make_retainer(workspace=other_workspace)
    their_type = booking_setup.save_session_type(
        workspace=other_workspace, session_type=None, member=charlie, name="Theirs", duration_minutes=30,
        hours=D("1"), sessions=1, location="", reminder_minutes=[], all_retainers=True, retainers=[],
    )  # fmt: skip
    response = owner_client.get(url(workspace, path.format(session_type=their_type.pk, retainer=theirs.pk)))
    assert response.status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(client, workspace):
    response = client.get(url(workspace, "booking/availability/"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
