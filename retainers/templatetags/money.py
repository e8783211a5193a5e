from django import template

from retainers.money import format_money

register = template.Library()


@register.simple_tag(takes_context=True)
def money(context: template.Context, minor: int | None, currency: str) -> str:
    """`{% money invoice.total_minor invoice.currency %}` in the workspace's locale."""
    if minor is None:
        return ""
    request = context.get("request")
    workspace = getattr(request, "workspace", None)
    return format_money(minor, currency, getattr(workspace, "locale", None) or "en_US")
