"""Accounts, campaigns and everything a day of outreach produces.

The day's queue (queue items) is written back to the warehouse and cleaned up at flush. Every
other row outlives it: the account and its phones, call attempts (outbound and inbound, with
transcript and recording), texts, the contact ledger, suppressions, gate decisions, follow-up
tasks, promises to pay, release batches, daily KPIs and webhook events. A client's timeline,
past days, inbound context and the KPI trends are read from them; they are pruned after the
dialer settings' `ledger_retention_days`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from decimal import Decimal
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from cadences.models import ActionType, CadenceStep, Phase, Segment, Team
from integrations import clock
from integrations.sftp.client import SftpServer


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        LOADING = "loading", "Loading"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        STOPPING = "stopping", "Stopping"
        STOPPED = "stopped", "Stopped"
        FLUSHED = "flushed", "Flushed"

    date = models.DateField(unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    is_sandbox = models.BooleanField(default=True, help_text="Created while vendors ran in sandbox mode.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    auto_started = models.BooleanField(default=False, help_text="Created and started by the daily start (dialer settings).")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    # Release settings, copied from DialerSettings at creation so a running day is stable.
    batch_size = models.PositiveSmallIntegerField(default=10)
    release_threshold = models.PositiveSmallIntegerField(default=1)
    poll_interval_seconds = models.PositiveSmallIntegerField(default=5)
    batch_timeout_seconds = models.PositiveSmallIntegerField(default=120)
    calling_window_start = models.TimeField(default=dt.time(8, 0))
    calling_window_end = models.TimeField(default=dt.time(21, 0))
    end_of_day = models.TimeField(default=dt.time(21, 30))

    # Lifecycle timestamps.
    load_started_at = models.DateTimeField(null=True, blank=True)
    load_finished_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    flushed_at = models.DateTimeField(null=True, blank=True)
    last_revalidated_at = models.DateTimeField(null=True, blank=True)

    # Errors a supervisor must see.
    load_error = models.TextField(blank=True)
    flush_error = models.TextField(blank=True)
    halt_reason = models.TextField(blank=True, help_text="Why the campaign paused itself (e.g. Retell payment failure).")

    # Release-loop lease: one loop per campaign across every worker and cluster.
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    # Load progress.
    rows_read = models.PositiveIntegerField(default=0)
    rows_inserted = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    rows_no_touchpoint = models.PositiveIntegerField(default=0)
    # Rows whose client an earlier load (or upload) already queued: a reload adds nothing.
    rows_already_queued = models.PositiveIntegerField(default=0)

    # Outcome counters, moved only by the conditional update that moves an item's status, so a
    # duplicate webhook or a retried task can never count twice. A recount from the items equals them.
    calls_placed = models.PositiveIntegerField(default=0)
    answered = models.PositiveIntegerField(default=0)
    voicemail = models.PositiveIntegerField(default=0)
    transferred = models.PositiveIntegerField(default=0)
    no_answer = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    sms_sent = models.PositiveIntegerField(default=0)
    sms_failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    ineligible = models.PositiveIntegerField(default=0)
    flushed_rows = models.PositiveIntegerField(default=0)

    # The flush: claimed by one worker at a time (a second one finding the claim fresh leaves the
    # day alone), and what the day came to, kept for the dashboard once its queue is cleaned up.
    flush_claimed_at = models.DateTimeField(null=True, blank=True)
    day_summary = models.JSONField(default=dict, blank=True)
    reconciled_file = models.CharField(max_length=200, blank=True)
    reconciled_rows = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "campaign"
        verbose_name_plural = "campaigns"
        ordering = ["-date"]

    def __str__(self) -> str:
        return f"Campaign {self.date.isoformat()}"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.LOADING, self.Status.RUNNING, self.Status.PAUSED)


class Account(models.Model):
    """One client, durable: created or updated from every queue-SQL row and intake file."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active (past due)"
        RESOLVED = "resolved", "Resolved"
        SUSPENDED = "suspended", "Suspended"
        CANCELLED = "cancelled", "Cancelled"

    client_id = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    phone = models.CharField(max_length=20, help_text="The number the warehouse gave last (E.164).")
    email = models.CharField(max_length=254, blank=True)
    # Every queue load writes every account, so the account carries only the indexes and checks
    # the portal needs: no index on the segment (five values; a page filtering by it scans), and
    # no database-level foreign key, whose deferred check would run once per account at each
    # load's commit. Django still applies SET_NULL when a segment is deleted.
    segment = models.ForeignKey(
        Segment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False, db_constraint=False
    )
    days_past_due = models.PositiveSmallIntegerField(null=True, blank=True)
    amount_due = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    timezones = models.CharField(max_length=300, blank=True, help_text="Candidate IANA zones, comma-separated.")
    state = models.CharField(max_length=2, blank=True)
    postal_code = models.CharField(max_length=10, blank=True)
    payment_link = models.CharField(max_length=500, blank=True)
    owner = models.CharField(max_length=100, blank=True, help_text="The account owner the warehouse names, if any.")
    tier = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    first_seen_at = models.DateTimeField(help_text="When a load or upload first named the client (campaign clock).")
    last_seen_at = models.DateTimeField(help_text="When a load or upload last named the client (campaign clock).")
    last_campaign_date = models.DateField(null=True, blank=True)
    # Identity checks: keyed hashes only (HMAC with IDENTITY_HASH_KEY), never the values, so the
    # database, its backups and every export hold nothing a caller could repeat back.
    date_of_birth_hash = models.CharField(max_length=64, blank=True, editable=False)
    ssn_last4_hash = models.CharField(max_length=64, blank=True, editable=False)
    # The last warm-transfer brief Grace gave a rep about this client.
    transfer_brief = models.TextField(blank=True, db_default="")
    transfer_brief_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "account"
        verbose_name_plural = "accounts"
        ordering = ["client_id"]
        # Only what an inbound call looks up: every other index would cost each queue load more
        # than it saves the pages that filter accounts.
        indexes = [models.Index(fields=["phone"], name="account_phone")]
        # A constraint rather than unique=True: the same unique index, without the second
        # (LIKE-pattern) index PostgreSQL gets for a unique text field.
        constraints = [models.UniqueConstraint(fields=["client_id"], name="account_one_per_client")]

    def __str__(self) -> str:
        return f"{self.client_id} {self.name}"

    @property
    def timezone_list(self) -> list[str]:
        return [z for z in self.timezones.split(",") if z]

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.split() else ""


