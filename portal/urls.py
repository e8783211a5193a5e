from django.urls import path

from portal import booking, cards, login, views
from portal import invoices as portal_invoices
from portal import messages as portal_messages
from portal import overage as portal_overage
from portal import renewals as portal_renewals
from portal import statement as portal_statement

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", login.PortalLoginView.as_view(), name="login"),
    path("login/code/", login.PortalLoginCodeView.as_view(), name="login_code"),
    path("logout/", login.portal_logout, name="logout"),
    path("w/<slug:workspace_slug>/", views.overview, name="overview"),
    path("w/<slug:workspace_slug>/card/", cards.card, name="card"),
    path("w/<slug:workspace_slug>/card/done/", cards.card_done, name="card_done"),
    path("w/<slug:workspace_slug>/card/remove/", cards.card_remove, name="card_remove"),
    path("w/<slug:workspace_slug>/messages/", portal_messages.message_list, name="message_list"),
    path("w/<slug:workspace_slug>/messages/send/", portal_messages.message_send, name="message_send"),
    path(
        "w/<slug:workspace_slug>/messages/attachments/<int:attachment_id>/",
        portal_messages.message_attachment,
        name="message_attachment",
    ),
    path("w/<slug:workspace_slug>/notes/", portal_messages.shared_notes, name="shared_notes"),
    path("w/<slug:workspace_slug>/renewals/", portal_renewals.renewal_list, name="renewal_list"),
    path("w/<slug:workspace_slug>/renewals/<int:renewal_id>/", portal_renewals.renewal_detail, name="renewal_detail"),
    path(
        "w/<slug:workspace_slug>/renewals/<int:renewal_id>/accept/",
        portal_renewals.renewal_accept,
        name="renewal_accept",
    ),
    path(
        "w/<slug:workspace_slug>/renewals/<int:renewal_id>/decline/",
        portal_renewals.renewal_decline,
        name="renewal_decline",
    ),
    path("w/<slug:workspace_slug>/history/", views.history, name="history"),
    path("w/<slug:workspace_slug>/overage/", portal_overage.overage_list, name="overage_list"),
    path(
        "w/<slug:workspace_slug>/overage/<int:overage_approval_id>/",
        portal_overage.overage_answer,
        name="overage_answer",
    ),
    path("w/<slug:workspace_slug>/book/", booking.book, name="book"),
    path("w/<slug:workspace_slug>/bookings/<int:booking_id>/move/", booking.booking_move, name="booking_move"),
    path("w/<slug:workspace_slug>/bookings/<int:booking_id>/cancel/", booking.booking_cancel, name="booking_cancel"),
    path("w/<slug:workspace_slug>/timezone/", booking.booking_timezone, name="booking_timezone"),
    path("w/<slug:workspace_slug>/invoices/", portal_invoices.invoice_list, name="invoice_list"),
    path("w/<slug:workspace_slug>/invoices/<int:invoice_id>/pdf/", portal_invoices.invoice_pdf, name="invoice_pdf"),
    path(
        "w/<slug:workspace_slug>/retainers/<int:retainer_id>/statement/<int:period_id>/",
        portal_statement.statement_pdf,
        name="statement_pdf",
    ),
]
