"""The portal's pages for a signed-in contact: overview, history and invoices.

The story: Acme (Carol is its contact) has a rollover retainer since January (10 hours a
month, rolled units expire three periods after their own), and since April a fixed one and a
deliverables one. It is 10 April 2026. Globex, another client of the same workspace, has
data of its own that Carol must never see.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.db.models import Q, Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import connect, paylinks
from billing import services as billing
from billing.models import Invoice
from clients.models import Client, Contact, Retainer
from clients.services import add_contact
from communication.models import Note
from communication.services import create_note
from delivery import services as delivery
from delivery.forecast import Forecast, forecast, ordinal, period_name
from delivery.models import Deliverable, LedgerEntry, Period, WorkItem
from retainers.models import Workspace
from tests import factories

pytestmark = pytest.mark.django_db

TODAY = date(2026, 4, 10)
NOON = dt.datetime(2026, 4, 10, 12, 0, tzinfo=dt.UTC)
H = Decimal


# --- Reading pages --------------------------------------------------------------------------


class _Page(HTMLParser):
    """The text of the page, and of every element with an id (nested ones included)."""

    VOID = frozenset(
        {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.by_id: dict[str, list[str]] = {}
        self._open: list[str | None] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])
        if tag in self.VOID:
            return
        element_id = values.get("id")
        if element_id:
            self.by_id[element_id] = []
        self._open.append(element_id)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        for element_id in self._open:
            if element_id:
                self.by_id[element_id].append(data)

    def text(self, element_id: str | None = None) -> str:
        parts = self.parts if element_id is None else self.by_id[element_id]
        return " ".join(" ".join(parts).split())


def read(response) -> _Page:
    assert response.status_code == 200, response.status_code
    page = _Page()
    page.feed(response.content.decode())
    return page


# --- The story --------------------------------------------------------------------------------


@dataclass
class Story:
    workspace: Workspace
    acme: Client
    carol: Contact
    advisory: Retainer  # rollover, since January
    support: Retainer  # fixed, since April
    content: Retainer  # deliverables, since April
    globex: Client
    globex_retainer: Retainer
    globex_invoice: Invoice
    shared_session_note: Note
    private_session_note: Note
    shared_client_note: Note
    private_client_note: Note
    jan_call: WorkItem


def _record(retainer: Retainer, day: date, hours: str, text: str, **extra) -> WorkItem:
    return delivery.record_delivery(
        retainer=retainer, delivered_on=day, quantity=H(hours), description=text, actor=None, **extra
    )


def _bill(workspace: Workspace, day: date) -> None:
    billing.bill_workspace(workspace_id=workspace.pk, as_of=day)


def build_story(workspace: Workspace, alice) -> Story:
    acme = factories.ClientFactory(workspace=workspace, name="Acme Corp")
    carol = add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)
    advisory = factories.make_retainer(
        workspace=workspace, client=acme, name="Advisory", starts_on=date(2026, 1, 1), rollover_expiry_periods=3
    )
    # January: 6.50 billable of 10, 1 hour not billed; 3.50 roll into February.
    jan_call = _record(advisory, date(2026, 1, 10), "4", "Kick-off workshop")
    _record(advisory, date(2026, 1, 20), "2.5", "Pricing review")
    _record(advisory, date(2026, 1, 21), "1", "Intro call with the new CFO", billable=False)
    removed = _record(advisory, date(2026, 1, 22), "3", "Logged by mistake")
    delivery.remove_delivery(item=removed, actor=None)
    _bill(workspace, date(2026, 2, 1))
    # February: 10 used: January's 3.50 first, then 6.50 of February's own; 3.50 roll into March.
    feb = _record(advisory, date(2026, 2, 12), "6", "Board pack")
    delivery.edit_delivery(
        item=feb,
        delivered_on=date(2026, 2, 12),
        quantity=H("10"),
        description="Board pack and rehearsal",
        billable=True,
        actor=None,
    )
    _bill(workspace, date(2026, 3, 1))
    # March: 10 used again; 3.50 of March's own roll into April.
    _record(advisory, date(2026, 3, 3), "10", "Quarterly plan")
    support = factories.make_retainer(
        workspace=workspace,
        client=acme,
        name="Support",
        starts_on=date(2026, 4, 1),
        model="fixed",
        units_per_period=H("5"),
        price_minor=50000,
    )
    content = factories.make_retainer(
        workspace=workspace,
        client=acme,
        name="Content",
        starts_on=date(2026, 4, 1),
        model="deliverables",
        units_per_period=H("0"),
        deliverables=["Blog post", "Newsletter"],
        price_minor=90000,
    )
    _bill(workspace, date(2026, 4, 1))
    # April so far.
    _record(advisory, date(2026, 4, 2), "1", "Hiring plan call")
    _record(advisory, date(2026, 4, 8), "1", "Follow-up on hiring")
    _record(support, date(2026, 4, 2), "1", "Fixed the export")
    _record(support, date(2026, 4, 8), "2", "Server migration")
    blog = Deliverable.objects.get(retainer=content, name="Blog post")
    delivery.set_deliverable_status(deliverable=blog, status="delivered", actor=None, on=date(2026, 4, 6))

    # Money: January and February paid, March open and overdue by now, April open; a credit
    # note on February; a draft that must not show.
    invoices = {i.period.start_on.month: i for i in Invoice.objects.filter(retainer=advisory).select_related("period")}
    for month in (1, 2):
        invoice = invoices[month]
        billing.record_payment(invoice=invoice, amount_minor=invoice.total_minor, method="bank_transfer")
    billing.create_credit_note(invoice=invoices[2], amount_minor=10000, reason="Goodwill", actor=alice)
    billing.create_invoice(client=acme, lines=[("Draft work", H("1"), 99900)], memo="not issued")

    shared_session_note = create_note(
        client=acme, author=alice, body="Slides are in the **shared drive**.", visibility="shared", session=jan_call
    )
    private_session_note = create_note(
        client=acme, author=alice, body="PRIVATE: the CFO seemed unconvinced", visibility="private", session=jan_call
    )
    shared_client_note = create_note(client=acme, author=alice, body="Welcome to the portal!", visibility="shared")
    private_client_note = create_note(
        client=acme, author=alice, body="PRIVATE: ask about the renewal budget", visibility="private"
    )

    globex = factories.ClientFactory(workspace=workspace, name="Globex")
    globex_retainer = factories.make_retainer(
        workspace=workspace, client=globex, name="Globex deal", starts_on=date(2026, 4, 1)
    )
    _record(globex_retainer, date(2026, 4, 3), "2", "GLOBEX SECRET WORK")
    create_note(client=globex, author=alice, body="GLOBEX NOTE", visibility="shared")
    _bill(workspace, date(2026, 4, 1))
    globex_invoice = Invoice.objects.get(client=globex)
    return Story(
        workspace=workspace,
        acme=acme,
        carol=carol,
        advisory=advisory,
        support=support,
        content=content,
        globex=globex,
        globex_retainer=globex_retainer,
        globex_invoice=globex_invoice,
        shared_session_note=shared_session_note,
        private_session_note=private_session_note,
        shared_client_note=shared_client_note,
        private_client_note=private_client_note,
        jan_call=jan_call,
    )


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def story(workspace, alice, media) -> Story:
    return build_story(workspace, alice)


@pytest.fixture
def carol_browser(story, login, time_machine):
    time_machine.move_to(NOON, tick=False)
    return login(story.carol.user)


def portal_url(story: Story, path: str = "") -> str:
    return f"/portal/w/{story.workspace.slug}/{path}"


def ledger_sum(period: Period, q: Q | None = None) -> Decimal:
    entries = LedgerEntry.objects.filter(period=period)
    if q is not None:
        entries = entries.filter(q)
    return entries.aggregate(s=Sum("quantity", default=H("0")))["s"]


def open_period(retainer: Retainer) -> Period:
    return Period.objects.get(retainer=retainer, status="open")


# --- The forecast, a pure function ---------------------------------------------------------------


APRIL = {"start_on": date(2026, 4, 1), "end_on": date(2026, 5, 1)}


def test_forecast_runs_out_before_the_period_ends_on_the_day_the_pace_reaches_zero():
    # 3 hours in 10 days: 0.3 a day; 5 hours last 16.7 days, so they run out on day 17.
    outlook = forecast(**APRIL, today=date(2026, 4, 10), available=H("5"), used=H("3"))
    assert outlook.kind == "runout"
    assert outlook.runout_on == date(2026, 4, 17)
    assert outlook.message == "At this pace your hours run out on the 17th."


def test_forecast_gives_the_share_used_by_the_period_end_when_the_units_last():
    outlook = forecast(**APRIL, today=date(2026, 4, 10), available=H("10"), used=H("2.67"))
    assert outlook.kind == "share" and outlook.runout_on is None
    assert outlook.share == 80  # 2.67 / 10 days × 30 days = 8.01 of 10
    assert outlook.message == "At this pace you will use 80% of your hours this period."


def test_forecast_at_exactly_the_even_pace_uses_everything_on_the_last_day():
    outlook = forecast(**APRIL, today=date(2026, 4, 15), available=H("30"), used=H("15"))
    assert (outlook.kind, outlook.share) == ("share", 100)


def test_forecast_with_no_usage_yet_makes_no_prediction():
    outlook = forecast(**APRIL, today=date(2026, 4, 10), available=H("10"), used=H("0"))
    assert outlook.kind == "no_usage"
    assert outlook.message == "No hours used yet this period: all 10.00 are left."


def test_forecast_when_already_over_says_by_how_much():
    outlook = forecast(**APRIL, today=date(2026, 4, 10), available=H("10"), used=H("12.5"))
    assert outlook.kind == "over"
    assert outlook.message == "You are 2.50 hours over this period's balance."


def test_forecast_when_everything_is_used():
    outlook = forecast(**APRIL, today=date(2026, 4, 10), available=H("4"), used=H("4"), unit="sessions")
    assert outlook.kind == "used_up"
    assert outlook.message == "You have used all 4 sessions of this period."


def test_forecast_with_nothing_to_use():
    assert forecast(**APRIL, today=date(2026, 4, 10), available=H("0"), used=H("0")).kind == "no_units"


def test_forecast_before_the_period_starts_and_after_it_ends():
    assert forecast(**APRIL, today=date(2026, 3, 31), available=H("10"), used=H("0")).kind == "not_started"
    ended = forecast(**APRIL, today=date(2026, 5, 2), available=H("10"), used=H("4"))
    assert ended.kind == "ended" and ended.message == "This period has ended with 6.00 hours unused."


def test_forecast_counts_today_in_and_the_first_day_is_day_one():
    # On the first day, 1 hour of 10 in a 30-day period runs out on day 10.
    outlook = forecast(**APRIL, today=date(2026, 4, 1), available=H("10"), used=H("1"))
    assert outlook.runout_on == date(2026, 4, 10) and outlook.message.endswith("on the 10th.")


def test_forecast_names_the_month_when_the_period_spans_two():
    outlook = forecast(
        start_on=date(2026, 1, 15), end_on=date(2026, 2, 15), today=date(2026, 1, 24), available=H("10"), used=H("5")
    )
    assert outlook.runout_on == date(2026, 2, 3)  # 5 in 10 days: 10 last 20 days
    assert outlook.message == "At this pace your hours run out on 3 February."


def test_forecast_of_sessions_speaks_of_sessions():
    outlook = forecast(**APRIL, today=date(2026, 4, 10), available=H("4"), used=H("3"), unit="sessions")
    assert outlook.message == "At this pace your sessions run out on the 14th."


def test_forecast_of_a_deliverables_retainer_counts_what_is_to_come():
    outlook = forecast(**APRIL, today=date(2026, 4, 10), available=None, deliverables_done=1, deliverables_total=3)
    assert outlook.kind == "deliverables"
    assert outlook.message == "1 of 3 deliverables done; 2 to come, with 21 days left."
    done = forecast(**APRIL, today=date(2026, 4, 10), available=None, deliverables_done=2, deliverables_total=2)
    assert done.message == "All 2 deliverables of this period are done."
    nothing = forecast(**APRIL, today=date(2026, 4, 10), available=None)
    assert nothing.message == "No deliverables are planned this period."


def test_ordinals_and_period_names():
    assert [ordinal(d) for d in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 30, 31)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "23rd",
        "30th",
        "31st",
    ]
    assert period_name(date(2026, 3, 1), date(2026, 4, 1), "monthly", this_year=2026) == "March"
    assert period_name(date(2025, 12, 1), date(2026, 1, 1), "monthly", this_year=2026) == "December 2025"
    assert period_name(date(2026, 1, 15), date(2026, 2, 15), "monthly", this_year=2026) == "the period from 15 Jan"
    assert isinstance(forecast(**APRIL, today=TODAY, available=H("1"), used=H("0")), Forecast)


# --- Overview --------------------------------------------------------------------------------------


def test_overview_shows_each_live_retainer_with_figures_from_the_ledger(story, carol_browser):
    page = read(carol_browser.get(portal_url(story)))
    advisory = story.advisory.pk
    period = open_period(story.advisory)
    balance = ledger_sum(period)
    used = -ledger_sum(period, Q(work_item__isnull=False))
    assert (balance, used) == (H("11.50"), H("2.00"))  # 10 + 3.50 from March, less 2
    assert page.text(f"remaining-{advisory}") == f"{balance} hours"
    assert page.text(f"used-{advisory}") == f"{used} of 13.50"
    assert page.text(f"days-left-{advisory}") == "21"
    assert page.text(f"forecast-{advisory}") == "At this pace you will use 44% of your hours this period."
    # March left 3.50; April's 2 hours were taken from them first.
    assert page.text(f"rolled-{advisory}") == "3.50 hours roll in from March; 1.50 are left and expire on 30 June."
    assert f"burndown-{advisory}" in page.by_id

    support = story.support.pk
    assert page.text(f"remaining-{support}") == "2.00 hours"
    assert page.text(f"forecast-{support}") == "At this pace your hours run out on the 17th."

    content = story.content.pk
    assert page.text(f"delivered-{content}") == "1 of 2"
    assert page.text(f"planned-{content}") == "1"
    assert page.text(f"forecast-{content}") == "1 of 2 deliverables done; 1 to come, with 21 days left."
    assert "Blog post Done" in page.text(f"deliverables-{content}")
    assert f"burndown-{content}" not in page.by_id


def test_overview_says_when_rolled_units_expire_when_none_are_used_yet(story, carol_browser):
    for item in WorkItem.objects.filter(retainer=story.advisory, period__status="open"):
        delivery.remove_delivery(item=item, actor=None)
    page = read(carol_browser.get(portal_url(story)))
    assert page.text(f"rolled-{story.advisory.pk}") == "3.50 hours roll in from March and expire on 30 June."
    assert page.text(f"forecast-{story.advisory.pk}") == "No hours used yet this period: all 13.50 are left."


def test_overview_shows_recent_work_without_removed_entries(story, carol_browser):
    page = read(carol_browser.get(portal_url(story)))
    recent = page.text("recent-work")
    assert recent.startswith("Wed 8 Apr")
    assert "Follow-up on hiring" in recent and "Server migration" in recent
    assert "Logged by mistake" not in page.text() and "GLOBEX" not in page.text()


def test_overview_shows_what_is_outstanding_with_a_pay_button_each(story, carol_browser):
    page = read(carol_browser.get(portal_url(story)))
    open_invoices = Invoice.objects.filter(client=story.acme, status="open").order_by("due_on")
    assert open_invoices.count() == 4  # advisory March and April, support April, content April
    total = sum(i.balance_minor for i in open_invoices)
    assert page.text("outstanding") == f"£{total / 100:,.2f}"
    listed = page.text("open-invoices")
    assert "Overdue" in listed  # March's was due on 15 March
    for invoice in open_invoices:
        assert invoice.number in listed
        assert paylinks.pay_url(invoice) in page.links
    assert paylinks.pay_url(story.globex_invoice) not in page.links
    assert page.text(f"next-invoice-{story.advisory.pk}") == "1 May: £2,000.00"


@pytest.mark.parametrize("path", ["", "invoices/"])
def test_pay_buttons_promise_a_card_payment_only_when_the_workspace_takes_cards(story, carol_browser, settings, path):
    # The Card page says card payments are not taken: a "Pay" button beside it was a broken promise.
    page = read(carol_browser.get(portal_url(story, path))).text()
    assert "How to pay invoice" in page and "Pay invoice" not in page
    settings.STRIPE_SECRET_KEY = "sk_test_portal"
    connect.use_test_account(workspace=story.workspace, account_id="acct_portal")
    page = read(carol_browser.get(portal_url(story, path))).text()
    assert "Pay invoice" in page and "How to pay" not in page


# As written ("How to pay invoice …" is the wording without cards, so not "pay invoice").
CARD_PROMISES = ("by card", "Pay invoice", "Pay now", "Pay online")
PORTAL_PAGES = ["", "history/", "invoices/", "card/", "messages/", "notes/", "renewals/", "overage/"]


def _pdf_text(response) -> str:
    data = b"".join(response.streaming_content)
    return subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=data, capture_output=True, check=True
    ).stdout.decode()


def _card_promises(story, browser, invoice: Invoice) -> dict[str, list[str]]:
    """Every portal page, the invoice's pay page and its PDF: the card payments each promises."""
    texts = {path or "overview": read(browser.get(portal_url(story, path))).text() for path in PORTAL_PAGES}
    texts["pay page"] = read(browser.get(reverse("billing_public:pay", args=[paylinks.pay_token(invoice)]))).text()
    texts["pdf"] = _pdf_text(browser.get(portal_url(story, f"invoices/{invoice.pk}/pdf/")))
    return {where: [p for p in CARD_PROMISES if p in text] for where, text in texts.items()}


