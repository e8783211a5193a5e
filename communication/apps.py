from django.apps import AppConfig


class CommunicationConfig(AppConfig):
    name = "communication"

    def ready(self) -> None:
        from communication import inbound, receivers
        from renewals import signals
        from retainers import outbox

        # Renewals cannot import us: it signals, and we add the follow-up task and the highlights.
        signals.renewal_declined.connect(receivers.open_decline_follow_up, dispatch_uid="communication-decline-task")
        signals.evidence_built.connect(receivers.add_note_highlights, dispatch_uid="communication-highlights")
        # The outbox (in the core) cannot import us: every email to a client gets its thread's reply address.
        outbox.register_reply_address(inbound.reply_address_of)
