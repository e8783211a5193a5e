"""Billing for the consultant: the invoices page and its CSV, one invoice and what can be done
to it, invoices by hand, the billing settings, and the billing section of the client page.

Every action calls one service (billing.services, billing.charges, billing.refunds, billing.sending); a
refusal (BillingError) is shown next to its field when it names one, else as a message. Actions
that move money (void, credit, write off, refund, charge now, credit balances) are for owners and
admins unless the workspace grants them to members (billing.permissions): anyone else gets a 403
that says so, and does not see their buttons.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING, Any, TypedDict, cast

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import FileResponse, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import charges, connect, csv_export, paylinks, pdf, refunds, sending, services, stripe_api
from billing.cards import card_on_file
from billing.forms import (
    DEFAULT_LINE_ROWS,
    MAX_LINES,
    BaseLineFormSet,
    BillingSettingsForm,
    CreditNoteForm,
    InvoiceFilterForm,
    InvoiceForm,
    LineForm,
    LineFormSet,
    PaymentForm,
    RefundForm,
    format_percent,
)
from billing.models import BillingProfile, Invoice, Payment
from billing.permissions import REFUSAL, may_move_money
from billing.selectors import NEWEST_FIRST, annotate_rows, outstanding_totals
from billing.services import BillingError
from clients.models import Client
from clients.selectors import client_currency
from retainers import audit
from retainers.http import WorkspaceRequest, workspace_view
from retainers.models import User, Workspace
from retainers.money import format_money
from retainers.ratelimits import rate_limit

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

PER_PAGE = 50


def _money(request: WorkspaceRequest, minor: int, currency: str) -> str:
    return format_money(minor, currency, request.workspace.locale or "en_US")


# --- The invoices page ------------------------------------------------------------------


def filtered_invoices(workspace: Workspace, chosen: dict[str, Any], *, today: date) -> QuerySet[Invoice]:
    """The workspace's invoices (credit notes included) narrowed by the invoices page's filters."""
    invoices = Invoice.objects.for_workspace(workspace)
    status = chosen.get("status")
    if status == InvoiceFilterForm.UNPAID:
        invoices = invoices.filter(status=Invoice.Status.OPEN).exclude(kind=Invoice.Kind.CREDIT_NOTE)
    elif status:  # the one vocabulary, as the badges say it (Invoice.state)
        invoices = invoices.in_state(str(status), today=today)
    if chosen.get("client"):
        invoices = invoices.filter(client=chosen["client"])
    if chosen.get("issued_from"):
        invoices = invoices.filter(issued_on__gte=chosen["issued_from"])
    if chosen.get("issued_to"):
        invoices = invoices.filter(issued_on__lte=chosen["issued_to"])
    if query := (chosen.get("q") or "").strip():
        invoices = invoices.filter(Q(number__icontains=query) | Q(client__name__icontains=query))
    return invoices


@require_GET
@workspace_view
def invoice_list(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    today = workspace.today()
    filters = InvoiceFilterForm(request.GET, workspace=workspace)
    chosen = filters.values()
    invoices = filtered_invoices(workspace, chosen, today=today)
    if filters.errors:  # refused, not ignored: the errors show beside the fields and in place of the rows
        invoices = invoices.none()
    page = Paginator(invoices.select_related("client", "credit_for").order_by(*NEWEST_FIRST), PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        "filters": filters,
        "page_obj": page,
        "invoices": annotate_rows(list(page), today),
        "totals": outstanding_totals(invoices, today=today),
        "filtered": any(chosen.get(name) for name in InvoiceFilterForm.base_fields),
        "has_invoices": bool(page.object_list) or Invoice.objects.for_workspace(workspace).exists(),
    }
    template = "billing/invoice_list.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#rows"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])  # the same URL answers with a page or a fragment
    return response


@cache_control(private=True, no_store=True)  # a client's money: kept by no shared or browser cache
@require_GET
@workspace_view
def invoice_export(request: WorkspaceRequest) -> HttpResponseBase:
    """The filtered invoices as CSV, streamed from a server-side cursor (see billing/csv_export.py)."""
    workspace = request.workspace
    today = workspace.today()
    filters = InvoiceFilterForm(request.GET, workspace=workspace)
    chosen = filters.values()
    if filters.errors:  # an export of more than was asked for would pass for the one asked for
        messages.error(request, "Nothing was exported: a filter is not valid. Correct it, then export again.")
        return redirect(reverse("billing:invoice_list", args=[workspace.slug]) + "?" + request.GET.urlencode())
    invoices = filtered_invoices(workspace, chosen, today=today).select_related("client").order_by(*NEWEST_FIRST)
    response = StreamingHttpResponse(
        csv_export.invoice_lines(invoices.iterator(chunk_size=2000), today=today),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="invoices-{workspace.slug}-{today.isoformat()}.csv"'
    return response


# --- One invoice ----------------------------------------------------------------------


def _invoice(request: WorkspaceRequest, invoice_id: int) -> Invoice:
    invoice = get_object_or_404(
        Invoice.objects.for_workspace(request.workspace).select_related("client", "credit_for", "retainer"),
        pk=invoice_id,
    )
    invoice.workspace = request.workspace  # the same row: spares the PDF and email code a query
    return invoice


def _to_detail(request: WorkspaceRequest, invoice: Invoice) -> HttpResponse:
    return redirect("billing:invoice_detail", workspace_slug=request.workspace.slug, invoice_id=invoice.pk)


def _creditable(invoice: Invoice, credit_notes: Iterable[Invoice]) -> int:
    """What credit notes may still take off the invoice: its total less what they already took."""
    return invoice.total_minor - sum(-note.total_minor for note in credit_notes)


def _refundable(payment: Payment) -> int:
    """What is left to refund of a payment (0 for refunds and failed attempts); a query per payment."""
    if payment.kind != Payment.Kind.PAYMENT or payment.status != Payment.Status.SUCCEEDED:
        return 0
    return refunds.refundable_minor(payment)


class PaymentRow(TypedDict):
    refund_form: RefundForm | None  # the refund form shown under a refundable payment


def _may_move_money(request: WorkspaceRequest) -> None:
    """Refuse (403, with why) a money action to a member the workspace has not granted it to: the
    invoice is theirs to see, so a 404 would be a lie."""
    if not may_move_money(request.membership):
        raise PermissionDenied(REFUSAL)


def _detail(
    request: WorkspaceRequest,
    invoice: Invoice,
    *,
    payment_form: PaymentForm | None = None,
    credit_form: CreditNoteForm | None = None,
    refund_form: tuple[int, RefundForm] | None = None,
) -> HttpResponse:
    """The invoice page; an action whose form was refused renders it with that form (status 200)."""
    workspace = request.workspace
    today, locale = workspace.today(), workspace.locale or "en_US"
    payment_rows = cast(
        "list[WithAnnotations[Payment, PaymentRow]]",  # with the refund form set below
        list(
            Payment.objects.for_workspace(workspace)
            .filter(invoice=invoice)
            .select_related("recorded_by", "refund_of")
            .order_by("-created_at", "-pk")
        ),
    )
    credit_notes = list(Invoice.objects.for_workspace(workspace).filter(credit_for=invoice).order_by("issued_on", "pk"))
    creditable = _creditable(invoice, credit_notes)
    moves_money = may_move_money(request.membership)
    for payment in payment_rows:
        payment.refund_form = None
        if not moves_money:
            continue
        if refund_form and refund_form[0] == payment.pk:
            payment.refund_form = refund_form[1]
        elif refundable := _refundable(payment):
            payment.refund_form = RefundForm(payment=payment, refundable_minor=refundable, locale=locale)
    status = invoice.status
    is_invoice = invoice.kind != Invoice.Kind.CREDIT_NOTE
    free_credit = invoice.free_credit_minor if is_invoice else 0
    can = {
        "issue": status == Invoice.Status.DRAFT,
        "pay": is_invoice and status in {Invoice.Status.OPEN, Invoice.Status.UNCOLLECTIBLE},
        "void": moves_money
        and is_invoice
        and status in {Invoice.Status.OPEN, Invoice.Status.DRAFT}
        and not invoice.paid_minor,
        "uncollectible": moves_money and is_invoice and status == Invoice.Status.OPEN,
        "credit": moves_money
        and is_invoice
        and status not in {Invoice.Status.DRAFT, Invoice.Status.VOID}
        and creditable > 0,
        "charge": moves_money
        and is_invoice
        and status == Invoice.Status.OPEN
        and invoice.owed_minor > 0
        and stripe_api.is_configured(workspace)
        and card_on_file(invoice.client) is not None,
        "credit_balance": moves_money and free_credit > 0,
        "ask_refund_back": moves_money and is_invoice and invoice.refunded_minor > 0 and invoice.balance_minor > 0,
        "send": status not in {Invoice.Status.DRAFT, Invoice.Status.VOID},
        "pay_link": is_invoice and status in paylinks.PAYABLE and invoice.owed_minor > 0,
        "pdf": status != Invoice.Status.DRAFT,
    }
    context = {
        "invoice": invoice,
        "state": invoice.state(on=today),
        "due_minor": csv_export.amount_due_minor(invoice),
        "free_credit_minor": free_credit,
        "lines": list(invoice.lines.all()),
        "tax_percent": format_percent(invoice.tax_rate_bp),
        "payments": payment_rows,
        "credit_notes": credit_notes,
        "can": can,
        "recipient": sending.recipient(invoice) if can["send"] or can["pay_link"] else "",
        "payment_form": payment_form or (PaymentForm(invoice=invoice, locale=locale) if can["pay"] else None),
        "credit_form": credit_form
        or (CreditNoteForm(invoice=invoice, creditable_minor=creditable, locale=locale) if can["credit"] else None),
        "audit_events": list(audit.for_object(workspace, invoice)),
    }
    return render(request, "billing/invoice_detail.html", context)


@require_GET
@workspace_view
def invoice_detail(request: WorkspaceRequest, invoice_id: int) -> HttpResponse:
    return _detail(request, _invoice(request, invoice_id))


@require_POST
@workspace_view
def invoice_issue(request: WorkspaceRequest, invoice_id: int) -> HttpResponse:
    invoice = _invoice(request, invoice_id)
    if invoice.status != Invoice.Status.DRAFT:
        messages.error(request, "This invoice is already issued.")
        return _to_detail(request, invoice)
    invoice = services.issue_invoice(invoice=invoice, actor=request.user)
    messages.success(request, _issued_message(invoice))
    return _to_detail(request, invoice)


def _issued_message(invoice: Invoice) -> str:
    if to := sending.recipient(invoice):
        return f"Invoice {invoice.number} was issued; it is being emailed to {to} with its PDF."
    return f"Invoice {invoice.number} was issued. The client has no billing email or contact: send its PDF yourself."


@require_POST
@workspace_view
def invoice_record_payment(request: WorkspaceRequest, invoice_id: int) -> HttpResponse:
    """Mark paid by hand (a bank transfer or other), in full or in part."""
    invoice = _invoice(request, invoice_id)
    form = PaymentForm(request.POST, invoice=invoice, locale=request.workspace.locale)
    if not form.is_valid():
        return _detail(request, invoice, payment_form=form)
    try:
        services.record_payment(
            invoice=invoice,
            amount_minor=form.cleaned_data["amount"],
            method=form.cleaned_data["method"],
            note=form.cleaned_data["note"],
            actor=request.user,
            received_on=form.cleaned_data["received_on"],
        )
    except BillingError as exc:
        return _refused(request, invoice, exc, payment_form=form)
    invoice.refresh_from_db()
    paid = _money(request, form.cleaned_data["amount"], invoice.currency)
    if invoice.status == Invoice.Status.PAID:
        messages.success(request, f"Payment of {paid} recorded: {invoice.number} is paid in full.")
    else:
        left = _money(request, invoice.owed_minor, invoice.currency)
        messages.success(request, f"Payment of {paid} recorded; {left} is still due.")
    return _to_detail(request, invoice)


def _refused(request: WorkspaceRequest, invoice: Invoice, exc: BillingError, **forms: Any) -> HttpResponse:
    """A refused action: the error next to its field when the form has it, else as a message."""
    for key, form in forms.items():
        target = form[1] if isinstance(form, tuple) else form
        if exc.field and exc.field in target.fields:
            target.add_error(exc.field, str(exc))
            return _detail(request, invoice, **{key: form})
    messages.error(request, str(exc))
    return _to_detail(request, invoice)


@require_POST
@workspace_view
def invoice_void(request: WorkspaceRequest, invoice_id: int) -> HttpResponse:
    invoice = _invoice(request, invoice_id)
    _may_move_money(request)
    try:
        services.void_invoice(invoice=invoice, actor=request.user)
    except BillingError as exc:
        return _refused(request, invoice, exc)
    messages.success(request, f"{invoice} was voided: the client owes nothing on it.")
    return _to_detail(request, invoice)


@require_POST
@workspace_view
def invoice_mark_uncollectible(request: WorkspaceRequest, invoice_id: int) -> HttpResponse:
    invoice = _invoice(request, invoice_id)
    _may_move_money(request)
    try:
        services.mark_uncollectible(invoice=invoice, actor=request.user)
    except BillingError as exc:
        return _refused(request, invoice, exc)
    messages.success(request, f"{invoice} was marked uncollectible. A payment can still be recorded on it.")
    return _to_detail(request, invoice)


@require_POST
@workspace_view
def credit_note_create(request: WorkspaceRequest, invoice_id: int) -> HttpResponse:
    invoice = _invoice(request, invoice_id)
    _may_move_money(request)
    credit_notes = Invoice.objects.for_workspace(request.workspace).filter(credit_for=invoice)
    form = CreditNoteForm(
        request.POST,
        invoice=invoice,
        creditable_minor=_creditable(invoice, credit_notes),
        locale=request.workspace.locale,
    )
    if not form.is_valid():
        return _detail(request, invoice, credit_form=form)
    try:
        note = services.create_credit_note(
            invoice=invoice,
            amount_minor=form.cleaned_data["amount"],
            reason=form.cleaned_data["reason"],
            actor=request.user,
        )
    except BillingError as exc:
        return _refused(request, invoice, exc, credit_form=form)
    amount = _money(request, -note.total_minor, note.currency)
    messages.success(request, f"Credit note {note.number} for {amount} was issued against {invoice.number}.")
    return _to_detail(request, invoice)


@require_POST
@workspace_view
def payment_refund(request: WorkspaceRequest, invoice_id: int, payment_id: int) -> HttpResponse:
    """Refund a payment: through Stripe for a card, recorded only for a transfer (billing.refunds decides)."""
    invoice = _invoice(request, invoice_id)
    payment = get_object_or_404(Payment.objects.for_workspace(request.workspace).filter(invoice=invoice), pk=payment_id)
    _may_move_money(request)
    refundable = _refundable(payment)
    if not refundable:
        messages.error(request, "Only a payment that went through, and is not refunded yet, can be refunded.")
        return _to_detail(request, invoice)
    form = RefundForm(request.POST, payment=payment, refundable_minor=refundable, locale=request.workspace.locale)
    if not form.is_valid():
        return _detail(request, invoice, refund_form=(payment.pk, form))
    try:
        refund = refunds.refund_payment(
            payment=payment,
            amount_minor=form.cleaned_data["amount"],
            reason=form.cleaned_data["reason"],
            actor=request.user,
        )
    except BillingError as exc:
        return _refused(request, invoice, exc, refund_form=(payment.pk, form))
    amount = _money(request, refund.amount_minor, refund.currency)
    if refund.status == Payment.Status.FAILED:
        messages.error(request, f"The refund of {amount} failed: {refund.failure_message or 'no reason given'}.")
    elif refund.status == Payment.Status.PENDING:
        messages.success(request, f"A refund of {amount} was requested; it is recorded when Stripe confirms it.")
    else:
        messages.success(request, f"A refund of {amount} was recorded.")
    return _to_detail(request, invoice)


@require_POST
@workspace_view
def invoice_charge(request: WorkspaceRequest, invoice_id: int) -> HttpResponse:
    """Charge now: one new attempt on the client's saved card (a double click charges once)."""
    invoice = _invoice(request, invoice_id)
    _may_move_money(request)
    attempts = _int(request.POST.get("attempts"))
    if attempts is None:
        messages.error(request, "Reload the page and try again.")
        return _to_detail(request, invoice)
    try:
        made = charges.charge_now(invoice, attempts=attempts, actor=request.user)
    except BillingError as exc:
        messages.error(request, str(exc))
        return _to_detail(request, invoice)
    except stripe_api.StripeUnavailable:
        messages.error(request, "Stripe could not be reached. The charge is in flight: try again in a minute.")
        return _to_detail(request, invoice)
    if not made:
        messages.info(request, "The card was already charged since you opened this page: see the attempts below.")
        return _to_detail(request, invoice)
    invoice.refresh_from_db()
    last = invoice.payments.filter(kind=Payment.Kind.PAYMENT).order_by("-pk").first()
    if invoice.status == Invoice.Status.PAID:
        messages.success(request, f"The card was charged: {invoice.number} is paid.")
    elif last is not None and last.status == Payment.Status.FAILED:
        messages.error(request, f"The charge failed: {last.failure_message or 'the card was declined'}.")
    else:
        messages.success(request, "The charge is in progress; the invoice is updated when the bank confirms it.")
    return _to_detail(request, invoice)


