"""The consultant's bookings: the bookings page, booking a session on a client's behalf, and settling a
booking (held, no-show, cancelled) from any list that shows one (the dashboard, the client page, the
retainer page, the bookings page).

Settling answers htmx with the booking's row again (and, on the retainer page, its figures and work
list out of band; elsewhere a `work-recorded` event when units were used, which the dashboard
listens to); without JavaScript the form posts and comes back to the page with a message. The
workflows are delivery.booking's, the lists delivery.agenda's.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import retarget, trigger_client_event

from clients.models import Client, Contact, Retainer
from delivery import agenda, booking
from delivery.agenda import int_param, parse_stamp, stamp
from delivery.booking import BookingError
from delivery.models import Booking
from retainers.http import WorkspaceRequest, workspace_view

ROW = "delivery/booking/_bookings.html#booking-row"
PER_PAGE = 50


def shown(request: WorkspaceRequest, lines: list[agenda.Line]) -> list[agenda.Shown]:
    """Lines as the team reads them: in the workspace's zone, as of now."""
    return agenda.show(lines, zone=request.workspace.tzinfo, now=timezone.now())


def _safe_next(request: WorkspaceRequest, fallback: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


# --- The bookings page ----------------------------------------------------------------------------


@require_GET
@workspace_view
def booking_list(request: WorkspaceRequest) -> HttpResponse:
    """Every booking waiting to happen or to be settled (those to settle first), or (`show=past`) those
    settled or cancelled in the last 30 days; everyone's, or (`who=me`) the visitor's own."""
    past = request.GET.get("show") == "past"
    mine = request.GET.get("who") == "me"
    found = agenda.agenda(request.workspace, member=request.user if mine else None, past=past, now=timezone.now())
    page = Paginator(found, PER_PAGE).get_page(request.GET.get("page"))
    rows = shown(request, agenda.lines(page.object_list))
    if not past:
        rows = [r for r in rows if r.settle] + [r for r in rows if not r.settle]
    return render(
        request,
        "delivery/booking/booking_list.html",
        {"rows": rows, "page_obj": page, "past": past, "mine": mine, "next_url": request.get_full_path()},
    )


# --- Settling a booking --------------------------------------------------------------------------------


def _settle(request: WorkspaceRequest, booking_id: int, action: str) -> HttpResponse:
    made = get_object_or_404(
        Booking.objects.for_workspace(request.workspace).select_related("session_type", "retainer"), pk=booking_id
    )
    error = notice = ""
    done: Booking | None = None
    try:
        if action == "held":
            done = booking.mark_held(booking=made, actor=request.user)
            notice = f"Held: {agenda.line(request.workspace, made.pk).units} recorded on {made.retainer.name}."
        elif action == "no_show":
            done = booking.mark_no_show(booking=made, actor=request.user)
            notice = "No-show: " + (
                "its units are used, as the retainer's policy says."
                if done.work_item_id
                else "its units are returned, as the retainer's policy says."
            )
        else:
            done = booking.cancel(
                booking=made,
                actor=request.user,
                late=request.POST.get("late") == "1",
                reason=request.POST.get("reason", ""),
            )
            notice = (
                "Cancelled late: its units are used, as the retainer's policy says."
                if done.work_item_id
                else ("Cancelled: its units are back on the balance.")
            )
    except BookingError as refused:
        error = str(refused)
    origin = request.POST.get("origin", "")
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"{made.session_type.name}, {made.retainer.name}. {notice}")
        return redirect(_safe_next(request, reverse("delivery:booking_list", args=[request.workspace.slug])))
    context = {
        "row": shown(request, [agenda.line(request.workspace, made.pk)])[0],
        "settled": made.pk,
        "error": error,
        "notice": notice,
        "show_client": request.POST.get("show_client") == "1",
        "origin": origin,
        "next_url": _safe_next(request, ""),
    }
    if origin == "retainer" and not error:
        # The retainer's figures and work list change too: its bookings section comes back whole, with
        # them out of band (a lone <tr> first would make the browser parse what follows as table cells).
        from delivery.views import retainer_context  # the retainer page's own read-model

        retainer = Retainer.objects.for_workspace(request.workspace).select_related("client").get(pk=made.retainer_id)
        page = retainer_context(request, retainer)
        html = render_to_string(
            "delivery/booking/_retainer_section.html",
            {**context, "retainer": retainer, "section": page["bookings_section"]},
            request,
        )
        html += render_to_string("delivery/retainer_detail.html#booking-settled", page, request)
        response = retarget(HttpResponse(html), "#bookings")
    else:
        response = HttpResponse(render_to_string(ROW, context, request))
    if done is not None and done.work_item_id:
        trigger_client_event(response, "work-recorded", {"retainer": made.retainer_id})
    return response


@require_POST
@workspace_view
def booking_held(request: WorkspaceRequest, booking_id: int) -> HttpResponse:
    """The session took place: its units become a delivered session in the ledger, in one step."""
    return _settle(request, booking_id, "held")


