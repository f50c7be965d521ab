"""State of the vendor simulators, kept in the database so every web worker and every qcluster
process sees the same calls, messages and pending webhook deliveries."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

# Outcome → relative weight. The names are the simulator's outcomes (see retell.OUTCOMES).
DEFAULT_OUTCOME_WEIGHTS: dict[str, float] = {
    "answered": 30,
    "voicemail": 28,
    "transferred": 7,
    "do_not_call": 1,
    "no_answer": 20,
    "busy": 5,
    "declined": 3,
    "failed": 3,
    "error": 1,
    "concurrency_limit": 0,
    "no_valid_payment": 0,
}

# What an answered conversation produces, as independent probabilities.
DEFAULT_CONVERSATION_WEIGHTS: dict[str, float] = {
    "promise_to_pay": 0.35,
    "dispute": 0.05,
    "hardship": 0.08,
    "cancellation_request": 0.03,
    "legal_language": 0.02,
    "vulnerable_customer": 0.02,
    "callback_requested": 0.10,
    "wrong_party": 0.04,
    # Grace's live tools mid-call: clients who verify their identity, who fail it three times,
    # and who ask for the payment link (promises and callbacks use the findings above).
    "identity_verified": 0.85,
    "identity_failed": 0.08,
    "payment_link": 0.25,
    "payment_link_requested": 0.15,
    # Of the clients who promise a date, those who also ask for the link to pay now (so a
    # sandbox day shows promises kept by real money, not only promises pending).
    "promise_paid_now": 0.3,
}

# Free agents per step, cycling; each ring group starts at its own offset in the cycle.
DEFAULT_DIALFLOW_PATTERN: list[int] = [4, 6, 3, 0, 2, 5, 8, 1, 3, 0, 6, 4]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_weight_map(value: Any, known: dict[str, float], *, maximum: float | None = None) -> bool:
    return isinstance(value, dict) and all(
        key in known and _is_number(weight) and weight >= 0 and (maximum is None or weight <= maximum) for key, weight in value.items()
    )


def _is_pattern(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


def _default_outcomes() -> dict[str, float]:
    return dict(DEFAULT_OUTCOME_WEIGHTS)


def _default_conversation() -> dict[str, float]:
    return dict(DEFAULT_CONVERSATION_WEIGHTS)


def _default_pattern() -> list[int]:
    return list(DEFAULT_DIALFLOW_PATTERN)


class SimulatorConfig(models.Model):
    """The one row of simulator knobs (edit in the admin or PATCH /sandbox/config)."""

    seed = models.IntegerField(default=1, help_text="Same seed, same outcome for the same call request.")
    speed_factor = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.01), MaxValueValidator(100_000)],
        help_text="Simulated seconds per real second: 60 makes a 2-minute call last 2 real seconds.",
    )
    auto_dispatch = models.BooleanField(
        default=True, help_text="Deliver due webhooks from a background thread of the web process."
    )

    # Retell
    retell_concurrency_limit = models.PositiveSmallIntegerField(default=20, help_text="Calls at once before create-call answers 429.")
    outcome_weights = models.JSONField(default=_default_outcomes, help_text="Outcome → relative weight.")
    conversation_weights = models.JSONField(
        default=_default_conversation, help_text="For answered calls: chance of each finding in custom_analysis_data."
    )
    forced_outcomes = models.JSONField(
        default=dict, blank=True, help_text='Destination number → outcome, e.g. {"+12125550147": "voicemail"}.'
    )
    ring_seconds = models.FloatField(default=18, validators=[MinValueValidator(0)])
    talk_seconds_min = models.FloatField(default=45, validators=[MinValueValidator(0)])
    talk_seconds_max = models.FloatField(default=240, validators=[MinValueValidator(0)])
    voicemail_seconds = models.FloatField(default=32, validators=[MinValueValidator(0)])
    analysis_delay_seconds = models.FloatField(default=8, validators=[MinValueValidator(0)], help_text="call_ended → call_analyzed.")

    # Fault knobs
    create_error_rate = models.FloatField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(1)], help_text="Share of create-call requests answered 500."
    )
    duplicate_rate = models.FloatField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(1)], help_text="Share of webhooks delivered twice."
    )
    out_of_order_rate = models.FloatField(
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Share of calls whose call_analyzed arrives before call_ended.",
    )
    webhook_delay_seconds = models.FloatField(
        default=0, validators=[MinValueValidator(0)], help_text="Extra delay (real seconds) before each webhook."
    )
    webhook_jitter_seconds = models.FloatField(default=0, validators=[MinValueValidator(0)], help_text="Random extra delay, up to this.")

    # Stripe (payment links): how the sandbox clients behave with the links they are texted
    stripe_open_rate = models.FloatField(
        default=0.5, validators=[MinValueValidator(0), MaxValueValidator(1)], help_text="Share of texted payment links the client opens."
    )
    stripe_open_delay_seconds = models.FloatField(
        default=600, validators=[MinValueValidator(0)], help_text="Simulated seconds from the text to the client opening its link."
    )
    stripe_completion_rate = models.FloatField(
        default=0.6, validators=[MinValueValidator(0), MaxValueValidator(1)], help_text="Share of opened checkouts the client pays."
    )
    stripe_completion_delay_seconds = models.FloatField(
        default=90, validators=[MinValueValidator(0)], help_text="Simulated seconds on the checkout page before paying."
    )
    stripe_error_rate = models.FloatField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(1)], help_text="Share of Stripe API requests answered 500."
    )
    stripe_latency_seconds = models.FloatField(
        default=0, validators=[MinValueValidator(0)], help_text="Real seconds each Stripe API request waits before answering."
    )

    # Dialflow
    dialflow_pattern = models.JSONField(default=_default_pattern, help_text="Free agents per step, cycling.")
    dialflow_step_seconds = models.FloatField(default=30, validators=[MinValueValidator(0.001)], help_text="Simulated seconds per step.")
    dialflow_overrides = models.JSONField(default=dict, blank=True, help_text="Ring group → its own pattern.")

    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "simulator settings"
        verbose_name_plural = "simulator settings"

    def __str__(self) -> str:
        return "Simulator settings"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not _is_weight_map(self.outcome_weights, DEFAULT_OUTCOME_WEIGHTS):
            errors["outcome_weights"] = f"A JSON object of outcome → weight ≥ 0; outcomes: {', '.join(DEFAULT_OUTCOME_WEIGHTS)}."
        if not _is_weight_map(self.conversation_weights, DEFAULT_CONVERSATION_WEIGHTS, maximum=1):
            errors["conversation_weights"] = f"A JSON object of finding → chance 0–1; findings: {', '.join(DEFAULT_CONVERSATION_WEIGHTS)}."
        forced = self.forced_outcomes
        if not isinstance(forced, dict) or not all(isinstance(v, str) and v in DEFAULT_OUTCOME_WEIGHTS for v in forced.values()):
            errors["forced_outcomes"] = "A JSON object of destination number → outcome name."
        if not _is_pattern(self.dialflow_pattern):
            errors["dialflow_pattern"] = "A non-empty JSON list of whole numbers ≥ 0."
        overrides = self.dialflow_overrides
        if not isinstance(overrides, dict) or not all(_is_pattern(v) for v in overrides.values()):
            errors["dialflow_overrides"] = "A JSON object of ring group → pattern (a non-empty list of whole numbers ≥ 0)."
        if self.talk_seconds_max < self.talk_seconds_min:
            errors["talk_seconds_max"] = "Must be at least the minimum talk time."
        if errors:
            raise ValidationError(errors)

    @classmethod
    def load(cls) -> SimulatorConfig:
        obj = cls.objects.order_by("pk").first()
        if obj is None:
            obj, _created = cls.objects.get_or_create(pk=1)
        return obj


class SimulatedCall(models.Model):
    """A call the Retell simulator accepted, with its whole future decided at creation."""

    call_id = models.CharField(max_length=64, unique=True)
    idempotency_key = models.CharField(max_length=200, unique=True, null=True, blank=True)
    agent_id = models.CharField(max_length=100)
    from_number = models.CharField(max_length=32)
    to_number = models.CharField(max_length=32)
    dynamic_variables = models.JSONField(default=dict)
    metadata = models.JSONField(default=dict)
    outcome = models.CharField(max_length=32)
    connected = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(help_text="When the call ends (its concurrency slot frees up).")
    analyzed_at = models.DateTimeField()
    # The call object as it is once ended, and the post-call analysis.
    final_call = models.JSONField(default=dict)
    analysis = models.JSONField(default=dict)
    # Set when the webhook saying so was delivered, so a test driving the clock sees get-call agree.
    ended_delivered = models.BooleanField(default=False)
    analyzed_delivered = models.BooleanField(default=False)

    class Meta:
        verbose_name = "simulated call"
        verbose_name_plural = "simulated calls"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["ended_at"], name="sim_call_active")]

    def __str__(self) -> str:
        return f"{self.call_id} ({self.outcome})"


class SimulatedDelivery(models.Model):
    """One webhook the simulators will POST to the app: claimed before sending, retried on failure."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    vendor = models.CharField(max_length=16)
    event = models.CharField(max_length=40)
    reference = models.CharField(max_length=100, help_text="call_id or message id")
    payload = models.JSONField()
    due_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    is_duplicate = models.BooleanField(default=False)
    claimed_by = models.CharField(max_length=64, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "simulated delivery"
        verbose_name_plural = "simulated deliveries"
        ordering = ["due_at", "pk"]
        indexes = [models.Index(fields=["status", "due_at"], name="sim_delivery_due")]

    def __str__(self) -> str:
        return f"{self.vendor} {self.event} {self.reference} ({self.status})"


class SimulatedMessage(models.Model):
    """An SMS the HeyMarket simulator sent (outbound) or received (inbound, injected)."""

    class Direction(models.TextChoices):
        OUTBOUND = "outbound", "Outbound"
        INBOUND = "inbound", "Inbound"

    direction = models.CharField(max_length=8, choices=Direction.choices)
    local_id = models.CharField(max_length=200, unique=True, null=True, blank=True)
    inbox_id = models.CharField(max_length=64, blank=True)
    creator_id = models.CharField(max_length=64, blank=True)
    phone = models.CharField(max_length=20, help_text="E.164 digits without '+', as HeyMarket stores them.")
    text = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "simulated message"
        verbose_name_plural = "simulated messages"
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["phone", "created_at"], name="sim_message_phone")]

    def __str__(self) -> str:
        return f"{self.direction} #{self.pk}"

    def as_api(self) -> dict[str, Any]:
        return {"id": self.pk, "date": self.created_at.isoformat().replace("+00:00", "Z")}


