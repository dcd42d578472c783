"""The Celery app shared by the worker, beat and the web process (which only enqueues)."""

import os

from celery import Celery

from scrm.config import exit_on_bad_config

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scrm.settings")
# The worker and beat load settings lazily; check them now so a bad variable stops start-up
# with one line instead of a traceback at the first task.
exit_on_bad_config(os.environ["DJANGO_SETTINGS_MODULE"])

app = Celery("scrm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
