"""Every URL with object ids, walked with the visitor's OWN workspace slug and ANOTHER workspace's ids
(issue 16, "the second wall"). The decorator lets the visitor in (it is their workspace), so this
is what proves each view looks its objects up through its workspace, and that the row-level
policies hold when one does not: the answer is a 404, never a page of the other tenant's data and
never a 500. (tests/retainers/test_tenancy.py walks the same URLs with a foreign slug, which proves
the decorator is applied.)

The other workspace is the seeded demo (it has a row of every kind); the visitor is the owner of a
workspace of their own, or, for the portal, a client contact there.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from clients.services import add_contact
from demo import northwind
from retainers.models import Membership, Workspace
from tests import factories
from tests.retainers.test_security import _routes
from tests.retainers.test_tenancy import _status

pytestmark = pytest.mark.slow


def _model_for(param: str):
    from django.apps import apps

    wanted = param.removesuffix("_id").replace("_", "")
    for model in apps.get_models():
        if model._meta.model_name == wanted and any(f.name == "workspace" for f in model._meta.get_fields()):
            return model
    return None


def foreign_urls(own_slug: str, other: Workspace, *, portal: bool) -> list[tuple[str, str]]:
    """(route, URL) of every workspace (or portal) route with object ids: `own_slug`, and for each id
    parameter the first and the last row of `other` (every id parameter from `other`)."""
    urls = []
    for route in _routes():
        if not route.int_params or "workspace_slug" not in route.params:
            continue
        if route.name.startswith("portal:") != portal:
            continue
        if set(route.params) - route.int_params - {"workspace_slug"}:
            continue  # a token or a template name besides the ids: not an object of a workspace
        choices: list[dict[str, object]] = [{"workspace_slug": own_slug}]
        for param in sorted(route.int_params):
            model = _model_for(param)
            assert model is not None, f"{route.name}: no tenant model for <int:{param}>"
            ids = list(model._default_manager.filter(workspace=other).order_by("pk").values_list("pk", flat=True))
            picks = sorted({ids[0], ids[-1]}) if ids else []
            choices = [{**choice, param: pk} for choice in choices for pk in picks]
        urls += [(route.name, reverse(route.name, kwargs=kwargs)) for kwargs in choices]
    return urls


@pytest.fixture
def demo(db, settings, tmp_path, django_capture_on_commit_callbacks) -> Workspace:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RATE_LIMITS_ENABLED = False
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", stdout=io.StringIO())
    return Workspace.objects.get(slug=northwind.SLUG)


def _assert_nothing_leaks(browser, urls, other: Workspace, *, at_least: int) -> None:
    assert len(urls) >= at_least, "the walk found too few URLs with ids to be meaningful"
    wrong = []
    for name, url in urls:
        status = _status(browser, url)
        if status != 404:
            wrong.append(f"{name} {url}: {status}")
    assert wrong == [], f"{len(wrong)} URLs with {other.slug}'s ids did not answer 404:\n" + "\n".join(wrong)


def test_a_member_with_their_own_slug_and_another_workspaces_ids_gets_404_everywhere(demo, login):
    mallory = factories.UserFactory(email="mallory@example.com")
    own = factories.WorkspaceFactory(name="Mallory Consulting")
    factories.MembershipFactory(workspace=own, user=mallory, role=Membership.Role.OWNER)
    _assert_nothing_leaks(login(mallory), foreign_urls(own.slug, demo, portal=False), demo, at_least=100)


def test_a_portal_contact_with_their_own_slug_and_another_workspaces_ids_gets_404_everywhere(demo, login):
    own = factories.WorkspaceFactory(name="Mallory Consulting")
    client = factories.ClientFactory(workspace=own, name="Mallory's client")
    contact = add_contact(client=client, name="Mallory", email="mallory@client.example", portal_access=True)
    _assert_nothing_leaks(login(contact.user), foreign_urls(own.slug, demo, portal=True), demo, at_least=10)
