"""Callbacks as WeCom sent them: stored once, applied by a worker, kept for audit."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Callback(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPLIED = "applied", _("Applied")
        IGNORED = "ignored", _("Ignored")  # an event we have no use for
        FAILED = "failed", _("Failed")

    # sha256 of the decrypted message: WeCom's retries carry the same message, and there
    # is no event id to dedupe on.
    dedupe_key = models.CharField(max_length=64, unique=True)
    kind = models.CharField(_("event"), max_length=80)  # e.g. change_external_chat/update
    message = models.JSONField(_("message"))
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.PENDING
    )
    applied_at = models.DateTimeField(_("applied at"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = _("WeCom callback")
        verbose_name_plural = _("WeCom callbacks")
        indexes = [models.Index(fields=["status", "received_at"])]

    def __str__(self) -> str:
        return f"{self.kind} @ {self.received_at:%Y-%m-%d %H:%M:%S}"
