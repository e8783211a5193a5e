"""The workspace's look on its emails: its name, its logo and its accent colour (BillingProfile).

The outbox (retainers) asks through its `email_branding` signal, connected in `BillingConfig.ready()`:
it sits below billing and cannot import it.
"""

from __future__ import annotations

from typing import Any

from billing.models import BillingProfile
from retainers.models import Workspace
from retainers.outbox import DEFAULT_ACCENT, Branding


def workspace_branding(sender: type[Workspace], *, workspace: Workspace, **kwargs: Any) -> Branding:
    """One query: the profile's logo and colour, if the workspace has a profile yet (an unsaved
    workspace, as a test or preview builds, has none)."""
    if workspace.pk is None:
        return Branding(name=workspace.name)
    profile = BillingProfile.objects.filter(workspace=workspace).only("logo", "accent_color").first()
    if profile is None:
        return Branding(name=workspace.name)
    return Branding(
        name=workspace.name, accent=profile.accent_color or DEFAULT_ACCENT, logo_path=profile.logo.name or ""
    )
