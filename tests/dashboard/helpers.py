"""Helpers for the dashboard's tests: a frozen clock, small builders, and a whole book of clients
written with bulk_create (a few queries for 10 or 1,000 clients)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.urls import reverse

from billing.models import Invoice, Payment
from clients.models import Amendment, Client, Retainer
from communication.models import Message, Task
from delivery.models import Deliverable, Period, WorkItem
from renewals.models import Renewal

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=ZoneInfo("UTC"))  # a Saturday; London is on GMT until 29 March
TODAY = date(2026, 3, 14)
HX = {"HTTP_HX_REQUEST": "true"}


def dashboard_url(workspace) -> str:
    return reverse("dashboard", args=[workspace.slug])


def hx_get(client, workspace, target: str, params: dict | None = None):
    return client.get(dashboard_url(workspace), params or {}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET=target)


def local(workspace, day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(workspace.timezone))


def set_balance(retainer: Retainer, *, available: str, used: str) -> Retainer:
    """Write the retainer's cached period figures directly: the dashboard reads only the cache."""
    available_d, used_d = Decimal(available), Decimal(used)
    Retainer.objects.filter(pk=retainer.pk).update(
        period_available=available_d, period_used=used_d, balance=available_d - used_d
    )
    retainer.refresh_from_db()
    return retainer


def make_invoice(client: Client, *, status: str = "open", due_on: date | None = None, total: int = 100000,
                 currency: str | None = None, number: str = "") -> Invoice:  # fmt: skip
    return Invoice.objects.create(
        workspace=client.workspace,
        client=client,
        status=status,
        number=number,
        currency=currency or client.workspace.currency,
        issued_on=(due_on or TODAY) - timedelta(days=14),
        due_on=due_on,
        subtotal_minor=total,
        total_minor=total,
    )


def make_payment(invoice: Invoice, *, at: datetime, amount: int, status: str = "succeeded", kind: str = "payment",
                 message: str = "") -> Payment:  # fmt: skip
    return Payment.objects.create(
        workspace=invoice.workspace,
        invoice=invoice,
        client=invoice.client,
        kind=kind,
        status=status,
        method=Payment.Method.CARD,
        amount_minor=amount,
        currency=invoice.currency,
        failure_message=message,
        created_at=at,
    )


def make_renewal(retainer: Retainer, *, status: str = "upcoming") -> Renewal:
    return Renewal.objects.create(
        workspace=retainer.workspace,
        retainer=retainer,
        term_ends_on=retainer.term_ends_on,
        opened_on=retainer.term_ends_on - timedelta(days=30),
        status=status,
        **retainer.terms(),
    )


