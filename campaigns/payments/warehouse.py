"""The second payment source: an optional payments query on the warehouse, polled on a schedule.

For sites whose payments do not go through Stripe (or that want the ledger of record too). The
query (Admin → Warehouse payments query) returns `client_id, amount, paid_at, reference`; it is
checked and run read-only like the queue SQL (one SELECT, read-only transaction, statement
timeout). Each row goes through `payment_record`, so a reference already recorded — from an
earlier poll or from a Stripe event of the same payment — adds nothing. The query should return
recent payments only (say the last two days): every poll reads all it returns.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from campaigns.models import Payment, WarehousePaymentsQuery
from campaigns.payments import record
from integrations.http import IntegrationError
from integrations.warehouse import client as warehouse

log = logging.getLogger(__name__)

COLUMNS = ("client_id", "amount", "paid_at", "reference")


@dataclass
class PollReport:
    rows: int = 0
    new: int = 0
    known: int = 0
    rejected: int = 0
    error: str = ""


def _paid_at(value: Any) -> dt.datetime | None:
    moment: dt.datetime | None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time(12, 0))
    elif isinstance(value, str):
        moment = parse_datetime(value.strip()) or (
            dt.datetime.combine(day, dt.time(12, 0)) if (day := parse_date(value.strip())) else None
        )
        if moment is None:
            return None
    else:
        return None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _row_apply(row: dict[str, Any], *, now: dt.datetime) -> str:
    client_id = str(row.get("client_id") or "").strip()
    # A payment taken through our links is in the warehouse's ledger under its own transaction id
    # too: `provider_reference` (the payment provider's id, Stripe's PaymentIntent) makes it the
    # same payment as the webhook's, counted once.
    reference = str(row.get("provider_reference") or row.get("reference") or "").strip()
    paid_at = _paid_at(row.get("paid_at"))
    try:
        amount = Decimal(str(row.get("amount")))
    except (InvalidOperation, ValueError):
        amount = Decimal("0")
    if not reference or paid_at is None or not amount.is_finite() or amount <= 0:
        log.warning("warehouse payment row refused", extra={"client_id": client_id, "reference": reference[:80]})
        return "rejected"
    recorded = record.payment_record(
        client_id=client_id, amount=amount, reference=reference, paid_at=paid_at, source=Payment.Source.WAREHOUSE, now=now
    )
    return "new" if recorded.created else "known"


def warehouse_payments_poll(*, now: dt.datetime, force: bool = False) -> PollReport:
    """Run the stored payments query (when one is stored and its interval has passed)."""
    query = WarehousePaymentsQuery.load()
    report = PollReport()
    if not query.sql.strip():
        return report
    if not force and query.last_polled_at and now - query.last_polled_at < dt.timedelta(minutes=query.poll_minutes):
        return report
    try:
        for chunk in warehouse.iter_query(query.sql):
            for row in chunk:
                report.rows += 1
                outcome = _row_apply(row, now=now)
                setattr(report, outcome, getattr(report, outcome) + 1)
    except IntegrationError as exc:
        report.error = str(exc)[:2000]
        log.warning("warehouse payments query failed", extra={"error": report.error[:300]})
    WarehousePaymentsQuery.objects.filter(pk=query.pk).update(
        last_polled_at=now, last_rows=report.rows, last_new=report.new, last_error=report.error
    )
    log.info("warehouse payments polled", extra={"rows": report.rows, "new": report.new, "known": report.known, "rejected": report.rejected})
    return report
