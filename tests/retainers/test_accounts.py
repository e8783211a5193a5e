"""Accounts end to end through the test client: sign-up, invitations, roles, switching, settings.

Everything goes through the real allauth views and our own; emails are read from the outbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client as Browser
from django.utils import timezone

from retainers import services
from retainers.models import Email, Invitation, Membership, User, Workspace, hash_secret
from tests import factories
from tests.sent import sent_html, sent_text

pytestmark = pytest.mark.django_db

PASSWORD = "plum-Tractor-93-quiet"  # passes every validator in settings.AUTH_PASSWORD_VALIDATORS


# --- A small HTML tree, to find which field block an error sits in -----------------------

VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def iter(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def text(self) -> str:
        return " ".join(
            " ".join((child if isinstance(child, str) else child.text()).split()) for child in self.children
        ).strip()


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID_TAGS:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: bytes | str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html.decode() if isinstance(html, bytes) else html)
    builder.close()
    return builder.root


def field_block(html: bytes | str, name: str) -> Node:
    """The innermost `.field` block that holds the input, select or textarea called `name`."""
    found = None
    for node in parse(html).iter():
        if "field" in node.classes and any(
            inner.tag in {"input", "select", "textarea"} and inner.attrs.get("name") == name for inner in node.iter()
        ):
            found = node  # iter() is depth-first, so the last match is the innermost block
    assert found is not None, f"no .field block holds a control named {name!r}"
    return found


def field_errors(html: bytes | str, name: str) -> list[str]:
    block = field_block(html, name)
    lists = [node for node in block.iter() if node.tag == "ul" and "errorlist" in node.classes]
    return [li.text() for ul in lists for li in ul.iter() if li.tag == "li"]


def page_text(response) -> str:
    """The visible text of a page, entities decoded and whitespace collapsed."""
    return parse(response.content).text()


def is_signed_in(client) -> bool:
    return "_auth_user_id" in client.session


# --- Sign-up -----------------------------------------------------------------------------


def signup_data(**overrides: str) -> dict[str, str]:
    return {
        "name": "Dana Diaz",
        "email": "dana@example.com",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "workspace_name": "Diaz Coaching",
        "timezone": "Europe/Paris",
        "currency": "EUR",
        **overrides,
    }


@pytest.fixture
def signed_up(client, django_capture_on_commit_callbacks):
    """Dana signs up through the real form; returns the response."""
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/signup/", signup_data())
    return response


def confirmation_path() -> str:
    row = Email.objects.get(to="dana@example.com")
    match = re.search(r"/accounts/confirm-email/[-:\w]+/", sent_text(row))
    assert match, sent_text(row)
    return match.group()


def test_signup_creates_the_user_and_their_workspace_as_owner(signed_up):
    assert signed_up.status_code == 302
    assert signed_up.url == "/accounts/confirm-email/"
    user = User.objects.get(email="dana@example.com")
    assert user.name == "Dana Diaz"
    workspace = Workspace.objects.get(name="Diaz Coaching")
    assert (workspace.slug, workspace.timezone, workspace.currency) == ("diaz-coaching", "Europe/Paris", "EUR")
    membership = Membership.objects.get(user=user)
    assert membership.workspace == workspace and membership.role == Membership.Role.OWNER


def test_signup_queues_the_verification_email_with_text_and_html_from_retainers(signed_up):
    row = Email.objects.get(to="dana@example.com")
    assert row.from_name == "Retainers"
    assert "/accounts/confirm-email/" in sent_text(row)
    assert "/accounts/confirm-email/" in sent_html(row) and "<html" in sent_html(row)
    assert row.status == Email.Status.SENT  # sent after commit by the (eager) Celery task
    assert "/accounts/confirm-email/" not in row.body_text + row.body_html  # the link is redacted once sent

    [message] = mail.outbox
    assert message.to == ["dana@example.com"]
    assert message.from_email.startswith("Retainers <")
    assert confirmation_path() in message.body
    assert [mimetype for _, mimetype in message.alternatives] == ["text/html"]
    assert confirmation_path() in message.alternatives[0][0]


@pytest.mark.parametrize(
    ("overrides", "bad_field", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "Select a valid choice"),
        ({"workspace_name": ""}, "workspace_name", "This field is required."),
    ],
)
def test_invalid_signup_shows_the_error_next_to_the_field_and_creates_nothing(
    client, django_capture_on_commit_callbacks, overrides, bad_field, message
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/signup/", signup_data(**overrides))
    assert response.status_code == 200
    block = field_block(response.content, bad_field)
    assert "has-error" in block.classes
    assert any(message in error for error in field_errors(response.content, bad_field))
    assert field_errors(response.content, "email") == []  # the error sits by its own field only
    assert not User.objects.filter(email__iexact="dana@example.com").exists()
    assert not Workspace.objects.exists()
    assert not Email.objects.exists() and mail.outbox == []


def test_signup_is_one_transaction_a_failing_workspace_leaves_no_user(client, monkeypatch):
    class Broken(Exception):
        pass

    def broken_create_workspace(**kwargs):
        raise Broken

    monkeypatch.setattr(services, "create_workspace", broken_create_workspace)
    with pytest.raises(Broken):
        client.post("/accounts/signup/", signup_data())
    assert not User.objects.filter(email__iexact="dana@example.com").exists()
    assert not EmailAddress.objects.filter(email__iexact="dana@example.com").exists()
    assert not Email.objects.exists()


def test_confirmation_link_shows_a_page_and_only_a_post_confirms(signed_up, client):
    response = client.get(confirmation_path())
    assert response.status_code == 200
    form = next(node for node in parse(response.content).iter() if node.tag == "form")
    assert form.attrs.get("method") == "post" and form.attrs.get("action") == confirmation_path()
    assert not EmailAddress.objects.get(email="dana@example.com").verified  # ACCOUNT_CONFIRM_EMAIL_ON_GET is off
    assert not is_signed_in(client)


def test_confirming_the_email_signs_in_and_home_goes_to_the_new_dashboard(signed_up, client):
    response = client.post(confirmation_path(), follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/w/diaz-coaching/"
    assert "Diaz Coaching" in page_text(response)
    assert EmailAddress.objects.get(email="dana@example.com").verified
    assert is_signed_in(client)
    assert client.get("/").url == "/w/diaz-coaching/"


def test_login_before_verification_does_not_reach_the_dashboard(signed_up, django_capture_on_commit_callbacks):
    browser = Browser()
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post("/accounts/login/", {"login": "dana@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert response.url == "/accounts/confirm-email/"
    assert not is_signed_in(browser)
    dashboard = browser.get("/w/diaz-coaching/")
    assert dashboard.status_code == 302 and dashboard.url.startswith("/accounts/login/")
    assert browser.get("/").url == "/accounts/login/"


# --- Invitations -------------------------------------------------------------------------


@pytest.fixture
def invite(django_capture_on_commit_callbacks):
    """`invite(client, workspace, email, role)` posts the team form and returns the emailed link's path."""

    def invite(http, workspace: Workspace, email: str, role: str = "member") -> str:
        with django_capture_on_commit_callbacks(execute=True):
            response = http.post(f"/w/{workspace.slug}/team/", {"email": email, "role": role})
        assert response.status_code == 302, page_text(response)
        row = Email.objects.filter(to__iexact=email).latest("created_at")
        match = re.search(r"/invite/[^/\s\"]+/", sent_text(row))
        assert match, sent_text(row)
        return match.group()

    return invite


