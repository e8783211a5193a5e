"""The portal's sign-in: the contact's email, then the one-time code emailed to it (allauth's
login by code), and signing out."""

from __future__ import annotations

from allauth.account.views import ConfirmLoginCodeView, RequestLoginCodeView
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST


class PortalLoginView(RequestLoginCodeView):
    """Step one: the contact enters their email and gets a one-time code (allauth login by code)."""

    template_name = "portal/login.html"

    def get_initial(self) -> dict[str, str]:
        return {"email": self.request.GET.get("email", "")}

    def get_success_url(self) -> str:
        return reverse("portal:login_code") + "?next=" + reverse("portal:home")

    def dispatch(self, request: HttpRequest, *args: object, **kwargs: object):
        if request.user.is_authenticated:
            return redirect("portal:home")
        return super().dispatch(request, *args, **kwargs)


class PortalLoginCodeView(ConfirmLoginCodeView):
    """Step two: the code from the email signs them in."""

    template_name = "portal/login_code.html"
    # Where allauth sends someone to start again (too many wrong codes, no code under way): its
    # own, consultant-side pages. A contact starts again at the portal's.
    ALLAUTH_RESTARTS = ("account_login", "account_request_login_code")

    def dispatch(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
        response = super().dispatch(request, *args, **kwargs)
        restarts = {reverse(name) for name in self.ALLAUTH_RESTARTS}
        if isinstance(response, HttpResponseRedirect) and response.url in restarts:
            return redirect("portal:login")  # allauth's message (e.g. "Too many failed…") goes along
        return response


@require_POST
def portal_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("portal:login")
