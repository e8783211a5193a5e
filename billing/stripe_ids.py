"""Our ids in what we send Stripe (metadata), and Stripe's ids in what it sends back."""

from __future__ import annotations

from typing import Any

from billing.models import Invoice


def invoice_metadata(invoice: Invoice) -> dict[str, str]:
    return {"invoice_id": str(invoice.pk), "workspace_id": str(invoice.workspace_id)}


def object_id(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")
