"""The login: a dashboard user with one role deciding what they may see and change."""

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    # Managers see and change everything; operators only their own customers and groups;
    # analysts read everything and change nothing.
    ADMIN = "admin", _("Manager")
    OPERATOR = "operator", _("Operator")
    ANALYST = "analyst", _("Analyst")


class User(AbstractUser):
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.OPERATOR)

    @property
    def is_manager(self) -> bool:
        return self.is_superuser or self.role == Role.ADMIN

    @property
    def is_read_only(self) -> bool:
        return self.role == Role.ANALYST and not self.is_superuser
