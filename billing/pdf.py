"""Invoice PDFs with WeasyPrint, rendered once in a task and stored for every later download."""

from __future__ import annotations

from typing import cast

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import BillingProfile, Invoice
from retainers.money import format_money


def invoice_context(invoice: Invoice) -> dict[str, object]:
    workspace = invoice.workspace
    profile = BillingProfile.objects.filter(workspace=workspace).first() or BillingProfile(workspace=workspace)
    locale = workspace.locale or "en_US"

    def fmt(minor: int) -> str:
        return format_money(minor, invoice.currency, locale)

    lines = [
        {"line": line, "unit_price": fmt(line.unit_price_minor), "amount": fmt(line.amount_minor)}
        for line in invoice.lines.all()
    ]
    return {
        "invoice": invoice,
        "workspace": workspace,
        "profile": profile,
        "client": invoice.client,
        "lines": lines,
        "subtotal": fmt(invoice.subtotal_minor),
        "tax": fmt(invoice.tax_minor),
        "total": fmt(invoice.total_minor),
        "paid": fmt(invoice.paid_minor + invoice.credited_minor),
        "balance": fmt(invoice.balance_minor),
        "tax_percent": f"{invoice.tax_rate_bp / 100:g}",
    }


def render_invoice_pdf(invoice: Invoice, *, pay_url: str = "") -> bytes:
    # Imported here: WeasyPrint loads Pango at import, which web processes need not pay for.
    from weasyprint import HTML

    context = {**invoice_context(invoice), "pay_url": pay_url}
    logo = cast(BillingProfile, context["profile"]).logo
    if logo.name:
        with logo.open("rb") as handle:
            context["logo_data_uri"] = _data_uri(handle.read(), logo.name)
    html = render_to_string("billing/invoice_pdf.html", context)
    # Relative URLs (the embedded font) resolve inside the project's static folder only.
    return HTML(string=html, base_url=str(settings.BASE_DIR / "static") + "/").write_pdf()


def _data_uri(data: bytes, name: str) -> str:
    import base64
    import mimetypes

    mimetype = mimetypes.guess_type(name)[0] or "image/png"
    return f"data:{mimetype};base64,{base64.b64encode(data).decode()}"


def store_invoice_pdf(invoice: Invoice, *, pay_url: str = "") -> str:
    """Render and store the PDF once; later calls return the stored file."""
    if invoice.pdf.name:  # the same test as `if invoice.pdf`, which the checker cannot read
        return invoice.pdf.name
    data = render_invoice_pdf(invoice, pay_url=pay_url)
    name = default_storage.save(
        f"invoices/{invoice.workspace_id}/{invoice.number or invoice.pk}-{timezone.now():%Y%m%d%H%M%S}.pdf",
        ContentFile(data),
    )
    Invoice.objects.filter(pk=invoice.pk, pdf="").update(pdf=name)
    invoice.refresh_from_db(fields=["pdf"])
    if invoice.pdf.name != name:  # another worker stored one first: keep theirs
        default_storage.delete(name)
    assert invoice.pdf.name  # ours or the other worker's
    return invoice.pdf.name
