"""PDFs with WeasyPrint: the invoice (rendered in a task, stored, re-rendered when its state changes)
and the machinery every PDF shares (the portal's statement uses it too).

Speed: what does not depend on the document is prepared once per worker thread and reused for
every render: the font configuration (the embedded Inter font is loaded and its woff2 decoded
once, not per document) and the parsed stylesheets in static/pdf/. They hold no tenant data.
Templates carry no <style> of their own beyond the page footer's text.
"""

from __future__ import annotations

import atexit
import functools
import gc
import logging
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from billing import paylinks
from billing.logos import logo_for_pdf
from billing.models import BillingProfile, Invoice, InvoiceState, Payment
from billing.selectors import payment_options
from retainers.models import Email
from retainers.money import format_money

if TYPE_CHECKING:
    from weasyprint import CSS
    from weasyprint.text.fonts import FontConfiguration

log = logging.getLogger(__name__)

STYLESHEETS = settings.BASE_DIR / "static" / "pdf"
RERENDER_ATTEMPTS = 3
PAYABLE_STATES = {InvoiceState.OPEN, InvoiceState.PART_PAID, InvoiceState.OVERDUE}

# --- Rendering, shared by every PDF -----------------------------------------------------------


class _Kit:
    """One thread's font configuration and parsed stylesheets (WeasyPrint's are not thread-safe)."""

    def __init__(self) -> None:
        # Imported here: WeasyPrint loads Pango at import, which web processes need not pay for.
        from weasyprint.text.fonts import FontConfiguration

        self.font_config: FontConfiguration = FontConfiguration()
        self.sheets: dict[str, CSS] = {}
        self.fetcher = _embedded_fetcher()

    def stylesheets(self, names: tuple[str, ...]) -> list[CSS]:
        from weasyprint import CSS

        for name in names:
            if name not in self.sheets:
                self.sheets[name] = CSS(filename=str(STYLESHEETS / name), font_config=self.font_config)
        return [self.sheets[name] for name in names]


_local = threading.local()
# Drop the main thread's kit while the interpreter can still delete its font folder.
atexit.register(lambda: _local.__dict__.pop("kit", None))


def _kit() -> _Kit:
    kit = getattr(_local, "kit", None)
    if kit is None:
        kit = _local.kit = _Kit()
    return kit


_settled = threading.Event()


def _settle_heap() -> None:
    """After the process's first render, move what it has loaded for good (Django, WeasyPrint,
    the fonts and stylesheets) out of the garbage collector's sight, once per process.

    A render's box tree lives long enough to be promoted to the oldest generation, so every ten
    or so renders Python runs a full collection, and a full collection walks every object of the
    process: ~70 ms on the 2-core machine, which made one render in ten three times as slow.
    Frozen objects are still freed by reference counting; only cycles among them would stay.
    """
    if _settled.is_set():
        return
    _settled.set()
    gc.collect()
    gc.freeze()


def _embedded_fetcher() -> Any:
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class EmbeddedFetcher(URLFetcher):
        """Serves `embedded:<name>` from the files set for the render in progress, and nothing
        else: a document reaches no file, host or URL whatever text it prints. (Images are not
        inlined as data: URIs, which WeasyPrint's pure-Python HTML parser reads slowly.)"""

        files: Mapping[str, tuple[bytes, str]] = {}

        def fetch(self, url: str, headers: object = None) -> URLFetcherResponse:
            name = url.removeprefix("embedded:")
            if not url.startswith("embedded:") or name not in self.files:
                raise ValueError(f"{url!r} is not embedded in this document")
            data, content_type = self.files[name]
            return URLFetcherResponse(url, data, headers={"Content-Type": content_type})

    # One per thread, made with the kit: making a URLFetcher builds an SSL context (20-40 ms).
    return EmbeddedFetcher(allowed_protocols={"embedded"})


def render_pdf(
    template: str,
    context: dict[str, Any],
    *,
    stylesheet: str,
    files: Mapping[str, tuple[bytes, str]] | None = None,
) -> bytes:
    """The PDF of a template, styled by static/pdf/base.css then static/pdf/<stylesheet>.

    `files` maps a name to (bytes, content type): the template shows one as `embedded:<name>`.
    """
    from weasyprint import HTML

    kit = _kit()
    html = render_to_string(template, context)
    kit.fetcher.files = files or {}
    try:
        data = HTML(string=html, base_url="embedded:", url_fetcher=kit.fetcher).write_pdf(
            stylesheets=kit.stylesheets(("base.css", stylesheet)), font_config=kit.font_config
        )
    finally:
        kit.fetcher.files = {}  # a render's files never outlive it
    _settle_heap()
    return data


# --- The invoice --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    """One row under the totals: a payment, a refund or a credit note, as the invoice shows it."""

    label: str  # "Paid", "Refunded", "Credit note 2026-0007"
    on: date | None
    detail: str  # how: "card", "bank transfer"
    amount: str


