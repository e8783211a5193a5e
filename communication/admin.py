"""The operator's view of inbound email: what arrived at the reply addresses and what became of it."""

from django.contrib import admin
from django.http import HttpRequest

from communication.models import InboundEmail


@admin.register(InboundEmail)
class InboundEmailAdmin(admin.ModelAdmin):
    list_display = ["received_at", "outcome", "reason", "sender", "recipient", "subject", "workspace", "client"]
    list_filter = ["outcome"]
    search_fields = ["sender", "recipient", "message_id", "subject"]
    readonly_fields = [f.name for f in InboundEmail._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a log: rows come from received emails only
