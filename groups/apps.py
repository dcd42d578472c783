from django.apps import AppConfig


class GroupsConfig(AppConfig):
    name = "groups"

    def ready(self) -> None:
        # Registers the handlers of customer-group callbacks with wecom.events.
        import groups.callbacks  # noqa: F401
