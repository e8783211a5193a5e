"""Contacts on the client page: add, edit, remove, and the portal access toggle."""

from __future__ import annotations

import pytest

from clients import services
from clients.models import Client, Contact
from retainers.models import Email
from tests import factories
from tests.clients.helpers import HTMX, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(workspace):
    return factories.ClientFactory(workspace=workspace, name="Acme")


def add(owner_client, workspace, client, **data):
    fields = {"name": "Carol Chen", "email": "carol@acme.example", "role": "COO", **data}
    return owner_client.post(
        url(workspace, "contact_create", client_id=client.pk), {f"contact-{k}": v for k, v in fields.items()}
    )


def test_add_contact_redirects_to_the_client_page(workspace, owner_client, acme):
    response = add(owner_client, workspace, acme, email="Carol@Acme.example")
    assert response.url == url(workspace, "dashboard:client_communication", client_id=acme.pk)
    contact = Contact.objects.get(client=acme)
    assert (contact.name, contact.email, contact.role, contact.workspace_id) == (
        "Carol Chen",
        "carol@acme.example",
        "COO",
        workspace.pk,
    )
    assert not contact.portal_access and not Email.objects.exists()


def test_add_contact_with_portal_access_emails_the_invitation(workspace, owner_client, acme):
    response = add(owner_client, workspace, acme, portal_access="on")
    page = owner_client.get(response.url).content.decode()
    assert "an invitation to sign in was emailed to carol@acme.example" in page
    assert Contact.objects.get(client=acme).portal_access
    assert Email.objects.filter(to="carol@acme.example").count() == 1


@pytest.mark.parametrize("email", ["CAROL@acme.example", "carol@acme.example"])
def test_an_email_used_by_any_contact_of_the_workspace_is_refused_next_to_the_field(
    workspace, owner_client, acme, email
):
    globex = factories.ClientFactory(workspace=workspace, name="Globex")
    factories.ContactFactory(client=globex, name="Carol Chen", email="carol@acme.example")
    response = add(owner_client, workspace, acme, email=email)
    assert response.status_code == 200
    assert response.context["form"].errors["email"] == ["Carol Chen at Globex already uses this email."]
    assert 'id="id_contact-email_error"' in response.content.decode()
    assert Contact.objects.filter(client=acme).count() == 0


def test_the_same_email_in_another_workspace_is_fine(workspace, other_workspace, owner_client, acme):
    factories.ContactFactory(client=factories.ClientFactory(workspace=other_workspace), email="carol@acme.example")
    assert add(owner_client, workspace, acme).status_code == 302


def test_add_contact_service_turns_the_constraint_into_a_field_error(workspace, acme):
    services.add_contact(client=acme, name="Carol", email="carol@acme.example")
    with pytest.raises(services.ClientError) as raised:
        services.add_contact(client=acme, name="Carol again", email="CAROL@acme.example")
    assert raised.value.field == "email"


