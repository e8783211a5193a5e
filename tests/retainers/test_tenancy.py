"""Tenant isolation, walked over the URL resolver so every later view is covered too."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from clients.services import add_contact
from tests import factories


def _routes(resolver: URLResolver | None = None, prefix: str = "") -> list[str]:
    """Every route of the project as a string like 'w/<slug:workspace_slug>/team/<int:membership_id>/role/'."""
    routes = []
    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            routes += _routes(entry, route)
        elif isinstance(entry, URLPattern):
            routes.append(route)
    return routes


def _fill(route: str, workspace_slug: str) -> str:
    """A concrete URL: the workspace slug given, every other parameter a plausible value."""
    url = route.replace("<slug:workspace_slug>", workspace_slug)
    url = re.sub(r"<int:\w+>", "1", url)
    url = re.sub(r"<(?:str|slug|path):\w+>", "x", url)
    url = re.sub(r"<uuid:\w+>", "00000000-0000-0000-0000-000000000000", url)
    assert "<" not in url and "^" not in url, f"unfilled route {route}"
    return "/" + url


def workspace_routes() -> list[str]:
    routes = [r for r in _routes() if r.startswith("w/<slug:workspace_slug>/")]
    assert len(routes) >= 6, "the walk found too few workspace URLs to be meaningful"
    return routes


def portal_routes() -> list[str]:
    return [r for r in _routes() if r.startswith("portal/w/<slug:workspace_slug>/")]


def _status(client, url: str) -> int:
    """GET, or POST for views that only accept POST (their 405 to a GET reveals nothing)."""
    response = client.get(url)
    if response.status_code == 405:
        response = client.post(url)
    return response.status_code


@pytest.mark.django_db
@pytest.mark.parametrize("route", workspace_routes())
def test_member_of_another_workspace_gets_404_on_every_workspace_url(route, other_workspace, owner_client):
    url = _fill(route, other_workspace.slug)
    assert _status(owner_client, url) == 404, url


@pytest.mark.django_db
@pytest.mark.parametrize("route", workspace_routes())
def test_unknown_workspace_is_404_like_a_foreign_one(route, owner_client):
    assert _status(owner_client, _fill(route, "no-such-workspace")) == 404


@pytest.mark.django_db
@pytest.mark.parametrize("route", workspace_routes())
def test_anonymous_visitor_is_sent_to_sign_in(route, workspace, client):
    response = client.get(_fill(route, workspace.slug))
    if response.status_code == 405:
        response = client.post(_fill(route, workspace.slug))
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")


@pytest.fixture
def contact_user(workspace):
    """A portal contact of a client in `workspace`: a signed-in person who is not a member."""
    client = factories.ClientFactory(workspace=workspace)
    contact = add_contact(client=client, name="Carol Chen", email="carol@acme.example", portal_access=True)
    return contact.user


@pytest.mark.django_db
@pytest.mark.parametrize("route", workspace_routes())
def test_portal_contact_reaches_no_consultant_page(route, workspace, contact_user, login):
    client = login(contact_user)
    assert _status(client, _fill(route, workspace.slug)) == 404


@pytest.mark.django_db
def test_portal_contact_is_kept_out_of_the_consultant_start_pages(workspace, contact_user, login):
    client = login(contact_user)
    assert client.get("/").url == "/portal/"
    assert client.get("/w/new/").url == "/portal/"


@pytest.mark.django_db
@pytest.mark.parametrize("route", portal_routes() or ["portal/w/<slug:workspace_slug>/"])
def test_portal_of_another_workspace_is_404(route, workspace, other_workspace, contact_user, login):
    client = login(contact_user)
    assert _status(client, _fill(route, other_workspace.slug)) == 404


@pytest.mark.django_db
@pytest.mark.parametrize("route", portal_routes() or ["portal/w/<slug:workspace_slug>/"])
def test_consultant_without_a_contact_record_gets_404_in_the_portal(route, workspace, owner_client):
    assert _status(owner_client, _fill(route, workspace.slug)) == 404


@pytest.mark.django_db
def test_member_reaches_their_own_workspace(workspace, member_client):
    assert member_client.get(f"/w/{workspace.slug}/").status_code == 200
