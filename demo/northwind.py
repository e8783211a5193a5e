"""The demo workspace, Northwind Advisory: a consultant's clients with months of history.

Everything goes through the real services (`retainers.services`, `clients.services`,
`delivery.services` via `demo.story.ServiceBooks`), so the demo is exactly what the product
makes. Time is pinned to an anchor, the first day of the month `months` before the
workspace's today; quantities and wording come from a seeded `random.Random`, so two runs
on the same day build the same books. Then `demo.backoffice` bills and collects that history
and adds the notes, messages, tasks and renewals around it.

The cast, and what each shows:

- Acme Corp (Carol Chen has portal access): rollover hours with a cap and expiry, an overage
  month, and an amendment (more hours) taking effect mid-history. Its first term ends with
  this period: the renewal is proposed to Carol, whose latest message waits to be read.
- Globex Ltd: coaching sessions that refuse overage; paused this month, an invoice overdue.
- Initech: content deliverables, unfinished ones carried into the next month.
- Umbrella Health: board-pack deliverables, unfinished ones lapse. Its term ends with this
  period too; the renewal is open, not proposed yet.
- Vandelay Industries: a quarterly support desk that went over and carries a negative balance.
- Soylent Foods: a quarterly support desk whose unused rolled hours expired after a quarter.
- Pied Piper: fixed hours, cancelled at the end of this period.
- Wonka Confectionery: a three-month engagement that ended at its term, then a new retainer.
- Oscorp: a three-month engagement that ended; the client is archived.
- Hooli: a prospect, no retainer yet.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal as D

from allauth.account.models import EmailAddress
from django.db import transaction

from clients import services as client_services
from clients.models import Client, Contact, Plan, Retainer
from delivery.periods import add_months, index_containing
from demo import backoffice, catalog
from demo.story import ServiceBooks, Story, play
from retainers import services
from retainers.models import Membership, User, Workspace

PASSWORD = "demo-password-1"
OWNER = "alice@example.com"
TEAMMATE = "bob@example.com"
CONTACT = "carol@acme.example"
SLUG = "northwind-advisory"
NAME = "Northwind Advisory"


@dataclass
class Cast:
    client: str
    contacts: list[tuple[str, str, str]]  # name, email, role; Carol (portal access) is added separately
    retainers: list[tuple[str, str, Story, dict]] = field(default_factory=list)  # name, plan key, story, term overrides
    archive: bool = False  # archived once its retainers have ended


def cast(anchor: date, today: date) -> list[Cast]:
    def month(n: int, day: int = 0) -> date:
        return add_months(anchor, n) + timedelta(days=day)

    def current_seq(starts_on: date, cadence: str = "monthly") -> int:
        return index_containing(starts_on, cadence, today) + 1

    return [
        Cast(
            "Acme Corp",
            [("Dev Patel", "dev.patel@acme.example", "Finance Director")],
            [
                (
                    "Operations advisory",
                    "advisory",
                    Story(
                        starts_on=anchor,
                        intensity=(0.55, 0.8, 2.0, 0.4, 0.9, 1.1, 0.6),
                        amend_in=3,
                        amend_changes={"units_per_period": D("25"), "price_minor": 375000},
                        amend_reason="Scope grew with the new warehouse",
                    ),
                    # A short first term, to end with Acme's financial year: it ends with the current
                    # period, inside its notice, so the renewal is proposed.
                    {"term_periods": current_seq(anchor), "renewal_notice_days": 45},
                )
            ],
        ),
        Cast(
            "Globex Ltd",
            [("Hank Scorpio", "hank@globex.example", "CEO")],
            [
                (
                    "Leadership coaching",
                    "coaching",
                    Story(starts_on=month(0, 9), intensity=(0.75, 1.0, 1.3, 0.5, 1.0, 0.75), pause=True),
                    {},
                )
            ],
        ),
        Cast(
            "Initech",
            [("Peter Gibbons", "peter@initech.example", "Marketing Lead")],
            [
                (
                    "Content studio",
                    "content",
                    # A slow second month: everything carries into the third, with an extra piece.
                    Story(starts_on=anchor, delivered=(0.9, 0.0, 0.9, 0.7, 0.9, 0.8, 0.6), extras=(0, 1, 0, 0, 0.5, 0)),
                    {},
                )
            ],
        ),
        Cast(
            "Umbrella Health",
            [("Rebecca Chambers", "rebecca@umbrella.example", "Chief of Staff")],
            [
                (
                    "Board pack review",
                    "board",
                    # Nothing done in the third month: it lapses.
                    Story(starts_on=month(1), delivered=(0.9, 0.5, 0.0, 0.9, 0.8, 0.7), extras=0),
                    # Ends with the current period too; its renewal is open but not proposed yet.
                    {"term_periods": current_seq(month(1)), "renewal_notice_days": 45},
                )
            ],
        ),
        Cast(
            "Vandelay Industries",
            [("Art Vandelay", "art@vandelay.example", "Founder")],
            [("Support desk", "support", Story(starts_on=anchor, intensity=(1.3, 0.6, 0.5)), {})],
        ),
        Cast(
            "Soylent Foods",
            [("Sol Roth", "sol@soylent.example", "Head of Operations")],
            [("Support desk", "support", Story(starts_on=anchor, intensity=(0.5, 0.2, 0.6)), {})],
        ),
        Cast(
            "Pied Piper",
            [("Richard Hendricks", "richard@piedpiper.example", "CEO")],
            [
                (
                    "Fractional operations",
                    "fractional",
                    Story(
                        starts_on=month(0, 3),
                        intensity=(0.9, 1.3, 0.7, 1.0, 0.8, 1.1, 0.5),
                        cancel_in=current_seq(month(0, 3)),
                    ),
                    {"term_periods": 12},
                )
            ],
        ),
        Cast(
            "Wonka Confectionery",
            [("Charlie Bucket", "charlie@wonka.example", "Operations Manager")],
            [
                (
                    "Process review sprint",
                    "fractional",
                    Story(starts_on=anchor, intensity=(1.0, 1.2, 0.6)),
                    {"term_periods": 3},
                ),
                ("Operations advisory", "advisory", Story(starts_on=month(3), intensity=0.7), {}),
            ],
        ),
        Cast(
            "Oscorp",
            [("Harry Osborn", "harry@oscorp.example", "COO")],
            [("Supply chain review", "fractional", Story(starts_on=anchor, intensity=0.9), {"term_periods": 3})],
            archive=True,
        ),
        Cast("Hooli", [("Gavin Belson", "gavin@hooli.example", "CEO")]),
    ]


def demo_user(email: str, name: str) -> User:
    user = User.objects.filter(email=email).first() or User.objects.create_user(
        email=email, password=PASSWORD, name=name
    )
    EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
    return user


def is_seeded() -> bool:
    """Seeded once the workspace has retainers (a workspace from the first, smaller demo gets its history added)."""
    workspace = Workspace.objects.filter(slug=SLUG).first()
    return workspace is not None and Retainer.objects.for_workspace(workspace).exists()


@transaction.atomic
def seed_northwind(*, months: int, seed: int) -> Workspace:
    """Create the demo workspace with its team, plans, clients and `months` of retainer history,
    then its back office: invoices and payments, notes, messages, tasks and renewals."""
    outbox_before = backoffice.latest_email_id()
    alice = demo_user(OWNER, "Alice Archer")
    bob = demo_user(TEAMMATE, "Bob Baker")
    workspace = Workspace.objects.filter(slug=SLUG).first() or services.create_workspace(
        owner=alice, name=NAME, timezone_name="Europe/London", currency="GBP"
    )
    Membership.objects.get_or_create(workspace=workspace, user=bob, defaults={"role": Membership.Role.MEMBER})

    rng = random.Random(seed)
    today = workspace.today()
    anchor = add_months(today.replace(day=1), -months)
    # Northwind opened its account a month before the history starts, and set up its plans then.
    Workspace.objects.filter(pk=workspace.pk).update(
        created_at=backoffice.at(workspace, anchor - timedelta(days=30), 9)
    )
    plans = {
        key: Plan.objects.for_workspace(workspace).filter(name=template["name"]).first()
        or client_services.create_plan(
            workspace=workspace,
            name=template["name"],
            description=template["description"],
            terms=catalog.plan_terms(key, workspace.currency),
        )
        for key, template in catalog.PLANS.items()
    }
    Plan.objects.for_workspace(workspace).update(created_at=backoffice.at(workspace, anchor - timedelta(days=28), 11))
    for member in cast(anchor, today):
        client = Client.objects.for_workspace(workspace).filter(name=member.client).first()
        client = client or client_services.create_client(
            workspace=workspace, name=member.client, billing_email="accounts@" + member.contacts[0][1].split("@")[1]
        )
        if member.client == "Acme Corp":
            add_contact(client, "Carol Chen", CONTACT, "COO", portal_access=True)
        for name, email, role in member.contacts:
            add_contact(client, name, email, role)
        for name, key, story, terms in member.retainers:
            if story.starts_on > today:  # with little history, the later retainers are not signed yet
                continue
            books = ServiceBooks(client=client, name=name, plan=plans[key], terms=terms or None, actor=alice)
            play(books, story, rng, today=today)
        if member.archive and not Retainer.objects.filter(client=client).live().exists():
            client_services.archive_client(client=client)
        date_the_client(client, member, today=today)
    backoffice.play_back_office(workspace=workspace, alice=alice, bob=bob, rng=rng, today=today)
    backoffice.mark_emails_sent(workspace, after_id=outbox_before)
    return workspace


def date_the_client(client: Client, member: Cast, *, today: date) -> None:
    """A client was added (with its people) a little before its first retainer started, or, for a
    prospect, a couple of weeks ago: "client since" is in the past, not the day of the seed."""
    starts = [story.starts_on for _, _, story, _ in member.retainers if story.starts_on <= today]
    added_on = min(starts) - timedelta(days=10) if starts else today - timedelta(days=12)
    added_at = backoffice.at(client.workspace, added_on, 10)
    Client.objects.filter(pk=client.pk).update(created_at=added_at)
    Contact.objects.filter(client=client).update(created_at=added_at)


def add_contact(client: Client, name: str, email: str, role: str, *, portal_access: bool = False) -> None:
    if not Contact.objects.filter(workspace_id=client.workspace_id, email__iexact=email).exists():
        client_services.add_contact(client=client, name=name, email=email, role=role, portal_access=portal_access)