def bulk_book(workspace, count: int, *, prefix: str = "Client", today: date = TODAY) -> list[Retainer]:
    """`count` clients, each with one live retainer of varied terms and health, an open period, and
    enough renewals, amendments, deliverables, sessions, messages, invoices, payments and tasks that
    every widget and every kind of "needs attention" has more than a page's worth at scale."""
    long_ago = datetime(2025, 6, 1, tzinfo=ZoneInfo("UTC"))
    clients = Client.objects.bulk_create(
        Client(
            workspace=workspace,
            name=f"{prefix} {n:04d}",
            created_at=long_ago,
            checkin_every_days=14 if n % 7 == 0 else None,
        )
        for n in range(count)
    )
    month_start = today.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    cadences = ["monthly", "quarterly", "yearly"]
    retainers = []
    for n, client in enumerate(clients):
        deliverables = n % 10 == 9
        used = Decimal(n * 5 % 13)
        retainers.append(
            Retainer(
                workspace=workspace,
                client=client,
                name=f"Retainer {n}",
                model="deliverables" if deliverables else ("rollover" if n % 2 else "fixed"),
                unit="sessions" if n % 5 == 3 else "hours",
                units_per_period=Decimal("0" if deliverables else "10"),
                price_minor=100000 + 1000 * (n % 7),
                currency="EUR" if n % 8 == 5 else workspace.currency,
                cadence=cadences[n % 3],
                billing_timing="arrears" if n % 4 == 1 else "advance",
                overage_rate_minor=15000,
                # A rollover has a cap and an expiry (the terms constraints).
                rollover_cap=Decimal("5") if not deliverables and n % 2 else None,
                rollover_expiry_periods=2 if not deliverables and n % 2 else None,
                status="paused" if n % 9 == 4 else "active",
                auto_renew=n % 3 == 0,
                cancel_at_period_end=n % 17 == 16,
                starts_on=date(2025, 6, 1),
                anchor_on=date(2025, 6, 1),
                term_ends_on=today + timedelta(days=1 + n % 60),
                period_available=Decimal("0" if deliverables else "10"),
                period_used=Decimal("0") if deliverables else used,
                balance=Decimal("0") if deliverables else Decimal("10") - used,
            )
        )
    retainers = Retainer.objects.bulk_create(retainers)
    Period.objects.bulk_create(
        Period(
            workspace=workspace,
            retainer=r,
            seq=1,
            anchor_index=0,
            start_on=month_start,
            end_on=next_month,
            currency=r.currency,
            billing_timing=r.billing_timing,
            price_minor=r.price_minor,
            overage_rate_minor=r.overage_rate_minor,
        )
        for r in retainers
    )
    periods = {p.retainer_id: p for p in Period.objects.filter(retainer__in=retainers)}
    statuses = ["upcoming", "proposal_sent", "accepted", "declined"]
    Renewal.objects.bulk_create(
        Renewal(
            workspace=workspace,
            retainer=r,
            term_ends_on=r.term_ends_on,
            opened_on=r.term_ends_on - timedelta(days=30),
            status=statuses[n // 4 % 4],
            **r.terms(),
        )
        for n, r in enumerate(retainers)
        if n % 4 == 0
    )
    Amendment.objects.bulk_create(
        Amendment(workspace=workspace, retainer=r, effective_on=next_month, **{**r.terms(), "price_minor": 99000})
        for n, r in enumerate(retainers)
        if n % 11 == 0
    )
    Deliverable.objects.bulk_create(
        Deliverable(
            workspace=workspace,
            retainer=r,
            period=periods[r.pk],
            name=f"Report {k}",
            status="delivered" if k == 0 else "planned",
        )
        for r in retainers
        if r.model == "deliverables"
        for k in range(3)
    )
    WorkItem.objects.bulk_create(
        WorkItem(
            workspace=workspace,
            retainer=r,
            period=periods[r.pk],
            delivered_on=today - timedelta(days=n % 50),
            quantity=Decimal("1.50"),
            description="Session",
        )
        for n, r in enumerate(retainers)
        if n % 2 == 0
    )
    Message.objects.bulk_create(
        Message(workspace=workspace, client=c, body="Hello", created_at=long_ago + timedelta(days=n % 280))
        for n, c in enumerate(clients)
        if n % 3 == 0
    )
    invoices = Invoice.objects.bulk_create(
        Invoice(
            workspace=workspace,
            client=r.client,
            retainer=r,
            status="open" if n % 5 == 0 else "paid",
            number=f"{prefix[:3].upper()}-{n:05d}",
            currency=r.currency,
            issued_on=today - timedelta(days=20 + n % 30),
            due_on=today - timedelta(days=6 + n % 30),
            subtotal_minor=r.price_minor,
            total_minor=r.price_minor,
            # Some paid twice (a credit balance), some whose delivery failed: both need attention.
            paid_minor=r.price_minor + 1000 if n % 9 == 4 and n % 5 else 0,
            delivery_error="TemplateSyntaxError: a broken template" if n % 7 == 3 else "",
        )
        for n, r in enumerate(retainers)
    )
    payments = []
    for n, invoice in enumerate(invoices):
        at = datetime.combine(today - timedelta(days=n % 365), time(10), tzinfo=ZoneInfo("UTC"))
        if n % 6 == 0:
            failed_at = datetime.combine(today - timedelta(days=n % 40), time(8), tzinfo=ZoneInfo("UTC"))
            payments.append(_payment(invoice, "failed", failed_at, "Your card was declined."))
        if invoice.status == "paid":
            payments.append(_payment(invoice, "succeeded", at + timedelta(hours=1)))
        if n % 25 == 0:
            payments.append(_payment(invoice, "succeeded", at + timedelta(hours=2), kind="refund", amount=5000))
        if n % 8 == 1:
            refused_at = datetime.combine(today - timedelta(days=n % 20), time(11), tzinfo=ZoneInfo("UTC"))
            payments.append(
                _payment(invoice, "failed", refused_at, "expired or canceled card", kind="refund", amount=5000)
            )
    Payment.objects.bulk_create(payments)
    Task.objects.bulk_create(
        Task(
            workspace=workspace,
            client=c,
            title=f"Follow up {n}",
            due_at=datetime.combine(today - timedelta(days=n % 5), time(9), tzinfo=ZoneInfo("UTC")),
        )
        for n, c in enumerate(clients)
        if n % 4 == 2
    )
    return retainers


def _payment(invoice: Invoice, status: str, at: datetime, message: str = "", *, kind: str = "payment",
             amount: int | None = None) -> Payment:  # fmt: skip
    return Payment(
        workspace_id=invoice.workspace_id,
        invoice=invoice,
        client_id=invoice.client_id,
        kind=kind,
        status=status,
        method="card",
        amount_minor=amount if amount is not None else invoice.total_minor,
        currency=invoice.currency,
        failure_message=message,
        created_at=at,
    )
