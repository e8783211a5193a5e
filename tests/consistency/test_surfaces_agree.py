"""The consistency suite (issue 10, item 3): every surface states the ledger's figures.

The demo workspace is seeded on 20 May 2026, then its scheduled jobs run day by day for 95 days
(billing, dunning, renewals, reminders: the services the beat tasks and `--as-of` commands call,
inline), with sessions recorded, an amendment, an accepted renewal, a pause and resume, an overage
and payments (one part payment, one client never paying) along the way. Every simulated day the
pages are rendered and their figures READ FROM THE HTML (`data-figure` attributes), for a handful
of retainers (the dashboard every day, each retainer's own pages every other day, the client page
and the statement weekly, the client page also the evening before an invoice is issued):

- remaining and used: the dashboard row, the client page (its summary and its Work tab), the
  retainer page, the portal overview and (weekly) the period statement, against the open
  period's ledger entries;
- utilization: the same pages, against used ÷ available of the ledger, rounded half up;
- next invoice: what the dashboard, the client page's summary and the portal announced the evening
  before, against the invoice the billing run then issued;
- outstanding and overdue money: the client page's summary, against the client's open invoices;
- invoice statuses: the consultant's client page (its Billing tab) and the portal's invoices,
  against the invoices table (status, due date, paid amount);
- emails: each invoice email states its invoice's total and whether it is paid; each low-balance
  alert the ledger's remaining and available units at the moment it was written.

The expectations are computed here from the rows, never by the app's helpers, so a template or
view that computes a figure of its own fails the check of that figure. The simulation runs once
per process; each figure is its own test over its results.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db.models import Q, Sum
from django.template.loader import render_to_string
from django.test import TestCase

from billing import dunning
from billing import services as billing
from billing.models import Invoice
from clients.models import Client, Retainer
from clients.services import add_contact
from communication import reminders
from delivery import services as delivery
from delivery.models import LedgerEntry, Period
from demo import northwind
from portal import statement as portal_statement
from renewals import services as renewals
from renewals.models import Renewal
from retainers.models import Email, User, Workspace
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

LONDON = ZoneInfo("Europe/London")
# Seeded the day before: Acme's short first term ends on 1 June and its renewal is open, so the
# simulation accepts it on day one and lives through the overlap and the next term.
FIRST_DAY = date(2026, 5, 21)
DAYS = 95
ZERO = Decimal("0")
# The retainers followed (client, retainer): a rollover with a renewal to accept and an amendment,
# a sessions retainer to pause, a fixed-hours one to run over, and a deliverables one.
FOLLOWED = [
    ("Acme Corp", "Operations advisory"),
    ("Globex Ltd", "Leadership coaching"),
    ("Vandelay Industries", "Support desk"),
    ("Initech", "Content studio"),
]
NEVER_PAYS = "Vandelay Industries"  # its invoices go overdue
PART_PAYS = "Globex Ltd"  # pays half of each invoice, the rest at the end


# --- Reading figures from the rendered HTML ----------------------------------------------------------


@dataclass
class Figure:
    name: str
    text: str
    retainer: int | None
    invoice: int | None


class FigureParser(HTMLParser):
    """Every element with `data-figure`, with its text and the nearest `data-retainer` /
    `data-invoice` around it."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[Figure] = []
        self._stack: list[tuple[str, dict[str, str | None], list[str] | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        a = dict(attrs)
        self._stack.append((tag, a, [] if "data-figure" in a else None))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            open_tag, attrs, text = self._stack.pop()
            if text is not None:
                self.figures.append(
                    Figure(
                        str(attrs["data-figure"]),
                        " ".join("".join(text).split()),
                        self._context("data-retainer", attrs),
                        self._context("data-invoice", attrs),
                    )
                )
            if open_tag == tag:
                break

    def _context(self, name: str, own: dict[str, str | None]) -> int | None:
        for attrs in [own, *(a for _, a, _ in reversed(self._stack))]:
            if attrs.get(name):
                return int(str(attrs[name]))
        return None

    def handle_data(self, data: str) -> None:
        for _, _, text in self._stack:
            if text is not None:
                text.append(data)


def figures(html: str) -> list[Figure]:
    parser = FigureParser()
    parser.feed(html)
    parser.close()
    return parser.figures


NUMBER = re.compile(r"-?[\d,]*\d(?:\.\d+)?")


def number(text: str) -> Decimal | None:
    """The first number in the text ("6.50 h left" → 6.50, "2.00 h over" → -2.00, "– " → None)."""
    match = NUMBER.search(text)
    if match is None:
        return None
    value = Decimal(match.group().replace(",", ""))
    return -value if " over" in text and value > 0 else value


MONEY = re.compile(r"£([\d,]+\.\d\d)")


def money(text: str) -> Decimal | None:
    match = MONEY.search(text)
    return Decimal(match.group(1).replace(",", "")) if match else None


def pounds(minor: int) -> str:
    return f"£{Decimal(minor) / 100:,.2f}"


# --- Expectations, from the rows ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ledger:
    available: Decimal
    used: Decimal
    remaining: Decimal

    @property
    def percent(self) -> int | None:
        if self.available <= 0:
            return None
        return int((self.used / self.available * 100).to_integral_value(ROUND_HALF_UP))


def ledger(retainer: Retainer) -> Ledger | None:
    """The open period's figures, summed here from its ledger entries."""
    period = Period.objects.filter(retainer=retainer, status=Period.Status.OPEN).first()
    if period is None:
        return None
    entries = LedgerEntry.objects.filter(period=period)
    remaining = entries.aggregate(s=Sum("quantity", default=ZERO))["s"]
    used = -entries.filter(work_item__isnull=False).aggregate(s=Sum("quantity", default=ZERO))["s"]
    return Ledger(available=remaining + used, used=used, remaining=remaining)


def expected_status(invoice: Invoice, today: date) -> str:
    """The status label the invoices table implies (the one vocabulary of both sides)."""
    if invoice.kind == Invoice.Kind.CREDIT_NOTE:
        return "Credit note"
    if invoice.status == Invoice.Status.VOID:
        return "Void"
    owed = invoice.total_minor - invoice.credited_minor - invoice.paid_minor
    if invoice.status == Invoice.Status.PAID:
        return "Paid" if owed <= 0 else "Refunded"
    if invoice.status == Invoice.Status.UNCOLLECTIBLE:
        return "Uncollectible"
    if invoice.due_on is not None and invoice.due_on < today:
        return "Overdue"
    return "Part paid" if invoice.paid_minor > 0 else "Open"


# --- The simulation -------------------------------------------------------------------------------------


@dataclass
class Results:
    disagreements: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    checks: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    story: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def compare(self, figure: str, where: str, shown: object, expected: object) -> None:
        self.checks[figure] += 1
        if shown != expected:
            self.disagreements[figure].append(f"{where}: shows {shown!r}, the rows say {expected!r}")


_RESULTS: Results | None = None


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour, 0), tzinfo=LONDON)


