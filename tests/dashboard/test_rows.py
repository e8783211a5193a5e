"""The clients table: each live retainer's figures, sorting, filtering, pagination and htmx parts."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from billing import services as billing
from clients.models import Retainer
from delivery import services as delivery
from delivery.models import Period
from tests import factories
from tests.dashboard.helpers import TODAY, bulk_book, dashboard_url, hx_get, make_renewal, set_balance

pytestmark = pytest.mark.django_db


def rows(response) -> list:
    return response.context["rows"]


def names(response) -> list[str]:
    return [row.client_name for row in rows(response)]


def make(workspace, client_name: str, **terms) -> Retainer:
    client = factories.ClientFactory(workspace=workspace, name=client_name)
    return factories.make_retainer(client=client, starts_on=terms.pop("starts_on", date(2026, 3, 1)), **terms)


# --- What a row says -------------------------------------------------------------------------------


def test_a_row_shows_use_remaining_days_next_invoice_and_renewal(workspace, owner_client, alice):
    retainer = make(workspace, "Acme", price_minor=150000)
    bill(workspace)
    delivery.record_delivery(
        retainer=retainer, delivered_on=date(2026, 3, 10), quantity=Decimal("3.5"), description="Workshop", actor=alice
    )
    make_renewal(Retainer.objects.get(pk=retainer.pk), status="proposal_sent")

    response = owner_client.get(dashboard_url(workspace))

    assert response.status_code == 200
    [row] = rows(response)
    assert (row.client_name, row.name) == ("Acme", "Advisory retainer")
    assert (row.percent, row.bar, row.tone) == (35, "w-35", "bar-success")
    assert row.remaining == "6.50 h left"
    assert row.days_left == 18  # the period is [1 Mar, 1 Apr): 14 March to 1 April
    assert (row.invoice_on, row.invoice_amount) == ("1 Apr 2026", "£1,500.00")  # in advance: next period's fee
    assert row.renewal_on == "1 Mar 2027"
    assert (row.renewal_label, row.renewal_badge) == ("Proposal sent", "badge-info")
    assert row.client_url == f"/w/{workspace.slug}/clients/{retainer.client_id}/"
    assert row.url == f"/w/{workspace.slug}/retainers/{retainer.pk}/"
    page = response.content.decode()
    assert 'class="bar bar-success"><span class="w-35"></span>' in page
    assert "6.50 h left" in page and "£1,500.00" in page and "Proposal sent" in page


def test_utilization_bar_rounds_to_steps_of_five_and_stops_at_full(workspace, owner_client):
    low = set_balance(make(workspace, "A low one"), available="10", used="8.7")  # 87% -> w-85
    over = set_balance(make(workspace, "B over"), available="10", used="12.25")
    sessions = set_balance(make(workspace, "C sessions", unit="sessions"), available="4", used="1")

    by_name = {row.client_name: row for row in rows(owner_client.get(dashboard_url(workspace)))}

    assert (by_name["A low one"].percent, by_name["A low one"].bar, by_name["A low one"].tone) == (
        87,
        "w-85",
        "bar-warning",
    )
    assert by_name["A low one"].remaining == "1.30 h left"
    assert (by_name["B over"].percent, by_name["B over"].bar, by_name["B over"].tone) == (123, "w-100", "bar-danger")
    assert by_name["B over"].remaining == "2.25 h over" and by_name["B over"].remaining_badge == "badge-danger"
    assert by_name["C sessions"].remaining == "3 sessions left"
    assert low and over and sessions


def record(retainer: Retainer, hours: str) -> None:
    delivery.record_delivery(
        retainer=retainer, delivered_on=date(2026, 3, 10), quantity=Decimal(hours), description="Work", actor=None
    )


def bill(workspace) -> None:
    """What the hourly run did on the period's first day: the row's next invoice is the one after."""
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 3, 1), deliver=False)


def test_in_arrears_the_next_invoice_is_the_period_end_with_its_overage(workspace, owner_client):
    retainer = make(workspace, "Arrears", billing_timing="arrears", price_minor=100000, overage_rate_minor=12000)
    record(retainer, "11.5")  # 1.5 h over at £120.00

    [row] = rows(owner_client.get(dashboard_url(workspace)))

    assert row.invoice_on == "1 Apr 2026"
    assert row.invoice_amount == "£1,180.00 in arrears"


def test_in_advance_the_next_invoice_carries_a_pending_amendment_and_the_overage(workspace, owner_client, alice):
    retainer = make(workspace, "Advance", price_minor=100000, overage_rate_minor=10000)
    bill(workspace)
    record(retainer, "10.5")
    delivery.amend_retainer(retainer=retainer, terms={"price_minor": 120000}, reason="More hours", actor=alice)

    [row] = rows(owner_client.get(dashboard_url(workspace)))

    assert row.invoice_amount == "£1,250.00"  # the next period's new fee plus half an hour over


def test_the_next_invoice_is_labelled_with_its_tax(workspace, owner_client):
    profile = billing.profile_for(workspace)
    profile.tax_rate_bp, profile.tax_label = 2000, "VAT"
    profile.save()
    make(workspace, "Taxed", price_minor=100000)
    bill(workspace)

    [row] = rows(owner_client.get(dashboard_url(workspace)))

    assert (row.invoice_on, row.invoice_amount) == ("1 Apr 2026", "£1,200.00 incl. VAT")


def test_no_next_invoice_for_a_paused_retainer_or_one_whose_term_ends(workspace, owner_client):
    paused = make(workspace, "Paused")
    delivery.pause_retainer(retainer=paused, on=TODAY)
    ending = make(workspace, "Ending")
    Retainer.objects.filter(pk=ending.pk).update(cancel_at_period_end=True)
    bill(workspace)

    by_name = {row.client_name: row for row in rows(owner_client.get(dashboard_url(workspace)))}

    assert by_name["Paused"].invoice_on == "" and by_name["Paused"].invoice_note == "Paused"
    assert by_name["Paused"].paused and by_name["Paused"].days_left is None
    assert by_name["Ending"].invoice_on == "" and by_name["Ending"].invoice_note == "None: the term ends"
    assert by_name["Ending"].renewal_note == "Cancelled"


def test_deliverables_retainers_show_what_is_delivered(workspace, owner_client):
    retainer = make(workspace, "Reports", model="deliverables", deliverables=["Audit", "Plan", "Review", "Deck"])
    period = Period.objects.get(retainer=retainer)
    first = retainer.deliverable_items.filter(period=period).order_by("pk").first()
    delivery.set_deliverable_status(deliverable=first, status="delivered", actor=None)

    [row] = rows(owner_client.get(dashboard_url(workspace)))

    assert row.remaining == "1 of 4 delivered"
    assert (row.percent, row.bar) == (25, "w-25")


def test_only_live_retainers_of_this_workspace_are_rows(workspace, other_workspace, owner_client):
    make(workspace, "Live")
    ended = make(workspace, "Ended")
    delivery.end_retainer(retainer=ended, on=TODAY)
    factories.make_retainer(workspace=other_workspace)

    assert names(owner_client.get(dashboard_url(workspace))) == ["Live"]


# --- Sorting -----------------------------------------------------------------------------------


@pytest.fixture
def three(workspace):
    """Three retainers that order differently by every column."""
    a = set_balance(make(workspace, "Alpha", starts_on=date(2026, 3, 1)), available="10", used="9")
    b = set_balance(make(workspace, "Bravo", starts_on=date(2026, 2, 20)), available="10", used="2")
    c = set_balance(make(workspace, "Charlie", starts_on=date(2026, 3, 10)), available="20", used="10")
    Retainer.objects.filter(pk=a.pk).update(term_ends_on=date(2026, 9, 1))
    Retainer.objects.filter(pk=b.pk).update(term_ends_on=date(2027, 6, 1))
    Retainer.objects.filter(pk=c.pk).update(term_ends_on=date(2026, 4, 10))
    return a, b, c


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("", ["Alpha", "Bravo", "Charlie"]),
        ("-client", ["Charlie", "Bravo", "Alpha"]),
        ("-utilization", ["Alpha", "Charlie", "Bravo"]),  # 90%, 50%, 20%
        ("utilization", ["Bravo", "Charlie", "Alpha"]),
        ("remaining", ["Alpha", "Bravo", "Charlie"]),  # 1, 8, 10 left
        ("-remaining", ["Charlie", "Bravo", "Alpha"]),
        ("days", ["Bravo", "Alpha", "Charlie"]),  # periods end 20 Mar, 1 Apr, 10 Apr
        ("-days", ["Charlie", "Alpha", "Bravo"]),
        ("invoice", ["Bravo", "Alpha", "Charlie"]),
        ("renewal", ["Charlie", "Alpha", "Bravo"]),
        ("-renewal", ["Bravo", "Alpha", "Charlie"]),
        ("nonsense", ["Alpha", "Bravo", "Charlie"]),
    ],
)
def test_rows_sort_by_each_column(sort, expected, three, workspace, owner_client):
    assert names(owner_client.get(dashboard_url(workspace), {"sort": sort})) == expected


def test_column_headers_link_to_their_sort_and_mark_the_current_one(three, workspace, owner_client):
    response = owner_client.get(dashboard_url(workspace), {"sort": "-utilization", "health": "healthy"})
    columns = {column.key: column for column in response.context["columns"]}
    base = dashboard_url(workspace)
    assert columns["utilization"].aria_sort == "descending"
    assert columns["utilization"].url == f"{base}?health=healthy&sort=utilization"  # a second click reverses it
    assert columns["remaining"].url == f"{base}?health=healthy&sort=remaining"  # the useful end first
    assert columns["client"].url == f"{base}?health=healthy"  # the default sort needs no parameter
    assert 'aria-sort="descending"' in response.content.decode()


# --- Filtering ---------------------------------------------------------------------------------


def test_search_matches_client_or_retainer_names(three, workspace, owner_client):
    assert names(owner_client.get(dashboard_url(workspace), {"q": "rav"})) == ["Bravo"]
    assert names(owner_client.get(dashboard_url(workspace), {"q": "advisory"})) == ["Alpha", "Bravo", "Charlie"]


def test_filter_by_health(workspace, owner_client):
    set_balance(make(workspace, "Over"), available="10", used="11")
    set_balance(make(workspace, "Low"), available="10", used="8.5")
    set_balance(make(workspace, "Edge"), available="10", used="8")  # exactly 20% left is not low
    set_balance(make(workspace, "Fine"), available="10", used="1")

    def by(health: str) -> list[str]:
        return names(owner_client.get(dashboard_url(workspace), {"health": health}))

    assert by("over") == ["Over"]
    assert by("low") == ["Low"]
    assert by("healthy") == ["Edge", "Fine"]
    assert by("") == ["Edge", "Fine", "Low", "Over"]


def test_filter_by_renewal_status(workspace, owner_client):
    for name, status in [("Up", "upcoming"), ("Sent", "proposal_sent"), ("Yes", "accepted"), ("No", "declined")]:
        make_renewal(make(workspace, name), status=status)
    stale = make(workspace, "Old term")
    Renewal = type(make_renewal(stale, status="accepted"))
    Renewal.objects.filter(retainer=stale).update(term_ends_on=date(2026, 3, 1))  # a past term's renewal
    make(workspace, "None")

    def by(renewal: str) -> list[str]:
        return names(owner_client.get(dashboard_url(workspace), {"renewal": renewal}))

    assert by("upcoming") == ["Up"]
    assert by("proposal_sent") == ["Sent"]
    assert by("accepted") == ["Yes"]
    assert by("declined") == ["No"]
    assert by("none") == ["None", "Old term"]


def test_a_filter_with_no_match_says_so_and_offers_to_clear(three, workspace, owner_client):
    response = owner_client.get(dashboard_url(workspace), {"q": "zzz"})
    assert rows(response) == []
    page = response.content.decode()
    assert "No retainers match" in page and "“zzz”" in page


def test_an_empty_workspace_invites_a_first_retainer(workspace, owner_client):
    page = owner_client.get(dashboard_url(workspace)).content.decode()
    assert "No live retainers yet" in page
    assert 'id="quick-add"' not in page  # nothing to record work against yet


# --- Pagination --------------------------------------------------------------------------------


def test_rows_are_paginated_past_100(workspace, owner_client):
    bulk_book(workspace, 130)
    first = owner_client.get(dashboard_url(workspace))
    second = owner_client.get(dashboard_url(workspace), {"page": "2"})
    beyond = owner_client.get(dashboard_url(workspace), {"page": "99"})

    assert len(rows(first)) == 100 and len(rows(second)) == 30
    assert names(first)[0] == "Client 0000" and names(second)[0] == "Client 0100"
    assert names(beyond) == names(second)  # a page past the end shows the last one
    page = first.content.decode()
    assert "1–100 of 130 live retainers" in page
    assert 'href="?page=2"' in page and 'hx-get="?page=2"' in page and 'hx-push-url="true"' in page


def test_pagination_keeps_the_filters_and_sort(workspace, owner_client):
    bulk_book(workspace, 130)
    page = owner_client.get(dashboard_url(workspace), {"sort": "-client", "q": "client"}).content.decode()
    assert 'href="?sort=-client&amp;q=client&amp;page=2"' in page


# --- htmx --------------------------------------------------------------------------------------


def test_htmx_gets_only_the_rows(three, workspace, owner_client):
    response = hx_get(owner_client, workspace, "dashboard-rows", {"sort": "-utilization"})

    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body and "<table" in body
    assert "Needs attention" not in body and "Record a session" not in body
    assert names(response) == ["Alpha", "Charlie", "Bravo"]
    # It re-reads itself (same filters) when the quick-add records a session.
    assert 'hx-trigger="work-recorded from:body"' in body
    assert f'hx-get="{dashboard_url(workspace)}?sort=-utilization"' in body
    assert "HX-Request" in response["Vary"]


def test_htmx_history_restore_gets_the_whole_page(three, workspace, owner_client):
    response = owner_client.get(
        dashboard_url(workspace), HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert "<html" in response.content.decode()


def test_the_page_without_javascript_has_plain_links_and_a_get_form(three, workspace, owner_client):
    page = owner_client.get(dashboard_url(workspace)).content.decode()
    assert f'<form method="get" action="{dashboard_url(workspace)}" role="search"' in page
    assert f'href="{dashboard_url(workspace)}?sort=-utilization"' in page  # a sortable header


def test_another_workspace_dashboard_is_404(workspace, other_workspace, owner_client):
    assert owner_client.get(dashboard_url(other_workspace)).status_code == 404
    assert hx_get(owner_client, other_workspace, "dashboard-rows").status_code == 404


def test_period_end_in_the_past_shows_zero_days(workspace, owner_client):
    retainer = make(workspace, "Late", starts_on=date(2026, 1, 1))  # billing has not run since January
    assert Period.objects.get(retainer=retainer).end_on == date(2026, 2, 1)
    [row] = rows(owner_client.get(dashboard_url(workspace)))
    # The run, when it comes, issues January's invoice first (dated 1 January), as the preview says.
    assert row.days_left == 0 and row.invoice_on == "1 Jan 2026"
    assert TODAY - timedelta(days=41) == date(2026, 2, 1)


@pytest.mark.parametrize("sort", ["invoice", "-invoice"])
def test_the_next_invoice_sort_follows_the_date_each_row_shows(sort, workspace, owner_client):
    """The sort key is the preview's own date (billing.preview.issue_on_sql): in-advance periods not
    billed yet are invoiced on their first day, a period's own billing timing counts (not the
    retainer's, after an amendment), and a term ending with nothing to bill has no next invoice."""
    from billing.preview import next_invoice

    book = bulk_book(workspace, 40)
    # Billed in advance by its period's price snapshot, though the retainer now bills in arrears.
    advance = next(r for r in book if r.billing_timing == "advance" and r.status == "active")
    Retainer.objects.filter(pk=advance.pk).update(billing_timing="arrears")
    # Not billed yet: the in-advance periods' invoices are dated their first day (1 March), those in
    # arrears their end (1 April), paused retainers have none.

    shown = rows(owner_client.get(dashboard_url(workspace), {"sort": sort}))
    previews = [next_invoice(row.retainer, today=TODAY) for row in shown]
    dates = [preview.issue_on for preview in previews if preview is not None]
    assert {date(2026, 3, 1), date(2026, 4, 1)} <= set(dates)  # a real ordering, not one date for all
    assert len(dates) < len(previews)
    assert dates == sorted(dates, reverse=sort.startswith("-"))
    assert all(preview is None for preview in previews[len(dates) :])  # rows without one last, either way
    for row, preview in zip(shown, previews, strict=True):  # and the row says the date it sorts by
        assert row.invoice_on == (f"{preview.issue_on.day} {preview.issue_on:%b %Y}" if preview else "")


def test_the_sort_key_is_the_preview_date_of_every_row_once_billed(workspace):
    """billing.preview.issue_on_sql against next_invoices row by row, after the run billed the open
    periods: in-advance terms that end with them are closing cases, asked of the preview."""
    from billing.preview import issue_on_sql, next_invoices
    from dashboard import queries

    bulk_book(workspace, 40)
    billing.bill_workspace(workspace_id=workspace.pk, as_of=TODAY, deliver=False)
    base = queries.retainer_rows(workspace, today=TODAY)
    issue_on = issue_on_sql(period="open_period", today=TODAY)
    assert base.filter(issue_on.closing).exists()  # the case the preview decides is there
    rows = list(base.annotate(key=issue_on.resolve(base, today=TODAY)).order_by("pk"))
    previews = next_invoices(rows, today=TODAY)
    assert [row.key for row in rows] == [getattr(previews[row.pk], "issue_on", None) for row in rows]
