"""The audit trail's table: append-only in PostgreSQL, written in the change's transaction, with the
IP of web actions; and the role and settings changes it records."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.urls import reverse

from retainers import audit, services
from retainers.models import AuditEvent, Membership

pytestmark = pytest.mark.django_db


def _event(workspace, alice) -> AuditEvent:
    return audit.record(workspace=workspace, actor=alice, action="test.done", amount_minor=500, currency="GBP")


def test_the_database_refuses_update_of_an_audit_event(workspace, alice):
    event = _event(workspace, alice)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE retainers_auditevent SET amount_minor = 1 WHERE id = %s", [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).amount_minor == 500


def test_the_database_refuses_delete_of_an_audit_event(workspace, alice):
    event = _event(workspace, alice)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM retainers_auditevent WHERE id = %s", [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_an_audit_event_is_rolled_back_with_its_change(workspace, alice):
    with pytest.raises(RuntimeError), transaction.atomic():
        _event(workspace, alice)
        raise RuntimeError("the change failed")
    assert not AuditEvent.objects.exists()


def test_an_amount_needs_its_currency(workspace, alice):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEvent.objects.create(workspace=workspace, action="x", amount_minor=5, currency="")


def test_a_web_action_records_the_clients_ip_and_the_actor(owner_client, workspace, alice, bob):
    bob_membership = Membership.objects.get(workspace=workspace, user=bob)
    response = owner_client.post(
        reverse("member_role", args=[workspace.slug, bob_membership.pk]),
        {"role": "admin"},
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="member.role_changed")
    assert (event.actor, event.actor_label, event.ip) == (alice, "alice@example.com", "203.0.113.9")
    assert (event.object_type, event.object_id, event.changes) == (
        "retainers.membership",
        bob_membership.pk,
        {"role": ["member", "admin"]},
    )
    assert event.workspace == workspace


def test_work_outside_a_request_has_no_ip(workspace, alice):
    assert _event(workspace, alice).ip is None


def test_inviting_revoking_and_removing_are_audited(workspace, alice, bob):
    owner = Membership.objects.get(workspace=workspace, user=alice)
    invitation = services.invite_member(actor=owner, email="dora@example.com", role="member")
    services.revoke_invitation(actor=owner, invitation=invitation)
    services.revoke_invitation(actor=owner, invitation=invitation)  # a second click records nothing more
    services.remove_member(actor=owner, membership=Membership.objects.get(workspace=workspace, user=bob))
    rows = list(AuditEvent.objects.for_workspace(workspace).order_by("pk").values_list("action", "summary", "actor"))
    assert rows == [
        ("member.invited", "dora@example.com", alice.pk),
        ("member.invitation_revoked", "dora@example.com", alice.pk),
        ("member.removed", "bob@example.com", alice.pk),
    ]


def test_accepting_an_invitation_is_audited_as_joining(workspace, alice, charlie):
    owner = Membership.objects.get(workspace=workspace, user=alice)
    invitation = services.invite_member(actor=owner, email="charlie@example.com", role="admin")
    services.accept_invitation(invitation=invitation, user=charlie)
    joined = AuditEvent.objects.get(action="member.joined")
    assert (joined.actor, joined.changes["role"]) == (charlie, "admin")


def test_workspace_settings_changes_are_audited_with_what_changed(owner_client, workspace, alice):
    response = owner_client.post(
        reverse("workspace_settings", args=[workspace.slug]),
        {"workspace_name": "Northwind Partners", "timezone": "Europe/London", "currency": "GBP"},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="settings.workspace_changed")
    assert event.actor == alice
    assert event.changes == {"name": ["Northwind Advisory", "Northwind Partners"]}
    assert event.ip == "127.0.0.1"


def test_saving_unchanged_workspace_settings_records_nothing(workspace, alice):
    services.update_workspace(workspace=workspace, name=workspace.name, timezone_name="Europe/London", currency="GBP")
    assert not AuditEvent.objects.exists()


def test_the_admin_lists_audit_events_and_cannot_change_them(workspace, alice, login):
    event = _event(workspace, alice)
    staff = login(type(alice).objects.create_superuser(email="root@example.com", password="x"))
    assert staff.get("/admin/retainers/auditevent/").status_code == 200
    page = staff.get(f"/admin/retainers/auditevent/{event.pk}/change/")
    assert page.status_code == 200 and "test.done" in page.content.decode()
    assert staff.post(f"/admin/retainers/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_history_written_after_the_fact_carries_its_own_time(workspace, alice):
    from datetime import UTC, datetime

    then = datetime(2025, 11, 3, 9, 30, tzinfo=UTC)
    with audit.recorded_at(then):
        backdated = _event(workspace, alice)
    assert backdated.created_at == then
    assert _event(workspace, alice).created_at > then  # only inside the block


def test_an_ipv6_address_is_kept_whole(owner_client, workspace):
    owner_client.post(
        reverse("workspace_settings", args=[workspace.slug]),
        {"workspace_name": "Northwind v6", "timezone": "Europe/London", "currency": "GBP"},
        REMOTE_ADDR="2001:db8::1234",
    )
    assert AuditEvent.objects.get(action="settings.workspace_changed").ip == "2001:db8::1234"
