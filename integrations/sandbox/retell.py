"""The Retell simulator: accepts calls, decides each call's future, and schedules its webhooks.

Endpoints (under /sandbox/retell, Bearer RETELL_SANDBOX_KEY): POST /v2/create-phone-call,
GET /v2/get-call/{call_id}, GET /get-concurrency — same shapes as Retell's API.

What a call does is decided when it is created, from `SimulatorConfig`: an outcome drawn from
`outcome_weights` (or forced per destination number by `forced_outcomes`), with the random
generator seeded by (seed, idempotency key) so the same request always gets the same future.

Outcomes, with the Retell fields they produce:

    outcome            call_status     disconnection_reason                        webhooks
    answered           ended           user_hangup | agent_hangup                  started, ended, analyzed
    voicemail          ended           voicemail_reached, or agent_hangup with     started, ended, analyzed
                                       call_analysis.in_voicemail=true (only the
                                       analysis tells it apart from answered)
    transferred        ended           call_transfer (+ transfer_destination)      started, ended, analyzed
    do_not_call        ended           user_requested_dnc                          started, ended, analyzed
    no_answer          not_connected   dial_no_answer                              ended, analyzed
    busy               not_connected   dial_busy                                   ended, analyzed
    declined           not_connected   user_declined                               ended, analyzed
    failed             not_connected   dial_failed | invalid_destination           ended, analyzed
    error              error           error_unknown                               ended, analyzed
    concurrency_limit  error           concurrency_limit_reached                   ended, analyzed
    no_valid_payment   error           no_valid_payment                            ended, analyzed

Webhooks are POSTed to SANDBOX_APP_URL + "/webhooks/retell/" as `{"event", "call",
"event_timestamp"}`, signed with X-Retell-Signature over the exact body: `call_started` (connected
calls only; call_status "ongoing"), `call_ended` (the ended call object, no call_analysis) and
`call_analyzed` (the same plus `call_analysis`). A non-2xx answer is retried up to 3 times.

`call_analysis` carries `call_summary`, `in_voicemail`, `user_sentiment` (Positive, Neutral,
Negative, Unknown), `call_successful` and `custom_analysis_data`. For answered calls
`custom_analysis_data` may carry, each drawn from `conversation_weights`:

    promise_to_pay_date     "YYYY-MM-DD", 2–14 days after the call (or null)
    promise_to_pay_amount   number: the amount due or part of it (or null)
    dispute                 boolean
    hardship                boolean
    cancellation_request    boolean
    legal_language          text (what was said) or false
    vulnerable_customer     boolean
    callback_requested      boolean
    callback_time           "YYYY-MM-DDTHH:MM:SS", client's local time, no offset (or null)
    right_party             boolean (false when the person was not the client)
    wrong_party             boolean
    user_requested_dnc      boolean (true for the do_not_call outcome)

Mid-call, a connected conversation with a `metadata.client_id` calls Grace's custom functions
over signed HTTP (POST SANDBOX_APP_URL + "/webhooks/retell/functions/", `{"name", "call", "args"}`),
spread over the talk time, each drawn from `conversation_weights`: `identity_verified` (the
client gives their date of birth or SSN last four — the sample warehouse's own fictional values,
`sample_identity`), `identity_failed` (three wrong answers), then for verified clients
`lookup_account`, `payment_link` (`send_payment_link`), the promise (`record_promise` with the
analysis' date and amount) and the callback (`schedule_callback("in 2 hours")`); a transferred
call asks for `transfer_brief` first.

Durations (ring, talk, voicemail, analysis delay) are in simulated seconds, divided by
`speed_factor` to get real time; the webhook delay and jitter knobs are in real seconds.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from integrations.sandbox.models import DEFAULT_CONVERSATION_WEIGHTS, SimulatedCall, SimulatedDelivery, SimulatorConfig
from integrations.warehouse.sample import sample_identity

VENDOR = "retell"
IDEMPOTENCY_WINDOW = dt.timedelta(hours=1)  # Retell honours a key for one hour
CONNECTED_STATUSES = ("answered", "voicemail", "transferred", "do_not_call")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}", re.ASCII)


@dataclass(frozen=True)
class OutcomeSpec:
    call_status: str
    reasons: tuple[str, ...]
    connected: bool


OUTCOMES: dict[str, OutcomeSpec] = {
    "answered": OutcomeSpec("ended", ("user_hangup", "agent_hangup"), True),
    "voicemail": OutcomeSpec("ended", ("voicemail_reached",), True),
    "transferred": OutcomeSpec("ended", ("call_transfer",), True),
    "do_not_call": OutcomeSpec("ended", ("user_requested_dnc",), True),
    "no_answer": OutcomeSpec("not_connected", ("dial_no_answer",), False),
    "busy": OutcomeSpec("not_connected", ("dial_busy",), False),
    "declined": OutcomeSpec("not_connected", ("user_declined",), False),
    "failed": OutcomeSpec("not_connected", ("dial_failed", "invalid_destination"), False),
    "error": OutcomeSpec("error", ("error_unknown",), False),
    "concurrency_limit": OutcomeSpec("error", ("concurrency_limit_reached",), False),
    "no_valid_payment": OutcomeSpec("error", ("no_valid_payment",), False),
}

# How long a call that never connects takes to end, in simulated seconds.
_NOT_CONNECTED_SECONDS = {"no_answer": 1.0, "busy": 0.15, "declined": 0.4, "failed": 0.1}


class Refused(Exception):
    """The simulator answers with an HTTP error instead of a call."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _real(config: SimulatorConfig, simulated_seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=max(simulated_seconds, 0.0) / max(config.speed_factor, 0.01))


