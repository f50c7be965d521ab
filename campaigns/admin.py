"""Admin for the day's campaigns and what they produce.

One section per model, in the order of the daily workflow. Status changes never happen by
editing a field here: they go through the services (lifecycle, transitions), so the fields that
carry state are read-only.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import slugify

from cadences import admin as cadences_admin
from cadences import templating
from cadences.forms import MULTILINE_TEXT
from cadences.models import DialerSettings, Phase, SmsTemplate
from cadences.templating import format_money
from campaigns.queue import selectors
from campaigns.sms import outbound as sms_outbound
from campaigns.admin_compliance import CallAttemptInline, GateDecisionInline, why_not_called_url
from campaigns.models import (
    Campaign, EmailMessage, FollowUpTask, IntakeFile, NotificationTarget, Payment, PaymentLink, PromiseToPay, QueueItem, ReconciledDelivery,
    RejectedRow, SftpDestination, SftpServerSettings, SftpSource, SmsMessage, TierOwner, WarehousePaymentsQuery, WebhookEvent,
)  # fmt: skip
from integrations.http import IntegrationError
from integrations.notify import client as notify
from integrations.warehouse import client as warehouse_client
from campaigns.lifecycle import campaign as lifecycle
from campaigns.lifecycle import delivery as deliveries
from campaigns.queue import load as queue
from campaigns.conversations import promises
from campaigns.webhooks import inbox
from campaigns.conversations import followups
from integrations import clock
from integrations.sftp import client as sftp

# --- Campaign ------------------------------------------------------------------------------

LOAD_COUNTERS = ("rows_read", "rows_inserted", "rows_rejected", "rows_no_touchpoint", "rows_already_queued")
OUTCOME_COUNTERS = (
    "calls_placed",
    "answered",
    "voicemail",
    "transferred",
    "no_answer",
    "failed",
    "sms_sent",
    "sms_failed",
    "skipped",
    "ineligible",
    "flushed_rows",
)
REJECTED_PREVIEW_ROWS = 50


class CsvUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8 CSV with a header row: "
        + ", ".join(queue.REQUIRED_COLUMNS)
        + " (required); "
        + ", ".join(queue.OPTIONAL_COLUMNS)
        + " (optional).",
    )


class ReconciledDeliveryInline(admin.TabularInline):
    model = ReconciledDelivery
    extra = 0
    verbose_name_plural = "Reconciled file sent to the partners"
    fields = ("destination", "status", "attempts", "delivered_at", "next_attempt_at", "remote_path", "error")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    formfield_overrides = MULTILINE_TEXT
    list_display = ("date", "status", "rows_read", "rows_inserted", "rows_rejected", "rows_no_touchpoint", "is_sandbox", "created_at")
    list_filter = ("status", "is_sandbox")
    date_hierarchy = "date"
    search_fields = ("date", "load_error", "halt_reason")
    list_select_related = ("created_by",)
    change_form_template = "admin/campaigns/campaign/change_form.html"
    fieldsets = (
        (None, {"fields": ("date", "status", "is_sandbox", "created_by")}),
        ("Queue load", {"fields": ("load_progress", "load_error", "load_started_at", "load_finished_at", "rejected_rows_preview")}),
        (
            "Release settings",
            {
                "fields": (
                    ("batch_size", "release_threshold"),
                    ("poll_interval_seconds", "batch_timeout_seconds"),
                    ("calling_window_start", "calling_window_end"),
                    "end_of_day",
                )
            },
        ),
        ("Outcomes", {"fields": (OUTCOME_COUNTERS[:6], OUTCOME_COUNTERS[6:])}),
        (
            "Lifecycle",
            {
                "classes": ("collapse",),
                "fields": ("started_at", "stopped_at", "flushed_at", "last_revalidated_at", "halt_reason", "flush_error"),
            },
        ),
    )
    readonly_fields = (
        "status",
        "is_sandbox",
        "created_by",
        "load_progress",
        "load_error",
        "load_started_at",
        "load_finished_at",
        "rejected_rows_preview",
        *OUTCOME_COUNTERS,
        "started_at",
        "stopped_at",
        "flushed_at",
        "last_revalidated_at",
        "halt_reason",
        "flush_error",
    )

    actions = ("start_campaigns", "pause_campaigns", "resume_campaigns", "stop_campaigns", "flush_campaigns", "deliver_again")

    def _lifecycle_action(self, request: HttpRequest, queryset: QuerySet[Campaign], verb: str, service: Any) -> None:
        done, refused = [], []
        for campaign in queryset:
            try:
                if verb == "flushed":
                    service(campaign=campaign)
                else:
                    service(campaign=campaign, user=request.user)
            except lifecycle.CampaignStateError as exc:
                refused.append(str(exc))
                continue
            campaign.refresh_from_db()
            if verb == "flushed" and campaign.flush_error:
                refused.append(f"{campaign}: the flush failed and everything was kept — {campaign.flush_error}")
            else:
                done.append(str(campaign))
        if done:
            self.message_user(request, f"{', '.join(done)} {verb}.", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.ERROR)

    @admin.action(description="Start the selected campaigns (load the queue, then run)", permissions=["change"])
    def start_campaigns(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._lifecycle_action(request, queryset, "started", lifecycle.campaign_start)

    @admin.action(description="Pause the selected campaigns", permissions=["change"])
    def pause_campaigns(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._lifecycle_action(request, queryset, "paused", lifecycle.campaign_pause)

    @admin.action(description="Resume the selected campaigns", permissions=["change"])
    def resume_campaigns(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._lifecycle_action(request, queryset, "resumed", lifecycle.campaign_resume)

    @admin.action(description="Stop the selected campaigns (then flush to the warehouse)", permissions=["change"])
    def stop_campaigns(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._lifecycle_action(request, queryset, "stopping", lifecycle.campaign_stop)

    @admin.action(description="Flush the selected stopped campaigns to the warehouse (retry)", permissions=["change"])
    def flush_campaigns(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._lifecycle_action(request, queryset, "flushed", lifecycle.campaign_flush)

    @admin.action(description="Send the reconciled file to the partners again (after a failed delivery)", permissions=["change"])
    def deliver_again(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        restarted = 0
        for delivery in ReconciledDelivery.objects.filter(campaign__in=queryset):
            restarted += deliveries.reconciled_delivery_restart(delivery=delivery)
        if restarted:
            self.message_user(request, f"{restarted} delivery(ies) will be sent again in a moment.", messages.SUCCESS)
        else:
            self.message_user(request, "Nothing to send again: no failed or waiting delivery among the selected days.", messages.WARNING)

    def get_inlines(self, request: HttpRequest, obj: Campaign | None = None) -> Any:
        return (ReconciledDeliveryInline,) if obj is not None and obj.status == Campaign.Status.FLUSHED else ()

    def get_fieldsets(self, request: HttpRequest, obj: Campaign | None = None) -> Any:
        if obj is None:
            # A new campaign takes its release settings from the dialer settings.
            return ((None, {"fields": ("date",)}),)
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Campaign | None = None) -> Any:
        if obj is None:
            return ()
        return ("date", *self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: Campaign, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        obj.pk = lifecycle.campaign_create(date=obj.date, user=request.user).pk
        obj.refresh_from_db()

    @admin.display(description="Progress")
    def load_progress(self, obj: Campaign) -> str:
        counts = format_html_join(
            " · ",
            '<span data-counter="{}">{}</span> {}',
            (
                ("rows_read", f"{obj.rows_read:,}", "read"),
                ("rows_inserted", f"{obj.rows_inserted:,}", "queued"),
                ("rows_rejected", f"{obj.rows_rejected:,}", "rejected"),
                ("rows_no_touchpoint", f"{obj.rows_no_touchpoint:,}", "no touchpoint today"),
                ("rows_already_queued", f"{obj.rows_already_queued:,}", "already queued"),
            ),
        )
        if selectors.campaign_load_in_progress(campaign=obj):
            state = "loading…"
        elif obj.load_error:
            state = "stopped by an error (below); loading again continues where it stopped"
        elif obj.load_finished_at:
            state = "finished"
        else:
            state = "not loaded"
        return format_html(
            '<div id="load-progress" data-url="{}" data-in-progress="{}">{} <span data-state>({})</span></div>',
            reverse("admin:campaigns_campaign_progress", args=[obj.pk]),
            "1" if selectors.campaign_load_in_progress(campaign=obj) else "0",
            counts,
            state,
        )

    @admin.display(description="Rejected rows")
    def rejected_rows_preview(self, obj: Campaign) -> str:
        rows = list(selectors.campaign_rejected_rows(campaign=obj)[: REJECTED_PREVIEW_ROWS + 1])
        if not rows:
            return "None."
        table = format_html(
            "<table><thead><tr><th>Source</th><th>Row</th><th>Client</th><th>Reason</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                ((r.source, r.row_number, r.client_id, r.reason) for r in rows[:REJECTED_PREVIEW_ROWS]),
            ),
        )
        more = ""
        if len(rows) > REJECTED_PREVIEW_ROWS:
            more = format_html(
                '<p>Showing the first {}. <a href="{}?campaign__id__exact={}">All rejected rows</a>.</p>',
                REJECTED_PREVIEW_ROWS,
                reverse("admin:campaigns_rejectedrow_changelist"),
                obj.pk,
            )
        download = format_html(
            '<p><a class="button" href="{}">Download rejected rows (CSV)</a></p>',
            reverse("admin:campaigns_campaign_rejected_csv", args=[obj.pk]),
        )
        return format_html("{}{}{}", table, more, download)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/upload/", view(self.upload_view), name="campaigns_campaign_upload"),
            path("<int:pk>/rejected.csv", view(self.rejected_csv_view), name="campaigns_campaign_rejected_csv"),
            path("<int:pk>/progress.json", view(self.progress_view), name="campaigns_campaign_progress"),
            path("<int:pk>/reconciled.csv", view(self.reconciled_csv_view), name="campaigns_campaign_reconciled_csv"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None) -> HttpResponse:
        campaign = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "can_upload": campaign is not None
            and self.has_change_permission(request, campaign)
            and campaign.status in queue.LOADABLE_STATUSES,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _campaign_or_denied(self, request: HttpRequest, pk: int, *, change: bool) -> Campaign:
        campaign = get_object_or_404(Campaign, pk=pk)
        allowed = self.has_change_permission(request, campaign) if change else self.has_view_permission(request, campaign)
        if not allowed:
            raise PermissionDenied
        return campaign

    def upload_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = self._campaign_or_denied(request, pk, change=True)
        change_url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
        form = CsvUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = queue.queue_upload_csv(campaign=campaign, upload=upload, filename=upload.name)
            except queue.CsvFileError as exc:
                self.message_user(request, f"Nothing was loaded from {upload.name}: {exc}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{upload.name}: {result.read:,} rows read, {result.inserted:,} queued, {result.rejected:,} rejected, "
                    f"{result.no_touchpoint:,} with no touchpoint today.",
                    messages.SUCCESS if not result.rejected else messages.WARNING,
                )
                if result.rejected:
                    self.message_user(request, "Each rejected row and its reason is listed under “Rejected rows”.", messages.WARNING)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Upload clients to {campaign}",
            "opts": self.opts,
            "original": campaign,
            "form": form,
            "change_url": change_url,
            "required_columns": queue.REQUIRED_COLUMNS,
            "optional_columns": queue.OPTIONAL_COLUMNS,
        }
        return TemplateResponse(request, "admin/campaigns/campaign/upload.html", context)

    def rejected_csv_view(self, request: HttpRequest, pk: int) -> StreamingHttpResponse:
        campaign = self._campaign_or_denied(request, pk, change=False)

        class Echo:
            def write(self, value: str) -> str:
                return value

        writer = csv.writer(Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in selectors.campaign_rejected_rows_csv(campaign=campaign)), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="rejected-rows-{slugify(campaign.date.isoformat())}.csv"'
        return response

    def reconciled_csv_view(self, request: HttpRequest, pk: int) -> HttpResponseBase:
        """The day's reconciled file: live from the rows until the flush, then the file written at flush."""
        campaign = self._campaign_or_denied(request, pk, change=False)
        filename = f"reconciled-{campaign.date.isoformat()}.csv"
        if campaign.status == Campaign.Status.FLUSHED:
            written = Path(settings.RECONCILED_FILE_DIR) / filename
            if not written.exists():
                raise Http404(f"The reconciled file of {campaign} is no longer in {settings.RECONCILED_FILE_DIR}.")
            return FileResponse(written.open("rb"), as_attachment=True, filename=filename, content_type="text/csv")
        response = StreamingHttpResponse(lifecycle.reconciled_csv_lines(campaign=campaign), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        campaign = self._campaign_or_denied(request, pk, change=False)
        progress = selectors.campaign_load_progress(campaign_id=campaign.pk) or {}
        return JsonResponse(progress)


# --- Queue items -----------------------------------------------------------------------------


@admin.register(QueueItem)
class QueueItemAdmin(admin.ModelAdmin):
    formfield_overrides = MULTILINE_TEXT
    list_display = (
        "client_id",
        "client_name",
        "campaign",
        "segment",
        "days_past_due",
        "phase",
        "action_type",
        "status",
        "sms_status",
        "ring_group",
        "timezones",
    )
    list_filter = ("status", "sms_status", "action_type", "phase", "team", "source", "segment", "campaign")
    search_fields = ("client_id", "client_name", "phone", "email")
    list_select_related = ("campaign", "segment")
    list_per_page = 100
    show_full_result_count = False
    inlines = (GateDecisionInline, CallAttemptInline)

    def get_readonly_fields(self, request: HttpRequest, obj: QueueItem | None = None) -> Any:
        # An item's state moves only through the transition services (counters move with it).
        return [f.name for f in QueueItem._meta.concrete_fields] + ["why_not_called"]

    @admin.display(description="Why not called?")
    def why_not_called(self, obj: QueueItem) -> str:
        return format_html('<a href="{}">Gate decisions, suppressions and contacts for {}</a>', why_not_called_url(obj.client_id), obj.client_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: QueueItem | None = None) -> bool:
        return False


@admin.register(RejectedRow)
class RejectedRowAdmin(admin.ModelAdmin):
    list_display = ("campaign", "source", "row_number", "client_id", "reason")
    list_filter = ("source", "campaign")
    search_fields = ("client_id", "reason")
    list_select_related = ("campaign",)
    list_per_page = 100

    def get_readonly_fields(self, request: HttpRequest, obj: RejectedRow | None = None) -> Any:
        return [f.name for f in RejectedRow._meta.concrete_fields]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RejectedRow]:
        return super().get_queryset(request).order_by("campaign", "source", "row_number")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RejectedRow | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: RejectedRow | None = None) -> bool:
        return False