class AccountPhone(models.Model):
    """A number an account was reached at before its current one (which is `Account.phone`):
    inbound callers are matched on every one of them."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="phones")
    phone = models.CharField(max_length=20, help_text="E.164")
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        verbose_name = "account phone"
        verbose_name_plural = "account phones"
        constraints = [models.UniqueConstraint(fields=["account", "phone"], name="account_phone_once")]
        indexes = [models.Index(fields=["phone"], name="account_phone_number")]

    def __str__(self) -> str:
        return self.phone


class Source(models.TextChoices):
    """Where a queue row came from."""

    WAREHOUSE = "warehouse", "Warehouse query"
    CSV = "csv", "CSV upload"
    SFTP = "sftp", "SFTP intake file"


class CallOutcome(models.TextChoices):
    ANSWERED = "answered", "Answered"
    VOICEMAIL = "voicemail", "Voicemail"
    TRANSFERRED = "transferred", "Transferred"
    NO_ANSWER = "no_answer", "No answer"
    FAILED = "failed", "Failed"


class QueueItem(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RELEASING = "releasing", "Releasing"
        DIALING = "dialing", "Dialing"
        ANSWERED = "answered", "Answered"
        VOICEMAIL = "voicemail", "Voicemail"
        TRANSFERRED = "transferred", "Transferred"
        NO_ANSWER = "no_answer", "No answer"
        FAILED = "failed", "Failed"
        SMS_SCHEDULED = "sms_scheduled", "SMS scheduled"
        SMS_SENT = "sms_sent", "SMS sent"
        SMS_FAILED = "sms_failed", "SMS failed"
        INELIGIBLE = "ineligible", "Ineligible"
        SKIPPED = "skipped", "Skipped"

    class SmsStatus(models.TextChoices):
        NONE = "none", "No SMS"
        PENDING = "pending", "Waiting for call outcome"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        NOT_NEEDED = "not_needed", "Not needed"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    client_id = models.CharField(max_length=64)
    # Where the client came from. Revalidation re-checks warehouse items only: an uploaded
    # account is not in the warehouse query, and that must not make it ineligible.
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.WAREHOUSE)
    client_name = models.CharField(max_length=200)
    phone = models.CharField(max_length=20, help_text="E.164")
    email = models.CharField(max_length=254, blank=True)
    segment = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="+")
    step = models.ForeignKey(CadenceStep, on_delete=models.PROTECT, related_name="+")
    days_past_due = models.PositiveSmallIntegerField()
    phase = models.CharField(max_length=32, choices=Phase.choices)
    action_type = models.CharField(max_length=4, choices=ActionType.choices)

    # Routing resolved at load (billing before the segment's suspension day, resurrection from it on).
    team = models.CharField(max_length=16, choices=Team.choices, default=Team.BILLING)
    ring_group = models.CharField(max_length=64)
    warehouse_ring_group = models.CharField(max_length=64, blank=True)
    transfer_number = models.CharField(max_length=20)
    inbox_id = models.CharField(max_length=64)
    voicemail_prompt = models.TextField(blank=True)
    live_call_prompt = models.TextField(blank=True)

    amount_due = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    payment_link = models.CharField(max_length=500, blank=True)
    state = models.CharField(max_length=2, blank=True)
    postal_code = models.CharField(max_length=10, blank=True)
    timezones = models.CharField(
        max_length=300, help_text="Candidate IANA zones, comma-separated; all must be inside the window to contact."
    )

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    status_changed_at = models.DateTimeField(default=clock.now, editable=False)
    skip_reason = models.CharField(max_length=64, blank=True)
    skip_detail = models.JSONField(default=dict, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Not before (retry curve, rate-limit backoff).")
    call_attempts = models.PositiveSmallIntegerField(default=0)
    last_outcome = models.CharField(max_length=16, choices=CallOutcome.choices, blank=True)

    sms_status = models.CharField(max_length=16, choices=SmsStatus.choices, default=SmsStatus.NONE)
    sms_due_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        verbose_name = "queue item"
        verbose_name_plural = "queue items"
        constraints = [
            models.UniqueConstraint(fields=["campaign", "client_id"], name="queue_item_one_per_client_per_campaign"),
        ]
        indexes = [
            models.Index(fields=["campaign", "status", "ring_group"], name="queue_item_release"),
            models.Index(fields=["campaign", "sms_status", "sms_due_at"], name="queue_item_sms_due"),
            models.Index(fields=["phone"], name="queue_item_phone"),
            models.Index(fields=["client_id"], name="queue_item_client"),
        ]

    def __str__(self) -> str:
        return f"{self.client_id} ({self.get_status_display()})"

    @property
    def timezone_list(self) -> list[str]:
        return [z for z in self.timezones.split(",") if z]


class RejectedRow(models.Model):
    """A warehouse or CSV row that could not be queued, with why."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="rejected_rows")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.WAREHOUSE)
    row_number = models.PositiveIntegerField()
    client_id = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=300)
    row = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        verbose_name = "rejected row"
        verbose_name_plural = "rejected rows"
        ordering = ["row_number"]
        indexes = [models.Index(fields=["campaign", "row_number"], name="rejected_row_campaign")]

    def __str__(self) -> str:
        return f"row {self.row_number}: {self.reason}"


class ReleaseBatch(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="batches")
    ring_group = models.CharField(max_length=64)
    class SizedBy(models.TextChoices):
        BATCH_SIZE = "batch_size", "The campaign's batch size"
        FREE_AGENTS = "free_agents", "Free agents in the ring group"
        CONCURRENCY = "concurrency", "The Retell account's concurrent-call limit"
        QUEUE = "queue", "Touchpoints due in the ring group"

    available_agents = models.PositiveIntegerField()
    size = models.PositiveIntegerField(default=0)
    # Why the batch is the size it is: the smallest of the batch size, the free agents and the
    # account's free call slots, or fewer touchpoints due than that.
    sized_by = models.CharField(max_length=16, choices=SizedBy.choices, blank=True)
    calls_in_progress = models.PositiveIntegerField(null=True, blank=True, help_text="Calls in progress account-wide at release.")
    released_at = models.DateTimeField(default=clock.now, editable=False)
    resolved_at = models.DateTimeField(null=True, blank=True)
    timed_out = models.BooleanField(default=False)

    class Meta:
        verbose_name = "release batch"
        verbose_name_plural = "release batches"
        ordering = ["-released_at"]
        indexes = [models.Index(fields=["campaign", "ring_group", "resolved_at"], name="release_batch_open")]