def _choose_outcome(config: SimulatorConfig, rng: random.Random, to_number: str) -> str:
    forced = (config.forced_outcomes or {}).get(to_number)
    if forced in OUTCOMES:
        return str(forced)
    weights = {k: float(v) for k, v in (config.outcome_weights or {}).items() if k in OUTCOMES and float(v) > 0}
    if not weights:
        return "answered"
    names = sorted(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def validate_request(body: Any) -> dict[str, Any]:
    """The create-call body, checked the way Retell answers 400."""
    if not isinstance(body, dict):
        raise Refused(400, "request body must be a JSON object")
    for field in ("from_number", "to_number"):
        value = body.get(field)
        if not isinstance(value, str) or not _E164.fullmatch(value):
            raise Refused(400, f"{field} must be an E.164 phone number")
    if not isinstance(body.get("override_agent_id", ""), str):
        raise Refused(400, "override_agent_id must be a string")
    variables = body.get("retell_llm_dynamic_variables") or {}
    if not isinstance(variables, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
        raise Refused(400, "retell_llm_dynamic_variables must map strings to strings")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, (dict, list, str, int, float, bool)):
        raise Refused(400, "metadata must be JSON")
    key = body.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not key or len(key) > 200):
        raise Refused(400, "idempotency_key must be a non-empty string of at most 200 characters")
    return body


def call_create(*, body: Any, now: dt.datetime, fault_roll: float | None = None) -> tuple[SimulatedCall, bool]:
    """Accept (or refuse) a create-phone-call request. Returns (call, replayed)."""
    request_body = validate_request(body)
    config = SimulatorConfig.load()
    key: str | None = request_body.get("idempotency_key") or None
    if key:
        existing = SimulatedCall.objects.filter(idempotency_key=key).first()
        if existing is not None and existing.created_at >= now - IDEMPOTENCY_WINDOW:
            return existing, True
    # A 5xx fault answers before anything is recorded, so a retry with the same key is clean.
    roll = random.random() if fault_roll is None else fault_roll
    if roll < config.create_error_rate:
        raise Refused(500, "internal server error (simulated)")
    with transaction.atomic():
        # One create at a time across processes, so the concurrency limit holds.
        config = SimulatorConfig.objects.select_for_update().get(pk=config.pk)
        if key:
            existing = SimulatedCall.objects.filter(idempotency_key=key).first()
            if existing is not None and existing.created_at >= now - IDEMPOTENCY_WINDOW:
                return existing, True
            if existing is not None:  # an expired key may be used again for a new call
                SimulatedCall.objects.filter(pk=existing.pk).update(idempotency_key=None)
        active = SimulatedCall.objects.filter(ended_at__gt=now, ended_delivered=False).count()
        if active >= config.retell_concurrency_limit:
            raise Refused(429, "Concurrency limit reached, please retry later.", retry_after=1)
        call = _plan_call(config, request_body, key=key, now=now)
        call.save()
        _schedule_webhooks(config, call)
    return call, False


