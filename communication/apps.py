from django.apps import AppConfig


class CommunicationConfig(AppConfig):
    name = "communication"

    def ready(self) -> None:
        from communication import receivers
        from renewals import signals

        # Renewals cannot import us: it signals, and we add the follow-up task and the highlights.
        signals.renewal_declined.connect(receivers.open_decline_follow_up, dispatch_uid="communication-decline-task")
        signals.evidence_built.connect(receivers.add_note_highlights, dispatch_uid="communication-highlights")

        # The client page is the hub; communication adds its section and its timeline events to it.
        from clients import hub, timeline
        from communication import views

        hub.register(
            hub.Section(
                key="communication",
                order=30,
                template="communication/_client_section.html",
                context=views.client_section,
            )
        )
        timeline.register(timeline.Provider(key="notes", kinds={"note": "Notes"}, events=views.note_events))
        timeline.register(timeline.Provider(key="messages", kinds={"message": "Messages"}, events=views.message_events))
        timeline.register(timeline.Provider(key="tasks", kinds={"task": "Tasks"}, events=views.task_events))
