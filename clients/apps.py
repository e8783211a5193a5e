from django.apps import AppConfig


class ClientsConfig(AppConfig):
    name = "clients"

    def ready(self) -> None:
        # Communication is part of clients, but registers like the apps to its right do: a
        # section on the client page (clients.hub) and its events on the timeline.
        from clients import communication_views as views
        from clients import hub, timeline

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