def test_without_card_payments_no_portal_page_pay_page_or_pdf_offers_a_card(story, carol_browser, settings):
    """Issue 17 item 5: the Card page says card payments are not taken, so nothing else the client
    sees may offer one: no "Pay" button, no "Pay online by card" on the PDF or the pay page."""
    first, second = Invoice.objects.filter(client=story.acme, status="open").order_by("pk")[:2]
    promises = _card_promises(story, carol_browser, first)
    assert not any(promises.values()), promises
    assert "does not take card payments" in read(carol_browser.get(portal_url(story, "card/"))).text()
    # The same walk once the workspace takes cards finds the offers: the check above can fail.
    settings.STRIPE_SECRET_KEY = "sk_test_portal"
    connect.use_test_account(workspace=story.workspace, account_id="acct_portal")
    promises = _card_promises(story, carol_browser, second)  # a PDF not rendered yet
    assert "Pay invoice" in promises["invoices/"] and "Pay invoice" in promises["overview"]
    assert "by card" in promises["pay page"] and "by card" in promises["pdf"]


def test_overview_shows_the_latest_shared_notes_and_never_a_private_one(story, carol_browser):
    page = read(carol_browser.get(portal_url(story)))
    assert "Welcome to the portal!" in page.text(f"note-{story.shared_client_note.pk}")
    assert "shared drive" in page.text()
    assert "PRIVATE" not in page.text() and "GLOBEX NOTE" not in page.text()


