"""The life of one retainer, period by period, told to a set of books.

`play` draws what happens in each period (work logged, the odd correction, adjustment or
duplicate, deliverables moving on, an amendment, a cancellation, a pause) from a seeded
`random.Random` and tells it to `Books`: either the real delivery services (`ServiceBooks`,
used for the demo workspace) or their in-memory mirror (`demo.mirror.MemoryBooks`, used to
write bench workspaces in bulk). Both hear the same story, so both must end with the same
books; tests/demo checks that they do.

Every random draw of a period is made before anything is told to the books, so what the
books answer (a delivery refused under the "refuse" overage policy) never shifts the draws.

The story happens on its own days: both books stamp what they write with a `Clock` (work
logged at 17:00 on its day, periods closed at 01:00 on their end date, in the workspace's
zone), so a ledger of six months reads as six months, not as the day the demo was seeded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from django.utils import timezone

from clients.models import Client, Plan, Retainer
from delivery import services
from delivery.models import Deliverable, WorkItem
from demo import catalog
from retainers import audit
from retainers.models import User

ONE_DAY = timedelta(days=1)
HOURS = [Decimal(q) for q in ("0.5", "0.75", "1", "1.25", "1.5", "2", "2.5", "3", "4")]
SESSIONS = [Decimal("1")] * 5 + [Decimal("2")]


class Clock:
    """Made-up creation times for history written after the fact: `at(day, hour)` is that hour of
    `day` in the zone, never earlier than the time it gave before (so rows keep their order) and
    never later than now (the story's today is not over yet)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.last = datetime.min.replace(tzinfo=zone)

    def at(self, day: date, hour: int) -> datetime:
        self.last = max(self.last, datetime.combine(day, time(hour), tzinfo=self.zone))
        return min(self.last, timezone.now())


@dataclass
class Story:
    """What is decided up front for one retainer; the rest is drawn period by period."""

    starts_on: date
    # Figures per period: one for all, or one per period (seq 1, 2, …; the last one repeats).
    intensity: float | tuple[float, ...] = 0.8  # units used, as a share of the allotment
    delivered: float | tuple[float, ...] = 0.8  # chance that each deliverable is delivered
    extras: float | tuple[float, ...] = 0.2  # chance that the client asks for an extra deliverable
    amend_in: int | None = None  # the period (seq) in which the terms are amended, effective at its end
    amend_changes: dict[str, object] = field(default_factory=dict)
    amend_reason: str = ""
    cancel_in: int | None = None  # the period in which "cancel at period end" is ticked
    pause: bool = False  # paused in the period that contains today
    corrections: bool = True  # now and then an edited entry, a removed duplicate or an adjustment

    def of(self, figure: str, seq: int) -> float:
        value = getattr(self, figure)
        if isinstance(value, tuple):
            return value[min(seq, len(value)) - 1]
        return value


class Books[ItemT, DeliverableT](Protocol):
    """What `play` tells a retainer's books. Handles (items, deliverables) are the books' own."""

    def start(self, story: Story) -> None: ...
    def terms(self) -> dict[str, Any]: ...
    def open_period(self) -> tuple[int, date, date]: ...
    def deliverables(self) -> list[DeliverableT]: ...
    def record(
        self, *, on: date, quantity: Decimal, description: str, billable: bool, deliverable: DeliverableT | None
    ) -> ItemT | None: ...
    def edit(self, item: ItemT, *, quantity: Decimal) -> ItemT | None: ...
    def remove(self, item: ItemT) -> None: ...
    def adjust(self, *, on: date, quantity: Decimal, reason: str) -> None: ...
    def add_extra(self, *, on: date, name: str) -> None: ...
    def progress(self, deliverable: DeliverableT, *, status: str, on: date) -> None: ...
    def amend(self, *, on: date, changes: dict[str, object], reason: str) -> None: ...
    def cancel(self, *, on: date) -> None: ...
    def pause(self, *, on: date) -> None: ...
    def close(self, *, as_of: date) -> bool: ...


@dataclass
class Event:
    on: date
    kind: str  # "work", "adjust", "extra" (deliverable) or "progress"
    quantity: Decimal = Decimal("0")
    text: str = ""
    billable: bool = True
    deliverable: int | None = None  # index into the period's deliverables
    status: str = ""
    edit_to: Decimal | None = None  # corrected right after logging
    duplicate: bool = False  # logged twice by mistake, the copy removed right away


def play[ItemT, DeliverableT](
    books: Books[ItemT, DeliverableT], story: Story, rng: random.Random, *, today: date
) -> None:
    """Sign the retainer and live through its periods up to `today`, closing each that has ended."""
    books.start(story)
    while True:
        seq, start_on, end_on = books.open_period()
        current = end_on > today
        last_day = min(end_on - ONE_DAY, today)
        for event in draw_period(books, story, rng, seq=seq, start_on=start_on, end_on=end_on, last_day=last_day):
            tell(books, event)
        if story.amend_in == seq:
            books.amend(on=last_day, changes=story.amend_changes, reason=story.amend_reason)
        if story.cancel_in == seq:
            books.cancel(on=last_day)
        if current:
            if story.pause:
                books.pause(on=last_day)
            return
        if not books.close(as_of=end_on):
            return


def draw_period[ItemT, DeliverableT](
    books: Books[ItemT, DeliverableT],
    story: Story,
    rng: random.Random,
    *,
    seq: int,
    start_on: date,
    end_on: date,
    last_day: date,
) -> list[Event]:
    """What happens in one period, in date order. Only the period that contains today is partial."""
    terms = books.terms()
    span = (last_day - start_on).days
    elapsed = (span + 1) / (end_on - start_on).days
    day = lambda: start_on + timedelta(days=rng.randint(0, span))  # noqa: E731
    events: list[Event] = []
    if terms["model"] == "deliverables":
        since = [start_on] * len(books.deliverables())
        if rng.random() < story.of("extras", seq) * elapsed:  # one more piece, billed as an extra
            added_on = day()
            events.append(Event(added_on, "extra", text=rng.choice(catalog.EXTRA_DELIVERABLES)))
            since.append(added_on)
        delivered = story.of("delivered", seq) * elapsed
        for index, begun_on in enumerate(since):
            roll = rng.random()
            finished_on = begun_on + timedelta(days=rng.randint(0, (last_day - begun_on).days))
            if roll < delivered:
                status = "delivered"
            elif roll < delivered + 0.15:
                status = "in_progress"
            else:
                continue
            for step in catalog.DELIVERABLE_WORK[: rng.randint(1, 3)]:
                on = begun_on + timedelta(days=rng.randint(0, (finished_on - begun_on).days))
                events.append(Event(on, "work", rng.choice(HOURS), step, billable=False, deliverable=index))
            events.append(Event(finished_on, "progress", deliverable=index, status=status))
    else:
        sessions = terms["unit"] == "sessions"
        target = float(terms["units_per_period"]) * story.of("intensity", seq) * rng.uniform(0.8, 1.2) * elapsed
        logged = 0.0
        while logged < target:
            quantity = rng.choice(SESSIONS if sessions else HOURS)
            logged += float(quantity)
            text = rng.choice(catalog.SESSION_WORK if sessions else catalog.HOURS_WORK)
            event = Event(day(), "work", quantity, text)
            if story.corrections:
                roll = rng.random()
                if roll < 0.03:
                    event.edit_to = quantity + (1 if sessions else Decimal("0.25"))
                elif roll < 0.04:
                    event.duplicate = True
                elif roll < 0.08 and not sessions:
                    events.append(Event(event.on, "work", rng.choice(HOURS), catalog.NOT_BILLED, billable=False))
            events.append(event)
        if story.corrections and rng.random() < 0.06:
            quantity, reason = rng.choice(catalog.ADJUSTMENTS)
            events.append(Event(day(), "adjust", quantity, reason))
    events.sort(key=lambda e: e.on)  # stable: same-day events keep their order
    return events


def tell[ItemT, DeliverableT](books: Books[ItemT, DeliverableT], event: Event) -> None:
    if event.kind == "adjust":
        books.adjust(on=event.on, quantity=event.quantity, reason=event.text)
        return
    if event.kind == "extra":
        books.add_extra(on=event.on, name=event.text)
        return
    deliverable = None if event.deliverable is None else books.deliverables()[event.deliverable]
    if event.kind == "progress":
        assert deliverable is not None  # progress is drawn for a deliverable
        books.progress(deliverable, status=event.status, on=event.on)
        return
    item = books.record(
        on=event.on, quantity=event.quantity, description=event.text, billable=event.billable, deliverable=deliverable
    )
    if item is None:
        return
    if event.edit_to is not None:
        books.edit(item, quantity=event.edit_to)
    if event.duplicate:
        copy = books.record(
            on=event.on, quantity=event.quantity, description=event.text, billable=event.billable, deliverable=None
        )
        if copy is not None:
            books.remove(copy)


class ServiceBooks:
    """The real thing: every step is a call of delivery.services, exactly as the product makes it."""

    def __init__(
        self,
        *,
        client: Client,
        name: str,
        actor: User | None,
        plan: Plan | None = None,
        terms: dict[str, object] | None = None,
    ) -> None:
        self.client, self.name, self.actor, self.plan, self.initial_terms = client, name, actor, plan, terms
        self.clock = Clock(client.workspace.tzinfo)
        self.retainer: Retainer  # signed by start()
        self._deliverables: tuple[int, list[Deliverable]] | None = None

    def start(self, story: Story) -> None:
        self.retainer = services.create_retainer(
            client=self.client,
            name=self.name,
            starts_on=story.starts_on,
            plan=self.plan,
            terms=self.initial_terms,
            now=self.clock.at(story.starts_on, 9),
        )

    def terms(self) -> dict[str, object]:
        return self.retainer.terms()

    def open_period(self) -> tuple[int, date, date]:
        period = services.open_period(self.retainer)
        assert period is not None  # the story is told while the retainer lives
        return period.seq, period.start_on, period.end_on

    def deliverables(self) -> list[Deliverable]:
        period = services.open_period(self.retainer)
        assert period is not None  # the story is told while the retainer lives
        if self._deliverables is None or self._deliverables[0] != period.pk:
            self._deliverables = (period.pk, list(Deliverable.objects.filter(period=period).order_by("pk")))
        return self._deliverables[1]

    def _refusable(self, call, **kwargs):
        """Run a service; under the "refuse" overage policy a refusal is part of the story."""
        try:
            return call(**kwargs)
        except services.DeliveryError:
            if self.retainer.overage_policy != "refuse":
                raise
            return None

    def record(
        self, *, on: date, quantity: Decimal, description: str, billable: bool, deliverable: Deliverable | None
    ) -> WorkItem | None:
        return self._refusable(
            services.record_delivery,
            retainer=self.retainer,
            delivered_on=on,
            quantity=quantity,
            description=description,
            billable=billable,
            deliverable=deliverable,
            actor=self.actor,
            now=self.clock.at(on, 17),
        )

    def edit(self, item: WorkItem, *, quantity: Decimal) -> WorkItem | None:
        return self._refusable(
            services.edit_delivery,
            item=item,
            delivered_on=item.delivered_on,
            quantity=quantity,
            description=item.description,
            billable=item.billable,
            deliverable=item.deliverable,
            actor=self.actor,
            now=self.clock.at(item.delivered_on, 17),
        )

    def remove(self, item: WorkItem) -> None:
        services.remove_delivery(item=item, actor=self.actor, now=self.clock.at(item.delivered_on, 17))

    def adjust(self, *, on: date, quantity: Decimal, reason: str) -> None:
        self._refusable(
            services.adjust_balance,
            retainer=self.retainer,
            quantity=quantity,
            reason=reason,
            actor=self.actor,
            now=self.clock.at(on, 12),
        )

    def add_extra(self, *, on: date, name: str) -> None:
        extra = services.add_deliverable(retainer=self.retainer, name=name, actor=self.actor, now=self.clock.at(on, 10))
        self.deliverables().append(extra)

    def progress(self, deliverable: Deliverable, *, status: str, on: date) -> None:
        services.set_deliverable_status(deliverable=deliverable, status=status, actor=self.actor, on=on)

    def amend(self, *, on: date, changes: dict[str, object], reason: str) -> None:
        with audit.recorded_at(self.clock.at(on, 11)):
            services.amend_retainer(
                retainer=self.retainer, terms=changes, reason=reason, actor=self.actor, now=self.clock.at(on, 11)
            )

    def cancel(self, *, on: date) -> None:
        with audit.recorded_at(self.clock.at(on, 11)):
            services.cancel_at_period_end(retainer=self.retainer)

    def pause(self, *, on: date) -> None:
        with audit.recorded_at(self.clock.at(on, 11)):
            services.pause_retainer(retainer=self.retainer, on=on)

    def close(self, *, as_of: date) -> bool:
        services.close_and_open_period(retainer=self.retainer, as_of=as_of, now=self.clock.at(as_of, 1))
        self.retainer.refresh_from_db()
        return self.retainer.status == Retainer.Status.ACTIVE
