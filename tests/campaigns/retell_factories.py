"""Retell webhook payloads shaped like Retell's documented call object, and signed delivery.

Reference: https://docs.retellai.com/api-references/get-call (the call object)
Reference: https://docs.retellai.com/features/webhook-overview (event envelope)
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client, TestCase
from django_q.conf import Conf
from django.utils import timezone

from cadences.models import ActionType, CadenceStep, Phase, SmsTemplate
from campaigns.models import CallAttempt, Campaign, QueueItem
from integrations.retell import client as retell
from tests.campaigns.release_factories import make_call_step, make_campaign, make_item, make_segment

WEBHOOK_URL = "/webhooks/retell/"
INBOUND_URL = "/webhooks/retell/inbound/"

TRANSCRIPT = (
    "Agent: Hi, this is Grace calling from the billing team. Am I speaking with Jordan Avery?\n"
    "User: Yes, this is Jordan.\n"
    "Agent: Thanks, Jordan. I'm calling about the payment on your account that is past due.\n"
    "User: I know, I can pay it next Friday.\n"
    "Agent: Thank you, I'll note that down and text you a secure payment link."
)


def both_step() -> CadenceStep:
    segment = make_segment()
    template, _ = SmsTemplate.objects.get_or_create(
        name="Webhook tests past due",
        defaults={"phase": Phase.PAST_DUE, "body": "Hi {{ first_name }}, your payment is past due: {{ payment_link }}"},
    )
    step, _ = CadenceStep.objects.get_or_create(
        segment=segment,
        day=21,
        defaults={
            "action_type": ActionType.BOTH,
            "phase": Phase.PAST_DUE,
            "sms_template": template,
            "voicemail_prompt": "Please call us back about your account.",
            "live_call_prompt": "Remind the client of the past-due payment and offer the payment link.",
        },
    )
    return step


def campaign_today(**fields: Any) -> Campaign:
    existing = Campaign.objects.filter(date=timezone.localdate()).first()
    return existing or make_campaign(date=timezone.localdate(), **fields)


def make_dialing_attempt(
    *,
    campaign: Campaign | None = None,
    action_type: str = ActionType.CALL,
    call_id: str | None = None,
    attempt_status: str = CallAttempt.Status.REGISTERED,
    **item_fields: Any,
) -> CallAttempt:
    """A call item the release step has dialed: status dialing, with its registered attempt."""
    campaign = campaign or campaign_today()
    step = both_step() if action_type == ActionType.BOTH else make_call_step(make_segment())
    item_fields.setdefault("status", QueueItem.Status.DIALING)
    item_fields.setdefault("call_attempts", 1)
    if action_type == ActionType.BOTH:
        item_fields.setdefault("sms_status", QueueItem.SmsStatus.PENDING)
    item = make_item(campaign, step, **item_fields)
    return CallAttempt.objects.create(
        campaign=campaign,
        queue_item=item,
        call_id=call_id if call_id is not None else f"call_{uuid.uuid4().hex}",
        from_number="+12125550100",
        to_number=item.phone,
        status=attempt_status,
    )


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def call_object(
    attempt: CallAttempt,
    *,
    call_status: str = "ended",
    disconnection_reason: str | None = "user_hangup",
    transcript: str = TRANSCRIPT,
    duration_ms: int = 95_000,
    **overrides: Any,
) -> dict[str, Any]:
    """A phone call object as Retell's get-call and webhooks send it."""
    started = timezone.now() - dt.timedelta(minutes=3)
    connected = call_status in ("ended", "ongoing")
    call: dict[str, Any] = {
        "call_type": "phone_call",
        "call_id": attempt.call_id,
        "agent_id": "agent_grace_sandbox",
        "agent_version": 4,
        "agent_name": "Grace",
        "call_status": call_status,
        "direction": "outbound",
        "from_number": attempt.from_number or "+12125550100",
        "to_number": attempt.to_number,
        "metadata": {
            "campaign_id": attempt.campaign_id,
            "queue_item_id": attempt.queue_item_id,
            "attempt_id": str(attempt.pk),
        },
        "retell_llm_dynamic_variables": {
            "client_name": "Jordan Avery",
            "amount_due": "123.45",
            "days_past_due": "20",
            "transfer_number": "+12125550188",
        },
        "data_storage_setting": "everything",
        "opt_in_signed_url": False,
        "start_timestamp": _ms(started),
        "latency": {"e2e": {"p50": 820.0, "p90": 1150.0, "p99": 1400.0, "max": 1520.0, "min": 640.0, "num": 9}},
    }
    if call_status != "registered":
        call.update(
            end_timestamp=_ms(started + dt.timedelta(milliseconds=duration_ms if connected else 0)),
            duration_ms=duration_ms if connected else 0,
            disconnection_reason=disconnection_reason,
            call_cost={
                "product_costs": [
                    {"product": "retell_platform", "unit_price": 0.1167, "cost": 11.09},
                    {"product": "elevenlabs_tts", "unit_price": 0.0117, "cost": 1.11},
                ],
                "total_duration_seconds": duration_ms // 1000 if connected else 0,
                "total_duration_unit_price": 0.1284,
                "combined_cost": 12.2,
            },
        )
        if connected:
            call.update(
                transcript=transcript,
                transcript_object=[
                    {"role": "agent" if line.startswith("Agent") else "user", "content": line.split(": ", 1)[1], "words": []}
                    for line in transcript.splitlines()
                ],
                recording_url=f"https://dxc03zgurdly9.cloudfront.net/{attempt.call_id}/recording.wav",
                public_log_url=f"https://dxc03zgurdly9.cloudfront.net/{attempt.call_id}/public.log",
            )
    if disconnection_reason is None:
        call.pop("disconnection_reason", None)
    call.update(overrides)
    return call