class SimulatedContact(models.Model):
    phone = models.CharField(max_length=20, unique=True, help_text="E.164 digits without '+'.")
    unsubscribed = models.BooleanField(default=False)
    blocked = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "simulated contact"
        verbose_name_plural = "simulated contacts"

    def __str__(self) -> str:
        return self.phone

    def as_api(self) -> dict[str, Any]:
        return {"id": self.pk, "phone": self.phone, "unsubscribed": self.unsubscribed, "blocked": self.blocked}


class SimulatedCheckoutSession(models.Model):
    """A Checkout Session the Stripe simulator created; paid (or not) once the client opens it."""

    session_id = models.CharField(max_length=64, unique=True)
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    client_reference_id = models.CharField(max_length=200, blank=True)
    amount_total = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    metadata = models.JSONField(default=dict)
    success_url = models.CharField(max_length=2000, blank=True)
    cancel_url = models.CharField(max_length=2000, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)
    # Decided on the first open: whether, and when, the client pays.
    completes_at = models.DateTimeField(null=True, blank=True)
    payment_intent = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = "simulated checkout session"
        verbose_name_plural = "simulated checkout sessions"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.session_id


class SimulatedNotification(models.Model):
    """An owner alert the notification sink took instead of sending it: in sandbox mode, or when
    no notification URL was configured for its owner or team. What would have been sent, as is."""

    destination = models.CharField(max_length=200, help_text="Who it was for (a team or a person) and by which services.")
    title = models.CharField(max_length=250)
    body = models.TextField()
    tag = models.CharField(max_length=32, blank=True, help_text="immediate or digest")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "sandbox owner alert"
        verbose_name_plural = "sandbox owner alerts"

    def __str__(self) -> str:
        return self.title
