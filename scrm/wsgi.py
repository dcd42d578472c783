"""WSGI entry point for gunicorn."""

import os

from scrm.config import exit_on_bad_config

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scrm.settings")
exit_on_bad_config(os.environ["DJANGO_SETTINGS_MODULE"])

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