class CallAttempt(models.Model):
    class Kind(models.TextChoices):
        OUTBOUND = "outbound", "Outbound"
        CALLBACK = "callback", "Requested callback"
        INBOUND = "inbound", "Inbound"

    class Status(models.TextChoices):
        CREATED = "created", "Created"
        REGISTERED = "registered", "Registered"
        ONGOING = "ongoing", "Ongoing"
        ENDED = "ended", "Ended"
        NOT_CONNECTED = "not_connected", "Not connected"
        ERROR = "error", "Error"
        NOT_DIALED = "not_dialed", "Not dialed"

    Outcome = CallOutcome

    # The attempt's UUID is the Retell idempotency key: a network retry re-sends the same one.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # An inbound call belongs to the campaign of its day when there is one. The queue item goes
    # at the flush; the attempt stays with its client's record.
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="call_attempts")
    queue_item = models.ForeignKey(QueueItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="attempts")
    client_id = models.CharField(max_length=64, blank=True)
    batch = models.ForeignKey(ReleaseBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="attempts")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.OUTBOUND)
    attempt_number = models.PositiveSmallIntegerField(default=1)
    call_id = models.CharField(max_length=100, unique=True, null=True, blank=True, help_text="Retell's call id.")
    from_number = models.CharField(max_length=20, blank=True)
    to_number = models.CharField(max_length=20)
    # When the call was dialed (outbound) or came in (inbound), on the campaign's clock.
    placed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    disconnection_reason = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    analyzed = models.BooleanField(default=False)
    in_voicemail = models.BooleanField(null=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    transcript = models.TextField(blank=True)
    recording_url = models.URLField(max_length=500, blank=True)
    summary = models.TextField(blank=True)
    sentiment = models.CharField(max_length=32, blank=True)
    transfer_destination = models.CharField(max_length=40, blank=True)
    cost = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    # The touchpoint's lifecycle phase and segment, kept on the call: the queue item goes at the
    # flush, and the cost per dollar recovered (by phase) and the review of the first calls after
    # a cadence change (by segment) read them for past days too ("" for inbound calls).
    phase = models.CharField(max_length=32, blank=True, default="", db_default="")
    segment_name = models.CharField(max_length=64, blank=True, default="", db_default="")
    custom_analysis = models.JSONField(default=dict, blank=True)
    # The high-value rule, as it applied when the call was dialed: the client owed the segment's
    # high-value amount or more, so Grace offered a senior person first and was not to close the
    # call alone.
    high_value = models.BooleanField(
        "high-value call",
        default=False,
        db_default=False,
        help_text="The client owed the segment's high-value amount or more: a senior person was offered first.",
    )
    senior_transfer_number = models.CharField(
        "senior ring group number",
        max_length=20,
        blank=True,
        default="",
        db_default="",
        help_text="Where Grace was told to transfer this high-value call.",
    )
    placement_pending = models.BooleanField(
        default=False,
        help_text="Claimed for a call whose placement the release step has not recorded yet. Events that arrive "
        "meanwhile stay on the attempt; the release step applies them when it records the call.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Retell's reasons a call ended, in words (the code stays in `disconnection_reason`).
    # Reference: https://docs.retellai.com/reliability/debug-call-disconnect
    DISCONNECTION_LABELS = {
        "user_hangup": "the client hung up",
        "agent_hangup": "Grace ended the call",
        "call_transfer": "transferred",
        "transfer_bridged": "transferred and connected",
        "transfer_cancelled": "the transfer was cancelled",
        "call_take_over": "a person took the call over",
        "voicemail_reached": "voicemail answered",
        "inactivity": "no one spoke for too long",
        "max_duration_reached": "the longest allowed call",
        "dial_no_answer": "no answer",
        "dial_busy": "the line was busy",
        "user_declined": "the client declined the call",
        "ivr_reached": "a phone menu answered",
        "invalid_destination": "the number is not valid",
        "dial_failed": "the call could not be placed",
        "concurrency_limit_reached": "too many calls at once at Retell",
        "no_valid_payment": "Retell's billing refused the call",
        "marked_as_spam": "the carrier marked it as spam",
        "registered_call_timeout": "the call never started",
    }

    @property
    def disconnection_display(self) -> str:
        reason = self.disconnection_reason
        if not reason:
            return ""
        if reason.startswith("error"):
            return "an error at Retell or the carrier"
        return self.DISCONNECTION_LABELS.get(reason, reason.replace("_", " "))

    class Meta:
        verbose_name = "call attempt"
        verbose_name_plural = "call attempts"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="call_attempt_open"),
            models.Index(fields=["campaign", "outcome"], name="call_attempt_outcome"),
            models.Index(fields=["client_id", "placed_at"], name="call_attempt_client"),
        ]

    def __str__(self) -> str:
        return self.call_id or str(self.id)

    def save(self, *args: Any, **kwargs: Any) -> None:
        # An outbound attempt belongs to its item's client, and stays theirs after the flush.
        if not self.client_id and self.queue_item_id is not None:
            self.client_id = self.day_item.client_id
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "client_id"}
        super().save(*args, **kwargs)

    @property
    def day_item(self) -> QueueItem:
        """The queue item of an outbound attempt whose day is not flushed yet (the release and
        outcome steps only ever handle those)."""
        if self.queue_item is None:
            raise QueueItem.DoesNotExist(f"call attempt {self.pk} has no queue item (an inbound call, or its day was flushed)")
        return self.queue_item

    @property
    def day_item_id(self) -> int:
        if self.queue_item_id is None:
            raise QueueItem.DoesNotExist(f"call attempt {self.pk} has no queue item (an inbound call, or its day was flushed)")
        return self.queue_item_id

    @property
    def day_campaign(self) -> Campaign:
        if self.campaign is None:
            raise Campaign.DoesNotExist(f"call attempt {self.pk} belongs to no campaign")
        return self.campaign

    @property
    def client_phone(self) -> str:
        return self.from_number if self.kind == self.Kind.INBOUND else self.to_number


class SmsMessage(models.Model):
    class Kind(models.TextChoices):
        TOUCHPOINT = "touchpoint", "Cadence touchpoint"
        FOLLOW_UP = "follow_up", "After voicemail / no answer"
        OPT_OUT_CONFIRMATION = "opt_out_confirmation", "Opt-out confirmation"
        HELP_REPLY = "help_reply", "Help reply"
        OPT_IN_CONFIRMATION = "opt_in_confirmation", "Opt-in confirmation"
        PROMISE_REMINDER = "promise_reminder", "Promise-to-pay reminder"
        PAYMENT_LINK = "payment_link", "Payment link"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    # Our idempotency key with HeyMarket: the same local_id is never sent twice.
    local_id = models.CharField(max_length=100, unique=True)
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="sms_messages")
    queue_item = models.ForeignKey(QueueItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="sms_messages")
    kind = models.CharField(max_length=24, choices=Kind.choices, default=Kind.TOUCHPOINT)
    client_id = models.CharField(max_length=64, blank=True)
    # The phase of the touchpoint, promise or call the text belongs to (kept past the flush).
    phase = models.CharField(max_length=32, blank=True, default="", db_default="")
    phone = models.CharField(max_length=20)
    inbox_id = models.CharField(max_length=64)
    text = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    heymarket_id = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    # HeyMarket answers that can pass (429/5xx) back off and retry; the count bounds the retries.
    send_attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        verbose_name = "SMS message"
        verbose_name_plural = "SMS messages"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["phone", "status"], name="sms_message_phone"),
            models.Index(fields=["client_id", "created_at"], name="sms_message_client"),
        ]

    def __str__(self) -> str:
        return self.local_id


