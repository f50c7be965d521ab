"""Admin for compliance and release records: gate decisions, suppressions, the contact ledger,
release batches and call attempts.

The question a supervisor brings here is "why was this client not called?". The gate records
every block with its rule and inputs (GateDecision); the "Why not called" page puts those next to
the client's queue item, active suppressions, recent ledger entries and what the gate would say
right now. Records written by the workflow are read-only; suppressions are the one thing staff
add and lift here, through the ledger services.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from cadences.forms import MULTILINE_TEXT
from campaigns.models import CallAttempt, ContactLedgerEntry, GateDecision, QueueItem, ReleaseBatch, Suppression
from campaigns.compliance import gate as compliance
from campaigns.compliance.ledger import active_suppressions_q, suppression_add, suppression_lift
from integrations import clock

WHY_NOT_CALLED_DECISIONS = 50
WHY_NOT_CALLED_LEDGER_DAYS = 14


class ReadOnlyAdmin(admin.ModelAdmin):
    """Event and log rows: viewable, never edited or deleted by hand."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in self.model._meta.concrete_fields] + list(self.readonly_fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def pretty_json(value: Any) -> str:
    return format_html("<pre style='white-space:pre-wrap;margin:0'>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


def why_not_called_url(client_id: str) -> str:
    return reverse("admin:campaigns_gatedecision_why") + "?" + urlencode({"client_id": client_id})


# --- Gate decisions ----------------------------------------------------------------------------


class RuleFilter(admin.SimpleListFilter):
    """The rules that blocked someone, in words; the query string keeps the rule's code."""

    title = "rule"
    parameter_name = "rule"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        rules = GateDecision.objects.order_by().values_list("rule", flat=True).distinct()
        return sorted(((rule, compliance.rule_label(rule)) for rule in rules), key=lambda pair: pair[1])

    def queryset(self, request: HttpRequest, queryset: QuerySet[GateDecision]) -> QuerySet[GateDecision]:
        return queryset.filter(rule=self.value()) if self.value() else queryset


class ChannelFilter(admin.SimpleListFilter):
    title = "channel"
    parameter_name = "channel"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(compliance.CHANNEL_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[GateDecision]) -> QuerySet[GateDecision]:
        return queryset.filter(channel=self.value()) if self.value() else queryset


@admin.register(GateDecision)
class GateDecisionAdmin(ReadOnlyAdmin):
    list_display = ("decided_at", "client_id", "channel_words", "rule_words", "detail", "campaign_date", "queue_item_link")
    list_filter = (RuleFilter, ChannelFilter, "campaign_date")
    # Exact client id first (the indexed lookup a supervisor makes), then words of the detail.
    search_fields = ("=client_id", "detail")
    search_help_text = "Client id (exact), or words from the reason."
    date_hierarchy = "decided_at"
    list_select_related = ("queue_item",)
    list_per_page = 100
    show_full_result_count = False
    readonly_fields = ("channel_words", "rule_words", "inputs_in_words", "inputs_pretty", "why_link")
    fields = (
        "decided_at", "client_id", "channel_words", "rule_words", "detail", "inputs_in_words", "inputs_pretty",
        "campaign", "campaign_date", "queue_item", "why_link",
    )  # fmt: skip

    @admin.display(description="Channel", ordering="channel")
    def channel_words(self, obj: GateDecision) -> str:
        return compliance.channel_label(obj.channel)

    @admin.display(description="Rule", ordering="rule")
    def rule_words(self, obj: GateDecision) -> str:
        return compliance.rule_label(obj.rule)

    @admin.display(description="What the rule looked at")
    def inputs_in_words(self, obj: GateDecision) -> str:
        return format_html_join("", "<div>{}: {}</div>", compliance.inputs_in_words(obj.inputs)) or "—"

    @admin.display(description="Queue item")
    def queue_item_link(self, obj: GateDecision) -> str:
        if obj.queue_item_id is None:
            return "—"
        url = reverse("admin:campaigns_queueitem_change", args=[obj.queue_item_id])
        return format_html('<a href="{}">#{}</a>', url, obj.queue_item_id)

    @admin.display(description="Rule inputs (as recorded)")
    def inputs_pretty(self, obj: GateDecision) -> str:
        return pretty_json(obj.inputs)

    @admin.display(description="Everything about this client")
    def why_link(self, obj: GateDecision) -> str:
        return format_html('<a href="{}">Why was {} not called?</a>', why_not_called_url(obj.client_id), obj.client_id)

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path("why-not-called/", self.admin_site.admin_view(self.why_not_called_view), name="campaigns_gatedecision_why"),
        ]
        return custom + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "subtitle": "Every contact the compliance gate held back, with the rule and its inputs"}
        return super().changelist_view(request, extra_context)

    def why_not_called_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        client_id = (request.GET.get("client_id") or "").strip()
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Why was this client not called?",
            "client_id": client_id,
        }
        if client_id:
            context.update(client_report(client_id=client_id, now=clock.now()))
        return TemplateResponse(request, "admin/campaigns/gatedecision/why_not_called.html", context)


