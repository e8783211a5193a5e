from django.urls import path

from delivery import booking_urls, views

app_name = "delivery"

urlpatterns = [
    path("retainers/new/", views.retainer_create, name="retainer_create"),
    path("retainers/<int:retainer_id>/", views.retainer_detail, name="retainer_detail"),
    path("retainers/<int:retainer_id>/ledger/", views.retainer_ledger, name="retainer_ledger"),
    path("retainers/<int:retainer_id>/periods/", views.retainer_periods, name="retainer_periods"),
    path("retainers/<int:retainer_id>/pause/", views.retainer_pause, name="retainer_pause"),
    path("retainers/<int:retainer_id>/resume/", views.retainer_resume, name="retainer_resume"),
    path("retainers/<int:retainer_id>/cancel/", views.retainer_cancel, name="retainer_cancel"),
    path("retainers/<int:retainer_id>/end/", views.retainer_end, name="retainer_end"),
    path("retainers/<int:retainer_id>/amend/", views.retainer_amend, name="retainer_amend"),
    path("retainers/<int:retainer_id>/adjust/", views.retainer_adjust, name="retainer_adjust"),
    path("retainers/<int:retainer_id>/collection/", views.retainer_collection, name="retainer_collection"),
    path(
        "retainers/<int:retainer_id>/overage/request/",
        views.retainer_overage_request,
        name="retainer_overage_request",
    ),
    path("retainers/<int:retainer_id>/work/<int:work_item_id>/edit/", views.work_edit, name="work_edit"),
    path("retainers/<int:retainer_id>/work/<int:work_item_id>/remove/", views.work_remove, name="work_remove"),
    path("retainers/<int:retainer_id>/deliverables/new/", views.deliverable_add, name="deliverable_add"),
    path(
        "retainers/<int:retainer_id>/deliverables/<int:deliverable_id>/status/",
        views.deliverable_status,
        name="deliverable_status",
    ),
    path("work/new/", views.work_add, name="work_add"),
]

# The booking set-up pages (delivery.booking_views).
urlpatterns += booking_urls.urlpatterns
