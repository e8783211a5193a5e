"""The consultant's side of bookings (delivery.agenda, delivery.agenda_views): bookings on the dashboard
("today", "this week", "to settle"), on the client page and the retainer page; booking on a client's
behalf; marking a booking held (a delivered session in the ledger, in one step), a no-show or cancelled,
as an htmx partial and as a plain form. Another workspace's member gets 404.

Times: Monday 9 March 2026 in London (UTC). Bob takes bookings; Carol is Acme's contact.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
import time_machine

from delivery import booking
from delivery.models import Booking, LedgerEntry, WorkItem
from retainers.models import Email
from tests.booking.conftest import at

pytestmark = pytest.mark.django_db


def url(workspace, path: str = "") -> str:
    return f"/w/{workspace.slug}/{path}"


def html(response) -> str:
    return response.content.decode()


def book(session_type, retainer, carol, when) -> Booking:
    return booking.book(
        session_type=session_type, retainer=retainer, starts_at=when, actor=carol.user, contact=carol, now=at(2, 9)
    )


@pytest.fixture
def week(now, session_type, retainer, carol):
    """Booked on 2 March: one session that took place last Friday (to settle), one this afternoon, one on
    Wednesday, one next week."""
    with time_machine.travel(at(2, 9), tick=False):
        return {
            "friday": book(session_type, retainer, carol, at(6, 14)),
            "today": book(session_type, retainer, carol, at(9, 15)),
            "wednesday": book(session_type, retainer, carol, at(11, 10)),
            "next_week": book(session_type, retainer, carol, at(16, 10)),
        }


def hx(client, path: str, data: dict):
    return client.post(path, data, HTTP_HX_REQUEST="true")


# --- Where bookings show ------------------------------------------------------------------------------


def test_the_dashboard_shows_today_this_week_and_what_to_settle(week, workspace, owner_client):
    page = html(owner_client.get(url(workspace)))
    section = page[page.index('id="bookings"') :]
    to_settle, today, later = (
        section.index("<h3>To settle</h3>"),
        section.index("<h3>Today</h3>"),
        section.index("<h3>This week</h3>"),
    )
    assert to_settle < section.index(f'id="booking-{week["friday"].pk}"') < today
    assert today < section.index(f'id="booking-{week["today"].pk}"') < later
    assert later < section.index(f'id="booking-{week["wednesday"].pk}"')
    assert f'id="booking-{week["next_week"].pk}"' not in page
    # Friday's has taken place: it can be marked held or a no-show; today's cannot yet.
    friday_row = section[section.index(f'id="booking-{week["friday"].pk}"') :]
    friday_row = friday_row[: friday_row.index("</tr>")]
    assert "To settle" in friday_row and f"/bookings/{week['friday'].pk}/held/" in friday_row
    today_row = section[section.index(f'id="booking-{week["today"].pk}"') :]
    assert "/held/" not in today_row[: today_row.index("</tr>")]


def test_the_cached_dashboard_knows_when_a_session_has_started(week, workspace, owner_client, settings):
    settings.PAGE_CACHE_SECONDS = 600
    assert f"/bookings/{week['today'].pk}/held/" not in html(owner_client.get(url(workspace)))
    with time_machine.travel(at(9, 15, 5), tick=False):  # nothing written since: the same cached lines
        assert f"/bookings/{week['today'].pk}/held/" in html(owner_client.get(url(workspace)))


def test_a_workspace_without_bookings_shows_no_bookings_card(workspace, owner_client):
    assert 'id="bookings"' not in html(owner_client.get(url(workspace)))


def test_the_client_page_and_the_retainer_page_list_the_bookings(week, workspace, owner_client, retainer, acme):
    client_page = html(owner_client.get(url(workspace, f"clients/{acme.pk}/")))
    assert all(f'id="booking-{b.pk}"' in client_page for b in week.values())
    assert f"bookings/new/?client={acme.pk}" in client_page
    retainer_page = html(owner_client.get(url(workspace, f"retainers/{retainer.pk}/")))
    assert all(f'id="booking-{b.pk}"' in retainer_page for b in week.values())
    assert re.search(r'id="stat-booked">4.00<', retainer_page)  # apart from used and remaining
    assert re.search(r'id="stat-remaining">10.00 ', retainer_page)
    assert f"retainers/{retainer.pk}/booking-policy/" in retainer_page


def test_the_bookings_page_lists_those_to_settle_first_and_past_ones_apart(week, workspace, owner_client, bob):
    page = html(owner_client.get(url(workspace, "bookings/")))
    order = [int(pk) for pk in re.findall(r'<tr id="booking-(\d+)"', page)]
    assert order == [week[k].pk for k in ("friday", "today", "wednesday", "next_week")]
    assert 'href="/w/' in page and "Session types" in page  # the set-up tabs
    booking.cancel(booking=week["next_week"], actor=bob)
    past = html(owner_client.get(url(workspace, "bookings/?show=past")))
    assert re.findall(r'<tr id="booking-(\d+)"', past) == [str(week["next_week"].pk)] and "Cancelled" in past
    assert re.findall(r'<tr id="booking-(\d+)"', html(owner_client.get(url(workspace, "bookings/?who=me")))) == []


# --- Settling ----------------------------------------------------------------------------------------


def test_marking_held_records_the_session_and_answers_htmx_with_the_row(week, workspace, owner_client, alice, bob):
    made = week["friday"]
    response = hx(
        owner_client,
        url(workspace, f"bookings/{made.pk}/held/"),
        {"next": url(workspace), "origin": "dashboard", "show_client": "1"},
    )
    assert response.status_code == 200
    row = html(response)
    assert row.lstrip().startswith(f'<tr id="booking-{made.pk}"') and "Held" in row and "/held/" not in row
    assert "Held: 1 hour recorded on Coaching." in row
    assert json.loads(response.headers["HX-Trigger"]) == {"work-recorded": {"retainer": made.retainer_id}}
    made.refresh_from_db()
    item = WorkItem.objects.get(pk=made.work_item_id)
    assert (made.status, made.settled_by) == (Booking.Status.HELD, alice)
    assert (item.quantity, item.delivered_by, item.description) == (D("1"), bob, "Coaching call")
    assert LedgerEntry.objects.get(work_item=item).quantity == D("-1")


def test_marking_held_on_the_retainer_page_refreshes_its_figures_too(week, workspace, owner_client, retainer):
    response = hx(
        owner_client,
        url(workspace, f"bookings/{week['friday'].pk}/held/"),
        {"next": url(workspace, f"retainers/{retainer.pk}/"), "origin": "retainer"},
    )
    body = html(response)
    # The bookings section comes back whole (the held one gone from it, with word of what happened)...
    assert response.headers["HX-Retarget"] == "#bookings"
    assert body.lstrip().startswith('<section id="bookings"')
    assert "Held: 1 hour recorded on Coaching." in body and f'id="booking-{week["friday"].pk}"' not in body
    # ...with the period's figures and the work list out of band.
    assert re.search(r'<section id="period-stats"[^>]*hx-swap-oob="true"', body)
    assert re.search(r'id="stat-remaining">9.00 ', body) and re.search(r'id="stat-booked">3.00<', body)
    work_list = body[body.index('<section id="work-list"') :]
    assert 'hx-swap-oob="true"' in work_list[:200] and '<td data-label="Work">Coaching call</td>' in work_list


def test_without_javascript_settling_comes_back_to_the_page_with_a_message(week, workspace, owner_client, acme):
    back = url(workspace, f"clients/{acme.pk}/")
    response = owner_client.post(url(workspace, f"bookings/{week['friday'].pk}/no-show/"), {"next": back}, follow=True)
    assert response.redirect_chain == [(back, 302)]
    assert "No-show: its units are used, as the retainer&#x27;s policy says." in html(response)
    assert Booking.objects.get(pk=week["friday"].pk).status == Booking.Status.NO_SHOW
    # A next that leaves the site is not followed.
    response = owner_client.post(
        url(workspace, f"bookings/{week['wednesday'].pk}/cancel/"), {"next": "https://evil.example/"}
    )
    assert response.url == url(workspace, "bookings/")


def test_a_session_that_has_not_started_cannot_be_marked_held(week, workspace, owner_client):
    response = hx(owner_client, url(workspace, f"bookings/{week['wednesday'].pk}/held/"), {"origin": "dashboard"})
    assert response.status_code == 200
    assert "This session has not started yet." in html(response) and "HX-Trigger" not in response.headers
    assert Booking.objects.get(pk=week["wednesday"].pk).status == Booking.Status.BOOKED
    assert not WorkItem.objects.exists()


def test_a_member_cancels_freely_or_late_on_purpose(week, workspace, member_client, carol):
    hx(member_client, url(workspace, f"bookings/{week['wednesday'].pk}/cancel/"), {})
    response = hx(member_client, url(workspace, f"bookings/{week['next_week'].pk}/cancel/"), {"late": "1"})
    assert "Cancelled late: its units are used" in html(response)
    assert Booking.objects.get(pk=week["wednesday"].pk).status == Booking.Status.CANCELLED
    assert Booking.objects.get(pk=week["next_week"].pk).status == Booking.Status.LATE_CANCELLED
    # Carol hears of both, with the invitation cancelled.
    assert Email.objects.filter(to=carol.email, key__contains="-cancelled-").count() == 2


def test_another_workspace_cannot_see_or_settle_these_bookings(week, workspace, outsider_client):
    for name in ("held", "no-show", "cancel"):
        assert outsider_client.post(url(workspace, f"bookings/{week['friday'].pk}/{name}/")).status_code == 404
    assert outsider_client.get(url(workspace, "bookings/")).status_code == 404
    assert outsider_client.get(url(workspace, "bookings/new/")).status_code == 404
    assert Booking.objects.get(pk=week["friday"].pk).status == Booking.Status.BOOKED


def test_a_booking_of_another_workspace_is_404_in_ones_own(week, other_workspace, outsider_client):
    path = f"/w/{other_workspace.slug}/bookings/{week['friday'].pk}/held/"
    assert outsider_client.post(path).status_code == 404


# --- Booking on a client's behalf ---------------------------------------------------------------------------


def test_a_member_books_for_a_client_and_names_who_attends(
    now, workspace, session_type, retainer, acme, carol, member_client, bob
):
    start = url(workspace, "bookings/new/")
    assert "Choose a client" in html(member_client.get(start))
    times = html(member_client.get(start, {"client": acme.pk}))
    assert "Coaching call with Bob Baker" in times and "10 hours left to book until 31 March." in times
    link = re.search(r'href="([^"]*start=20260310T0900Z[^"]*)">09:00<', times).group(1).replace("&amp;", "&")
    confirm = html(member_client.get(link))
    assert "Tuesday 10 March 2026, 09:00–10:00 (Europe/London)" in confirm and "Carol Client" in confirm
    response = member_client.post(
        start,
        {"client": acme.pk, "type": session_type.pk, "retainer": retainer.pk, "start": "20260310T0900Z",
         "attendee": carol.pk},
    )  # fmt: skip
    assert response.status_code == 302 and response.url == url(workspace, f"clients/{acme.pk}/")
    made = Booking.objects.get()
    assert (made.booked_by, made.contact, made.member, made.starts_at) == (bob, carol, bob, at(10, 9))
    assert Email.objects.filter(to=carol.email, key=f"booking-{made.pk}-confirmed-0-contact").exists()


def test_booking_for_a_client_refuses_a_taken_time_and_writes_nothing(
    now, workspace, session_type, retainer, acme, carol, member_client
):
    book(session_type, retainer, carol, at(10, 9))
    data = {"client": acme.pk, "type": session_type.pk, "retainer": retainer.pk, "start": "20260310T0900Z"}
    response = member_client.post(url(workspace, "bookings/new/"), {**data, "attendee": "x"})
    assert response.status_code == 200 and "That time was just taken" in html(response)
    assert Booking.objects.count() == 1


def test_a_client_of_another_workspace_cannot_be_booked(now, workspace, other_workspace, member_client):
    from tests import factories

    theirs = factories.ClientFactory(workspace=other_workspace)
    page = html(member_client.get(url(workspace, "bookings/new/"), {"client": theirs.pk}))
    assert "Choose a client" in page and theirs.name not in page


def test_times_in_links_are_utc_to_the_minute():
    from delivery.agenda import parse_stamp, stamp

    moment = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert stamp(moment) == "20260329T0130Z" and parse_stamp("20260329T0130Z") == moment
    assert parse_stamp("2026-03-29") is None and parse_stamp("") is None
