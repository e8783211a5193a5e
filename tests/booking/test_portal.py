"""The portal's booking pages (portal.booking): a contact books, moves and cancels a session in their own
time zone, with plain links and forms (no JavaScript needed); refusals show a clear message and write
nothing; another client's bookings are 404. The overview shows the sessions and the booked units.

Times: now is Monday 9 March 2026, 09:00 in London (UTC); Carol reads times in New York (UTC-4 since
8 March). Bob's first free hour is Tuesday 10 March 09:00 London, 05:00 for Carol.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal as D

import pytest

from clients.models import Contact
from delivery import booking, booking_setup
from delivery.models import Booking, BookingPolicy
from retainers.models import Email
from tests import factories
from tests.booking.conftest import at

pytestmark = pytest.mark.django_db

TUESDAY_9_LONDON = "20260310T0900Z"  # 05:00 in New York


@pytest.fixture
def carol_browser(carol, login):
    return login(carol.user)


def portal(workspace, path: str = "") -> str:
    return f"/portal/w/{workspace.slug}/{path}"


def html(response) -> str:
    return response.content.decode()


def book_as(carol, session_type, retainer, when) -> Booking:
    return booking.book(session_type=session_type, retainer=retainer, starts_at=when, actor=carol.user, contact=carol)


# --- Seeing free times ------------------------------------------------------------------------------------


def test_the_booking_page_lists_free_times_in_the_contacts_zone(now, workspace, session_type, retainer, carol_browser):
    response = carol_browser.get(portal(workspace, "book/"))
    assert response.status_code == 200
    page = html(response)
    assert "Coaching call with Bob Baker" in page
    assert "Times in America/New_York" in page
    # Tuesday's first free hour, 09:00 in London, is a plain link labelled in Carol's time.
    first = re.search(rf'href="([^"]*start={TUESDAY_9_LONDON}[^"]*)">(\d\d:\d\d)<', page)
    assert first and first.group(2) == "05:00"
    assert "Tuesday 10 March" in page and "Monday 9 March" not in page  # 12 hours' notice: none today
    assert "10 hours left to book until 31 March." in page
    # Seven days at a time, from the first with a free time: the next ones are one link away.
    assert "Monday 16 March" in page and "Tuesday 17 March" not in page
    later = re.search(r'href="([^"]*from=2026-03-17[^"]*)" rel="next"', page).group(1).replace("&amp;", "&")
    assert "Tuesday 17 March" in html(carol_browser.get(later))


def test_the_zone_detected_or_chosen_is_saved_on_the_contact(now, workspace, session_type, retainer, carol, login):
    carol.timezone = ""
    carol.save(update_fields=["timezone"])
    browser = login(carol.user)
    page = html(browser.get(portal(workspace, "book/")))
    # No zone saved yet: the page asks the script to detect one (and reads times in the workspace's meanwhile).
    assert 'data-zone-saved="false"' in page and "Times in Europe/London" in page
    assert re.search(r'<script src="/static/js/timezone.js" nonce="[^"]+" defer>', page)
    back = portal(workspace, "book/?type=1")
    response = browser.post(portal(workspace, "timezone/"), {"timezone": "Asia/Tokyo", "detected": "1", "next": back})
    assert response.status_code == 302 and response.url == back
    carol.refresh_from_db()
    assert carol.timezone == "Asia/Tokyo"
    page = html(browser.get(portal(workspace, "book/")))
    assert 'data-zone-saved="true"' in page and "Times in Asia/Tokyo" in page
    assert "18:00<" in page  # 09:00 London is 18:00 in Tokyo


def test_a_zone_that_does_not_exist_is_refused_and_nothing_changes(now, workspace, carol, carol_browser):
    response = carol_browser.post(
        portal(workspace, "timezone/"), {"timezone": "Mars/Olympus", "next": "https://evil.example/"}, follow=True
    )
    assert response.redirect_chain[-1][0] == portal(workspace, "book/")  # not to another site
    assert "“Mars/Olympus” is not a time zone" in html(response)
    assert Contact.objects.get(pk=carol.pk).timezone == "America/New_York"


def test_nothing_to_book_says_so(now, workspace, retainer, carol_browser):
    page = html(carol_browser.get(portal(workspace, "book/")))
    assert "Nothing to book online yet" in page


# --- Booking --------------------------------------------------------------------------------------------


def test_a_contact_books_after_seeing_the_details(now, workspace, session_type, retainer, carol, carol_browser, bob):
    query = f"?type={session_type.pk}&retainer={retainer.pk}&start={TUESDAY_9_LONDON}"
    confirm = html(carol_browser.get(portal(workspace, "book/") + query))
    assert "Tuesday 10 March 2026, 05:00–06:00 (America/New_York)" in confirm
    assert "1 hour from Coaching" in confirm
    assert "until 24 hours before it starts" in confirm
    assert Booking.objects.count() == 0  # looking writes nothing
    response = carol_browser.post(
        portal(workspace, "book/"),
        {"type": session_type.pk, "retainer": retainer.pk, "start": TUESDAY_9_LONDON},
        follow=True,
    )
    made = Booking.objects.get()
    assert (made.starts_at, made.contact, made.member, made.booked_by) == (at(10, 9), carol, bob, carol.user)
    assert response.redirect_chain[-1][0] == portal(workspace)
    page = html(response)
    assert "Booked: Coaching call, Tuesday 10 March 2026, 05:00–06:00 (America/New_York)" in page
    # The overview: the session in Carol's zone, and the hour shown as booked apart from used and remaining.
    assert "Tue 10 Mar, 05:00–06:00" in page
    assert re.search(rf'id="booked-{retainer.pk}">1.00 <small>hours', page)
    assert re.search(rf'id="remaining-{retainer.pk}">10.00 ', page)
    assert Email.objects.filter(to=carol.email, key=f"booking-{made.pk}-confirmed-0-contact").exists()


def test_a_time_taken_meanwhile_is_refused_and_nothing_is_written(
    now, workspace, session_type, retainer, carol, carol_browser, acme
):
    other = factories.ContactFactory(client=acme, user=factories.UserFactory(), portal_access=True)
    book_as(other, session_type, retainer, at(10, 9))
    query = f"?type={session_type.pk}&retainer={retainer.pk}&start={TUESDAY_9_LONDON}"
    assert "That time is no longer free." in html(carol_browser.get(portal(workspace, "book/") + query))
    response = carol_browser.post(
        portal(workspace, "book/"), {"type": session_type.pk, "retainer": retainer.pk, "start": TUESDAY_9_LONDON}
    )
    assert response.status_code == 200
    assert "That time was just taken. Choose another one." in html(response)
    assert Booking.objects.count() == 1


@pytest.mark.parametrize("start", ["", "tomorrow", "20261399T0900Z", "20260310T0915Z"])
def test_a_bad_start_gets_a_clear_page_not_an_error(now, workspace, session_type, retainer, carol_browser, start):
    data = {"type": session_type.pk, "retainer": retainer.pk, "start": start}
    shown = carol_browser.get(portal(workspace, "book/"), data)
    assert shown.status_code == 200 and "Choose another time" in html(shown)
    posted = carol_browser.post(portal(workspace, "book/"), data)
    assert posted.status_code == 200
    assert re.search(r"Choose a time\.|outside the available hours", html(posted))
    assert Booking.objects.count() == 0


def test_under_refuse_times_beyond_the_balance_are_not_offered(
    now, workspace, session_type, acme, carol, carol_browser
):
    tight = factories.make_retainer(
        client=acme, name="Tight", starts_on=date(2026, 3, 1), overage_policy="refuse", units_per_period=D("1")
    )
    book_as(carol, session_type, tight, at(10, 9))
    page = html(carol_browser.get(portal(workspace, "book/"), {"type": session_type.pk, "retainer": tight.pk}))
    assert "Nothing more can be booked from 1 Mar to 31 Mar 2026: what is left is booked already (1 hour)." in page
    assert "0 hours left to book until 31 March (1 booked already)." in page
    assert "Wednesday 1 April" in page  # the first times offered are April's, on its own allotment
    data = {"type": session_type.pk, "retainer": tight.pk, "start": "20260311T0900Z"}
    assert "Nothing more can be booked" in html(carol_browser.get(portal(workspace, "book/"), data))
    refused = carol_browser.post(portal(workspace, "book/"), data)
    assert "only 0 hours can still be booked in that period (1 already booked)" in html(refused)
    assert Booking.objects.filter(retainer=tight).count() == 1


def test_under_bill_the_overage_price_is_shown_before_booking(now, workspace, session_type, acme, carol, carol_browser):
    billed = factories.make_retainer(
        client=acme, name="Billed", starts_on=date(2026, 3, 1), units_per_period=D("1"), overage_rate_minor=15000
    )
    book_as(carol, session_type, billed, at(10, 9))
    data = {"type": session_type.pk, "retainer": billed.pk, "start": "20260311T0900Z"}
    page = html(carol_browser.get(portal(workspace, "book/"), data))
    assert "1 hour will be billed at £150.00 on your next invoice" in page
    assert "Book and accept the price" in page
    assert "each extra hour is billed at £150.00" in html(
        carol_browser.get(portal(workspace, "book/"), {"type": session_type.pk, "retainer": billed.pk})
    )
    carol_browser.post(portal(workspace, "book/"), data)
    assert Booking.objects.filter(retainer=billed).count() == 2


# --- Moving and cancelling --------------------------------------------------------------------------------


def test_a_contact_moves_a_session_to_another_free_time(now, workspace, session_type, retainer, carol, carol_browser):
    made = book_as(carol, session_type, retainer, at(11, 9))
    page = html(carol_browser.get(portal(workspace, f"bookings/{made.pk}/move/")))
    assert "Booked now for <strong>Wednesday 11 March 2026, 05:00–06:00 (America/New_York)" in page
    assert "start=20260311T0900Z" in page  # its own time is free to move within
    confirm = html(carol_browser.get(portal(workspace, f"bookings/{made.pk}/move/"), {"start": "20260312T1300Z"}))
    assert "Thursday 12 March 2026, 09:00–10:00 (America/New_York)" in confirm and "Move the session" in confirm
    response = carol_browser.post(portal(workspace, f"bookings/{made.pk}/move/"), {"start": "20260312T1300Z"})
    assert response.status_code == 302
    made.refresh_from_db()
    assert (made.starts_at, made.sequence, made.changed_by) == (at(12, 13), 1, carol.user)


def test_inside_the_window_a_session_cannot_be_moved_and_cancelling_says_it_is_late(
    now, workspace, session_type, retainer, carol, carol_browser
):
    made = book_as(carol, session_type, retainer, at(10, 9))  # 24 hours from now: the window has begun
    move = html(carol_browser.get(portal(workspace, f"bookings/{made.pk}/move/")))
    assert "Sessions can be moved until 24 hours before they start." in move and "start=" not in move
    refused = carol_browser.post(portal(workspace, f"bookings/{made.pk}/move/"), {"start": "20260312T1300Z"})
    assert "Sessions can be moved until 24 hours before they start." in html(refused)
    cancel = html(carol_browser.get(portal(workspace, f"bookings/{made.pk}/cancel/")))
    assert "this is a late cancellation: the 1 hour count as used" in cancel
    response = carol_browser.post(portal(workspace, f"bookings/{made.pk}/cancel/"), {"reason": "Ill"}, follow=True)
    made.refresh_from_db()
    assert made.status == Booking.Status.LATE_CANCELLED and made.work_item is not None
    assert "cancelled late, so its units count as used" in html(response)


def test_cancelling_in_good_time_returns_the_units(now, workspace, session_type, retainer, carol, carol_browser):
    booking_setup.save_policy(
        retainer=retainer, cancel_window_hours=24, late_cancel=BookingPolicy.LateCancel.KEEP, no_show="consume",
        nudge_after_days=None,
    )  # fmt: skip
    made = book_as(carol, session_type, retainer, at(12, 9))
    page = html(carol_browser.get(portal(workspace, f"bookings/{made.pk}/cancel/")))
    assert "Cancelling now is free: the 1 hour go back to your balance." in page
    carol_browser.post(portal(workspace, f"bookings/{made.pk}/cancel/"), {"reason": "Travelling"})
    made.refresh_from_db()
    assert (made.status, made.cancel_reason, made.work_item) == (Booking.Status.CANCELLED, "Travelling", None)
    again = html(carol_browser.get(portal(workspace, f"bookings/{made.pk}/cancel/")))
    assert "This session is cancelled." in again and "Cancel the session" not in again


def test_another_clients_booking_is_404(now, workspace, session_type, retainer, carol, login):
    made = book_as(carol, session_type, retainer, at(11, 9))
    stranger_client = factories.ClientFactory(workspace=workspace, name="Globex")
    stranger = factories.ContactFactory(client=stranger_client, user=factories.UserFactory(), portal_access=True)
    factories.make_retainer(client=stranger_client, starts_on=date(2026, 3, 1))
    browser = login(stranger.user)
    for path in (f"bookings/{made.pk}/move/", f"bookings/{made.pk}/cancel/"):
        assert browser.get(portal(workspace, path)).status_code == 404
        assert browser.post(portal(workspace, path), {"start": "20260312T1300Z"}).status_code == 404
    made.refresh_from_db()
    assert (made.status, made.starts_at) == (Booking.Status.BOOKED, at(11, 9))
    # Their own booking page never lists Carol's session.
    assert "Wed 11 Mar" not in html(browser.get(portal(workspace, "book/")))


def test_a_retainer_of_another_client_cannot_be_chosen(now, workspace, session_type, retainer, carol_browser):
    theirs = factories.make_retainer(
        client=factories.ClientFactory(workspace=workspace, name="Globex"), starts_on=date(2026, 3, 1)
    )
    carol_browser.post(
        portal(workspace, "book/"), {"type": session_type.pk, "retainer": theirs.pk, "start": TUESDAY_9_LONDON}
    )
    made = Booking.objects.get()  # the request's retainer is ignored: Carol's own is the only choice
    assert made.retainer == retainer


def test_the_booking_page_makes_the_same_queries_however_much_is_booked(
    now, workspace, session_type, retainer, carol, carol_browser, acme
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert carol_browser.get(portal(workspace, "book/")).status_code == 200
        return len(captured)

    carol_browser.get(portal(workspace, "book/"))  # the first request of a session writes it
    few = count()
    others = [factories.ContactFactory(client=acme, user=factories.UserFactory(), portal_access=True) for _ in range(3)]
    for day in range(10, 31):
        if date(2026, 3, day).weekday() < 5:
            book_as(others[day % 3], session_type, retainer, at(day, 9))
    assert count() == few <= 21, few  # 3 to sign in, 3 what to book, 1 sessions, 14 the free times
