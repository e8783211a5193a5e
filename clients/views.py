"""Views of the clients app: the client list, contacts, the CSV import and plans. (The client page
is composed by dashboard.clients.)"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, TypedDict

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Case, Count, Exists, F, Max, Min, OuterRef, Prefetch, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce, Lower
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from clients import csv_import, services
from clients.forms import (
    ClientFilterForm,
    ClientForm,
    ContactForm,
    ImportUploadForm,
    PlanForm,
)
from clients.models import Client, Contact, Health, Plan, Retainer
from clients.selectors import contacts_section
from clients.terms import describe_terms
from retainers.http import WorkspaceRequest, workspace_view
from retainers.models import Workspace
from retainers.units import format_units

if TYPE_CHECKING:
    from django.db.models.expressions import Combinable
    from django_stubs_ext import WithAnnotations

PER_PAGE = 25
LIVE = [Retainer.Status.ACTIVE, Retainer.Status.PAUSED]


def _posted(request: WorkspaceRequest) -> QueryDict | None:
    """A form's data: bound on any POST, even an empty one (which `request.POST or None` leaves unbound)."""
    return request.POST if request.method == "POST" else None


# --- The client list ------------------------------------------------------------------------


class ClientHealth(TypedDict):
    health: str
    utilization: Decimal | None
    remaining: Decimal | None
    contact_count: int


def clients_with_health(workspace: Workspace) -> QuerySet[WithAnnotations[Client, ClientHealth]]:
    """The workspace's clients with their live retainers' health, utilisation and remaining units.

    All in SQL (correlated subqueries over the retainers' cached balances), so listing, filtering
    and sorting take the same number of queries for 10 clients or 500. With several live
    retainers the worst one speaks for the client: any over → over, any low → low.
    """
    live = Retainer.objects.for_workspace(workspace).filter(client=OuterRef("pk"), status__in=LIVE)

    def per_client(aggregate) -> Subquery:
        return Subquery(live.order_by().values("client").annotate(value=aggregate).values("value")[:1])

    contacts = Contact.objects.for_workspace(workspace).filter(client=OuterRef("pk"))
    return Client.objects.for_workspace(workspace).annotate(
        health=Case(
            When(Exists(live.over()), then=Value(Health.OVER.value)),
            When(Exists(live.low()), then=Value(Health.LOW.value)),
            When(Exists(live), then=Value(Health.HEALTHY.value)),
            default=Value("none"),
        ),
        utilization=per_client(Max(F("period_used") / F("period_available"), filter=Q(period_available__gt=0))),
        remaining=per_client(Min("balance")),
        contact_count=Coalesce(
            Subquery(contacts.order_by().values("client").annotate(n=Count("pk")).values("n")[:1]), 0
        ),
    )


SORTS: dict[str, tuple[str | Combinable, ...]] = {
    "name": (Lower("name").asc(), "pk"),
    "-name": (Lower("name").desc(), "-pk"),
    "created": ("created_at", "pk"),
    "-created": ("-created_at", "-pk"),
    # Clients without a live retainer have no utilization or balance: last, whichever the direction.
    "utilization": (F("utilization").asc(nulls_last=True), Lower("name"), "pk"),
    "-utilization": (F("utilization").desc(nulls_last=True), Lower("name"), "pk"),
    "remaining": (F("remaining").asc(nulls_last=True), Lower("name"), "pk"),
    "-remaining": (F("remaining").desc(nulls_last=True), Lower("name"), "pk"),
}


@dataclass(frozen=True)
class RetainerSummary:
    """What one row of the list says about one live retainer."""

    retainer: Retainer
    state: str  # over, low, healthy, or "" for deliverables retainers (no units to count)
    text: str  # "6.50 of 10 hours left"
    bar: int | None  # share used, in steps of 5 for the .w-NN classes
    percent: int | None


def summarize(retainer: Retainer) -> RetainerSummary:
    if retainer.model == Retainer.Model.DELIVERABLES:
        return RetainerSummary(retainer, "", "Deliverables", None, None)
    unit = retainer.get_unit_display().lower()
    available, balance = retainer.period_available, retainer.balance
    if balance < 0:
        over = unit.removesuffix("s") if balance == -1 else unit
        text = f"{format_units(-balance)} {over} over (of {format_units(available)})"
    else:
        text = f"{format_units(balance)} of {format_units(available)} {unit} left"
    state = retainer.health_state
    used = retainer.utilisation or Decimal(0)
    percent = retainer.utilisation_percent or 0
    bar = min(100, int((used * 20).to_integral_value(ROUND_HALF_UP)) * 5)
    return RetainerSummary(retainer, state, text, bar, percent)


