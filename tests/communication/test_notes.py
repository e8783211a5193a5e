"""Notes: private or shared, Markdown shown safely, edit history of what the client saw."""

from __future__ import annotations

import pytest

from communication import services as communication
from communication.models import Note, NoteRevision
from tests.communication.conftest import HTMX, XSS, assert_neutralised, portal_url, team_url

pytestmark = pytest.mark.django_db


def client_page(workspace, client) -> str:
    """The client page's Communication tab, where the notes are."""
    return f"/w/{workspace.slug}/clients/{client.pk}/communication/"


# --- Services -------------------------------------------------------------------------------


def test_create_note_on_client_and_on_session(acme, alice, session):
    general = communication.create_note(client=acme, author=alice, body="  Kick-off went well  ", visibility="private")
    on_session = communication.create_note(
        client=acme, author=alice, body="Agreed next steps", visibility="shared", session=session
    )
    assert general.body == "Kick-off went well" and general.session is None
    assert on_session.session == session and on_session.visibility == Note.Visibility.SHARED
    assert general.workspace_id == acme.workspace_id


def test_note_on_another_clients_session_is_refused(globex, alice, session):
    with pytest.raises(communication.CommunicationError) as error:
        communication.create_note(client=globex, author=alice, body="x", visibility="private", session=session)
    assert error.value.field == "session"


def test_empty_note_is_refused(acme, alice):
    with pytest.raises(communication.CommunicationError):
        communication.create_note(client=acme, author=alice, body="   ", visibility="private")


def test_editing_a_shared_note_keeps_what_the_client_saw(acme, alice, bob):
    note = communication.create_note(client=acme, author=alice, body="v1", visibility="shared")
    communication.update_note(note=note, actor=bob, body="v2", visibility="shared")
    communication.update_note(note=note, actor=alice, body="v3", visibility="private")
    communication.update_note(note=note, actor=alice, body="v4", visibility="private")  # was shared: still kept
    note.refresh_from_db()
    assert note.body == "v4"
    history = list(NoteRevision.objects.filter(note=note).order_by("pk").values_list("body", "visibility", "edited_by"))
    assert history == [("v1", "shared", bob.pk), ("v2", "shared", alice.pk), ("v3", "private", alice.pk)]


def test_private_notes_keep_no_history_until_shared(acme, alice):
    note = communication.create_note(client=acme, author=alice, body="draft", visibility="private")
    communication.update_note(note=note, actor=alice, body="draft 2", visibility="private")
    communication.update_note(
        note=note, actor=alice, body="final", visibility="shared"
    )  # the client never saw "draft 2"
    assert not NoteRevision.objects.filter(note=note).exists()
    communication.update_note(note=note, actor=alice, body="final, corrected", visibility="shared")
    assert list(NoteRevision.objects.filter(note=note).values_list("body", flat=True)) == ["final"]


def test_saving_an_unchanged_note_records_nothing(acme, alice):
    note = communication.create_note(client=acme, author=alice, body="same", visibility="shared")
    communication.update_note(note=note, actor=alice, body="same", visibility="shared")
    assert not NoteRevision.objects.exists()


def test_only_never_shared_notes_can_be_deleted(acme, alice):
    private = communication.create_note(client=acme, author=alice, body="p", visibility="private")
    shared = communication.create_note(client=acme, author=alice, body="s", visibility="shared")
    unshared = communication.create_note(client=acme, author=alice, body="u", visibility="shared")
    communication.update_note(note=unshared, actor=alice, body="u", visibility="private")
    communication.delete_note(note=private, actor=alice)
    for note in (shared, unshared):
        with pytest.raises(communication.CommunicationError):
            communication.delete_note(note=note, actor=alice)
    assert set(Note.objects.values_list("body", flat=True)) == {"s", "u"}


# --- Views ------------------------------------------------------------------------------------


