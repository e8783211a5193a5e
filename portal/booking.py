"""The portal's booking pages: a contact books a session, moves or cancels one, and sets their time zone.

Times are shown in the contact's own zone (`Contact.timezone`; blank: the workspace's), which
static/js/timezone.js fills in once from the browser and the page lets them change. Everything
works without JavaScript: each free time is a link to a confirmation page, whose form books.
What can be booked, what it would cost beyond the balance and what cancelling does all come from
delivery.booking; the lists of sessions from delivery.agenda. Every query is narrowed to the
contact's client.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST

from clients import services as clients
from delivery import agenda, booking
from delivery.agenda import Choice, int_param, parse_stamp, stamp
from delivery.booking import BookingError
from delivery.models import Booking
from portal.http import PortalRequest, portal_view
from retainers.choices import timezone_choices

LOOK_AHEAD = timedelta(days=booking.MAX_RANGE_DAYS)


def contact_zone(request: PortalRequest) -> ZoneInfo:
    return ZoneInfo(request.contact.zone_name(request.workspace.timezone))


def _choose(request: PortalRequest, data: QueryDict) -> Choice:
    types = booking.bookable_for_client(request.contact.client)
    return agenda.choose(types, type_id=int_param(data.get("type")), retainer_id=int_param(data.get("retainer")))


def _times(request: PortalRequest, choice: Choice, *, url: str, exclude: Booking | None = None) -> dict[str, object]:
    """The free times of the chosen type on the chosen retainer, a week at a time in the contact's zone."""
    assert choice.session_type is not None and choice.retainer is not None
    zone, now = contact_zone(request), timezone.now()
    today = timezone.localdate(now, timezone=zone)
    start = datetime.combine(today, time(0), tzinfo=zone)
    found = booking.offers(
        session_type=choice.session_type,
        retainer=choice.retainer,
        start=start,
        end=start + LOOK_AHEAD,
        now=now,
        exclude=exclude,
    )

    def link(**params: str) -> str:
        return f"{url}?{choice.query(**params)}"

    page = agenda.times_page(
        [offer.starts_at for offer in found.times], zone=zone, today=today, first=request.GET.get("from", ""), link=link
    )
    return {**page, "notes": found.notes}


# --- The pages ---------------------------------------------------------------------------------------


def _sessions(request: PortalRequest) -> list[agenda.Shown]:
    lines = agenda.upcoming_for_client(request.workspace, request.contact.client, today=request.workspace.today())
    return agenda.still_ahead(agenda.show(lines, zone=contact_zone(request), now=timezone.now()))


def _zone_options(chosen: str) -> str:
    """The <option>s of every time zone (about 430): written here, a template loop over them costs
    more than the rest of the page."""
    return format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        ((value, mark_safe(" selected") if value == chosen else "", label) for value, label in timezone_choices()),
    )


def _zone_context(request: PortalRequest) -> dict[str, object]:
    zone = contact_zone(request).key
    return {
        "zone": zone,
        "zone_saved": bool(request.contact.timezone),
        "zone_options": _zone_options(zone),
        "here": request.get_full_path(),
    }


@require_http_methods(["GET", "POST"])
@portal_view
def book(request: PortalRequest) -> HttpResponse:
    """Pick a session type (and retainer), then a free time; `start` shows the confirmation, POST books."""
    data = request.POST if request.method == "POST" else request.GET
    choice = _choose(request, data)
    url = reverse("portal:book", args=[request.workspace.slug])
    if choice.session_type is None or choice.retainer is None:
        context = {"choice": choice, "sessions": _sessions(request), "zone": contact_zone(request).key}
        return render(request, "portal/book.html", context)
    if request.method == "POST" or "start" in data:
        return _confirm_booking(request, choice)
    context = {
        "choice": choice,
        "sessions": _sessions(request),
        "left": booking.describe_left(
            choice.retainer, on=request.workspace.today(), locale=request.workspace.locale or "en_US"
        ),
        **_times(request, choice, url=url),
        **_zone_context(request),
    }
    return render(request, "portal/book.html", context)


def _confirm_booking(request: PortalRequest, choice: Choice) -> HttpResponse:
    assert choice.session_type is not None and choice.retainer is not None
    data = request.POST if request.method == "POST" else request.GET
    zone = contact_zone(request)
    start = parse_stamp(data.get("start", ""))
    error = ""
    if request.method == "POST":
        try:
            made = booking.book(
                session_type=choice.session_type,
                retainer=choice.retainer,
                starts_at=start,
                actor=request.user,
                contact=request.contact,
            )
        except BookingError as refused:
            error = str(refused)
        else:
            messages.success(
                request,
                f"Booked: {choice.session_type.name}, {booking.describe_when(made, zone)}. "
                f"A confirmation with a calendar invitation is on its way to {request.contact.email}.",
            )
            return redirect("portal:overview", workspace_slug=request.workspace.slug)
    context = _offer_context(request, choice, start, zone=zone)
    if error:
        context["error"], context["offer"] = error, None
    return render(request, "portal/book_confirm.html", {**context, "choice": choice, "moving": None})


