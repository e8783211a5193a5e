"""Invoice PDFs with WeasyPrint: rendered in a task and stored for every later download, and
rendered again when money moves on the invoice (`pdf_stale_at`), so that a paid invoice's PDF
says PAID with the date and method and no longer asks for payment."""

from __future__ import annotations

import functools
import logging
import secrets
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import BillingProfile, Invoice, InvoiceState, Payment
from billing.paylinks import pay_url as invoice_pay_url
from retainers.models import Email
from retainers.money import format_money

log = logging.getLogger(__name__)

RERENDER_ATTEMPTS = 3
PAYABLE_STATES = {InvoiceState.OPEN, InvoiceState.PART_PAID, InvoiceState.OVERDUE}


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
    state = invoice.state(on=workspace.today(), for_client=True)
    paid = state == InvoiceState.PAID
    methods = (
        Payment.objects.filter(invoice=invoice, kind=Payment.Kind.PAYMENT, status=Payment.Status.SUCCEEDED)
        .exclude(method=Payment.Method.OTHER)
        .order_by("method")
        .values_list("method", flat=True)
        .distinct()
        if paid
        else []
    )
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
        "balance": fmt(invoice.owed_minor if state != InvoiceState.OVERPAID else invoice.balance_minor),
        "tax_percent": f"{invoice.tax_rate_bp / 100:g}",
        "state": state,
        "is_paid": paid,
        "paid_on": timezone.localtime(invoice.paid_at, workspace.tzinfo).date() if paid and invoice.paid_at else None,
        "paid_by": " and ".join(Payment.Method(method).label.lower() for method in methods),
        "payable": state in PAYABLE_STATES and invoice.owed_minor > 0,
    }


def render_invoice_pdf(invoice: Invoice, *, pay_url: str | None = None) -> bytes:
    """The invoice as a PDF, saying what it says now. `pay_url` defaults to the invoice's pay link;
    it is printed only while there is something to pay."""
    # Imported here: WeasyPrint loads Pango at import, which web processes need not pay for.
    from weasyprint import HTML

    context: dict[str, Any] = invoice_context(invoice)
    if pay_url is None:
        pay_url = invoice_pay_url(invoice) if invoice.kind != Invoice.Kind.CREDIT_NOTE else ""
    context["pay_url"] = pay_url if context["payable"] else ""
    logo = context["profile"].logo
    if logo:
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


def _new_name(invoice: Invoice) -> str:
    # Unique every time: object storage overwrites a name that exists, and a new rendering must
    # never write over the file a download or an email is reading.
    stamp = f"{timezone.now():%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
    return f"invoices/{invoice.workspace_id}/{invoice.number or invoice.pk}-{stamp}.pdf"


def store_invoice_pdf(invoice: Invoice, *, pay_url: str | None = None) -> str:
    """Render and store the PDF once; later calls return the stored file."""
    if invoice.pdf:
        return invoice.pdf.name
    data = render_invoice_pdf(invoice, pay_url=pay_url)
    name = default_storage.save(_new_name(invoice), ContentFile(data))
    Invoice.objects.filter(pk=invoice.pk, pdf="").update(pdf=name)
    invoice.refresh_from_db(fields=["pdf"])
    if invoice.pdf.name != name:  # another worker stored one first: keep theirs
        default_storage.delete(name)
    return invoice.pdf.name


def rerender_invoice_pdf(invoice: Invoice, *, pay_url: str | None = None) -> str:
    """Replace the stored PDF by one of the invoice as it stands now; returns the new file's name.
    Call it outside any transaction (it renders). Safe to run twice or side by side:

    the new file gets a new name; the field is swapped only if it still names the file this run
    read and no money moved meanwhile (a conditional UPDATE, which also clears `pdf_stale_at`);
    a run that loses the swap deletes its own file and renders again from the fresh state. The
    old file is deleted after the swap, unless an email not sent yet attaches it.
    """
    for _ in range(RERENDER_ATTEMPTS):
        current = Invoice.objects.select_related("workspace", "client").get(pk=invoice.pk)
        if current.status == Invoice.Status.DRAFT:
            return ""  # a draft has no PDF: one stored now would carry no number for ever
        old, stale = current.pdf.name, current.pdf_stale_at
        name = default_storage.save(_new_name(current), ContentFile(render_invoice_pdf(current, pay_url=pay_url)))
        if Invoice.objects.filter(pk=current.pk, pdf=old, pdf_stale_at=stale).update(pdf=name, pdf_stale_at=None):
            if old:
                transaction.on_commit(functools.partial(_delete_unless_attached, old))
            invoice.pdf.name, invoice.pdf_stale_at = name, None
            return name
        default_storage.delete(name)
    raise RuntimeError(f"invoice {invoice.pk}: its PDF kept changing under {RERENDER_ATTEMPTS} renderings")


def _delete_unless_attached(name: str) -> None:
    # The outbox reads an attachment when it sends: a queued (or retried) email keeps its file.
    if Email.objects.exclude(status=Email.Status.SENT).filter(attachments__contains=[{"path": name}]).exists():
        log.info("kept %s: an email not sent yet attaches it", name)
        return
    default_storage.delete(name)


def current_pdf(invoice: Invoice) -> str:
    """The stored PDF's name, rendered first when there is none and again when money moved since."""
    if not invoice.pdf:
        return store_invoice_pdf(invoice)
    if invoice.pdf_stale_at is not None:
        return rerender_invoice_pdf(invoice)
    return invoice.pdf.name or ""