@require_POST
@workspace_view
def invoice_refund_excess(request: WorkspaceRequest, invoice_id: int) -> HttpResponse:
    """Refund an overpaid invoice's credit balance, in one click."""
    invoice = _invoice(request, invoice_id)
    _may_move_money(request)
    try:
        done = refunds.refund_excess(invoice=invoice, actor=request.user)
    except BillingError as exc:
        messages.error(request, str(exc))
        return _to_detail(request, invoice)
    refunded, failed = (
        _money(request, done.refunded_minor, done.currency),
        _money(request, done.failed_minor, done.currency),
    )
    if done.failed_minor and done.refunded_minor:
        messages.error(
            request, f"{refunded} is being refunded, but the refund of {failed} failed: see the payments below."
        )
    elif done.failed_minor:
        messages.error(request, f"The refund of {failed} failed: see the payments below.")
    else:
        messages.success(request, f"The overpayment of {refunded} is being refunded.")
    return _to_detail(request, invoice)


@require_POST
@workspace_view
def invoice_apply_credit(request: WorkspaceRequest, invoice_id: int) -> HttpResponse:
    """Apply an overpaid invoice's credit balance to the client's next invoice."""
    invoice = _invoice(request, invoice_id)
    _may_move_money(request)
    try:
        target = services.apply_credit_balance(invoice=invoice, actor=request.user)
    except BillingError as exc:
        messages.error(request, str(exc))
        return _to_detail(request, invoice)
    invoice.refresh_from_db()
    carried = _money(request, invoice.carry_credit_minor, invoice.currency)
    if target is not None and invoice.carry_credit_minor:
        messages.success(request, f"The credit went to invoice {target.number}; {carried} waits for the next one.")
    elif target is not None:
        messages.success(request, f"The credit went to invoice {target.number}.")
    else:
        messages.success(request, f"{carried} of credit will be taken off {invoice.client.name}'s next invoice.")
    return _to_detail(request, invoice)


