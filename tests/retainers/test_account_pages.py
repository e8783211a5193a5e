"""Our own sign-in pages and account emails (issue 17, item 3).

Every allauth page in use renders in our layout, in our words, under the strict CSP; every
account email says who it is from (the product) and links to the site's public address
(SITE_URL), never the host the request came in on nor allauth's "Hello from example.com!".
"""

from __future__ import annotations

import re
import time

import pytest
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.core import mail
from django.test import Client as Browser

from clients import services as client_services
from retainers.models import Email, User
from tests import factories
from tests.factories import PASSWORD
from tests.retainers.test_accounts import page_text, parse, signup_data
from tests.retainers.test_security import csp_problems
from tests.sent import sent_html, sent_text

pytestmark = pytest.mark.django_db

SITE_URL = "https://app.retainers.example"
ALLAUTH_DEFAULTS = ("Hello from", "Thank you for using", "testserver", "Sign-In Code", "Sign In")


@pytest.fixture(autouse=True)
def _public_site(settings) -> None:
    settings.SITE_URL = SITE_URL


def assert_our_page(response, heading: str) -> None:
    """Our layout (topbar with the product's brand, our title suffix), our heading, the CSP kept."""
    assert response.status_code == 200
    html = response.content.decode()
    tree = parse(html)
    brand = [node for node in tree.iter() if node.tag == "a" and "brand" in node.classes]
    assert [node.text() for node in brand] == ["Retainers"]
    title = next(node for node in tree.iter() if node.tag == "title").text()
    assert title.endswith("· Retainers"), title
    h1 = [node.text() for node in tree.iter() if node.tag == "h1"]
    assert h1 == [heading]
    assert '<link rel="stylesheet" href="/static/css/app.css">' in html
    assert csp_problems(response) == []
    for default in ("Sign In", "Sign Up", "Bad Token", "Request Code"):  # allauth's own capitalised words
        assert default not in page_text(response)


def emails_to(address: str) -> list[Email]:
    return list(Email.objects.filter(to=address).order_by("pk"))


def assert_our_email(row: Email) -> None:
    for default in ALLAUTH_DEFAULTS:
        assert default not in row.subject and default not in sent_text(row), default
    assert "Retainers" in row.subject
    assert sent_text(row).startswith("Hello,\n")
    assert sent_text(row).rstrip().endswith(f"Retainers\n{SITE_URL}")
    assert row.from_name == "Retainers"
    assert "<html" in sent_html(row) and f'<a href="{SITE_URL}' in sent_html(row)  # links are links
    for url in re.findall(r"https?://\S+", sent_text(row)):
        assert url.startswith(SITE_URL), url


def only_url(row: Email, path_start: str) -> str:
    [url] = [u for u in re.findall(r"https?://\S+", sent_text(row)) if path_start in u]
    return url.removeprefix(SITE_URL)


@pytest.fixture
def dana(db) -> User:
    return factories.UserFactory(email="dana@example.com", name="Dana Diaz")


# --- Pages -------------------------------------------------------------------------------


def test_login_page(client):
    response = client.get("/accounts/login/")
    assert_our_page(response, "Sign in to Retainers")
    links = {a.attrs.get("href") for a in parse(response.content).iter() if a.tag == "a"}
    assert {"/accounts/signup/", "/accounts/password/reset/", "/accounts/login/code/", "/portal/login/"} <= links


def test_login_with_a_wrong_password_shows_our_page_with_the_error(client, dana):
    response = client.post("/accounts/login/", {"login": "dana@example.com", "password": "wrong-password-1"})
    assert_our_page(response, "Sign in to Retainers")
    assert "The email address and/or password you specified are not correct." in page_text(response)


def test_signup_page_and_its_errors(client):
    assert_our_page(client.get("/accounts/signup/"), "Start your Retainers workspace")
    response = client.post("/accounts/signup/", signup_data(password2="something-else-42"))
    assert_our_page(response, "Start your Retainers workspace")
    assert "You must type the same password each time." in page_text(response)


def test_logout_page_asks_then_signs_out(client, dana):
    client.force_login(dana)
    assert_our_page(client.get("/accounts/logout/"), "Sign out of Retainers?")
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response.url == "/accounts/login/"
    assert "_auth_user_id" not in client.session


def test_verification_sent_page(client):
    assert_our_page(client.get("/accounts/confirm-email/"), "Confirm your email address")


def test_bad_confirmation_link_page(client):
    response = client.get("/accounts/confirm-email/not-a-key/")
    assert_our_page(response, "Confirm your email address")
    assert "This confirmation link has expired or was already used." in page_text(response)


def test_inactive_page(client):
    assert_our_page(client.get("/accounts/inactive/"), "This account is closed")