def test_overview_forecast_uses_the_workspace_time_zone(story, login, time_machine):
    # 21:00 UTC on 9 April is still the 9th in London but already the 10th in Auckland.
    time_machine.move_to(dt.datetime(2026, 4, 9, 21, 0, tzinfo=dt.UTC), tick=False)
    browser = login(story.carol.user)
    page = read(browser.get(portal_url(story)))
    assert page.text(f"forecast-{story.support.pk}") == "At this pace your hours run out on the 15th."  # 3 in 9 days
    Workspace.objects.filter(pk=story.workspace.pk).update(timezone="Pacific/Auckland")
    page = read(browser.get(portal_url(story)))
    assert page.text(f"forecast-{story.support.pk}") == "At this pace your hours run out on the 17th."  # 3 in 10


def test_overview_of_a_paused_retainer_says_so_and_makes_no_forecast(story, carol_browser):
    delivery.pause_retainer(retainer=story.support, on=date(2026, 4, 9))
    page = read(carol_browser.get(portal_url(story)))
    assert "Paused since 9 April 2026" in page.text(f"retainer-{story.support.pk}")
    assert f"forecast-{story.support.pk}" not in page.by_id


def test_overview_of_a_retainer_over_its_balance(story, carol_browser):
    _record(story.support, date(2026, 4, 9), "4", "Emergency fix")
    page = read(carol_browser.get(portal_url(story)))
    assert page.text(f"remaining-{story.support.pk}") == "-2.00 hours"
    assert page.text(f"forecast-{story.support.pk}") == "You are 2.00 hours over this period's balance."
    assert "billed at £150.00 on the next invoice" in page.text(f"retainer-{story.support.pk}")


