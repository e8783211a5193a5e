"""iCalendar for bookings (icalendar 7): email invitations, the CalDAV event, the subscription feed.

Every booking keeps one UID for life and a SEQUENCE that grows with each change, so a calendar
that received the first invitation updates (or removes) that same event. Times are written in
the member's zone with its TZID and a VTIMEZONE covering the booking's years, so calendars place
them right across DST changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress
from icalendar.enums import STATUS, TRANSP

from delivery.models import Booking

PRODID = "-//Retainers//Bookings//EN"
REQUEST, CANCEL = "REQUEST", "CANCEL"


def _timezone_span(starts: Iterable[date]) -> tuple[date, date]:
    """The years the VTIMEZONE must cover: the bookings' own, with a year either side."""
    years = [start.year for start in starts] or [datetime.now(UTC).year]
    return date(min(years) - 1, 1, 1), date(max(years) + 2, 1, 1)


def _summary(booking: Booking) -> str:
    return f"{booking.session_type.name}: {booking.client.name} with {booking.member.get_full_name()}"


def booking_event(booking: Booking, *, zone: ZoneInfo, stamp: datetime | None = None) -> Event:
    """The VEVENT of a booking: CONFIRMED while booked or held, CANCELLED once cancelled."""
    cancelled = booking.status in {Booking.Status.CANCELLED, Booking.Status.LATE_CANCELLED}
    attendees = []
    if booking.contact is not None:
        attendees.append(
            vCalAddress.new(booking.contact.email, cn=booking.contact.name, role="REQ-PARTICIPANT", partstat="ACCEPTED")
        )
    event = Event.new(
        uid=booking.uid,
        sequence=booking.sequence,
        stamp=(stamp or datetime.now(UTC)).replace(microsecond=0),
        start=booking.starts_at.astimezone(zone),
        end=booking.ends_at.astimezone(zone),
        summary=_summary(booking),
        location=booking.session_type.location or None,
        description=f"{booking.session_type.name} for {booking.client.name} ({booking.retainer.name}).",
        organizer=vCalAddress.new(booking.member.email, cn=booking.member.get_full_name()),
        attendees=attendees,
        status=STATUS.CANCELLED if cancelled else STATUS.CONFIRMED,
        transparency=TRANSP.OPAQUE,
    )
    return event


def _onsets_in_offset_from(calendar: Calendar) -> None:
    """RFC 5545 reads an observance's DTSTART (and RDATEs) as local time in its TZOFFSETFROM.
    icalendar 7 writes the onset of a change that moves the clocks forward in the new offset's
    time instead (London's spring change as 02:00 rather than 01:00): move those back by the jump,
    so strict readers (Outlook, libical) place the hour after the change right too."""
    for timezone in calendar.timezones:
        for observance in timezone.subcomponents:
            jump = observance.TZOFFSETTO - observance.TZOFFSETFROM
            if jump <= timedelta(0):
                continue
            observance.DTSTART = observance.DTSTART - jump
            rdates = observance.pop("RDATE", None)
            if rdates is not None:
                lists = rdates if isinstance(rdates, list) else [rdates]
                observance.add("RDATE", [moment.dt - jump for dates in lists for moment in dates.dts])


def _calendar(events: list[Event], *, method: str | None, name: str | None = None) -> Calendar:
    calendar = Calendar.new(prodid=PRODID, method=method, name=name, subcomponents=events)
    first, last = _timezone_span(event.start for event in events)
    calendar.add_missing_timezones(first_date=first, last_date=last)
    _onsets_in_offset_from(calendar)
    return calendar


def invitation(booking: Booking, *, zone: ZoneInfo, method: str) -> str:
    """The iTIP message an email carries: METHOD:REQUEST (new or changed) or METHOD:CANCEL."""
    return _calendar([booking_event(booking, zone=zone)], method=method).to_ical().decode()


def calendar_object(booking: Booking, *, zone: ZoneInfo) -> str:
    """The booking as a CalDAV calendar object: one event, no METHOD (RFC 4791 forbids it there)."""
    return _calendar([booking_event(booking, zone=zone)], method=None).to_ical().decode()


def feed(bookings: Iterable[Booking], *, zone: ZoneInfo, name: str) -> str:
    """A member's subscription feed: their bookings, cancelled ones marked so subscribers drop them."""
    stamp = datetime.now(UTC)
    events = [booking_event(booking, zone=zone, stamp=stamp) for booking in bookings]
    return _calendar(events, method="PUBLISH", name=name).to_ical().decode()
