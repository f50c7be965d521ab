"""The billing managers' editing UI: segments with their cadences, SMS templates, settings.

Every model keeps its change history (django-simple-history: who changed what and when).
Supervisors see all of it read-only — Django's view permission does that without extra code.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count, QuerySet
from django.template import TemplateSyntaxError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from cadences import calendar, templating
from cadences.forms import MULTILINE_TEXT
from cadences.models import CadenceStep, DialerSettings, Phase, Segment, SmsTemplate, StateCallLimit
from cadences.selectors import segment_timeline
from integrations.http import IntegrationError
from integrations.warehouse import client as warehouse

REQUIRED_QUEUE_COLUMNS = ("client_id", "name", "phone", "segment", "days_past_due", "ring_group")

_SHORT_TEXT: dict[type[models.Field[Any, Any]], dict[str, Any]] = {
    models.TextField: {**MULTILINE_TEXT[models.TextField], "widget": forms.Textarea(attrs={"rows": 2, "cols": 48})}
}


def _sample_context() -> dict[str, Any]:
    return templating.sample_context(company_name=DialerSettings.load().company_name, today=timezone.localdate())


class CadenceStepInline(admin.TabularInline):
    model = CadenceStep
    extra = 0
    fields = ("day", "phase", "action_type", "sms_template", "voicemail_prompt", "live_call_prompt", "active")
    ordering = ("day",)
    formfield_overrides = _SHORT_TEXT
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[CadenceStep]:
        return super().get_queryset(request).select_related("sms_template")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "sms_template" and field is not None:
            # ~50 rows share one list of choices instead of querying the templates once per row.
            field.choices = list(field.choices)  # type: ignore[arg-type]  # a ModelChoiceIterator is iterable
        return field


@admin.register(Segment)
class SegmentAdmin(SimpleHistoryAdmin):
    formfield_overrides = MULTILINE_TEXT
    list_display = (
        "name",
        "first_outreach_day",
        "suspension_day",
        "cancellation_day",
        "touchpoints",
        "billing_ring_group",
        "resurrection_ring_group",
        "timeline_link",
    )
    list_filter = ("suspension_day", "first_outreach_day", "billing_ring_group")
    search_fields = ("name", "billing_ring_group", "resurrection_ring_group", "billing_inbox_id", "resurrection_inbox_id")
    ordering = ("sort_order", "name")
    inlines = (CadenceStepInline,)
    change_form_template = "admin/cadences/segment/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "sort_order", ("first_outreach_day", "suspension_day", "cancellation_day"))}),
        (
            "Billing routing (before the suspension day)",
            {"fields": ("billing_transfer_number", "billing_ring_group", "billing_inbox_id")},
        ),
        (
            "Resurrection routing (from the suspension day on)",
            {"fields": ("resurrection_transfer_number", "resurrection_ring_group", "resurrection_inbox_id")},
        ),
        (
            "High-value clients (a person first)",
            {
                "fields": ("high_value_threshold", "senior_transfer_number", "senior_owner"),
                "description": "Clients who owe the high-value amount or more are offered a senior person on every answered "
                "call (Grace transfers to the senior ring group number and does not close the call herself), and their "
                "follow-up tasks go to the senior owner.",
            },
        ),
    )
    raw_id_fields = ("senior_owner",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Segment]:
        return super().get_queryset(request).annotate(step_count=Count("steps"))

    @admin.display(description="Touchpoints", ordering="step_count")
    def touchpoints(self, obj: Segment) -> int:
        return obj.step_count  # type: ignore[attr-defined]

    @admin.display(description="Timeline")
    def timeline_link(self, obj: Segment) -> str:
        return format_html('<a href="{}">180-day timeline</a>', reverse("admin:cadences_segment_timeline", args=[obj.pk]))

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<path:object_id>/timeline/",
                self.admin_site.admin_view(self.timeline_view),
                name="cadences_segment_timeline",
            ),
        ]
        return custom + super().get_urls()

    def timeline_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        segment = get_object_or_404(Segment, pk=object_id)
        if not self.has_view_or_change_permission(request, segment):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": segment,
            "title": f"{segment.name}: cadence timeline",
            "timeline": segment_timeline(segment=segment),
            "phases": Phase,
        }
        return TemplateResponse(request, "admin/cadences/segment/timeline.html", context)


@admin.register(CadenceStep)
class CadenceStepAdmin(SimpleHistoryAdmin):
    formfield_overrides = MULTILINE_TEXT
    list_display = ("segment", "day", "phase", "action_type", "sms_template", "active")
    list_filter = ("segment", "phase", "action_type", "active")
    search_fields = ("segment__name", "sms_template__name", "sms_template__body", "voicemail_prompt", "live_call_prompt")
    list_select_related = ("segment", "sms_template")
    ordering = ("segment__sort_order", "day")
    autocomplete_fields = ("sms_template",)


class SmsTemplateForm(forms.ModelForm):
    class Meta:
        model = SmsTemplate
        fields = ("name", "phase", "body")
        widgets = {"body": forms.Textarea(attrs={"rows": 5, "cols": 80, "class": "vLargeTextField"})}


@admin.register(SmsTemplate)
class SmsTemplateAdmin(SimpleHistoryAdmin):
    formfield_overrides = MULTILINE_TEXT
    form = SmsTemplateForm
    list_display = ("name", "phase", "sample_length", "used_by", "updated_at")
    list_filter = ("phase", "updated_at")
    search_fields = ("name", "body")
    readonly_fields = ("sample_preview",)
    change_form_template = "admin/cadences/smstemplate/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[SmsTemplate]:
        return super().get_queryset(request).annotate(step_count=Count("steps"))

    def get_fields(self, request: HttpRequest, obj: SmsTemplate | None = None) -> Any:
        fields = list(super().get_fields(request, obj))
        # Whoever may edit the template gets the live preview below the form (the change form
        # template shows it then); the saved preview would show the same text a second time.
        if self.has_change_permission(request, obj) if obj is not None else self.has_add_permission(request):
            fields.remove("sample_preview")
        return fields

    @admin.display(description="Used by steps", ordering="step_count")
    def used_by(self, obj: SmsTemplate) -> int:
        return obj.step_count  # type: ignore[attr-defined]

    @admin.display(description="Length on sample data")
    def sample_length(self, obj: SmsTemplate) -> str:
        try:
            text = obj.render(_sample_context())
        except TemplateSyntaxError:  # saved before validation existed; the list must still load
            return "does not render"
        return templating.sms_length_summary(templating.sms_length_info(text))

    @admin.display(description="Preview on sample data")
    def sample_preview(self, obj: SmsTemplate) -> str:
        if obj.pk is None:
            return "Shown once the template is saved."
        try:
            text = obj.render(_sample_context())
        except TemplateSyntaxError:
            return "This template does not render; fix its syntax."
        info = templating.sms_length_info(text)
        return format_html('<div class="sms-bubble">{}</div><p class="help">{}</p>', text, templating.sms_length_summary(info))

    def _saved_preview(self, object_id: str | None) -> dict[str, str]:
        """The saved body on sample data, for the live preview to start from before its first refresh."""
        template = SmsTemplate.objects.filter(pk=object_id).first() if object_id and object_id.isdigit() else None
        if template is None:
            return {}
        try:
            text = template.render(_sample_context())
        except TemplateSyntaxError:
            return {}
        return {"text": text, "summary": templating.sms_length_summary(templating.sms_length_info(text))}

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path("preview/", self.admin_site.admin_view(self.preview_view), name="cadences_smstemplate_preview"),
        ]
        return custom + super().get_urls()

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """Render the body being edited on sample data: text, length, SMS parts and problems."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        body = request.POST.get("body", "")
        phase = request.POST.get("phase", "")
        problems = templating.validate_template(body, phase=phase if phase in Phase.values else "")
        try:
            text = templating.render_template(body, _sample_context())
        except TemplateSyntaxError:
            text = ""  # the syntax error is already among the problems
        info = templating.sms_length_info(text)
        return JsonResponse({"text": text, "length": info, "summary": templating.sms_length_summary(info), "problems": problems})

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {
            **(extra_context or {}),
            "preview_url": reverse("admin:cadences_smstemplate_preview"),
            "template_variables": templating.ALLOWED_VARIABLES,
            "saved_preview": self._saved_preview(object_id),
        }
        return super().changeform_view(request, object_id, form_url, extra)