def _plan_call(config: SimulatorConfig, body: dict[str, Any], *, key: str | None, now: dt.datetime) -> SimulatedCall:
    call_id = "call_" + uuid.uuid4().hex
    rng = random.Random(f"{config.seed}:{key or call_id}")
    to_number = body["to_number"]
    outcome = _choose_outcome(config, rng, to_number)
    spec = OUTCOMES[outcome]
    variables: dict[str, str] = dict(body.get("retell_llm_dynamic_variables") or {})
    ring = rng.uniform(0.3, 1.0) * config.ring_seconds
    started_at = now + _real(config, ring) if spec.connected else None
    if outcome == "answered":
        talk = rng.uniform(config.talk_seconds_min, max(config.talk_seconds_min, config.talk_seconds_max))
    elif outcome == "voicemail":
        talk = config.voicemail_seconds * rng.uniform(0.8, 1.2)
    elif outcome == "transferred":
        talk = rng.uniform(30, 90)
    elif outcome == "do_not_call":
        talk = rng.uniform(15, 40)
    else:
        talk = 0.0
    if spec.connected:
        assert started_at is not None
        ended_at = started_at + _real(config, talk)
    elif outcome in _NOT_CONNECTED_SECONDS:
        ended_at = now + _real(config, config.ring_seconds * _NOT_CONNECTED_SECONDS[outcome] * rng.uniform(0.8, 1.6))
    else:
        ended_at = now + _real(config, 1.0)
    analyzed_at = ended_at + _real(config, config.analysis_delay_seconds)

    reason = rng.choice(spec.reasons)
    in_voicemail = outcome == "voicemail"
    if outcome == "voicemail" and rng.random() < 0.3:
        # Retell often ends a voicemail as an ordinary hang-up; only call_analysis says voicemail.
        reason = "agent_hangup"
    call = SimulatedCall(
        call_id=call_id,
        idempotency_key=key,
        agent_id=str(body.get("override_agent_id") or ""),
        from_number=body["from_number"],
        to_number=to_number,
        dynamic_variables=variables,
        metadata=body.get("metadata") if body.get("metadata") is not None else {},
        outcome=outcome,
        connected=spec.connected,
        created_at=now,
        started_at=started_at,
        ended_at=ended_at,
        analyzed_at=analyzed_at,
    )
    transcript_lines = _transcript(outcome, variables, rng) if spec.connected else []
    final = base_call_object(call)
    duration_ms = _ms(ended_at) - _ms(started_at) if started_at else 0
    final.update(
        {
            "call_status": spec.call_status,
            "end_timestamp": _ms(ended_at),
            "duration_ms": duration_ms,
            "disconnection_reason": reason,
            "transcript": "".join(f"{role}: {text}\n" for role, text in transcript_lines),
            "transcript_object": [{"role": role.lower(), "content": text} for role, text in transcript_lines],
            "recording_url": None,
            "call_cost": {"combined_cost": round(duration_ms / 60000 * 7.0, 4), "total_duration_seconds": round(duration_ms / 1000)},
        }
    )
    if started_at:
        final["start_timestamp"] = _ms(started_at)
    if outcome == "transferred":
        final["transfer_destination"] = variables.get("transfer_number") or None
        final["transfer_end_timestamp"] = _ms(ended_at) + int(rng.uniform(60, 600) * 1000)
    call.final_call = final
    call.analysis = _analysis(outcome, reason, in_voicemail, variables, rng, now, weights=config.conversation_weights or {})
    return call


def base_call_object(call: SimulatedCall) -> dict[str, Any]:
    return {
        "call_type": "phone_call",
        "call_id": call.call_id,
        "agent_id": call.agent_id,
        "agent_version": 1,
        "call_status": "registered",
        "from_number": call.from_number,
        "to_number": call.to_number,
        "direction": "outbound",
        "metadata": call.metadata,
        "retell_llm_dynamic_variables": call.dynamic_variables,
        "telephony_identifier": {"twilio_call_sid": "CA" + call.call_id.removeprefix("call_")},
    }