class EmailMessage(models.Model):
    """One follow-up e-mail (the payment link, a promise's summary), once per `local_id`."""

    class Kind(models.TextChoices):
        PAYMENT_LINK = "payment_link", "Payment link"
        PROMISE_SUMMARY = "promise_summary", "Promise-to-pay summary"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    local_id = models.CharField(max_length=100, unique=True, help_text="What the e-mail is for: sent once per value.")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    client_id = models.CharField(max_length=64)
    to_address = models.CharField("to", max_length=254)
    subject = models.CharField(max_length=200)
    why = models.CharField(max_length=200, help_text="Why it went by e-mail (the text could not be sent, or e-mail is a second channel).")
    call_id = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    send_attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "follow-up e-mail"
        verbose_name_plural = "follow-up e-mails"
        indexes = [
            models.Index(fields=["client_id", "created_at"], name="email_message_client"),
            models.Index(fields=["status", "next_attempt_at"], name="email_message_due"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.client_id}"


class WebhookEvent(models.Model):
    """Every authenticated webhook, stored once by the vendor's identity for the event."""

    class Vendor(models.TextChoices):
        RETELL = "retell", "Retell"
        HEYMARKET = "heymarket", "HeyMarket"
        STRIPE = "stripe", "Stripe"

    vendor = models.CharField(max_length=16, choices=Vendor.choices)
    dedupe_key = models.CharField(max_length=200)
    event_type = models.CharField(max_length=64)
    reference = models.CharField(max_length=100, blank=True, help_text="call_id or message id")
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=64, blank=True, help_text="What processing did with the event.")
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = "webhook event"
        verbose_name_plural = "webhook events"
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["vendor", "dedupe_key"], name="webhook_event_once")]
        indexes = [
            models.Index(fields=["reference"], name="webhook_event_reference"),
            # The minute retry reads only unprocessed events: a handful among a day's thousands.
            models.Index(fields=["received_at"], name="webhook_event_unprocessed", condition=models.Q(processed_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.vendor} {self.event_type} {self.reference}"


class ContactLedgerEntry(models.Model):
    """Every contact with a client, kept beyond the daily cleanup: the frequency caps' source."""

    class Kind(models.TextChoices):
        CALL_ATTEMPT = "call_attempt", "Outbound call attempt"
        CONVERSATION = "conversation", "Conversation (answered or transferred)"
        INBOUND_CALL = "inbound_call", "Inbound call"
        SMS = "sms", "SMS"

    client_id = models.CharField(max_length=64)
    phone = models.CharField(max_length=20)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    occurred_at = models.DateTimeField()
    # The call_id / local_id the entry came from: (kind, reference) is unique, so replays add nothing.
    reference = models.CharField(max_length=100)
    campaign_date = models.DateField(null=True, blank=True)
    outcome = models.CharField(max_length=32, blank=True)
    state = models.CharField(max_length=2, blank=True)

    # The outcome in words: a call's outcome, or what became of a text.
    OUTCOME_LABELS = {
        **dict(CallOutcome.choices),
        "sent": "Sent",
        "sent_with_opt_out_notice": "Sent, with the opt-out notice",
    }

    @property
    def outcome_display(self) -> str:
        if not self.outcome:
            return ""
        return self.OUTCOME_LABELS.get(self.outcome, self.outcome.replace("_", " ").capitalize())

    class Meta:
        verbose_name = "contact ledger entry"
        verbose_name_plural = "contact ledger entries"
        ordering = ["-occurred_at"]
        constraints = [models.UniqueConstraint(fields=["kind", "reference"], name="ledger_entry_once")]
        indexes = [
            models.Index(fields=["client_id", "occurred_at"], name="ledger_client_time"),
            models.Index(fields=["phone", "occurred_at"], name="ledger_phone_time"),
        ]

    def __str__(self) -> str:
        return f"{self.client_id} {self.kind} {self.occurred_at:%Y-%m-%d %H:%M}"


class Suppression(models.Model):
    class Reason(models.TextChoices):
        DO_NOT_CALL = "do_not_call", "Do not call"
        SMS_OPT_OUT = "sms_opt_out", "SMS opt-out"
        CEASE_COMMUNICATION = "cease_communication", "Cease communication"
        DISPUTE_HOLD = "dispute_hold", "Dispute hold"
        ATTORNEY = "attorney", "Represented by attorney"
        EMAIL_OPT_OUT = "email_opt_out", "E-mail unsubscribe"

    class Channel(models.TextChoices):
        CALL = "call", "Calls"
        SMS = "sms", "SMS"
        EMAIL = "email", "E-mail"
        ALL = "all", "All channels"

    client_id = models.CharField(max_length=64, blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="E.164")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    reason = models.CharField(max_length=24, choices=Reason.choices)
    source = models.CharField(max_length=100, help_text="Who or what created it (webhook, call id, staff user).")
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.CharField(max_length=100, blank=True)

    class Meta:
        verbose_name = "suppression"
        verbose_name_plural = "suppressions"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(client_id="") | ~Q(phone=""), name="suppression_targets_client_or_phone"
            ),
        ]
        indexes = [
            models.Index(fields=["client_id", "lifted_at"], name="suppression_client"),
            models.Index(fields=["phone", "lifted_at"], name="suppression_phone"),
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} ({self.get_channel_display()}) {self.client_id or self.phone}"

    @property
    def active(self) -> bool:
        return self.lifted_at is None


class GateDecision(models.Model):
    """A touchpoint the compliance gate blocked or skipped, with the rule and its inputs."""

    client_id = models.CharField(max_length=64)
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    campaign_date = models.DateField(null=True, blank=True)
    queue_item = models.ForeignKey(QueueItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="gate_decisions")
    channel = models.CharField(max_length=8)
    rule = models.CharField(max_length=64)
    detail = models.CharField(max_length=300)
    inputs = models.JSONField(default=dict)
    decided_at = models.DateTimeField()

    class Meta:
        verbose_name = "gate decision"
        verbose_name_plural = "gate decisions"
        ordering = ["-decided_at"]
        indexes = [models.Index(fields=["client_id", "decided_at"], name="gate_decision_client")]

    def __str__(self) -> str:
        return f"{self.client_id}: {self.rule}"