@require_POST
@workspace_view
def booking_no_show(request: WorkspaceRequest, booking_id: int) -> HttpResponse:
    return _settle(request, booking_id, "no_show")


@require_POST
@workspace_view
def booking_cancel(request: WorkspaceRequest, booking_id: int) -> HttpResponse:
    return _settle(request, booking_id, "cancel")


# --- Booking on a client's behalf ------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@workspace_view
def booking_new(request: WorkspaceRequest) -> HttpResponse:
    """Book for a client: pick the client, the session type and retainer, a free time (in the
    workspace's zone), then who attends; POST books. The same checks and emails as the portal's."""
    workspace = request.workspace
    data = request.POST if request.method == "POST" else request.GET
    clients = Client.objects.for_workspace(workspace).filter(status=Client.Status.ACTIVE).order_by("name", "pk")
    client_id = int_param(data.get("client"))
    client = clients.filter(pk=client_id).first() if client_id is not None else None
    context: dict[str, object] = {"clients": clients, "client": client, "zone": workspace.timezone}
    if client is None:
        return render(request, "delivery/booking/booking_new.html", context)
    choice = agenda.choose(
        booking.bookable_for_client(client),
        type_id=int_param(data.get("type")),
        retainer_id=int_param(data.get("retainer")),
    )
    context["choice"] = choice
    if choice.session_type is None or choice.retainer is None:
        return render(request, "delivery/booking/booking_new.html", context)
    url = reverse("delivery:booking_new", args=[workspace.slug])
    contacts = list(Contact.objects.for_workspace(workspace).filter(client=client).order_by("name", "pk"))
    context.update(
        contacts=contacts,
        back_url=f"{url}?{choice.query(client=str(client.pk))}",
        left=booking.describe_left(choice.retainer, on=workspace.today(), locale=workspace.locale or "en_US"),
    )
    if request.method == "POST" or "start" in data:
        start = parse_stamp(data.get("start", ""))
        if request.method == "POST":
            attendee = next((c for c in contacts if c.pk == int_param(data.get("attendee"))), None)
            try:
                made = booking.book(
                    session_type=choice.session_type,
                    retainer=choice.retainer,
                    starts_at=start,
                    actor=request.user,
                    attendee=attendee,
                )
            except BookingError as refused:
                context["error"] = str(refused)
            else:
                messages.success(
                    request,
                    f"Booked for {client.name}: {choice.session_type.name}, "
                    f"{booking.describe_when(made, workspace.tzinfo)}."
                    + (f" {attendee.name} gets the invitation." if attendee else ""),
                )
                return redirect("dashboard:client_detail", workspace_slug=workspace.slug, client_id=client.pk)
        context.update(_confirmation(request, choice, start), confirming=True)
        if "error" in context:
            context["offer"] = None
        return render(request, "delivery/booking/booking_new.html", context)
    context.update(_times(request, choice, url=url, client=client))
    return render(request, "delivery/booking/booking_new.html", context)


def _times(request: WorkspaceRequest, choice: agenda.Choice, *, url: str, client: Client) -> dict[str, object]:
    assert choice.session_type is not None and choice.retainer is not None
    zone, now = request.workspace.tzinfo, timezone.now()
    today = timezone.localdate(now, timezone=zone)
    start = datetime.combine(today, time(0), tzinfo=zone)
    found = booking.offers(
        session_type=choice.session_type,
        retainer=choice.retainer,
        start=start,
        end=start + timedelta(days=booking.MAX_RANGE_DAYS),
        now=now,
    )

    def link(**params: str) -> str:
        return f"{url}?{choice.query(client=str(client.pk), **params)}"

    page = agenda.times_page(
        [offer.starts_at for offer in found.times], zone=zone, today=today, first=request.GET.get("from", ""), link=link
    )
    return {**page, "notes": found.notes}


def _confirmation(request: WorkspaceRequest, choice: agenda.Choice, start: datetime | None) -> dict[str, object]:
    assert choice.session_type is not None and choice.retainer is not None
    found = None
    if start is not None:
        found = booking.offers(
            session_type=choice.session_type, retainer=choice.retainer, start=start, end=start + timedelta(minutes=1)
        )
    offer = found.times[0] if found and found.times else None
    end = start + timedelta(minutes=choice.session_type.duration_minutes) if start else None
    return {
        "start": stamp(start) if start else "",
        "offer": offer,
        "when": booking.describe_span(start, end, request.workspace.tzinfo) if start and end else "",
        "units": found.units_text if found else "",
        "overage": booking.describe_overage(offer.overage, choice.retainer, locale=request.workspace.locale or "en_US")
        if offer and offer.overage
        else "",
        "unavailable": (found.notes[0] if found and found.notes else "That time is no longer free.")
        if offer is None
        else "",
    }