@require_POST
@workspace_view
def invoice_ask_refund_back(request: WorkspaceRequest, invoice_id: int) -> HttpResponse:
    """Ask the client to pay again what was refunded: the invoice is open (and chased) for it."""
    invoice = _invoice(request, invoice_id)
    _may_move_money(request)
    try:
        services.ask_refund_back(invoice=invoice, actor=request.user)
    except BillingError as exc:
        messages.error(request, str(exc))
        return _to_detail(request, invoice)
    messages.success(request, f"{invoice.number} asks for the refunded amount again; reminders follow your schedule.")
    return _to_detail(request, invoice)


@require_POST
@workspace_view
def invoice_send(request: WorkspaceRequest, invoice_id: int) -> HttpResponse:
    """Email the invoice (again): a new email each time, but a double click sends one (see sending)."""
    invoice = _invoice(request, invoice_id)
    if invoice.status in {Invoice.Status.DRAFT, Invoice.Status.VOID}:
        messages.error(request, "Only an issued invoice that is not void can be emailed.")
        return _to_detail(request, invoice)
    to = sending.recipient(invoice)
    if not to:
        messages.error(request, f"{invoice.client.name} has no billing email or contact to send it to.")
        return _to_detail(request, invoice)
    # A first send shares its outbox key with the issue's own email, so it is never sent twice.
    sending.send_invoice_email(invoice, resend=invoice.sent_at is not None)
    messages.success(request, f"{invoice.number} is on its way to {to}.")
    return _to_detail(request, invoice)