class FollowUpTask(models.Model):
    class Kind(models.TextChoices):
        DISPUTE = "dispute", "Dispute"
        HARDSHIP = "hardship", "Hardship"
        CANCELLATION_REQUEST = "cancellation_request", "Cancellation request"
        LEGAL_LANGUAGE = "legal_language", "Legal language"
        VULNERABLE_CUSTOMER = "vulnerable_customer", "Vulnerable customer"
        CALLBACK_REQUEST = "callback_request", "Callback request"
        BROKEN_PROMISE = "broken_promise", "Broken promise to pay"
        LOW_CONFIDENCE_MATCH = "low_confidence_match", "Low-confidence match"
        SMS_REPLY = "sms_reply", "SMS reply"
        IDENTITY_LOCKED = "identity_locked", "Identity check failed three times"
        PAYMENT_REVERSED = "payment_reversed", "Payment refunded or disputed"
        PROMISE_PARTLY_KEPT = "promise_partly_kept", "Promise partly kept"
        COMPLIANCE_EXCEPTION = "compliance_exception", "Compliance exception"
        HIGH_VALUE_CALL = "high_value_call", "High-value call ended without a person"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done"

    class RoutedBy(models.TextChoices):
        TEAM = "team", "The team of the client's phase"
        AMOUNT = "amount", "High-value amount (segment's senior owner)"
        TIER = "tier", "Tier (tier's senior owner)"
        ACCOUNT_OWNER = "account_owner", "Account owner named by the warehouse"

    class AlertMode(models.TextChoices):
        IMMEDIATE = "immediate", "At once"
        DIGEST = "digest", "In the hourly digest"

    kind = models.CharField(max_length=24, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    team = models.CharField(max_length=16, choices=Team.choices, default=Team.BILLING)
    client_id = models.CharField(max_length=64, blank=True)
    client_name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="follow_up_tasks")
    due_at = models.DateTimeField()
    detail = models.TextField(blank=True)
    # Where the task came from (call_id, message id): (kind, source_ref) is unique so replays add nothing.
    source_ref = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=clock.now, editable=False)
    resolved_at = models.DateTimeField(null=True, blank=True)

    # Who the routing rules gave the task to, and how its owner is told about it.
    owner_name = models.CharField(
        "account owner (warehouse)",
        max_length=100,
        blank=True,
        help_text="The account owner the warehouse names, kept as given when no portal user has that username or e-mail.",
    )
    routed_by = models.CharField("routed by", max_length=16, choices=RoutedBy.choices, blank=True)
    routed_at = models.DateTimeField("routed at", null=True, blank=True)
    alert_mode = models.CharField("alert", max_length=16, choices=AlertMode.choices, blank=True)
    alerted_at = models.DateTimeField("owner alerted at", null=True, blank=True)
    alert_attempts = models.PositiveSmallIntegerField("failed alert attempts", default=0)
    alert_retry_at = models.DateTimeField(
        "next alert attempt", null=True, blank=True, help_text="Not before: after a failed alert, or while one is being sent."
    )
    alert_error = models.TextField("last alert error", blank=True)

    class Meta:
        verbose_name = "follow-up task"
        verbose_name_plural = "follow-up tasks"
        ordering = ["due_at"]
        verbose_name = "follow-up task"
        constraints = [models.UniqueConstraint(fields=["kind", "source_ref"], name="follow_up_task_once")]
        indexes = [
            models.Index(fields=["status", "due_at"], name="follow_up_open"),
            # The alert sweep reads only the tasks whose owner has not been told yet.
            models.Index(fields=["created_at"], name="follow_up_alert_pending", condition=Q(alerted_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} — {self.client_name or self.client_id}"


# How soon each kind of follow-up task is due after it opens.
FOLLOW_UP_DUE: dict[str, dt.timedelta] = {
    # Legal threats and vulnerable customers need a trained person the same day.
    FollowUpTask.Kind.LEGAL_LANGUAGE: dt.timedelta(hours=4),
    FollowUpTask.Kind.VULNERABLE_CUSTOMER: dt.timedelta(hours=4),
    FollowUpTask.Kind.DISPUTE: dt.timedelta(days=1),
    FollowUpTask.Kind.CANCELLATION_REQUEST: dt.timedelta(days=1),
    FollowUpTask.Kind.HARDSHIP: dt.timedelta(days=2),
    FollowUpTask.Kind.BROKEN_PROMISE: dt.timedelta(days=1),
    FollowUpTask.Kind.LOW_CONFIDENCE_MATCH: dt.timedelta(days=1),
    # Someone failed the identity check three times on the client's account: possibly not them.
    FollowUpTask.Kind.IDENTITY_LOCKED: dt.timedelta(hours=4),
    # Money we counted went back: the balance is due again and the client may need a call.
    FollowUpTask.Kind.PAYMENT_REVERSED: dt.timedelta(days=1),
    FollowUpTask.Kind.PROMISE_PARTLY_KEPT: dt.timedelta(days=1),
    # The client asked for something outside policy: a trained person decides, the same day.
    FollowUpTask.Kind.COMPLIANCE_EXCEPTION: dt.timedelta(hours=4),
    # A high-value client talked to Grace alone: a senior person calls back the same day.
    FollowUpTask.Kind.HIGH_VALUE_CALL: dt.timedelta(hours=4),
}

# The kinds whose owner is alerted at once; every other task waits for the hourly digest.
ALERT_AT_ONCE = frozenset(
    {
        FollowUpTask.Kind.DISPUTE,
        FollowUpTask.Kind.LEGAL_LANGUAGE,
        FollowUpTask.Kind.VULNERABLE_CUSTOMER,
        FollowUpTask.Kind.COMPLIANCE_EXCEPTION,
    }
)


class NotificationTarget(models.Model):
    """Where a team's or a person's follow-up alerts go: apprise notification URLs (Slack,
    Microsoft Teams, e-mail…). The URLs carry secrets (webhook tokens, passwords), so the admin
    never shows them back, only which services they are."""

    team = models.CharField(max_length=16, choices=Team.choices, blank=True, help_text="A team's queue (tasks nobody owns yet).")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_target",
        help_text="A person (tasks they own).",
    )
    urls = models.TextField(
        "notification URLs",
        help_text="One apprise URL per line, e.g. slack://TokenA/TokenB/TokenC/#billing, msteams://…, "
        "mailtos://user:password@smtp.example.com?to=owner@example.com.",
    )
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "alert destination"
        verbose_name_plural = "alert destinations"
        ordering = ["team", "user__username"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(team="") & Q(user__isnull=False)) | (~Q(team="") & Q(user__isnull=True)),
                name="notification_target_team_or_user",
                violation_error_message="Choose either a team or a person.",
            ),
            models.UniqueConstraint(fields=["team"], condition=~Q(team=""), name="notification_target_one_per_team"),
        ]

    def __str__(self) -> str:
        return f"Team {self.get_team_display()}" if self.team else str(self.user)

    @property
    def url_list(self) -> list[str]:
        return [line.strip() for line in self.urls.splitlines() if line.strip() and not line.strip().startswith("#")]

    @property
    def services(self) -> str:
        """Which services the URLs are (their schemes), never the URLs themselves."""
        return ", ".join(sorted({url.split("://", 1)[0] for url in self.url_list})) or "none"


