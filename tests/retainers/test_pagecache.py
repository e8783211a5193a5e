"""The data version: PostgreSQL moves it whenever a transaction changes a workspace's rows, so page
parts cached under it are never stale (retainers.pagecache)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clients.models import Client
from delivery import services as delivery
from retainers.pagecache import TRIGGER, PageCache, data_version
from tests import factories


def tables_with_a_workspace() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND column_name = 'workspace_id' AND table_name <> 'retainers_dataversion'"
        )
        return {row[0] for row in cursor.fetchall()}


def tables_with_the_trigger() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = %s AND tgdeferrable AND tginitdeferred",
            [TRIGGER],
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.django_db
def test_every_tenant_table_and_the_workspace_itself_move_the_version():
    """A new tenant table without `track(...)` in its migration would serve stale pages: fail here."""
    tables = tables_with_a_workspace()
    assert "clients_retainer" in tables and "delivery_ledgerentry" in tables
    assert tables | {"retainers_workspace"} <= tables_with_the_trigger()


@pytest.mark.django_db(transaction=True)
def test_a_committed_write_moves_its_workspace_version_once_and_a_rollback_does_not():
    mine, theirs = factories.WorkspaceFactory(), factories.WorkspaceFactory()
    start, their_start = data_version(mine), data_version(theirs)

    factories.ClientFactory(workspace=mine)  # autocommit: one statement, one transaction
    assert data_version(mine) == start + 1
    assert data_version(theirs) == their_start

    with transaction.atomic():  # many statements and rows, one transaction: moved once
        Client.objects.bulk_create(Client(workspace=mine, name=f"Bulk {n}") for n in range(300))
        Client.objects.filter(workspace=mine).update(checkin_every_days=14)
        assert data_version(mine) == start + 1  # deferred: nothing moves before the commit
    assert data_version(mine) == start + 2

    with pytest.raises(RuntimeError), transaction.atomic():
        Client.objects.filter(workspace=mine).delete()
        raise RuntimeError("rolled back")
    assert data_version(mine) == start + 2

    with connection.cursor() as cursor:  # raw SQL too, since PostgreSQL does the counting
        cursor.execute("UPDATE clients_client SET checkin_every_days = 7 WHERE workspace_id = %s", [mine.pk])
    assert data_version(mine) == start + 3
    mine.locale = "en_GB"
    mine.save()  # the workspace's own settings change how its pages read
    assert data_version(mine) == start + 4
    assert data_version(theirs) == their_start


@pytest.mark.django_db(transaction=True)
def test_renaming_a_person_moves_the_version_of_each_workspace_they_are_in():
    mine, theirs, unrelated = (factories.WorkspaceFactory() for _ in range(3))
    person = factories.UserFactory(name="Carol Chen")
    factories.MembershipFactory(workspace=mine, user=person)
    factories.ContactFactory(client=factories.ClientFactory(workspace=theirs), user=person)
    before = {w.pk: data_version(w) for w in (mine, theirs, unrelated)}

    person.last_login = timezone.now()
    person.save()  # signing in changes nothing a page shows
    assert {w.pk: data_version(w) for w in (mine, theirs, unrelated)} == before

    person.name = "Carol Chen-Li"
    person.save()
    after = {w.pk: data_version(w) for w in (mine, theirs, unrelated)}
    assert after == {mine.pk: before[mine.pk] + 1, theirs.pk: before[theirs.pk] + 1, unrelated.pk: before[unrelated.pk]}


@pytest.mark.django_db(transaction=True)
def test_the_dashboard_shows_work_recorded_elsewhere_at_once(settings):
    """Production's path: committed transactions, deferred triggers, the cached rows and attention."""
    settings.PAGE_CACHE_SECONDS = 600
    workspace = factories.WorkspaceFactory(timezone="Europe/London", currency="GBP")
    owner = factories.UserFactory()
    factories.MembershipFactory(workspace=workspace, user=owner, role="owner")
    client = factories.ClientFactory(workspace=workspace, name="Acme Corp")
    retainer = factories.make_retainer(
        workspace=workspace, client=client, starts_on=workspace.today().replace(day=1), units_per_period=Decimal(10)
    )
    browser = HttpClient()
    browser.force_login(owner)
    url = f"/w/{workspace.slug}/"
    first = browser.get(url).content.decode()
    with CaptureQueriesContext(connection) as queries:
        browser.get(url)
    # From the cache: session, user, membership (with the data version), switcher.
    assert len(queries) == 4, "\n".join(q["sql"][:120] for q in queries.captured_queries)
    delivery.record_delivery(
        retainer=retainer, delivered_on=workspace.today(), quantity=Decimal("9"), description="Audit", actor=None
    )
    after = browser.get(url).content.decode()
    assert "10.00 h left" in first and "1.00 h left" in after
    assert "Low balance" in after and "Low balance" not in first


@pytest.mark.django_db
def test_a_part_is_built_once_until_the_workspace_changes(workspace):
    built = []

    def build() -> str:
        built.append(1)
        return f"part {len(built)}"

    assert PageCache(workspace).get("part", [date(2026, 4, 1)], build) == "part 1"
    assert PageCache(workspace).get("part", [date(2026, 4, 1)], build) == "part 1"
    assert PageCache(workspace).get("part", [date(2026, 4, 2)], build) == "part 2"  # another key
    factories.ClientFactory(workspace=workspace)
    assert PageCache(workspace).get("part", [date(2026, 4, 1)], build) == "part 3"
    assert len(built) == 3


@pytest.mark.django_db
def test_no_cache_when_turned_off(workspace, settings):
    settings.PAGE_CACHE_SECONDS = 0
    built = []
    for _ in range(2):
        PageCache(workspace).get("part", [], lambda: built.append(1))
    assert built == [1, 1]


@pytest.mark.django_db
def test_a_new_release_does_not_reuse_parts_built_by_the_old_one(workspace, monkeypatch):
    from retainers import pagecache

    assert len(pagecache.code_fingerprint()) == 16
    assert PageCache(workspace).get("part", [], lambda: "old release") == "old release"
    monkeypatch.setattr(pagecache, "code_fingerprint", lambda: "another-release")
    assert PageCache(workspace).get("part", [], lambda: "new release") == "new release"