def inbound_call_object(call_id: str, *, caller: str, agent_number: str, **fields: Any) -> dict[str, Any]:
    """An inbound call's object: the client calls our agent's number; no metadata of ours."""
    call_ref = SimpleNamespace(
        call_id=call_id, from_number=caller, to_number=agent_number, campaign_id=None, queue_item_id=None, pk=None
    )
    call = call_object(call_ref, direction="inbound", **fields)  # type: ignore[arg-type]
    call.pop("metadata")
    call.pop("retell_llm_dynamic_variables")
    return call


def call_analysis(
    *,
    in_voicemail: bool = False,
    sentiment: str = "Positive",
    summary: str = "The client confirmed their identity and discussed the past-due payment.",
    custom: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "call_summary": summary,
        "in_voicemail": in_voicemail,
        "user_sentiment": sentiment,
        "call_successful": not in_voicemail,
        "custom_analysis_data": custom if custom is not None else {},
    }


def event(name: str, call: dict[str, Any], **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"event": name, "call": call}
    payload.update(extra)
    return payload


def ended(attempt: CallAttempt, **call: Any) -> dict[str, Any]:
    return event("call_ended", call_object(attempt, **call))


def analyzed(attempt: CallAttempt, *, analysis: dict[str, Any] | None = None, **call: Any) -> dict[str, Any]:
    body = call_object(attempt, **call)
    body["call_analysis"] = analysis if analysis is not None else call_analysis()
    return event("call_analyzed", body)


def signed_headers(body: str, *, timestamp_ms: int | None = None, api_key: str | None = None) -> dict[str, str]:
    signature = retell.sign(
        body,
        api_key=api_key if api_key is not None else retell.webhook_key(),
        timestamp_ms=timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
    )
    return {"HTTP_X_RETELL_SIGNATURE": signature}


@pytest.fixture
def retell_tasks_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """django-q tasks run in-process (the webhook's processing task included)."""
    monkeypatch.setattr(Conf, "SYNC", True)


def post_signed(
    client: Client,
    payload: dict[str, Any] | str,
    *,
    url: str = WEBHOOK_URL,
    timestamp_ms: int | None = None,
    api_key: str | None = None,
) -> Any:
    """POST as Retell does; the processing task enqueued on commit runs before this returns."""
    # Retell sends UTF-8 JSON without ASCII escaping; the signature is over exactly these bytes.
    body = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    # The test's transaction never commits: run the on-commit enqueue as a commit would.
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(
            url,
            data=body.encode("utf-8"),
            content_type="application/json",
            **signed_headers(body, timestamp_ms=timestamp_ms, api_key=api_key),
        )


