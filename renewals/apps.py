from django.apps import AppConfig


class RenewalsConfig(AppConfig):
    name = "renewals"

    def ready(self) -> None:
        # The client page is the hub; renewals adds the client's renewals to it (clients cannot import us).
        from clients import hub
        from renewals import views

        hub.register(
            hub.Section(
                key="renewals", order=40, template="renewals/_client_section.html", context=views.client_section
            )
        )
        from clients import timeline
        from renewals import timeline as renewals_timeline

        timeline.register(
            timeline.Provider(key="renewals", kinds={"renewal": "Renewals"}, events=renewals_timeline.renewals)
        )
