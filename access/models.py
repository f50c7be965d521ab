"""Failed sign-ins, kept just long enough to refuse password guessing."""

from __future__ import annotations

from django.db import models


class FailedLogin(models.Model):
    """One failed sign-in: who was tried, from where, when.

    Rows live in the database rather than a per-process cache so every web worker counts the same
    failures; rows older than the throttle window are deleted as new ones arrive.
    """

    username = models.CharField(max_length=150, blank=True, help_text="As typed, lower-cased.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        verbose_name = "failed login"
        verbose_name_plural = "failed logins"
        indexes = [
            models.Index(fields=["username", "at"], name="failedlogin_username_at"),
            models.Index(fields=["ip", "at"], name="failedlogin_ip_at"),
            models.Index(fields=["at"], name="failedlogin_at"),
        ]

    def __str__(self) -> str:
        return f"{self.username or '(blank)'} from {self.ip or 'unknown'} at {self.at:%Y-%m-%d %H:%M:%S}"