def test_overview_without_a_retainer_says_so(workspace, login):
    client = factories.ClientFactory(workspace=workspace, name="Initech")
    contact = add_contact(client=client, name="Peter", email="peter@initech.example", portal_access=True)
    page = read(login(contact.user).get(f"/portal/w/{workspace.slug}/"))
    assert "No retainer running" in page.text()
    assert "Nothing to pay right now." in page.text()


# --- History ---------------------------------------------------------------------------------------


def test_history_lists_the_work_period_by_period_newest_first(story, carol_browser):
    page = read(carol_browser.get(portal_url(story, "history/")))
    periods = Period.objects.filter(retainer__client=story.acme).order_by("-start_on", "retainer__name")
    ids = [f"period-{p.pk}" for p in periods]
    assert [i for i in page.by_id if i.startswith("period-") and not i.endswith("-heading")] == ids
    january = Period.objects.get(retainer=story.advisory, seq=1)
    text = page.text(f"period-{january.pk}")
    assert page.text(f"period-{january.pk}-heading").replace(" ,", ",") == "Advisory, 1–31 Jan 2026"
    assert f"{-ledger_sum(january, Q(work_item__isnull=False))} of 10.00 hours used" in text  # 6.50
    assert "Intro call with the new CFO" in text and "Not billed" in text  # billable or not
    assert "Logged by mistake" not in text  # removed
    february = Period.objects.get(retainer=story.advisory, seq=2)
    text = page.text(f"period-{february.pk}")
    assert "Board pack and rehearsal" in text and "Board pack ·" not in text  # replaced by its edit
    assert f"/portal/w/{story.workspace.slug}/retainers/{story.advisory.pk}/statement/{february.pk}/" in page.links


