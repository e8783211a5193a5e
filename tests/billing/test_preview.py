"""The next invoice before it is issued (billing.preview): the run's own builder, so with no
further work recorded the preview is the invoice the billing run then issues, line by line."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import call_command

from billing import services
from billing.models import Invoice
from billing.preview import NextInvoice, next_invoice, next_invoices
from clients.models import Retainer
from delivery import approvals
from delivery import services as delivery
from demo import northwind
from retainers.models import Workspace
from tests import factories

pytestmark = pytest.mark.django_db


def issued_lines(invoice: Invoice) -> list[tuple[str, D, int, int]]:
    return list(
        invoice.lines.order_by("position").values_list("description", "quantity", "unit_price_minor", "amount_minor")
    )


def preview_lines(preview: NextInvoice) -> list[tuple[str, D, int, int]]:
    return [(line.description, line.quantity, line.unit_price_minor, line.amount_minor) for line in preview.lines]


def assert_issued_as_previewed(preview: NextInvoice, invoice: Invoice) -> None:
    assert issued_lines(invoice) == preview_lines(preview)
    assert (invoice.kind, invoice.issued_on, invoice.currency) == (preview.kind, preview.issue_on, preview.currency)
    assert (invoice.period_start_on, invoice.period_end_on) == (preview.period_start_on, preview.period_end_on)
    assert (invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor) == (
        preview.subtotal_minor,
        preview.tax_minor,
        preview.total_minor,
    )


def test_every_live_demo_retainers_preview_is_the_invoice_the_run_then_issues(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    call_command("seed_demo", stdout=StringIO())
    workspace = Workspace.objects.get(slug=northwind.SLUG)
    today = workspace.today()
    live = list(Retainer.objects.for_workspace(workspace).live().order_by("pk"))
    # Use beyond the balance on one retainer that bills it, so an overage line is previewed too.
    billing_overage = [
        r
        for r in live
        if r.status == "active" and r.overage_policy == "bill" and r.overage_rate_minor and r.balance > 0
    ]
    delivery.record_delivery(
        retainer=billing_overage[0],
        delivered_on=today,
        quantity=billing_overage[0].balance + 2,
        description="Workshop",
        actor=None,
        confirm_large=True,
    )
    live = list(Retainer.objects.for_workspace(workspace).live().order_by("pk"))
    previews = next_invoices(live, today=today)
    assert set(previews) == {r.pk for r in live}
    coming = {pk: p for pk, p in previews.items() if p is not None}
    # The demo has the cases worth checking: several retainers, usage billed beyond the fee, tax.
    assert len(coming) >= 5
    assert any(p.includes_usage for p in coming.values())
    assert all(p.tax_minor > 0 for p in coming.values())
    assert all(next_invoice(r, today=today) == previews[r.pk] for r in live)

    last = max(Invoice.objects.values_list("pk", flat=True), default=0)
    for day in sorted({p.issue_on for p in coming.values()}):
        call_command("run_billing", "--as-of", day.isoformat(), stdout=StringIO())
    new = Invoice.objects.filter(pk__gt=last, kind__in=[Invoice.Kind.SCHEDULED, Invoice.Kind.CLOSING])
    for retainer in live:
        preview = previews[retainer.pk]
        if preview is None:
            assert not new.filter(retainer=retainer).exists(), retainer.name
            continue
        [invoice] = new.filter(retainer=retainer, issued_on=preview.issue_on)
        assert_issued_as_previewed(preview, invoice)


def bill(workspace, day: date) -> list[Invoice]:
    ids = services.bill_workspace(workspace_id=workspace.pk, as_of=day, deliver=False).invoices
    return list(Invoice.objects.filter(pk__in=ids).order_by("pk"))


def taxed(workspace, rate_bp: int = 2000) -> None:
    profile = services.profile_for(workspace)
    profile.tax_rate_bp, profile.tax_label = rate_bp, "VAT"
    profile.save()


def test_in_advance_with_a_pending_amendment_and_overage(workspace):
    taxed(workspace)
    retainer = factories.make_retainer(
        workspace=workspace, starts_on=date(2026, 1, 1), model="fixed", price_minor=100000, overage_rate_minor=12345
    )
    bill(workspace, date(2026, 1, 1))
    delivery.record_delivery(
        retainer=retainer, delivered_on=date(2026, 1, 20), quantity=D("11.5"), description="x", actor=None
    )
    delivery.amend_retainer(retainer=retainer, terms={"price_minor": 180000}, reason="more", actor=None)
    preview = next_invoice(retainer, today=date(2026, 1, 21))
    assert preview is not None and preview.issue_on == date(2026, 2, 1)
    assert [line.amount_minor for line in preview.lines] == [180000, 18518]  # 1.5 h × £123.45, half up
    assert (preview.subtotal_minor, preview.tax_minor, preview.total_minor) == (198518, 39704, 238222)
    [invoice] = bill(workspace, date(2026, 2, 1))
    assert_issued_as_previewed(preview, invoice)


def test_in_arrears_bills_this_periods_fee_and_overage_at_its_end(workspace):
    retainer = factories.make_retainer(
        workspace=workspace, billing_timing="arrears", model="fixed", price_minor=100000, overage_rate_minor=12000
    )
    delivery.record_delivery(
        retainer=retainer, delivered_on=date(2026, 1, 9), quantity=D("12.5"), description="x", actor=None
    )
    preview = next_invoice(retainer, today=date(2026, 1, 10))
    assert preview is not None and preview.total_minor == 130000
    [invoice] = bill(workspace, preview.issue_on)
    assert_issued_as_previewed(preview, invoice)


def test_an_in_advance_period_not_billed_yet_is_next_with_its_own_dates(workspace):
    retainer = factories.make_retainer(workspace=workspace, starts_on=date(2026, 1, 1), price_minor=150000)
    preview = next_invoice(retainer, today=date(2026, 1, 1))
    assert preview is not None and preview.issue_on == date(2026, 1, 1)
    [invoice] = bill(workspace, date(2026, 1, 1))
    assert_issued_as_previewed(preview, invoice)
    after = next_invoice(retainer, today=date(2026, 1, 1))
    assert after is not None and after.issue_on == date(2026, 2, 1)


def test_the_last_period_of_an_in_advance_term_bills_its_overage_on_a_closing_invoice(workspace):
    retainer = factories.make_retainer(
        workspace=workspace, model="fixed", price_minor=100000, overage_rate_minor=10000, auto_renew=False
    )
    Retainer.objects.filter(pk=retainer.pk).update(term_ends_on=date(2026, 2, 1))
    retainer.refresh_from_db()
    bill(workspace, date(2026, 1, 1))
    assert next_invoice(retainer, today=date(2026, 1, 2)) is None  # nothing beyond the fee yet
    delivery.record_delivery(
        retainer=retainer, delivered_on=date(2026, 1, 20), quantity=D("12"), description="x", actor=None
    )
    preview = next_invoice(retainer, today=date(2026, 1, 21))
    assert preview is not None and preview.kind == Invoice.Kind.CLOSING and preview.total_minor == 20000
    [invoice] = bill(workspace, date(2026, 2, 1))
    assert_issued_as_previewed(preview, invoice)


def test_a_paused_retainer_has_no_next_invoice(workspace):
    retainer = factories.make_retainer(workspace=workspace, starts_on=date(2026, 1, 1))
    bill(workspace, date(2026, 1, 1))
    retainer = delivery.pause_retainer(retainer=retainer, on=date(2026, 1, 10))
    assert next_invoice(retainer, today=date(2026, 1, 10)) is None


def test_next_invoices_reads_many_retainers_in_a_fixed_number_of_queries(workspace, django_assert_num_queries):
    retainers = [factories.make_retainer(workspace=workspace, starts_on=date(2026, 1, 1)) for _ in range(5)]
    bill(workspace, date(2026, 1, 1))
    ids = [r.pk for r in retainers]
    plain = list(Retainer.objects.filter(pk__in=ids))  # without their clients
    # Seven: the open periods, their ledger entries, extras, amendments, billing profiles, clients (tax
    # treatments) and the approved overage (delivery.approvals) the close would bill.
    with django_assert_num_queries(7):
        previews = next_invoices(plain, today=date(2026, 1, 5))
    assert len([p for p in previews.values() if p is not None]) == 5
    # Six when the retainers come with their clients (the dashboard's rows): those are not read again.
    loaded = list(Retainer.objects.filter(pk__in=ids).select_related("client"))
    with django_assert_num_queries(6):
        again = next_invoices(loaded, today=date(2026, 1, 5))
    assert again == previews


def approved_twice(workspace, **terms) -> Retainer:
    """A retainer whose overage needs approval, 3 hours over its 2 this period: the first approval
    (2 hours) is used up, the second (3 hours) covers 1, as the close shares them."""
    retainer = factories.make_retainer(
        workspace=workspace, model="fixed", units_per_period=D("2"), overage_rate_minor=15000, **terms
    )
    delivery.set_collection(
        retainer=retainer,
        auto_charge=False,
        pause_after_unpaid_days=None,
        overage_needs_approval=True,
        overage_block=D("3"),
    )
    retainer.refresh_from_db()
    contact = factories.ContactFactory(client=retainer.client, workspace=workspace, portal_access=True)
    for quantity, hours in ((D("2"), D("4")), (D("3"), D("1"))):
        approval = approvals.offer_overage(retainer=retainer)
        approvals.answer_overage(approval=approval, approve=True, quantity=quantity, contact=contact, via="portal")
        delivery.record_delivery(
            retainer=retainer, delivered_on=date(2026, 1, 20), quantity=hours, description="x", actor=None
        )
    retainer.refresh_from_db()
    assert retainer.balance == D("-3")
    return retainer


@pytest.mark.parametrize(
    ("terms", "kind"),
    [
        ({"billing_timing": "advance"}, Invoice.Kind.SCHEDULED),
        ({"billing_timing": "arrears"}, Invoice.Kind.SCHEDULED),
        ({"billing_timing": "advance", "term_periods": 1, "auto_renew": False}, Invoice.Kind.CLOSING),
    ],
)
def test_approved_overage_used_in_the_open_period_is_previewed_as_the_run_then_bills_it(workspace, terms, kind):
    """Before the period closes no approval has its `used` set: the preview shares the approved
    overage among the approvals as the close will, so it shows the approval lines the run issues."""
    taxed(workspace)
    retainer = approved_twice(workspace, **terms)
    bill(workspace, date(2026, 1, 1))  # an in-advance period's own invoice; nothing for arrears yet
    preview = next_invoice(retainer, today=date(2026, 1, 21))
    assert preview is not None and preview.kind == kind
    usage = [line for line in preview.lines if line.kind == "overage"]
    assert [(line.quantity, line.unit_price_minor, line.amount_minor) for line in usage] == [
        (D("2.00"), 15000, 30000),
        (D("1.00"), 15000, 15000),
    ]
    assert all(line.description.startswith("Approved overage:") for line in usage)
    invoices = [i for i in bill(workspace, date(2026, 2, 1)) if i.kind == kind and i.issued_on == preview.issue_on]
    [invoice] = invoices
    assert_issued_as_previewed(preview, invoice)
