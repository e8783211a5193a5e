"""Booking workflows (delivery.booking): book, reschedule, cancel, held, no-show; units reserved; policies;
bad input refused with a clear message and nothing written."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from django.core import mail
from django.db.models import Sum
from icalendar import Calendar

from communication.inbound import reply_address
from delivery import booking, booking_setup, services
from delivery.booking import BookingError
from delivery.models import Booking, BookingPolicy, LedgerEntry, Period, WorkItem
from retainers.models import Email
from tests import factories
from tests.booking.conftest import at

pytestmark = pytest.mark.django_db


def book(session_type, retainer, carol, when, **kwargs):
    return booking.book(
        session_type=session_type, retainer=retainer, starts_at=when, actor=carol.user, contact=carol, **kwargs
    )


def make(client, **terms):
    """A retainer whose first period is March 2026, the month the tests run in."""
    return factories.make_retainer(client=client, starts_on=date(2026, 3, 1), **terms)


def balance(retainer) -> D:
    return LedgerEntry.objects.filter(retainer=retainer, period__status="open").aggregate(s=Sum("quantity"))["s"]


def open_period(retainer) -> Period:
    return Period.objects.get(retainer=retainer, status="open")


def invitations(to: str) -> list[Calendar]:
    found = []
    for email in Email.objects.filter(to=to).order_by("pk"):
        for attachment in email.attachments:
            if "method" in attachment:
                found.append(Calendar.from_ical(attachment["content"]))
    return found


# --- Booking --------------------------------------------------------------------------------------


def test_a_contact_books_a_free_slot_and_its_units_are_reserved(now, session_type, retainer, carol, bob):
    made = book(session_type, retainer, carol, at(10, 9))
    assert made.status == Booking.Status.BOOKED
    assert (made.member, made.contact, made.client, made.units, made.unit) == (
        bob,
        carol,
        retainer.client,
        D("1"),
        "hours",
    )
    assert made.ends_at - made.starts_at == timedelta(hours=1)
    assert made.booked_by == carol.user and made.sequence == 0
    # Reserved, not used: the ledger is untouched, the "booked" figure counts it.
    assert balance(retainer) == D("10")
    assert booking.period_booked_units(open_period(retainer)) == D("1")
    assert booking.open_booked_units([retainer]) == {retainer.pk: D("1")}
    # The slot is gone for everyone else.
    starts = booking.available_starts(session_type=session_type, first=date(2026, 3, 10), last=date(2026, 3, 10))
    assert at(10, 9) not in starts and at(10, 10) in starts


def test_confirmations_go_to_the_contact_and_the_member_with_an_invitation(now, session_type, retainer, carol, bob):
    made = book(session_type, retainer, carol, at(10, 9))
    to_carol = Email.objects.get(to=carol.email)
    assert "05:00–06:00 (America/New_York)" in to_carol.body_text  # her own zone
    assert to_carol.key == f"booking-{made.pk}-confirmed-0-contact"
    assert to_carol.reply_to == reply_address(retainer.client)  # her answer reaches her consultant's thread
    to_bob = Email.objects.get(to=bob.email)
    assert "09:00–10:00 (Europe/London)" in to_bob.body_text and "Acme Ltd booked" in to_bob.body_text
    (invite,) = invitations(carol.email)
    assert invite["METHOD"] == "REQUEST"
    (event,) = invite.walk("VEVENT")
    assert str(event["UID"]) == made.uid and event["SEQUENCE"] == 0


def test_a_member_books_on_the_clients_behalf(now, session_type, retainer, carol, bob, alice):
    made = booking.book(session_type=session_type, retainer=retainer, starts_at=at(10, 9), actor=alice, attendee=carol)
    assert made.booked_by == alice and made.contact == carol
    nobody = booking.book(session_type=session_type, retainer=retainer, starts_at=at(10, 10), actor=alice)
    assert nobody.contact is None
    assert list(Email.objects.filter(key__startswith=f"booking-{nobody.pk}-").values_list("to", flat=True)) == [
        bob.email
    ]


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (at(6, 9), "That time has passed"),
        (at(9, 14), "at least 12 hours' notice"),
        (at(10, 12), "outside the available hours"),  # lunch
        (at(10, 9, 10), "outside the available hours"),  # between start times
        (at(14, 10), "outside the available hours"),  # Saturday
        (at(9, 10, month=5) + timedelta(days=30), "at most 60 days ahead"),
    ],
)
def test_times_that_cannot_be_booked_are_refused_with_a_reason_and_nothing_written(
    now, session_type, retainer, carol, when, message
):
    with pytest.raises(BookingError, match=message) as refused:
        book(session_type, retainer, carol, when)
    assert refused.value.field == "starts_at"
    assert Booking.objects.count() == 0 and Email.objects.count() == 0


def test_a_taken_slot_and_a_full_day_are_refused(now, session_type, retainer, carol, schedule, workspace, bob):
    book(session_type, retainer, carol, at(10, 9))
    with pytest.raises(BookingError, match="just taken"):
        book(session_type, retainer, carol, at(10, 9, 30))  # overlaps 09:00-10:00
    schedule.daily_cap = 2
    schedule.save()
    book(session_type, retainer, carol, at(10, 13))
    with pytest.raises(BookingError, match="fully booked"):
        book(session_type, retainer, carol, at(10, 15))
    assert Booking.objects.count() == 2


def test_buffers_are_kept_around_bookings(now, session_type, retainer, carol, schedule):
    schedule.buffer_after_minutes = 15
    schedule.save()
    first = book(session_type, retainer, carol, at(10, 9))
    assert first.blocked_until == at(10, 10, 15)
    with pytest.raises(BookingError, match="just taken"):
        book(session_type, retainer, carol, at(10, 10))
    book(session_type, retainer, carol, at(10, 10, 30))


def test_busy_blocks_from_the_calendar_are_not_bookable(now, session_type, retainer, carol, workspace, bob):
    from delivery.models import BusyBlock, CalendarConnection

    connection = CalendarConnection.objects.create(
        workspace=workspace, member=bob, url="https://cal.example.com/", username="bob", password_sealed="x"
    )
    BusyBlock.objects.create(
        workspace=workspace, connection=connection, member=bob, starts_at=at(10, 9, 30), ends_at=at(10, 9, 45)
    )
    with pytest.raises(BookingError, match="just taken"):
        book(session_type, retainer, carol, at(10, 9))
    starts = booking.available_starts(session_type=session_type, first=date(2026, 3, 10), last=date(2026, 3, 10))
    assert at(10, 9) not in starts and at(10, 9, 30) not in starts and at(10, 10) in starts


def test_who_may_book_what(now, workspace, other_workspace, session_type, retainer, carol, alice, charlie):
    other_client_contact = factories.ContactFactory(client=factories.ClientFactory(workspace=workspace))
    with pytest.raises(BookingError, match="another client") as refused:
        booking.book(
            session_type=session_type, retainer=retainer, starts_at=at(10, 9), actor=alice, contact=other_client_contact
        )
    assert refused.value.field == "retainer"
    with pytest.raises(BookingError, match="team can book"):
        booking.book(session_type=session_type, retainer=retainer, starts_at=at(10, 9), actor=charlie)
    theirs = factories.make_retainer(workspace=other_workspace)
    with pytest.raises(BookingError, match="cannot be booked on that retainer"):
        booking.book(session_type=session_type, retainer=theirs, starts_at=at(10, 9), actor=charlie)
    booking_setup.set_session_type_active(session_type=session_type, active=False)
    with pytest.raises(BookingError, match="no longer be booked"):
        book(session_type, retainer, carol, at(10, 9))
    with pytest.raises(BookingError, match="Choose a time"):
        book(session_type, retainer, carol, None)
    assert Booking.objects.count() == 0


def test_a_member_who_left_the_team_takes_no_bookings(now, workspace, session_type, retainer, carol, bob):
    from retainers.models import Membership

    Membership.objects.filter(workspace=workspace, user=bob).delete()
    assert booking.available_starts(session_type=session_type, first=date(2026, 3, 10), last=date(2026, 3, 31)) == []
    assert booking.bookable_for_client(retainer.client) == []
    with pytest.raises(BookingError, match="is not taking bookings") as refused:
        book(session_type, retainer, carol, at(10, 9))
    assert refused.value.field == "session_type"


def test_only_the_chosen_retainers_and_live_ones_can_be_booked(now, workspace, session_type, retainer, carol, bob):
    another = make(retainer.client, name="Other")
    booking_setup.save_session_type(
        workspace=workspace, session_type=session_type, member=bob, name="Coaching call", duration_minutes=60,
        hours=D("1"), sessions=1, location="", reminder_minutes=[], all_retainers=False, retainers=[another],
    )  # fmt: skip
    with pytest.raises(BookingError, match="cannot be booked on that retainer"):
        book(session_type, retainer, carol, at(10, 9))
    assert [(t, rs) for t, rs in booking.bookable_for_client(retainer.client)] == [(session_type, [another])]
    services.pause_retainer(retainer=another, on=date(2026, 3, 9))
    with pytest.raises(BookingError, match="paused"):
        book(session_type, another, carol, at(10, 9))
    assert booking.bookable_for_client(retainer.client) == []


def test_a_day_after_the_retainer_ends_is_refused(now, session_type, acme, carol):
    short = make(acme, term_periods=1)  # ends 1 April
    with pytest.raises(BookingError, match="ends on 31 Mar 2026"):
        book(session_type, short, carol, at(1, 9, month=4))
    book(session_type, short, carol, at(31, 9))


def test_sessions_retainers_draw_sessions(now, session_type, acme, carol):
    sessions = make(acme, unit="sessions", units_per_period=D("4"))
    made = book(session_type, sessions, carol, at(10, 9))
    assert (made.units, made.unit) == (D("1"), "sessions")


def test_deliverables_retainers_cannot_be_booked(now, session_type, acme, carol):
    deliverables = make(acme, model="deliverables", deliverables=["Report"])
    with pytest.raises(BookingError, match="cannot be booked on that retainer"):
        book(session_type, deliverables, carol, at(10, 9))


# --- Units: refuse and bill ---------------------------------------------------------------------------


def test_a_retainer_whose_period_has_not_rolled_yet_books_ahead_on_its_allotment(now, session_type, acme, carol):
    lagging = factories.make_retainer(
        client=acme, starts_on=date(2026, 1, 1), overage_policy="refuse", units_per_period=D("1")
    )  # open period: January; today: March
    book(session_type, lagging, carol, at(10, 9))
    with pytest.raises(BookingError, match="only 0 hours can still be booked"):
        book(session_type, lagging, carol, at(11, 9))


def test_under_refuse_nothing_is_booked_beyond_the_balance_minus_what_is_booked(now, session_type, acme, carol):
    tight = make(acme, overage_policy="refuse", units_per_period=D("2"))
    services.record_delivery(
        retainer=tight, delivered_on=date(2026, 3, 2), quantity=D("0.5"), description="Call", actor=None
    )
    book(session_type, tight, carol, at(10, 9))  # 1.5 left, 1 booked
    with pytest.raises(BookingError, match=r"only 0.50 hours can still be booked in that period \(1 already booked\)"):
        book(session_type, tight, carol, at(11, 9))
    assert Booking.objects.filter(retainer=tight).count() == 1
    # The next period has its own allotment: booking ahead into April is fine.
    book(session_type, tight, carol, at(1, 9, month=4))


def test_under_bill_the_overage_price_is_shown_before_booking(now, session_type, acme, carol):
    billed = make(acme, overage_policy="bill", units_per_period=D("1"), overage_rate_minor=15000)
    assert booking.overage_quote(billed, units=D("1"), on=date(2026, 3, 10)) is None
    book(session_type, billed, carol, at(10, 9))
    quote = booking.overage_quote(billed, units=D("1"), on=date(2026, 3, 11))
    assert (quote.units, quote.amount_minor, quote.currency) == (D("1"), 15000, "GBP")
    book(session_type, billed, carol, at(11, 9))  # allowed: billed as overage later
    half = booking.overage_quote(billed, units=D("1.5"), on=date(2026, 3, 12))
    assert (half.units, half.amount_minor) == (D("1.5"), 22500)


def test_approved_overage_can_be_booked_and_held_and_approval_needed_refuses_booking_beyond(
    now, session_type, acme, carol, alice
):
    """Overage the client approved can be booked (and then held) beyond the balance; with approval
    needed, even a "bill" retainer offers no time beyond the balance and quotes no price."""
    from delivery import approvals

    tight = make(acme, overage_policy="bill", units_per_period=D("1"))
    services.set_collection(
        retainer=tight, auto_charge=False, pause_after_unpaid_days=None, overage_needs_approval=True
    )
    tight.refresh_from_db()
    book(session_type, tight, carol, at(10, 9))
    assert booking.overage_quote(tight, units=D("1"), on=date(2026, 3, 11)) is None
    with pytest.raises(BookingError, match="only 0 hours can still be booked"):
        book(session_type, tight, carol, at(11, 9))
    approval = approvals.offer_overage(retainer=tight)
    approvals.answer_overage(approval=approval, approve=True, quantity=D("1"), contact=carol, via="portal")
    second = book(session_type, tight, carol, at(11, 9))
    with pytest.raises(BookingError):
        book(session_type, tight, carol, at(12, 9))
    booking.mark_held(booking=second, actor=alice, now=at(11, 10, 30))
    assert balance(tight) == D("0")  # held: the allotted hour; the approved one stays reserved by the first booking
    assert Booking.objects.filter(retainer=tight, status="booked").count() == 1


# --- Rescheduling -------------------------------------------------------------------------------------


def test_rescheduling_moves_the_same_event_with_the_next_sequence(now, session_type, retainer, carol, bob):
    made = book(session_type, retainer, carol, at(11, 9))
    moved = booking.reschedule(booking=made, starts_at=at(12, 14), actor=carol.user, contact=carol)
    assert (moved.starts_at, moved.sequence, moved.changed_by, moved.uid) == (at(12, 14), 1, carol.user, made.uid)
    first, second = invitations(carol.email)
    (event,) = second.walk("VEVENT")
    assert str(event["UID"]) == made.uid and event["SEQUENCE"] == 1 and second["METHOD"] == "REQUEST"
    assert "has moved" in Email.objects.filter(to=bob.email).last().body_text
    # The old time is free again, the new one taken.
    starts = booking.available_starts(session_type=session_type, first=date(2026, 3, 11), last=date(2026, 3, 12))
    assert at(11, 9) in starts and at(12, 14) not in starts


def test_a_booking_can_move_onto_its_own_time_slice(now, session_type, retainer, carol):
    made = book(session_type, retainer, carol, at(11, 9))
    moved = booking.reschedule(booking=made, starts_at=at(11, 9, 30), actor=carol.user, contact=carol)
    assert moved.starts_at == at(11, 9, 30)  # overlapping its own old time is fine


def test_contacts_cannot_move_inside_the_window_but_members_can(now, session_type, retainer, carol, bob):
    made = book(session_type, retainer, carol, at(10, 9))  # 24 hours' window: closes 9 March 09:00 = now
    with pytest.raises(BookingError, match="until 24 hours before"):
        booking.reschedule(booking=made, starts_at=at(11, 9), actor=carol.user, contact=carol)
    moved = booking.reschedule(booking=made, starts_at=at(11, 9), actor=bob)
    assert moved.sequence == 1


def test_rescheduling_to_a_bad_time_writes_nothing(now, session_type, retainer, carol):
    made = book(session_type, retainer, carol, at(11, 9))
    other = book(session_type, retainer, carol, at(11, 13))
    with pytest.raises(BookingError, match="just taken"):
        booking.reschedule(booking=made, starts_at=at(11, 13), actor=carol.user, contact=carol)
    made.refresh_from_db()
    assert (made.starts_at, made.sequence) == (at(11, 9), 0)
    booking.cancel(booking=other, actor=carol.user, contact=carol)
    with pytest.raises(BookingError, match="already cancelled"):
        booking.reschedule(booking=other, starts_at=at(12, 9), actor=carol.user, contact=carol)


# --- Cancelling -------------------------------------------------------------------------------------------


def test_cancelling_before_the_window_returns_the_units(now, session_type, retainer, carol):
    made = book(session_type, retainer, carol, at(12, 9))
    cancelled = booking.cancel(booking=made, actor=carol.user, contact=carol, reason="Travelling")
    assert (cancelled.status, cancelled.sequence, cancelled.work_item) == (Booking.Status.CANCELLED, 1, None)
    assert cancelled.cancel_reason == "Travelling"
    assert booking.period_booked_units(open_period(retainer)) == 0 and balance(retainer) == D("10")
    cancel_invite = invitations(carol.email)[-1]
    assert cancel_invite["METHOD"] == "CANCEL"
    (event,) = cancel_invite.walk("VEVENT")
    assert event["STATUS"] == "CANCELLED" and event["SEQUENCE"] == 1 and str(event["UID"]) == made.uid
    assert at(12, 9) in booking.available_starts(
        session_type=session_type, first=date(2026, 3, 12), last=date(2026, 3, 12)
    )


def test_a_late_cancellation_keeps_the_units_when_the_policy_says_so(now, session_type, retainer, carol):
    made = book(session_type, retainer, carol, at(10, 9))
    late = booking.cancel(booking=made, actor=carol.user, contact=carol, now=at(9, 20))
    assert late.status == Booking.Status.LATE_CANCELLED
    item = WorkItem.objects.get(pk=late.work_item_id)
    assert (item.quantity, item.delivered_on, item.description) == (
        D("1"),
        date(2026, 3, 9),
        "Late cancellation: Coaching call",
    )
    assert balance(retainer) == D("9")
    assert "count as used" in Email.objects.filter(to=carol.email).last().body_text


def test_a_late_cancellation_returns_the_units_when_the_policy_says_so(now, session_type, retainer, carol):
    booking_setup.save_policy(
        retainer=retainer, cancel_window_hours=48, late_cancel=BookingPolicy.LateCancel.RETURN, no_show="consume",
        nudge_after_days=None,
    )  # fmt: skip
    made = book(session_type, retainer, carol, at(11, 9))  # 48 hours' window: already inside it
    late = booking.cancel(booking=made, actor=carol.user, contact=carol)
    assert (late.status, late.work_item) == (Booking.Status.LATE_CANCELLED, None)
    assert balance(retainer) == D("10")


def test_a_member_cancels_freely_or_as_late_on_purpose(now, session_type, retainer, carol, bob):
    first, second = book(session_type, retainer, carol, at(10, 9)), book(session_type, retainer, carol, at(10, 10))
    assert booking.cancel(booking=first, actor=bob).status == Booking.Status.CANCELLED
    assert booking.cancel(booking=second, actor=bob, late=True).status == Booking.Status.LATE_CANCELLED
    assert balance(retainer) == D("9")


def test_a_started_session_cannot_be_cancelled_by_the_contact(now, session_type, retainer, carol):
    made = book(session_type, retainer, carol, at(10, 9))
    with pytest.raises(BookingError, match="has started"):
        booking.cancel(booking=made, actor=carol.user, contact=carol, now=at(10, 9, 5))
    assert Booking.objects.get(pk=made.pk).status == Booking.Status.BOOKED


# --- Held and no-show ----------------------------------------------------------------------------------------


def test_marking_held_records_the_session_in_the_ledger_in_one_step(now, session_type, retainer, carol, bob, alice):
    made = book(session_type, retainer, carol, at(10, 9))
    with pytest.raises(BookingError, match="not started yet"):
        booking.mark_held(booking=made, actor=alice)
    held = booking.mark_held(booking=made, actor=alice, now=at(10, 10))
    item = held.work_item
    assert (held.status, held.settled_by) == (Booking.Status.HELD, alice)
    assert (item.quantity, item.delivered_on, item.delivered_by, item.created_by) == (
        D("1"),
        date(2026, 3, 10),
        bob,
        alice,
    )
    assert LedgerEntry.objects.get(work_item=item).quantity == D("-1")
    assert balance(retainer) == D("9")
    assert booking.period_booked_units(open_period(retainer)) == 0  # used now, no longer booked
    with pytest.raises(BookingError, match="already held"):
        booking.mark_held(booking=made, actor=alice, now=at(10, 10))
    assert WorkItem.objects.count() == 1


def test_held_fails_whole_when_the_ledger_refuses(now, session_type, acme, carol, alice):
    # Booked ahead on March's allotment while the open period is still January (billing has not
    # rolled it): the ledger has no open period for the session's day yet.
    lagging = factories.make_retainer(client=acme, starts_on=date(2026, 1, 1), units_per_period=D("1"))
    made = book(session_type, lagging, carol, at(10, 9))
    with pytest.raises(BookingError, match="after the current period"):
        booking.mark_held(booking=made, actor=alice, now=at(10, 10))
    made.refresh_from_db()
    assert (made.status, made.work_item) == (Booking.Status.BOOKED, None)
    assert WorkItem.objects.count() == 0


# --- Reserved units are kept from work logged by hand (the ledger's "refuse" rule) -------------------


def test_work_logged_by_hand_cannot_eat_the_units_a_booking_reserved(now, session_type, acme, carol, alice):
    tight = make(acme, overage_policy="refuse", units_per_period=D("3"))
    first, second = book(session_type, tight, carol, at(10, 9)), book(session_type, tight, carol, at(11, 9))
    with pytest.raises(services.DeliveryError) as refused:
        services.record_delivery(
            retainer=tight, delivered_on=date(2026, 3, 9), quantity=D("1.5"), description="Call", actor=alice
        )
    assert str(refused.value) == (
        "Only 1.00 hours left this period: 2.00 hours are reserved by upcoming bookings, "
        "and this retainer refuses overage."
    )
    assert refused.value.field == "quantity" and WorkItem.objects.count() == 0
    with pytest.raises(services.DeliveryError, match="2.00 hours are reserved by upcoming bookings"):
        services.adjust_balance(retainer=tight, quantity=D("-1.5"), reason="Goodwill reversed", actor=alice)
    services.record_delivery(
        retainer=tight, delivered_on=date(2026, 3, 9), quantity=D("1"), description="Call", actor=alice
    )  # what is not reserved can still be used
    # Each booking draws on its own reservation: both are held, and the period is used up exactly.
    booking.mark_held(booking=first, actor=alice, now=at(10, 10))
    booking.mark_held(booking=second, actor=alice, now=at(11, 10))
    assert balance(tight) == 0


def test_a_late_cancellation_that_keeps_the_units_draws_on_its_own_reservation(now, session_type, acme, carol):
    tight = make(acme, overage_policy="refuse", units_per_period=D("1"))
    made = book(session_type, tight, carol, at(10, 9))
    late = booking.cancel(booking=made, actor=carol.user, contact=carol, now=at(9, 20))
    assert late.status == Booking.Status.LATE_CANCELLED and late.work_item is not None
    assert balance(tight) == 0


def test_reservations_outside_the_open_period_do_not_hold_its_units(now, session_type, acme, carol, alice):
    tight = make(acme, overage_policy="refuse", units_per_period=D("1"))
    book(session_type, tight, carol, at(1, 9, month=4))  # April's allotment
    services.record_delivery(
        retainer=tight, delivered_on=date(2026, 3, 9), quantity=D("1"), description="Call", actor=alice
    )
    assert balance(tight) == 0


@pytest.mark.parametrize(("policy", "used"), [("consume", D("1")), ("return", D("0"))])
def test_a_no_show_uses_the_units_or_not_as_the_policy_says(now, session_type, retainer, carol, alice, policy, used):
    booking_setup.save_policy(
        retainer=retainer, cancel_window_hours=24, late_cancel="keep", no_show=policy, nudge_after_days=None
    )
    made = book(session_type, retainer, carol, at(10, 9))
    missed = booking.mark_no_show(booking=made, actor=alice, now=at(10, 9, 20))
    assert missed.status == Booking.Status.NO_SHOW
    assert balance(retainer) == D("10") - used
    assert (missed.work_item is not None) == (used > 0)


def test_emails_are_queued_once_per_change_whatever_happens_twice(now, session_type, retainer, carol, bob):
    made = book(session_type, retainer, carol, at(12, 9))
    booking.reschedule(booking=made, starts_at=at(12, 10), actor=bob)
    booking.cancel(booking=made, actor=bob)
    keys = sorted(Email.objects.values_list("key", flat=True))
    assert keys == sorted(
        f"booking-{made.pk}-{kind}-{seq}-{who}"
        for kind, seq in [("confirmed", 0), ("changed", 1), ("cancelled", 2)]
        for who in ("contact", "member")
    )
    assert len(mail.outbox) == 0  # sent after commit, by the outbox
