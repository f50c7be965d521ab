from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from integrations.sandbox.models import (
    SimulatedCall, SimulatedContact, SimulatedDelivery, SimulatedMessage, SimulatedNotification, SimulatorConfig,
)  # fmt: skip


class ReadOnlyAdmin(admin.ModelAdmin):
    """What the simulators recorded: for looking, never for editing."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SimulatorConfig)
class SimulatorConfigAdmin(admin.ModelAdmin):
    list_display = ("__str__", "speed_factor", "retell_concurrency_limit", "duplicate_rate", "out_of_order_rate", "create_error_rate", "updated_at")
    fieldsets = (
        (None, {"fields": ("seed", "speed_factor", "auto_dispatch")}),
        (
            "Retell calls",
            {
                "fields": (
                    "retell_concurrency_limit",
                    "outcome_weights",
                    "conversation_weights",
                    "forced_outcomes",
                    "ring_seconds",
                    ("talk_seconds_min", "talk_seconds_max"),
                    "voicemail_seconds",
                    "analysis_delay_seconds",
                )
            },
        ),
        (
            "Faults",
            {"fields": ("create_error_rate", "duplicate_rate", "out_of_order_rate", "webhook_delay_seconds", "webhook_jitter_seconds")},
        ),
        ("Dialflow agents", {"fields": ("dialflow_pattern", "dialflow_step_seconds", "dialflow_overrides")}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not SimulatorConfig.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SimulatedCall)
class SimulatedCallAdmin(ReadOnlyAdmin):
    list_display = ("call_id", "outcome", "connected", "created_at", "ended_at", "ended_delivered", "analyzed_delivered")
    list_filter = ("outcome", "connected")
    search_fields = ("call_id", "idempotency_key")
    date_hierarchy = "created_at"


@admin.register(SimulatedDelivery)
class SimulatedDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("vendor", "event", "reference", "status", "attempts", "is_duplicate", "due_at", "last_status_code")
    list_filter = ("vendor", "event", "status", "is_duplicate")
    search_fields = ("reference",)


@admin.register(SimulatedMessage)
class SimulatedMessageAdmin(ReadOnlyAdmin):
    list_display = ("pk", "direction", "inbox_id", "local_id", "created_at")
    list_filter = ("direction", "inbox_id")
    search_fields = ("local_id",)


@admin.register(SimulatedContact)
class SimulatedContactAdmin(ReadOnlyAdmin):
    list_display = ("pk", "unsubscribed", "blocked", "updated_at")
    list_filter = ("unsubscribed", "blocked")


@admin.register(SimulatedNotification)
class SimulatedNotificationAdmin(ReadOnlyAdmin):
    """The owner alerts that would have been sent (sandbox mode, or no notification URL set)."""

    list_display = ("created_at", "tag", "destination", "title")
    list_filter = ("tag",)
    search_fields = ("title", "destination")
    fields = ("created_at", "tag", "destination", "title", "body")
    readonly_fields = fields
