"""Two people booking the last slot at once: exactly one wins. Real transactions on two threads.

The service serialises bookings with one member on their schedule row; under it, the database's
exclusion constraint refuses overlapping active bookings whatever wrote them. Both are tested.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
import time_machine
from django.db import IntegrityError, OperationalError, close_old_connections, transaction

from delivery import booking, booking_setup, services
from delivery.models import Booking, Schedule, SessionType
from retainers import tenancy
from retainers.models import Membership, Workspace
from tests import factories
from tests.booking.conftest import WEEKDAY_HOURS, at

NOW = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)


def race(*actions: Callable[[], object], workspace: Workspace) -> list[str]:
    """Run the actions at the same moment on threads, each in its own connection and, as a request
    would, in the workspace (a new connection starts behind the row-level wall); what each got."""
    barrier = threading.Barrier(len(actions))
    outcomes: list[str] = []

    def run(action: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            with tenancy.use_workspace(workspace):
                action()
            outcomes.append("ok")
        except booking.BookingError as error:
            outcomes.append(f"refused: {error}")
        except services.DeliveryError as error:
            outcomes.append(f"refused: {error}")
        except IntegrityError as error:
            outcomes.append(f"integrity: {error}")
        except OperationalError as error:
            outcomes.append(f"aborted: {error}")
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(outcomes)


@pytest.fixture
def setup():
    workspace = factories.WorkspaceFactory(timezone="Europe/London")
    member = factories.UserFactory()
    factories.MembershipFactory(workspace=workspace, user=member, role=Membership.Role.OWNER)
    booking_setup.save_schedule(
        workspace=workspace,
        member=member,
        settings={
            "timezone": "",
            "buffer_before_minutes": 0,
            "buffer_after_minutes": 0,
            "min_notice_minutes": 60,
            "horizon_days": 30,
            "daily_cap": None,
            "step_minutes": 60,
        },
        weekly={day: WEEKDAY_HOURS for day in range(5)},
    )
    session_type = booking_setup.save_session_type(
        workspace=workspace, session_type=None, member=member, name="Call", duration_minutes=60, hours=D("1"),
        sessions=1, location="", reminder_minutes=[], all_retainers=True, retainers=[],
    )  # fmt: skip
    contacts = []
    for name in ("First", "Second"):
        client = factories.ClientFactory(workspace=workspace, name=name)
        factories.make_retainer(client=client, starts_on=date(2026, 3, 1))
        user = factories.UserFactory()
        contacts.append(factories.ContactFactory(client=client, user=user, portal_access=True))
    yield workspace, member, session_type, contacts
    Booking.objects.filter(workspace=workspace).delete()


def book_as(contact, session_type, when):
    retainer = contact.client.retainers.get()
    return lambda: booking.book(
        session_type=SessionType.objects.get(pk=session_type.pk),
        retainer=retainer,
        starts_at=when,
        actor=contact.user,
        contact=contact,
    )


@pytest.mark.django_db(transaction=True)
def test_two_contacts_booking_the_last_slot_at_once_exactly_one_wins(setup):
    workspace, member, session_type, (first, second) = setup
    with time_machine.travel(NOW, tick=False):
        # Make 10 March's 16:00 the only free slot that day.
        Schedule.objects.filter(workspace=workspace, member=member).update(daily_cap=1)
        outcomes = race(
            book_as(first, session_type, at(10, 16)), book_as(second, session_type, at(10, 16)), workspace=workspace
        )
    assert outcomes[0] == "ok" and outcomes[1].startswith("refused: ")
    assert Booking.objects.filter(workspace=workspace, status="booked").count() == 1


@pytest.mark.django_db(transaction=True)
def test_overlapping_times_race_too(setup):
    workspace, member, session_type, (first, second) = setup
    Schedule.objects.filter(workspace=workspace, member=member).update(step_minutes=30)
    with time_machine.travel(NOW, tick=False):
        outcomes = race(
            book_as(first, session_type, at(10, 9)), book_as(second, session_type, at(10, 9, 30)), workspace=workspace
        )
    assert outcomes[0] == "ok" and "just taken" in outcomes[1]


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_overlapping_active_bookings_whatever_wrote_them(setup):
    """Bypass the service (and its lock): two transactions inserting overlapping bookings of one
    member at once. The exclusion constraint lets exactly one commit."""
    workspace, member, session_type, (first, second) = setup

    def insert(contact, start: datetime, uid: str) -> Callable[[], object]:
        def action() -> None:
            with transaction.atomic():
                Booking.objects.create(
                    workspace=workspace, session_type=session_type, retainer=contact.client.retainers.get(),
                    client=contact.client, contact=contact, member=member, starts_at=start,
                    ends_at=start + timedelta(hours=1), blocked_from=start, blocked_until=start + timedelta(hours=1),
                    units=D("1"), unit="hours", uid=uid,
                )  # fmt: skip

        return action

    won, lost = race(insert(first, at(10, 9), "a@test"), insert(second, at(10, 9, 30), "b@test"), workspace=workspace)[
        ::-1
    ]
    # The loser is refused by the constraint, or, when both inserted before either checked, each waits
    # for the other and PostgreSQL's deadlock detector aborts one (how exclusion constraints resolve it).
    refused = lost.startswith("integrity: ") and "booking_no_overlap" in lost
    assert won == "ok" and (refused or (lost.startswith("aborted: ") and "deadlock detected" in lost)), lost
    assert Booking.objects.filter(workspace=workspace, status="booked").count() == 1
    # Back to back is no overlap (half-open ranges); a cancelled booking holds no time.
    insert(first, at(10, 11), "c@test")()
    insert(second, at(10, 12), "d@test")()
    Booking.objects.filter(workspace=workspace, uid__in=["a@test", "b@test"]).update(status="cancelled")
    insert(second, at(10, 9, 30), "e@test")()
    assert Booking.objects.filter(workspace=workspace, status="booked").count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_booking_and_work_logged_by_hand_race_for_the_last_hour_exactly_one_wins(setup):
    """Under "refuse", booking the last hour and logging it by hand at once: both lock the retainer
    row first, so the second sees the first's booking (reserved) or delivery (used) and is refused."""
    workspace, member, session_type, (first, _) = setup
    retainer = first.client.retainers.get()
    retainer.overage_policy = "refuse"
    retainer.save(update_fields=["overage_policy"])
    services.record_delivery(
        retainer=retainer, delivered_on=date(2026, 3, 2), quantity=D("9"), description="Most of it", actor=None
    )

    def log_by_hand() -> None:
        services.record_delivery(
            retainer=retainer, delivered_on=date(2026, 3, 9), quantity=D("1"), description="Last hour", actor=None
        )

    with time_machine.travel(NOW, tick=False):
        outcomes = race(book_as(first, session_type, at(10, 9)), log_by_hand, workspace=workspace)
    assert outcomes[0] == "ok" and outcomes[1].startswith("refused: "), outcomes
    booked = Booking.objects.filter(workspace=workspace, status="booked").count()
    logged = retainer.work_items.filter(description="Last hour").count()
    assert booked + logged == 1
    retainer.refresh_from_db()
    assert retainer.balance == D("1") - logged