class TierOwner(models.Model):
    """The senior owner of one tier's clients: their follow-up tasks go to this person."""

    tier = models.CharField(max_length=32, unique=True, help_text="As the warehouse spells it (matched ignoring case).")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name="senior owner")

    class Meta:
        verbose_name = "senior owner by tier"
        verbose_name_plural = "senior owners by tier"
        ordering = ["tier"]

    def __str__(self) -> str:
        return f"{self.tier} → {self.owner}"


class PromiseToPay(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        KEPT = "kept", "Kept"
        PARTLY_KEPT = "partly_kept", "Partly kept"
        BROKEN = "broken", "Broken"

    client_id = models.CharField(max_length=64)
    client_name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    segment_name = models.CharField(max_length=64, blank=True)
    phase = models.CharField(max_length=32, blank=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    promised_date = models.DateField()
    # The campaign day of the call the promise was made on: the KPIs count it on that day.
    campaign_date = models.DateField(null=True, blank=True)
    call_id = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reminder_at = models.DateTimeField(null=True, blank=True)
    amount_recovered = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # When its date had passed and the review looked at it (a partly kept promise is reviewed
    # once: kept in full if the warehouse says the client is current, else a follow-up task).
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "promise to pay"
        verbose_name_plural = "promises to pay"
        ordering = ["promised_date"]
        indexes = [models.Index(fields=["status", "promised_date"], name="promise_due")]

    def __str__(self) -> str:
        return f"{self.client_id} promised {self.amount} by {self.promised_date}"


class Alert(models.Model):
    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.WARNING)
    source = models.CharField(max_length=32)
    message = models.TextField()
    created_at = models.DateTimeField(default=clock.now, editable=False)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "alert"
        verbose_name_plural = "alerts"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.message[:80]


class DailyKpi(models.Model):
    """One day's figures per segment and phase; survives the queue cleanup for the trends."""

    date = models.DateField()
    segment_name = models.CharField(max_length=64)
    phase = models.CharField(max_length=32)
    queued = models.PositiveIntegerField(default=0)
    calls_placed = models.PositiveIntegerField(default=0)
    answered = models.PositiveIntegerField(default=0)
    right_party_contacts = models.PositiveIntegerField(default=0)
    voicemail = models.PositiveIntegerField(default=0)
    transferred = models.PositiveIntegerField(default=0)
    no_answer = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    sms_sent = models.PositiveIntegerField(default=0)
    promises = models.PositiveIntegerField(default=0)
    promises_kept = models.PositiveIntegerField(default=0)
    amount_promised = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    amount_recovered = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    disputes = models.PositiveIntegerField(default=0)
    opt_outs = models.PositiveIntegerField(default=0)
    # Grace's live tools: calls where identity was checked, and how that ended; links texted
    # during a call; callbacks that came due, and those dialed.
    identity_checks = models.PositiveIntegerField(default=0)
    identity_verified = models.PositiveIntegerField(default=0)
    identity_failed = models.PositiveIntegerField(default=0)
    links_sent_live = models.PositiveIntegerField(default=0)
    callbacks_due = models.PositiveIntegerField(default=0)
    callbacks_kept = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "daily KPI"
        verbose_name_plural = "daily KPIs"
        ordering = ["-date", "segment_name", "phase"]
        constraints = [models.UniqueConstraint(fields=["date", "segment_name", "phase"], name="daily_kpi_once")]


class ReviewRound(models.Model):
    """The first calls of a segment after a change to its cadence steps, texts or prompts, put
    before a supervisor to judge (dialer settings: how many)."""

    segment_name = models.CharField(max_length=64)
    changed_at = models.DateTimeField(help_text="When the change was saved: calls placed from then on are reviewed.")
    change = models.TextField(help_text="What changed, in words.")
    changed_by = models.CharField(max_length=150, blank=True)
    last_change_at = models.DateTimeField(help_text="The latest change folded into this review (one editing session is one review).")
    calls_wanted = models.PositiveSmallIntegerField()
    superseded_at = models.DateTimeField(null=True, blank=True, help_text="A later change to the segment started a new review.")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["-changed_at"]
        verbose_name = "review of the first calls"
        verbose_name_plural = "reviews of the first calls"
        constraints = [models.UniqueConstraint(fields=["segment_name", "changed_at"], name="review_round_once")]

    def __str__(self) -> str:
        return f"{self.segment_name}: first {self.calls_wanted} calls after {self.changed_at:%Y-%m-%d %H:%M}"


class CallReview(models.Model):
    """One call of a review round and the supervisor's verdict on it."""

    class Verdict(models.TextChoices):
        PENDING = "pending", "Not reviewed yet"
        RIGHT = "right", "Right"
        WRONG = "wrong", "Wrong"

    round = models.ForeignKey(ReviewRound, on_delete=models.CASCADE, related_name="reviews")
    attempt = models.ForeignKey(CallAttempt, on_delete=models.CASCADE, related_name="reviews")
    verdict = models.CharField(max_length=8, choices=Verdict.choices, default=Verdict.PENDING)
    note = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["round", "attempt__placed_at"]
        verbose_name = "call review"
        verbose_name_plural = "call reviews"
        constraints = [models.UniqueConstraint(fields=["round", "attempt"], name="call_review_once")]

    def __str__(self) -> str:
        return f"{self.attempt_id}: {self.get_verdict_display()}"


class LiveToolCall(models.Model):
    """One custom-function call Grace made during a call, with the answer she was given.

    (call_id, name, args_key) is unique: Retell may send the same function call again, and the
    retry gets the stored answer instead of acting twice. `args` never holds a secret value (the
    identity answers are replaced by what kind of answer was given); `args_key` is a keyed hash.
    """

    call_id = models.CharField(max_length=100)
    name = models.CharField(max_length=40)
    args_key = models.CharField(max_length=64)
    client_id = models.CharField(max_length=64, blank=True)
    segment_name = models.CharField(max_length=64, blank=True)
    phase = models.CharField(max_length=32, blank=True)
    args = models.JSONField(default=dict, blank=True)
    result = models.CharField(max_length=32, help_text="What the call came to: verified, failed, locked, sent, refused…")
    response = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        verbose_name = "live tool call"
        verbose_name_plural = "live tool calls"
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["call_id", "name", "args_key"], name="live_tool_call_once")]
        indexes = [
            models.Index(fields=["client_id", "created_at"], name="live_tool_client"),
            models.Index(fields=["created_at", "name"], name="live_tool_day"),
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.call_id}: {self.result}"


