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


class Job(models.Model):
    """A long piece of work (import, export, sync, rebuild) the UI follows and comes back to."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(_("kind"), max_length=32)  # e.g. contacts_import, orders_export
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.QUEUED
    )
    created_by = models.ForeignKey(
        User, verbose_name=_("started by"), on_delete=models.SET_NULL, null=True, blank=True
    )
    done = models.PositiveIntegerField(_("done"), default=0)
    total = models.PositiveIntegerField(_("total"), default=0)
    # What the job needs (e.g. the uploaded file's path) and what it produced (a report of
    # bad rows, a download path, counts).
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("background job")
        verbose_name_plural = _("background jobs")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        return int(self.done * 100 / self.total) if self.total else 0