def test_htmx_add_rerenders_the_contacts_card(workspace, owner_client, acme):
    response = owner_client.post(
        url(workspace, "contact_create", client_id=acme.pk),
        {"contact-name": "Carol Chen", "contact-email": "carol@acme.example"},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert "Carol Chen was added." in html and 'id="contacts-heading"' in html
    invalid = owner_client.post(
        url(workspace, "contact_create", client_id=acme.pk), {"contact-name": "", "contact-email": "x"}, **HTMX
    )
    assert invalid.status_code == 200
    assert "has-error" in invalid.content.decode() and "<details open>" in invalid.content.decode()
    assert Contact.objects.count() == 1


def test_edit_contact(workspace, owner_client, acme):
    contact = factories.ContactFactory(client=acme, name="Carol", email="carol@acme.example")
    response = owner_client.post(
        url(workspace, "contact_edit", contact_id=contact.pk),
        {"name": "Carol Chen", "email": "c.chen@acme.example", "role": "CFO"},
    )
    assert response.url == url(workspace, "dashboard:client_communication", client_id=acme.pk)
    contact.refresh_from_db()
    assert (contact.name, contact.email, contact.role) == ("Carol Chen", "c.chen@acme.example", "CFO")


def test_edit_contact_may_keep_its_own_email(workspace, owner_client, acme):
    contact = factories.ContactFactory(client=acme, email="carol@acme.example")
    response = owner_client.post(
        url(workspace, "contact_edit", contact_id=contact.pk), {"name": "Carol", "email": "CAROL@acme.example"}
    )
    assert response.status_code == 302


def test_email_of_a_contact_with_portal_access_cannot_change(workspace, owner_client, acme):
    contact = services.add_contact(client=acme, name="Carol", email="carol@acme.example", portal_access=True)
    response = owner_client.post(
        url(workspace, "contact_edit", contact_id=contact.pk), {"name": "Carol", "email": "other@acme.example"}
    )
    assert response.status_code == 200
    assert "Turn portal access off first" in response.context["form"].errors["email"][0]
    contact.refresh_from_db()
    assert contact.email == "carol@acme.example"
    with pytest.raises(services.ClientError):
        services.update_contact(contact=contact, name="Carol", email="other@acme.example", role="")
    # Off, change, on again: the new address gets the invitation.
    services.set_portal_access(contact=contact, enabled=False)
    edit_url = url(workspace, "contact_edit", contact_id=contact.pk)
    owner_client.post(edit_url, {"name": "Carol", "email": "new@acme.example"})
    owner_client.post(url(workspace, "contact_portal", contact_id=contact.pk), {"enabled": "1"})
    contact.refresh_from_db()
    assert contact.portal_access and contact.user.email == "new@acme.example"
    assert Email.objects.filter(to="new@acme.example").count() == 1


def test_remove_contact(workspace, owner_client, acme):
    contact = factories.ContactFactory(client=acme)
    response = owner_client.post(url(workspace, "contact_remove", contact_id=contact.pk))
    assert response.url == url(workspace, "dashboard:client_communication", client_id=acme.pk)
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert owner_client.get(url(workspace, "contact_remove", contact_id=contact.pk)).status_code == 405


def test_remove_over_htmx_rerenders_the_card(workspace, owner_client, acme):
    contact = factories.ContactFactory(client=acme, name="Carol Chen")
    response = owner_client.post(url(workspace, "contact_remove", contact_id=contact.pk), **HTMX)
    html = response.content.decode()
    assert "Carol Chen was removed." in html and "No contacts yet" in html


def test_portal_toggle_on_twice_queues_exactly_one_invitation(workspace, owner_client, acme):
    contact = factories.ContactFactory(client=acme, name="Carol", email="carol@acme.example")
    portal_url = url(workspace, "contact_portal", contact_id=contact.pk)
    first = owner_client.post(portal_url, {"enabled": "1"}, follow=True).content.decode()
    second = owner_client.post(portal_url, {"enabled": "1"}, follow=True).content.decode()
    assert "an invitation to sign in was emailed to carol@acme.example" in first
    assert "Portal access was already on for Carol." in second
    assert Email.objects.filter(to="carol@acme.example").count() == 1
    contact.refresh_from_db()
    assert contact.portal_access and contact.user is not None


def test_portal_toggle_off_and_over_htmx(workspace, owner_client, acme):
    contact = services.add_contact(client=acme, name="Carol", email="carol@acme.example", portal_access=True)
    response = owner_client.post(url(workspace, "contact_portal", contact_id=contact.pk), {"enabled": "0"}, **HTMX)
    assert "Portal access is off for Carol." in response.content.decode()
    contact.refresh_from_db()
    assert not contact.portal_access
    assert Email.objects.count() == 1  # turning off sends nothing


def test_portal_access_is_not_given_at_an_archived_client(workspace, owner_client, acme):
    contact = factories.ContactFactory(client=acme)
    Client.objects.filter(pk=acme.pk).update(status=Client.Status.ARCHIVED)
    page = owner_client.post(
        url(workspace, "contact_portal", contact_id=contact.pk), {"enabled": "1"}, follow=True
    ).content.decode()
    assert "unarchive it to give portal access" in page
    contact.refresh_from_db()
    assert not contact.portal_access and not Email.objects.exists()


def test_contact_form_page_for_no_js(workspace, owner_client, acme):
    response = owner_client.get(url(workspace, "contact_create", client_id=acme.pk))
    assert response.status_code == 200 and "Give portal access" in response.content.decode()
    invalid = add(owner_client, workspace, acme, email="nope")
    assert invalid.status_code == 200 and invalid.templates[0].name == "clients/contact_form.html"
