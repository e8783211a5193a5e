from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from retainers.models import Membership


def navigation(request: HttpRequest) -> dict[str, object]:
    """The workspaces a signed-in member can switch to; queried only when a template asks."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "nav_memberships": SimpleLazyObject(
            lambda: list(Membership.objects.filter(user=user).select_related("workspace").order_by("workspace__name"))
        )
    }