def test_invitation_is_emailed_in_the_workspaces_name_with_the_link(owner_client, workspace, alice, invite):
    path = invite(owner_client, workspace, "dana@example.com")
    invitation = Invitation.objects.get(workspace=workspace, email="dana@example.com")
    assert invitation.role == Membership.Role.MEMBER and invitation.invited_by == alice
    assert path.startswith(f"/invite/{invitation.pk}.")
    secret = path.removesuffix("/").split(".", 1)[1]
    assert invitation.secret_hash == hash_secret(secret) != secret  # only a hash of the link is stored

    row = Email.objects.get(to="dana@example.com")
    assert row.from_name == "Northwind Advisory"
    assert row.reply_to == "alice@example.com"
    assert path in sent_text(row) and path in sent_html(row)
    assert path not in row.body_text + row.body_html  # redacted once sent
    [message] = mail.outbox
    assert message.from_email.startswith("Northwind Advisory <")
    assert path in message.body


def test_invitation_link_lets_a_new_person_create_an_account_and_join_as_member(
    owner_client, workspace, invite, client
):
    path = invite(owner_client, workspace, "dana@example.com")
    page = client.get(path)
    assert page.status_code == 200
    assert "Join Northwind Advisory" in page_text(page)

    response = client.post(path, {"name": "Dana Diaz", "password1": PASSWORD, "password2": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == f"/w/{workspace.slug}/"
    assert response.status_code == 200
    assert "Welcome to Northwind Advisory." in page_text(response)
    dana = User.objects.get(email="dana@example.com")
    assert dana.name == "Dana Diaz" and dana.check_password(PASSWORD)
    assert Membership.objects.get(workspace=workspace, user=dana).role == Membership.Role.MEMBER
    assert int(client.session["_auth_user_id"]) == dana.pk


def test_invitation_link_works_once(owner_client, workspace, invite, client):
    path = invite(owner_client, workspace, "dana@example.com")
    client.post(path, {"name": "Dana Diaz", "password1": PASSWORD, "password2": PASSWORD})

    for browser in (client, Browser()):  # the joiner again, and someone else with the link
        response = browser.get(path)
        assert response.status_code == 410
        assert "This invitation was already used" in page_text(response)
        assert browser.post(path, {"name": "Eve", "password1": PASSWORD, "password2": PASSWORD}).status_code == 410
    assert Membership.objects.filter(workspace=workspace).count() == 3


def test_expired_invitation_gives_410(owner_client, workspace, invite, client):
    path = invite(owner_client, workspace, "dana@example.com")
    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        response = client.get(path)
        assert response.status_code == 410
        assert "This invitation has expired" in page_text(response)
        response = client.post(path, {"name": "Dana Diaz", "password1": PASSWORD, "password2": PASSWORD})
        assert response.status_code == 410
    assert not User.objects.filter(email="dana@example.com").exists()


def test_invitation_still_works_just_before_it_expires(owner_client, workspace, invite, client):
    path = invite(owner_client, workspace, "dana@example.com")
    with time_machine.travel(timezone.now() + timedelta(days=6, hours=23)):
        assert client.get(path).status_code == 200


@pytest.mark.parametrize("forge", ["secret", "pk", "garbage"])
def test_forged_invitation_token_gives_410(owner_client, workspace, invite, client, forge):
    path = invite(owner_client, workspace, "dana@example.com")
    pk, secret = path.removeprefix("/invite/").removesuffix("/").split(".", 1)
    forged = {
        "secret": f"/invite/{pk}.{secret[:-4]}AAAA/",
        "pk": f"/invite/{int(pk) + 1000}.{secret}/",
        "garbage": "/invite/not-a-token/",
    }[forge]
    response = client.get(forged)
    assert response.status_code == 410
    assert "This link does not work" in page_text(response)
    assert client.post(forged, {"name": "Eve", "password1": PASSWORD, "password2": PASSWORD}).status_code == 410
    assert not User.objects.filter(email="dana@example.com").exists()


def test_signed_in_user_with_another_email_cannot_accept(owner_client, workspace, invite, outsider_client, charlie):
    path = invite(owner_client, workspace, "dana@example.com")
    response = outsider_client.post(path)
    assert response.status_code == 200
    assert "This invitation is for dana@example.com. Sign in with that address to accept it." in page_text(response)
    assert not Membership.objects.filter(workspace=workspace, user=charlie).exists()
    assert Invitation.objects.get(email="dana@example.com").accepted_at is None


def test_existing_user_is_asked_to_sign_in_and_can_accept_afterwards(owner_client, workspace, invite, client, charlie):
    path = invite(owner_client, workspace, "charlie@example.com", role="admin")
    page = client.get(path)
    assert page.status_code == 200
    assert "You already have an account with this address." in page_text(page)
    sign_in = next(a for a in parse(page.content).iter() if a.tag == "a" and "Sign in to accept" in a.text())
    assert sign_in.attrs["href"] == f"/accounts/login/?next={path}"
    assert client.post(path).status_code == 200  # anonymous: still asked to sign in, nothing created
    assert not Membership.objects.filter(workspace=workspace, user=charlie).exists()

    response = client.post(sign_in.attrs["href"], {"login": "charlie@example.com", "password": factories.PASSWORD})
    assert response.status_code == 302 and response.url == path
    response = client.post(path, follow=True)
    assert response.redirect_chain[-1][0] == f"/w/{workspace.slug}/"
    assert Membership.objects.get(workspace=workspace, user=charlie).role == Membership.Role.ADMIN


def test_member_cannot_invite(member_client, workspace, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = member_client.post(
            f"/w/{workspace.slug}/team/", {"email": "dana@example.com", "role": "member"}, follow=True
        )
    assert response.status_code == 200
    assert "Only owners and admins can invite people." in page_text(response)
    assert not Invitation.objects.exists()
    assert Membership.objects.filter(workspace=workspace).count() == 2
    assert not Email.objects.exists() and mail.outbox == []


def test_reinviting_the_same_email_revokes_the_first_link(owner_client, workspace, invite, client):
    first = invite(owner_client, workspace, "dana@example.com")
    second = invite(owner_client, workspace, "DANA@example.com", role="admin")
    assert first != second
    assert client.get(first).status_code == 410
    assert Invitation.objects.filter(workspace=workspace, revoked_at__isnull=False).count() == 1
    client.post(second, {"name": "Dana Diaz", "password1": PASSWORD, "password2": PASSWORD})
    assert Membership.objects.get(workspace=workspace, user__email="dana@example.com").role == Membership.Role.ADMIN


def test_invitation_signup_form_shows_errors_next_to_fields(owner_client, workspace, invite, client):
    path = invite(owner_client, workspace, "dana@example.com")
    response = client.post(path, {"name": "Dana Diaz", "password1": PASSWORD, "password2": PASSWORD + "x"})
    assert response.status_code == 200
    assert field_errors(response.content, "password2") == ["The two passwords differ."]
    assert not User.objects.filter(email="dana@example.com").exists()
    assert Invitation.objects.get(email="dana@example.com").accepted_at is None


# --- Roles -------------------------------------------------------------------------------


def membership_of(workspace: Workspace, user: User) -> Membership:
    return Membership.objects.get(workspace=workspace, user=user)


def role_url(workspace: Workspace, membership: Membership) -> str:
    return f"/w/{workspace.slug}/team/{membership.pk}/role/"


def remove_url(workspace: Workspace, membership: Membership) -> str:
    return f"/w/{workspace.slug}/team/{membership.pk}/remove/"


@pytest.fixture
def dave(workspace) -> User:
    dave = factories.UserFactory(email="dave@example.com", name="Dave Dunn")
    factories.MembershipFactory(workspace=workspace, user=dave, role=Membership.Role.MEMBER)
    return dave


def test_owner_makes_a_member_admin(owner_client, workspace, bob):
    response = owner_client.post(role_url(workspace, membership_of(workspace, bob)), {"role": "admin"}, follow=True)
    assert response.redirect_chain[-1][0] == f"/w/{workspace.slug}/team/"
    assert "bob@example.com is now admin." in page_text(response)
    assert membership_of(workspace, bob).role == Membership.Role.ADMIN


def test_admin_cannot_make_anyone_owner(workspace, alice, bob, dave, member_client):
    services.change_role(actor=membership_of(workspace, alice), membership=membership_of(workspace, bob), role="admin")
    for target in (dave, bob):
        url = role_url(workspace, membership_of(workspace, target))
        response = member_client.post(url, {"role": "owner"}, follow=True)
        assert "You cannot give or take away that role." in page_text(response)
    assert membership_of(workspace, dave).role == Membership.Role.MEMBER
    assert membership_of(workspace, bob).role == Membership.Role.ADMIN


def test_admin_cannot_demote_an_owner(workspace, alice, bob, member_client):
    services.change_role(actor=membership_of(workspace, alice), membership=membership_of(workspace, bob), role="admin")
    response = member_client.post(role_url(workspace, membership_of(workspace, alice)), {"role": "member"}, follow=True)
    assert "You cannot give or take away that role." in page_text(response)
    assert membership_of(workspace, alice).role == Membership.Role.OWNER


def test_last_owner_cannot_demote_themselves(owner_client, workspace, alice):
    response = owner_client.post(role_url(workspace, membership_of(workspace, alice)), {"role": "admin"}, follow=True)
    assert "A workspace needs at least one owner. Make someone else owner first." in page_text(response)
    assert membership_of(workspace, alice).role == Membership.Role.OWNER


def test_last_owner_cannot_remove_themselves(owner_client, workspace, alice):
    response = owner_client.post(remove_url(workspace, membership_of(workspace, alice)), follow=True)
    assert response.redirect_chain[-1][0] == f"/w/{workspace.slug}/team/"
    assert "A workspace needs at least one owner. Make someone else owner first." in page_text(response)
    assert membership_of(workspace, alice).role == Membership.Role.OWNER


def test_owner_can_step_down_once_there_is_another_owner(owner_client, workspace, alice, bob):
    owner_client.post(role_url(workspace, membership_of(workspace, bob)), {"role": "owner"})
    owner_client.post(role_url(workspace, membership_of(workspace, alice)), {"role": "member"})
    assert membership_of(workspace, alice).role == Membership.Role.MEMBER
    assert membership_of(workspace, bob).role == Membership.Role.OWNER


def test_member_posting_to_the_role_url_gets_403(member_client, workspace, alice, bob, dave):
    for target in (dave, bob, alice):
        response = member_client.post(role_url(workspace, membership_of(workspace, target)), {"role": "owner"})
        assert response.status_code == 403
    assert membership_of(workspace, bob).role == Membership.Role.MEMBER
    assert membership_of(workspace, dave).role == Membership.Role.MEMBER


def test_owner_removes_a_member(owner_client, workspace, bob):
    response = owner_client.post(remove_url(workspace, membership_of(workspace, bob)), follow=True)
    assert "bob@example.com was removed." in page_text(response)
    assert not Membership.objects.filter(workspace=workspace, user=bob).exists()
    assert User.objects.filter(pk=bob.pk).exists()  # removed from the team, not deleted


def test_member_cannot_remove_someone_else(member_client, workspace, dave):
    response = member_client.post(remove_url(workspace, membership_of(workspace, dave)), follow=True)
    assert "You cannot remove this member." in page_text(response)
    assert Membership.objects.filter(workspace=workspace, user=dave).exists()


def test_member_can_leave(member_client, workspace, bob):
    member_client.get(f"/w/{workspace.slug}/")
    response = member_client.post(remove_url(workspace, membership_of(workspace, bob)), follow=True)
    assert not Membership.objects.filter(workspace=workspace, user=bob).exists()
    # They left: home, which has no workspace of theirs to show any more, offers to start one.
    assert [url for url, _ in response.redirect_chain] == ["/", "/w/new/"]
    assert response.status_code == 200
    assert "You left Northwind Advisory." in page_text(response)
    assert member_client.get(f"/w/{workspace.slug}/").status_code == 404


# --- Switching workspaces ----------------------------------------------------------------


@pytest.fixture
def second_workspace(alice) -> Workspace:
    return services.create_workspace(owner=alice, name="Zephyr Studio", timezone_name="Asia/Tokyo", currency="JPY")


def test_switcher_on_the_dashboard_lists_every_workspace_of_the_user(
    owner_client, workspace, second_workspace, other_workspace
):
    response = owner_client.get(f"/w/{workspace.slug}/")
    assert response.status_code == 200
    menus = [node for node in parse(response.content).iter() if node.tag == "details" and "menu" in node.classes]
    switcher = next(
        menu for menu in menus if any(a.tag == "a" and a.attrs.get("href", "").startswith("/w/") for a in menu.iter())
    )
    links = {a.attrs["href"]: a.text() for a in switcher.iter() if a.tag == "a"}
    assert links[f"/w/{workspace.slug}/"] == "Northwind Advisory"
    assert links[f"/w/{second_workspace.slug}/"] == "Zephyr Studio"
    assert f"/w/{other_workspace.slug}/" not in links  # Charlie's workspace is not Alice's


def test_home_goes_to_the_last_workspace_visited(owner_client, workspace, second_workspace):
    assert owner_client.get(f"/w/{second_workspace.slug}/").status_code == 200
    assert owner_client.get("/").url == f"/w/{second_workspace.slug}/"
    assert owner_client.get(f"/w/{workspace.slug}/team/").status_code == 200
    assert owner_client.get("/").url == f"/w/{workspace.slug}/"


def test_home_ignores_a_last_workspace_the_user_has_left(owner_client, workspace, second_workspace, bob):
    owner_client.get(f"/w/{second_workspace.slug}/")
    Membership.objects.filter(workspace=second_workspace).delete()
    assert owner_client.get("/").url == f"/w/{workspace.slug}/"


# --- Workspace settings ------------------------------------------------------------------


@pytest.fixture
def admin_client(workspace, alice, bob, member_client):
    services.change_role(actor=membership_of(workspace, alice), membership=membership_of(workspace, bob), role="admin")
    return member_client


def test_admin_changes_the_workspace_settings(admin_client, workspace):
    url = f"/w/{workspace.slug}/settings/"
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(
        url, {"workspace_name": "Northwind Partners", "timezone": "America/Chicago", "currency": "USD"}, follow=True
    )
    assert response.status_code == 200
    assert "Settings saved." in page_text(response)
    workspace.refresh_from_db()
    assert (workspace.name, workspace.timezone, workspace.currency) == ("Northwind Partners", "America/Chicago", "USD")
    assert workspace.slug == response.redirect_chain[-1][0].split("/")[2]  # the slug (and every link) stays


def test_invalid_timezone_shows_an_error_next_to_the_field(owner_client, workspace):
    response = owner_client.post(
        f"/w/{workspace.slug}/settings/",
        {"workspace_name": "Northwind Partners", "timezone": "Europe/Atlantis", "currency": "EUR"},
    )
    assert response.status_code == 200
    assert "has-error" in field_block(response.content, "timezone").classes
    assert any("Select a valid choice" in error for error in field_errors(response.content, "timezone"))
    assert field_errors(response.content, "workspace_name") == []
    workspace.refresh_from_db()
    assert (workspace.name, workspace.timezone, workspace.currency) == ("Northwind Advisory", "Europe/London", "GBP")


def test_member_gets_403_on_workspace_settings(member_client, workspace):
    url = f"/w/{workspace.slug}/settings/"
    assert member_client.get(url).status_code == 403
    response = member_client.post(url, {"workspace_name": "Hijacked", "timezone": "UTC", "currency": "USD"})
    assert response.status_code == 403
    workspace.refresh_from_db()
    assert workspace.name == "Northwind Advisory"


def test_other_workspace_settings_are_404(outsider_client, workspace):
    assert outsider_client.get(f"/w/{workspace.slug}/settings/").status_code == 404
