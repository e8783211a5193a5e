"""Reminders to both sides: on the workspace's offsets, each exactly once, without a flood after downtime."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from renewals import services
from renewals.models import Renewal
from retainers import outbox
from retainers.models import Email
from tests.renewals.conftest import run

pytestmark = pytest.mark.django_db


def on(time_machine, day: date) -> None:
    time_machine.move_to(datetime(day.year, day.month, day.day, 8, tzinfo=UTC))  # 9:00 in London


def days(workspace, time_machine, first: date, last: date) -> None:
    """The daily job on each day from `first` to `last`, run twice a day (beat, then an operator)."""
    day = first
    while day <= last:
        on(time_machine, day)
        run(workspace, None)
        run(workspace, None)
        day += timedelta(days=1)


def reminders(renewal: Renewal, side: str) -> list[tuple[int, date]]:
    """(offset, local date queued) of each reminder to one side, oldest first."""
    rows = Email.objects.filter(key__startswith=f"renewal-{renewal.pk}-{side}-").order_by("created_at", "pk")
    return [(int(e.key.split("-")[3]), e.created_at.date()) for e in rows]


def test_unsent_proposal_reminds_the_team_and_warns_the_client_before_the_term_end(
    workspace, six_month_retainer, time_machine
):
    days(workspace, time_machine, date(2026, 5, 30), date(2026, 7, 1))
    renewal = Renewal.objects.get()
    # The team: 30 days before is the opening email itself; then 21, 14, 7 (its settings) and 1 (always).
    assert reminders(renewal, "consultant") == [
        (21, date(2026, 6, 10)),
        (14, date(2026, 6, 17)),
        (7, date(2026, 6, 24)),
        (1, date(2026, 6, 30)),
    ]
    # The client, never sent a proposal, still hears what happens at the term end: 7 and 1 days before.
    assert reminders(renewal, "client") == [(7, date(2026, 6, 24)), (1, date(2026, 6, 30))]
    warning = Email.objects.get(key__startswith=f"renewal-{renewal.pk}-client-7-")
    assert warning.to == "carol@acme.example"
    assert "Then your retainer ends." in warning.body_text and "/renewal/" not in warning.body_text
    assert not warning.secret  # no link to answer with: kept as sent
    assert Email.objects.filter(key__startswith=f"renewal-{renewal.pk}-opened-").count() == 1
    assert Renewal.objects.get().status == "lapsed"


def test_sent_proposal_reminds_the_client_with_the_links_and_the_team_that_no_answer_came(
    workspace, six_month_retainer, time_machine, alice
):
    days(workspace, time_machine, date(2026, 6, 1), date(2026, 6, 4))
    services.send_proposal(renewal=Renewal.objects.get(), actor=alice)  # 4 June: 27 days left
    days(workspace, time_machine, date(2026, 6, 5), date(2026, 6, 30))
    renewal = Renewal.objects.get()
    assert reminders(renewal, "client") == [
        (21, date(2026, 6, 10)),
        (14, date(2026, 6, 17)),
        (7, date(2026, 6, 24)),
        (3, date(2026, 6, 28)),
        (1, date(2026, 6, 30)),
    ]
    assert [offset for offset, _ in reminders(renewal, "consultant")] == [21, 14, 7, 1]
    last = Email.objects.get(key__startswith=f"renewal-{renewal.pk}-client-3-")
    assert last.subject == "Your renewal proposal is waiting: 3 days left"
    assert "/renewal/" in last.body_text and "If you do not answer by then, your retainer ends." in last.body_text
    assert outbox.send_email(last.pk) is True
    last.refresh_from_db()  # its accept and decline links act without signing in: redacted once sent
    assert last.status == Email.Status.SENT and last.secret and "/renewal/" not in last.body_text + last.body_html
    nudge = Email.objects.get(key__startswith=f"renewal-{renewal.pk}-consultant-7-")
    assert nudge.subject == "No answer yet: Acme Corp, 7 days to the term end"


def test_after_downtime_only_the_latest_due_reminder_is_sent(workspace, six_month_retainer, time_machine, alice):
    days(workspace, time_machine, date(2026, 6, 1), date(2026, 6, 2))
    services.send_proposal(renewal=Renewal.objects.get(), actor=alice)
    days(workspace, time_machine, date(2026, 6, 3), date(2026, 6, 8))
    days(workspace, time_machine, date(2026, 6, 25), date(2026, 6, 30))  # down from 9 to 24 June
    renewal = Renewal.objects.get()
    # 21 and 14 fell in the downtime and are not sent late; 7 goes out on the first day back.
    assert reminders(renewal, "client") == [(7, date(2026, 6, 25)), (3, date(2026, 6, 28)), (1, date(2026, 6, 30))]
    assert reminders(renewal, "consultant") == [(7, date(2026, 6, 25)), (1, date(2026, 6, 30))]


def test_a_renewal_opened_late_gets_its_opening_email_alone_that_day(workspace, six_month_retainer, time_machine):
    days(workspace, time_machine, date(2026, 6, 12), date(2026, 6, 13))  # opened late on the 12th (19 days left)
    renewal = Renewal.objects.get()
    assert renewal.opened_on == date(2026, 6, 1)  # the day it was due
    # 21 days before came due while it was not open; the opening email says it all. Next: 14 days before.
    assert reminders(renewal, "consultant") == []
    assert Email.objects.filter(key__startswith=f"renewal-{renewal.pk}-").count() == 1
    days(workspace, time_machine, date(2026, 6, 14), date(2026, 6, 17))
    assert reminders(renewal, "consultant") == [(14, date(2026, 6, 17))]


def test_answered_renewals_get_no_more_reminders(workspace, six_month_retainer, time_machine, alice):
    days(workspace, time_machine, date(2026, 6, 1), date(2026, 6, 2))
    renewal = services.send_proposal(renewal=Renewal.objects.get(), actor=alice)
    services.accept_renewal(renewal=renewal)
    days(workspace, time_machine, date(2026, 6, 3), date(2026, 6, 30))
    assert reminders(renewal, "client") == [] and reminders(renewal, "consultant") == []


def test_the_workspace_sets_the_offsets(workspace, six_month_retainer, time_machine, login, alice):
    response = login(alice).post(
        f"/w/{workspace.slug}/renewals/settings/", {"consultant_offsets": "10", "client_offsets": "5, 2"}
    )
    assert response.status_code == 302
    days(workspace, time_machine, date(2026, 6, 1), date(2026, 6, 2))
    services.send_proposal(renewal=Renewal.objects.get(), actor=alice)
    days(workspace, time_machine, date(2026, 6, 3), date(2026, 6, 30))
    renewal = Renewal.objects.get()
    assert [o for o, _ in reminders(renewal, "consultant")] == [10, 7, 1]
    assert [o for o, _ in reminders(renewal, "client")] == [7, 5, 2, 1]


def test_every_reminder_goes_to_every_recipient_once(workspace, six_month_retainer, time_machine, alice, bob):
    from retainers.models import Membership

    Membership.objects.filter(user=bob).update(role="admin")  # owners and admins hear about renewals
    days(workspace, time_machine, date(2026, 6, 1), date(2026, 6, 30))
    keys = Counter(Email.objects.filter(key__contains="-consultant-").values_list("to", flat=True))
    assert keys == {"alice@example.com": 4, "bob@example.com": 4}
    assert Email.objects.filter(key__contains="-consultant-").values("key").distinct().count() == 8
