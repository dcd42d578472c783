"""The SCRM project package: settings, URLs, the Celery app, roles and the embedded servers."""