def _first_name(variables: dict[str, str]) -> str:
    return variables.get("first_name") or (variables.get("client_name") or "there").split()[0]


def _transcript(outcome: str, variables: dict[str, str], rng: random.Random) -> list[tuple[str, str]]:
    first = _first_name(variables)
    company = variables.get("company_name") or "the billing team"
    amount = variables.get("amount_due") or ""
    if outcome == "voicemail":
        return [
            ("Agent", f"Hi, this message is for {first}. This is Grace calling from {company}. "
             "Please give us a call back at your earliest convenience. Thank you, and have a great day."),
        ]
    if outcome == "do_not_call":
        return [
            ("Agent", f"Hi, may I speak with {first}? This is Grace from {company}."),
            ("User", "Please stop calling me. Take me off your list."),
            ("Agent", "I understand. I'll make sure you are not called again. Goodbye."),
        ]
    lines = [
        ("Agent", f"Hi, may I speak with {first}? This is Grace calling from {company}."),
        ("User", rng.choice(["Speaking.", "Yes, this is me.", "Sí, soy yo. Go ahead."])),
    ]
    if amount:
        lines.append(("Agent", f"Thanks, {first}. I'm calling about your account, which has a past-due balance of ${amount}."))
    else:
        lines.append(("Agent", f"Thanks, {first}. I'm calling about a payment on your account that needs attention."))
    if outcome == "transferred":
        lines += [("User", "Can I talk to someone about my options?"), ("Agent", "Of course — I'm transferring you to a specialist now.")]
    else:
        lines += [("User", "Okay, I understand."), ("Agent", "Thank you for your time today. Goodbye!")]
    return lines


def _amount(value: str | None) -> Decimal | None:
    try:
        amount = Decimal(str(value).replace("$", "").replace(",", "")) if value else None
    except InvalidOperation:
        return None
    return amount if amount is not None and amount > 0 else None


def _analysis(
    outcome: str,
    reason: str,
    in_voicemail: bool,
    variables: dict[str, str],
    rng: random.Random,
    now: dt.datetime,
    *,
    weights: dict[str, Any],
) -> dict[str, Any]:
    first = _first_name(variables)
    if outcome in ("answered", "transferred", "do_not_call"):
        custom = _conversation_findings(outcome, variables, rng, now, weights=weights)
        summary = {
            "answered": f"Grace spoke with {first} about the past-due balance.",
            "transferred": f"{first} asked to speak with a specialist and was transferred.",
            "do_not_call": f"{first} asked not to be called again.",
        }[outcome]
        if custom.get("promise_to_pay_date"):
            summary += f" {first} promised to pay on {custom['promise_to_pay_date']}."
        sentiment = "Negative" if outcome == "do_not_call" or custom.get("dispute") else rng.choice(["Positive", "Neutral", "Neutral"])
        return {
            "call_summary": summary,
            "in_voicemail": False,
            "user_sentiment": sentiment,
            "call_successful": outcome != "do_not_call",
            "custom_analysis_data": custom,
        }
    if outcome == "voicemail":
        return {
            "call_summary": f"The call reached {first}'s voicemail and Grace left a message.",
            "in_voicemail": in_voicemail,
            "user_sentiment": "Unknown",
            "call_successful": True,
            "custom_analysis_data": {},
        }
    return {
        "call_summary": f"The call did not connect ({reason}).",
        "in_voicemail": False,
        "user_sentiment": "Unknown",
        "call_successful": False,
        "custom_analysis_data": {},
    }


