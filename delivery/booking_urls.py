"""URLs of the consultant's bookings and their set-up, in the delivery namespace (included by delivery.urls)."""

from django.urls import path

from delivery import agenda_views, booking_views

urlpatterns = [
    path("bookings/", agenda_views.booking_list, name="booking_list"),
    path("bookings/new/", agenda_views.booking_new, name="booking_new"),
    path("bookings/<int:booking_id>/held/", agenda_views.booking_held, name="booking_held"),
    path("bookings/<int:booking_id>/no-show/", agenda_views.booking_no_show, name="booking_no_show"),
    path("bookings/<int:booking_id>/cancel/", agenda_views.booking_cancel, name="booking_cancel"),
    path("booking/session-types/", booking_views.session_type_list, name="session_type_list"),
    path("booking/session-types/new/", booking_views.session_type_create, name="session_type_create"),
    path("booking/session-types/<int:session_type_id>/", booking_views.session_type_edit, name="session_type_edit"),
    path(
        "booking/session-types/<int:session_type_id>/active/",
        booking_views.session_type_active,
        name="session_type_active",
    ),
    path("booking/availability/", booking_views.booking_availability, name="booking_availability"),
    path("booking/availability/overrides/", booking_views.booking_override_add, name="booking_override_add"),
    path(
        "booking/availability/overrides/remove/",
        booking_views.booking_override_remove,
        name="booking_override_remove",
    ),
    path("booking/calendar/", booking_views.booking_calendar, name="booking_calendar"),
    path("booking/calendar/sync/", booking_views.booking_calendar_sync, name="booking_calendar_sync"),
    path("booking/calendar/disconnect/", booking_views.booking_calendar_disconnect, name="booking_calendar_disconnect"),
    path("booking/calendar/feed/", booking_views.booking_feed_regenerate, name="booking_feed_regenerate"),
    path("booking/calendar/feed/revoke/", booking_views.booking_feed_revoke, name="booking_feed_revoke"),
    path("retainers/<int:retainer_id>/booking-policy/", booking_views.booking_policy, name="booking_policy"),
]