@rate_limit("pay_link_send", key=lambda request, invoice_id, **_: invoice_id)
@require_POST
@workspace_view
def invoice_pay_link(request: WorkspaceRequest, invoice_id: int) -> HttpResponse:
    """Email the client a new pay link (the one in the PDF or an old email may have expired)."""
    invoice = _invoice(request, invoice_id)
    try:
        to = paylinks.send_pay_link(invoice)
    except BillingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"A new pay link for {invoice.number} is on its way to {to}.")
    return _to_detail(request, invoice)


@cache_control(private=True, no_store=True)  # a client's money: kept by no shared or browser cache
@require_GET
@workspace_view
def invoice_pdf(request: WorkspaceRequest, invoice_id: int) -> HttpResponseBase:
    """The stored PDF; rendered now if the task has not done it yet (or again if money moved since)."""
    invoice = _invoice(request, invoice_id)
    if invoice.status == Invoice.Status.DRAFT:
        # A stored PDF is final: one rendered before issue would carry no number for ever.
        messages.error(request, "A draft has no PDF yet: issue it first.")
        return _to_detail(request, invoice)
    name = pdf.current_pdf(invoice)
    return FileResponse(
        default_storage.open(name, "rb"),
        as_attachment=True,
        filename=f"{invoice.number}.pdf",
        content_type="application/pdf",
    )


