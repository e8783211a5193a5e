"""Clients' read-models for pages other apps compose: the client page's contacts card, the client's currency."""

from __future__ import annotations

from django.db.models.functions import Lower

from clients.forms import ContactForm
from clients.models import CLIENT_SEARCH, CONTACT_SEARCH, RETAINER_SEARCH, Client, Contact, Retainer
from retainers.http import WorkspaceRequest
from retainers.models import Workspace
from retainers.search import NOTHING, Found, prefix_query, ranked


def contacts_section(
    request: WorkspaceRequest, client: Client, *, form: ContactForm | None = None, notice: str = ""
) -> dict[str, object]:
    """The client page's contacts card: the client's contacts and the form to add one. One query."""
    contacts = Contact.objects.for_workspace(request.workspace).filter(client=client).order_by(Lower("name"), "pk")
    return {
        "client": client,
        "contacts": list(contacts),
        "contact_form": form or ContactForm(workspace=request.workspace, prefix="contact"),
        "notice": notice,
    }


def client_currency(client: Client) -> str:
    """The currency a client is billed in: its latest live retainer's, else its latest retainer's,
    else the workspace's. Invoices made by hand use it, so a EUR client is not invoiced in GBP."""
    retainers = Retainer.objects.for_workspace(client.workspace_id).filter(client=client)
    latest = retainers.live().order_by("-starts_on", "-pk").values_list("currency", flat=True).first()
    latest = latest or retainers.order_by("-starts_on", "-pk").values_list("currency", flat=True).first()
    return latest or client.workspace.currency


def search_clients(workspace: Workspace, text: str, *, limit: int) -> Found[Client]:
    """The workspace's clients whose name or billing address matches, best first."""
    query = prefix_query(text)
    if query is None:
        return NOTHING
    return ranked(Client.objects.for_workspace(workspace), CLIENT_SEARCH, query, limit=limit, then="name")


def search_contacts(workspace: Workspace, text: str, *, limit: int) -> Found[Contact]:
    """The workspace's contacts whose name, address or role matches, best first, with their client."""
    query = prefix_query(text)
    if query is None:
        return NOTHING
    contacts = Contact.objects.for_workspace(workspace).select_related("client")
    return ranked(contacts, CONTACT_SEARCH, query, limit=limit, then="name")


def search_retainers(workspace: Workspace, text: str, *, limit: int) -> Found[Retainer]:
    """The workspace's retainers whose name matches, best first, with their client."""
    query = prefix_query(text)
    if query is None:
        return NOTHING
    retainers = Retainer.objects.for_workspace(workspace).select_related("client")
    return ranked(retainers, RETAINER_SEARCH, query, limit=limit, then="name")
