import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retainers.settings")
app = Celery("retainers", task_cls="retainers.tenancy:WalledTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
