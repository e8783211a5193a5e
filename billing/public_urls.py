"""Billing URLs outside any workspace: the emailed pay link and Stripe's webhook."""

from django.urls import path

from billing import public_views

app_name = "billing_public"

urlpatterns = [
    path("pay/<str:token>/", public_views.pay, name="pay"),
    path("pay/<str:token>/pdf/", public_views.pay_pdf, name="pay_pdf"),
    path("pay/<str:token>/checkout/", public_views.pay_checkout, name="pay_checkout"),
    path("pay/<str:token>/new-link/", public_views.pay_link_request, name="pay_link_request"),
    path("stripe/webhook/", public_views.stripe_webhook, name="stripe_webhook"),
]
