from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("invoices/", views.invoice_list, name="invoice_list"),
    path("invoices/export.csv", views.invoice_export, name="invoice_export"),
    path("invoices/new/", views.invoice_create, name="invoice_create"),
    path("invoices/<int:invoice_id>/", views.invoice_detail, name="invoice_detail"),
    path("invoices/<int:invoice_id>/pdf/", views.invoice_pdf, name="invoice_pdf"),
    path("invoices/<int:invoice_id>/issue/", views.invoice_issue, name="invoice_issue"),
    path("invoices/<int:invoice_id>/payments/", views.invoice_record_payment, name="invoice_record_payment"),
    path("invoices/<int:invoice_id>/payments/<int:payment_id>/refund/", views.payment_refund, name="payment_refund"),
    path("invoices/<int:invoice_id>/void/", views.invoice_void, name="invoice_void"),
    path(
        "invoices/<int:invoice_id>/uncollectible/",
        views.invoice_mark_uncollectible,
        name="invoice_mark_uncollectible",
    ),
    path("invoices/<int:invoice_id>/credit-notes/", views.credit_note_create, name="credit_note_create"),
    path("invoices/<int:invoice_id>/send/", views.invoice_send, name="invoice_send"),
    path("invoices/<int:invoice_id>/charge/", views.invoice_charge, name="invoice_charge"),
    path("invoices/<int:invoice_id>/refund-excess/", views.invoice_refund_excess, name="invoice_refund_excess"),
    path("invoices/<int:invoice_id>/apply-credit/", views.invoice_apply_credit, name="invoice_apply_credit"),
    path("invoices/<int:invoice_id>/ask-refund-back/", views.invoice_ask_refund_back, name="invoice_ask_refund_back"),
    path("invoices/<int:invoice_id>/pay-link/", views.invoice_pay_link, name="invoice_pay_link"),
    path("settings/billing/", views.billing_settings, name="billing_settings"),
    path("settings/billing/stripe/connect/", views.stripe_connect, name="stripe_connect"),
    path("settings/billing/stripe/refresh/", views.stripe_connect_refresh, name="stripe_connect_refresh"),
    path("settings/billing/stripe/return/", views.stripe_connect_return, name="stripe_connect_return"),
    path("settings/billing/stripe/disconnect/", views.stripe_disconnect, name="stripe_disconnect"),
]
