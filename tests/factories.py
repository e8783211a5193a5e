"""factory_boy factories: each builds valid objects inside one workspace."""

from __future__ import annotations

import factory
from allauth.account.models import EmailAddress
from faker import Faker

from clients.models import Client, Contact
from retainers.models import Membership, User, Workspace

PASSWORD = "correct-horse-battery-staple"
_fake = Faker()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def verified(obj: User, create: bool, extracted: bool | None, **kwargs: object) -> None:
        if create and extracted is not False:
            EmailAddress.objects.create(user=obj, email=obj.email, verified=True, primary=True)


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")
    slug = factory.Sequence(lambda n: f"workspace-{n}")
    timezone = "UTC"
    currency = "USD"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.MEMBER


class ClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Client

    workspace = factory.SubFactory(WorkspaceFactory)
    # A made-up company with a number: names are unique per workspace (the `client_name_unique`
    # constraint), and two random companies may share a name.
    name = factory.LazyAttributeSequence(lambda _, n: f"{_fake.company()} {n}")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    client = factory.SubFactory(ClientFactory)
    workspace = factory.SelfAttribute("client.workspace")
    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"contact{n}@client.example")


def make_retainer(*, workspace=None, client=None, starts_on=None, name="Advisory retainer", **terms):
    """A signed retainer with its first period open, made through the real service."""
    from datetime import date
    from decimal import Decimal

    from delivery.services import create_retainer

    client = client or ClientFactory(workspace=workspace)
    defaults = {
        "model": "rollover",
        "unit": "hours",
        "units_per_period": Decimal("10"),
        "price_minor": 200000,
        "currency": client.workspace.currency,
        "cadence": "monthly",
        "overage_policy": "bill",
        "overage_rate_minor": 15000,
        "term_periods": 12,
    }
    terms = {**defaults, **terms}
    if terms["model"] == "rollover":
        # A rollover has a cap and an expiry (the `rollover_terms` constraints); these defaults are
        # so loose that they never bite, as if there were none.
        terms.setdefault("rollover_cap", Decimal("1000"))
        terms.setdefault("rollover_expiry_periods", 120)
    return create_retainer(client=client, name=name, starts_on=starts_on or date(2026, 1, 1), terms=terms)
