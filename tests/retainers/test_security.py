"""Security properties that hold across the whole site: CSP on every page, deploy checks, health."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import time, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.account.utils import user_pk_to_url_str
from django.apps import apps
from django.contrib.auth.tokens import default_token_generator
from django.test import Client as Browser
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from clients.services import add_contact
from retainers import services
from retainers.models import Email, Membership
from tests import factories
from tests.sent import sent_text

BASE_DIR = Path(__file__).resolve().parents[2]


# --- CSP over every HTML page ------------------------------------------------------------


@dataclass
class Route:
    name: str  # "namespace:name", what reverse() takes
    route: str  # the pattern as written, for messages
    params: list[str]
    int_params: set[str] = field(default_factory=set)


def _pattern_params(pattern) -> tuple[list[str], set[str]]:
    """The parameter names of one route or regex pattern, and which of them are ints.

    Read from the compiled regex and the route text, not from `pattern.converters`: Django
    shares one cached converters dict between equal routes (every `""`) and updates it in place
    when it populates namespaces, so it can name parameters a route does not have.
    """
    return list(pattern.regex.groupindex), set(re.findall(r"<int:(\w+)>", str(pattern)))


def _routes(
    resolver: URLResolver | None = None,
    prefix: str = "",
    namespace: str = "",
    params: tuple[list[str], set[str]] = ([], set()),
) -> list[Route]:
    """Every named route of the project, with the names of its parameters (those of its includes too)."""
    routes = []
    for entry in (resolver or get_resolver()).url_patterns:
        text = prefix + str(entry.pattern)
        names, ints = _pattern_params(entry.pattern)
        names, ints = params[0] + names, params[1] | ints
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            routes += _routes(entry, text, inner, (names, ints))
        elif isinstance(entry, URLPattern) and entry.name:
            routes.append(Route(namespace + entry.name, text, names, ints))
    return routes


def _object_id(param: str, workspace) -> int | None:
    """A real id for `<int:client_id>`-like parameters: the first such object in `workspace`."""
    model_name = param.removesuffix("_id")
    for model in apps.get_models():
        if model._meta.model_name == model_name.replace("_", "") and any(
            f.name == "workspace" for f in model._meta.get_fields()
        ):
            obj = model._default_manager.filter(workspace=workspace).order_by("pk").first()
            return obj.pk if obj else None
    return None


@dataclass
class Site:
    """Data that gives every page something real to show, and the ids to fill the URLs with."""

    workspace: object
    visitors: dict[str, object]  # name -> user, None for anonymous
    kwargs_by_route: dict[str, dict[str, object]]


def give_every_page_an_object(workspace, client, alice) -> None:
    """One object of every kind a page is keyed by: plan, retainer, its period and work,
    a deliverable, an invoice with a payment, a note, a task, a message with an attachment,
    a renewal, a session type and a booking. The URL walk fills `<model>_id` parameters from them."""
    from decimal import Decimal

    from django.core.files.uploadedfile import SimpleUploadedFile

    from billing import services as billing
    from clients.models import Plan
    from communication import services as communication
    from delivery import approvals, booking_setup
    from delivery import services as delivery
    from renewals import services as renewals

    Plan.objects.create(workspace=workspace, name="Standard", units_per_period=Decimal("10"), price_minor=100000)
    today = workspace.today()
    retainer = factories.make_retainer(
        workspace=workspace, client=client, starts_on=today.replace(day=1), term_periods=1, currency="GBP"
    )
    work = delivery.record_delivery(
        retainer=retainer,
        delivered_on=today.replace(day=1),
        quantity=Decimal("1.5"),
        description="Kick-off",
        actor=alice,
    )
    delivery.add_deliverable(retainer=retainer, name="Board pack", actor=alice)
    approvals.request_overage(retainer=retainer, offered=Decimal("2"), message="The audit ran long.", actor=alice)
    [invoice_id] = billing.bill_workspace(workspace_id=workspace.pk, as_of=today).invoices
    billing.record_payment(
        invoice=billing.Invoice.objects.get(pk=invoice_id), amount_minor=1000, method="bank_transfer"
    )
    communication.create_note(client=client, author=alice, body="Shared **note**", visibility="shared", session=work)
    communication.create_task(client=client, title="Call back", due_at=timezone.now(), actor=alice, assignee=alice)
    communication.send_team_message(
        client=client, author=alice, body="Hello", files=[SimpleUploadedFile("agenda.pdf", b"%PDF-1.4\n%%EOF\n")]
    )
    renewals.open_renewal(retainer=retainer, today=max(today, retainer.term_ends_on - timedelta(days=10)))
    session_type = booking_setup.save_session_type(
        workspace=workspace, session_type=None, member=alice, name="Coaching call", duration_minutes=60,
        hours=Decimal("1"), sessions=1, location="", reminder_minutes=[1440], all_retainers=True, retainers=[],
    )  # fmt: skip
    booking_setup.save_schedule(
        workspace=workspace, member=alice,
        settings={"timezone": "", "buffer_before_minutes": 0, "buffer_after_minutes": 0, "min_notice_minutes": 0,
                  "horizon_days": 30, "daily_cap": None, "step_minutes": 60},
        weekly={day: [(time(8), time(20))] for day in range(7)},
    )  # fmt: skip
    # A booking of the client's contact, written directly: the retainer's one-period term may end
    # before any free time, depending on today's date, and the walk needs only the row.
    from delivery.models import Booking

    starts_at = timezone.now().replace(microsecond=0) + timedelta(days=3)
    Booking.objects.create(
        workspace=workspace, session_type=session_type, retainer=retainer, client=client,
        contact=client.contacts.get(), member=alice, starts_at=starts_at, ends_at=starts_at + timedelta(hours=1),
        blocked_from=starts_at, blocked_until=starts_at + timedelta(hours=1), units=Decimal("1"), unit="hours",
        uid="walk@test",
    )  # fmt: skip


@pytest.fixture
def site(db, workspace, alice, bob, login, settings, tmp_path, django_capture_on_commit_callbacks) -> Site:
    settings.MEDIA_ROOT = tmp_path / "media"
    alice_membership = Membership.objects.get(workspace=workspace, user=alice)
    bob_membership = Membership.objects.get(workspace=workspace, user=bob)
    with django_capture_on_commit_callbacks(execute=True):
        services.invite_member(actor=alice_membership, email="dana@example.com", role="member")
        acme = factories.ClientFactory(workspace=workspace, name="Acme Corp")
        contact = add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)
        give_every_page_an_object(workspace, acme, alice)
    invitation_path = re.search(r"/invite/[^/\s]+/", sent_text(Email.objects.get(to="dana@example.com"))).group()
    token = invitation_path.split("/")[2]

    # An unconfirmed address gives the confirm-email page its real "Confirm" form.
    erin = factories.UserFactory(email="erin@example.com", verified=False)
    address = EmailAddress.objects.create(user=erin, email=erin.email, verified=False, primary=True)

    common = {
        "workspace_slug": workspace.slug,
        "membership_id": bob_membership.pk,
        "token": token,
        "template": "invoice_issued",  # an email type's preview
    }
    by_route = {
        "account_confirm_email": {"key": EmailConfirmationHMAC(address).key},
        "account_reset_password_from_key": {
            "uidb36": user_pk_to_url_str(erin),
            "key": default_token_generator.make_token(erin),
        },
    }
    kwargs_by_route: dict[str, dict[str, object]] = {}
    for route in _routes():
        kwargs = {**by_route.get(route.name, {})}
        for param in route.params:
            if param in kwargs:
                continue
            if param in common:
                kwargs[param] = common[param]
            elif param in route.int_params and (object_id := _object_id(param, workspace)) is not None:
                kwargs[param] = object_id
        if set(kwargs) == set(route.params):
            kwargs_by_route[route.name] = kwargs
    return Site(
        workspace=workspace,
        visitors={
            "anonymous": None,
            "owner": alice,
            "contact": contact.user,
            "staff": factories.UserFactory(email="root@example.com", is_staff=True, is_superuser=True),
        },
        kwargs_by_route=kwargs_by_route,
    )


def checked_route_names(site: Site) -> list[str]:
    """The routes we fetch: all the project's named ones we can fill, but of the admin only index and login.

    The admin's model pages are Django's own, keyed by object ids of every model, and reached
    only by staff; the index and login pages stand for them (they share admin/base.html).
    """
    names = []
    for name in site.kwargs_by_route:
        if name.startswith("admin:") and name not in {"admin:index", "admin:login"}:
            continue
        names.append(name)
    return names


class PageAudit(HTMLParser):
    """Collects what the CSP forbids or requires of a page's markup."""

    def __init__(self) -> None:
        super().__init__()
        self.script_nonces: list[str | None] = []
        self.style_blocks = 0
        self.style_attributes: list[str] = []
        self.event_handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def _check(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.script_nonces.append(values.get("nonce"))
        if tag == "style":
            self.style_blocks += 1
        for name, _ in attrs:
            if name == "style":
                self.style_attributes.append(tag)
            if re.fullmatch(r"on[a-z]+", name):
                self.event_handlers.append(f"<{tag} {name}>")


def csp_problems(response) -> list[str]:
    """Everything wrong with one HTML response under our CSP; empty when it is fine.

    Django puts the nonce in the header only when the page used it, so an error page without
    scripts (404, 403) has none; there any <script> at all is a problem.
    """
    policy = response.headers.get("Content-Security-Policy")
    if not policy:
        return ["no Content-Security-Policy header"]
    problems = []
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    script_src = directives.get("script-src", [])
    nonces = [re.fullmatch(r"'nonce-([^']+)'", source) for source in script_src]
    nonce = next((match.group(1) for match in nonces if match), None)
    if nonce is None and response.status_code == 200:
        problems.append(f"no nonce in script-src: {script_src}")
    for unsafe in ("'unsafe-inline'", "'unsafe-eval'"):
        if unsafe in policy:
            problems.append(f"{unsafe} in the policy")
    audit = PageAudit()
    audit.feed(response.content.decode())
    audit.close()
    if any(script_nonce is None or script_nonce != nonce for script_nonce in audit.script_nonces):
        problems.append(f"<script> without nonce={nonce!r}: {audit.script_nonces}")
    if audit.style_blocks:
        problems.append(f"{audit.style_blocks} <style> block(s)")
    if audit.style_attributes:
        problems.append(f"style= on {audit.style_attributes}")
    if audit.event_handlers:
        problems.append(f"event handler attributes {audit.event_handlers}")
    return problems


# Documents with a policy of their own, checked by their own tests: an email's HTML in the preview
# frame keeps the inline styles email clients need, under a policy that allows no script at all
# (default-src 'none', sandbox; tests/dashboard/test_email_previews.py).
OWN_POLICY = {"email_preview_frame"}
MIN_PAGES = 45  # (visitor, page) pairs answered 200 with HTML; the walk finds about 60 today


@pytest.mark.django_db
def test_every_html_page_has_a_strict_csp_that_its_markup_obeys(site, login):
    checked: dict[tuple[str, str], int] = {}
    failures: dict[str, list[str]] = {}
    for visitor, user in site.visitors.items():
        for name in checked_route_names(site):
            if name in OWN_POLICY:
                continue
            url = reverse(name, kwargs=site.kwargs_by_route[name])
            # A fresh session per page: some pages sign the visitor out (a password reset link does).
            browser = login(user) if user else Browser()
            response = browser.get(url, follow=True)
            if not response.headers.get("Content-Type", "").startswith("text/html") or not response.content:
                continue
            final = response.redirect_chain[-1][0] if response.redirect_chain else url
            if problems := csp_problems(response):
                failures[f"{visitor} GET {url} -> {final} ({response.status_code})"] = problems
            if response.status_code == 200:
                checked[(visitor, final.split("?")[0])] = response.status_code
    assert not failures, "\n".join(f"{page}: {'; '.join(problems)}" for page, problems in sorted(failures.items()))
    pages = {path for _, path in checked}
    assert len(checked) >= MIN_PAGES, sorted(checked)
    # The pages that matter most are among them, so a broken walk cannot pass quietly.
    slug = site.workspace.slug
    for page in [
        f"/w/{slug}/",
        f"/w/{slug}/team/",
        f"/w/{slug}/settings/",
        f"/portal/w/{slug}/",
        "/portal/login/",
        "/accounts/login/",
        "/accounts/signup/",
        "/admin/login/",
        "/admin/",  # as staff; Django 6's admin puts the nonce on its scripts too
    ]:
        assert page in pages, page
    assert any(path.startswith("/invite/") for path in pages)
    assert any(path.startswith("/accounts/confirm-email/") and path != "/accounts/confirm-email/" for path in pages)


@pytest.mark.django_db
def test_pages_reached_only_through_a_flow_obey_the_csp_too(site, workspace, owner_client, client):
    """Pages a plain GET cannot reach: code entry (needs a pending login) and forms with errors."""
    responses = {}
    client.post("/portal/login/", {"email": "carol@acme.example"})
    responses["portal code"] = client.get("/portal/login/code/")
    responses["portal wrong code"] = client.post("/portal/login/code/", {"code": "BBBB-BBBB"})
    anonymous = Browser()
    anonymous.post("/accounts/login/code/", {"email": "alice@example.com"})
    responses["allauth code"] = anonymous.get("/accounts/login/code/confirm/")
    responses["signup errors"] = Browser().post("/accounts/signup/", {"email": "x", "timezone": "Nowhere/Else"})
    responses["invite errors"] = owner_client.post(f"/w/{workspace.slug}/team/", {"email": "x"})
    responses["settings errors"] = owner_client.post(f"/w/{workspace.slug}/settings/", {"timezone": "Nowhere/Else"})
    for label, response in responses.items():
        assert response.status_code == 200, label
        assert "has-error" in response.content.decode() or "code" in label, label
        assert csp_problems(response) == [], label


def test_route_walk_finds_the_parameterised_routes(db, site):
    """Guards the CSP test: the workspace pages and the ones keyed by token or id are all filled."""
    names = checked_route_names(site)
    for name in [
        "dashboard",
        "team",
        "workspace_settings",
        "member_role",
        "invitation_accept",
        "portal:overview",
        "account_confirm_email",
        "account_reset_password_from_key",
        "admin:index",
        "admin:login",
    ]:
        assert name in names, name
    assert not any(name.startswith("admin:") and name not in {"admin:index", "admin:login"} for name in names)
    # A new page whose parameters the fixture cannot fill would escape the CSP check: give the
    # `site` fixture an object of that kind (ids are looked up by `<model>_id`) or a value.
    unfilled = [r.route for r in _routes() if not r.name.startswith("admin:") and r.name not in site.kwargs_by_route]
    assert unfilled == []


def test_csp_audit_catches_what_it_should():
    """The checker itself: each forbidden thing is reported."""
    from django.http import HttpResponse

    def page(body: str, policy: str = "script-src 'self' 'nonce-abc'; style-src 'self'") -> HttpResponse:
        response = HttpResponse(f"<!doctype html><html><body>{body}</body></html>")
        if policy:
            response.headers["Content-Security-Policy"] = policy
        return response

    assert csp_problems(page('<script nonce="abc" src="/x.js"></script>')) == []
    assert csp_problems(page('<script src="/x.js"></script>'))
    assert csp_problems(page('<script nonce="zzz">1</script>'))
    assert csp_problems(page('<p style="color:red">x</p>'))
    assert csp_problems(page("<style>p{}</style>"))
    assert csp_problems(page('<button onclick="go()">x</button>'))
    assert csp_problems(page("", policy=""))
    assert csp_problems(page("", policy="script-src 'self'"))
    assert csp_problems(page("", policy="script-src 'self' 'nonce-abc' 'unsafe-inline'"))


# --- manage.py check --deploy ------------------------------------------------------------


def production_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "SECRET_KEY", "EMAIL_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="retainers.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64)[:64],
        SITE_URL="https://retainers.example.com",
        ALLOWED_HOSTS="retainers.example.com",
        # Production must send real mail: without EMAIL_URL the settings refuse to load (see the next test).
        EMAIL_URL="smtp+tls://mailer:secret@smtp.example.com:587",
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgres://retainers@127.0.0.1:5432/retainers"),
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_deploy_check_passes_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in result.stdout, output
    assert "WARNING" not in output and "?: (" not in output, output