class Simulation:
    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.time_machine = request.getfixturevalue("time_machine")
        self.login = request.getfixturevalue("login")
        monkeypatch = request.getfixturevalue("monkeypatch")
        # The statement's text: the HTML its PDF is rendered from (pypdf is not installed).
        monkeypatch.setattr(
            portal_statement,
            "render_statement_pdf",
            lambda context: render_to_string("portal/statement_pdf.html", context).encode(),
        )
        self.results = Results()
        self.predicted: dict[int, dict[str, tuple[date, str]]] = defaultdict(dict)  # retainer → surface → (on, amount)
        self.last_email = 0
        self.browsers: dict[int, object] = {}

    def browser(self, user: User):
        if user.pk not in self.browsers:
            self.browsers[user.pk] = self.login(user)
        return self.browsers[user.pk]

    # Jobs and events --------------------------------------------------------------------------------

    def jobs(self, day: date) -> None:
        """What beat runs in a day, as the `--as-of` commands run it."""
        self.time_machine.move_to(at(day, 6), tick=False)
        with TestCase.captureOnCommitCallbacks(execute=True):
            billing.run_billing(as_of=day, inline=True)
        with TestCase.captureOnCommitCallbacks(execute=True):
            dunning.run_dunning(as_of=day, inline=True)
        with TestCase.captureOnCommitCallbacks(execute=True):
            renewals.run_renewals(as_of=day, inline=True)
        with TestCase.captureOnCommitCallbacks(execute=True):
            reminders.send_reminders(as_of=day)

    def events(self, day: date, n: int) -> None:
        self.time_machine.move_to(at(day, 11), tick=False)
        workspace, alice = self.workspace, self.alice
        with TestCase.captureOnCommitCallbacks(execute=True):
            for retainer in self.followed():
                if retainer.status != Retainer.Status.ACTIVE or retainer.model == "deliverables":
                    continue
                if n % 3 == retainer.pk % 3:
                    quantity = Decimal("1") if retainer.unit == "sessions" else Decimal("1.25")
                    if retainer.client.name == NEVER_PAYS and n % 30 > 20:
                        quantity = Decimal("4.5")  # the overage
                    try:
                        delivery.record_delivery(
                            retainer=retainer,
                            delivered_on=day,
                            quantity=quantity,
                            description=f"Work of {day:%d %b}",
                            actor=alice,
                            confirm_large=True,
                        )
                        self.results.story["sessions"] += 1
                    except delivery.DeliveryError:
                        self.results.story["refused"] += 1  # a refuse policy at its limit
                    self.check_emails(day)
            acme = self.retainer("Acme Corp", "Operations advisory")
            if n == 5:
                delivery.amend_retainer(
                    retainer=acme, terms={"units_per_period": Decimal("30")}, reason="More scope", actor=alice
                )
                self.results.story["amendments"] += 1
            for renewal in Renewal.objects.filter(
                workspace=workspace, retainer__in=self.followed(), status__in=renewals.OPEN, term_ends_on__gt=day
            ):
                try:
                    renewals.accept_renewal(renewal=renewal, actor=alice)
                    self.results.story["renewals accepted"] += 1
                except renewals.RenewalError:
                    pass  # not answerable (yet)
            globex = self.retainer("Globex Ltd", "Leadership coaching")
            if n in (2, 30) and globex.status == Retainer.Status.PAUSED:  # the demo left it paused
                delivery.resume_retainer(retainer=globex, on=day)
            if n == 20 and globex.status == Retainer.Status.ACTIVE:
                delivery.pause_retainer(retainer=globex, on=day)
                self.results.story["pauses"] += 1
            for invoice in Invoice.objects.filter(
                workspace=workspace, status=Invoice.Status.OPEN, due_on=day
            ).select_related("client"):
                if invoice.client.name == NEVER_PAYS:
                    continue
                owed = invoice.total_minor - invoice.credited_minor - invoice.paid_minor
                amount = owed // 2 if invoice.client.name == PART_PAYS and invoice.paid_minor == 0 else owed
                if amount > 0:
                    billing.record_payment(invoice=invoice, amount_minor=amount, method="bank_transfer", actor=alice)
                    self.results.story["payments"] += 1
            if n == DAYS - 10:  # Globex settles what it left
                for invoice in Invoice.objects.filter(workspace=workspace, client__name=PART_PAYS, status="open"):
                    owed = invoice.total_minor - invoice.credited_minor - invoice.paid_minor
                    if owed > 0:
                        billing.record_payment(invoice=invoice, amount_minor=owed, method="bank_transfer", actor=alice)
        self.check_emails(day)

    def followed(self) -> list[Retainer]:
        """The followed agreements' terms in force today (a renewal's next term takes over)."""
        today = self.workspace.today()
        in_force = Retainer.objects.for_workspace(self.workspace).in_force(on=today).select_related("client")
        names = Q()
        for client, name in FOLLOWED:
            names |= Q(client__name=client, name=name)
        return list(in_force.filter(names).order_by("pk"))

    def retainer(self, client: str, name: str) -> Retainer:
        return next(r for r in self.followed() if r.client.name == client and r.name == name)

    # Checks --------------------------------------------------------------------------------------------

    def check_emails(self, day: date) -> None:
        """The emails written since the last look state what the rows say right now."""
        emails = list(Email.objects.filter(pk__gt=self.last_email).order_by("pk"))
        if emails:
            self.last_email = emails[-1].pk
        for email in emails:
            issued = re.search(r"invoice (\S+) for (£[\d,]+\.\d\d)", email.body_text)
            if issued:
                invoice = Invoice.objects.filter(workspace=self.workspace, number=issued.group(1)).first()
                if invoice is not None:
                    where = f"{day} email to {email.to} about invoice {invoice.number}"
                    self.results.compare("invoice emails", where, issued.group(2), pounds(invoice.total_minor))
                    says_paid = "It is already paid" in email.body_text
                    self.results.compare("invoice emails", where + " (paid?)", says_paid, invoice.status == "paid")
            low = re.search(r"“(?P<name>[^”]+)”[^:]*: (?P<left>\S+) of (?P<of>\S+) \S+ left", email.body_text)
            if low:
                for retainer in self.followed():
                    if retainer.name == low.group("name") and retainer.client.name in email.body_text:
                        figures_now = ledger(retainer)
                        if figures_now is None:
                            continue
                        where = f"{day} low-balance email to {email.to} about {retainer.client.name} · {retainer.name}"
                        self.results.compare(
                            "low-balance emails",
                            where,
                            (number(low.group("left")), number(low.group("of"))),
                            (figures_now.remaining, figures_now.available),
                        )

    def check_pages(self, day: date, n: int) -> None:
        self.time_machine.move_to(at(day, 18), tick=False)
        workspace, results = self.workspace, self.results
        if n % 7 == 0:  # signed in again each week: time travels further than a session lasts
            self.browsers.clear()
        consultant = self.browser(self.alice)
        dashboard = figures(consultant.get(f"/w/{workspace.slug}/").content.decode())
        weekly = n % 7 == 0
        for index, retainer in enumerate(self.followed()):
            ends_today = Period.objects.filter(
                retainer=retainer, status=Period.Status.OPEN, end_on=day + timedelta(days=1)
            ).exists()  # its next invoice is issued tomorrow: what every surface announces is held against it
            if index % 2 != n % 2 and not weekly and not ends_today:
                continue  # each retainer's own pages every other day (the dashboard every day): minutes, not ten
            who = f"{day} {retainer.client.name} · {retainer.name}"
            expected = ledger(retainer)
            units = retainer.model != "deliverables"
            row = {f.name: f.text for f in dashboard if f.retainer == retainer.pk}
            page = {
                f.name: f.text
                for f in figures(consultant.get(f"/w/{workspace.slug}/retainers/{retainer.pk}/").content.decode())
            }
            portal_browser = self.browser(self.contacts[retainer.client_id].user)
            overview = figures(portal_browser.get(f"/portal/w/{workspace.slug}/").content.decode())
            card = {f.name: f.text for f in overview if f.retainer == retainer.pk}
            surfaces = {"dashboard row": row, "retainer page": page, "portal overview": card}
            if weekly or ends_today:
                html = consultant.get(f"/w/{workspace.slug}/clients/{retainer.client_id}/").content.decode()
                summary = figures(html[html.index('id="client-summary"') : html.index('id="client-tabs"')])
                work_tab = figures(html[html.index('id="client-tabs"') :])
                surfaces["client page summary"] = {f.name: f.text for f in summary if f.retainer == retainer.pk}
                surfaces["client page"] = {f.name: f.text for f in work_tab if f.retainer == retainer.pk}
                self.check_money(day, retainer.client, summary)
            if weekly:
                billing_tab = figures(
                    consultant.get(f"/w/{workspace.slug}/clients/{retainer.client_id}/billing/").content.decode()
                )
                self.check_statuses(day, retainer.client, billing_tab, portal_browser)
                period = Period.objects.filter(retainer=retainer, status=Period.Status.OPEN).first()
                if period is not None and units:
                    pdf = portal_browser.get(
                        f"/portal/w/{workspace.slug}/retainers/{retainer.pk}/statement/{period.pk}/"
                    )
                    surfaces["statement"] = {f.name: f.text for f in figures(pdf.content.decode())}
            if expected is None or not units:
                continue
            for surface, shown in surfaces.items():
                if "remaining" in shown:
                    results.compare("remaining", f"{who}, {surface}", number(shown["remaining"]), expected.remaining)
                if "used" in shown:
                    results.compare("used", f"{who}, {surface}", number(shown["used"]), expected.used)
                if "utilization" in shown and expected.percent is not None:
                    results.compare("utilization", f"{who}, {surface}", number(shown["utilization"]), expected.percent)
            # What each surface says the next invoice will be, to hold against what the run issues.
            if "next-invoice" in row and row.get("next-invoice-on"):
                self.predicted[retainer.pk]["dashboard row"] = (day, row["next-invoice"])
            if "next-invoice" in card:
                self.predicted[retainer.pk]["portal overview"] = (day, card["next-invoice"])
            summary_row = surfaces.get("client page summary", {})
            if "next-invoice" in summary_row and summary_row.get("next-invoice-on"):
                self.predicted[retainer.pk]["client page summary"] = (day, summary_row["next-invoice"])
        results.story["days checked"] += 1

    def check_money(self, day: date, client: Client, summary: list[Figure]) -> None:
        """The client page summary's outstanding and overdue money, against the client's open invoices."""
        owed = overdue = 0
        for invoice in Invoice.objects.filter(workspace=self.workspace, client=client, status=Invoice.Status.OPEN):
            if invoice.kind == Invoice.Kind.CREDIT_NOTE:
                continue
            left = max(invoice.total_minor - invoice.credited_minor - invoice.paid_minor - invoice.refunded_minor, 0)
            owed += left
            if invoice.due_on is not None and invoice.due_on < day:
                overdue += left
        shown = {f.name: f.text for f in summary if f.retainer is None}
        where = f"{day} {client.name}, client page summary"
        self.results.compare(
            "outstanding", where, money(shown.get("outstanding", "")), Decimal(owed) / 100 if owed else None
        )
        self.results.compare(
            "overdue", where, money(shown.get("overdue", "")), Decimal(overdue) / 100 if overdue else None
        )

    def check_statuses(self, day: date, client: Client, client_page: list[Figure], portal_browser) -> None:
        portal_page = figures(portal_browser.get(f"/portal/w/{self.workspace.slug}/invoices/").content.decode())
        for surface, shown in (("client page", client_page), ("portal invoices", portal_page)):
            for figure in shown:
                if figure.name != "status" or figure.invoice is None:
                    continue
                invoice = Invoice.objects.get(pk=figure.invoice)
                where = f"{day} invoice {invoice.number} of {client.name}, {surface}"
                self.results.compare("invoice status", where, figure.text, expected_status(invoice, day))

    def check_issued(self, day: date) -> None:
        """The invoices the run issued today, against what the surfaces announced yesterday."""
        for invoice in Invoice.objects.filter(
            workspace=self.workspace, kind=Invoice.Kind.SCHEDULED, issued_on=day, retainer__in=self.predicted
        ):
            assert invoice.retainer_id is not None
            for surface, (on, amount) in self.predicted[invoice.retainer_id].items():
                if on == day - timedelta(days=1):
                    where = f"{day} invoice {invoice.number}, announced on {on}"
                    self.results.compare(
                        f"next invoice, {surface}", where, money(amount), Decimal(invoice.total_minor) / 100
                    )

    # The run -----------------------------------------------------------------------------------------

    def run(self) -> Results:
        self.time_machine.move_to(at(FIRST_DAY - timedelta(days=1), 9), tick=False)
        call_command("seed_demo", months=3)
        self.workspace = Workspace.objects.get(slug=northwind.SLUG)
        self.alice = User.objects.get(email=northwind.OWNER)
        self.contacts = {}
        for retainer in self.followed():
            contact = retainer.client.contacts.filter(portal_access=True).first()
            if contact is None:
                slug = re.sub(r"\W+", "", retainer.client.name.lower())
                contact = add_contact(
                    client=retainer.client, name="Portal Reader", email=f"reader@{slug}.example", portal_access=True
                )
            self.contacts[retainer.client_id] = contact
        self.last_email = Email.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        for n in range(DAYS):
            day = FIRST_DAY + timedelta(days=n)
            self.jobs(day)
            self.check_emails(day)
            self.check_issued(day)
            self.events(day, n)
            self.check_pages(day, n)
        return self.results