class Callback(models.Model):
    """A call the client asked for: dialed by the release loop at its time, inside the client's
    window. The request is the client's consent to be called then, so the post-conversation
    blackout does not hold it back; suppressions and caps still do."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        DIALING = "dialing", "Dialing"
        PLACED = "placed", "Placed"
        MISSED = "missed", "Not dialed"
        CANCELLED = "cancelled", "Cancelled"

    client_id = models.CharField(max_length=64)
    client_name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=20)
    timezones = models.CharField(max_length=300, blank=True)
    state = models.CharField(max_length=2, blank=True)
    segment_name = models.CharField(max_length=64, blank=True)
    phase = models.CharField(max_length=32, blank=True)
    due_at = models.DateTimeField()
    requested_text = models.CharField(max_length=200, blank=True, help_text="The time as the client put it.")
    # The call on which the client asked: one callback per call, and the record of the consent.
    consent_call_id = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    attempt = models.ForeignKey(CallAttempt, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    dialed_at = models.DateTimeField(null=True, blank=True)
    detail = models.CharField(max_length=300, blank=True, help_text="Why it was not dialed, when it was not.")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        verbose_name = "callback"
        verbose_name_plural = "callbacks"
        ordering = ["due_at"]
        indexes = [
            models.Index(fields=["status", "due_at"], name="callback_due"),
            models.Index(fields=["client_id", "due_at"], name="callback_client"),
        ]

    def __str__(self) -> str:
        return f"Callback {self.client_id} at {self.due_at:%Y-%m-%d %H:%M}"

    @property
    def timezone_list(self) -> list[str]:
        return [z for z in self.timezones.split(",") if z]


class PayLinkCode(models.Model):
    """The short code of one `/pay/<code>/` link we sent, and what it was sent for.

    A text has room for a link of about 40 characters, not a signed token of 110: the code is
    random (10 characters, about 60 bits) plus a 6-character signature of it, so a forged or
    mistyped code is refused before any lookup, and this row says whose link it is, what for,
    from which call, and until when it works. The same claim issued again within a day reuses
    its code.
    """

    code = models.CharField(max_length=32, primary_key=True)
    client_id = models.CharField(max_length=64)
    purpose = models.CharField(max_length=16, default="balance")
    promise_id = models.BigIntegerField(null=True, blank=True)
    call_id = models.CharField(max_length=100, blank=True)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        verbose_name = "payment link code"
        verbose_name_plural = "payment link codes"
        indexes = [models.Index(fields=["client_id", "issued_at"], name="pay_link_code_client")]

    def __str__(self) -> str:
        return f"{self.code} {self.client_id} {self.purpose}"


class PaymentLink(models.Model):
    """One Checkout Session of the payment provider behind our `/pay/<token>/` link: per account and
    purpose (the balance, or one promise), replaced when it expires. Its opens are the link open
    rate's numerator, its completion the completion rate's."""

    class Purpose(models.TextChoices):
        BALANCE = "balance", "The balance due"
        PROMISE = "promise", "A promise to pay"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETE = "complete", "Paid"
        FAILED = "failed", "Payment failed"
        EXPIRED = "expired", "Expired"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="payment_links")
    client_id = models.CharField(max_length=64)
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.BALANCE)
    promise = models.ForeignKey("PromiseToPay", null=True, blank=True, on_delete=models.SET_NULL, related_name="payment_links")
    call_id = models.CharField(max_length=100, blank=True, help_text="The call the link was sent from, if any.")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="usd")
    session_id = models.CharField(max_length=255, unique=True)
    session_url = models.URLField(max_length=2000)
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    # The account's dimensions when the link was made, so the KPIs group it as it was.
    segment_name = models.CharField(max_length=64, blank=True)
    phase = models.CharField(max_length=32, blank=True)
    owner = models.CharField(max_length=100, blank=True)
    opens = models.PositiveIntegerField(default=0)
    first_opened_at = models.DateTimeField(null=True, blank=True)
    last_opened_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        verbose_name = "payment link"
        verbose_name_plural = "payment links"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["client_id", "purpose", "status"], name="payment_link_live"),
            models.Index(fields=["first_opened_at"], name="payment_link_opened"),
        ]

    def __str__(self) -> str:
        return f"{self.client_id} {self.purpose} {self.session_id}"


class Payment(models.Model):
    """Money received for an account, from the payment provider or the warehouse, once per reference."""

    class Source(models.TextChoices):
        STRIPE = "stripe", "Stripe"
        WAREHOUSE = "warehouse", "Warehouse payments query"

    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="payments")
    client_id = models.CharField(max_length=64, blank=True, help_text="As the source named it (may match no account).")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="usd")
    source = models.CharField(max_length=16, choices=Source.choices)
    # The provider's payment id (Stripe: the PaymentIntent): every source and event naming the
    # same payment names it, so it is what makes one payment count once.
    reference = models.CharField(max_length=255, unique=True)
    paid_at = models.DateTimeField()
    link = models.ForeignKey(PaymentLink, null=True, blank=True, on_delete=models.SET_NULL, related_name="payments")
    call_id = models.CharField(max_length=100, blank=True)
    promise = models.ForeignKey("PromiseToPay", null=True, blank=True, on_delete=models.SET_NULL, related_name="payments")
    segment_name = models.CharField(max_length=64, blank=True)
    phase = models.CharField(max_length=32, blank=True)
    owner = models.CharField(max_length=100, blank=True)
    days_past_due = models.PositiveSmallIntegerField(null=True, blank=True, help_text="At payment.")
    days_past_due_at_first_contact = models.PositiveSmallIntegerField(null=True, blank=True)
    balance_after = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # Money that went back: refunded (Stripe's cumulative `amount_refunded`) or held by a card
    # dispute that is open or lost. What counts as recovered is the amount less both.
    refunded_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    disputed_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    dispute_status = models.CharField(max_length=32, blank=True, help_text="Stripe's status of the card dispute, if any.")
    dispute_event_at = models.DateTimeField(null=True, blank=True, help_text="The newest dispute event applied (events may arrive out of order).")
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        verbose_name = "payment"
        verbose_name_plural = "payments"
        ordering = ["-paid_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive")]
        indexes = [
            models.Index(fields=["client_id", "paid_at"], name="payment_client_time"),
            models.Index(fields=["paid_at"], name="payment_time"),
        ]

    def __str__(self) -> str:
        return f"{self.client_id} paid {self.amount} ({self.source} {self.reference})"

    # Reference: https://docs.stripe.com/api/disputes/object (status)
    DISPUTE_STATUS_LABELS = {
        "warning_needs_response": "Inquiry, needs a response",
        "warning_under_review": "Inquiry under review",
        "warning_closed": "Inquiry closed",
        "needs_response": "Needs a response",
        "under_review": "Under review",
        "won": "Won, money returned",
        "lost": "Lost",
    }

    @property
    def dispute_status_label(self) -> str:
        return self.DISPUTE_STATUS_LABELS.get(self.dispute_status, self.dispute_status.replace("_", " ").capitalize())

    @property
    def net_amount(self) -> Decimal:
        """What the payment still recovers once refunds and open or lost disputes are taken off."""
        return max(self.amount - self.refunded_amount - self.disputed_amount, Decimal("0"))


class WarehousePaymentsQuery(models.Model):
    """The optional payments query on the warehouse (`client_id, amount, paid_at, reference`), for
    sites whose payments do not go through the payment provider. Read-only like the queue SQL."""

    singleton_key = models.PositiveSmallIntegerField(default=1, unique=True, editable=False)
    sql = models.TextField(
        blank=True,
        help_text=(
            "One SELECT returning client_id, amount, paid_at, reference and optionally provider_reference "
            "(e.g. the last two days). Empty: not polled."
        ),
    )
    poll_minutes = models.PositiveSmallIntegerField(default=5)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_rows = models.PositiveIntegerField(default=0)
    last_new = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name = "warehouse payments query"
        verbose_name_plural = "warehouse payments query"

    def __str__(self) -> str:
        return "Warehouse payments query"

    @classmethod
    def load(cls) -> WarehousePaymentsQuery:
        obj, _ = cls.objects.get_or_create(singleton_key=1)
        return obj


# --- SFTP: partners' intake files in, the reconciled file out ---------------------------------


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(settings.SFTP_SECRET_KEY.encode()).digest()))


def secret_seal(value: str) -> str:
    """A password or private key as stored: encrypted, so a database dump or a backup does not
    hand out the partners' credentials."""
    return _fernet().encrypt(value.encode()).decode() if value else ""


