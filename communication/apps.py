from django.apps import AppConfig


class CommunicationConfig(AppConfig):
    name = "communication"

    def ready(self) -> None:
        from communication import receivers
        from renewals import signals

        # Renewals cannot import us: it signals, and we add the follow-up task and the highlights.
        signals.renewal_declined.connect(receivers.open_decline_follow_up, dispatch_uid="communication-decline-task")
        signals.evidence_built.connect(receivers.add_note_highlights, dispatch_uid="communication-highlights")