def test_history_shows_shared_notes_under_their_session_and_never_private_ones(story, carol_browser):
    page = read(carol_browser.get(portal_url(story, "history/")))
    work = page.text(f"work-{story.jan_call.pk}")
    assert "Kick-off workshop" in work and "Slides are in the shared drive" in work
    assert f"note-{story.shared_session_note.pk}" in page.by_id
    assert "PRIVATE" not in page.text()
    assert "GLOBEX" not in page.text()


def test_history_is_paginated_by_period(story, carol_browser):
    for month in range(5, 10):  # five more months of the three retainers
        billing.bill_workspace(workspace_id=story.workspace.pk, as_of=date(2026, month, 1))
    periods = Period.objects.filter(retainer__client=story.acme).count()
    assert periods > 6
    first = read(carol_browser.get(portal_url(story, "history/")))
    second = read(carol_browser.get(portal_url(story, "history/?page=2")))
    first_ids = {i for i in first.by_id if i.startswith("period-")}
    second_ids = {i for i in second.by_id if i.startswith("period-")}
    assert first_ids and second_ids and not first_ids & second_ids
    assert f"Page 1 of {-(-periods // 6)}" in first.text()


# --- Invoices --------------------------------------------------------------------------------------


def test_invoices_lists_issued_invoices_and_credit_notes_but_never_drafts(story, carol_browser):
    page = read(carol_browser.get(portal_url(story, "invoices/")))
    issued = Invoice.objects.filter(client=story.acme).exclude(status="draft")
    assert Invoice.objects.filter(client=story.acme, status="draft").exists()
    rows = [i for i in page.by_id if i.startswith("invoice-")]
    assert sorted(rows) == sorted(f"invoice-{i.pk}" for i in issued)
    credit = Invoice.objects.get(client=story.acme, kind="credit_note")
    text = page.text(f"invoice-{credit.pk}")
    assert "Credit note" in text and f"credits {credit.credit_for.number}" in text and "-£100.00" in text
    assert "Draft work" not in page.text() and "GLOBEX" not in page.text()