def secret_open(sealed: str) -> str:
    """The stored secret in clear, or "" when it was sealed with another SFTP_SECRET_KEY (it must
    then be entered again)."""
    if not sealed:
        return ""
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except InvalidToken:
        return ""


class SftpServerSettings(models.Model):
    """How to reach one SFTP server: address, account, the pinned host key, a secret kept sealed."""

    name = models.CharField(max_length=100, unique=True, help_text="A name your team recognises, e.g. “Acme Billing drop”.")
    enabled = models.BooleanField(default=True, help_text="Untick to pause this server without losing its settings.")
    host = models.CharField(max_length=255, help_text="The server's address, e.g. sftp.partner.example.com.")
    port = models.PositiveIntegerField(default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    username = models.CharField("user name", max_length=100)
    host_key = models.TextField(
        "host key",
        help_text=(
            "The server's public host key, one line as the partner gives it (e.g. “ssh-ed25519 AAAA…”), "
            "or the line for this server from `ssh-keyscan`. We only connect to a server presenting exactly this key."
        ),
    )
    password_sealed = models.TextField(blank=True, editable=False)
    private_key_sealed = models.TextField(blank=True, editable=False)
    path = models.CharField(
        "folder", max_length=500, default=".", help_text="The folder on the server, e.g. /outgoing (“.” is the account's home folder)."
    )
    last_success_at = models.DateTimeField("last worked at", null=True, blank=True)
    last_error = models.TextField("last problem", blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name

    @property
    def password(self) -> str:
        return secret_open(self.password_sealed)

    @password.setter
    def password(self, value: str) -> None:
        self.password_sealed = secret_seal(value)

    @property
    def private_key(self) -> str:
        return secret_open(self.private_key_sealed)

    @private_key.setter
    def private_key(self, value: str) -> None:
        self.private_key_sealed = secret_seal(value)

    def server(self) -> SftpServer:
        return SftpServer(
            host=self.host,
            port=self.port,
            username=self.username,
            host_key=self.host_key,
            password=self.password,
            private_key=self.private_key,
        )


class SftpSource(SftpServerSettings):
    """A partner's folder the portal polls for client CSV files to queue."""

    poll_minutes = models.PositiveSmallIntegerField(
        "check every (minutes)", default=5, validators=[MinValueValidator(1)], help_text="How often the folder is checked for new files."
    )
    last_polled_at = models.DateTimeField("last checked at", null=True, blank=True)
    # A poll in progress, so two workers never read the same folder at once (older than the
    # claim's time-to-live: the worker died, and the next poll takes over).
    poll_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "SFTP intake folder"
        verbose_name_plural = "SFTP intake folders"


class SftpDestination(SftpServerSettings):
    """A partner's folder each day's reconciled file is delivered to after the flush."""

    class Meta:
        verbose_name = "SFTP delivery folder"
        verbose_name_plural = "SFTP delivery folders"


class IntakeFile(models.Model):
    """One file found in an intake folder, by its content: the same bytes load once, whatever the
    file is called and however often it is polled or put back."""

    class Status(models.TextChoices):
        LOADING = "loading", "Loading"
        LOADED = "loaded", "Loaded"
        FAILED = "failed", "Refused"

    source = models.ForeignKey(SftpSource, null=True, blank=True, on_delete=models.SET_NULL, related_name="files", verbose_name="intake folder")
    filename = models.CharField("file name", max_length=255)
    checksum = models.CharField("SHA-256", max_length=64, unique=True)
    size = models.PositiveBigIntegerField(default=0)
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="intake_files")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LOADING)
    rows_read = models.PositiveIntegerField(default=0)
    rows_inserted = models.PositiveIntegerField("rows queued", default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    rows_no_touchpoint = models.PositiveIntegerField("rows with no touchpoint today", default=0)
    error = models.TextField("why it was refused", blank=True)
    # The result file written beside the moved file (kept here so a move interrupted by a lost
    # connection is finished on the next poll with the same result).
    result = models.TextField(blank=True)
    moved_to = models.CharField("moved to", max_length=500, blank=True)
    received_at = models.DateTimeField(default=clock.now, editable=False)
    moved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name = "intake file"
        verbose_name_plural = "intake files"

    def __str__(self) -> str:
        return self.filename


class ReconciledDelivery(models.Model):
    """One day's reconciled file on its way to one partner's delivery folder."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to send"
        SENDING = "sending", "Sending"
        RETRYING = "retrying", "Failed, will retry"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed for good"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="deliveries")
    destination = models.ForeignKey(SftpDestination, on_delete=models.CASCADE, related_name="deliveries", verbose_name="delivery folder")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField("next try at", null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)
    remote_path = models.CharField("delivered as", max_length=500, blank=True)
    error = models.TextField("last problem", blank=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    class Meta:
        ordering = ["campaign", "destination"]
        verbose_name = "reconciled file delivery"
        verbose_name_plural = "reconciled file deliveries"
        constraints = [models.UniqueConstraint(fields=["campaign", "destination"], name="reconciled_delivery_once")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="reconciled_delivery_due")]

    def __str__(self) -> str:
        return f"{self.campaign} → {self.destination}"
