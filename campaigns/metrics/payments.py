"""KPIs from real money: payments, the links behind them, promises kept, and what it cost.

Read from the durable rows (payments, payment links, promises, call attempts, texts), which the
day's flush keeps, so a day and the 7- and 30-day windows are the same SQL aggregates over a date
range, grouped by one dimension: segment, phase, owner or source.

- ``amount_recovered`` — the sum of payments received (by payment date), less what went back:
  refunds, and card disputes open or lost (``amount_reversed``).
- ``promise_kept_rate`` — promises due in the range that were kept (in full) / promises due.
- ``link_open_rate`` — payment links opened / payment links texted (texts carrying `/pay/`).
- ``link_completion_rate`` — links paid / links opened.
- ``days_overdue_improvement`` — for the payments, the average days past due at first contact,
  at payment, and the days of overdue the payment cleared (days past due at payment: the
  account is current once it is paid).
- ``cost_per_dollar_recovered`` — (call cost from Retell + texts × `settings.SMS_PRICE`) / amount
  recovered. Calls and texts count by the client's segment and owner, by their own phase (kept on
  the call and the text), and by source as the source of the client's first payment in the range
  ("" for clients who paid nothing), so every grouping's rows add up to the total.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Avg, CharField, Count, F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from cadences.models import Phase
from campaigns.models import Account, CallAttempt, Payment, PaymentLink, PromiseToPay, SmsMessage

DIMENSIONS = ("segment", "phase", "owner", "source")
PAY_LINK_MARK = "/pay/"
FIELDS = (
    "amount_recovered", "amount_reversed", "payments", "promises_due", "promises_kept", "promise_kept_rate", "links_sent", "links_opened",
    "link_open_rate", "links_completed", "link_completion_rate", "days_past_due_at_first_contact", "days_past_due_at_payment",
    "days_overdue_improvement", "cost", "cost_per_dollar_recovered",
)  # fmt: skip


def _bounds(since: dt.date, until: dt.date) -> tuple[dt.datetime, dt.datetime]:
    zone = timezone.get_current_timezone()
    return dt.datetime.combine(since, dt.time(0), tzinfo=zone), dt.datetime.combine(until + dt.timedelta(days=1), dt.time(0), tzinfo=zone)


def _account_field(name: str) -> Subquery:
    return Subquery(Account.objects.filter(client_id=OuterRef("client_id")).values(name)[:1], output_field=CharField())


def _cost_key(by: str, *, start: dt.datetime, end: dt.datetime) -> Any:
    """The grouping value of a call or a text (both have client_id and phase)."""
    if by == "phase":
        return F("phase")
    if by == "source":
        first = Payment.objects.filter(client_id=OuterRef("client_id"), paid_at__gte=start, paid_at__lt=end).order_by("paid_at", "pk")
        return Subquery(first.values("source")[:1], output_field=CharField())
    return _account_field("segment__name" if by == "segment" else "owner")


def _ratio(numerator: Any, denominator: Any) -> float | None:
    return round(float(numerator) / float(denominator), 4) if denominator else None


def payment_kpis(*, since: dt.date, until: dt.date, by: str = "segment") -> dict[str, Any]:
    """The money KPIs for [since, until], one row per value of `by`, and the total."""
    if by not in DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}")
    start, end = _bounds(since, until)
    key = {"segment": "segment_name", "phase": "phase", "owner": "owner", "source": "source"}[by]
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0))

    payments = Payment.objects.filter(paid_at__gte=start, paid_at__lt=end)
    for row in payments.values(key).annotate(
        paid=Coalesce(Sum("amount"), Decimal("0")), back=Coalesce(Sum(Least(F("refunded_amount") + F("disputed_amount"), F("amount"))), Decimal("0")),
        n=Count("pk"), dpd_first=Avg("days_past_due_at_first_contact"), dpd_paid=Avg("days_past_due"),
    ):  # fmt: skip
        target = rows[row[key] or ""]
        # A refund and a dispute of the same money take it back once: never more than was paid.
        reversed_ = row["back"]
        target.update(
            amount_recovered=row["paid"] - reversed_, amount_reversed=reversed_, payments=row["n"],
            days_past_due_at_first_contact=row["dpd_first"], days_past_due_at_payment=row["dpd_paid"],
        )  # fmt: skip

    if by != "source":  # promises and links have no payment source
        promise_key = "segment_name" if by == "segment" else ("phase" if by == "phase" else None)
        promises = PromiseToPay.objects.filter(promised_date__gte=since, promised_date__lte=until)
        grouped = promises.values(promise_key) if promise_key else promises.annotate(o=_account_field("owner")).values("o")
        for row in grouped.annotate(due=Count("pk"), kept=Count("pk", filter=Q(status=PromiseToPay.Status.KEPT))):
            target = rows[row.get(promise_key or "o") or ""]
            target.update(promises_due=row["due"], promises_kept=row["kept"])
        opened = PaymentLink.objects.filter(first_opened_at__gte=start, first_opened_at__lt=end)
        for row in opened.values(key).annotate(n=Count("pk"), paid=Count("pk", filter=Q(status=PaymentLink.Status.COMPLETE))):
            rows[row[key] or ""].update(links_opened=row["n"], links_completed=row["paid"])
        texts = SmsMessage.objects.filter(
            text__contains=PAY_LINK_MARK, sent_at__gte=start, sent_at__lt=end, status__in=[SmsMessage.Status.SENT, SmsMessage.Status.DELIVERED]
        )
        texts = texts.annotate(d=_cost_key(by, start=start, end=end))
        for row in texts.values("d").annotate(n=Count("pk")):
            rows[row["d"] or ""]["links_sent"] = row["n"]

    # What the outreach cost, grouped the same way: every call and text of the range once.
    sms_price = Decimal(str(settings.SMS_PRICE))
    all_texts = SmsMessage.objects.filter(sent_at__gte=start, sent_at__lt=end, status__in=[SmsMessage.Status.SENT, SmsMessage.Status.DELIVERED])
    for row in all_texts.annotate(d=_cost_key(by, start=start, end=end)).values("d").annotate(n=Count("pk")):
        rows[row["d"] or ""]["cost"] = Decimal(rows[row["d"] or ""]["cost"] or 0) + sms_price * row["n"]
    calls = CallAttempt.objects.filter(placed_at__gte=start, placed_at__lt=end)
    for row in calls.annotate(d=_cost_key(by, start=start, end=end)).values("d").annotate(c=Coalesce(Sum("cost"), Decimal("0"))):
        rows[row["d"] or ""]["cost"] = Decimal(rows[row["d"] or ""]["cost"] or 0) + row["c"]

    total = dict.fromkeys(FIELDS, 0)
    for values in rows.values():
        for name in ("amount_recovered", "amount_reversed", "payments", "promises_due", "promises_kept", "links_sent", "links_opened", "links_completed", "cost"):
            total[name] += values[name] or 0
    all_payments = payments.aggregate(f=Avg("days_past_due_at_first_contact"), p=Avg("days_past_due"))
    total.update(days_past_due_at_first_contact=all_payments["f"], days_past_due_at_payment=all_payments["p"])

    def finish(values: dict[str, Any]) -> dict[str, Any]:
        out = dict(values)
        out["promise_kept_rate"] = _ratio(values["promises_kept"], values["promises_due"])
        out["link_open_rate"] = _ratio(values["links_opened"], values["links_sent"])
        out["link_completion_rate"] = _ratio(values["links_completed"], values["links_opened"])
        paid_dpd = values["days_past_due_at_payment"]
        out["days_overdue_improvement"] = round(float(paid_dpd), 1) if paid_dpd is not None else None
        for name in ("days_past_due_at_first_contact", "days_past_due_at_payment"):
            out[name] = round(float(values[name]), 1) if values[name] is not None else None
        out["cost"] = str(Decimal(values["cost"] or 0).quantize(Decimal("0.01")))
        out["cost_per_dollar_recovered"] = _ratio(values["cost"], values["amount_recovered"])
        out["amount_recovered"] = str(Decimal(values["amount_recovered"] or 0).quantize(Decimal("0.01")))
        out["amount_reversed"] = str(Decimal(values["amount_reversed"] or 0).quantize(Decimal("0.01")))
        return out

    return {
        "since": since,
        "until": until,
        "by": by,
        "rows": [{by: name, "display": dimension_label(by, name), **finish(values)} for name, values in sorted(rows.items())],
        "total": finish(total),
    }


def dimension_label(by: str, name: str) -> str:
    """A grouping's value as a person reads it: a phase or a payment source in words."""
    if not name:
        return {"phase": "No phase (inbound calls, replies)", "source": "No payment (outreach only)", "owner": "No owner"}.get(by, "—")
    if by == "phase":
        return Phase(name).label if name in Phase.values else name.replace("_", " ").capitalize()
    if by == "source":
        return Payment.Source(name).label if name in Payment.Source.values else name
    return name


def payment_kpi_windows(*, date: dt.date, by: str = "segment") -> dict[str, Any]:
    """The day, the last 7 days and the last 30 days."""
    return {
        "today": payment_kpis(since=date, until=date, by=by),
        "last_7_days": payment_kpis(since=date - dt.timedelta(days=6), until=date, by=by),
        "last_30_days": payment_kpis(since=date - dt.timedelta(days=29), until=date, by=by),
    }


def payment_kpi_csv_rows(*, date: dt.date, by: str) -> list[list[object]]:
    header: list[object] = ["window", "since", "until", by, f"{by}_display", *FIELDS]
    out: list[list[object]] = [header]
    for window, table in payment_kpi_windows(date=date, by=by).items():
        for row in [*table["rows"], {by: "(all)", "display": "All", **table["total"]}]:
            out.append([window, table["since"].isoformat(), table["until"].isoformat(), row[by], row["display"], *(row[name] for name in FIELDS)])
    return out