def test_invoices_show_status_amounts_and_a_pay_button_for_open_ones(story, carol_browser):
    page = read(carol_browser.get(portal_url(story, "invoices/")))
    for invoice in Invoice.objects.filter(client=story.acme).exclude(status="draft").exclude(kind="credit_note"):
        text = page.text(f"invoice-{invoice.pk}")
        assert invoice.number in text and f"£{invoice.total_minor / 100:,.2f}" in text
        if invoice.status == "open":
            assert paylinks.pay_url(invoice) in page.links
            # The consultant's words (Invoice.state): "Open" where the portal used to say "Due".
            expected = "Overdue" if invoice.due_on < TODAY else ("Part paid" if invoice.paid_minor else "Open")
            assert expected in text
        else:  # a credit note on a paid invoice leaves a credit: more was paid than it now asks
            credit = invoice.paid_minor + invoice.credited_minor > invoice.total_minor
            assert ("Overpaid" if credit else "Paid") in text and paylinks.pay_url(invoice) not in page.links
    due = sum(i.balance_minor for i in Invoice.objects.filter(client=story.acme, status="open"))
    assert page.text("outstanding") == f"£{due / 100:,.2f}"


def test_invoice_pdf_is_rendered_when_missing_then_served_from_storage(story, carol_browser):
    invoice = Invoice.objects.filter(client=story.acme, status="open").order_by("pk").first()
    assert not invoice.pdf
    response = carol_browser.get(portal_url(story, f"invoices/{invoice.pk}/pdf/"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert f'filename="{invoice.number}.pdf"' in response["Content-Disposition"]
    data = b"".join(response.streaming_content)
    assert data.startswith(b"%PDF")
    invoice.refresh_from_db()
    assert invoice.pdf and default_storage.exists(invoice.pdf.name)
    with default_storage.open(invoice.pdf.name, "rb") as handle:
        assert handle.read() == data
    again = carol_browser.get(portal_url(story, f"invoices/{invoice.pk}/pdf/"))
    assert b"".join(again.streaming_content) == data
    invoice.refresh_from_db()
    assert invoice.pdf.name == Invoice.objects.get(pk=invoice.pk).pdf.name


# --- Isolation ---------------------------------------------------------------------------------------


def test_another_clients_objects_are_404(story, carol_browser):
    other_period = open_period(story.globex_retainer)
    draft = Invoice.objects.get(client=story.acme, status="draft")
    for path in [
        f"invoices/{story.globex_invoice.pk}/pdf/",
        f"invoices/{draft.pk}/pdf/",
        f"retainers/{story.globex_retainer.pk}/statement/{other_period.pk}/",
        # Carol's retainer with another client's period, and the other way round.
        f"retainers/{story.advisory.pk}/statement/{other_period.pk}/",
        f"retainers/{story.globex_retainer.pk}/statement/{open_period(story.advisory).pk}/",
        # A period of another of her own retainers.
        f"retainers/{story.support.pk}/statement/{open_period(story.advisory).pk}/",
    ]:
        assert carol_browser.get(portal_url(story, path)).status_code == 404, path


def test_another_workspace_with_the_same_ids_is_404(story, other_workspace, carol_browser):
    period = open_period(story.advisory)
    invoice = Invoice.objects.filter(client=story.acme, status="open").first()
    for path in [
        "",
        "history/",
        "invoices/",
        f"invoices/{invoice.pk}/pdf/",
        f"retainers/{story.advisory.pk}/statement/{period.pk}/",
    ]:
        assert carol_browser.get(f"/portal/w/{other_workspace.slug}/{path}").status_code == 404, path


def test_a_consultant_without_a_contact_record_gets_404(story, owner_client):
    period = open_period(story.advisory)
    invoice = Invoice.objects.filter(client=story.acme, status="open").first()
    for path in [
        "",
        "history/",
        "invoices/",
        f"invoices/{invoice.pk}/pdf/",
        f"retainers/{story.advisory.pk}/statement/{period.pk}/",
    ]:
        assert owner_client.get(portal_url(story, path)).status_code == 404, path


def test_anonymous_visitors_are_sent_to_sign_in(story, client):
    period = open_period(story.advisory)
    invoice = Invoice.objects.filter(client=story.acme, status="open").first()
    for path in [
        "",
        "history/",
        "invoices/",
        f"invoices/{invoice.pk}/pdf/",
        f"retainers/{story.advisory.pk}/statement/{period.pk}/",
    ]:
        response = client.get(portal_url(story, path))
        assert response.status_code == 302 and response.url == "/portal/login/", path


def test_the_other_clients_contact_sees_only_their_own(story, login, time_machine):
    time_machine.move_to(NOON, tick=False)
    greta = add_contact(client=story.globex, name="Greta", email="greta@globex.example", portal_access=True)
    browser = login(greta.user)
    for path in ["", "history/", "invoices/"]:
        text = read(browser.get(portal_url(story, path))).text()
        assert "Acme" not in text and "Kick-off" not in text and "Welcome to the portal" not in text, path
    assert "GLOBEX SECRET WORK" in read(browser.get(portal_url(story, "history/"))).text()


def test_portal_pages_have_the_portal_navigation(story, carol_browser):
    for path in ["", "history/", "invoices/"]:
        page = read(carol_browser.get(portal_url(story, path)))
        for target in ["", "history/", "invoices/", "messages/", "card/", "renewals/"]:
            assert portal_url(story, target) in page.links, (path, target)


# --- Query counts ---------------------------------------------------------------------------------------


def bulk_other_clients(workspace: Workspace, count: int, *, start: int) -> None:
    """`count` more clients, each with a contact, a retainer with an open period, a ledger, work,
    an open invoice and a shared note: all with bulk_create, a handful of queries in all."""
    clients = Client.objects.bulk_create(
        Client(workspace=workspace, name=f"Bulk {n:05d}") for n in range(start, start + count)
    )
    Contact.objects.bulk_create(
        Contact(workspace=workspace, client=c, name=f"Bulk person {n}", email=f"bulk{n}@bulk.example")
        for n, c in enumerate(clients, start)
    )
    retainers = Retainer.objects.bulk_create(
        Retainer(
            workspace=workspace,
            client=c,
            name=f"Bulk retainer {n}",
            model="rollover",
            unit="hours",
            units_per_period=H("10"),
            rollover_cap=H("5"),
            rollover_expiry_periods=2,
            currency=workspace.currency,
            starts_on=date(2026, 4, 1),
            anchor_on=date(2026, 4, 1),
            term_ends_on=date(2027, 4, 1),
            period_available=H("10"),
            period_used=H("1"),
            balance=H("9"),
        )
        for n, c in enumerate(clients, start)
    )
    periods = Period.objects.bulk_create(
        Period(
            workspace=workspace,
            retainer=r,
            seq=1,
            anchor_index=0,
            start_on=date(2026, 4, 1),
            end_on=date(2026, 5, 1),
            allotted=H("10"),
        )
        for r in retainers
    )
    items = WorkItem.objects.bulk_create(
        WorkItem(
            workspace=workspace,
            retainer=r,
            period=p,
            delivered_on=date(2026, 4, 2),
            quantity=H("1"),
            description="Bulk work",
        )
        for r, p in zip(retainers, periods, strict=True)
    )
    LedgerEntry.objects.bulk_create(
        [
            *(
                LedgerEntry(workspace=workspace, retainer=r, period=p, kind="allotment", quantity=H("10"), origin_seq=1)
                for r, p in zip(retainers, periods, strict=True)
            ),
            *(
                LedgerEntry(
                    workspace=workspace,
                    retainer=i.retainer,
                    period=i.period,
                    kind="delivery",
                    quantity=H("-1"),
                    origin_seq=1,
                    work_item=i,
                )
                for i in items
            ),
        ]
    )
    Invoice.objects.bulk_create(
        Invoice(
            workspace=workspace,
            client=c,
            retainer=r,
            period=p,
            kind="scheduled",
            number=f"BULK-{n}",
            status="open",
            currency=workspace.currency,
            issued_on=date(2026, 4, 1),
            due_on=date(2026, 4, 15),
            subtotal_minor=100000,
            total_minor=100000,
        )
        for n, (c, r, p) in enumerate(zip(clients, retainers, periods, strict=True), start)
    )
    Note.objects.bulk_create(
        Note(workspace=workspace, client=c, session=i, visibility="shared", body="Bulk note")
        for c, i in zip(clients, items, strict=True)
    )


def _count(browser, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = browser.get(url)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    assert response.status_code == 200, url
    return len(captured)


def test_every_portal_page_makes_the_same_queries_for_10_or_1000_clients(
    story, carol_browser, django_assert_num_queries, settings
):
    settings.PAGE_CACHE_SECONDS = 0  # the overview built every time: what it costs after a change
    # The contact's own client has three retainers and four months of history; add several
    # months more so the history has pages.
    for month in range(5, 8):
        billing.bill_workspace(workspace_id=story.workspace.pk, as_of=date(2026, month, 1))
    invoice = Invoice.objects.filter(client=story.acme, status="open").order_by("pk").first()
    period = Period.objects.get(retainer=story.advisory, seq=2)
    urls = [
        portal_url(story),
        portal_url(story, "history/"),
        portal_url(story, "history/?page=2"),
        portal_url(story, "invoices/"),
        portal_url(story, f"invoices/{invoice.pk}/pdf/"),
        portal_url(story, f"retainers/{story.advisory.pk}/statement/{period.pk}/"),
    ]
    bulk_other_clients(story.workspace, 8, start=0)  # 10 clients in the workspace
    assert Client.objects.filter(workspace=story.workspace).count() == 10
    for url in urls:
        _count(carol_browser, url)  # the first request of a session writes it; PDFs get stored
    small = {url: _count(carol_browser, url) for url in urls}

    bulk_other_clients(story.workspace, 990, start=8)
    assert Client.objects.filter(workspace=story.workspace).count() == 1000
    for url in urls:
        with django_assert_num_queries(small[url]):
            response = carol_browser.get(url)
            if hasattr(response, "streaming_content"):
                b"".join(response.streaming_content)
        assert response.status_code == 200
    # And they stay small: the overview is the widest page (with the booked units, the client's sessions
    # and whether it can book: three queries more than before bookings, when its parts are rebuilt; and
    # the next invoices built as the billing run builds them, billing.preview's seven with the approved
    # overage the close would bill; the workspace's payment options, so its buttons say "Pay" only where a
    # card is taken: one more).
    assert small[portal_url(story)] <= 22, small
    assert max(small.values()) <= 22, small


def test_the_cached_overview_is_rebuilt_after_any_change_and_cheap_until_then(story, carol_browser):
    url = portal_url(story)
    _count(carol_browser, url)  # the first request of a session writes it (and builds the page)
    before = carol_browser.get(url).content.decode()
    assert _count(carol_browser, url) == 3  # session, user, contacts with the data version
    _record(story.advisory, date(2026, 4, 9), "2", "Board pack review")  # moves the data version
    built = _count(carol_browser, url)
    assert built > 3
    after = carol_browser.get(url).content.decode()
    assert "Board pack review" not in before and "Board pack review" in after
    assert _count(carol_browser, url) == 3
    bulk_other_clients(story.workspace, 50, start=0)  # any row of the workspace moves it, even bulk inserts
    assert _count(carol_browser, url) == built


def test_portal_pages_obey_the_strict_csp(story, carol_browser):
    """The rich pages (charts, notes' markdown, pay buttons) carry no inline style or script."""
    from tests.retainers.test_security import csp_problems

    _record(story.support, date(2026, 4, 9), "4", "Emergency fix")  # an over-balance card too
    for path in ["", "history/", "invoices/"]:
        response = carol_browser.get(portal_url(story, path))
        assert response.status_code == 200
        assert csp_problems(response) == [], path


def test_projection_extends_the_burn_down_at_the_pace_so_far():
    from delivery import charts
    from delivery.forecast import projection

    def chart(available: str, used: dict[int, str]):
        return charts.burndown(
            start_on=date(2026, 4, 1),
            end_on=date(2026, 5, 1),
            available=H(available),
            used_by_day={date(2026, 4, d): H(q) for d, q in used.items()},
            today=date(2026, 4, 10),
            unit="hours",
            width=440,
            height=220,
        )

    fast = chart("5", {2: "1", 8: "2"})
    outlook = forecast(**APRIL, today=date(2026, 4, 10), available=H("5"), used=H("3"))
    line = projection(fast, outlook, remaining=H("2"), available=H("5"))
    assert (line.x1, line.y1, line.y2) == (fast.last_x, fast.last_y, fast.zero_y)  # from today's point to zero
    day = (float(fast.right) - float(fast.left)) / 30
    assert float(line.x2) == pytest.approx(float(fast.left) + day * 50 / 3, abs=0.1)  # 16.7 days in
    assert line.marker_x == line.x2
    assert not line.label_after_marker  # day 16.7 of 30: "Run out" is written left of the marker

    early = chart("20", {2: "9", 8: "9"})  # 1.8 a day: 20 hours last 11.1 days
    outlook = forecast(**APRIL, today=date(2026, 4, 10), available=H("20"), used=H("18"))
    line = projection(early, outlook, remaining=H("2"), available=H("20"))
    assert line.label_after_marker  # in the left half: right of the marker, clear of the y axis

    slow = chart("10", {2: "1", 8: "1"})
    outlook = forecast(**APRIL, today=date(2026, 4, 10), available=H("10"), used=H("2"))
    line = projection(slow, outlook, remaining=H("8"), available=H("10"))
    assert float(line.x2) == pytest.approx(float(slow.right), abs=0.1) and line.marker_x is None
    # 4 of 10 left at the end (0.2 a day for 30 days): 40% of the way from zero to the top.
    top_y = float(slow.ideal_points.split()[0].split(",")[1])
    zero_y = float(slow.zero_y)
    assert float(line.y2) == pytest.approx(zero_y + (top_y - zero_y) * 0.4, abs=0.2)

    assert (
        projection(
            slow, forecast(**APRIL, today=TODAY, available=H("10"), used=H("0")), remaining=H("10"), available=H("10")
        )
        is None
    )
