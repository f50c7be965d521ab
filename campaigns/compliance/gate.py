"""The compliance gate: may this client be contacted on this channel right now?

One gate for the release loop (calls) and the SMS sender. Every block names its rule, says why in
a sentence a supervisor understands, and carries the rule's inputs, so "why was this client not
called" is answered from the recorded GateDecision alone.

The rules and their exact edges (DESIGN.md invariants 4–6):

- **Local window.** The client's local time must be inside [start, end) — start inclusive, end
  exclusive, so 08:00 and 20:59 are inside and 07:59 and 21:00 are not — in *every* candidate
  time zone (a client whose location is ambiguous is reachable only when all of them allow it).
  The window is always intersected with the legal 08:00–21:00; a campaign or SMS window can only
  narrow it. Local time is computed with zoneinfo from the UTC instant, so DST days are right by
  construction. A client with no usable time zone is never contacted.
- **Weekly call cap.** At most `max_calls_per_week` (default 7) outbound call attempts in any 7
  consecutive days: the ledger's `call_attempt` entries in the rolling interval (now − 7×24 h,
  now] are counted, and a call is allowed only while that count is below the cap — the 7th
  attempt passes, the 8th is blocked.
- **State call cap.** A `StateCallLimit` for the client's state applies the same count over its
  own period (MA: 2 per 7 days) when it is stricter.
- **Conversation blackout.** No call for `conversation_blackout_days` (N, default 7) *calendar
  days in the client's local time zone* after a conversation (answered or transferred call) or
  an inbound call: the contact's local date is day 0, days 1…N are blocked, day N + 1 is the first
  callable day. Calendar days (not N × 24 h) are used because the rule is stated in days: a
  conversation at 16:00 on the 1st must not allow a call at 17:00 on the 8th. With several
  candidate zones the strictest (smallest day difference) applies.
- **Contacted inbound today.** A client whose inbound call is in the ledger today (on the local
  date of any candidate zone) is not called again that day (seed 001, "account synced").
- **Daily attempt cap.** At most `max_call_attempts_per_day` attempts per client per campaign
  day (the retry curve's bound), counted from the item and from the ledger since the campaign
  day's midnight in the portal's time zone.
- **Paid today.** A client with a payment recorded since the day's midnight (portal time zone)
  is neither called nor texted again that day (DESIGN invariant 14).
- **Suppressions.** An active suppression of the client id or the phone number that blocks the
  channel (`ledger.CHANNEL_BLOCKING_REASONS`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Count, F, Q
from django.utils import timezone

from cadences.models import DialerSettings, StateCallLimit
from campaigns.models import Callback, Campaign, ContactLedgerEntry, GateDecision, Payment, QueueItem, Suppression
from campaigns.compliance.ledger import active_suppressions_q

log = logging.getLogger(__name__)

LEGAL_WINDOW = (time(8, 0), time(21, 0))

# How far ahead next_window_open looks before giving up.
WINDOW_SEARCH_DAYS = 7

# Items per round of gate queries: two IN lists of this size stay well inside every backend's
# parameter limit (SQLite: 32,766), and a release batch (claimed in rounds of up to twice the
# batch size) is gated in one round.
GATE_CHUNK = 5000

CALL = "call"
SMS = "sms"


class Rule:
    """The rule names a Block can carry (also GateDecision.rule and QueueItem.skip_reason)."""

    OUTSIDE_LOCAL_WINDOW = "outside_local_window"
    CAMPAIGN_WINDOW = "campaign_window"
    SMS_WINDOW = "sms_window"
    UNKNOWN_TIMEZONE = "unknown_timezone"
    WEEKLY_CALL_CAP = "weekly_call_cap"
    STATE_CALL_CAP = "state_call_cap"
    CONVERSATION_BLACKOUT = "conversation_blackout"
    SUPPRESSED = "suppressed"
    CONTACTED_INBOUND_TODAY = "contacted_inbound_today"
    DAILY_ATTEMPT_CAP = "daily_attempt_cap"
    PAID = "paid"


# Each rule as a supervisor reads it (the codes stay in the API's machine fields).
RULE_LABELS: dict[str, str] = {
    Rule.OUTSIDE_LOCAL_WINDOW: "Outside the client's calling hours (08:00–21:00 local time)",
    Rule.CAMPAIGN_WINDOW: "Outside the campaign's calling window",
    Rule.SMS_WINDOW: "Outside the texting window",
    Rule.UNKNOWN_TIMEZONE: "The client's time zone is unknown",
    Rule.WEEKLY_CALL_CAP: "Seven call attempts in seven days already",
    Rule.STATE_CALL_CAP: "The state's call limit is reached",
    Rule.CONVERSATION_BLACKOUT: "A conversation in the last seven days",
    Rule.SUPPRESSED: "Suppressed (do not contact)",
    Rule.CONTACTED_INBOUND_TODAY: "The client called in today",
    Rule.DAILY_ATTEMPT_CAP: "Today's call attempts are used up",
    Rule.PAID: "The client paid today",
    # Reasons the day itself gives (not gate rules).
    "campaign_stopped": "The campaign stopped before it was reached",
    "no_outcome_before_stop": "No outcome before the campaign stopped",
    "release_interrupted": "The release was interrupted",
    "retell_rejected": "Retell refused the call",
    "sms_window_no_overlap": "No texting time fits every possible time zone",
    "sms_window_passed": "The texting window had passed",
    "ineligible": "No longer returned by the queue query",
    "unspecified": "No reason recorded",
}


def rule_label(rule: str) -> str:
    return RULE_LABELS.get(rule, rule.replace("_", " ").capitalize())


CHANNEL_LABELS = {CALL: "Call", SMS: "Text"}


def channel_label(channel: str) -> str:
    return CHANNEL_LABELS.get(channel, channel.replace("_", " ").capitalize())


def portal_time_words(moment: datetime) -> str:
    """'Dec 6, 2026 11:00 EST': an instant on the portal's clock, its zone named."""
    local = timezone.localtime(moment)
    return f"{local:%b} {local.day}, {local.year} {local:%H:%M %Z}"


