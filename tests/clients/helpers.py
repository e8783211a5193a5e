"""Helpers for the clients app's tests: URLs, and many clients made fast with bulk_create."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.urls import reverse

from clients.models import Client, Contact, Plan, Retainer


def url(workspace, name: str, **kwargs: object) -> str:
    """A workspace URL by name: clients' own ("client_list"), or another app's ("dashboard:client_detail")."""
    return reverse(name if ":" in name else f"clients:{name}", kwargs={"workspace_slug": workspace.slug, **kwargs})


def bulk_clients(workspace, count: int, *, prefix: str = "Client") -> list[Client]:
    """`count` clients, each with two contacts and a live retainer of varied health; a few queries in all."""
    clients = Client.objects.bulk_create(
        Client(workspace=workspace, name=f"{prefix} {n:04d}", billing_email=f"billing{n}@{prefix.lower()}.example")
        for n in range(count)
    )
    Contact.objects.bulk_create(
        Contact(workspace=workspace, client=client, name=f"Person {n}-{k}", email=f"p{n}-{k}@{prefix.lower()}.example")
        for n, client in enumerate(clients)
        for k in range(2)
    )
    Retainer.objects.bulk_create(
        Retainer(
            workspace=workspace,
            client=client,
            name=f"Retainer {n}",
            model="fixed",
            unit="hours",
            units_per_period=Decimal("10"),
            currency=workspace.currency,
            starts_on=date(2026, 1, 1),
            anchor_on=date(2026, 1, 1),
            term_ends_on=date(2027, 1, 1),
            period_available=Decimal("10"),
            period_used=Decimal(n % 13),
            balance=Decimal(10 - n % 13),
        )
        for n, client in enumerate(clients)
    )
    return clients


def make_plan(workspace, **fields: object) -> Plan:
    values = {
        "name": "Standard",
        "model": "rollover",
        "unit": "hours",
        "units_per_period": Decimal("10"),
        "price_minor": 150000,
        "currency": workspace.currency,
        "rollover_cap": Decimal("5"),
        "rollover_expiry_periods": 2,
        "overage_rate_minor": 15000,
        **fields,
    }
    return Plan.objects.create(workspace=workspace, **values)


HTMX = {"HTTP_HX_REQUEST": "true"}
