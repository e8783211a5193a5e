"""The second wall: PostgreSQL row-level security holds every tenant table (retainers/tenancy.py,
docs/tenancy.md). The app's role may not bypass it, every table with a `workspace_id` is covered
(so a new model cannot forget), the settings are restored whatever happens, and a view that drops
its workspace filter still shows nothing of another workspace."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from clients.models import Client
from retainers import tenancy
from retainers.models import Membership, WorkspaceQuerySet
from tests import factories


def _count_clients() -> int:
    return Client.objects.count()


@pytest.mark.django_db
def test_the_app_role_is_neither_superuser_nor_bypassrls():
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        superuser, bypass = cursor.fetchone()
    assert (superuser, bypass) == (False, False), "tests must run as the restricted role, or the policies hold nothing"


@pytest.mark.django_db
def test_every_table_with_a_workspace_id_is_held_by_the_forced_policy():
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   EXISTS (SELECT 1 FROM pg_policies p WHERE p.tablename = c.relname AND p.policyname = %s
                           AND p.cmd = 'ALL' AND p.qual LIKE %s AND p.with_check LIKE %s)
            FROM information_schema.columns col
            JOIN pg_class c ON c.relname = col.table_name AND c.relkind = 'r'
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = col.table_schema
            WHERE col.table_schema = current_schema() AND col.column_name = 'workspace_id'
            """,
            [tenancy.POLICY_NAME, "%app.workspace_id%", "%app.workspace_id%"],
        )
        rows = cursor.fetchall()
    assert len(rows) >= 40
    rows = [row for row in rows if row[0] not in tenancy.NOT_HELD]
    unheld = [name for name, enabled, forced, policy in rows if not (enabled and forced and policy)]
    assert unheld == [], f"tables with a workspace_id but no forced workspace policy: {unheld}"
    # Which tables have no workspace_id on purpose: platform data, documented in docs/tenancy.md.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relrowsecurity ORDER BY relname"
        )
        held = {name for (name,) in cursor.fetchall()}
    assert held == {name for name, *_ in rows}


@pytest.mark.django_db
def test_the_wall_shows_one_workspace_and_refuses_writes_into_another(workspace, other_workspace):
    mine = factories.ClientFactory(workspace=workspace, name="Mine")
    factories.ClientFactory(workspace=other_workspace, name="Theirs")
    assert _count_clients() == 2  # the test's own view: cross-tenant (tests/conftest.py)

    with tenancy.wall():
        assert _count_clients() == 0
        assert not Client.objects.filter(pk=mine.pk).exists()
    with tenancy.use_workspace(workspace):
        assert list(Client.objects.values_list("name", flat=True)) == ["Mine"]
        # WITH CHECK: a row of another workspace cannot be written from here, nor moved there.
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            Client.objects.create(workspace=other_workspace, name="Smuggled")
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            Client.objects.filter(pk=mine.pk).update(workspace=other_workspace)
        # An update or delete of the other workspace's rows touches nothing.
        assert Client.objects.filter(name="Theirs").update(name="Changed") == 0
    assert Client.objects.filter(name="Theirs").exists()


@pytest.mark.django_db
def test_settings_are_restored_after_each_block_even_on_error(workspace, other_workspace):
    before = tenancy.current()
    assert before[1] == "on"  # the test's set-up bypass
    with tenancy.wall():
        assert tenancy.current() == ("", "", "")
        with tenancy.use_workspace(workspace):
            assert tenancy.current()[:2] == (str(workspace.pk), "")
            with tenancy.cross_tenant("a test of the bypass"):
                assert tenancy.current() == (str(workspace.pk), "on", "")
            assert tenancy.current()[:2] == (str(workspace.pk), "")
        with pytest.raises(RuntimeError), tenancy.use_workspace(other_workspace):
            raise RuntimeError("boom")
        assert tenancy.current() == ("", "", "")
    assert tenancy.current() == before


def test_cross_tenant_needs_a_reason():
    with pytest.raises(ValueError), tenancy.cross_tenant(" "):
        pass  # pragma: no cover


@pytest.mark.django_db
def test_a_member_sees_only_their_own_memberships_before_a_workspace_is_chosen(workspace, other_workspace, bob):
    with tenancy.wall(user=bob):
        assert list(Membership.objects.values_list("workspace_id", flat=True)) == [workspace.pk]
    with tenancy.wall():
        assert not Membership.objects.exists()


@pytest.mark.django_db
def test_a_page_that_forgets_its_workspace_filter_still_leaks_nothing(
    workspace, other_workspace, member_client, monkeypatch
):
    """Drop every `for_workspace(...)` filter on purpose: the client list then asks the database for
    every client, and the policies still return this workspace's only."""
    factories.ClientFactory(workspace=workspace, name="Acme Own Client")
    factories.ClientFactory(workspace=other_workspace, name="Globex Foreign Client")
    monkeypatch.setattr(WorkspaceQuerySet, "for_workspace", lambda self, workspace: self)

    response = member_client.get(f"/w/{workspace.slug}/clients/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Acme Own Client" in page
    assert "Globex Foreign Client" not in page

    # Without the wall (what the first wall alone would give), the same page leaks: the test can fail.
    monkeypatch.setattr(tenancy, "use_workspace", lambda workspace: tenancy.cross_tenant("leak demonstration"))
    leaked = member_client.get(f"/w/{workspace.slug}/clients/").content.decode()
    assert "Globex Foreign Client" in leaked
