from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"

    def ready(self) -> None:
        # The client page is the hub; delivery adds its "Retainers" section to it (clients cannot import us).
        from clients import hub
        from delivery import views

        hub.register(
            hub.Section(
                key="retainers", order=10, template="delivery/_client_section.html", context=views.client_section
            )
        )
        from clients import timeline
        from delivery import timeline as delivery_timeline

        timeline.register(
            timeline.Provider(key="sessions", kinds={"session": "Sessions"}, events=delivery_timeline.sessions)
        )
