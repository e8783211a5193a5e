"""Delivery: an issued invoice is emailed or charged exactly once, even when the task queued after
commit is lost; what cannot be delivered is recorded and shown to the consultant, not swallowed;
and the billing run's business date reaches the charge it queues (`run_billing --as-of`)."""

from __future__ import annotations

import io
from datetime import date, timedelta
from io import StringIO

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.template import TemplateSyntaxError
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from billing import pdf, sending, services, tasks
from billing.models import Invoice, Payment
from clients.models import Retainer
from retainers.models import Email
from tests import factories
from tests.billing.conftest import open_invoice, save_card

pytestmark = pytest.mark.django_db


def attachment_text(message) -> str:
    [(filename, content, mimetype)] = message.attachments
    assert mimetype == "application/pdf" and content.startswith(b"%PDF")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


@pytest.fixture
def clients(workspace, fake_stripe, use_stripe):
    """Three clients billed by email, two charged on a saved card, each with a monthly retainer."""
    use_stripe(fake_stripe.url)
    emailed = [
        factories.ClientFactory(workspace=workspace, name=f"Emailed {n}", billing_email=f"ap{n}@emailed.example")
        for n in range(3)
    ]
    charged = [
        factories.ClientFactory(workspace=workspace, name=f"Charged {n}", billing_email=f"ap{n}@charged.example")
        for n in range(2)
    ]
    for client in [*emailed, *charged]:
        factories.make_retainer(workspace=workspace, client=client, price_minor=100000)
    for client in charged:
        save_card(client, customer_id=f"cus_{client.pk}", payment_method_id=fake_stripe.add_card())
    Retainer.objects.filter(client__in=charged).update(auto_charge=True)
    return emailed, charged


def test_after_a_run_whose_tasks_were_lost_the_sweep_delivers_every_invoice_exactly_once(
    clients, fake_stripe, django_capture_on_commit_callbacks
):
    emailed, charged = clients
    with django_capture_on_commit_callbacks(execute=False) as lost:  # the broker hiccup: thrown away
        call_command("run_billing", "--as-of", "2026-01-01", stdout=StringIO())
    assert lost, "the run queues its deliveries after commit"
    assert Invoice.objects.filter(delivered_at=None).count() == 5
    assert Email.objects.count() == 0 and fake_stripe.requests == []

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("deliver_invoices", "--older-than", "0", "--inline", stdout=out)
    assert "5 invoice(s) to deliver or follow up: 5 delivered, 0 failed" in out.getvalue()

    for client in emailed:  # one email each, with its PDF asking for payment
        invoice = Invoice.objects.get(client=client)
        [message] = [m for m in mail.outbox if m.to == [client.billing_email]]
        assert message.subject.startswith(f"Invoice {invoice.number} from Northwind Advisory")
        assert message.attachments[0][0] == f"{invoice.number}.pdf"
        assert "Pay online by card" in attachment_text(message)
    intents = fake_stripe.of_type("payment_intent")
    assert len(intents) == 2  # one charge per auto-charge invoice
    for client in charged:  # charged once; the receipt is the email, with the PDF that says PAID
        invoice = Invoice.objects.get(client=client)
        assert [i["metadata"]["invoice_id"] for i in intents].count(str(invoice.pk)) == 1
        assert (invoice.status, invoice.paid_minor) == ("paid", invoice.total_minor)
        [receipt] = [m for m in mail.outbox if m.to == [client.billing_email]]
        assert receipt.subject.startswith("Receipt:")
        assert "PAID" in attachment_text(receipt)
    assert not Invoice.objects.filter(delivered_at=None).exists()

    before = (len(mail.outbox), Email.objects.count(), len(fake_stripe.requests), Payment.objects.count())
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("deliver_invoices", "--older-than", "0", "--inline", stdout=out)
    assert "0 invoice(s)" in out.getvalue()
    assert (len(mail.outbox), Email.objects.count(), len(fake_stripe.requests), Payment.objects.count()) == before


