"""Delivery URLs outside any workspace: a member's private ICS subscription of their bookings."""

from django.urls import path

from delivery import booking_views

app_name = "delivery_public"

urlpatterns = [
    path("calendar/<str:token>.ics", booking_views.calendar_feed, name="calendar_feed"),
]
