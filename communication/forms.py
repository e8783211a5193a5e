"""Forms of notes, messages and follow-up tasks. Every choice field is scoped to one workspace."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.db.models import Q, QuerySet

from clients.models import Client
from communication import services
from communication.models import Note
from delivery.models import WorkItem
from retainers.fields import DateTimeField
from retainers.models import User, Workspace

RECENT_SESSIONS = 10
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


def recent_sessions(client: Client, *, limit: int = RECENT_SESSIONS, include: int | None = None) -> QuerySet[WorkItem]:
    """The client's latest delivered sessions (not reversed or replaced), newest first, in one query.

    `include` keeps one more session (the one a task already points at) among the choices.
    """
    sessions = WorkItem.objects.filter(workspace_id=client.workspace_id, retainer__client=client, removed_at=None)
    ordering = ("-delivered_on", "-created_at", "-pk")
    wanted = Q(pk__in=sessions.order_by(*ordering).values("pk")[:limit])
    if include is not None:
        wanted |= Q(pk=include)
    return sessions.filter(wanted).order_by(*ordering)


class SessionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"{obj.delivered_on:%d %b %Y} · {obj.description}"[:120]

    def show_sessions(self, sessions: list) -> None:
        """Render these (already fetched) sessions as the choices; validation still uses the queryset.

        Lets one query of sessions serve several forms on the same page.
        """
        empty = [("", self.empty_label)] if self.empty_label is not None else []
        self.choices = empty + [(s.pk, self.label_from_instance(s)) for s in sessions]


class MemberChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: User) -> str:
        return obj.get_full_name()


def members(workspace: Workspace) -> QuerySet[User]:
    return User.objects.filter(memberships__workspace=workspace).order_by("name", "email")


class NoteForm(forms.Form):
    body = forms.CharField(
        label="Note",
        max_length=services.MAX_NOTE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Markdown: **bold**, *italic*, `code`, [link](https://…), lists with - or 1., headings with #.",
    )
    visibility = forms.ChoiceField(
        label="Who sees it", choices=Note.Visibility.choices, initial=Note.Visibility.PRIVATE, widget=forms.RadioSelect
    )
    session = SessionChoiceField(
        label="About a session", queryset=None, required=False, empty_label="The client in general"
    )

    def __init__(self, *args: Any, client: Client, note: Note | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if note is not None:
            # The session of an existing note is shown, not changed: edits are about the text.
            del self.fields["session"]
        else:
            cast(SessionChoiceField, self.fields["session"]).queryset = recent_sessions(client)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        if isinstance(data, (list, tuple)):
            return [super(MultipleFileField, self).clean(item, initial) for item in data if item]
        return [super().clean(data, initial)] if data else []


class MessageForm(forms.Form):
    body = forms.CharField(
        label="Message",
        required=False,
        max_length=services.MAX_MESSAGE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    attachments = MultipleFileField(
        label="Attachments",
        required=False,
        help_text=(
            f"Up to {services.MAX_FILES} files, each at most 5 MB and 10 MB in all: {services.ALLOWED_DESCRIPTION}."
        ),
        widget=MultipleFileInput(attrs={"accept": ",".join(services.ALLOWED_TYPES)}),
    )


class TaskForm(forms.Form):
    title = forms.CharField(label="Title", max_length=200)
    due_at = DateTimeField(
        label="Due",
        input_formats=[DATETIME_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_FORMAT),
        help_text="In your workspace's time zone.",
    )
    assignee = MemberChoiceField(label="Assignee", queryset=None, required=False, empty_label="Nobody yet")
    client: forms.ModelChoiceField[Client] = forms.ModelChoiceField(
        label="Client", queryset=None, empty_label="Choose a client"
    )
    session = SessionChoiceField(label="Session", queryset=None, required=False, empty_label="None")

    def __init__(self, *args: Any, workspace: Workspace, client: Client | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(MemberChoiceField, self.fields["assignee"]).queryset = members(workspace)
        if client is not None:
            # On a client's page (or editing a task) the client is given, and its sessions can be chosen.
            del self.fields["client"]
            initial_session = self.initial.get("session")
            include = getattr(initial_session, "pk", initial_session)
            sessions = cast(SessionChoiceField, self.fields["session"])
            sessions.queryset = recent_sessions(client, limit=RECENT_SESSIONS * 3, include=include)
        else:
            cast("forms.ModelChoiceField[Client]", self.fields["client"]).queryset = (
                Client.objects.for_workspace(workspace).filter(status=Client.Status.ACTIVE).order_by("name")
            )
            del self.fields["session"]


class FollowUpForm(forms.Form):
    session = SessionChoiceField(label="After the session", queryset=None, empty_label="Choose a session")
    days = forms.IntegerField(
        label="Follow up in (days)", min_value=1, max_value=services.MAX_FOLLOW_UP_DAYS, initial=7
    )

    def __init__(self, *args: Any, client: Client, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(SessionChoiceField, self.fields["session"]).queryset = recent_sessions(client)


class CheckInForm(forms.Form):
    checkin_every_days = forms.IntegerField(
        label="Check in after (days)",
        min_value=1,
        max_value=365,
        required=False,
        help_text="A check-in task opens when there has been no session or message for this long. Empty: never.",
    )
    checkin_email_client = forms.BooleanField(
        label="Also email the client to book their next session",
        required=False,
        help_text="Their portal contacts get “It has been … — book your next session” with the booking link.",
    )


class TaskFilterForm(forms.Form):
    who = forms.ChoiceField(label="Whose", choices=[("mine", "Mine"), ("all", "Everyone's")], required=False)
    state = forms.ChoiceField(
        label="Which",
        choices=[("open", "Open"), ("due", "Due today"), ("overdue", "Overdue"), ("done", "Done")],
        required=False,
    )

    def choice(self, name: str) -> str:
        default = cast(forms.ChoiceField, self.fields[name]).choices[0][0]  # type: ignore[index]  # django-stubs types the getter as every accepted input; Django keeps a list of pairs
        if not self.is_valid():
            return default
        return self.cleaned_data.get(name) or default