@require_GET
@workspace_view
def client_list(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    filters = ClientFilterForm(request.GET)
    chosen = filters.values()
    clients = clients_with_health(workspace)
    if chosen["status"] != "all":
        clients = clients.filter(status=chosen["status"])
    if query := chosen["q"]:
        people = Contact.objects.for_workspace(workspace).filter(
            Q(name__icontains=query) | Q(email__icontains=query), client=OuterRef("pk")
        )
        clients = clients.filter(Q(name__icontains=query) | Q(billing_email__icontains=query) | Exists(people))
    if chosen["health"]:
        clients = clients.filter(health=chosen["health"])
    live_retainers = Retainer.objects.for_workspace(workspace).filter(status__in=LIVE).order_by("name", "pk")
    clients = clients.order_by(*SORTS[chosen["sort"]]).prefetch_related(
        Prefetch("retainers", queryset=live_retainers, to_attr="live_retainers")
    )
    page = Paginator(clients, PER_PAGE).get_page(request.GET.get("page"))
    rows = [(client, [summarize(r) for r in client.live_retainers]) for client in page]  # type: ignore[attr-defined]  # django-stubs: a Page's items lose the queryset's annotations
    filtered = any(chosen[name] != default for name, default in ClientFilterForm.DEFAULTS.items() if name != "sort")
    context = {
        "filters": filters,
        "chosen": chosen,
        "page_obj": page,
        "rows": rows,
        "filtered": filtered,
        # Only asked when nothing matched, to tell "no clients yet" from "no match".
        "has_clients": bool(rows) or Client.objects.for_workspace(workspace).exists(),
    }
    template = "clients/client_list.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#rows"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])  # the same URL answers with a page or a fragment
    return response


# --- One client ----------------------------------------------------------------------------


def _client(request: WorkspaceRequest, client_id: int) -> Client:
    return get_object_or_404(Client.objects.for_workspace(request.workspace), pk=client_id)


def _contact(request: WorkspaceRequest, contact_id: int) -> Contact:
    return get_object_or_404(Contact.objects.for_workspace(request.workspace).select_related("client"), pk=contact_id)