def client_report(*, client_id: str, now: dt.datetime) -> dict[str, Any]:
    """What the "why not called" page shows for one client."""
    item = QueueItem.objects.filter(client_id=client_id).select_related("campaign", "segment").order_by("-campaign__date").first()
    phones = {item.phone} if item else set()
    phones.update(ContactLedgerEntry.objects.filter(client_id=client_id).exclude(phone="").values_list("phone", flat=True)[:5])
    suppressions = list(
        Suppression.objects.filter(lifted_at__isnull=True).filter(Q(client_id=client_id) | Q(phone__in=phones)).order_by("-created_at")
    )
    blocking_calls = set(
        Suppression.objects.filter(active_suppressions_q(channel=compliance.CALL), pk__in=[s.pk for s in suppressions]).values_list("pk", flat=True)
    )
    gate_now: compliance.Block | None = None
    if item is not None and item.action_type in ("CALL", "BOTH"):
        gate_now = compliance.gate_calls(campaign=item.campaign, items=[item], now=now)[item.pk]
    return {
        "item": item,
        "item_url": reverse("admin:campaigns_queueitem_change", args=[item.pk]) if item else "",
        "item_skip_reason": compliance.rule_label(item.skip_reason) if item and item.skip_reason else "",
        "gate_now": gate_now,
        "gate_now_rule": compliance.rule_label(gate_now.rule) if gate_now else "",
        "gate_now_inputs": compliance.inputs_in_words(gate_now.inputs) if gate_now else [],
        "decisions": [
            (d, compliance.rule_label(d.rule), compliance.channel_label(d.channel), compliance.inputs_in_words(d.inputs))
            for d in GateDecision.objects.filter(client_id=client_id).order_by("-decided_at")[:WHY_NOT_CALLED_DECISIONS]
        ],
        "suppressions": [(s, s.pk in blocking_calls) for s in suppressions],
        "ledger": list(
            ContactLedgerEntry.objects.filter(client_id=client_id, occurred_at__gte=now - dt.timedelta(days=WHY_NOT_CALLED_LEDGER_DAYS)).order_by(
                "-occurred_at"
            )
        ),
        "ledger_days": WHY_NOT_CALLED_LEDGER_DAYS,
        "attempts": list(CallAttempt.objects.filter(queue_item__client_id=client_id).order_by("-created_at")[:20]),
    }


