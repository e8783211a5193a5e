"""Search: one box in the top bar finds the workspace's clients, contacts, invoices (by number),
retainers, notes and messages.

Each owning app answers for its own kind (`clients.selectors.search_*`,
`billing.selectors.search_invoices`, `communication.selectors.search_*`: PostgreSQL full-text
search on GIN indexes, or the invoice number's prefix on its index); this page asks each for its
best few and how many matched in all (one query per kind, whatever the data), and links every
result to its own page. Works without JavaScript; the box's htmx request swaps the results only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import dateformat, timezone
from django.views.decorators.http import require_GET

from billing.selectors import search_invoices
from clients.selectors import search_clients, search_contacts, search_retainers
from communication.selectors import search_messages, search_notes
from retainers.http import WorkspaceRequest, workspace_view
from retainers.models import Workspace
from retainers.search import MAX_QUERY_LENGTH, snippet, words

PER_KIND = 10


def _day(value: date | datetime | None) -> str:
    """A date as the rest of the product writes it (6 Dec 2026); an instant in the workspace's zone."""
    if value is None:
        return ""
    return dateformat.format(timezone.localtime(value) if isinstance(value, datetime) else value, "j M Y")


@dataclass(frozen=True)
class Hit:
    """One result as the page shows it: what it is, a line of context, where it lives."""

    title: str
    detail: str
    url: str


@dataclass(frozen=True)
class Hits:
    kind: str
    label: str
    total: int
    items: Sequence[Hit]
    capped: bool = False  # `total` is a floor: only the newest matches were ranked

    @property
    def more(self) -> int:
        return self.total - len(self.items)


def _clients(workspace: Workspace, text: str, query_words: list[str]) -> Hits:
    found = search_clients(workspace, text, limit=PER_KIND)
    items = [
        Hit(
            title=client.name,
            detail=" · ".join(part for part in (client.billing_email, client.get_status_display()) if part),
            url=reverse("dashboard:client_detail", args=[workspace.slug, client.pk]),
        )
        for client in found.rows
    ]
    return Hits("clients", "Clients", found.total, items)


def _contacts(workspace: Workspace, text: str, query_words: list[str]) -> Hits:
    found = search_contacts(workspace, text, limit=PER_KIND)
    items = [
        Hit(
            title=contact.name,
            detail=" · ".join(part for part in (contact.email, contact.role, contact.client.name) if part),
            url=reverse("dashboard:client_communication", args=[workspace.slug, contact.client_id]) + "#contacts",
        )
        for contact in found.rows
    ]
    return Hits("contacts", "Contacts", found.total, items)


def _invoices(workspace: Workspace, text: str, query_words: list[str]) -> Hits:
    found = search_invoices(workspace, text, limit=PER_KIND)
    today = workspace.today()
    items = [
        Hit(
            title=f"Invoice {invoice.number}",
            detail=" · ".join(
                part
                for part in (
                    invoice.client.name,
                    _day(invoice.issued_on),
                    invoice.state(on=today).label,
                )
                if part
            ),
            url=reverse("billing:invoice_detail", args=[workspace.slug, invoice.pk]),
        )
        for invoice in found.rows
    ]
    return Hits("invoices", "Invoices", found.total, items)


def _retainers(workspace: Workspace, text: str, query_words: list[str]) -> Hits:
    found = search_retainers(workspace, text, limit=PER_KIND)
    items = [
        Hit(
            title=retainer.name,
            detail=f"{retainer.client.name} · {retainer.get_status_display()}",
            url=reverse("delivery:retainer_detail", args=[workspace.slug, retainer.pk]),
        )
        for retainer in found.rows
    ]
    return Hits("retainers", "Retainers", found.total, items)


def _notes(workspace: Workspace, text: str, query_words: list[str]) -> Hits:
    found = search_notes(workspace, text, limit=PER_KIND)
    items = [
        Hit(
            title=f"Note on {note.client.name}, {_day(note.created_at)} ({note.get_visibility_display().lower()})",
            detail=snippet(note.body, query_words),
            url=reverse("communication:note_list", args=[workspace.slug, note.client_id]) + f"#note-{note.pk}",
        )
        for note in found.rows
    ]
    return Hits("notes", "Notes", found.total, items, found.capped)


def _messages(workspace: Workspace, text: str, query_words: list[str]) -> Hits:
    found = search_messages(workspace, text, limit=PER_KIND)
    items = [
        Hit(
            title=f"Message {'from' if message.from_client else 'to'} {message.client.name}, "
            f"{_day(message.created_at)}",
            detail=snippet(message.body, query_words),
            url=reverse("communication:message_thread", args=[workspace.slug, message.client_id])
            + f"#message-{message.pk}",
        )
        for message in found.rows
    ]
    return Hits("messages", "Messages", found.total, items, found.capped)


KINDS: Sequence[Callable[[Workspace, str, list[str]], Hits]] = (
    _clients,
    _contacts,
    _invoices,
    _retainers,
    _notes,
    _messages,
)


def search_workspace(workspace: Workspace, text: str) -> list[Hits]:
    """Every kind's best results for `text` (kinds with none left out); one query per kind."""
    query_words = words(text)
    if not query_words:
        return []
    return [hits for kind in KINDS if (hits := kind(workspace, text, query_words)).total]


@require_GET
@workspace_view
def search(request: WorkspaceRequest) -> HttpResponse:
    text = request.GET.get("q", "")[:MAX_QUERY_LENGTH].strip()
    groups = search_workspace(request.workspace, text) if text else []
    context = {"q": text, "search_q": text, "groups": groups, "searched": bool(words(text))}
    template = "dashboard/search.html"
    if request.htmx:
        template += "#results"
    return render(request, template, context)