def invoice_context(invoice: Invoice, *, pay_url: str = "") -> dict[str, object]:
    """Everything the invoice PDF prints, as the invoice stands now (a fixed number of queries).

    The state decides what it says: PAID with the date and method and no way to pay; part paid
    with each payment and the balance; open with only the ways to pay this workspace accepts.
    """
    workspace = invoice.workspace
    profile = BillingProfile.objects.filter(workspace=workspace).first() or BillingProfile(workspace=workspace)
    options = payment_options(workspace, profile=profile)
    locale = workspace.locale or "en_US"

    def fmt(minor: int) -> str:
        return format_money(minor, invoice.currency, locale)

    def local_day(instant: Any) -> date:
        return timezone.localtime(instant, workspace.tzinfo).date()

    is_credit_note = invoice.kind == Invoice.Kind.CREDIT_NOTE
    movements = list(
        Payment.objects.for_workspace(workspace)
        .filter(invoice=invoice, status=Payment.Status.SUCCEEDED)
        .order_by("created_at", "pk")
    )
    credit_notes = (  # a credit note always adds to credited_minor: none to look for without it
        list(
            Invoice.objects.for_workspace(workspace)
            .filter(credit_for=invoice)
            .order_by("issued_on", "pk")
            .values_list("number", "total_minor")
        )
        if invoice.credited_minor
        else []
    )

    def how(payment: Payment) -> str:  # "other" says nothing worth printing
        return "" if payment.method == Payment.Method.OTHER else payment.get_method_display().lower()

    settlements = [
        Settlement(
            "Refunded" if m.kind == Payment.Kind.REFUND else "Paid",
            m.received_on or local_day(m.created_at),
            how(m),
            fmt(-m.amount_minor if m.kind == Payment.Kind.REFUND else m.amount_minor),
        )
        for m in movements
    ] + [Settlement(f"Credit note {number}", None, "", fmt(-total)) for number, total in credit_notes]

    # The client's word for it (a write-off still reads as overdue to them): Invoice.state is the one
    # vocabulary. A refunded invoice is settled but not "PAID"; what is owed excludes refunds.
    state = invoice.state(on=workspace.today(), for_client=True)
    paid = state == InvoiceState.PAID
    payable = state in PAYABLE_STATES and invoice.owed_minor > 0
    methods = sorted({how(m) for m in movements if m.kind == Payment.Kind.PAYMENT} - {""})
    return {
        "invoice": invoice,
        "workspace": workspace,
        "profile": profile,
        "client": invoice.client,
        "is_credit_note": is_credit_note,
        "lines": [
            {"line": line, "unit_price": fmt(line.unit_price_minor), "amount": fmt(line.amount_minor)}
            for line in invoice.lines.all()
        ],
        "subtotal": fmt(invoice.subtotal_minor),
        "tax": fmt(invoice.tax_minor),
        "total": fmt(invoice.total_minor),
        "balance": fmt(invoice.owed_minor if state != InvoiceState.OVERPAID else invoice.balance_minor),
        "state": state,
        "tax_percent": f"{invoice.tax_rate_bp / 100:g}",
        "settlements": settlements,
        "paid": paid,
        "paid_on": local_day(invoice.paid_at) if paid and invoice.paid_at else None,
        "paid_by": " and ".join(methods),
        "void": invoice.status == Invoice.Status.VOID,
        "payable": payable,
        "options": options,
        "pay_url": pay_url if payable and options.card else "",
    }


def render_invoice_pdf(invoice: Invoice, *, pay_url: str | None = None) -> bytes:
    """The invoice as a PDF, saying what it says now. `pay_url` defaults to the invoice's own pay
    link; it is printed only on an invoice with something to pay, when cards are accepted."""
    if pay_url is None:
        pay_url = paylinks.pay_url(invoice)
    context = invoice_context(invoice, pay_url=pay_url)
    files = {}
    logo = cast(BillingProfile, context["profile"]).logo
    if logo.name:
        with logo.open("rb") as handle:
            data = logo_for_pdf(handle.read())
        if data is None:
            log.warning("logo %s of workspace %s is not drawable: left off the PDF", logo.name, invoice.workspace_id)
        else:
            files["logo"] = (data, "image/png")
    context["has_logo"] = bool(files)
    return render_pdf("billing/invoice_pdf.html", context, stylesheet="invoice.css", files=files)


def _new_name(invoice: Invoice) -> str:
    # Unique every time: object storage overwrites a name that exists, and a re-render must never
    # write over the file a download is reading.
    stamp = f"{timezone.now():%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
    return f"invoices/{invoice.workspace_id}/{invoice.number or invoice.pk}-{stamp}.pdf"


def store_invoice_pdf(invoice: Invoice, *, pay_url: str | None = None) -> str:
    """Render and store the PDF once; later calls return the stored file."""
    if invoice.pdf.name:  # the same test as `if invoice.pdf`, which the checker cannot read
        return invoice.pdf.name
    data = render_invoice_pdf(invoice, pay_url=pay_url)
    name = default_storage.save(_new_name(invoice), ContentFile(data))
    # Scoped by workspace too, as every statement on a tenant table is (docs/scale-out.md).
    mine = Invoice.objects.filter(pk=invoice.pk, workspace_id=invoice.workspace_id)
    mine.filter(pdf="").update(pdf=name)
    invoice.pdf = mine.values_list("pdf", flat=True).get()
    if invoice.pdf.name != name:  # another worker stored one first: keep theirs
        default_storage.delete(name)
    assert invoice.pdf.name  # ours or the other worker's
    return invoice.pdf.name


def rerender_invoice_pdf(invoice: Invoice, *, pay_url: str | None = None) -> str:
    """Replace the stored PDF by one of the invoice as it stands now (after a payment, a refund, a
    credit note); returns the new file's name. Call it outside any transaction (it renders).
    Safe to run twice or side by side:

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
    if not invoice.pdf.name:
        return store_invoice_pdf(invoice)
    if invoice.pdf_stale_at is not None:
        return rerender_invoice_pdf(invoice)
    return invoice.pdf.name
