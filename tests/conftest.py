"""Shared fixtures: Alice owns `workspace` (Bob is a member), Charlie owns `other_workspace`.

Tests run against the real PostgreSQL and Redis that `make test` found or started.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection
from django.test import Client as HttpClient
from django.test import TransactionTestCase as DjangoTransactionTestCase

from retainers import tenancy
from retainers.models import Membership, User, Workspace
from tests import factories

# Every process of a test run has a Celery broker of its own: memory:// lives inside the process,
# so what a test queues, or a process it starts (two billing runs, manage.py commands), never
# reaches the developer's Redis queue, where `make run`'s worker would pick it up. Subprocesses
# inherit it through the environment; the browser tests' worker, the one place a broker must be
# shared, gets a Redis queue of its own instead (tests/e2e/conftest.py).
TEST_BROKER_URL = "memory://localhost/"  # a host name, or kombu warns that none was given


def pytest_configure(config: pytest.Config) -> None:
    os.environ["CELERY_BROKER_URL"] = TEST_BROKER_URL
    # Settings may already be loaded (pytest-django sets Django up first): set it there too.
    django_settings.CELERY_BROKER_URL = TEST_BROKER_URL


def _test_redis_url(url: str) -> str:
    """Tests use their own Redis database, so clearing it never touches a dev broker or cache."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/15"))


@pytest.fixture(autouse=True)
def _test_settings(settings) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _test_redis_url(settings.REDIS_URL),
            # Per process: two test runs on one machine share the Redis database, and each clears
            # only its own keys before every test (a FLUSHDB would empty the other run's cache mid-test).
            "KEY_PREFIX": f"retainers-test-{os.getpid()}",
        }
    }
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _clear_cache(_test_settings) -> None:
    # allauth's rate limits and the page cache live in the cache; every test starts with a clean slate.
    with redis.Redis.from_url(django_settings.CACHES["default"]["LOCATION"]) as client:
        keys = list(client.scan_iter(match=cache.make_key("*"), count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture(autouse=True)
def _data_version_at_once(request, _clear_cache) -> None:
    """A test's transaction never commits, so the deferred `data_version` triggers (retainers.pagecache)
    would never fire and cached page parts would go stale within a test: run them at each statement."""
    marker = request.node.get_closest_marker("django_db")
    if "db" not in request.fixturenames and marker is None:
        return
    transactional = {"transactional_db", "live_server"} & set(request.fixturenames)
    if transactional or (marker is not None and marker.kwargs.get("transaction")):
        return  # every statement commits: the triggers fire as they do in production
    request.getfixturevalue("db")
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS data_version IMMEDIATE")


@pytest.fixture(autouse=True)
def _tenant_set_up(request, _data_version_at_once):
    """The test's own code (set-up through factories, assertions reading rows back) sees every
    workspace: it is the test's view of the database, not the app's. What the test drives — requests
    through the test client (TenancyMiddleware), Celery tasks (WalledTask), management commands
    (TenantCommand) — puts the wall back up for itself, so the app code under test is held by the
    row-level policies as in production (docs/tenancy.md)."""
    marker = request.node.get_closest_marker("django_db")
    uses_db = {"db", "transactional_db", "live_server"} & set(request.fixturenames)
    if isinstance(request.instance, DjangoTransactionTestCase):  # a unittest-style case manages its own database
        with tenancy.cross_tenant("test set-up and assertions"):
            yield
        return
    if not uses_db and marker is None:
        yield
        return
    transactional = {"transactional_db", "live_server"} & set(request.fixturenames)
    request.getfixturevalue(
        "transactional_db" if transactional or (marker is not None and marker.kwargs.get("transaction")) else "db"
    )
    with tenancy.cross_tenant("test set-up and assertions"):
        yield


@pytest.fixture
def alice(db) -> User:
    return factories.UserFactory(email="alice@example.com", name="Alice Archer")


@pytest.fixture
def bob(db) -> User:
    return factories.UserFactory(email="bob@example.com", name="Bob Baker")


@pytest.fixture
def charlie(db) -> User:
    return factories.UserFactory(email="charlie@example.com", name="Charlie Cole")


@pytest.fixture
def workspace(alice, bob) -> Workspace:
    workspace = factories.WorkspaceFactory(name="Northwind Advisory", timezone="Europe/London", currency="GBP")
    factories.MembershipFactory(workspace=workspace, user=alice, role=Membership.Role.OWNER)
    factories.MembershipFactory(workspace=workspace, user=bob, role=Membership.Role.MEMBER)
    return workspace


@pytest.fixture
def other_workspace(charlie) -> Workspace:
    workspace = factories.WorkspaceFactory(name="Southwind Partners", timezone="America/New_York", currency="USD")
    factories.MembershipFactory(workspace=workspace, user=charlie, role=Membership.Role.OWNER)
    return workspace


def _logged_in(user: User) -> HttpClient:
    client = HttpClient()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.fixture
def owner_client(workspace, alice) -> HttpClient:
    return _logged_in(alice)


@pytest.fixture
def member_client(workspace, bob) -> HttpClient:
    return _logged_in(bob)


@pytest.fixture
def outsider_client(other_workspace, charlie) -> HttpClient:
    return _logged_in(charlie)


@pytest.fixture
def login():
    """Log any user in: `login(user)` returns a test client."""
    return _logged_in