def test_the_sweep_leaves_invoices_younger_than_older_than_to_their_own_task(
    clients, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        services.run_billing(as_of=date(2026, 1, 1), inline=True)
    assert sending.deliver_due(inline=True).invoices == 0  # 15 minutes by default
    with (
        time_machine.travel(timezone.now() + timedelta(minutes=16)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        summary = sending.deliver_due(inline=True)
    assert (summary.invoices, summary.delivered) == (5, 5)


def test_the_sweep_queues_batches_of_tasks_without_inline(clients, django_capture_on_commit_callbacks, monkeypatch):
    with django_capture_on_commit_callbacks(execute=False):
        services.run_billing(as_of=date(2026, 1, 1), inline=True)
    queued = []
    monkeypatch.setattr(tasks.deliver_invoices, "delay", lambda ids, as_of: queued.append(ids))
    monkeypatch.setattr(services, "DELIVERY_BATCH", 2)
    out = StringIO()
    call_command("deliver_invoices", "--older-than", "0", stdout=out)
    assert "Queued the delivery of 5 invoice(s)." in out.getvalue()
    assert [len(batch) for batch in queued] == [2, 2, 1]
    assert sorted(pk for batch in queued for pk in batch) == sorted(Invoice.objects.values_list("pk", flat=True))


def test_the_run_queues_one_task_per_batch_of_invoices_with_its_business_date(
    clients, django_capture_on_commit_callbacks, monkeypatch
):
    queued = []
    monkeypatch.setattr(
        tasks.deliver_invoices, "apply_async", lambda args, producer=None: queued.append(args), raising=False
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.run_billing(as_of=date(2026, 1, 1), inline=True)
    [(ids, as_of)] = queued
    assert len(ids) == 5 and as_of == "2026-01-01"


def test_a_failure_no_retry_fixes_is_recorded_shown_and_delivered_once_fixed(
    workspace, acme, owner_client, monkeypatch, django_capture_on_commit_callbacks
):
    invoice = open_invoice(acme)

    def broken(*args, **kwargs):
        raise TemplateSyntaxError("Invalid block tag on line 12: 'endiff'")

    monkeypatch.setattr(pdf, "render_invoice_pdf", broken)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.deliver_invoice.delay(invoice.pk)  # not retried by Celery: recorded instead
    invoice.refresh_from_db()
    assert invoice.delivered_at is None and Email.objects.count() == 0
    assert invoice.delivery_error == "TemplateSyntaxError: Invalid block tag on line 12: 'endiff'"

    page = owner_client.get(reverse("billing:invoice_detail", args=[workspace.slug, invoice.pk])).content.decode()
    assert "Not delivered" in page and "Invalid block tag on line 12" in page
    dashboard = owner_client.get(reverse("dashboard", args=[workspace.slug])).content.decode()
    assert "Invoices not delivered" in dashboard and invoice.number in dashboard

    # Within its lease the sweep leaves it alone; once the bug is fixed, the next sweep delivers it.
    assert sending.due_invoice_ids(older_than=timedelta(0)) == []
    monkeypatch.undo()
    with (
        time_machine.travel(timezone.now() + sending.DELIVERY_LEASE + timedelta(minutes=1)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert sending.deliver_due(older_than=timedelta(minutes=15), inline=True).delivered == 1
    invoice.refresh_from_db()
    assert invoice.delivered_at is not None and invoice.delivery_error == ""
    assert [m.to for m in mail.outbox] == [["ap@acme.example"]]


def test_an_invoice_with_no_one_to_send_it_to_is_shown_and_sent_once_an_email_is_added(
    workspace, owner_client, django_capture_on_commit_callbacks
):
    client = factories.ClientFactory(workspace=workspace, name="Nobody Ltd", billing_email="")
    invoice = open_invoice(client)
    assert sending.deliver_invoice(invoice.pk) is False
    invoice.refresh_from_db()
    assert invoice.delivered_at is None and invoice.delivery_error == sending.NO_RECIPIENT
    client.billing_email = "ap@nobody.example"
    client.save()
    with (
        time_machine.travel(timezone.now() + sending.DELIVERY_LEASE + timedelta(minutes=1)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        call_command("deliver_invoices", "--inline", stdout=StringIO())
    assert [m.to for m in mail.outbox] == [["ap@nobody.example"]]


def test_a_storage_outage_gives_the_claim_back_for_celery_to_retry(acme, monkeypatch):
    invoice = open_invoice(acme)

    def unreachable(*args, **kwargs):
        raise ConnectionResetError("object storage went away")

    monkeypatch.setattr(pdf, "store_invoice_pdf", unreachable)
    with pytest.raises(OSError):
        sending.deliver_invoice(invoice.pk)
    invoice.refresh_from_db()
    assert (invoice.delivered_at, invoice.delivery_claimed_at, invoice.delivery_error) == (None, None, "")
    assert sending.due_invoice_ids(older_than=timedelta(0)) == [invoice.pk]  # the sweep may take it at once


def test_a_voided_invoice_is_not_delivered(acme, django_capture_on_commit_callbacks):
    invoice = open_invoice(acme)
    services.void_invoice(invoice=invoice, actor=None)
    assert sending.due_invoice_ids(older_than=timedelta(0)) == []
    assert sending.deliver_invoice(invoice.pk) is False
    assert Email.objects.count() == 0


def test_the_command_refuses_a_bad_older_than_in_one_line():
    with pytest.raises(CommandError, match="--older-than must be a whole number of minutes, not 'soon'"):
        call_command("deliver_invoices", "--older-than", "soon")


def test_beat_runs_the_sweep_every_ten_minutes():
    entry = settings.CELERY_BEAT_SCHEDULE["invoice-delivery-sweep"]
    assert entry["task"] == "billing.tasks.sweep_deliveries"
    assert entry["schedule"].minute == {3, 13, 23, 33, 43, 53}


def test_run_billing_as_of_a_past_date_dates_the_charge_attempt_and_its_retries_from_it(
    workspace, fake_stripe, use_stripe, django_capture_on_commit_callbacks
):
    use_stripe(fake_stripe.url)
    client = factories.ClientFactory(workspace=workspace, name="Acme Corp", billing_email="ap@acme.example")
    factories.make_retainer(workspace=workspace, client=client, starts_on=date(2026, 1, 1))
    Retainer.objects.filter(client=client).update(auto_charge=True)
    declining = fake_stripe.add_card()
    fake_stripe.declining.add(declining)
    save_card(client, customer_id="cus_acme", payment_method_id=declining)

    with django_capture_on_commit_callbacks(execute=True):
        call_command("run_billing", "--as-of", "2026-01-01", stdout=StringIO())

    invoice = Invoice.objects.get(client=client)
    assert invoice.charge_attempts == 1
    assert invoice.next_charge_on == date(2026, 1, 2)  # retry_days[0] after the run's date, not today's
    [failed] = [m for m in mail.outbox if m.to == ["ap@acme.example"]]
    assert "We will try again on 2 January 2026." in failed.body


def test_a_receipt_waits_for_its_pdf_and_the_sweep_sends_it_once_the_pdf_renders(
    acme, fake_stripe, use_stripe, monkeypatch, django_capture_on_commit_callbacks
):
    use_stripe(fake_stripe.url)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    invoice = open_invoice(acme, auto_charge=True)
    pdf.current_pdf(invoice)  # rendered at delivery, before the charge

    def broken(*args, **kwargs):
        raise TemplateSyntaxError("Unclosed tag 'if'")

    monkeypatch.setattr(pdf, "render_invoice_pdf", broken)
    with django_capture_on_commit_callbacks(execute=True):
        sending.deliver_invoice(invoice.pk)  # charged; the PAID PDF cannot be rendered
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.delivered_at is not None
    assert invoice.delivery_error == "TemplateSyntaxError: Unclosed tag 'if'" and invoice.pdf_stale_at is not None
    assert not mail.outbox  # no receipt with a PDF that still asks for payment

    monkeypatch.undo()
    with (
        time_machine.travel(timezone.now() + timedelta(minutes=16)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        sending.deliver_due(inline=True)
        sending.deliver_due(inline=True)
    invoice.refresh_from_db()
    assert (invoice.delivery_error, invoice.pdf_stale_at) == ("", None)
    [receipt] = mail.outbox
    assert receipt.subject.startswith("Receipt:") and "PAID" in attachment_text(receipt)


def test_a_charged_invoice_renders_its_pdf_once_after_the_charge_saying_paid(
    acme, fake_stripe, use_stripe, monkeypatch, django_capture_on_commit_callbacks
):
    use_stripe(fake_stripe.url)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    invoice = open_invoice(acme, auto_charge=True)
    rendered = []
    render = pdf.render_invoice_pdf
    monkeypatch.setattr(pdf, "render_invoice_pdf", lambda inv, **kw: rendered.append(inv.status) or render(inv, **kw))

    with django_capture_on_commit_callbacks(execute=True):  # the follow-up task the charge queues runs too
        assert sending.deliver_invoice(invoice.pk) is True
    assert rendered == ["paid"]  # once, after the charge: not before it and again for the receipt
    invoice.refresh_from_db()
    assert invoice.pdf and invoice.pdf_stale_at is None and invoice.delivered_at is not None
    [receipt] = mail.outbox
    assert receipt.subject.startswith("Receipt:") and "PAID" in attachment_text(receipt)


def test_a_declined_charge_still_gets_its_pdf_asking_for_payment(
    acme, fake_stripe, use_stripe, django_capture_on_commit_callbacks
):
    use_stripe(fake_stripe.url)
    declining = fake_stripe.add_card()
    fake_stripe.declining.add(declining)
    save_card(acme, customer_id="cus_acme", payment_method_id=declining)
    invoice = open_invoice(acme, auto_charge=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert sending.deliver_invoice(invoice.pk) is True
    invoice.refresh_from_db()
    assert invoice.charge_attempts == 1 and invoice.status == "open" and invoice.delivered_at is not None
    assert invoice.pdf and invoice.pdf_stale_at is None
    with invoice.pdf.open("rb") as handle:
        text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(handle.read())).pages)
    assert "PAID" not in text


def test_a_charged_invoice_whose_first_pdf_fails_is_rendered_by_the_sweep_then_receipted(
    acme, fake_stripe, use_stripe, monkeypatch, django_capture_on_commit_callbacks
):
    use_stripe(fake_stripe.url)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    invoice = open_invoice(acme, auto_charge=True)

    def broken(*args, **kwargs):
        raise TemplateSyntaxError("Unclosed tag 'if'")

    monkeypatch.setattr(pdf, "render_invoice_pdf", broken)
    with django_capture_on_commit_callbacks(execute=True):
        sending.deliver_invoice(invoice.pk)  # charged once; no PDF could be rendered
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.delivered_at is not None and not invoice.pdf
    assert invoice.delivery_error.startswith("TemplateSyntaxError") and invoice.pdf_stale_at is not None
    assert not mail.outbox

    monkeypatch.undo()
    with (
        time_machine.travel(timezone.now() + timedelta(minutes=16)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        sending.deliver_due(inline=True)
        sending.deliver_due(inline=True)
    invoice.refresh_from_db()
    assert (invoice.delivery_error, invoice.pdf_stale_at) == ("", None) and invoice.pdf
    [receipt] = mail.outbox
    assert "PAID" in attachment_text(receipt)
    assert len(fake_stripe.of_type("payment_intent")) == 1


def test_the_follow_up_task_leaves_an_invoice_to_its_delivery_under_way(acme, monkeypatch):
    invoice = open_invoice(acme)
    followed = []
    monkeypatch.setattr(sending, "follow_up", followed.append)
    now = timezone.now()
    Invoice.objects.filter(pk=invoice.pk).update(delivery_claimed_at=now)
    tasks.follow_up_invoice(invoice.pk)
    assert followed == []  # the delivery follows up itself when it is done
    Invoice.objects.filter(pk=invoice.pk).update(delivery_error="RuntimeError: boom")
    tasks.follow_up_invoice(invoice.pk)  # a failed delivery is not under way
    Invoice.objects.filter(pk=invoice.pk).update(delivery_error="", delivery_claimed_at=now - sending.DELIVERY_LEASE)
    tasks.follow_up_invoice(invoice.pk)  # nor one whose worker died (its lease is over)
    Invoice.objects.filter(pk=invoice.pk).update(delivery_claimed_at=now, delivered_at=now)
    tasks.follow_up_invoice(invoice.pk)  # nor one delivered
    assert followed == [invoice.pk] * 3
