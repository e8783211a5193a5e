"""Request types and the one way a view reaches a workspace: `@workspace_view`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, cast

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponseBase
from django.utils import timezone
from django_htmx.middleware import HtmxDetails

from retainers import tenancy
from retainers.models import DataVersion, Membership, User, Workspace


class HtmxRequest(HttpRequest):
    htmx: HtmxDetails


class AuthenticatedRequest(HtmxRequest):
    user: User


class WorkspaceRequest(AuthenticatedRequest):
    workspace: Workspace
    membership: Membership
    data_version: int  # the workspace's, read with the membership: what its cached parts are keyed by


type WorkspaceView = Callable[Concatenate[WorkspaceRequest, ...], HttpResponseBase]

LAST_WORKSPACE_SESSION_KEY = "workspace_slug"


def workspace_view(view: WorkspaceView | None = None, *, admin: bool = False):
    """Resolve `<workspace_slug>` for a member of that workspace, or 404.

    Sets `request.workspace` and `request.membership`, and runs the view in the
    workspace's time zone. Anonymous users are sent to sign in; non-members get a 404
    (never a 403, which would reveal that the workspace exists). With `admin=True`,
    plain members get a 403: they know the workspace, they just may not change it.
    """

    def decorate(view: WorkspaceView) -> Callable[..., HttpResponseBase]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, workspace_slug: str, *args: object, **kwargs: object) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = (
                Membership.objects.select_related("workspace", "user")
                .filter(workspace__slug=workspace_slug, user=request.user)
                # The workspace's data version in the same query: a page's cached parts
                # (retainers.pagecache) then need no query of their own to know they are current.
                .annotate(
                    data_version=Coalesce(
                        Subquery(
                            DataVersion.objects.filter(workspace_id=OuterRef("workspace_id")).values("version")[:1]
                        ),
                        0,
                    )
                )
                .first()
            )
            if membership is None:
                raise Http404("No such workspace")
            if admin and not membership.is_admin:
                raise PermissionDenied("Only owners and admins can do this.")
            # From here on the request is a WorkspaceRequest: it carries the attributes that type adds.
            workspace_request = cast(WorkspaceRequest, request)
            workspace_request.workspace, workspace_request.membership = membership.workspace, membership
            workspace_request.data_version = membership.data_version  # annotated above
            if request.session.get(LAST_WORKSPACE_SESSION_KEY) != workspace_slug:  # avoid a session write per request
                request.session[LAST_WORKSPACE_SESSION_KEY] = workspace_slug
            # The second wall: from here on the database shows this workspace's rows only.
            with tenancy.use_workspace(membership.workspace_id), timezone.override(membership.workspace.tzinfo):
                response = view(workspace_request, *args, **kwargs)
            return tenancy.hold_stream(response, membership.workspace_id)

        return wrapper

    return decorate(view) if view is not None else decorate
