"""Search (issue 17, item 6): one box finds the workspace's clients, contacts, invoices by number,
retainers, notes and messages, ranked, scoped to the workspace, in a fixed number of queries."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import Invoice
from communication.models import Message, Note
from tests import factories
from tests.retainers.test_accounts import parse
from tests.retainers.test_security import csp_problems

pytestmark = pytest.mark.django_db


def search(http, workspace, q: str, **headers):
    return http.get(reverse("search", args=[workspace.slug]), {"q": q}, **headers)


def results(response) -> dict[str, list[tuple[str, str]]]:
    """{kind heading id: [(title, href), …]} as the page shows them, in order."""
    found: dict[str, list[tuple[str, str]]] = {}
    for section in parse(response.content).iter():
        if section.tag != "section" or "card" not in section.classes:
            continue
        kind = section.attrs["aria-labelledby"].removeprefix("results-")
        found[kind] = [
            (a.text(), a.attrs["href"]) for li in section.iter() if li.tag == "li" for a in li.iter() if a.tag == "a"
        ]
    return found


def titles(response, kind: str) -> list[str]:
    return [title for title, _ in results(response).get(kind, [])]


def invoice(workspace, client, number: str, issued_on: date = date(2026, 3, 1)) -> Invoice:
    return Invoice.objects.create(
        workspace=workspace,
        client=client,
        number=number,
        status=Invoice.Status.OPEN,
        currency=workspace.currency,
        issued_on=issued_on,
        due_on=date(2026, 3, 15),
    )


def note(client, body: str, visibility: str = Note.Visibility.PRIVATE) -> Note:
    return Note.objects.create(workspace=client.workspace, client=client, body=body, visibility=visibility)


def message(client, body: str) -> Message:
    return Message.objects.create(workspace=client.workspace, client=client, body=body)


@pytest.fixture
def book(workspace):
    acme = factories.ClientFactory(workspace=workspace, name="Acme Widgets", billing_email="ap@acme.example")
    carol = factories.ContactFactory(
        client=acme, name="Carol Danvers", email="carol@acme.example", role="Finance director"
    )
    retainer = factories.make_retainer(client=acme, name="Growth advisory")
    bill = invoice(workspace, acme, "2026-0042")
    plan_note = note(acme, "Quarterly **roadmap** review with the board; they want a hiring plan.")
    moved = message(acme, "Can we move the roadmap call to Thursday?")
    return {"acme": acme, "carol": carol, "retainer": retainer, "invoice": bill, "note": plan_note, "message": moved}


def test_each_kind_is_found_and_links_to_its_page(workspace, owner_client, book):
    slug = workspace.slug
    acme = book["acme"]
    found = results(search(owner_client, workspace, "acme"))
    assert found["clients"] == [("Acme Widgets", f"/w/{slug}/clients/{acme.pk}/")]
    assert found["contacts"] == [
        ("Carol Danvers", f"/w/{slug}/clients/{acme.pk}/communication/#contacts")
    ]  # by her address

    found = results(search(owner_client, workspace, "2026-0042"))
    assert found == {"invoices": [("Invoice 2026-0042", f"/w/{slug}/invoices/{book['invoice'].pk}/")]}
    assert titles(search(owner_client, workspace, "42"), "invoices") == ["Invoice 2026-0042"]  # the serial alone

    found = results(search(owner_client, workspace, "growth"))
    assert found == {"retainers": [("Growth advisory", f"/w/{slug}/retainers/{book['retainer'].pk}/")]}

    found = results(search(owner_client, workspace, "roadmap"))
    assert set(found) == {"notes", "messages"}
    [(_, note_url)] = found["notes"]
    assert note_url == f"/w/{slug}/clients/{acme.pk}/notes/#note-{book['note'].pk}"
    [(_, message_url)] = found["messages"]
    assert message_url == f"/w/{slug}/clients/{acme.pk}/messages/#message-{book['message'].pk}"

    assert titles(search(owner_client, workspace, "finance"), "contacts") == ["Carol Danvers"]  # by her role
    for url in (note_url, message_url, f"/w/{slug}/retainers/{book['retainer'].pk}/"):
        assert owner_client.get(url.partition("#")[0]).status_code == 200


def test_every_word_is_a_prefix_and_all_must_match(workspace, owner_client, book):
    assert titles(search(owner_client, workspace, "acm wid"), "clients") == ["Acme Widgets"]
    assert titles(search(owner_client, workspace, "ACME"), "clients") == ["Acme Widgets"]
    assert "clients" not in results(search(owner_client, workspace, "acme gadgets"))
    page = search(owner_client, workspace, "hiring roadmap")
    assert len(results(page)["notes"]) == 1 and "messages" not in results(page)
    assert "roadmap" in parse(page.content).text()  # the note's line of context is shown


def test_names_rank_above_addresses_and_more_mentions_above_fewer(workspace, owner_client):
    factories.ClientFactory(workspace=workspace, name="Blue Harbor", billing_email="finance@zenith.example")
    factories.ClientFactory(workspace=workspace, name="Zenith Labs")
    assert titles(search(owner_client, workspace, "zenith"), "clients") == ["Zenith Labs", "Blue Harbor"]

    acme = factories.ClientFactory(workspace=workspace, name="Acme")
    note(acme, "Budget call. Then lunch.")
    note(acme, "Budget review; the budget is tight and the budget owner is away.")
    note(acme, "Nothing about money.")
    page = search(owner_client, workspace, "budget")
    [first, second] = [node.text() for node in parse(page.content).iter() if node.tag == "p" and node.text()][-2:]
    assert "budget owner" in first and "Then lunch" in second


def test_invoice_numbers_match_exactly_first_then_by_prefix(workspace, owner_client):
    acme = factories.ClientFactory(workspace=workspace, name="Acme")
    for number in ("2026-0001", "2026-0010", "2026-0100", "2025-0010"):
        invoice(workspace, acme, number)
    assert titles(search(owner_client, workspace, "2026-001"), "invoices") == ["Invoice 2026-0010"]
    assert titles(search(owner_client, workspace, "10"), "invoices") == ["Invoice 2026-0010", "Invoice 2025-0010"]
    assert titles(search(owner_client, workspace, "2026-00"), "invoices") == ["Invoice 2026-0010", "Invoice 2026-0001"]
    Invoice.objects.create(workspace=workspace, client=acme, currency="GBP")  # a draft has no number
    assert titles(search(owner_client, workspace, "2026"), "invoices") == [
        "Invoice 2026-0100",
        "Invoice 2026-0010",
        "Invoice 2026-0001",
    ]


def test_another_workspaces_rows_never_appear(workspace, owner_client, book, other_workspace):
    theirs = factories.ClientFactory(workspace=other_workspace, name="Acme Rival", billing_email="x@acme.example")
    factories.ContactFactory(client=theirs, name="Acme Person", email="p@acme.example")
    factories.make_retainer(client=theirs, name="Acme roadmap retainer")
    invoice(other_workspace, theirs, "2026-0043")
    note(theirs, "acme roadmap secrets")
    message(theirs, "acme roadmap hello")
    for q in ("acme", "roadmap", "2026-004", "43"):
        page = search(owner_client, workspace, q)
        text = parse(page.content).text()
        assert "Rival" not in text and "Acme Person" not in text and "secrets" not in text, q
        assert "hello" not in text and "2026-0043" not in text and "Acme roadmap retainer" not in text, q


def test_another_workspaces_search_page_is_404(workspace, outsider_client):
    assert search(outsider_client, workspace, "acme").status_code == 404


def test_members_find_private_and_shared_notes_as_on_the_client_page(workspace, member_client, book):
    note(book["acme"], "Shared roadmap summary", visibility=Note.Visibility.SHARED)
    page = search(member_client, workspace, "roadmap")
    assert len(results(page)["notes"]) == 2
    assert "(private (team only))" in parse(page.content).text()


def test_the_same_queries_for_a_few_rows_or_many(workspace, owner_client):
    def fill(prefix: str, n: int) -> None:
        for i in range(n):
            client = factories.ClientFactory(workspace=workspace, name=f"Omega {prefix} {i}")
            factories.ContactFactory(client=client, name=f"Omega person {prefix}{i}")
            factories.make_retainer(client=client, name=f"Omega retainer {i}")
            invoice(workspace, client, f"2026-{prefix}{i:03d}")
            note(client, f"omega note {i}")
            message(client, f"omega message {i}")

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert search(owner_client, workspace, "omega").status_code == 200
            assert search(owner_client, workspace, "2026").status_code == 200
        return len(queries)

    fill("1", 2)
    search(owner_client, workspace, "warm up")  # the first visit of a session records it as the last workspace
    few = count()
    fill("2", 14)
    page = search(owner_client, workspace, "omega")
    assert len(results(page)["clients"]) == 10 and "The best 10 of 16" in parse(page.content).text()
    assert count() == few


@pytest.mark.parametrize(
    "q", ["", "   ", "!!!", "a & | !(", "'; drop table x; --", "\x00", "é" * 500, "2026-0042:*", "<script>"]
)
def test_odd_queries_get_a_friendly_page(workspace, owner_client, book, q):
    page = search(owner_client, workspace, q)
    assert page.status_code == 200
    assert csp_problems(page) == []
    text = parse(page.content).text()
    assert "Search" in text
    assert "<script>" not in page.content.decode().replace("&lt;script&gt;", "")


def test_nothing_found_says_so(workspace, owner_client, book):
    page = search(owner_client, workspace, "zeppelin")
    assert "Nothing in Northwind Advisory matches “zeppelin”." in parse(page.content).text()
    page = search(owner_client, workspace, "!!!")
    assert "has no letters or digits to look for" in parse(page.content).text()


def test_results_page_obeys_the_csp_and_htmx_gets_the_results_only(workspace, owner_client, book):
    page = search(owner_client, workspace, "acme")
    assert csp_problems(page) == []
    fragment = search(owner_client, workspace, "acme", HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert "<html" not in html and "<script" not in html and "style=" not in html
    assert "Acme Widgets" in html


def test_the_top_bar_has_the_search_box_on_workspace_pages(workspace, owner_client):
    page = owner_client.get(reverse("dashboard", args=[workspace.slug]))
    [form] = [node for node in parse(page.content).iter() if node.tag == "form" and "topbar-search" in node.classes]
    assert form.attrs["action"] == f"/w/{workspace.slug}/search/" and form.attrs["method"] == "get"
    assert form.attrs["role"] == "search"
    assert any(node.tag == "input" and node.attrs.get("name") == "q" for node in form.iter())
    page = search(owner_client, workspace, "acme")
    box = next(node for node in parse(page.content).iter() if node.attrs.get("id") == "topbar-q")
    assert box.attrs["value"] == "acme"


def test_notes_are_ranked_among_the_newest_matches_and_the_total_says_so(workspace, owner_client, monkeypatch):
    monkeypatch.setattr("retainers.search.RECENT", 3)
    acme = factories.ClientFactory(workspace=workspace, name="Acme")
    oldest = note(acme, "Budget budget budget budget: the oldest and most about it.")
    Note.objects.filter(pk=oldest.pk).update(created_at=oldest.created_at.replace(year=2020))
    for i in range(3):
        note(acme, f"Budget line {i}.")
    page = search(owner_client, workspace, "budget")
    text = parse(page.content).text()
    assert "Notes 3+" in text and "The best 3 of the newest 3" in text
    assert "the oldest and most about it" not in text


def test_an_edited_note_is_found_by_its_new_words_only(workspace, owner_client):
    acme = factories.ClientFactory(workspace=workspace, name="Acme")
    edited = note(acme, "Draft agenda for the offsite")
    edited.body = "Final programme for the retreat"
    edited.save()
    Note.objects.filter(pk=edited.pk).update(body="Final programme for the retreat, with dinner")  # any writer
    assert "notes" not in results(search(owner_client, workspace, "offsite"))
    assert len(results(search(owner_client, workspace, "retreat dinner"))["notes"]) == 1
