"""Clients' read-models for pages other apps compose: the client page's contacts card."""

from __future__ import annotations

from django.db.models.functions import Lower

from clients.forms import ContactForm
from clients.models import Client, Contact
from retainers.http import WorkspaceRequest


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
