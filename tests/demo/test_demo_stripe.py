"""The demo on Stripe (localstripe): the month's billing run charges the auto-charge clients' cards
and emails the others their invoice with its PDF, and the client page shows it all."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.db.models import Max
from django.test import Client as HttpClient

from billing.models import Invoice, Payment, StripeCustomer
from clients.models import Client, Retainer
from delivery.models import Period
from demo import cards
from retainers.models import Membership
from tests.billing.conftest import SECRET_KEY, localstripe  # noqa: F401  (the session's localstripe server)

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_localstripe(settings, localstripe):  # noqa: F811
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_API_BASE = localstripe
    settings.STRIPE_TIMEOUT_SECONDS = 5


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def test_the_demo_month_charges_two_cards_and_emails_the_rest(on_localstripe, django_capture_on_commit_callbacks):
    run("seed_demo")
    printed = run("demo_stripe")
    assert "Acme Corp: visa •••• 4242, retainers on auto-charge" in printed
    assert "Initech: visa •••• 4242" in printed
    assert run("demo_stripe") == printed  # again: the same cards, nothing new on Stripe
    assert StripeCustomer.objects.count() == 2

    workspace = cards.demo_workspace()
    carded = set(Client.objects.filter(workspace=workspace, name__in=cards.CARD_CLIENTS))
    live = Retainer.objects.filter(workspace=workspace).live()
    assert {r.client for r in live.filter(auto_charge=True)} == carded
    # The month: the day the card clients' open periods have ended (anything else due is billed too).
    as_of = Period.objects.filter(retainer__client__in=carded, status="open").aggregate(last=Max("end_on"))["last"]
    before = set(Invoice.objects.filter(workspace=workspace).values_list("pk", flat=True))
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        run("run_billing", "--as-of", str(as_of))
    issued = list(Invoice.objects.filter(workspace=workspace).exclude(pk__in=before).select_related("client"))
    assert {i.client for i in issued} >= carded and len({i.client for i in issued}) > len(carded)

    for invoice in issued:
        if invoice.client in carded:
            assert invoice.auto_charge and invoice.status == Invoice.Status.PAID, invoice
            payment = Payment.objects.get(invoice=invoice)
            assert payment.status == Payment.Status.SUCCEEDED and payment.stripe_id.startswith("pi_")
            assert payment.amount_minor == invoice.total_minor
        else:
            assert not invoice.auto_charge and invoice.status == Invoice.Status.OPEN, invoice
            sent = [m for m in mail.outbox if invoice.number in m.subject]
            assert sent, f"no email for {invoice.number}"
            assert any(a[0] == f"{invoice.number}.pdf" and a[2] == "application/pdf" for a in sent[0].attachments)
            assert sent[0].attachments[0][1].startswith(b"%PDF")

    acme = next(c for c in carded if c.name == "Acme Corp")
    owner = Membership.objects.get(workspace=workspace, role="owner").user
    browser = HttpClient()
    browser.force_login(owner)
    page = browser.get(f"/w/{workspace.slug}/clients/{acme.pk}/billing/").content.decode()
    charged = next(i for i in issued if i.client == acme)
    row = page[page.index(f">{charged.number}</a>") :]
    assert row.index("Paid") < row.index("</tr>")
    payments = page[page.index('id="client-payments-heading"') :]
    assert f">{charged.number}</a></td>" in payments and '<td data-label="Method">Card</td>' in payments
    assert "Card on file: Visa •••• 4242, expires 12/2030" in page
