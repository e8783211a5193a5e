"""Communication's side of renewals' workflows, connected to renewals.signals in
CommunicationConfig.ready() (see renewals/signals.py for why these are signals).

Both run inside the sender's transaction: the follow-up task commits with the declined
renewal, or not at all.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from clients.models import Retainer
from communication.markdown import plain_text
from communication.models import Note, Task
from renewals.evidence import Evidence
from renewals.models import Renewal
from retainers.models import Membership, User

DECLINE_TASK_DUE = timedelta(days=2)
HIGHLIGHTS = 5
HIGHLIGHT_CHARS = 280


def open_decline_follow_up(
    sender: object, *, renewal: Renewal, retainer: Retainer, actor: User | None, declined_at: datetime, **kwargs: object
) -> Task:
    """A declined renewal: a task for the workspace's first owner to ask the client why, due in two days."""
    owner = (
        Membership.objects.filter(workspace_id=renewal.workspace_id, role=Membership.Role.OWNER)
        .order_by("created_at", "pk")
        .values_list("user_id", flat=True)
        .first()
    )
    return Task.objects.create(
        workspace_id=renewal.workspace_id,
        client=retainer.client,
        title=f"Ask why {retainer.client.name} declined"[:200],
        due_at=declined_at + DECLINE_TASK_DUE,
        assignee_id=owner,
        renewal=renewal,
        source=Task.Source.RENEWAL,
        created_by=actor,
    )


def add_note_highlights(
    sender: object, *, retainer: Retainer, evidence: Evidence, term_starts_on: date, **kwargs: object
) -> None:
    """The proposal's highlights: the client's latest shared notes of the term, as plain text. One query."""
    workspace = retainer.workspace
    notes = (
        Note.objects.filter(workspace=workspace, client_id=retainer.client_id, visibility=Note.Visibility.SHARED)
        .filter(created_at__gte=datetime.combine(term_starts_on, time.min, tzinfo=workspace.tzinfo))
        .order_by("-created_at", "-pk")
        .values_list("created_at", "body")[:HIGHLIGHTS]
    )
    evidence.highlights = [
        {"date": created_at.astimezone(workspace.tzinfo).date().isoformat(), "text": _excerpt(body)}
        for created_at, body in notes
    ]


def _excerpt(body: str) -> str:
    """Plain text of a note for the highlights: its first words without Markdown, shown escaped,
    never as HTML."""
    text = plain_text(body)
    return text if len(text) <= HIGHLIGHT_CHARS else text[: HIGHLIGHT_CHARS - 1].rstrip() + "…"