@pytest.mark.slow
def test_production_settings_refuse_to_load_without_email_url():
    env = production_env()
    del env["EMAIL_URL"]
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "EMAIL_URL must be set" in result.stdout + result.stderr


@pytest.mark.slow
def test_settings_refuse_to_load_without_secret_key_when_debug_is_off():
    env = production_env()
    del env["SECRET_KEY"]
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


# --- /healthz ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_reports_database_and_redis_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    assert "no-cache" in response.headers["Cache-Control"]  # a cached "ok" would hide an outage


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # free once the socket closes: nothing listens there


@pytest.mark.django_db
def test_healthz_says_redis_is_down_when_it_is(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/15",
        }
    }
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"] == "ok"
    assert body["redis"].startswith("error")


# --- Forms show errors next to their fields ----------------------------------------------


class FieldBlocks(HTMLParser):
    """The `.field` blocks of a page: their classes, the controls in them and their error texts."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[dict] = []
        self._open: list[tuple[str, dict | None]] = []  # (tag, block or None) for every open element
        self._in_error = 0

    def _current(self) -> dict | None:
        return next((block for _, block in reversed(self._open) if block is not None), None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        classes = (values.get("class") or "").split()
        block = None
        if "field" in classes:
            block = {"classes": set(classes), "controls": [], "errors": []}
            self.blocks.append(block)
        if tag in {"input", "select", "textarea"} and (current := self._current()) is not None:
            current["controls"].append(values.get("name"))
        if tag == "ul" and "errorlist" in classes:
            self._in_error += 1
        if tag not in {"input", "br", "img", "meta", "link", "hr"}:
            self._open.append((tag, block))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, -1, -1):
            if self._open[depth][0] == tag:
                if tag == "ul" and self._in_error:
                    self._in_error -= 1
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        if self._in_error and data.strip() and (current := self._current()) is not None:
            current["errors"].append(data.strip())

    def block_for(self, name: str) -> dict:
        [block] = [block for block in self.blocks if name in block["controls"]]
        return block


@pytest.mark.django_db
def test_invite_form_shows_a_bad_email_error_inside_the_email_field(owner_client, workspace):
    response = owner_client.post(f"/w/{workspace.slug}/team/", {"email": "not-an-email", "role": "member"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="field has-error"' in html
    page = FieldBlocks()
    page.feed(html)
    email_block = page.block_for("email")
    assert "has-error" in email_block["classes"]
    assert email_block["errors"] == ["Enter a valid email address."]
    role_block = page.block_for("role")
    assert "has-error" not in role_block["classes"] and role_block["errors"] == []
