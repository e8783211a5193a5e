"""Views of the core: the way in, workspaces and the team."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from retainers import services
from retainers.forms import InvitationSignupForm, InviteForm, RoleForm, WorkspaceForm
from retainers.http import LAST_WORKSPACE_SESSION_KEY, AuthenticatedRequest, WorkspaceRequest, workspace_view
from retainers.models import Invitation, Membership, User


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Send each person where they belong: their workspace, the portal, or sign-in."""
    if not request.user.is_authenticated:
        return redirect("account_login")
    memberships = Membership.objects.filter(user=request.user).select_related("workspace")
    last = request.session.get(LAST_WORKSPACE_SESSION_KEY)
    chosen = next((m for m in memberships if m.workspace.slug == last), None) or memberships.first()
    if chosen:
        return redirect("dashboard", workspace_slug=chosen.workspace.slug)
    if request.user.contacts.filter(portal_access=True).exists():
        return redirect("portal:home")
    return redirect("workspace_create")


@login_required
@require_http_methods(["GET", "POST"])
def workspace_create(request: AuthenticatedRequest) -> HttpResponse:
    is_member = Membership.objects.filter(user=request.user).exists()
    if not is_member and request.user.contacts.filter(portal_access=True).exists():
        return redirect("portal:home")  # a client's contact stays in the portal
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workspace = services.create_workspace(
            owner=request.user,
            name=form.cleaned_data["workspace_name"],
            timezone_name=form.cleaned_data["timezone"],
            currency=form.cleaned_data["currency"],
        )
        messages.success(request, f"{workspace.name} is ready.")
        return redirect("dashboard", workspace_slug=workspace.slug)
    return render(request, "retainers/workspace_create.html", {"form": form})


@require_http_methods(["GET", "POST"])
@workspace_view(admin=True)
def workspace_settings(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    initial = {"workspace_name": workspace.name, "timezone": workspace.timezone, "currency": workspace.currency}
    form = WorkspaceForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.update_workspace(
            workspace=workspace,
            name=form.cleaned_data["workspace_name"],
            timezone_name=form.cleaned_data["timezone"],
            currency=form.cleaned_data["currency"],
            actor=request.user,
        )
        messages.success(request, "Settings saved.")
        return redirect("workspace_settings", workspace_slug=workspace.slug)
    return render(request, "retainers/workspace_settings.html", {"form": form})


@require_http_methods(["GET", "POST"])
@workspace_view
def team(request: WorkspaceRequest) -> HttpResponse:
    """The members and open invitations; owners and admins invite from here."""
    roles = services.assignable_roles(request.membership)
    form = InviteForm(request.POST or None, roles=roles)
    if request.method == "POST":
        if not roles:
            messages.error(request, "Only owners and admins can invite people.")
            return redirect("team", workspace_slug=request.workspace.slug)
        if form.is_valid():
            try:
                services.invite_member(
                    actor=request.membership, email=form.cleaned_data["email"], role=form.cleaned_data["role"]
                )
            except services.TeamError as exc:
                form.add_error("email", str(exc))
            else:
                messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
                return redirect("team", workspace_slug=request.workspace.slug)
    members = (
        Membership.objects.for_workspace(request.workspace).select_related("user").order_by("user__name", "user__email")
    )
    invitations = Invitation.objects.for_workspace(request.workspace).pending().order_by("-created_at")
    context = {"form": form, "members": members, "invitations": invitations, "roles": roles, "role_form": RoleForm()}
    return render(request, "retainers/team.html", context)


@require_POST
@workspace_view(admin=True)
def member_role(request: WorkspaceRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership.objects.for_workspace(request.workspace), pk=membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role.")
    else:
        try:
            services.change_role(actor=request.membership, membership=membership, role=form.cleaned_data["role"])
        except services.TeamError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{membership.user} is now {membership.get_role_display().lower()}.")
    return redirect("team", workspace_slug=request.workspace.slug)


@require_POST
@workspace_view
def member_remove(request: WorkspaceRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(
        Membership.objects.for_workspace(request.workspace).select_related("user"), pk=membership_id
    )
    leaving = membership.pk == request.membership.pk  # before the delete, which clears the pk
    try:
        services.remove_member(actor=request.membership, membership=membership)
    except services.TeamError as exc:
        messages.error(request, str(exc))
        return redirect("team", workspace_slug=request.workspace.slug)
    if leaving:
        messages.success(request, f"You left {request.workspace.name}.")
        request.session.pop(LAST_WORKSPACE_SESSION_KEY, None)
        return redirect("home")
    messages.success(request, f"{membership.user} was removed.")
    return redirect("team", workspace_slug=request.workspace.slug)


@require_POST
@workspace_view(admin=True)
def invitation_revoke(request: WorkspaceRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation.objects.for_workspace(request.workspace), pk=invitation_id)
    services.revoke_invitation(actor=request.membership, invitation=invitation)
    messages.success(request, f"The invitation to {invitation.email} was revoked.")
    return redirect("team", workspace_slug=request.workspace.slug)


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The link in an invitation email: join with your account, or create one right here."""
    invitation = services.find_invitation(token)
    if invitation is None or not invitation.is_open(now=timezone.now()):
        status = "invalid" if invitation is None else ("used" if invitation.accepted_at else "expired")
        return render(request, "retainers/invitation_unusable.html", {"status": status}, status=410)
    has_account = User.objects.filter(email__iexact=invitation.email).exists()
    form = None
    if not request.user.is_authenticated and not has_account:
        form = InvitationSignupForm(request.POST or None, email=invitation.email)
    context: dict[str, object] = {"invitation": invitation, "form": form, "has_account": has_account}
    if request.method == "POST":
        try:
            if request.user.is_authenticated:
                membership = services.accept_invitation(invitation=invitation, user=request.user)
            elif form is not None and form.is_valid():
                membership = services.accept_invitation_as_new_user(
                    invitation=invitation, name=form.cleaned_data["name"], password=form.cleaned_data["password1"]
                )
                login(request, membership.user, backend="allauth.account.auth_backends.AuthenticationBackend")
            else:
                return render(request, "retainers/invitation_accept.html", context)
        except services.TeamError as exc:
            context["error"] = str(exc)
        else:
            messages.success(request, f"Welcome to {membership.workspace.name}.")
            return redirect("dashboard", workspace_slug=membership.workspace.slug)
    return render(request, "retainers/invitation_accept.html", context)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers: the database and Redis both answer."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # report, don't crash: this endpoint exists to say what is down
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        cache.set("healthz", "ok", 10)
        checks["redis"] = "ok" if cache.get("healthz") == "ok" else "error: read back failed"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)
