"""Checks of the dialer's invariants over a campaign's real rows.

Used by `run_campaign` (its summary and exit status), the end-to-end tests and the fault-injection
suite. Each check is computed in SQL or one streaming pass — never trusted from a counter.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Count

from cadences.models import DialerSettings, StateCallLimit
from campaigns.models import Callback, CallAttempt, Campaign, ContactLedgerEntry, QueueItem, SmsMessage
from campaigns.compliance.gate import LEGAL_WINDOW
from campaigns.transitions import campaign_recount
from integrations.sandbox.models import SimulatedCall


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    examples: list[Any] = field(default_factory=list)


def _inside_legal_window(moment: dt.datetime, zones: list[str]) -> bool:
    """A contact with no known zone cannot be shown to be lawful, so it fails the check."""
    zones = [z for z in zones if z]
    if not zones:
        return False
    start, end = LEGAL_WINDOW
    for name in zones:
        local = moment.astimezone(ZoneInfo(name)).time()
        if not (start <= local < end):
            return False
    return True


def check_dialed_once(*, campaign: Campaign) -> Check:
    """Each release of an item dials once: attempt numbers never repeat, attempts never exceed the
    daily cap, and the vendor saw exactly as many calls per number as we recorded."""
    cap = DialerSettings.load().max_call_attempts_per_day
    # One item per client per campaign, so the client id stands for the item, also once the
    # day's flush has detached the attempts from their items. Inbound calls are not dials.
    dialed = CallAttempt.objects.filter(campaign=campaign, call_id__isnull=False).exclude(kind=CallAttempt.Kind.INBOUND)
    # A touchpoint's attempts and the callbacks a client asked for are numbered in two series.
    repeated = list(dialed.values("client_id", "kind", "attempt_number").annotate(n=Count("pk")).filter(n__gt=1)[:5])
    over_cap = list(dialed.values("client_id").annotate(n=Count("pk")).filter(n__gt=cap)[:5])
    ours = dict(dialed.values_list("to_number").annotate(n=Count("pk")))
    ids = list(dialed.values_list("call_id", flat=True))
    vendor: dict[str, int] = defaultdict(int)
    for start in range(0, len(ids), 500):
        for number, n in (
            SimulatedCall.objects.filter(call_id__in=ids[start : start + 500]).values_list("to_number").annotate(n=Count("pk"))
        ):
            vendor[number] += n
    # Calls the vendor placed for this campaign that we never recorded would be double dials.
    metadata_calls = SimulatedCall.objects.filter(metadata__campaign_id=campaign.pk).values_list("to_number").annotate(n=Count("pk"))
    for number, n in metadata_calls:
        vendor[number] = max(vendor[number], n)
    mismatched = [n for n in set(ours) | set(vendor) if ours.get(n, 0) != vendor.get(n, 0)][:5]
    ok = not repeated and not over_cap and not mismatched
    return Check(
        "no_item_dialed_twice",
        ok,
        f"{len(ids)} calls; repeated attempt numbers {len(repeated)}, items over the daily cap of {cap} {len(over_cap)}, "
        f"numbers where the vendor's count differs from ours {len(mismatched)}",
        [*repeated, *over_cap, *mismatched],
    )


def check_local_window(*, campaign: Campaign) -> Check:
    """Every call placed and every SMS sent fell inside 08:00–21:00 in every candidate zone."""
    zones_by_client = dict(QueueItem.objects.filter(campaign=campaign).values_list("client_id", "timezones"))
    bad: list[Any] = []
    calls = ContactLedgerEntry.objects.filter(
        kind=ContactLedgerEntry.Kind.CALL_ATTEMPT, campaign_date=campaign.date
    ).values_list("client_id", "occurred_at")
    checked = 0
    for client_id, occurred_at in calls.iterator(chunk_size=2000):
        checked += 1
        if not _inside_legal_window(occurred_at, (zones_by_client.get(client_id) or "").split(",")):
            bad.append({"client_id": client_id, "call_at": occurred_at.isoformat()})
    texts = SmsMessage.objects.filter(campaign=campaign, sent_at__isnull=False).values_list("client_id", "sent_at")
    for client_id, sent_at in texts.iterator(chunk_size=2000):
        if sent_at is None:  # excluded by the filter; keeps the type checker honest
            continue
        checked += 1
        if not _inside_legal_window(sent_at, (zones_by_client.get(client_id) or "").split(",")):
            bad.append({"client_id": client_id, "sms_at": sent_at.isoformat()})
    return Check("no_contact_outside_local_window", not bad, f"{checked} contacts checked, {len(bad)} outside", bad[:5])


def check_ledger_caps(*, campaign: Campaign) -> Check:
    """No client got more call attempts in 7 days than the weekly cap or its state's limit."""
    dialer = DialerSettings.load()
    limits = {s.state: s for s in StateCallLimit.objects.all()}
    day_end = dt.datetime.combine(campaign.date + dt.timedelta(days=1), dt.time.min, tzinfo=dt.timezone.utc)
    week = ContactLedgerEntry.objects.filter(
        kind=ContactLedgerEntry.Kind.CALL_ATTEMPT,
        occurred_at__gte=day_end - dt.timedelta(days=8),
        occurred_at__lt=day_end + dt.timedelta(days=1),
        client_id__in=QueueItem.objects.filter(campaign=campaign).values("client_id"),
    )
    states = dict(QueueItem.objects.filter(campaign=campaign).values_list("client_id", "state"))
    bad = []
    for client_id, n in week.values_list("client_id").annotate(n=Count("pk")):
        cap = dialer.max_calls_per_week
        limit = limits.get(states.get(client_id, ""))
        if limit is not None and limit.period_days <= 7:
            cap = min(cap, limit.max_calls)
        if n > cap:
            bad.append({"client_id": client_id, "attempts_in_7_days": n, "cap": cap})
    # The blackout: no call attempt within N days after a conversation or an inbound call (a call
    # inside N × 24 h is inside N calendar days in every zone, so this never flags a lawful call).
    blackout = dt.timedelta(days=dialer.conversation_blackout_days)
    conversations = ContactLedgerEntry.objects.filter(
        kind__in=[ContactLedgerEntry.Kind.CONVERSATION, ContactLedgerEntry.Kind.INBOUND_CALL],
        occurred_at__gte=day_end - dt.timedelta(days=8) - blackout,
        occurred_at__lt=day_end + dt.timedelta(days=1),
        client_id__in=QueueItem.objects.filter(campaign=campaign).values("client_id"),
    ).values_list("client_id", "occurred_at", "reference")
    talked: dict[str, list[tuple[dt.datetime, str]]] = defaultdict(list)
    for client_id, occurred_at, reference in conversations:
        talked[client_id].append((occurred_at, reference))
    # A callback the client asked for on a call is the client's consent to that call: the blackout
    # does not hold it (the caps still count it).
    consented = set(
        Callback.objects.filter(attempt__campaign=campaign, attempt__call_id__isnull=False).values_list("attempt__call_id", flat=True)
    )
    in_blackout = 0
    for client_id, occurred_at, reference in week.values_list("client_id", "occurred_at", "reference").iterator(chunk_size=2000):
        if reference in consented:
            continue
        for talked_at, talked_ref in talked.get(client_id, ()):
            if reference != talked_ref and talked_at < occurred_at <= talked_at + blackout:
                in_blackout += 1
                bad.append({"client_id": client_id, "call_at": occurred_at.isoformat(), "conversation_at": talked_at.isoformat()})
                break
    over = len(bad) - in_blackout
    return Check("ledger_caps_held", not bad, f"{over} clients over their cap, {in_blackout} calls inside a conversation's blackout", bad[:5])


def check_counters(*, campaign: Campaign) -> Check:
    campaign.refresh_from_db()
    recount = campaign_recount(campaign=campaign)
    differing = {k: {"counter": getattr(campaign, k), "recount": v} for k, v in recount.items() if getattr(campaign, k) != v}
    return Check("counters_equal_recount", not differing, "" if not differing else "counters differ from the items", [differing] if differing else [])


def check_cleaned_after_flush(*, campaign: Campaign, history_rows: int | None) -> Check:
    campaign.refresh_from_db()
    remaining = QueueItem.objects.filter(campaign=campaign).count()
    ok = campaign.status == Campaign.Status.FLUSHED and remaining == 0 and history_rows is not None and history_rows >= campaign.flushed_rows > 0
    return Check(
        "queue_cleaned_after_confirmed_flush",
        ok,
        f"status {campaign.status}, {remaining} items left, {campaign.flushed_rows} rows flushed, "
        f"{history_rows} rows in the warehouse for the day",
    )


def checks_before_flush(*, campaign: Campaign) -> list[Check]:
    return [
        check_dialed_once(campaign=campaign),
        check_local_window(campaign=campaign),
        check_ledger_caps(campaign=campaign),
        check_counters(campaign=campaign),
    ]


def as_dicts(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