# --- An invoice by hand ------------------------------------------------------------------


def _line_formset(
    currency: str, data: object = None, *, rows: int = DEFAULT_LINE_ROWS, locale: str = "en_US"
) -> BaseLineFormSet:
    formset_class = type("LineFormSet", (LineFormSet,), {"extra": max(1, min(rows, MAX_LINES)) - 1})
    return formset_class(data, prefix="lines", form_kwargs={"currency": currency, "locale": locale})


def _client_and_currency(workspace: Workspace, client_id: str | None) -> tuple[Client | None, str]:
    """The client a new invoice is for (from the query or the post) and the currency it is billed
    in: the client's (clients.selectors.client_currency), else the workspace's."""
    client = Client.objects.for_workspace(workspace).filter(pk=_int(client_id)).first()  # type: ignore[misc]  # django-stubs refuses pk=None, a valid lookup (no row)
    return client, client_currency(client) if client else workspace.currency


@require_http_methods(["GET", "POST"])
@workspace_view
def invoice_create(request: WorkspaceRequest) -> HttpResponse:
    """A draft invoice with lines typed by hand, in the client's currency; "Save and issue" issues it at once."""
    workspace = request.workspace
    template = "billing/invoice_create.html"
    if request.method == "GET" and request.htmx and "lines-TOTAL_FORMS" in request.GET:
        return _line_row(request, _client_and_currency(workspace, request.GET.get("client"))[1])
    if request.method == "POST":
        _, currency = _client_and_currency(workspace, request.POST.get("client"))
        form = InvoiceForm(request.POST, workspace=workspace)
        lines = _line_formset(currency, request.POST, locale=workspace.locale)
        if form.is_valid() and request.POST.get("currency", currency) != currency:
            # The amounts were typed under another currency's label (the client was changed on the
            # page): read in this one they could mean 100 times more or less. Show them again.
            client = form.cleaned_data["client"]
            form.add_error("client", f"{client.name} is billed in {currency}: check the amounts, now in {currency}.")
        elif form.is_valid() and lines.is_valid():
            issue = request.POST.get("action") == "issue"
            try:
                with transaction.atomic():  # "Save and issue" saves nothing if issuing fails
                    invoice = services.create_invoice(
                        client=form.cleaned_data["client"],
                        lines=lines.lines(),
                        memo=form.cleaned_data["memo"],
                        currency=currency,
                    )
                    if issue:
                        invoice = services.issue_invoice(invoice=invoice, actor=request.user)
            except BillingError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, str(exc))
            else:
                if issue:
                    messages.success(request, _issued_message(invoice))
                else:
                    messages.success(request, "The draft was saved. Issue it when it is ready.")
                return _to_detail(request, invoice)
    else:
        client, currency = _client_and_currency(workspace, request.GET.get("client"))
        form = InvoiceForm(workspace=workspace, initial={"client": client.pk if client else None})
        lines = _line_formset(
            currency, rows=_int(request.GET.get("lines")) or DEFAULT_LINE_ROWS, locale=workspace.locale
        )
    return render(request, template, {"form": form, "lines": lines, "currency": currency, "max_lines": MAX_LINES})


