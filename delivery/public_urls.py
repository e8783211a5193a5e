"""Delivery URLs outside any workspace: a member's private ICS subscription of their bookings,
and the emailed link that answers a request for overage approval."""

from django.urls import path

from delivery import approval_views, booking_views

app_name = "delivery_public"

urlpatterns = [
    path("calendar/<str:token>.ics", booking_views.calendar_feed, name="calendar_feed"),
    path("overage/<str:token>/", approval_views.overage_answer, name="overage_answer"),
]
