"""Booking in a real browser: a client contact books a session in the portal (in their own time zone,
detected from the browser), moves it, cancels it and books again; then the consultant marks it held on
the retainer page and the retainer's ledger shows the session.

The set-up (workspace, schedule, session type, client, contact, retainer) is written through the
services; people are signed in by session cookie (the sign-in pages have tests of their own). Every
page visited must log no console error and no Content-Security-Policy violation.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.conf import settings
from django.test import Client as DjangoClient
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, expect

from clients import services as clients
from clients.models import Contact
from delivery import booking_setup
from delivery import services as delivery
from delivery.models import Booking, LedgerEntry
from retainers import services as workspaces
from retainers.models import Email, User
from tests.e2e.support import screenshot, wait_until

pytestmark = pytest.mark.e2e

NEW_YORK = "America/New_York"


def _session_cookie(user: User) -> str:
    client = DjangoClient()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _set_up():
    alice = User.objects.create_user(email="alice@northwind.example", password="plum-Orchard-7", name="Alice Archer")
    EmailAddress.objects.create(user=alice, email=alice.email, verified=True, primary=True)
    workspace = workspaces.create_workspace(
        owner=alice, name="Northwind Advisory", timezone_name="Europe/London", currency="GBP"
    )
    booking_setup.save_schedule(
        workspace=workspace,
        member=alice,
        settings={
            "timezone": "",
            "buffer_before_minutes": 0,
            "buffer_after_minutes": 15,
            "min_notice_minutes": 120,
            "horizon_days": 30,
            "daily_cap": None,
            "step_minutes": 60,
        },
        weekly={day: [(time(9), time(12)), (time(13), time(17))] for day in range(7)},
    )
    booking_setup.save_session_type(
        workspace=workspace, session_type=None, member=alice, name="Coaching call", duration_minutes=60,
        hours=Decimal("1"), sessions=1, location="https://meet.example.com/alice", reminder_minutes=[1440],
        all_retainers=True, retainers=[],
    )  # fmt: skip
    acme = clients.create_client(workspace=workspace, name="Acme Corp", billing_email="billing@acme.example")
    carol = clients.add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)
    retainer = delivery.create_retainer(
        client=acme,
        name="Coaching retainer",
        starts_on=workspace.today().replace(day=1),
        terms={"model": "fixed", "unit": "hours", "units_per_period": Decimal(8), "price_minor": 120000,
               "currency": "GBP", "cadence": "monthly", "overage_policy": "bill", "overage_rate_minor": 15000,
               "term_periods": 12},
    )  # fmt: skip
    return workspace, alice, Contact.objects.get(pk=carol.pk), retainer


def _signed_in(browser_context, app_server, user: User, **options) -> tuple[BrowserContext, Page]:
    context = browser_context(**options)
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": _session_cookie(user), "url": app_server.url}])
    return context, context.new_page()


def _pick_time(page: Page, day: date) -> str:
    """Click the first free time on `day` (the contact's date); returns its label ("05:00")."""
    link = page.locator(f"#day-{day.isoformat()}").get_by_role("link").first
    label = link.inner_text().split()[0]
    link.click()
    return label


def test_a_contact_books_moves_cancels_and_books_again_and_the_consultant_marks_it_held(
    transactional_db, browser_context, app_server, watch
):
    workspace, alice, carol, retainer = _set_up()
    _, portal = _signed_in(browser_context, app_server, carol.user, timezone_id=NEW_YORK)
    local_today = timezone.localdate(timezone.now(), timezone=ZoneInfo(NEW_YORK))
    first_day, second_day = local_today + timedelta(days=3), local_today + timedelta(days=4)

    # The booking page: the contact's time zone comes from the browser, once, and is saved.
    portal.goto(f"/portal/w/{workspace.slug}/book/")
    expect(portal.get_by_role("status")).to_contain_text("your browser's time zone")
    carol.refresh_from_db()
    assert carol.timezone == NEW_YORK
    expect(portal.locator("#times")).to_contain_text("Times in America/New_York")
    expect(portal.locator("#zone-select")).to_have_value(NEW_YORK)
    expect(portal.locator("#left-to-book")).to_contain_text("8 hours left to book")
    screenshot(portal, "booking")  # the README's docs/screenshots/booking.png is copied from it

    # Book: a time, then the details, then the button.
    label = _pick_time(portal, first_day)
    expect(portal.get_by_role("heading", level=1)).to_have_text("Confirm your booking")
    expect(portal.locator("#confirm-when")).to_contain_text(f"{label}–")
    expect(portal.locator("#confirm-when")).to_contain_text("(America/New_York)")
    expect(portal.locator("#confirm-units")).to_contain_text("1 hour from Coaching retainer")
    screenshot(portal, "booking-confirm")
    portal.get_by_role("button", name="Book the session").click()
    expect(portal.get_by_role("status")).to_contain_text("Booked: Coaching call")
    made = Booking.objects.get(contact=carol)
    assert made.starts_at.astimezone(ZoneInfo(NEW_YORK)).strftime("%H:%M") == label
    sessions = portal.locator("#sessions")
    expect(sessions).to_contain_text(f"{first_day:%a} {first_day.day} {first_day:%b}, {label}")
    expect(portal.locator(f"#booked-{retainer.pk}")).to_contain_text("1.00")
    screenshot(portal, "booking-overview")

    # Move it to the next day.
    sessions.get_by_role("link", name=re.compile("^Move")).click()
    expect(portal.get_by_role("heading", level=1)).to_have_text("Move your session")
    moved_label = _pick_time(portal, second_day)
    portal.get_by_role("button", name="Move the session").click()
    expect(portal.get_by_role("status")).to_contain_text("Moved: Coaching call")
    made.refresh_from_db()
    assert made.sequence == 1 and made.starts_at.astimezone(ZoneInfo(NEW_YORK)).date() == second_day
    expect(sessions).to_contain_text(f"{second_day:%a} {second_day.day} {second_day:%b}, {moved_label}")

    # Cancel it: the page says first what cancelling now does.
    sessions.get_by_role("link", name=re.compile("^Cancel")).click()
    expect(portal.locator("#cancel-outcome")).to_contain_text("Cancelling now is free")
    portal.get_by_label(re.compile("Anything Northwind Advisory should know")).fill("Travelling that week")
    portal.get_by_role("button", name="Cancel the session").click()
    expect(portal.get_by_role("status")).to_contain_text("Cancelled: Coaching call")
    made.refresh_from_db()
    assert (made.status, made.cancel_reason) == (Booking.Status.CANCELLED, "Travelling that week")
    expect(portal.locator("#sessions")).to_contain_text("Nothing booked yet.")

    # Book again, from the portal's navigation.
    portal.get_by_role("navigation", name="Portal").get_by_role("link", name="Book").click()
    _pick_time(portal, first_day)
    portal.get_by_role("button", name="Book the session").click()
    expect(portal.get_by_role("status")).to_contain_text("Booked: Coaching call")
    again = Booking.objects.get(contact=carol, status=Booking.Status.BOOKED)
    kinds = set(Email.objects.filter(to=carol.email, key__startswith="booking-").values_list("key", flat=True))
    assert {f"booking-{made.pk}-confirmed-0-contact", f"booking-{made.pk}-changed-1-contact"} <= kinds
    assert {f"booking-{made.pk}-cancelled-2-contact", f"booking-{again.pk}-confirmed-0-contact"} <= kinds

    # The session takes place; the consultant marks it held on the retainer page, in place.
    with time_machine.travel(again.starts_at + timedelta(minutes=70), tick=True):
        _, consultant = _signed_in(browser_context, app_server, alice)
        consultant.goto(f"/w/{workspace.slug}/retainers/{retainer.pk}/")
        consultant.evaluate("window.__e2eNoReload = true")
        row = consultant.locator(f"#booking-{again.pk}")
        expect(row).to_contain_text("To settle")
        expect(consultant.locator("#stat-booked")).to_have_text("1.00")
        screenshot(consultant, "booking-to-settle")
        row.get_by_role("button", name=re.compile("^Held")).click()
        expect(consultant.locator("#bookings").get_by_role("status")).to_contain_text(
            "Held: 1 hour recorded on Coaching retainer."
        )
        expect(row).to_have_count(0)  # settled: no longer waiting in the bookings list
        expect(consultant.locator("#stat-remaining")).to_contain_text("7.00")
        expect(consultant.locator("#stat-booked")).to_have_text("0.00")
        expect(consultant.locator("#work-list")).to_contain_text("Coaching call")
        assert consultant.evaluate("window.__e2eNoReload") is True, "marking held reloaded the page"

        again.refresh_from_db()
        assert again.status == Booking.Status.HELD and again.work_item is not None
        entry = LedgerEntry.objects.get(work_item=again.work_item)
        assert entry.quantity == Decimal("-1")

        consultant.get_by_role("link", name="Ledger").click()
        ledger = consultant.get_by_role("main")
        expect(ledger).to_contain_text("Coaching call")
        expect(ledger).to_contain_text("-1.00")
        screenshot(consultant, "booking-ledger")

    wait_until("no email left unsent", lambda: not Email.objects.exclude(status=Email.Status.SENT).exists())
    watch.assert_clean()
