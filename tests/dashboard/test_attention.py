"""Needs attention: each rule with a case it catches and one it leaves alone, the cap and counts,
and the htmx part."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from clients.models import Client, Retainer
from communication.models import Message, Task
from delivery import services as delivery
from delivery.models import Period, WorkItem
from tests import factories
from tests.dashboard.helpers import (
    NOW,
    TODAY,
    dashboard_url,
    hx_get,
    local,
    make_invoice,
    make_payment,
    make_renewal,
    set_balance,
)

pytestmark = pytest.mark.django_db

LONG_AGO = datetime(2025, 6, 1, tzinfo=ZoneInfo("UTC"))


def attention(owner_client, workspace) -> dict:
    response = owner_client.get(dashboard_url(workspace))
    assert response.status_code == 200
    return {kind.key: kind for kind in response.context["attention"]}


def titles(owner_client, workspace, key: str) -> list[str]:
    return [item.title for item in attention(owner_client, workspace)[key].items]


def retainer_for(workspace, name: str, **terms) -> Retainer:
    client = factories.ClientFactory(workspace=workspace, name=name, created_at=LONG_AGO)
    return factories.make_retainer(client=client, starts_on=terms.pop("starts_on", date(2026, 3, 1)), **terms)


# --- Balances ------------------------------------------------------------------------------------


def test_over_the_allotment_is_a_negative_balance(workspace, owner_client):
    over = set_balance(retainer_for(workspace, "Over"), available="10", used="10.5")
    set_balance(retainer_for(workspace, "Spent"), available="10", used="10")

    kind = attention(owner_client, workspace)["over"]

    assert kind.count == 1
    [item] = kind.items
    assert item.title == "Over · Advisory retainer"
    assert item.detail == "0.50 h over the allotment"
    assert item.url == f"/w/{workspace.slug}/retainers/{over.pk}/"


def test_low_balance_is_under_a_fifth_of_what_is_available(workspace, owner_client):
    set_balance(retainer_for(workspace, "Low"), available="12", used="10")  # 2 of 12 left: 16.7%
    set_balance(retainer_for(workspace, "Edge"), available="10", used="8")  # exactly 20%: not low
    set_balance(retainer_for(workspace, "Over"), available="10", used="11")  # over, listed as such
    retainer_for(workspace, "Reports", model="deliverables", deliverables=["Audit"])  # no units to run low

    kind = attention(owner_client, workspace)["low"]

    assert [item.title for item in kind.items] == ["Low · Advisory retainer"]
    assert kind.items[0].detail == "2.00 h left of 12.00 h"


# --- Money owed ------------------------------------------------------------------------------------


def test_overdue_invoices_are_open_and_past_their_due_date(workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace, name="Acme")
    late = make_invoice(client, due_on=TODAY - timedelta(days=3), number="2026-0007", total=120000)
    make_invoice(client, due_on=TODAY, number="2026-0008")  # due today: not overdue yet
    make_invoice(client, status="paid", due_on=TODAY - timedelta(days=30), number="2026-0001")
    make_invoice(client, status="draft", due_on=TODAY - timedelta(days=30))

    kind = attention(owner_client, workspace)["overdue"]

    [item] = kind.items
    assert item.title == "Acme · 2026-0007"
    assert item.detail == "£1,200.00 due 11 Mar, 3 days overdue"
    assert item.url == f"/w/{workspace.slug}/invoices/{late.pk}/"
    assert kind.all_url == f"/w/{workspace.slug}/invoices/?status=overdue"


def test_failed_payments_without_a_later_success_need_chasing(workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace, name="Acme")
    failing = make_invoice(client, due_on=TODAY + timedelta(days=5), number="F-1")
    make_payment(failing, at=NOW - timedelta(days=6), amount=100000, status="failed", message="Card declined")
    make_payment(failing, at=NOW - timedelta(days=2), amount=100000, status="failed", message="Insufficient funds")

    recovered = make_invoice(client, due_on=TODAY + timedelta(days=5), number="F-2")
    make_payment(recovered, at=NOW - timedelta(days=6), amount=100000, status="failed")
    make_payment(recovered, at=NOW - timedelta(days=5), amount=100000, status="succeeded")

    old = make_invoice(client, due_on=TODAY + timedelta(days=5), number="F-3")
    make_payment(old, at=NOW - timedelta(days=31), amount=100000, status="failed")

    earlier_success = make_invoice(client, due_on=TODAY + timedelta(days=5), number="F-4")
    make_payment(earlier_success, at=NOW - timedelta(days=9), amount=50000, status="succeeded")
    make_payment(earlier_success, at=NOW - timedelta(days=1), amount=50000, status="failed")

    voided = make_invoice(client, status="void", due_on=TODAY + timedelta(days=5), number="F-5")
    make_payment(voided, at=NOW - timedelta(days=1), amount=100000, status="failed")

    kind = attention(owner_client, workspace)["failed"]

    assert [item.title for item in kind.items] == ["Acme · F-4", "Acme · F-1"]  # latest failure first
    assert kind.count == 2  # one per invoice, however many attempts failed
    assert kind.items[1].detail == "£1,000.00 unpaid: payment failed 12 Mar (Insufficient funds)"
    assert kind.items[1].url == f"/w/{workspace.slug}/invoices/{failing.pk}/"


# --- Renewals --------------------------------------------------------------------------------------


def test_renewals_ending_within_30_days_without_a_sent_proposal(workspace, owner_client):
    def ending_in(name: str, days: int) -> Retainer:
        retainer = retainer_for(workspace, name)
        Retainer.objects.filter(pk=retainer.pk).update(term_ends_on=TODAY + timedelta(days=days))
        retainer.refresh_from_db()
        return retainer

    not_opened = ending_in("Not opened", 20)
    upcoming = ending_in("Upcoming", 30)
    make_renewal(upcoming, status="upcoming")
    make_renewal(ending_in("Sent", 10), status="proposal_sent")
    make_renewal(ending_in("Accepted", 10), status="accepted")
    ending_in("Later", 31)
    cancelled = ending_in("Cancelled", 10)
    Retainer.objects.filter(pk=cancelled.pk).update(cancel_at_period_end=True)

    kind = attention(owner_client, workspace)["renewals"]

    assert [item.title for item in kind.items] == ["Not opened · Advisory retainer", "Upcoming · Advisory retainer"]
    first, second = kind.items
    assert first.detail == "Renews 3 Apr (in 20 days), renewal not opened yet"
    assert first.url == f"/w/{workspace.slug}/retainers/{not_opened.pk}/"
    assert second.detail == "Renews 13 Apr (in 30 days), no proposal sent"
    assert second.url.startswith(f"/w/{workspace.slug}/renewals/")


# --- Tasks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["Europe/London", "America/New_York", "Pacific/Auckland"])
def test_tasks_due_by_the_end_of_today_in_the_workspace_zone(zone, workspace, owner_client):
    workspace.timezone = zone
    workspace.save()
    today = workspace.today()  # 15 March already in Auckland
    client = factories.ClientFactory(workspace=workspace, name="Acme")

    def task(title: str, due_at: datetime, **fields) -> Task:
        return Task.objects.create(workspace=workspace, client=client, title=title, due_at=due_at, **fields)

    task("Tonight", local(workspace, today, 23, 59))
    task("Last week", local(workspace, today - timedelta(days=7), 9))
    task("Tomorrow", local(workspace, today + timedelta(days=1), 0, 0))
    task("Done", local(workspace, today - timedelta(days=1), 9), status="done")

    kind = attention(owner_client, workspace)["tasks"]

    assert [item.title for item in kind.items] == ["Acme · Last week", "Acme · Tonight"]
    assert kind.items[1].detail == "due today 23:59"
    assert kind.items[0].detail.startswith("overdue since ")


def test_a_task_names_who_it_is_for(workspace, owner_client, bob):
    client = factories.ClientFactory(workspace=workspace, name="Acme")
    task = Task.objects.create(
        workspace=workspace, client=client, title="Call", due_at=NOW - timedelta(hours=1), assignee=bob
    )
    [item] = attention(owner_client, workspace)["tasks"].items
    assert item.detail == "due today 11:00 · Bob"
    assert item.url == f"/w/{workspace.slug}/tasks/{task.pk}/edit/"


# --- Quiet clients -------------------------------------------------------------------------------


def _session(retainer: Retainer, day: date) -> None:
    period = Period.objects.get(retainer=retainer, status="open")
    WorkItem.objects.create(
        workspace=retainer.workspace, retainer=retainer, period=period, delivered_on=day, quantity=Decimal("1"),
        description="Call",
    )  # fmt: skip


def test_clients_gone_quiet_for_30_days_or_their_own_cadence(workspace, owner_client):
    quiet = retainer_for(workspace, "Quiet", starts_on=date(2026, 1, 1))
    _session(quiet, TODAY - timedelta(days=30))
    busy = retainer_for(workspace, "Busy", starts_on=date(2026, 1, 1))
    _session(busy, TODAY - timedelta(days=29))
    talking = retainer_for(workspace, "Talking", starts_on=date(2026, 1, 1))
    _session(talking, TODAY - timedelta(days=45))
    Message.objects.create(workspace=workspace, client=talking.client, body="Hi", created_at=NOW - timedelta(days=3))
    weekly = retainer_for(workspace, "Weekly", starts_on=date(2026, 1, 1))
    Client.objects.filter(pk=weekly.client_id).update(checkin_every_days=7)
    Message.objects.create(workspace=workspace, client=weekly.client, body="Hi", created_at=NOW - timedelta(days=8))
    patient = retainer_for(workspace, "Patient", starts_on=date(2026, 1, 1))
    Client.objects.filter(pk=patient.client_id).update(checkin_every_days=60)
    _session(patient, TODAY - timedelta(days=40))
    removed = retainer_for(workspace, "Removed", starts_on=date(2026, 1, 1))
    WorkItem.objects.filter(retainer=removed).delete()
    _session(removed, TODAY - timedelta(days=2))
    WorkItem.objects.filter(retainer=removed).update(removed_at=NOW)  # a reversed session is not contact
    new = factories.ClientFactory(workspace=workspace, name="New")  # added today, nothing yet
    factories.make_retainer(client=new, starts_on=date(2026, 3, 1))
    never = factories.ClientFactory(workspace=workspace, name="Never", created_at=LONG_AGO)
    factories.make_retainer(client=never, starts_on=date(2026, 3, 1))
    archived = retainer_for(workspace, "Archived")
    Client.objects.filter(pk=archived.client_id).update(status="archived")
    factories.ClientFactory(workspace=workspace, name="No retainer", created_at=LONG_AGO)

    kind = attention(owner_client, workspace)["quiet"]

    assert [item.title for item in kind.items] == ["Never", "Removed", "Quiet", "Weekly"]  # the quietest first
    details = {item.title: item.detail for item in kind.items}
    assert details["Quiet"] == "No session or message for 30 days"
    assert details["Weekly"] == "No session or message for 8 days (check-ins every 7 days)"
    assert details["Never"] == "No session or message for 286 days"  # counted from when they were added


def test_a_message_counts_on_its_local_date(workspace, owner_client):
    """At 23:30 in New York on 12 February it is already 13 February in UTC."""
    workspace.timezone = "America/New_York"
    workspace.save()
    client = retainer_for(workspace, "Edge", starts_on=date(2026, 1, 1)).client
    Message.objects.create(
        workspace=workspace, client=client, body="Hi", created_at=local(workspace, date(2026, 2, 12), 23, 30)
    )
    # 12 February is 30 days before 14 March: quiet, although in UTC the message is from the 13th.
    assert titles(owner_client, workspace, "quiet") == ["Edge"]


# --- The list as a whole -------------------------------------------------------------------------


def test_each_kind_is_capped_with_its_count(workspace, owner_client):
    for n in range(7):
        set_balance(retainer_for(workspace, f"Over {n}"), available="10", used=str(11 + n))
    Client.objects.update(created_at=NOW)  # new clients: not quiet, only over
    kinds = attention(owner_client, workspace)
    assert kinds["over"].count == 7 and len(kinds["over"].items) == 5 and kinds["over"].more == 2
    assert kinds["over"].items[0].title == "Over 6 · Advisory retainer"  # the most over first
    response = owner_client.get(dashboard_url(workspace))
    assert response.context["attention_total"] == 7
    page = response.content.decode()
    assert "2 more over the allotment" in page and f'href="{dashboard_url(workspace)}?health=over"' in page


def badges(page: str) -> list[str]:
    """The counts at the top of "Needs attention", as they read."""
    cluster = page[page.index('aria-label="How many of each"') :]
    cluster = cluster[: cluster.index("</ul>")]
    return [re.sub(r"<[^>]+>", "", li).strip() for li in cluster.split("<li>")[1:]]


def test_counts_read_in_the_singular_for_one_and_the_plural_for_more(workspace, owner_client):
    """ "1 overdue invoice", not "1 overdue invoices"; the lists under them carry no bullets."""
    client = factories.ClientFactory(workspace=workspace, name="Acme")
    make_invoice(client, due_on=TODAY - timedelta(days=3), number="2026-0007")
    retainer = retainer_for(workspace, "Ending")
    Retainer.objects.filter(pk=retainer.pk).update(term_ends_on=TODAY + timedelta(days=20))
    set_balance(retainer_for(workspace, "Low"), available="10", used="9")
    Client.objects.update(created_at=NOW)
    page = owner_client.get(dashboard_url(workspace)).content.decode()
    assert badges(page) == ["1 low balance", "1 overdue invoice", "1 renewal to propose"]
    assert '<ul class="list-plain">' in page and "<ul>" not in page[page.index('id="attention"') :]

    make_invoice(client, due_on=TODAY - timedelta(days=4), number="2026-0006")
    other = retainer_for(workspace, "Also ending")
    Retainer.objects.filter(pk=other.pk).update(term_ends_on=TODAY + timedelta(days=25))
    set_balance(retainer_for(workspace, "Lower"), available="10", used="9.5")
    Client.objects.update(created_at=NOW)
    page = owner_client.get(dashboard_url(workspace)).content.decode()
    assert badges(page) == ["2 low balances", "2 overdue invoices", "2 renewals to propose"]


def test_nothing_to_do_says_so(workspace, owner_client):
    retainer_for(workspace, "Fine")
    Client.objects.update(created_at=NOW)
    page = owner_client.get(dashboard_url(workspace)).content.decode()
    assert "Nothing needs you right now" in page


def test_htmx_gets_only_the_attention_list(workspace, owner_client):
    set_balance(retainer_for(workspace, "Over"), available="10", used="11")
    response = hx_get(owner_client, workspace, "attention")
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and "<table" not in body
    assert "Over · Advisory retainer" in body and 'id="attention-heading"' in body


def test_recording_a_session_is_reflected_after_the_refresh(workspace, owner_client, alice):
    retainer = retainer_for(workspace, "Nearly")
    delivery.record_delivery(
        retainer=retainer, delivered_on=TODAY, quantity=Decimal("8.5"), description="Sprint", actor=alice
    )
    assert titles(owner_client, workspace, "low") == ["Nearly · Advisory retainer"]
    delivery.record_delivery(
        retainer=retainer, delivered_on=TODAY, quantity=Decimal("2"), description="More", actor=alice
    )
    kinds = {kind.key: kind for kind in hx_get(owner_client, workspace, "attention").context["attention"]}
    assert kinds["low"].count == 0 and [item.title for item in kinds["over"].items] == ["Nearly · Advisory retainer"]
