"""Tax on a client's invoices: the one place that turns a client's tax treatment and the
workspace's billing settings into a rate, a label, a legal mention and the VAT numbers an invoice
carries.

A client is taxed at the workspace's rate (the default), at a rate of its own, not at all
(exempt), or under the EU reverse charge (no tax: the client accounts for the VAT; the invoice
says so and names both VAT numbers). An invoice keeps what applied when it was issued
(`Invoice.tax_*`, `seller_tax_id`, `buyer_tax_id`), so changing the client or the settings later
never changes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from billing.models import BillingProfile
from clients.models import Client

Treatment = Client.TaxTreatment

REVERSE_CHARGE_MENTION = (
    "Reverse charge: VAT to be accounted for by the recipient (Article 196, Council Directive 2006/112/EC)."
)
EXEMPT_MENTION = "No tax charged: the client is exempt."
TAX_FIELDS = ["tax_treatment", "tax_label", "tax_rate_bp", "tax_mention", "seller_tax_id", "buyer_tax_id"]


def tax_on(subtotal_minor: int, rate_bp: int) -> int:
    """The tax on a subtotal at a rate in basis points, rounded once, half up."""
    return int((Decimal(subtotal_minor) * rate_bp / 10000).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class TaxTerms:
    """What a client's invoices are taxed at now, and what they print."""

    treatment: str
    label: str
    rate_bp: int
    mention: str
    seller_tax_id: str
    buyer_tax_id: str

    def invoice_fields(self) -> dict[str, Any]:
        """The invoice's snapshot of these terms, as `Invoice` field values."""
        return {
            "tax_treatment": self.treatment,
            "tax_label": self.label,
            "tax_rate_bp": self.rate_bp,
            "tax_mention": self.mention,
            "seller_tax_id": self.seller_tax_id,
            "buyer_tax_id": self.buyer_tax_id,
        }


@dataclass(frozen=True)
class TaxResult:
    terms: TaxTerms
    tax_minor: int


def tax_terms(client: Client, profile: BillingProfile | None) -> TaxTerms:
    """The client's tax treatment applied to the workspace's settings (`profile`: its billing
    profile, None when it has none yet)."""
    label = profile.tax_label if profile else "Tax"
    workspace_rate = profile.tax_rate_bp if profile else 0
    seller = profile.tax_id if profile else ""
    treatment = Treatment(client.tax_treatment)
    if treatment == Treatment.OWN_RATE:
        rate, mention = client.tax_rate_bp or 0, ""
    elif treatment == Treatment.EXEMPT:
        rate, mention = 0, EXEMPT_MENTION
    elif treatment == Treatment.REVERSE_CHARGE:
        rate, mention, label = 0, REVERSE_CHARGE_MENTION, "VAT"
    else:
        rate, mention = workspace_rate, ""
    return TaxTerms(
        treatment=treatment.value,
        label=label,
        rate_bp=rate,
        mention=mention,
        seller_tax_id=seller,
        buyer_tax_id=client.tax_id,
    )


def tax_for(client: Client, subtotal_minor: int, *, profile: BillingProfile | None) -> TaxResult:
    """The tax on a subtotal billed to `client`, with the terms it was worked out under."""
    terms = tax_terms(client, profile)
    return TaxResult(terms=terms, tax_minor=tax_on(subtotal_minor, terms.rate_bp))