# --- Follow-up tasks: the human-owned queue -------------------------------------------------------


@admin.register(FollowUpTask)
class FollowUpTaskAdmin(admin.ModelAdmin):
    """What conversations escalated to a person: disputes, hardship, legal language, callbacks…

    Supervisors give tasks an owner and close them here; what a task is about (its kind, client
    and origin) is fixed by the call that raised it."""
    formfield_overrides = MULTILINE_TEXT

    list_display = ("kind", "status", "team", "client_name", "client_id", "owner", "owner_name", "routed_by", "alert_state", "due_at", "overdue", "created_at")
    list_filter = ("status", "kind", "team", "routed_by", "alert_mode", ("owner", admin.RelatedOnlyFieldListFilter))
    search_fields = ("client_id", "client_name", "source_ref", "detail")
    list_select_related = ("owner",)
    date_hierarchy = "due_at"
    ordering = ("status", "due_at")
    list_per_page = 100
    fieldsets = (
        (None, {"fields": ("kind", "status", "team", "client_id", "client_name", "phone", "owner", "due_at", "detail", "source_ref", "created_at", "resolved_at")}),
        (
            "Routing and owner alert",
            {
                "fields": ("owner_name", "routed_by", "routed_at", "alert_mode", "alerted_at", "alert_attempts", "alert_retry_at", "alert_error"),
                "description": "Who the routing rules gave the task to, and whether its owner (or team) was told. "
                "A failed alert is retried on its own; the task stays open meanwhile.",
            },
        ),
    )
    readonly_fields = (
        "kind", "status", "client_id", "client_name", "phone", "detail", "source_ref", "created_at", "resolved_at",
        "owner_name", "routed_by", "routed_at", "alert_mode", "alerted_at", "alert_attempts", "alert_retry_at", "alert_error",
    )  # fmt: skip
    actions = ("assign_to_me", "mark_in_progress", "mark_done")

    @admin.display(description="Alert")
    def alert_state(self, task: FollowUpTask) -> str:
        if task.alerted_at is not None:
            return "Sent"
        if task.alert_attempts:
            return f"Failed {task.alert_attempts}×, retrying"
        return "Waiting for the digest" if task.alert_mode == FollowUpTask.AlertMode.DIGEST else "Pending"

    @admin.display(boolean=True, description="Overdue")
    def overdue(self, task: FollowUpTask) -> bool:
        return task.status != FollowUpTask.Status.DONE and task.due_at < clock.now()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: FollowUpTask | None = None) -> bool:
        return False

    @admin.action(description="Assign the selected tasks to me", permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[FollowUpTask]) -> None:
        count = followups.follow_up_tasks_assign(tasks=queryset, owner=request.user)
        self.message_user(request, f"{count} task(s) assigned to you.", messages.SUCCESS)

    @admin.action(description="Mark the selected tasks in progress", permissions=["change"])
    def mark_in_progress(self, request: HttpRequest, queryset: QuerySet[FollowUpTask]) -> None:
        count = followups.follow_up_tasks_start(tasks=queryset)
        self.message_user(request, f"{count} task(s) in progress.", messages.SUCCESS)

    @admin.action(description="Mark the selected tasks done", permissions=["change"])
    def mark_done(self, request: HttpRequest, queryset: QuerySet[FollowUpTask]) -> None:
        count = followups.follow_up_tasks_close(tasks=queryset, now=clock.now())
        self.message_user(request, f"{count} task(s) done.", messages.SUCCESS)


