from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        # The client page is the hub; billing adds its payment history to it (clients cannot import us).
        from billing import views
        from clients import hub

        hub.register(
            hub.Section(key="billing", order=20, template="billing/_client_section.html", context=views.client_section)
        )
        from billing import timeline as billing_timeline
        from clients import timeline

        timeline.register(
            timeline.Provider(key="invoices", kinds={"invoice": "Invoices"}, events=billing_timeline.invoices)
        )
        timeline.register(
            timeline.Provider(key="payments", kinds={"payment": "Payments"}, events=billing_timeline.payments)
        )