@require_http_methods(["GET", "POST"])
@workspace_view
def client_create(request: WorkspaceRequest) -> HttpResponse:
    form = ClientForm(_posted(request), workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        try:
            client = services.create_client(workspace=request.workspace, **form.cleaned_data)
        except services.ClientError as exc:
            form.add_error(exc.field, str(exc))
        else:
            messages.success(request, f"{client.name} was added.")
            return redirect("dashboard:client_detail", workspace_slug=request.workspace.slug, client_id=client.pk)
    return render(request, "clients/client_form.html", {"form": form, "client": None})


@require_http_methods(["GET", "POST"])
@workspace_view
def client_edit(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    client = _client(request, client_id)
    form = ClientForm(_posted(request), workspace=request.workspace, client=client)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_client(client=client, **form.cleaned_data)
        except services.ClientError as exc:
            form.add_error(exc.field, str(exc))
        else:
            messages.success(request, "Saved.")
            return redirect("dashboard:client_detail", workspace_slug=request.workspace.slug, client_id=client.pk)
    return render(request, "clients/client_form.html", {"form": form, "client": client})


@require_POST
@workspace_view
def client_archive(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    client = _client(request, client_id)
    try:
        services.archive_client(client=client)
    except services.ClientError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{client.name} was archived. Their contacts can no longer sign in to the portal.")
    return redirect("dashboard:client_detail", workspace_slug=request.workspace.slug, client_id=client.pk)


@require_POST
@workspace_view
def client_unarchive(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    client = _client(request, client_id)
    services.unarchive_client(client=client)
    messages.success(request, f"{client.name} is active again.")
    return redirect("dashboard:client_detail", workspace_slug=request.workspace.slug, client_id=client.pk)


# --- Contacts ---------------------------------------------------------------------------------
# The contacts card of the client page is a partial: htmx posts re-render it in place (with a
# notice inside it), plain posts redirect back to the page with a flash message.


def _contacts_done(request: WorkspaceRequest, client: Client, notice: str, *, error: bool = False) -> HttpResponse:
    if request.htmx:
        context = contacts_section(request, client, notice=notice)
        context["notice_error"] = error
        return render(request, "clients/_contacts.html#contacts", context)
    (messages.error if error else messages.success)(request, notice)
    # The contacts card is on the client page's Communication tab.
    return redirect("dashboard:client_communication", workspace_slug=request.workspace.slug, client_id=client.pk)


@require_http_methods(["GET", "POST"])
@workspace_view
def contact_create(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    client = _client(request, client_id)
    form = ContactForm(_posted(request), workspace=request.workspace, prefix="contact")
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        portal = data["portal_access"] and client.status == Client.Status.ACTIVE
        try:
            contact = services.add_contact(
                client=client, name=data["name"], email=data["email"], role=data["role"], portal_access=portal
            )
        except services.ClientError as exc:
            form.add_error(exc.field, str(exc))
        else:
            notice = f"{contact.name} was added."
            if portal:
                notice += f" Portal access is on: an invitation to sign in was emailed to {contact.email}."
            elif data["portal_access"]:
                notice += " Portal access stays off while the client is archived."
            return _contacts_done(request, client, notice)
    if request.htmx:
        return render(request, "clients/_contacts.html#contacts", contacts_section(request, client, form=form))
    return render(request, "clients/contact_form.html", {"form": form, "client": client, "contact": None})


@require_http_methods(["GET", "POST"])
@workspace_view
def contact_edit(request: WorkspaceRequest, contact_id: int) -> HttpResponse:
    contact = _contact(request, contact_id)
    form = ContactForm(_posted(request), workspace=request.workspace, contact=contact)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_contact(contact=contact, **form.cleaned_data)
        except services.ClientError as exc:
            form.add_error(exc.field, str(exc))
        else:
            messages.success(request, f"{contact.name} was saved.")
            return redirect(
                "dashboard:client_communication", workspace_slug=request.workspace.slug, client_id=contact.client_id
            )
    return render(request, "clients/contact_form.html", {"form": form, "client": contact.client, "contact": contact})


@require_POST
@workspace_view
def contact_remove(request: WorkspaceRequest, contact_id: int) -> HttpResponse:
    contact = _contact(request, contact_id)
    try:
        services.remove_contact(contact=contact)
    except services.ClientError as exc:
        return _contacts_done(request, contact.client, str(exc), error=True)
    return _contacts_done(request, contact.client, f"{contact.name} was removed.")


@require_POST
@workspace_view
def contact_portal(request: WorkspaceRequest, contact_id: int) -> HttpResponse:
    """Turn a contact's portal access on (which emails the invitation, once) or off."""
    contact = _contact(request, contact_id)
    enable = request.POST.get("enabled") == "1"
    if enable and contact.client.status != Client.Status.ACTIVE:
        return _contacts_done(
            request, contact.client, "The client is archived: unarchive it to give portal access.", error=True
        )
    invited_before = contact.portal_invited_at
    contact = services.set_portal_access(contact=contact, enabled=enable)
    if not enable:
        notice = f"Portal access is off for {contact.name}."
    elif contact.portal_invited_at != invited_before:
        notice = f"Portal access is on for {contact.name}: an invitation to sign in was emailed to {contact.email}."
    else:
        notice = f"Portal access was already on for {contact.name}."
    return _contacts_done(request, contact.client, notice)


# --- CSV import ---------------------------------------------------------------------------
# Step 1 uploads (POST, then redirect), step 2 previews (GET), step 3 confirms (POST). The
# file's text waits in the session (in PostgreSQL, so any web process can serve any step)
# under a random token that the preview page posts back: a confirm from a stale tab, after
# another upload replaced the file, is refused instead of importing the other file.

IMPORT_SESSION_KEY = "clients_import"


def _pending_import(request: WorkspaceRequest) -> dict[str, Any] | None:
    pending = request.session.get(IMPORT_SESSION_KEY)
    if not pending or pending.get("workspace_id") != request.workspace.pk:
        return None
    return pending


@require_http_methods(["GET", "POST"])
@workspace_view
def client_import(request: WorkspaceRequest) -> HttpResponse:
    form = ImportUploadForm(_posted(request), request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            text = csv_import.read_upload(upload)
            csv_import.parse(text)  # a file that cannot be read at all is an error on the upload field
        except csv_import.CsvFileError as exc:
            form.add_error("file", str(exc))
        else:
            request.session[IMPORT_SESSION_KEY] = {
                "token": secrets.token_urlsafe(16),
                "workspace_id": request.workspace.pk,
                "filename": upload.name[:200],
                "text": text,
            }
            return redirect("clients:client_import_preview", workspace_slug=request.workspace.slug)
    return render(request, "clients/client_import.html", {"form": form})


def _render_preview(request: WorkspaceRequest, pending: dict[str, object], rows: list[csv_import.ImportRow]):
    valid = sum(row.ok for row in rows)
    context = {"pending": pending, "rows": rows, "valid_count": valid, "error_count": len(rows) - valid}
    return render(request, "clients/client_import_preview.html", context)


@require_GET
@workspace_view
def client_import_preview(request: WorkspaceRequest) -> HttpResponse:
    pending = _pending_import(request)
    if pending is None:
        messages.info(request, "Upload a CSV file to import clients.")
        return redirect("clients:client_import", workspace_slug=request.workspace.slug)
    try:
        rows = csv_import.preview(pending["text"], workspace=request.workspace)
    except csv_import.CsvFileError as exc:
        messages.error(request, str(exc))
        return redirect("clients:client_import", workspace_slug=request.workspace.slug)
    return _render_preview(request, pending, rows)


@require_POST
@workspace_view
def client_import_confirm(request: WorkspaceRequest) -> HttpResponse:
    pending = _pending_import(request)
    if pending is None or request.POST.get("token") != pending["token"]:
        messages.error(request, "That preview is out of date (another file was uploaded since). Check this one.")
        if pending is None:
            return redirect("clients:client_import", workspace_slug=request.workspace.slug)
        return redirect("clients:client_import_preview", workspace_slug=request.workspace.slug)
    skip_invalid = request.POST.get("rows") == "valid"
    try:
        result = services.import_clients(workspace=request.workspace, text=pending["text"], skip_invalid=skip_invalid)
    except services.ImportRefused as exc:
        messages.error(request, f"The file changed meaning since the preview: {exc} Check the rows below.")
        return _render_preview(request, pending, exc.rows)
    except (services.ClientError, csv_import.CsvFileError) as exc:
        messages.error(request, str(exc))
        return redirect("clients:client_import_preview", workspace_slug=request.workspace.slug)
    del request.session[IMPORT_SESSION_KEY]
    summary = f"Imported {result.clients} client{pluralize(result.clients)}"
    summary += f" and {result.contacts} contact{pluralize(result.contacts)}."
    if result.skipped:
        summary += f" {result.skipped} row{pluralize(result.skipped)} with errors left out."
    messages.success(request, summary)
    return redirect("clients:client_list", workspace_slug=request.workspace.slug)


# --- Plans --------------------------------------------------------------------------------------


@require_GET
@workspace_view
def plan_list(request: WorkspaceRequest) -> HttpResponse:
    archived = request.GET.get("show") == "archived"
    plans = (
        Plan.objects.for_workspace(request.workspace)
        .filter(archived=archived)
        .annotate(live_retainers=Count("retainers", filter=Q(retainers__status__in=LIVE)))
        .order_by(Lower("name"), "pk")
    )
    locale = getattr(request.workspace, "locale", None) or "en_US"
    rows = [(plan, describe_terms(plan, locale=locale)) for plan in plans]
    return render(request, "clients/plan_list.html", {"rows": rows, "archived": archived})


def _plan_form_page(request: WorkspaceRequest, plan: Plan | None) -> HttpResponse:
    """Create or edit. A post with `refresh` (the model was switched) re-renders without saving."""
    workspace = request.workspace
    currency = plan.currency if plan else workspace.currency
    refresh = request.method == "POST" and "refresh" in request.POST
    if refresh:
        form = PlanForm(workspace=workspace, currency=currency, plan=plan, initial=request.POST.dict())
    else:
        form = PlanForm(_posted(request), workspace=workspace, currency=currency, plan=plan)
    if request.method == "POST" and not refresh and form.is_valid():
        data = form.cleaned_data
        try:
            if plan is None:
                plan = services.create_plan(
                    workspace=workspace, name=data["name"], description=data["description"], terms=form.terms()
                )
            else:
                services.update_plan(plan=plan, name=data["name"], description=data["description"], terms=form.terms())
        except services.ClientError as exc:
            form.add_error(exc.field, str(exc))
        else:
            messages.success(request, f"Plan “{plan.name}” was saved.")
            url = reverse("clients:plan_list", kwargs={"workspace_slug": workspace.slug})
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    template = "clients/plan_form.html"
    if refresh and request.htmx:
        template += "#model-fields"
    return render(request, template, {"form": form, "plan": plan})


@require_http_methods(["GET", "POST"])
@workspace_view
def plan_create(request: WorkspaceRequest) -> HttpResponse:
    return _plan_form_page(request, None)


@require_http_methods(["GET", "POST"])
@workspace_view
def plan_edit(request: WorkspaceRequest, plan_id: int) -> HttpResponse:
    plan = get_object_or_404(Plan.objects.for_workspace(request.workspace), pk=plan_id)
    return _plan_form_page(request, plan)


@require_POST
@workspace_view
def plan_archive(request: WorkspaceRequest, plan_id: int) -> HttpResponse:
    plan = get_object_or_404(Plan.objects.for_workspace(request.workspace), pk=plan_id)
    services.set_plan_archived(plan=plan, archived=True)
    messages.success(request, f"Plan “{plan.name}” was archived. Retainers signed on it keep their terms.")
    return redirect("clients:plan_list", workspace_slug=request.workspace.slug)


@require_POST
@workspace_view
def plan_unarchive(request: WorkspaceRequest, plan_id: int) -> HttpResponse:
    plan = get_object_or_404(Plan.objects.for_workspace(request.workspace), pk=plan_id)
    services.set_plan_archived(plan=plan, archived=False)
    messages.success(request, f"Plan “{plan.name}” is available again.")
    return redirect("clients:plan_list", workspace_slug=request.workspace.slug)