def test_password_reset_walk_through_our_pages_and_email(client, dana, django_capture_on_commit_callbacks):
    assert_our_page(client.get("/accounts/password/reset/"), "Reset your password")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/password/reset/", {"email": "dana@example.com"}, follow=True)
    assert_our_page(response, "Check your email")

    [row] = emails_to("dana@example.com")
    assert_our_email(row)
    assert row.subject == "Reset your Retainers password"
    path = only_url(row, "/accounts/password/reset/key/")
    [message] = mail.outbox
    assert f"{SITE_URL}{path}" in message.body

    response = client.get(path, follow=True)  # allauth moves the key into the session, then shows the form
    assert_our_page(response, "Choose a new password")
    form_url = response.redirect_chain[-1][0]
    new_password = "quartz-Lantern-58-brisk"
    response = client.post(form_url, {"password1": new_password, "password2": new_password}, follow=True)
    assert_our_page(response, "Your password is changed")
    dana.refresh_from_db()
    assert dana.check_password(new_password)

    response = client.get(path, follow=True)  # the link works once
    assert_our_page(response, "This link does not work")


def test_password_reset_for_an_unknown_address_emails_our_words(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    [row] = emails_to("nobody@example.com")
    assert_our_email(row)
    assert row.subject == "No Retainers account uses this address"
    assert f"{SITE_URL}/accounts/signup/" in sent_text(row)
    assert f"{SITE_URL}/portal/login/" in sent_text(row)


def test_sign_in_by_code_walk(client, dana, django_capture_on_commit_callbacks):
    assert_our_page(client.get("/accounts/login/code/"), "Sign in with a code")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/login/code/", {"email": "dana@example.com"}, follow=True)
    assert_our_page(response, "Check your email")
    assert "dana@example.com" in page_text(response)

    [row] = emails_to("dana@example.com")
    assert_our_email(row)
    assert row.subject == "Your Retainers sign-in code"
    code = re.search(r"^([A-Z0-9]{4}-[A-Z0-9]{4})$", sent_text(row), re.MULTILINE)
    assert code, sent_text(row)
    assert "your client portal" not in sent_text(row)
    response = client.post("/accounts/login/code/confirm/", {"code": code.group(1)})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(dana.pk)


def test_wrong_code_shows_the_error_on_our_page(client, dana, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/login/code/", {"email": "dana@example.com"})
    response = client.post("/accounts/login/code/confirm/", {"code": "WRONG1"})
    assert_our_page(response, "Check your email")
    assert "Incorrect code." in page_text(response)


def test_portal_code_email_speaks_of_the_client_portal(client, workspace, django_capture_on_commit_callbacks):
    acme = factories.ClientFactory(workspace=workspace, name="Acme")
    client_services.add_contact(client=acme, name="Carol", email="carol@acme.example", portal_access=True)
    Email.objects.all().delete()  # the portal invitation, if any
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/portal/login/", {"email": "carol@acme.example"})
    assert response.status_code == 302
    [row] = emails_to("carol@acme.example")
    assert row.subject == "Your code to sign in to your client portal"
    assert "Your code to sign in to your client portal is:" in sent_text(row)
    assert f"The portal: {SITE_URL}/portal/login/" in sent_text(row)
    for default in ALLAUTH_DEFAULTS:
        assert default not in sent_text(row)


def test_signup_confirmation_email_and_already_exists_email(client, dana, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/signup/", signup_data(email="erin@example.com"))
    [row] = emails_to("erin@example.com")
    assert_our_email(row)
    assert row.subject == "Confirm your email address to open your Retainers workspace"
    path = only_url(row, "/accounts/confirm-email/")
    response = client.get(path)
    assert_our_page(response, "Confirm your email address")
    assert "Confirm that erin@example.com is your address for Retainers." in page_text(response)

    with django_capture_on_commit_callbacks(execute=True):
        Browser().post("/accounts/signup/", signup_data(email="dana@example.com", workspace_name="Again"))
    [row] = emails_to("dana@example.com")
    assert_our_email(row)
    assert row.subject == "You already have a Retainers account"
    assert f"Sign in: {SITE_URL}/accounts/login/" in sent_text(row)


def test_two_factor_sign_in_page_and_the_notification(client, dana, django_capture_on_commit_callbacks):
    secret = generate_totp_secret()
    TOTP.activate(dana, secret)
    response = client.post("/accounts/login/", {"login": "dana@example.com", "password": PASSWORD}, follow=True)
    assert_our_page(response, "Enter your authenticator code")
    assert response.redirect_chain[-1][0] == "/accounts/2fa/authenticate/"
    response = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert_our_page(response, "Enter your authenticator code")
    assert "Incorrect code." in page_text(response)

    code = format_hotp_value(hotp_value(secret, int(time.time()) // 30))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/2fa/authenticate/", {"code": code})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(dana.pk)


def test_changing_the_password_sends_our_notification(client, dana, django_capture_on_commit_callbacks):
    client.force_login(dana)
    new_password = "quartz-Lantern-58-brisk"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/accounts/password/change/",
            {"oldpassword": PASSWORD, "password1": new_password, "password2": new_password},
        )
    assert response.status_code == 302
    [row] = emails_to("dana@example.com")
    assert_our_email(row)
    assert row.subject == "Your Retainers password was changed"
    assert "The password of your Retainers account was changed." in sent_text(row)
    assert f"choose a new one now at\n{SITE_URL}/accounts/password/reset/" in sent_text(row)