class WeekdaysField(forms.MultipleChoiceField):
    """The business days as checkboxes, stored as '0,1,2,3,4' (Monday is 0)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("max_length", None)
        kwargs.pop("empty_value", None)
        super().__init__(choices=[(str(n), name) for n, name in enumerate(calendar.WEEKDAYS)], widget=forms.CheckboxSelectMultiple, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        return value.split(",") if isinstance(value, str) else value

    def clean(self, value: Any) -> str:
        return ",".join(sorted(super().clean(value), key=int))


CLIENT_LOCAL_TIMES = ("calling_window_start", "calling_window_end", "sms_window_start", "sms_window_end")
_CLIENT_LOCAL_TIME = forms.TimeInput(format="%H:%M", attrs={"type": "time"})


class DialerSettingsForm(forms.ModelForm):
    business_days = WeekdaysField(label="Business days", help_text="Days of the week a campaign starts on.")

    class Meta:
        model = DialerSettings
        fields = "__all__"
        # The windows are on each client's own clock, so the admin's time widget, which warns how
        # far the browser is from the portal's time zone, would warn about the wrong clock.
        widgets = {
            "queue_sql": forms.Textarea(attrs={"rows": 10, "cols": 100, "class": "vLargeTextField", "spellcheck": "false"}),
            "closed_dates": forms.Textarea(attrs={"rows": 4, "cols": 30, "placeholder": "2026-12-24"}),
            **{name: _CLIENT_LOCAL_TIME for name in CLIENT_LOCAL_TIMES},
        }
        labels = {"queue_sql": "Queue SQL", "sms_window_start": "SMS window start", "sms_window_end": "SMS window end"}

    def clean_queue_sql(self) -> str:
        sql: str = self.cleaned_data["queue_sql"]
        # The read-only rules need no warehouse, and every run applies them: a stored query they
        # refuse would only fail later, so it is refused here, changed or not.
        try:
            warehouse.query_check(sql)
        except IntegrationError as exc:
            raise forms.ValidationError(f"This query cannot be stored: {exc.message}.") from exc
        # Only a changed query is run: a warehouse outage must not block saving other settings.
        if "queue_sql" not in self.changed_data:
            return sql
        try:
            # Read-only and bounded by WAREHOUSE_CHECK_TIMEOUT_SECONDS, so a slow query cannot
            # hold this web worker.
            columns = warehouse.query_columns(sql)
        except IntegrationError as exc:
            raise forms.ValidationError(f"The warehouse refused this query: {exc}") from exc
        missing = [column for column in REQUIRED_QUEUE_COLUMNS if column not in columns]
        if missing:
            raise forms.ValidationError(
                "The query must return " + ", ".join(REQUIRED_QUEUE_COLUMNS) + "; missing: " + ", ".join(missing) + "."
            )
        return sql


@admin.register(DialerSettings)
class DialerSettingsAdmin(SimpleHistoryAdmin):
    formfield_overrides = MULTILINE_TEXT
    form = DialerSettingsForm
    list_display = ("__str__", "batch_size", "release_threshold", "revalidation_interval_minutes", "calling_window", "updated_at")
    list_filter = ("updated_at",)
    search_fields = ("queue_sql", "history_table", "company_name")
    fieldsets = (
        ("Queue", {"fields": ("queue_sql", "revalidation_interval_minutes")}),
        ("Release", {"fields": ("batch_size", "release_threshold", "poll_interval_seconds", "batch_timeout_seconds")}),
        ("Windows (client's local time)", {"fields": (("calling_window_start", "calling_window_end"), ("sms_window_start", "sms_window_end"))}),
        ("End of day (portal time zone)", {"fields": ("end_of_day",)}),
        (
            "Contact limits",
            {"fields": ("max_calls_per_week", "conversation_blackout_days", "retry_delay_minutes", "max_call_attempts_per_day")},
        ),
        ("Retell pacing", {"fields": ("calls_per_second", "max_concurrent_calls")}),
        (
            "Daily start (portal time zone)",
            {
                "fields": ("auto_start", "auto_start_at", "business_days", "holiday_calendar", "closed_dates"),
                "description": "With the daily start on, nobody needs to create and start each day's campaign: it starts at "
                "the time set here on business days, and an alert says so if it cannot.",
            },
        ),
        ("Grace's live tools", {"fields": ("promise_horizon_days",)}),
        ("Call reviews", {"fields": ("review_first_calls",)}),
        ("Texts", {"fields": ("sms_max_parts",)}),
        (
            "Inbound calls: a Retell agent per conversation path",
            {
                "fields": ("inbound_agent_payment", "inbound_agent_question", "inbound_agent_dispute", "inbound_agent_escalation", "inbound_agent_generic"),
                "description": "Blank: the called number's own agent answers.",
            },
        ),
        ("Records", {"fields": ("history_table", "ledger_retention_days", "company_name")}),
        ("E-mail", {"fields": ("email_follow_ups",)}),
    )

    @admin.display(description="Calling window")
    def calling_window(self, obj: DialerSettings) -> str:
        return f"{obj.calling_window_start:%H:%M}–{obj.calling_window_end:%H:%M}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        # One row only: the dialer reads DialerSettings.load().
        return super().has_add_permission(request) and not DialerSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: DialerSettings | None = None) -> bool:
        return False


@admin.register(StateCallLimit)
class StateCallLimitAdmin(SimpleHistoryAdmin):
    list_display = ("state", "max_calls", "period_days", "note")
    list_filter = ("period_days", "max_calls")
    search_fields = ("state", "note")