def _conversation_findings(
    outcome: str, variables: dict[str, str], rng: random.Random, now: dt.datetime, *, weights: dict[str, Any]
) -> dict[str, Any]:
    # Draw every finding in a fixed order so the same seed gives the same findings.
    def drawn(name: str) -> bool:
        return rng.random() < float(weights.get(name, 0) or 0)

    wrong_party = drawn("wrong_party")
    flags = {name: drawn(name) for name in ("promise_to_pay", "dispute", "hardship", "cancellation_request", "legal_language", "vulnerable_customer", "callback_requested")}
    # Drawn after the others, so adding it changed no earlier finding of a seed.
    wants_link = drawn("payment_link_requested")
    pays_promise_now = drawn("promise_paid_now")  # drawn last, for the same reason
    custom: dict[str, Any] = {
        "right_party": not wrong_party,
        "wrong_party": wrong_party,
        "promise_to_pay_date": None,
        "promise_to_pay_amount": None,
        "dispute": False,
        "hardship": False,
        "cancellation_request": False,
        "legal_language": False,
        "vulnerable_customer": False,
        "callback_requested": False,
        "callback_time": None,
        "user_requested_dnc": outcome == "do_not_call",
    }
    if wrong_party or outcome == "do_not_call":
        return custom
    if flags["promise_to_pay"] and outcome == "answered":
        custom["promise_to_pay_date"] = (now.date() + dt.timedelta(days=rng.randint(2, 14))).isoformat()
        amount = _amount(variables.get("amount_due"))
        if amount is not None:
            share = Decimal(rng.choice(["1", "1", "0.5", "0.25"]))
            custom["promise_to_pay_amount"] = float((amount * share).quantize(Decimal("0.01")))
    if flags["promise_to_pay"] and pays_promise_now:
        wants_link = True
    if wants_link and outcome == "answered" and not flags["dispute"]:
        custom["payment_link_requested"] = True
    for name in ("dispute", "hardship", "cancellation_request", "vulnerable_customer"):
        custom[name] = flags[name]
    if flags["legal_language"]:
        custom["legal_language"] = rng.choice(["I'm going to talk to my attorney about this.", "This might be a violation, I know my rights."])
    if flags["callback_requested"]:
        custom["callback_requested"] = True
        day = now.date() + dt.timedelta(days=1)
        custom["callback_time"] = dt.datetime.combine(day, dt.time(rng.randint(9, 17), rng.choice([0, 15, 30, 45]))).isoformat()
    return custom


def _payload(event: str, call_object: dict[str, Any], at: dt.datetime) -> dict[str, Any]:
    return {"event": event, "call": call_object, "event_timestamp": _ms(at)}


def call_object_for(call: SimulatedCall, event: str) -> dict[str, Any]:
    if event == "call_started":
        started = base_call_object(call)
        started.update({"call_status": "ongoing", "start_timestamp": _ms(call.started_at or call.created_at)})
        return started
    ended = dict(call.final_call)
    if event == "call_analyzed":
        ended["call_analysis"] = call.analysis
    return ended


def _schedule_webhooks(config: SimulatorConfig, call: SimulatedCall) -> None:
    rng = random.Random(f"{config.seed}:{call.call_id}:delivery")
    events: list[tuple[str, dt.datetime]] = []
    if call.connected and call.started_at:
        events.append(("call_started", call.started_at))
    events += [("call_ended", call.ended_at), ("call_analyzed", call.analyzed_at)]
    due = {event: at for event, at in events}
    if rng.random() < config.out_of_order_rate:
        # call_analyzed first, then call_ended, and call_started (if any) last of all.
        due["call_ended"], due["call_analyzed"] = due["call_analyzed"], due["call_ended"]
        if "call_started" in due:
            due["call_started"] = due["call_ended"] + dt.timedelta(milliseconds=50)
    rows = []
    for event, at in events:
        delay = dt.timedelta(seconds=config.webhook_delay_seconds + rng.uniform(0, config.webhook_jitter_seconds))
        payload = _payload(event, call_object_for(call, event), at)
        when = due[event] + delay
        rows.append(SimulatedDelivery(vendor=VENDOR, event=event, reference=call.call_id, payload=payload, due_at=when))
        if rng.random() < config.duplicate_rate:
            rows.append(
                SimulatedDelivery(
                    vendor=VENDOR, event=event, reference=call.call_id, payload=payload,
                    due_at=when + dt.timedelta(milliseconds=200), is_duplicate=True,
                )
            )
    rows += _function_deliveries(config, call)
    SimulatedDelivery.objects.bulk_create(rows)


