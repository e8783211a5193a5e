"""The one way a portal view reaches a client's data: `@portal_view`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, cast

from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponseBase
from django.shortcuts import redirect
from django.utils import timezone

from clients.models import Contact
from retainers import tenancy
from retainers.http import AuthenticatedRequest
from retainers.models import DataVersion, User, Workspace


class PortalRequest(AuthenticatedRequest):
    contact: Contact
    workspace: Workspace
    portal_contacts: list[Contact]  # the person's contacts in every workspace, this one included
    data_version: int  # the workspace's, read with the contacts: what its cached parts are keyed by


type PortalView = Callable[Concatenate[PortalRequest, ...], HttpResponseBase]


def portal_contacts(user: User) -> list[Contact]:
    """The contact records a signed-in person may use the portal as, one per workspace: read across
    workspaces (the person's own rows only), before the portal knows which workspace to open."""
    with tenancy.cross_tenant("portal: the signed-in person's contact records"):
        return list(
            Contact.objects.filter(user=user, portal_access=True, client__status="active")
            .select_related("workspace", "client")
            # Each workspace's data version (retainers.pagecache) in the same query: a cached page then
            # needs no query of its own to know whether its parts are current.
            .annotate(
                data_version=Coalesce(
                    Subquery(DataVersion.objects.filter(workspace_id=OuterRef("workspace_id")).values("version")[:1]),
                    0,
                )
            )
            .order_by("workspace__name")
        )


def portal_view(view: PortalView) -> Callable[..., HttpResponseBase]:
    """Resolve `<workspace_slug>` to the signed-in person's contact there, or 404.

    Sets `request.contact`, `request.workspace` and `request.portal_contacts`, and runs the view
    in the workspace's time zone. Every query in a portal view is then narrowed to
    `request.contact.client`.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, workspace_slug: str, *args: object, **kwargs: object) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect("portal:login")
        # All of them (a person is a contact in a few workspaces at most): pages that offer to switch
        # workspace need no second query.
        contacts = list(portal_contacts(request.user))
        contact = next((c for c in contacts if c.workspace.slug == workspace_slug), None)
        if contact is None:
            raise Http404("No such portal")
        # From here on the request is a PortalRequest: it carries the attributes that type adds.
        portal_request = cast(PortalRequest, request)
        portal_request.contact, portal_request.workspace = contact, contact.workspace
        portal_request.portal_contacts = contacts
        portal_request.data_version = contact.data_version  # type: ignore[attr-defined]  # annotated above
        # The second wall: from here on the database shows this workspace's rows only.
        with tenancy.use_workspace(contact.workspace_id), timezone.override(contact.workspace.tzinfo):
            response = view(portal_request, *args, **kwargs)
        return tenancy.hold_stream(response, contact.workspace_id)

    return wrapper