def client_time_words(moment: datetime, zone_name: str) -> str:
    """'10:00 CST in America/Chicago': an instant on the client's own clock."""
    try:
        local = moment.astimezone(ZoneInfo(zone_name))
    except (ZoneInfoNotFoundError, ValueError):
        return portal_time_words(moment)
    return f"{local:%H:%M %Z} in {zone_name}"


# What each input a rule looked at is, in words (GateDecision.inputs keeps the machine form).
INPUT_LABELS: dict[str, str] = {
    "now_utc": "Checked at",
    "local_times": "The client's local time",
    "window_start": "Window opens",
    "window_end": "Window closes",
    "legal_start": "Legal hours start",
    "legal_end": "Legal hours end",
    "zones_outside": "Time zones outside the window",
    "next_window_open": "The window opens next",
    "day_end": "The campaign day ends",
    "timezones": "Time zones",
    "invalid": "Time zones not recognised",
    "suppression_id": "Suppression",
    "suppression_client_id": "Suppression's client",
    "matched_on": "Matched on",
    "attempts": "Call attempts",
    "limit": "Limit",
    "period_days": "Period (days)",
    "since": "Counted since",
    "until": "Until",
    "state": "State",
    "channel": "Channel",
    "reason": "Reason",
    "rule": "Rule",
    "paid_at": "Paid at",
    "payment_reference": "Payment reference",
}


def _value_in_words(key: str, value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_value_in_words(key, v) for v in value)
    if isinstance(value, dict):
        if key == "local_times":  # zone name → that zone's local time: read on the zone's own clock
            return "; ".join(_value_in_words(key, (zone, moment)) if isinstance(moment, str) else f"{zone}: {moment}" for zone, moment in value.items())
        return "; ".join(f"{k}: {_value_in_words(k, v)}" for k, v in value.items())
    if isinstance(value, tuple):  # (zone, ISO instant) from local_times
        zone, text = value
        try:
            return client_time_words(datetime.fromisoformat(text), zone)
        except ValueError:
            return f"{zone}: {text}"
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            if value in RULE_LABELS:
                return RULE_LABELS[value]
            return value.replace("_", " ") if value.islower() and " " not in value else value
        if moment.tzinfo is not None:
            return portal_time_words(moment)
        return value
    return str(value)


