"""Creating, editing, archiving clients, and 404 for every other workspace's object. (The client
page is tested in tests/dashboard/test_client_page.py.)"""

from __future__ import annotations

import pytest

from clients import services
from clients.models import Client, Contact, Plan
from tests import factories
from tests.clients.helpers import make_plan, url
from tests.factories import make_retainer

pytestmark = pytest.mark.django_db


def test_create_client_redirects_to_its_page(workspace, member_client):
    response = member_client.post(
        url(workspace, "client_create"),
        {"name": "  Acme Ltd ", "billing_email": "ap@acme.example", "address": "1 High St", "tax_id": "GB1"},
    )
    client = Client.objects.get(workspace=workspace)
    assert response.status_code == 302
    assert response.url == url(workspace, "dashboard:client_detail", client_id=client.pk)
    assert (client.name, client.billing_email, client.address, client.tax_id, client.status) == (
        "Acme Ltd",
        "ap@acme.example",
        "1 High St",
        "GB1",
        "active",
    )


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "ACME LTD"}, "name", "There is already a client called “ACME LTD”."),
        ({"name": ""}, "name", "This field is required."),
        ({"name": "New", "billing_email": "not-an-email"}, "billing_email", "Enter a valid email address."),
        ({"name": "x" * 201}, "name", "at most 200 characters"),
    ],
)
def test_invalid_client_form_shows_the_error_by_its_field_and_writes_nothing(
    workspace, owner_client, data, field, message
):
    factories.ClientFactory(workspace=workspace, name="Acme Ltd")
    response = owner_client.post(url(workspace, "client_create"), data)
    assert response.status_code == 200
    assert message in response.context["form"].errors[field][0]
    assert f'id="id_{field}_error"' in response.content.decode()
    assert Client.objects.for_workspace(workspace).count() == 1


def test_the_same_name_in_another_workspace_is_fine(workspace, other_workspace, owner_client):
    factories.ClientFactory(workspace=other_workspace, name="Acme Ltd")
    assert owner_client.post(url(workspace, "client_create"), {"name": "Acme Ltd"}).status_code == 302


def test_create_client_service_refuses_a_duplicate_name(workspace):
    services.create_client(workspace=workspace, name="Acme")
    with pytest.raises(services.ClientError) as raised:
        services.create_client(workspace=workspace, name=" acme ")
    assert raised.value.field == "name"


@pytest.mark.parametrize("taken", ["ACME", "acme", "Acme"])
def test_a_name_taken_after_the_check_is_refused_by_the_database_and_shown_by_the_field(
    workspace, owner_client, monkeypatch, taken
):
    """Two people adding "Acme" at once: the second passes the friendly check (blinded here, as
    if the first had not committed yet) and meets the `client_name_unique` constraint, which the
    page shows next to the name instead of failing."""
    factories.ClientFactory(workspace=workspace, name="Acme")
    monkeypatch.setattr(services, "client_name_taken", lambda **kwargs: False)
    response = owner_client.post(url(workspace, "client_create"), {"name": taken})
    assert response.status_code == 200
    assert response.context["form"].errors["name"] == [f"There is already a client called “{taken}”."]
    assert 'id="id_name_error"' in response.content.decode()
    globex = factories.ClientFactory(workspace=workspace, name="Globex")
    response = owner_client.post(url(workspace, "client_edit", client_id=globex.pk), {"name": taken})
    assert response.status_code == 200 and "name" in response.context["form"].errors
    assert sorted(Client.objects.for_workspace(workspace).values_list("name", flat=True)) == ["Acme", "Globex"]


def test_edit_client_keeps_its_own_name_in_another_case_but_not_anothers(workspace, owner_client):
    acme = factories.ClientFactory(workspace=workspace, name="Acme")
    factories.ClientFactory(workspace=workspace, name="Globex")
    edit_url = url(workspace, "client_edit", client_id=acme.pk)
    assert owner_client.get(edit_url).context["form"]["name"].value() == "Acme"
    response = owner_client.post(edit_url, {"name": "globex"})
    assert response.status_code == 200 and "name" in response.context["form"].errors
    response = owner_client.post(edit_url, {"name": "ACME", "billing_email": "a@acme.example"})
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.name, acme.billing_email) == ("ACME", "a@acme.example")


def test_archive_is_refused_while_a_retainer_is_live(workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace)
    make_retainer(client=client)
    response = owner_client.post(url(workspace, "client_archive", client_id=client.pk), follow=True)
    assert "has a live retainer" in response.content.decode()
    client.refresh_from_db()
    assert client.status == "active"


def test_archive_and_unarchive(workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace, name="Acme")
    response = owner_client.post(url(workspace, "client_archive", client_id=client.pk))
    assert response.url == url(workspace, "dashboard:client_detail", client_id=client.pk)
    client.refresh_from_db()
    assert client.status == "archived"
    assert "Unarchive" in owner_client.get(response.url).content.decode()
    owner_client.post(url(workspace, "client_unarchive", client_id=client.pk))
    client.refresh_from_db()
    assert client.status == "active"
    assert owner_client.get(url(workspace, "client_archive", client_id=client.pk)).status_code == 405


# --- Tenancy: every object URL with another workspace's id is a 404 and changes nothing ---------------


@pytest.fixture
def theirs(other_workspace):
    client = factories.ClientFactory(workspace=other_workspace, name="Their Client")
    contact = factories.ContactFactory(client=client, name="Their Contact", email="them@their.example")
    plan = make_plan(other_workspace, name="Their Plan")
    return {"client_id": client.pk, "contact_id": contact.pk, "plan_id": plan.pk}


@pytest.mark.parametrize(
    ("name", "param", "method"),
    [
        ("client_edit", "client_id", "get"),
        ("client_edit", "client_id", "post"),
        ("client_archive", "client_id", "post"),
        ("client_unarchive", "client_id", "post"),
        ("contact_create", "client_id", "get"),
        ("contact_create", "client_id", "post"),
        ("contact_edit", "contact_id", "get"),
        ("contact_edit", "contact_id", "post"),
        ("contact_remove", "contact_id", "post"),
        ("contact_portal", "contact_id", "post"),
        ("plan_edit", "plan_id", "get"),
        ("plan_edit", "plan_id", "post"),
        ("plan_archive", "plan_id", "post"),
        ("plan_unarchive", "plan_id", "post"),
    ],
)
def test_another_workspaces_object_is_404_and_untouched(workspace, owner_client, theirs, name, param, method):
    data = {
        "name": "Hijacked",
        "email": "x@example.com",
        "enabled": "1",
        "contact-name": "X",
        "contact-email": "x@example.com",
    }
    response = getattr(owner_client, method)(url(workspace, name, **{param: theirs[param]}), data)
    assert response.status_code == 404
    assert Client.objects.get(pk=theirs["client_id"]).name == "Their Client"
    assert Client.objects.get(pk=theirs["client_id"]).status == "active"
    contact = Contact.objects.get(pk=theirs["contact_id"])
    assert (contact.name, contact.portal_access) == ("Their Contact", False)
    assert Contact.objects.filter(client_id=theirs["client_id"]).count() == 1
    plan = Plan.objects.get(pk=theirs["plan_id"])
    assert (plan.name, plan.archived) == ("Their Plan", False)


def test_outsider_gets_404_for_the_workspace_pages(workspace, outsider_client):
    for name in ["client_list", "client_create", "client_import", "plan_list", "plan_create"]:
        assert outsider_client.get(url(workspace, name)).status_code == 404, name
