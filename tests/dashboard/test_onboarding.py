"""The dashboard's getting-started checklist: ticked from the data, each step a link to its page,
gone when every step is done or the workspace dismissed it."""

from __future__ import annotations

import re

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from billing import connect
from billing.models import BillingProfile, StripeAccount
from clients.models import Contact
from dashboard.onboarding import checklist
from delivery.models import CalendarConnection
from retainers.models import Membership, Workspace
from tests.clients.helpers import make_plan
from tests.factories import ClientFactory, ContactFactory, make_retainer

pytestmark = pytest.mark.django_db


def ticked(workspace: Workspace) -> dict[str, bool]:
    workspace.refresh_from_db()
    found = checklist(workspace)
    return {} if found is None else {step.key: step.done for step in found.steps}


def complete_everything(workspace: Workspace, alice) -> None:
    BillingProfile.objects.update_or_create(
        workspace=workspace,
        defaults={"legal_name": "Northwind Ltd", "address": "1 High St"},
    )
    connect.use_test_account(workspace=workspace, account_id="acct_1")
    make_plan(workspace)
    retainer = make_retainer(workspace=workspace)
    ContactFactory(workspace=workspace, client=retainer.client, portal_access=True)
    CalendarConnection.objects.create(
        workspace=workspace, member=alice, url="https://cal.example/", username="a", password_sealed="x"
    )


def test_a_new_workspace_sees_every_step_undone_each_linking_to_its_page(workspace, owner_client):
    page = owner_client.get(reverse("dashboard", args=[workspace.slug])).content.decode()
    section = re.search(r'<section class="card stack" id="onboarding".*?</section>', page, re.S)
    assert section is not None
    for path in ("settings/billing/", "plans/new/", "clients/new/", "clients/", "booking/calendar/"):
        assert f'href="/w/{workspace.slug}/{path}' in section[0], path
    assert "0 of 6 done" in section[0]


def test_steps_are_ticked_from_the_data_not_from_clicks(workspace, alice):
    assert not any(ticked(workspace).values())
    BillingProfile.objects.update_or_create(workspace=workspace, defaults={"legal_name": "Northwind Ltd"})
    assert not ticked(workspace)["billing"]  # no address yet: invoices would not say where from
    BillingProfile.objects.filter(workspace=workspace).update(address="1 High St")
    assert ticked(workspace)["billing"]
    make_plan(workspace)
    assert ticked(workspace)["plan"]
    client = ClientFactory(workspace=workspace)
    assert not ticked(workspace)["retainer"]
    make_retainer(workspace=workspace, client=client)
    assert ticked(workspace)["retainer"]
    contact = ContactFactory(workspace=workspace, client=client)
    assert not ticked(workspace)["portal"]
    Contact.objects.filter(pk=contact.pk).update(portal_access=True)
    assert ticked(workspace)["portal"]
    account = StripeAccount.objects.create(workspace=workspace, account_id="acct_1")  # onboarding not finished
    assert not ticked(workspace)["stripe"]
    StripeAccount.objects.filter(pk=account.pk).update(charges_enabled=True)
    assert ticked(workspace)["stripe"]
    assert not ticked(workspace)["calendar"]


def test_the_checklist_is_gone_when_complete(workspace, alice, owner_client):
    complete_everything(workspace, alice)
    assert ticked(workspace) == {}
    page = owner_client.get(reverse("dashboard", args=[workspace.slug])).content.decode()
    assert 'id="onboarding"' not in page


def test_another_workspaces_data_ticks_nothing(workspace, other_workspace, charlie):
    complete_everything(other_workspace, charlie)
    assert not any(ticked(workspace).values())


def test_members_who_cannot_take_the_steps_see_no_checklist_and_cannot_dismiss_it(workspace, member_client):
    page = member_client.get(reverse("dashboard", args=[workspace.slug])).content.decode()
    assert 'id="onboarding"' not in page and "settings/billing/" not in page
    assert member_client.post(reverse("dashboard:onboarding_dismiss", args=[workspace.slug])).status_code == 403
    assert Workspace.objects.get(pk=workspace.pk).onboarding_dismissed_at is None


def test_dismissing_hides_it_for_the_whole_workspace_and_is_stored(workspace, owner_client, bob):
    url = reverse("dashboard:onboarding_dismiss", args=[workspace.slug])
    assert owner_client.get(url).status_code == 405
    response = owner_client.post(url)
    assert response.status_code == 302 and response.url == reverse("dashboard", args=[workspace.slug])
    dismissed_at = Workspace.objects.get(pk=workspace.pk).onboarding_dismissed_at
    assert dismissed_at is not None
    Membership.objects.filter(workspace=workspace, user=bob).update(role=Membership.Role.ADMIN)
    admin_client = HttpClient()
    admin_client.force_login(bob)
    for browser in (owner_client, admin_client):  # hidden for the other admin too
        page = browser.get(reverse("dashboard", args=[workspace.slug])).content.decode()
        assert 'id="onboarding"' not in page
    owner_client.post(url)  # twice: the first dismissal's time stays
    assert Workspace.objects.get(pk=workspace.pk).onboarding_dismissed_at == dismissed_at


def test_dismissing_another_workspaces_checklist_is_404(other_workspace, owner_client):
    response = owner_client.post(reverse("dashboard:onboarding_dismiss", args=[other_workspace.slug]))
    assert response.status_code == 404
    assert Workspace.objects.get(pk=other_workspace.pk).onboarding_dismissed_at is None