def inputs_in_words(inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """A gate decision's inputs as (label, value) pairs a supervisor reads."""
    return [(INPUT_LABELS.get(key, key.replace("_", " ").capitalize()), _value_in_words(key, value)) for key, value in inputs.items()]


# Blocks that only mean "not now": the touchpoint may still happen later the same day.
WINDOW_RULES = frozenset({Rule.OUTSIDE_LOCAL_WINDOW, Rule.CAMPAIGN_WINDOW, Rule.SMS_WINDOW})


@dataclass(frozen=True)
class Block:
    rule: str
    detail: str
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_window(self) -> bool:
        return self.rule in WINDOW_RULES


# --- Local window (pure) -------------------------------------------------------------------


def _zones(timezones: Sequence[str]) -> tuple[list[ZoneInfo], list[str]]:
    """Valid ZoneInfo objects for the names given, and the names that were not valid zones."""
    zones: list[ZoneInfo] = []
    invalid: list[str] = []
    for name in timezones:
        name = (name or "").strip()
        if not name:
            continue
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            invalid.append(name)
    return zones, invalid


def effective_window(start: time, end: time) -> tuple[time, time]:
    """The requested window intersected with the legal 08:00–21:00."""
    return max(start, LEGAL_WINDOW[0]), min(end, LEGAL_WINDOW[1])


def _fmt(t: time) -> str:
    return t.strftime("%H:%M")


def local_window_block(
    *,
    timezones: Sequence[str],
    now: datetime,
    start: time,
    end: time,
    narrow_rule: str = Rule.CAMPAIGN_WINDOW,
) -> Block | None:
    """None when local time is inside [start, end) ∩ 08:00–21:00 in every candidate zone.

    `narrow_rule` names the block when the legal window allows the contact but the narrower
    requested window does not ("campaign_window" for calls, "sms_window" for texts).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zones, invalid = _zones(timezones)
    win_start, win_end = effective_window(start, end)
    if invalid or not zones:
        return Block(
            rule=Rule.UNKNOWN_TIMEZONE,
            detail="The client's local time zone is unknown, so their local time cannot be checked.",
            inputs={"timezones": list(timezones), "invalid": invalid, "now_utc": now.astimezone(dt.timezone.utc).isoformat()},
        )
    local_times = {z.key: now.astimezone(z) for z in zones}
    outside_legal = [k for k, t in local_times.items() if not (LEGAL_WINDOW[0] <= t.time() < LEGAL_WINDOW[1])]
    outside_window = [k for k, t in local_times.items() if not (win_start <= t.time() < win_end)]
    if not outside_window:
        return None
    inputs = {
        "local_times": {k: t.isoformat() for k, t in local_times.items()},
        "window_start": _fmt(win_start),
        "window_end": _fmt(win_end),
        "legal_start": _fmt(LEGAL_WINDOW[0]),
        "legal_end": _fmt(LEGAL_WINDOW[1]),
        "zones_outside": outside_window,
    }
    first = outside_legal[0] if outside_legal else outside_window[0]
    local = local_times[first]
    if outside_legal:
        return Block(
            rule=Rule.OUTSIDE_LOCAL_WINDOW,
            detail=(
                f"Local time is {local:%H:%M} in {first}, outside the legal contact hours "
                f"{_fmt(LEGAL_WINDOW[0])}–{_fmt(LEGAL_WINDOW[1])}."
            ),
            inputs=inputs,
        )
    what = "SMS" if narrow_rule == Rule.SMS_WINDOW else "campaign calling"
    return Block(
        rule=narrow_rule,
        detail=f"Local time is {local:%H:%M} in {first}, outside the {what} window {_fmt(win_start)}–{_fmt(win_end)}.",
        inputs=inputs,
    )


def _window_starts(zone: ZoneInfo, now: datetime, start: time, days: int) -> Iterable[datetime]:
    local_today = now.astimezone(zone).date()
    for offset in range(-1, days + 2):
        day = local_today + timedelta(days=offset)
        yield datetime.combine(day, start, tzinfo=zone)


def next_window_open(*, timezones: Sequence[str], now: datetime, start: time, end: time) -> datetime | None:
    """The earliest instant ≥ now inside the window in every zone; None if none within 7 days.

    The intersection of the zones' daily windows always opens at one zone's local window start,
    so the candidates are `now` itself and each zone's window start on the coming days.
    """
    zones, invalid = _zones(timezones)
    win_start, win_end = effective_window(start, end)
    if invalid or not zones or win_start >= win_end:
        return None
    horizon = now + timedelta(days=WINDOW_SEARCH_DAYS)
    candidates = {now}
    for zone in zones:
        candidates.update(s for s in _window_starts(zone, now, win_start, WINDOW_SEARCH_DAYS) if now <= s <= horizon)
    names = [z.key for z in zones]
    for candidate in sorted(candidates):
        if local_window_block(timezones=names, now=candidate, start=win_start, end=win_end) is None:
            return candidate.astimezone(dt.timezone.utc)
    return None


# --- Calls: the whole gate, for a batch --------------------------------------------------------


def _campaign_day_start(campaign: Campaign) -> datetime:
    return datetime.combine(campaign.date, time(0, 0), tzinfo=timezone.get_current_timezone())


def _suppression_block(suppression: Suppression, *, channel: str, matched_on: str) -> Block:
    target = "client" if matched_on == "client_id" else "phone number"
    return Block(
        rule=Rule.SUPPRESSED,
        detail=(
            f"The {target} has an active {suppression.get_reason_display().lower()} suppression "
            f"({suppression.get_channel_display().lower()}) since {suppression.created_at:%Y-%m-%d}."
        ),
        inputs={
            "suppression_id": suppression.pk,
            "reason": suppression.reason,
            "channel": suppression.channel,
            "matched_on": matched_on,
            # Set when the number's suppression was made for another client or for the number alone.
            "suppression_client_id": suppression.client_id,
            "source": suppression.source,
            "created_at": suppression.created_at.isoformat(),
            "gate_channel": channel,
        },
    )


def _suppressions_by_target(items: Sequence[QueueItem], *, channel: str) -> tuple[dict[str, Suppression], dict[str, Suppression]]:
    client_ids = {i.client_id for i in items if i.client_id}
    phones = {i.phone for i in items if i.phone}
    by_client: dict[str, Suppression] = {}
    by_phone: dict[str, Suppression] = {}
    rows = Suppression.objects.filter(active_suppressions_q(channel=channel)).filter(
        Q(client_id__in=client_ids) | Q(phone__in=phones)
    ).order_by("created_at")
    for s in rows:
        if s.client_id and s.client_id in client_ids:
            by_client.setdefault(s.client_id, s)
        if s.phone and s.phone in phones:
            by_phone.setdefault(s.phone, s)
    return by_client, by_phone


def _suppression_for(item: QueueItem, by_client: dict[str, Suppression], by_phone: dict[str, Suppression], *, channel: str) -> Block | None:
    if item.client_id in by_client:
        return _suppression_block(by_client[item.client_id], channel=channel, matched_on="client_id")
    if item.phone in by_phone:
        return _suppression_block(by_phone[item.phone], channel=channel, matched_on="phone")
    return None


def _paid_since(client_ids: Iterable[str], *, since: datetime) -> dict[str, Block]:
    """A PAID block for each client with a payment at or after `since`."""
    blocks: dict[str, Block] = {}
    for client_id, reference, paid_at, amount in (
        Payment.objects.filter(client_id__in=set(client_ids), paid_at__gte=since)
        .exclude(amount__lte=F("refunded_amount") + F("disputed_amount"))  # all of it went back
        .order_by("paid_at")
        .values_list("client_id", "reference", "paid_at", "amount")
    ):
        blocks[client_id] = Block(
            rule=Rule.PAID,
            detail=f"A payment of ${amount:,.2f} arrived at {timezone.localtime(paid_at):%H:%M}; no more outreach today.",
            inputs={"payment_reference": reference, "paid_at": paid_at.isoformat()},
        )
    return blocks


def _local_dates(when: datetime, zones: Sequence[ZoneInfo]) -> list[dt.date]:
    return [when.astimezone(z).date() for z in zones]


def gate_calls(
    *, campaign: Campaign, items: Sequence[QueueItem], now: datetime, consented: Collection[int] = ()
) -> dict[int, Block | None]:
    """The gate for a batch of call items: {item id: the first Block, or None when callable}.

    A fixed number of queries per chunk of items (settings, suppressions, state limits, attempt
    counts grouped by client, recent conversations) — never one per item. Items in `consented`
    are calls the client asked for (a booked callback): the conversation blackout and the
    called-in-today rule, which protect clients from calls they did not ask for, do not hold them;
    every other rule does.
    """
    result: dict[int, Block | None] = {}
    if not items:
        return result
    dialer = DialerSettings.load()
    for offset in range(0, len(items), GATE_CHUNK):
        result.update(
            _gate_calls_chunk(
                campaign=campaign, items=items[offset : offset + GATE_CHUNK], now=now, dialer=dialer, consented=frozenset(consented)
            )
        )
    return result


def _gate_calls_chunk(
    *, campaign: Campaign, items: Sequence[QueueItem], now: datetime, dialer: DialerSettings, consented: frozenset[int] = frozenset()
) -> dict[int, Block | None]:
    client_ids = {i.client_id for i in items}
    phones = {i.phone for i in items if i.phone}
    states = {i.state.upper() for i in items if i.state}

    by_client, by_phone = _suppressions_by_target(items, channel=CALL)

    limits = {sl.state: sl for sl in StateCallLimit.objects.filter(state__in=states)} if states else {}
    periods = sorted({7, *(sl.period_days for sl in limits.values())})
    day_start = _campaign_day_start(campaign)
    oldest = min(now - timedelta(days=max(periods)), day_start)
    aggregates: dict[str, Any] = {
        f"in_{p}d": Count("pk", filter=Q(occurred_at__gt=now - timedelta(days=p), occurred_at__lte=now)) for p in periods
    }
    aggregates["today"] = Count("pk", filter=Q(occurred_at__gte=day_start, occurred_at__lte=now))
    counts = {
        row["client_id"]: row
        for row in ContactLedgerEntry.objects.filter(
            client_id__in=client_ids, kind=ContactLedgerEntry.Kind.CALL_ATTEMPT, occurred_at__gt=oldest
        )
        .values("client_id")
        .annotate(**aggregates)
    }

    # Conversations and inbound calls recent enough to matter (blackout ≥ 7 calendar days, plus
    # two days of slack for time zones), matched by client id or by phone.
    blackout_days = dialer.conversation_blackout_days
    contacts_by_client: dict[str, list[tuple[str, datetime, str]]] = defaultdict(list)
    contacts_by_phone: dict[str, list[tuple[str, datetime, str]]] = defaultdict(list)
    for kind, occurred_at, reference, c_id, phone in ContactLedgerEntry.objects.filter(
        Q(client_id__in=client_ids) | Q(phone__in=phones),
        kind__in=[ContactLedgerEntry.Kind.CONVERSATION, ContactLedgerEntry.Kind.INBOUND_CALL],
        occurred_at__gt=now - timedelta(days=blackout_days + 2),
        occurred_at__lte=now,
    ).values_list("kind", "occurred_at", "reference", "client_id", "phone"):
        contacts_by_client[c_id].append((kind, occurred_at, reference))
        if phone:
            contacts_by_phone[phone].append((kind, occurred_at, reference))

    paid = _paid_since(client_ids, since=day_start)
    result: dict[int, Block | None] = {}
    for item in items:
        if item.client_id in paid:
            result[item.pk] = paid[item.client_id]
            continue
        result[item.pk] = _gate_call_item(
            item=item,
            campaign=campaign,
            now=now,
            dialer=dialer,
            suppression=_suppression_for(item, by_client, by_phone, channel=CALL),
            counts=counts.get(item.client_id, {}),
            limit=limits.get(item.state.upper()) if item.state else None,
            contacts=[] if item.pk in consented else contacts_by_client.get(item.client_id, []) + contacts_by_phone.get(item.phone, []),
        )
    return result


def gate_callbacks(*, campaign: Campaign, callbacks: Sequence[Callback], now: datetime) -> dict[int, Block | None]:
    """The call gate for booked callbacks ({callback id: Block or None}), with the client's consent."""
    probes = [
        QueueItem(pk=c.pk, client_id=c.client_id, phone=c.phone, state=c.state, timezones=c.timezones, call_attempts=0) for c in callbacks
    ]
    blocks = gate_calls(campaign=campaign, items=probes, now=now, consented={c.pk for c in callbacks})
    # A callback booked before a payment is no longer wanted: the client paid since asking.
    since = min((c.created_at for c in callbacks), default=now)
    paid = Payment.objects.filter(client_id__in={c.client_id for c in callbacks}, paid_at__gte=since).exclude(
        amount__lte=F("refunded_amount") + F("disputed_amount")
    ).values_list(
        "client_id", "reference", "paid_at", "amount"
    )
    for client_id, reference, paid_at, amount in paid:
        for callback in callbacks:
            if callback.client_id == client_id and paid_at >= callback.created_at and blocks.get(callback.pk) is None:
                blocks[callback.pk] = Block(
                    rule=Rule.PAID,
                    detail=f"A payment of ${amount:,.2f} arrived on {timezone.localtime(paid_at):%b %d at %H:%M}, after the callback was booked.",
                    inputs={"payment_reference": reference, "paid_at": paid_at.isoformat(), "callback_booked_at": callback.created_at.isoformat()},
                )
    return blocks


def _gate_call_item(
    *,
    item: QueueItem,
    campaign: Campaign,
    now: datetime,
    dialer: DialerSettings,
    suppression: Block | None,
    counts: dict[str, Any],
    limit: StateCallLimit | None,
    contacts: list[tuple[str, datetime, str]],
) -> Block | None:
    # Order: the final reasons first (suppression, inbound, blackout, caps), the "not now" window
    # last, so an item that may never be called today is skipped with its real reason instead
    # of being held for a window that would not help.
    if suppression is not None:
        return suppression

    zone_names = item.timezone_list
    zones, _ = _zones(zone_names)
    if not zones:
        zones = [ZoneInfo(str(timezone.get_current_timezone()))]
    today = set(_local_dates(now, zones))

    inbound_today = [c for c in contacts if c[0] == ContactLedgerEntry.Kind.INBOUND_CALL and set(_local_dates(c[1], zones)) & today]
    if inbound_today:
        _, occurred_at, reference = max(inbound_today, key=lambda c: c[1])
        return Block(
            rule=Rule.CONTACTED_INBOUND_TODAY,
            detail=f"The client called in today at {occurred_at.astimezone(zones[0]):%H:%M} local time; no outbound call the same day.",
            inputs={"inbound_at": occurred_at.isoformat(), "reference": reference, "local_dates": [d.isoformat() for d in sorted(today)]},
        )

    blackout = dialer.conversation_blackout_days
    if contacts:
        kind, occurred_at, reference = max(contacts, key=lambda c: c[1])
        days_since = min((n - c).days for n, c in zip(_local_dates(now, zones), _local_dates(occurred_at, zones), strict=True))
        if days_since <= blackout:
            first_callable = occurred_at.astimezone(zones[0]).date() + timedelta(days=blackout + 1)
            return Block(
                rule=Rule.CONVERSATION_BLACKOUT,
                detail=(
                    f"Last {'inbound call' if kind == ContactLedgerEntry.Kind.INBOUND_CALL else 'conversation'} was "
                    f"{days_since} day(s) ago ({occurred_at.astimezone(zones[0]):%Y-%m-%d}); no calls for "
                    f"{blackout} days after a conversation, first callable day {first_callable:%Y-%m-%d}."
                ),
                inputs={
                    "last_contact_kind": kind,
                    "last_contact_at": occurred_at.isoformat(),
                    "reference": reference,
                    "days_since_local": days_since,
                    "blackout_days": blackout,
                    "first_callable_local_date": first_callable.isoformat(),
                    "timezones": [z.key for z in zones],
                },
            )

    week_count = int(counts.get("in_7d", 0))
    if week_count >= dialer.max_calls_per_week:
        return Block(
            rule=Rule.WEEKLY_CALL_CAP,
            detail=f"{week_count} call attempts in the last 7 days; the limit is {dialer.max_calls_per_week} in any 7 days.",
            inputs={
                "attempts": week_count,
                "limit": dialer.max_calls_per_week,
                "period_days": 7,
                "since": (now - timedelta(days=7)).isoformat(),
                "until": now.isoformat(),
            },
        )

    if limit is not None:
        state_count = int(counts.get(f"in_{limit.period_days}d", 0))
        if state_count >= limit.max_calls:
            return Block(
                rule=Rule.STATE_CALL_CAP,
                detail=(
                    f"{state_count} call attempts in the last {limit.period_days} days; {limit.state} allows "
                    f"{limit.max_calls} per {limit.period_days} days."
                ),
                inputs={
                    "state": limit.state,
                    "attempts": state_count,
                    "limit": limit.max_calls,
                    "period_days": limit.period_days,
                    "since": (now - timedelta(days=limit.period_days)).isoformat(),
                    "until": now.isoformat(),
                },
            )

    today_count = max(int(counts.get("today", 0)), item.call_attempts)
    if today_count >= dialer.max_call_attempts_per_day:
        return Block(
            rule=Rule.DAILY_ATTEMPT_CAP,
            detail=f"{today_count} call attempts today; at most {dialer.max_call_attempts_per_day} per day.",
            inputs={"attempts_today": today_count, "limit": dialer.max_call_attempts_per_day, "campaign_date": campaign.date.isoformat()},
        )

    return local_window_block(
        timezones=zone_names, now=now, start=campaign.calling_window_start, end=campaign.calling_window_end
    )


# --- SMS --------------------------------------------------------------------------------------


def gate_sms(*, items: Sequence[QueueItem], now: datetime, start: time, end: time) -> dict[int, Block | None]:
    """The gate for texts: SMS suppressions of client or phone, then the local SMS window."""
    result: dict[int, Block | None] = {}
    for offset in range(0, len(items), GATE_CHUNK):
        chunk = items[offset : offset + GATE_CHUNK]
        by_client, by_phone = _suppressions_by_target(chunk, channel=SMS)
        day_start = datetime.combine(timezone.localdate(now), time(0, 0), tzinfo=timezone.get_current_timezone())
        paid = _paid_since((i.client_id for i in chunk if i.client_id), since=day_start)
        for item in chunk:
            result[item.pk] = paid.get(item.client_id) or _suppression_for(item, by_client, by_phone, channel=SMS) or local_window_block(
                timezones=item.timezone_list, now=now, start=start, end=end, narrow_rule=Rule.SMS_WINDOW
            )
    return result


# --- Recording --------------------------------------------------------------------------------


def _decision(
    *, block: Block, client_id: str, channel: str, now: datetime, campaign: Campaign | None, item: QueueItem | None
) -> GateDecision:
    if campaign is None and item is not None:
        campaign = item.campaign
    return GateDecision(
        client_id=client_id,
        campaign=campaign,
        campaign_date=campaign.date if campaign is not None else None,
        queue_item=item,
        channel=channel,
        rule=block.rule,
        detail=block.detail[:300],
        inputs=block.inputs,
        decided_at=now,
    )


def gate_record(
    *,
    block: Block,
    client_id: str,
    channel: str,
    now: datetime,
    campaign: Campaign | None = None,
    item: QueueItem | None = None,
) -> GateDecision:
    """Store one decision (what the admin's "why was this client not called" reads)."""
    decision = _decision(block=block, client_id=client_id, channel=channel, now=now, campaign=campaign, item=item)
    decision.save()
    log.info(
        "gate blocked contact",
        extra={"client_id": client_id, "channel": channel, "rule": block.rule, "queue_item_id": item.pk if item else None},
    )
    return decision


def gate_record_many(
    *, blocks: Sequence[tuple[QueueItem, Block]], channel: str, now: datetime, campaign: Campaign
) -> list[GateDecision]:
    """Store the decisions of a whole batch in one statement."""
    decisions = [
        _decision(block=block, client_id=item.client_id, channel=channel, now=now, campaign=campaign, item=item)
        for item, block in blocks
    ]
    if decisions:
        GateDecision.objects.bulk_create(decisions, batch_size=500)
        for item, block in blocks:
            log.info(
                "gate blocked contact",
                extra={"client_id": item.client_id, "channel": channel, "rule": block.rule, "queue_item_id": item.pk},
            )
    return decisions