def _line_row(request: WorkspaceRequest, currency: str) -> HttpResponse:
    """htmx "Add a line": one more empty row, and the formset's form count raised to match."""
    index = _int(request.GET.get("lines-TOTAL_FORMS"))
    if index is None or not 0 <= index < MAX_LINES:
        return HttpResponse(status=204)
    row = LineForm(
        prefix=f"lines-{index}",
        currency=currency,
        locale=request.workspace.locale,
        empty_permitted=True,
        use_required_attribute=False,
    )
    return render(request, "billing/invoice_create.html#line-row", {"line": row, "total_forms": index + 1})


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


# --- Billing settings ---------------------------------------------------------------------

PROFILE_FIELDS = [
    "legal_name",
    "address",
    "tax_id",
    "tax_label",
    "payment_terms_days",
    "payment_instructions",
    "reminder_offsets",
    "retry_days",
    "members_move_money",
    "accent_color",
]


def _save_billing_settings(
    *, workspace: Workspace, profile: BillingProfile, data: dict[str, Any], actor: User | None
) -> None:
    """The profile and the workspace's locale together, audited; a replaced logo's file is deleted after commit.

    (Deleting it is safe: stored PDFs embed their logo.)
    """
    old_logo = profile.logo.name
    audited = [*PROFILE_FIELDS, "tax_rate_bp"]
    before = {name: getattr(profile, name) for name in audited} | {"locale": workspace.locale, "logo": old_logo}
    with transaction.atomic():
        for name in PROFILE_FIELDS:
            setattr(profile, name, data[name])
        profile.tax_rate_bp = data["tax_rate"]
        if data["logo"]:
            profile.logo.save(f"{workspace.pk}-{data['logo'].name}", data["logo"], save=False)
        elif data["logo"] is False:
            profile.logo = ""
        profile.save()
        if workspace.locale != data["locale"]:
            workspace.locale = data["locale"]
            workspace.save(update_fields=["locale"])
        after = {name: getattr(profile, name) for name in audited} | {
            "locale": workspace.locale,
            "logo": profile.logo.name,
        }
        if changes := audit.diff(before, after):
            audit.record(
                workspace=workspace, actor=actor, action="settings.billing_changed", target=profile, changes=changes
            )
        if old_logo and old_logo != profile.logo.name:
            transaction.on_commit(lambda: default_storage.delete(old_logo))