def _offer_context(
    request: PortalRequest, choice: Choice, start: datetime | None, *, zone: ZoneInfo, exclude: Booking | None = None
) -> dict[str, object]:
    """The one time asked for, checked as booking would check it (still free, within the balance),
    with its overage price under "bill" and the retainer's rule for moving and cancelling."""
    assert choice.session_type is not None and choice.retainer is not None
    found = None
    if start is not None:
        found = booking.offers(
            session_type=choice.session_type,
            retainer=choice.retainer,
            start=start,
            end=start + timedelta(minutes=1),
            exclude=exclude,
        )
    offer = found.times[0] if found and found.times else None
    overage = ""
    if offer is not None and offer.overage is not None:
        overage = booking.describe_overage(offer.overage, choice.retainer, locale=request.workspace.locale or "en_US")
    end = start + timedelta(minutes=choice.session_type.duration_minutes) if start else None
    return {
        "start": stamp(start) if start else "",
        "offer": offer,
        "when": booking.describe_span(start, end, zone) if start and end else "",
        "units": found.units_text if found else "",
        "overage": overage,
        "unavailable": (found.notes[0] if found and found.notes else "That time is no longer free.")
        if offer is None
        else "",
        "terms": booking.cancellation_terms(booking.policy_for(choice.retainer), choice.retainer),
        "back_url": f"{reverse('portal:book', args=[request.workspace.slug])}?{choice.query()}",
    }


def _client_booking(request: PortalRequest, booking_id: int) -> Booking:
    return get_object_or_404(
        Booking.objects.for_workspace(request.workspace)
        .filter(client=request.contact.client)
        .select_related("session_type__member", "session_type__workspace", "retainer__workspace", "workspace"),
        pk=booking_id,
    )


@require_http_methods(["GET", "POST"])
@portal_view
def booking_move(request: PortalRequest, booking_id: int) -> HttpResponse:
    """Move a session to another free time: the times, then (`start`) the confirmation, then POST."""
    made = _client_booking(request, booking_id)
    zone, now = contact_zone(request), timezone.now()
    data = request.POST if request.method == "POST" else request.GET
    choice = Choice([], made.session_type, made.retainer)
    url = reverse("portal:booking_move", args=[request.workspace.slug, made.pk])
    context: dict[str, object] = {"made": made, "when_now": booking.describe_when(made, zone), "choice": choice}
    reason = _why_not_movable(made, now=now)
    if reason:
        return render(request, "portal/book.html", {**context, "moving": made, "not_movable": reason})
    if request.method == "POST" or "start" in data:
        start = parse_stamp(data.get("start", ""))
        error = ""
        if request.method == "POST":
            try:
                moved = booking.reschedule(booking=made, starts_at=start, actor=request.user, contact=request.contact)
            except BookingError as refused:
                error = str(refused)
            else:
                messages.success(
                    request,
                    f"Moved: {made.session_type.name} is now on {booking.describe_when(moved, zone)}. "
                    "An updated invitation is on its way.",
                )
                return redirect("portal:overview", workspace_slug=request.workspace.slug)
        offer = _offer_context(request, choice, start, zone=zone, exclude=made)
        offer["back_url"] = url
        if error:
            offer["error"], offer["offer"] = error, None
        return render(request, "portal/book_confirm.html", {**context, **offer, "moving": made})
    context.update(_times(request, choice, url=url, exclude=made))
    context.update(_zone_context(request))
    return render(request, "portal/book.html", {**context, "moving": made})


def _why_not_movable(made: Booking, *, now: datetime) -> str:
    if not made.is_active:
        return f"This session is {made.get_status_display().lower()}: it can no longer be moved."
    if now >= made.starts_at:
        return "This session has started: it can no longer be moved."
    if booking.inside_window(made, now=now):
        policy = booking.policy_for(made.retainer)
        return (
            f"Sessions can be moved until {policy.cancel_window_hours} hours before they start. "
            f"Write to {made.workspace.name} to change this one."
        )
    return ""


@require_http_methods(["GET", "POST"])
@portal_view
def booking_cancel(request: PortalRequest, booking_id: int) -> HttpResponse:
    """Say what cancelling would do now (the retainer's policy inside its window), then cancel on POST."""
    made = _client_booking(request, booking_id)
    zone, now = contact_zone(request), timezone.now()
    error = ""
    if request.method == "POST":
        try:
            cancelled = booking.cancel(
                booking=made,
                actor=request.user,
                contact=request.contact,
                reason=request.POST.get("reason", ""),
            )
        except BookingError as refused:
            error = str(refused)
        else:
            kept = (
                " It was cancelled late, so its units count as used."
                if cancelled.work_item_id
                else " Its units are back on your balance."
            )
            messages.success(
                request, f"Cancelled: {made.session_type.name}, {booking.describe_when(made, zone)}.{kept}"
            )
            return redirect("portal:overview", workspace_slug=request.workspace.slug)
    can_cancel = made.is_active and now < made.starts_at
    return render(
        request,
        "portal/booking_cancel.html",
        {
            "made": made,
            "when": booking.describe_when(made, zone),
            "outcome": booking.cancellation_outcome(made, now=now) if can_cancel else None,
            "not_cancellable": ""
            if can_cancel
            else (
                f"This session is {made.get_status_display().lower()}."
                if not made.is_active
                else "This session has started: it can no longer be cancelled."
            ),
            "error": error,
            "reason": request.POST.get("reason", "")[:500],
        },
    )


@require_POST
@portal_view
def booking_timezone(request: PortalRequest) -> HttpResponse:
    """Save the zone the contact reads times in; back to the page they were on."""
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, require_https=request.is_secure()):
        back = reverse("portal:book", args=[request.workspace.slug])
    try:
        contact = clients.set_contact_timezone(contact=request.contact, timezone_name=request.POST.get("timezone", ""))
    except clients.ClientError as error:
        messages.error(request, str(error))
    else:
        zone = contact.zone_name(request.workspace.timezone)
        if request.POST.get("detected"):
            messages.info(request, f"Times are shown in {zone}, your browser's time zone. You can change it below.")
        else:
            messages.success(request, f"Times are now shown in {zone}.")
    return redirect(back)
