from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from clients import services
from clients.models import Client, Contact


class ContactInline(admin.TabularInline):
    model = Contact
    fields = ["name", "email", "role", "portal_access"]
    readonly_fields = ["portal_access"]
    extra = 1


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "workspace__name"]
    inlines = [ContactInline]

    def save_formset(self, request, form, formset, change):
        for contact in formset.save(commit=False):
            contact.workspace_id = form.instance.workspace_id  # a contact lives in its client's workspace
            contact.save()
        formset.save_m2m()
        for contact in formset.deleted_objects:
            contact.delete()


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "client", "workspace", "portal_access"]
    list_filter = ["portal_access"]
    search_fields = ["name", "email", "client__name"]
    exclude = ["workspace"]
    readonly_fields = ["user", "portal_invited_at", "portal_access"]
    actions = ["grant_portal_access", "revoke_portal_access"]

    def save_model(self, request, obj, form, change):
        obj.workspace_id = obj.client.workspace_id
        super().save_model(request, obj, form, change)

    @admin.action(description="Turn portal access on (emails an invitation)")
    def grant_portal_access(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        for contact in queryset:
            services.set_portal_access(contact=contact, enabled=True)
        self.message_user(request, "Portal access is on; invitations are on their way.", messages.SUCCESS)

    @admin.action(description="Turn portal access off")
    def revoke_portal_access(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        for contact in queryset:
            services.set_portal_access(contact=contact, enabled=False)
        self.message_user(request, "Portal access is off.", messages.SUCCESS)
