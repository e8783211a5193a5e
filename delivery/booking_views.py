"""The consultant's booking set-up pages: session types, my availability, my calendar, a retainer's
booking policy; and the public ICS feed. Views read with scoped queries and write through
delivery.booking_setup, delivery.caldav_sync and delivery.feeds; their errors land next to fields.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from clients.models import Retainer, RetainerTerms
from delivery import booking, booking_setup, caldav_sync, feeds
from delivery.booking_forms import (
    WEEKDAYS,
    BookingPolicyForm,
    CalendarConnectForm,
    OverrideForm,
    ScheduleForm,
    SessionTypeForm,
    format_ranges,
)
from delivery.models import CalendarConnection, Schedule, SessionType, SessionTypeRetainer
from retainers.http import WorkspaceRequest, workspace_view
from retainers.models import User

# --- Session types -------------------------------------------------------------------------------------


def _session_type_form(request: WorkspaceRequest, data=None, initial=None) -> SessionTypeForm:
    workspace = request.workspace
    members = User.objects.filter(memberships__workspace=workspace).order_by("name", "email")
    if not request.membership.is_admin:  # members set up their own sessions; owners and admins anyone's
        members = members.filter(pk=request.user.pk)
    retainers = (
        Retainer.objects.for_workspace(workspace)
        .live()
        .exclude(model=RetainerTerms.Model.DELIVERABLES)
        .select_related("client")
        .order_by("client__name", "name", "pk")
    )
    return SessionTypeForm(data, initial=initial, members=members, retainers=retainers)


def _editable_session_type(request: WorkspaceRequest, session_type_id: int) -> SessionType:
    session_type = get_object_or_404(SessionType.objects.for_workspace(request.workspace), pk=session_type_id)
    if not request.membership.is_admin and session_type.member_id != request.user.pk:
        raise PermissionDenied("Only owners and admins change other members' session types.")
    return session_type


def _save_session_type(request: WorkspaceRequest, form: SessionTypeForm, session_type: SessionType | None):
    try:
        return booking_setup.save_session_type(
            workspace=request.workspace, session_type=session_type, **form.cleaned_data
        )
    except booking_setup.SetupError as error:
        form.add_error(error.field if error.field in form.fields else None, str(error))
        return None


@require_GET
@workspace_view
def session_type_list(request: WorkspaceRequest) -> HttpResponse:
    session_types = (
        SessionType.objects.for_workspace(request.workspace).select_related("member").order_by("-active", "name")
    )
    return render(request, "delivery/booking/session_type_list.html", {"session_types": session_types})


@require_http_methods(["GET", "POST"])
@workspace_view
def session_type_create(request: WorkspaceRequest) -> HttpResponse:
    form = _session_type_form(request, request.POST or None, initial={"member": request.user.pk})
    if request.method == "POST" and form.is_valid():
        if _save_session_type(request, form, None) is not None:
            messages.success(request, f"Session type “{form.cleaned_data['name']}” added.")
            return redirect("delivery:session_type_list", workspace_slug=request.workspace.slug)
    return render(request, "delivery/booking/session_type_form.html", {"form": form, "session_type": None})


@require_http_methods(["GET", "POST"])
@workspace_view
def session_type_edit(request: WorkspaceRequest, session_type_id: int) -> HttpResponse:
    session_type = _editable_session_type(request, session_type_id)
    initial = {
        "name": session_type.name,
        "member": session_type.member_id,
        "duration_minutes": session_type.duration_minutes,
        "hours": session_type.hours,
        "sessions": session_type.sessions,
        "location": session_type.location,
        "reminder_minutes": session_type.reminder_minutes,
        "all_retainers": session_type.all_retainers,
        "retainers": list(
            SessionTypeRetainer.objects.for_workspace(request.workspace)
            .filter(session_type=session_type)
            .values_list("retainer_id", flat=True)
        ),
    }
    form = _session_type_form(request, request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        if _save_session_type(request, form, session_type) is not None:
            messages.success(request, f"Session type “{form.cleaned_data['name']}” saved.")
            return redirect("delivery:session_type_list", workspace_slug=request.workspace.slug)
    return render(request, "delivery/booking/session_type_form.html", {"form": form, "session_type": session_type})


@require_POST
@workspace_view
def session_type_active(request: WorkspaceRequest, session_type_id: int) -> HttpResponse:
    session_type = _editable_session_type(request, session_type_id)
    active = request.POST.get("active") == "1"
    booking_setup.set_session_type_active(session_type=session_type, active=active)
    if active:
        messages.success(request, f"“{session_type.name}” can be booked again.")
    else:
        messages.success(request, f"“{session_type.name}” can no longer be booked; booked sessions stay.")
    return redirect("delivery:session_type_list", workspace_slug=request.workspace.slug)


# --- My availability ------------------------------------------------------------------------------------


def _availability_page(
    request: WorkspaceRequest, *, form: ScheduleForm | None = None, override_form: OverrideForm | None = None
) -> HttpResponse:
    workspace = request.workspace
    # Not saved until the member saves something: showing the page writes nothing.
    schedule = booking.schedule_for(workspace, request.user) or Schedule(workspace=workspace, member=request.user)
    if form is None:
        weekly = booking_setup.weekly_ranges(schedule)
        form = ScheduleForm(
            workspace_timezone=workspace.timezone,
            initial={
                "timezone": schedule.timezone,
                **{day: weekly[index] for index, day in enumerate(WEEKDAYS)},
                "step_minutes": schedule.step_minutes,
                "buffer_before_minutes": schedule.buffer_before_minutes,
                "buffer_after_minutes": schedule.buffer_after_minutes,
                "min_notice_hours": schedule.min_notice_minutes // 60,
                "horizon_days": schedule.horizon_days,
                "daily_cap": schedule.daily_cap,
            },
        )
    zone = booking.member_zone(workspace, schedule)
    days = [
        (day, format_ranges(ranges) if ranges else "Not available")
        for day, ranges in booking_setup.overrides(schedule, since=workspace.today())
    ]
    return render(
        request,
        "delivery/booking/availability.html",
        {
            "form": form,
            "override_form": override_form or OverrideForm(),
            "overrides": days,
            "zone": zone.key,
        },
    )


@require_http_methods(["GET", "POST"])
@workspace_view
def booking_availability(request: WorkspaceRequest) -> HttpResponse:
    if request.method == "GET":
        return _availability_page(request)
    form = ScheduleForm(request.POST, workspace_timezone=request.workspace.timezone)
    if not form.is_valid():
        return _availability_page(request, form=form)
    data = form.cleaned_data
    booking_setup.save_schedule(
        workspace=request.workspace,
        member=request.user,
        settings={
            "timezone": data["timezone"],
            "buffer_before_minutes": data["buffer_before_minutes"],
            "buffer_after_minutes": data["buffer_after_minutes"],
            "min_notice_minutes": data["min_notice_hours"] * 60,
            "horizon_days": data["horizon_days"],
            "daily_cap": data["daily_cap"],
            "step_minutes": data["step_minutes"],
        },
        weekly={index: data[day] for index, day in enumerate(WEEKDAYS)},
    )
    messages.success(request, "Availability saved. Sessions booked already keep their times.")
    return redirect("delivery:booking_availability", workspace_slug=request.workspace.slug)


@require_POST
@workspace_view
def booking_override_add(request: WorkspaceRequest) -> HttpResponse:
    form = OverrideForm(request.POST)
    if not form.is_valid():
        return _availability_page(request, override_form=form)
    data = form.cleaned_data
    if data["on"] < request.workspace.today():
        form.add_error("on", "Choose today or a later date.")
        return _availability_page(request, override_form=form)
    booking_setup.set_override(
        workspace=request.workspace,
        member=request.user,
        on=data["on"],
        ranges=[] if data["unavailable"] else data["hours"],
    )
    messages.success(request, f"Hours for {data['on']:%d %b %Y} saved.")
    return redirect("delivery:booking_availability", workspace_slug=request.workspace.slug)


@require_POST
@workspace_view
def booking_override_remove(request: WorkspaceRequest) -> HttpResponse:
    form = OverrideForm({"on": request.POST.get("on", ""), "unavailable": "on"})
    if not form.is_valid():
        raise Http404("No such date")
    booking_setup.clear_override(workspace=request.workspace, member=request.user, on=form.cleaned_data["on"])
    messages.success(request, f"{form.cleaned_data['on']:%d %b %Y} follows the weekly hours again.")
    return redirect("delivery:booking_availability", workspace_slug=request.workspace.slug)


# --- My calendar -------------------------------------------------------------------------------------------


def _calendar_page(request: WorkspaceRequest, *, form: CalendarConnectForm | None = None) -> HttpResponse:
    workspace = request.workspace
    connection = CalendarConnection.objects.for_workspace(workspace).filter(member=request.user).first()
    feed = feeds.current_feed(workspace, request.user)
    return render(
        request,
        "delivery/booking/calendar.html",
        {
            "connection": connection,
            "busy_blocks": connection.busy_blocks.count() if connection else 0,
            "form": form or CalendarConnectForm(),
            "feed_url": feeds.feed_url(feed) if feed else None,
        },
    )


@require_http_methods(["GET", "POST"])
@workspace_view
def booking_calendar(request: WorkspaceRequest) -> HttpResponse:
    """Show the calendar settings; POST connects a CalDAV calendar (checked against the server first)."""
    if request.method == "GET":
        return _calendar_page(request)
    form = CalendarConnectForm(request.POST)
    if form.is_valid():
        try:
            connection = caldav_sync.connect(workspace=request.workspace, member=request.user, **form.cleaned_data)
        except caldav_sync.CalendarError as error:
            form.add_error(error.field if error.field in form.fields else None, str(error))
        else:
            result = caldav_sync.sync_connection(connection.pk)
            _sync_message(request, result)
            return redirect("delivery:booking_calendar", workspace_slug=request.workspace.slug)
    return _calendar_page(request, form=form)


def _sync_message(request: HttpRequest, result: caldav_sync.SyncResult | None) -> None:
    if result is None:
        return
    if result.ok:
        messages.success(
            request, f"Calendar synced: {result.busy_blocks} busy time(s) read, {result.written} booking(s) written."
        )
    else:
        messages.error(request, f"The calendar did not sync: {result.error}")


@require_POST
@workspace_view
def booking_calendar_sync(request: WorkspaceRequest) -> HttpResponse:
    """Test the connection and sync now (the member's own page may wait for their calendar)."""
    connection = get_object_or_404(CalendarConnection.objects.for_workspace(request.workspace), member=request.user)
    _sync_message(request, caldav_sync.sync_connection(connection.pk))
    return redirect("delivery:booking_calendar", workspace_slug=request.workspace.slug)


@require_POST
@workspace_view
def booking_calendar_disconnect(request: WorkspaceRequest) -> HttpResponse:
    connection = get_object_or_404(CalendarConnection.objects.for_workspace(request.workspace), member=request.user)
    caldav_sync.disconnect(connection)
    messages.success(request, "Calendar disconnected. Events written to it stay there.")
    return redirect("delivery:booking_calendar", workspace_slug=request.workspace.slug)


@require_POST
@workspace_view
def booking_feed_regenerate(request: WorkspaceRequest) -> HttpResponse:
    """Make a new subscription URL; the old one stops working at once."""
    had = feeds.current_feed(request.workspace, request.user) is not None
    feeds.regenerate_feed(workspace=request.workspace, member=request.user)
    messages.success(
        request, "New subscription URL made; the old one no longer works." if had else "Subscription URL made."
    )
    return redirect("delivery:booking_calendar", workspace_slug=request.workspace.slug)


@require_POST
@workspace_view
def booking_feed_revoke(request: WorkspaceRequest) -> HttpResponse:
    feeds.revoke_feed(workspace=request.workspace, member=request.user)
    messages.success(request, "Subscription URL turned off.")
    return redirect("delivery:booking_calendar", workspace_slug=request.workspace.slug)


@never_cache
@require_safe
def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    """The public, unguessable ICS feed of one member's bookings. 404 once revoked."""
    feed = feeds.find_feed(token)
    if feed is None:
        raise Http404("No such calendar")
    response = HttpResponse(feeds.feed_text(feed), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="bookings.ics"'
    response["X-Robots-Tag"] = "noindex"
    return response


# --- A retainer's booking policy ------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@workspace_view
def booking_policy(request: WorkspaceRequest, retainer_id: int) -> HttpResponse:
    retainer = get_object_or_404(
        Retainer.objects.for_workspace(request.workspace).select_related("client"), pk=retainer_id
    )
    policy = booking.policy_for(retainer)
    initial = {
        "cancel_window_hours": policy.cancel_window_hours,
        "late_cancel": policy.late_cancel,
        "no_show": policy.no_show,
        "nudge_after_days": policy.nudge_after_days,
    }
    form = BookingPolicyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        booking_setup.save_policy(retainer=retainer, **form.cleaned_data)
        messages.success(request, "Booking policy saved.")
        return redirect("delivery:booking_policy", workspace_slug=request.workspace.slug, retainer_id=retainer.pk)
    return render(request, "delivery/booking/policy.html", {"form": form, "retainer": retainer})