# --- Owner alerts: where they go, and the senior owners by tier ----------------------------------


class NotificationTargetForm(forms.ModelForm):
    """The URLs hold the services' secrets: typed in, never shown back. Left empty when editing,
    the stored URLs stay."""

    urls = forms.CharField(
        label="Notification URLs",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off", "placeholder": "Stored URLs are not shown. Type new ones to replace them."}),
        help_text="One apprise URL per line: slack://TokenA/TokenB/TokenC/#channel, msteams://…, "
        "mailtos://user:password@smtp.example.com?to=owner@example.com, and so on. Saved URLs are never shown again; "
        "leave empty to keep them.",
    )

    class Meta:
        model = NotificationTarget
        fields = ("team", "user", "urls", "active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["urls"] = ""

    def clean_urls(self) -> str:
        value = self.cleaned_data.get("urls", "").strip()
        if not value:
            if self.instance.pk is None:
                raise forms.ValidationError("Give at least one notification URL.")
            return self.instance.urls
        bad = notify.urls_not_understood([line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")])
        if bad:
            raise forms.ValidationError(f"Not a notification URL apprise knows: {', '.join(bad)} (the URL is not shown for its secret).")
        return value


@admin.register(NotificationTarget)
class NotificationTargetAdmin(admin.ModelAdmin):
    """Where follow-up alerts go: a team's queue (tasks nobody owns yet) or a person (tasks they own)."""

    form = NotificationTargetForm
    list_display = ("__str__", "team", "user", "services", "active", "updated_at")
    list_filter = ("active", "team")
    search_fields = ("user__username", "user__email")
    raw_id_fields = ("user",)

    @admin.display(description="Services")
    def services(self, target: NotificationTarget) -> str:
        return target.services


@admin.register(TierOwner)
class TierOwnerAdmin(admin.ModelAdmin):
    """The senior owner of a tier: follow-up tasks of that tier's clients go to them."""

    list_display = ("tier", "owner")
    search_fields = ("tier", "owner__username")
    raw_id_fields = ("owner",)


# --- Follow-up e-mails ------------------------------------------------------------------------------


@admin.register(EmailMessage)
class EmailMessageAdmin(admin.ModelAdmin):
    """The payment links and promise summaries that went (or were to go) by e-mail, and why.
    A record of what was sent: for looking, never for editing."""

    list_display = ("created_at", "kind", "client_id", "status", "why", "send_attempts", "sent_at")
    list_filter = ("kind", "status")
    search_fields = ("client_id", "local_id", "call_id")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: EmailMessage | None = None) -> bool:
        return False


# --- Promises to pay ------------------------------------------------------------------------------


@admin.display(description="Amount", ordering="amount")
def amount_money(obj: Any) -> str:
    return "—" if obj.amount is None else format_money(obj.amount)


class PhaseFilter(admin.SimpleListFilter):
    """The phases in words; the query string keeps the phase's code."""

    title = "phase"
    parameter_name = "phase"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Phase.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(phase=self.value()) if self.value() else queryset


@admin.register(PromiseToPay)
class PromiseToPayAdmin(admin.ModelAdmin):
    list_display = (
        "client_name", "client_id", amount_money, "promised_date", "status", "reminder_at", "segment_name", "phase_words", "created_at",
    )  # fmt: skip
    list_filter = ("status", "segment_name", PhaseFilter)

    @admin.display(description="Phase", ordering="phase")
    def phase_words(self, obj: PromiseToPay) -> str:
        return Phase(obj.phase).label if obj.phase in Phase.values else obj.phase
    search_fields = ("client_id", "client_name", "call_id")
    date_hierarchy = "promised_date"
    list_per_page = 100
    actions = ("mark_kept", "mark_broken")

    def get_readonly_fields(self, request: HttpRequest, obj: PromiseToPay | None = None) -> Any:
        # Captured from the call; settled by the review or by the actions below, never by editing.
        return [f.name for f in PromiseToPay._meta.concrete_fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PromiseToPay | None = None) -> bool:
        return False

    @admin.action(description="Mark kept (payment received)", permissions=["change"])
    def mark_kept(self, request: HttpRequest, queryset: QuerySet[PromiseToPay]) -> None:
        now = clock.now()
        count = sum(promises.promise_settle(promise=p, kept=True, now=now) for p in queryset)
        self.message_user(request, f"{count} promise(s) marked kept.", messages.SUCCESS)

    @admin.action(description="Mark broken (opens a follow-up task)", permissions=["change"])
    def mark_broken(self, request: HttpRequest, queryset: QuerySet[PromiseToPay]) -> None:
        now = clock.now()
        count = sum(promises.promise_settle(promise=p, kept=False, now=now) for p in queryset)
        self.message_user(request, f"{count} promise(s) marked broken.", messages.SUCCESS)


# --- Webhook events (read-only) -------------------------------------------------------------------


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    """Every authenticated vendor event, as received. Read-only: the record of what vendors said."""

    list_display = ("received_at", "vendor", "event_type", "reference", "processed_at", "result", "failed")
    list_filter = ("vendor", "event_type", ("processed_at", admin.EmptyFieldListFilter))
    search_fields = ("reference", "dedupe_key")
    date_hierarchy = "received_at"
    list_per_page = 100
    show_full_result_count = False
    exclude = ("payload",)
    actions = ("process_again",)

    def get_readonly_fields(self, request: HttpRequest, obj: WebhookEvent | None = None) -> Any:
        return [f.name for f in WebhookEvent._meta.concrete_fields if f.name != "payload"] + ["payload_pretty"]

    @admin.display(boolean=True, description="Failed")
    def failed(self, event: WebhookEvent) -> bool:
        return bool(event.error) and event.processed_at is None

    @admin.display(description="Payload")
    def payload_pretty(self, event: WebhookEvent) -> str:
        return format_html("<pre style='white-space:pre-wrap;margin:0'>{}</pre>", json.dumps(event.payload, indent=2, ensure_ascii=False))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WebhookEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: WebhookEvent | None = None) -> bool:
        return False

    def has_process_permission(self, request: HttpRequest) -> bool:
        # Re-running events changes campaigns: the people who control campaigns may do it.
        return request.user.has_perm("campaigns.change_campaign")

    @admin.action(description="Process the selected events again (unprocessed ones only)", permissions=["process"])
    def process_again(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        ids = list(queryset.filter(processed_at__isnull=True).values_list("pk", flat=True))
        done = sum(inbox.webhook_event_process(event_id=pk, now=clock.now()) for pk in ids)
        level = messages.SUCCESS if done == len(ids) else messages.WARNING
        self.message_user(request, f"{done} of {len(ids)} unprocessed event(s) processed.", level)


# --- SMS messages (read-only) -----------------------------------------------------------------------


@admin.register(SmsMessage)
class SmsMessageAdmin(admin.ModelAdmin):
    """Every text the dialer sent or tried to send, with the exact words. Read-only: a record.

    A message is created before HeyMarket is called and keyed by its `local_id`, so a pending row
    here is a send in progress or waiting for a retry, never a text sent twice."""

    list_display = ("created_at", "kind", "client_id", "inbox_id", "status", "sent_at", "send_attempts", "local_id")
    list_filter = ("status", "kind", "inbox_id", ("campaign", admin.RelatedOnlyFieldListFilter))
    search_fields = ("local_id", "client_id", "phone", "heymarket_id", "text")
    list_select_related = ("campaign",)
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: SmsMessage | None = None) -> Any:
        return [f.name for f in SmsMessage._meta.concrete_fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SmsMessage | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SmsMessage | None = None) -> bool:
        return False


# --- Payments -------------------------------------------------------------------------------------


class WarehousePaymentsQueryForm(forms.ModelForm):
    class Meta:
        model = WarehousePaymentsQuery
        fields = ("sql", "poll_minutes")
        widgets = {"sql": forms.Textarea(attrs={"rows": 8, "cols": 100, "class": "vLargeTextField", "spellcheck": "false"})}

    def clean_sql(self) -> str:
        sql: str = self.cleaned_data["sql"]
        if sql.strip():
            try:
                warehouse_client.query_check(sql)  # one read-only SELECT, like the queue SQL
            except IntegrationError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return sql


@admin.register(WarehousePaymentsQuery)
class WarehousePaymentsQueryAdmin(admin.ModelAdmin):
    formfield_overrides = MULTILINE_TEXT
    form = WarehousePaymentsQueryForm
    list_display = ("__str__", "poll_minutes", "last_polled_at", "last_rows", "last_new", "last_error")
    readonly_fields = ("last_polled_at", "last_rows", "last_new", "last_error")


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ("paid_at", "client_id", amount_money, "refunded_amount", "disputed_amount", "source", "reference", "segment_name", "owner", "promise")
    list_filter = ("source", "segment_name", "dispute_status")
    search_fields = ("client_id", "reference")
    list_select_related = ("promise",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PaymentLink)
class PaymentLinkAdmin(admin.ModelAdmin):
    list_display = ("created_at", "client_id", "purpose", amount_money, "status", "opens", "first_opened_at", "completed_at")
    list_filter = ("status", "purpose")
    search_fields = ("client_id", "session_id")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- SMS templates: the length of the real texts -------------------------------------------------

# The template admin lives with the cadences, which know nothing of campaigns; the check against
# today's queued clients is added here, where the queue is known.
SMS_LENGTH_SAMPLE = 50


def sms_length_overruns(template: SmsTemplate, *, limit: int) -> tuple[int, int, list[tuple[str, int]]]:
    """Render `template` for up to SMS_LENGTH_SAMPLE clients queued for a step that uses it (a
    link as long as a real one, none issued): how many were rendered, how many need more than
    `limit` parts, and (client id, parts) of the longest few."""
    items = (
        QueueItem.objects.filter(step__sms_template=template, status__in=[QueueItem.Status.QUEUED, QueueItem.Status.SMS_SCHEDULED])
        .select_related("segment", "step", "campaign")
        .order_by("-campaign__date", "pk")[:SMS_LENGTH_SAMPLE]
    )
    company = DialerSettings.load().company_name
    now = clock.now()
    rendered, over = 0, []
    for item in items:
        try:
            text = sms_outbound.sms_render(item=item, now=now, company_name=company, template=template, preview=True)
        except sms_outbound.RenderError:
            continue
        rendered += 1
        parts = templating.sms_length_info(text)["segments"]
        if parts > limit:
            over.append((item.client_id, parts))
    over.sort(key=lambda pair: -pair[1])
    return rendered, len(over), over[:3]


class QueuedSmsTemplateAdmin(cadences_admin.SmsTemplateAdmin):
    def save_model(self, request: HttpRequest, obj: SmsTemplate, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        limit = DialerSettings.load().sms_max_parts
        rendered, over, longest = sms_length_overruns(obj, limit=limit)
        if over:
            examples = ", ".join(f"{client_id} ({parts} parts)" for client_id, parts in longest)
            messages.warning(
                request,
                f"For {over} of the {rendered} clients queued for it, this text runs to more than {limit} SMS parts "
                f"(the limit in Dialer settings): {examples}. Shorten it, or the carrier bills (and may split) each part.",
            )


admin.site.unregister(SmsTemplate)
admin.site.register(SmsTemplate, QueuedSmsTemplateAdmin)

# --- SFTP: the partners' intake and delivery folders --------------------------------------------


class SftpServerForm(forms.ModelForm):
    """The secrets are write-only: a field left empty keeps what is stored, and nothing stored is
    ever shown back (not even masked in the page's source)."""

    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Only if the partner gave you a password. Leave empty to keep the one stored.",
    )
    private_key = forms.CharField(
        label="Private key",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 70, "autocomplete": "off", "spellcheck": "false", "class": "vLargeTextField"}),
        help_text=(
            "Paste our private key for this server (the text starting “-----BEGIN OPENSSH PRIVATE KEY-----”), "
            "without a passphrase; the partner needs the matching public key. Leave empty to keep the one stored."
        ),
    )
    remove_password = forms.BooleanField(required=False, label="Remove the stored password")
    remove_private_key = forms.BooleanField(required=False, label="Remove the stored private key")

    def clean_host_key(self) -> str:
        value: str = self.cleaned_data["host_key"].strip()
        try:
            sftp.host_key_parse(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def clean_private_key(self) -> str:
        value: str = self.cleaned_data["private_key"].strip()
        if value:
            try:
                sftp.private_key_parse(value)
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from None
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        instance: SftpServerSettings = self.instance
        has_password = bool(data.get("password")) or (bool(instance.password_sealed) and not data.get("remove_password"))
        has_key = bool(data.get("private_key")) or (bool(instance.private_key_sealed) and not data.get("remove_private_key"))
        if not has_password and not has_key:
            raise forms.ValidationError("Enter a private key or a password: the server needs one of them to let us in.")
        return data

    def save(self, commit: bool = True) -> Any:
        instance: SftpServerSettings = self.instance
        if self.cleaned_data.get("remove_password"):
            instance.password = ""
        if self.cleaned_data.get("remove_private_key"):
            instance.private_key = ""
        if self.cleaned_data.get("password"):
            instance.password = self.cleaned_data["password"]
        if self.cleaned_data.get("private_key"):
            instance.private_key = self.cleaned_data["private_key"]
        return super().save(commit)


class SftpServerAdmin(admin.ModelAdmin):
    form = SftpServerForm
    list_filter = ("enabled",)
    search_fields = ("name", "host", "username")
    actions = ("check_connection",)
    credential_fields = (("password", "remove_password"), ("private_key", "remove_private_key"), "stored_credentials")

    @admin.display(description="Stored now")
    def stored_credentials(self, obj: SftpServerSettings) -> str:
        stored = [label for label, sealed in (("a password", obj.password_sealed), ("a private key", obj.private_key_sealed)) if sealed]
        return " and ".join(stored) if stored else "nothing yet"

    @admin.action(description="Check the connection (sign in and list the folder)", permissions=["view"])
    def check_connection(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for server in queryset:
            try:
                with sftp.session(server.server()) as session:
                    files = sftp.list_files(session, server.path)
            except IntegrationError as exc:
                self.message_user(request, f"{server}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{server}: connected, host key matches, {len(files)} file(s) in {server.path}.", messages.SUCCESS)


@admin.register(SftpSource)
class SftpSourceAdmin(SftpServerAdmin):
    list_display = ("name", "enabled", "host", "path", "poll_minutes", "last_polled_at", "last_success_at", "last_error")
    readonly_fields = ("stored_credentials", "last_polled_at", "last_success_at", "last_error")

    def get_fieldsets(self, request: HttpRequest, obj: SftpSource | None = None) -> Any:
        return (
            (None, {"fields": ("name", "enabled", "poll_minutes"),
                    "description": "A folder on a partner's server where they drop client CSV files. Each new file is queued "
                    "for today's campaign, then moved to processed/ (or failed/) with a result file listing any rejected rows."}),
            ("Server", {"fields": (("host", "port"), "username", "host_key", "path")}),
            ("Sign-in", {"fields": self.credential_fields}),
            ("Last check", {"fields": ("last_polled_at", "last_success_at", "last_error")}),
        )  # fmt: skip


@admin.register(SftpDestination)
class SftpDestinationAdmin(SftpServerAdmin):
    list_display = ("name", "enabled", "host", "path", "last_success_at", "last_error")
    readonly_fields = ("stored_credentials", "last_success_at", "last_error")

    def get_fieldsets(self, request: HttpRequest, obj: SftpDestination | None = None) -> Any:
        return (
            (None, {"fields": ("name", "enabled"),
                    "description": "A folder on a partner's server that receives each day's reconciled file after the flush."}),
            ("Server", {"fields": (("host", "port"), "username", "host_key", "path")}),
            ("Sign-in", {"fields": self.credential_fields}),
            ("Last delivery", {"fields": ("last_success_at", "last_error")}),
        )  # fmt: skip


@admin.register(IntakeFile)
class IntakeFileAdmin(admin.ModelAdmin):
    list_display = ("filename", "source", "status", "campaign", "rows_read", "rows_inserted", "rows_rejected", "received_at", "moved_to")
    list_filter = ("status", "source")
    search_fields = ("filename", "checksum")
    list_select_related = ("source", "campaign")

    def get_readonly_fields(self, request: HttpRequest, obj: IntakeFile | None = None) -> Any:
        return [f.name for f in IntakeFile._meta.concrete_fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: IntakeFile | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: IntakeFile | None = None) -> bool:
        return False