class GateDecisionInline(admin.TabularInline):
    """The gate's decisions on one queue item (for the queue item's admin page)."""

    model = GateDecision
    fk_name = "queue_item"
    fields = ("decided_at", "channel", "rule", "detail")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CallAttemptInline(admin.TabularInline):
    model = CallAttempt
    fk_name = "queue_item"
    fields = ("created_at", "attempt_number", "call_id", "from_number", "status", "outcome", "ended_because", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("-created_at",)

    @admin.display(description="Ended because", ordering="disconnection_reason")
    def ended_because(self, obj: CallAttempt) -> str:
        return obj.disconnection_display or "—"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- Suppressions ------------------------------------------------------------------------------


class SuppressionForm(forms.ModelForm):
    class Meta:
        model = Suppression
        fields = ("client_id", "phone", "channel", "reason", "note")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("client_id") and not data.get("phone"):
            raise forms.ValidationError("Give a client id, a phone number (E.164), or both.")
        phone = data.get("phone") or ""
        if phone and not (phone.startswith("+") and phone[1:].isdigit() and 8 <= len(phone) <= 16):
            self.add_error("phone", "Use E.164, e.g. +12125550123.")
        return data


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    formfield_overrides = MULTILINE_TEXT
    form = SuppressionForm
    list_display = ("created_at", "client_id", "phone", "reason", "channel", "source", "active_display", "lifted_at", "lifted_by")
    list_filter = ("reason", "channel", ("lifted_at", admin.EmptyFieldListFilter))
    search_fields = ("=client_id", "=phone", "source", "note")
    date_hierarchy = "created_at"
    list_per_page = 100
    actions = ("lift_selected",)

    @admin.display(description="Active", boolean=True)
    def active_display(self, obj: Suppression) -> bool:
        return obj.active

    def get_readonly_fields(self, request: HttpRequest, obj: Suppression | None = None) -> Any:
        if obj is None:
            return ()
        # A suppression is evidence (who, why, when): it is lifted, never rewritten.
        return ("client_id", "phone", "channel", "reason", "source", "created_at", "lifted_at", "lifted_by")

    def get_fields(self, request: HttpRequest, obj: Suppression | None = None) -> Any:
        if obj is None:
            return ("client_id", "phone", "channel", "reason", "note")
        return ("client_id", "phone", "channel", "reason", "source", "note", "created_at", "lifted_at", "lifted_by")

    def save_model(self, request: HttpRequest, obj: Suppression, form: forms.ModelForm, change: bool) -> None:
        if change:
            Suppression.objects.filter(pk=obj.pk).update(note=obj.note)
            return
        saved = suppression_add(
            reason=obj.reason,
            channel=obj.channel,
            source=f"staff:{request.user.get_username()}",
            client_id=obj.client_id,
            phone=obj.phone,
            note=obj.note,
        )
        obj.pk, obj.source, obj.created_at = saved.pk, saved.source, saved.created_at

    def has_delete_permission(self, request: HttpRequest, obj: Suppression | None = None) -> bool:
        return False

    @admin.action(description="Lift the selected suppressions")
    def lift_selected(self, request: HttpRequest, queryset: QuerySet[Suppression]) -> None:
        lifted = 0
        for suppression in queryset.filter(lifted_at__isnull=True):
            lifted += suppression_lift(
                reason=suppression.reason,
                lifted_by=f"staff:{request.user.get_username()}",
                client_id=suppression.client_id,
                phone=suppression.phone,
            )
        self.message_user(request, f"Lifted {lifted} suppression(s).", messages.SUCCESS if lifted else messages.WARNING)


# --- Contact ledger ----------------------------------------------------------------------------


class LedgerOutcomeFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(ContactLedgerEntry.OUTCOME_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[ContactLedgerEntry]) -> QuerySet[ContactLedgerEntry]:
        return queryset.filter(outcome=self.value()) if self.value() else queryset


@admin.register(ContactLedgerEntry)
class ContactLedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "client_id", "kind", "outcome_words", "reference", "campaign_date", "state")
    list_filter = ("kind", LedgerOutcomeFilter, "campaign_date")
    search_fields = ("=client_id", "=phone", "=reference")
    date_hierarchy = "occurred_at"
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="Outcome", ordering="outcome")
    def outcome_words(self, obj: ContactLedgerEntry) -> str:
        return obj.outcome_display


# --- Release batches and call attempts ----------------------------------------------------------


class BatchAttemptInline(CallAttemptInline):
    fk_name = "batch"
    fields = ("created_at", "queue_item", "call_id", "from_number", "to_number", "status", "outcome", "error")
    readonly_fields = fields


@admin.register(ReleaseBatch)
class ReleaseBatchAdmin(ReadOnlyAdmin):
    list_display = ("released_at", "campaign", "ring_group", "available_agents", "size", "resolved_at", "timed_out")
    list_filter = ("timed_out", "ring_group", "campaign")
    list_select_related = ("campaign",)
    date_hierarchy = "released_at"
    list_per_page = 100
    inlines = (BatchAttemptInline,)


@admin.register(CallAttempt)
class CallAttemptAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "call_id", "client", "attempt_number", "from_number", "status", "outcome", "ended_because", "batch")
    list_filter = ("status", "outcome", "kind", "campaign")
    search_fields = ("=call_id", "=queue_item__client_id", "=to_number")
    list_select_related = ("queue_item",)
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False
    readonly_fields = ("custom_analysis_pretty",)

    @admin.display(description="Client")
    def client(self, obj: CallAttempt) -> str:
        return obj.client_id

    @admin.display(description="Ended because", ordering="disconnection_reason")
    def ended_because(self, obj: CallAttempt) -> str:
        return obj.disconnection_display or "—"

    @admin.display(description="Custom analysis")
    def custom_analysis_pretty(self, obj: CallAttempt) -> str:
        return pretty_json(obj.custom_analysis)
