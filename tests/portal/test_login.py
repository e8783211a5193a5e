"""Portal sign-in by emailed code, end to end: invitation, code, landing page, chooser, logout."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.core import mail
from django.test import Client as Browser

from clients.models import Contact
from clients.services import add_contact, set_portal_access
from retainers.models import Email
from tests import factories

pytestmark = pytest.mark.django_db

CODE = re.compile(r"^\s*([A-Z0-9]{4}-[A-Z0-9]{4})\s*$", re.MULTILINE)  # allauth's default: 8 chars, dashed


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href, self._link_text = dict(attrs).get("href") or "", []

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, " ".join(" ".join(self._link_text).split())))
            self._href = None

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        if self._href is not None:
            self._link_text.append(data)


def read(response) -> _Text:
    parser = _Text()
    parser.feed(response.content.decode())
    return parser


def page_text(response) -> str:
    return " ".join(" ".join(read(response).parts).split())


def is_signed_in(browser: Browser) -> bool:
    return "_auth_user_id" in browser.session


@pytest.fixture
def acme(workspace):
    return factories.ClientFactory(workspace=workspace, name="Acme Corp")


@pytest.fixture
def carol(acme, django_capture_on_commit_callbacks) -> Contact:
    """Carol at Acme, a client of Northwind Advisory, with portal access (and its invitation sent)."""
    with django_capture_on_commit_callbacks(execute=True):
        contact = add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)
    mail.outbox.clear()
    return contact


def request_code(browser: Browser, email: str, capture) -> str:
    """Ask for a code at /portal/login/ and read it from the email that arrives."""
    before = set(Email.objects.filter(to=email).values_list("pk", flat=True))
    with capture(execute=True):
        response = browser.post("/portal/login/", {"email": email})
    assert response.status_code == 302
    assert response.url == "/portal/login/code/?next=/portal/"
    [row] = Email.objects.filter(to=email).exclude(pk__in=before)
    # The code is read from what was sent: the outbox row is redacted once sent (it signs in).
    assert row.secret and row.status == Email.Status.SENT and not CODE.search(row.body_text)
    [sent] = [m for m in mail.outbox if m.to == [email] and m.extra_headers.get("Message-ID") == row.message_id]
    match = CODE.search(sent.body)
    assert match, sent.body
    return match.group(1)


def sign_in(browser: Browser, email: str, capture):
    code = request_code(browser, email, capture)
    return browser.post("/portal/login/code/?next=/portal/", {"code": code, "next": "/portal/"}, follow=True)


def test_granting_portal_access_emails_the_contact_an_invitation(acme, workspace, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        contact = add_contact(client=acme, name="Carol Chen", email="Carol@Acme.example", portal_access=True)
    assert contact.portal_access and contact.user is not None
    assert contact.user.email == "carol@acme.example"

    row = Email.objects.get(to="carol@acme.example")
    assert row.from_name == "Northwind Advisory"
    assert row.subject == "Your client portal with Northwind Advisory"
    assert "/portal/login/?email=carol%40acme.example" in row.body_text
    assert "Acme Corp" in row.body_text and row.body_html
    [message] = mail.outbox
    assert message.to == ["carol@acme.example"]
    assert message.from_email.startswith("Northwind Advisory <")


def test_contact_without_portal_access_gets_no_invitation(acme, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        contact = add_contact(client=acme, name="Carl Cho", email="carl@acme.example")
    assert contact.user is None
    assert not Email.objects.exists() and mail.outbox == []


def test_login_page_prefills_the_email_from_the_invitation_link(carol, client):
    response = client.get("/portal/login/?email=carol%40acme.example")
    assert response.status_code == 200
    assert 'value="carol@acme.example"' in response.content.decode()


def test_contact_signs_in_with_the_emailed_code_and_lands_on_their_portal(
    carol, workspace, client, django_capture_on_commit_callbacks
):
    code_email_count = len(mail.outbox)
    code = request_code(client, "carol@acme.example", django_capture_on_commit_callbacks)
    assert len(mail.outbox) == code_email_count + 1
    assert Email.objects.filter(to="carol@acme.example").latest("created_at").from_name == "Retainers"
    assert not is_signed_in(client)

    page = client.get("/portal/login/code/?next=/portal/")
    assert page.status_code == 200
    assert 'name="code"' in page.content.decode()

    response = client.post("/portal/login/code/?next=/portal/", {"code": code, "next": "/portal/"}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == f"/portal/w/{workspace.slug}/"
    assert "Northwind Advisory" in page_text(response)
    assert "Acme Corp" in page_text(response)
    assert int(client.session["_auth_user_id"]) == carol.user_id
    assert client.get("/portal/").url == f"/portal/w/{workspace.slug}/"


def test_code_cannot_be_used_again_after_signing_out(carol, client, django_capture_on_commit_callbacks):
    code = request_code(client, "carol@acme.example", django_capture_on_commit_callbacks)
    client.post("/portal/login/code/?next=/portal/", {"code": code, "next": "/portal/"})
    client.post("/portal/logout/")
    assert not is_signed_in(client)
    response = client.post("/portal/login/code/?next=/portal/", {"code": code, "next": "/portal/"})
    assert response.status_code == 302 and not is_signed_in(client)


def test_contact_of_clients_in_two_workspaces_gets_a_chooser(
    carol, workspace, other_workspace, client, django_capture_on_commit_callbacks
):
    globex = factories.ClientFactory(workspace=other_workspace, name="Acme (US)")
    with django_capture_on_commit_callbacks(execute=True):
        second = add_contact(client=globex, name="Carol Chen", email="carol@acme.example", portal_access=True)
    assert second.user_id == carol.user_id  # one person, one login

    response = sign_in(client, "carol@acme.example", django_capture_on_commit_callbacks)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/portal/"
    links = dict(read(response).links)
    assert "Northwind Advisory" in links[f"/portal/w/{workspace.slug}/"]
    assert "Southwind Partners" in links[f"/portal/w/{other_workspace.slug}/"]

    for slug, name in [(workspace.slug, "Northwind Advisory"), (other_workspace.slug, "Southwind Partners")]:
        page = client.get(f"/portal/w/{slug}/")
        assert page.status_code == 200
        assert name in page_text(page)
        assert "Switch consultant" in page_text(page)


def test_wrong_code_shows_an_error_and_does_not_sign_in(carol, client, django_capture_on_commit_callbacks):
    code = request_code(client, "carol@acme.example", django_capture_on_commit_callbacks)
    wrong = "BBBB-BBBB" if code != "BBBB-BBBB" else "CCCC-CCCC"
    response = client.post("/portal/login/code/?next=/portal/", {"code": wrong, "next": "/portal/"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="field has-error"' in html
    assert "Incorrect code." in page_text(response)
    assert not is_signed_in(client)
    assert client.get("/portal/").url == "/portal/login/"

    # The right code still works afterwards: one miss does not burn the attempt.
    response = client.post("/portal/login/code/?next=/portal/", {"code": code, "next": "/portal/"})
    assert response.status_code == 302 and is_signed_in(client)


def test_signed_in_contact_is_kept_out_of_the_consultant_pages(
    carol, workspace, client, django_capture_on_commit_callbacks
):
    sign_in(client, "carol@acme.example", django_capture_on_commit_callbacks)
    assert is_signed_in(client)
    assert client.get(f"/w/{workspace.slug}/").status_code == 404
    assert client.get(f"/w/{workspace.slug}/team/").status_code == 404
    assert client.get("/").url == "/portal/"


def test_portal_logout_signs_out(carol, workspace, client, django_capture_on_commit_callbacks):
    sign_in(client, "carol@acme.example", django_capture_on_commit_callbacks)
    assert client.get("/portal/logout/").status_code == 405  # a GET (a prefetch, an image) must not sign out
    assert is_signed_in(client)
    response = client.post("/portal/logout/")
    assert response.status_code == 302 and response.url == "/portal/login/"
    assert not is_signed_in(client)
    assert client.get(f"/portal/w/{workspace.slug}/").url == "/portal/login/"


def test_contact_whose_portal_access_is_off_cannot_see_the_portal(
    carol, workspace, client, django_capture_on_commit_callbacks
):
    sign_in(client, "carol@acme.example", django_capture_on_commit_callbacks)
    assert client.get(f"/portal/w/{workspace.slug}/").status_code == 200
    set_portal_access(contact=carol, enabled=False)
    assert client.get(f"/portal/w/{workspace.slug}/").status_code == 404
    response = client.get("/portal/")
    assert response.status_code == 200
    assert f"/portal/w/{workspace.slug}/" not in dict(read(response).links)
    assert "no portal access" in page_text(response)


def test_contact_of_an_archived_client_cannot_see_the_portal(carol, acme, workspace, login):
    acme.status = acme.Status.ARCHIVED
    acme.save(update_fields=["status"])
    assert login(carol.user).get(f"/portal/w/{workspace.slug}/").status_code == 404


def test_unknown_email_gets_no_code_and_no_hint(client, carol, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/portal/login/", {"email": "mallory@evil.example"})
    # Same answer as for a real contact, so the form cannot be used to find out who is a client.
    assert response.status_code == 302 and response.url == "/portal/login/code/?next=/portal/"
    bodies = Email.objects.filter(to="mallory@evil.example").values_list("body_text", flat=True)
    assert not any(CODE.search(body) for body in bodies)


def test_too_many_wrong_codes_land_on_the_portals_sign_in_page(carol, client, django_capture_on_commit_callbacks):
    """Locked out of the code, the contact starts again at the portal's sign-in, not the consultants'."""
    code = request_code(client, "carol@acme.example", django_capture_on_commit_callbacks)
    wrong = "BBBB-BBBB" if code != "BBBB-BBBB" else "CCCC-CCCC"
    for _ in range(10):
        response = client.post("/portal/login/code/?next=/portal/", {"code": wrong, "next": "/portal/"})
        if response.status_code == 302:
            break
    assert response.status_code == 302
    assert response.url == "/portal/login/"
    page = client.get(response.url)
    assert "Too many failed login attempts" in page_text(page)
    assert not is_signed_in(client)
    # The code page without a code under way sends them to the portal's sign-in too.
    assert client.get("/portal/login/code/").url == "/portal/login/"