def simulated(request: pytest.FixtureRequest) -> Results:
    global _RESULTS
    if _RESULTS is None:
        _RESULTS = Simulation(request).run()
    return _RESULTS


# --- The tests ---------------------------------------------------------------------------------------


def test_the_simulation_lives_through_the_whole_story(request):
    results = simulated(request)

    assert results.story["days checked"] == DAYS
    assert results.story["sessions"] > 50
    assert results.story["amendments"] == 1
    assert results.story["renewals accepted"] >= 1
    assert results.story["pauses"] == 1
    assert results.story["payments"] > 5
    for figure in ("remaining", "used", "utilization", "invoice status"):
        assert results.checks[figure] > 20, (figure, dict(results.checks))
    assert results.checks["invoice emails"] > 10 and results.checks["low-balance emails"] >= 2, dict(results.checks)
    for surface in ("dashboard row", "portal overview", "client page summary"):
        assert results.checks[f"next invoice, {surface}"] >= 4, dict(results.checks)
    assert results.checks["outstanding"] > 20 and results.checks["overdue"] > 20, dict(results.checks)


def _agree(request, figure: str) -> None:
    wrong = simulated(request).disagreements[figure]
    assert not wrong, f"{len(wrong)} disagreements on {figure}, the first:\n" + "\n".join(wrong[:15])


