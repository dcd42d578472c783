from django.apps import AppConfig


class ScrmConfig(AppConfig):
    name = "scrm"

    def ready(self) -> None:
        # Load the Celery app with Django so @shared_task tasks queued from web requests
        # go to our broker. (Not in scrm/__init__: the embedded-server launcher imports
        # this package before any settings exist.)
        import scrm.celery  # noqa: F401