def test_adding_a_note_from_the_client_page_with_htmx_returns_the_section(workspace, acme, member_client):
    data = {"origin": "client", "note-body": "Call **went** well", "note-visibility": "private"}
    response = member_client.post(team_url(workspace, "note_create", client_id=acme.pk), data, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="client-communication"')
    assert "Call <strong>went</strong> well" in html and "Note added." in html
    assert Note.objects.get().author.email == "bob@example.com"


def test_adding_a_note_without_htmx_redirects_to_the_client_page(workspace, acme, member_client):
    data = {"note-body": "Plain", "note-visibility": "shared"}
    response = member_client.post(team_url(workspace, "note_create", client_id=acme.pk), data)
    assert response.status_code == 302
    assert response.url == client_page(workspace, acme) + "#client-communication"


def test_an_empty_note_shows_the_error_next_to_the_field(workspace, acme, member_client):
    data = {"origin": "client", "note-body": "", "note-visibility": "private"}
    response = member_client.post(team_url(workspace, "note_create", client_id=acme.pk), data, **HTMX)
    assert response.status_code == 200
    assert 'class="field has-error"' in response.content.decode()
    assert not Note.objects.exists()
    page = member_client.post(team_url(workspace, "note_create", client_id=acme.pk), {"note-visibility": "private"})
    assert page.status_code == 200 and "has-error" in page.content.decode()


def test_edit_page_shows_the_history_and_refuses_to_delete_a_shared_note(workspace, acme, alice, owner_client):
    note = communication.create_note(client=acme, author=alice, body="First *version*", visibility="shared")
    response = owner_client.post(
        team_url(workspace, "note_edit", note_id=note.pk), {"body": "Second", "visibility": "shared"}
    )
    assert response.status_code == 302
    page = owner_client.get(team_url(workspace, "note_edit", note_id=note.pk)).content.decode()
    assert "History" in page and "First <em>version</em>" in page
    assert "cannot be deleted" in page
    response = owner_client.post(team_url(workspace, "note_delete", note_id=note.pk), follow=True)
    assert Note.objects.filter(pk=note.pk).exists()
    assert "kept on record" in response.content.decode()


def test_deleting_a_private_note(workspace, acme, alice, member_client):
    note = communication.create_note(client=acme, author=alice, body="scratch", visibility="private")
    response = member_client.post(team_url(workspace, "note_delete", note_id=note.pk))
    assert response.status_code == 302
    assert not Note.objects.exists()


def test_notes_of_another_workspace_are_404(workspace, other_workspace, acme, alice, outsider_client):
    note = communication.create_note(client=acme, author=alice, body="secret", visibility="shared")
    for url in [
        team_url(other_workspace, "note_edit", note_id=note.pk),
        team_url(other_workspace, "note_create", client_id=acme.pk),
        team_url(other_workspace, "note_list", client_id=acme.pk),
    ]:
        assert outsider_client.get(url).status_code == 404, url
    assert outsider_client.post(team_url(other_workspace, "note_delete", note_id=note.pk)).status_code == 404
    assert Note.objects.filter(pk=note.pk).exists()


def test_portal_shows_only_shared_notes_of_the_contacts_own_client(
    workspace, acme, globex, alice, carol, carol_browser, gil
):
    communication.create_note(client=acme, author=alice, body="Shared **plan**", visibility="shared")
    communication.create_note(client=acme, author=alice, body="Private musing", visibility="private")
    communication.create_note(client=globex, author=alice, body="Globex roadmap", visibility="shared")
    html = carol_browser.get(portal_url(workspace, "shared_notes")).content.decode()
    assert "Shared <strong>plan</strong>" in html
    assert "Private musing" not in html and "Globex roadmap" not in html


@pytest.mark.parametrize("payload", XSS)
def test_xss_in_notes_is_neutralised_on_every_page(workspace, acme, alice, carol, carol_browser, owner_client, payload):
    note = communication.create_note(client=acme, author=alice, body=f"Hello {payload}", visibility="shared")
    communication.update_note(note=note, actor=alice, body=f"Again {payload}", visibility="shared")  # a revision too
    pages = {
        "client page": owner_client.get(client_page(workspace, acme)),
        "note list": owner_client.get(team_url(workspace, "note_list", client_id=acme.pk)),
        "note edit": owner_client.get(team_url(workspace, "note_edit", note_id=note.pk)),
        "timeline": owner_client.get(team_url(workspace, "dashboard:client_timeline", client_id=acme.pk)),
        "portal notes": carol_browser.get(portal_url(workspace, "shared_notes")),
    }
    for label, response in pages.items():
        assert response.status_code == 200, label
        html = response.content.decode()
        assert "Again" in html, label
        assert_neutralised(html)