def live_function_calls(config: SimulatorConfig, call: SimulatedCall) -> list[tuple[str, dict[str, Any]]]:
    """The custom functions Grace calls during this call, in order (none for a call that did not
    become a conversation, or one without the client id Grace's tools need)."""
    client_id = call.metadata.get("client_id") if isinstance(call.metadata, dict) else None
    if call.outcome not in ("answered", "transferred") or not client_id or not call.started_at:
        return []
    custom = (call.analysis or {}).get("custom_analysis_data") or {}
    if custom.get("wrong_party"):
        return []
    weights = {**DEFAULT_CONVERSATION_WEIGHTS, **(config.conversation_weights or {})}
    rng = random.Random(f"{config.seed}:{call.call_id}:functions")
    fails = rng.random() < float(weights.get("identity_failed", 0) or 0)
    verifies = not fails and rng.random() < float(weights.get("identity_verified", 0) or 0)
    wants_link = rng.random() < float(weights.get("payment_link", 0) or 0)
    known = sample_identity(client_id=str(client_id))
    calls: list[tuple[str, dict[str, Any]]] = []
    if fails:
        wrong_year = str(int(known["date_of_birth"][:4]) - 1)
        calls += [
            ("verify_identity", {"date_of_birth": wrong_year + known["date_of_birth"][4:]}),
            ("verify_identity", {"ssn_last4": f"{(int(known['ssn_last4']) + 1) % 10000:04d}"}),
            ("verify_identity", {"date_of_birth": "01/01/1970" if known["date_of_birth"] != "1970-01-01" else "02/02/1971"}),
        ]
    elif verifies:
        answer = {"date_of_birth": known["date_of_birth"]} if rng.random() < 0.6 else {"ssn_last4": known["ssn_last4"]}
        calls += [("verify_identity", answer), ("lookup_account", {})]
        if wants_link:
            calls.append(("send_payment_link", {}))
        if custom.get("promise_to_pay_date"):
            args: dict[str, Any] = {"date": custom["promise_to_pay_date"]}
            if custom.get("promise_to_pay_amount"):
                args["amount"] = custom["promise_to_pay_amount"]
            calls.append(("record_promise", args))
        if custom.get("callback_requested"):
            calls.append(("schedule_callback", {"time": "in 2 hours"}))
    if call.outcome == "transferred":
        calls.append(("transfer_brief", {"reason": "asked to talk about their options"}))
    return calls


def _function_deliveries(config: SimulatorConfig, call: SimulatedCall) -> list[SimulatedDelivery]:
    planned = live_function_calls(config, call)
    if not planned or call.started_at is None:
        return []
    talk = call.ended_at - call.started_at
    rows = []
    for index, (name, args) in enumerate(planned):
        at = call.started_at + talk * ((index + 1) / (len(planned) + 1))
        live = base_call_object(call)
        live.update({"call_status": "ongoing", "start_timestamp": _ms(call.started_at)})
        payload = {"name": name, "call": live, "args": args}
        rows.append(SimulatedDelivery(vendor="retell_function", event=name[:40], reference=call.call_id, payload=payload, due_at=at))
    return rows


def call_state(call: SimulatedCall, *, now: dt.datetime) -> dict[str, Any]:
    """The call object as get-call shows it at `now` (or once its webhooks went out)."""
    ended = call.ended_delivered or now >= call.ended_at
    if not ended:
        current = base_call_object(call)
        if call.started_at and now >= call.started_at:
            current.update({"call_status": "ongoing", "start_timestamp": _ms(call.started_at)})
        return current
    analyzed = call.analyzed_delivered or now >= call.analyzed_at
    return call_object_for(call, "call_analyzed" if analyzed else "call_ended")


def concurrency(*, now: dt.datetime) -> dict[str, Any]:
    config = SimulatorConfig.load()
    current = SimulatedCall.objects.filter(ended_at__gt=now, ended_delivered=False).count()
    limit = config.retell_concurrency_limit
    return {
        "current_concurrency": current,
        "concurrency_limit": limit,
        "base_concurrency": limit,
        "purchased_concurrency": 0,
        "concurrency_purchase_limit": 100,
        "remaining_purchase_limit": 100,
    }