@require_http_methods(["GET", "POST"])
@workspace_view(admin=True)
def billing_settings(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    profile = services.profile_for(workspace)
    posted = request.method == "POST"
    form = BillingSettingsForm(
        request.POST if posted else None,
        request.FILES if posted else None,
        initial=BillingSettingsForm.initial_for(profile, workspace),
        workspace=workspace,
    )
    if posted and form.is_valid():
        _save_billing_settings(workspace=workspace, profile=profile, data=form.cleaned_data, actor=request.user)
        messages.success(request, "Billing settings saved. They apply to invoices issued from now on.")
        return redirect("billing:billing_settings", workspace_slug=workspace.slug)
    context = {
        "form": form,
        "profile": profile,
        "stripe_account": connect.account_of(workspace),
        "stripe_available": bool(settings.STRIPE_SECRET_KEY),
    }
    return render(request, "billing/billing_settings.html", context)


# --- Stripe Connect onboarding (billing/connect.py) ------------------------------------------


def _to_stripe_onboarding(request: WorkspaceRequest) -> HttpResponse:
    slug = request.workspace.slug
    try:
        url = connect.start_onboarding(
            workspace=request.workspace,
            actor=request.user,
            refresh_url=settings.SITE_URL + reverse("billing:stripe_connect_refresh", args=[slug]),
            return_url=settings.SITE_URL + reverse("billing:stripe_connect_return", args=[slug]),
        )
    except connect.ConnectError as exc:
        messages.error(request, str(exc))
        return redirect("billing:billing_settings", workspace_slug=slug)
    return redirect(url)  # Stripe's onboarding: a single-use link that expires in minutes


@require_POST
@workspace_view(admin=True)
def stripe_connect(request: WorkspaceRequest) -> HttpResponse:
    """ "Connect Stripe": create the workspace's account if it has none, then go to Stripe's onboarding."""
    return _to_stripe_onboarding(request)


@require_GET
@workspace_view(admin=True)
def stripe_connect_refresh(request: WorkspaceRequest) -> HttpResponse:
    """Where Stripe sends someone whose onboarding link expired or was used: a fresh link."""
    return _to_stripe_onboarding(request)


@require_GET
@workspace_view(admin=True)
def stripe_connect_return(request: WorkspaceRequest) -> HttpResponse:
    """Back from Stripe's onboarding: read the account and say where it stands."""
    try:
        account = connect.finish_onboarding(workspace=request.workspace)
    except connect.ConnectError as exc:
        messages.error(request, str(exc))
    else:
        if account.charges_enabled:
            messages.success(request, f"Stripe is connected ({account.account_id}): clients can pay by card.")
        else:
            messages.warning(
                request,
                "Stripe needs more details before this account can take payments: use “Continue on Stripe”. "
                "Until then invoices are emailed with your bank details.",
            )
    return redirect("billing:billing_settings", workspace_slug=request.workspace.slug)


@require_POST
@workspace_view(admin=True)
def stripe_disconnect(request: WorkspaceRequest) -> HttpResponse:
    if connect.disconnect(workspace=request.workspace):
        messages.success(
            request,
            "Stripe is disconnected: no card is charged and invoices are emailed with your bank details. "
            "“Connect Stripe” connects the same account again.",
        )
    return redirect("billing:billing_settings", workspace_slug=request.workspace.slug)
