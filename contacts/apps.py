from django.apps import AppConfig


class ContactsConfig(AppConfig):
    name = "contacts"

    def ready(self) -> None:
        # Registers the handlers of contact and tag callbacks with wecom.events.
        import contacts.callbacks  # noqa: F401