def test_remaining_agrees_everywhere(request):
    _agree(request, "remaining")


def test_used_agrees_everywhere(request):
    _agree(request, "used")


def test_utilization_agrees_everywhere(request):
    _agree(request, "utilization")


def test_next_invoice_on_the_dashboard_is_what_the_run_issues(request):
    _agree(request, "next invoice, dashboard row")


def test_next_invoice_in_the_portal_is_what_the_run_issues(request):
    _agree(request, "next invoice, portal overview")


def test_next_invoice_on_the_client_page_is_what_the_run_issues(request):
    _agree(request, "next invoice, client page summary")


def test_outstanding_on_the_client_page_is_what_open_invoices_owe(request):
    _agree(request, "outstanding")


def test_overdue_on_the_client_page_is_what_is_past_due(request):
    _agree(request, "overdue")


def test_invoice_status_agrees_everywhere(request):
    _agree(request, "invoice status")


def test_invoice_emails_state_the_invoice_total(request):
    _agree(request, "invoice emails")


def test_low_balance_emails_state_the_ledger(request):
    _agree(request, "low-balance emails")


def test_retainer_page_rounds_utilization_like_the_other_pages(workspace, owner_client):
    """Found by the suite on a first run seeded on 1 June (Acme, 11 July: 12 % on the retainer page,
    13 % everywhere else); the story as it stands no longer lands on a half, so this pins it."""
    retainer = factories.make_retainer(workspace=workspace, model="fixed", units_per_period=Decimal("40"))
    delivery.record_delivery(
        retainer=retainer, delivered_on=retainer.starts_on, quantity=Decimal("5"), description="Work", actor=None
    )
    page = owner_client.get(f"/w/{workspace.slug}/retainers/{retainer.pk}/").content.decode()
    shown = {f.name: f.text for f in figures(page)}

    assert number(shown["utilization"]) == 13  # 5 of 40 is 12.5 %: half up, as the dashboard rounds
