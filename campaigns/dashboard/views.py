"""The supervisor dashboard, its live status feed, campaign controls, KPIs and the client timeline.

Function views (house style): each checks the role, asks the selectors for aggregates and renders.
Reads need `view_campaign` (supervisors and billing managers); controls need `change_campaign`
(supervisors) and go through a confirmation page before the POST that acts.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations import clock
from cadences.models import Phase, Segment
from campaigns import roles, spreadsheets
from campaigns.dashboard import selectors
from campaigns.models import Account, Campaign, FollowUpTask
from campaigns.metrics import kpis
from campaigns.metrics import payments as payment_kpis
from campaigns.metrics import reviews as call_reviews
from campaigns.lifecycle import campaign as lifecycle

log = logging.getLogger(__name__)

# The browser asks for fresh figures this often (the acceptance bound is 5 s).
POLL_SECONDS = 3

View = Callable[..., HttpResponse]


def viewer_required(view: View) -> View:
    """Logged in (else the login page) and allowed to see campaigns (else 403)."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not roles.can_view_campaigns(request.user):
            raise PermissionDenied("Supervisors and billing managers only.")
        return view(request, *args, **kwargs)

    return wrapped


def _campaign_payload(status: selectors.CampaignStatus) -> dict[str, Any]:
    campaign = status.campaign
    payload = status.as_dict()
    payload["batches"] = [selectors.batch_row(batch=b, campaign=campaign) for b in selectors.recent_batches(campaign=campaign)]
    payload["end_of_day"] = selectors.end_of_day_summary(campaign=campaign)
    payload["outcome_mix"] = selectors.outcome_mix_by_hour(campaign=campaign)
    payload["funnel"] = selectors.campaign_funnel(status=status)
    return payload


def _alert_payload(alert: Any) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "level": alert.level,
        "source": alert.source,
        "message": alert.message,
        "campaign": alert.campaign.date.isoformat() if alert.campaign_id else "",
        "created_at": timezone.localtime(alert.created_at).strftime("%b %d %H:%M"),
    }


def _day(request: HttpRequest) -> dt.date | None:
    """The day asked for with ?date=YYYY-MM-DD (None: today's live view)."""
    raw = request.GET.get("date", "")
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise Http404(f"“{raw[:20]}” is not a date (YYYY-MM-DD).") from None


def _dashboard_data(day: dt.date | None = None) -> tuple[dt.date, list[dict[str, Any]], list[Any]]:
    date = day or selectors.today()
    campaigns = selectors.day_campaigns(date=date) if day is not None else selectors.dashboard_campaigns(date=date)
    cards = [_campaign_payload(selectors.campaign_status(campaign=c)) for c in campaigns]
    alerts = selectors.open_alerts(campaigns=campaigns, now=clock.now())
    return date, cards, alerts


@require_GET
@viewer_required
def dashboard(request: HttpRequest) -> HttpResponse:
    day = _day(request)
    date, cards, alerts = _dashboard_data(day)
    return render(
        request,
        "campaigns/dashboard.html",
        {
            "today": date,
            "picked_day": day,
            "generated_at": timezone.localtime(clock.now()).strftime("%H:%M:%S"),
            "time_zone": timezone.get_current_timezone_name(),
            "is_today": day is None or day == selectors.today(),
            "days": (days := selectors.campaign_dates()),
            "last_day": next((d for d in days if d < date), None),
            "cards": cards,
            "alerts": [_alert_payload(a) for a in alerts],
            "counter_labels": selectors.COUNTERS,
            "has_today": any(card["date"] == date.isoformat() for card in cards),
            "can_control": roles.can_control_campaigns(request.user),
            "poll_seconds": POLL_SECONDS,
            "controls": CONTROLS,
            "daily_start": selectors.daily_start_note(date),
        },
    )


@require_GET
@viewer_required
def dashboard_status(request: HttpRequest) -> JsonResponse:
    """What the dashboard page polls: the same figures as the page, as JSON."""
    date, cards, alerts = _dashboard_data(_day(request))
    response = JsonResponse(
        {
            "today": date.isoformat(),
            "generated_at": timezone.localtime(clock.now()).strftime("%H:%M:%S"),
            "campaigns": cards,
            "alerts": [_alert_payload(a) for a in alerts],
        }
    )
    response["Cache-Control"] = "no-store"
    return response


# --- controls -------------------------------------------------------------------------------

# action → (button label, which statuses allow it, what the confirmation page says)
CONTROLS: dict[str, dict[str, Any]] = {
    "start": {
        "label": "Start",
        "statuses": [Campaign.Status.DRAFT],
        "question": "Start the campaign? The day's queue is loaded from the warehouse and calls and texts begin.",
    },
    "pause": {
        "label": "Pause",
        "statuses": [Campaign.Status.RUNNING],
        "question": "Pause the campaign? No new calls are released until it is resumed; calls in flight finish.",
    },
    "resume": {
        "label": "Resume",
        "statuses": [Campaign.Status.PAUSED],
        "question": "Resume the campaign? Calls are released again as agents become free.",
    },
    "stop": {
        "label": "Stop",
        "statuses": [Campaign.Status.LOADING, Campaign.Status.RUNNING, Campaign.Status.PAUSED],
        "question": (
            "Stop the campaign for the day? Nothing more is called or texted; once the calls in flight "
            "report, the day's history is written to the warehouse and the queue is cleaned up. "
            "This cannot be undone."
        ),
    },
}

ACTIONS: dict[str, Callable[..., Campaign]] = {
    "start": lifecycle.campaign_start,
    "pause": lifecycle.campaign_pause,
    "resume": lifecycle.campaign_resume,
    "stop": lifecycle.campaign_stop,
}


@require_http_methods(["GET", "POST"])
@viewer_required
def campaign_control(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """GET asks for confirmation; POST (CSRF-protected) does it."""
    if action not in ACTIONS:
        raise Http404("No such campaign action.")
    if not roles.can_control_campaigns(request.user):
        raise PermissionDenied("Only supervisors control campaigns.")
    campaign = get_object_or_404(Campaign, pk=pk)
    control = CONTROLS[action]
    if request.method == "GET":
        return render(request, "campaigns/campaign_confirm.html", {"campaign": campaign, "action": action, "control": control})
    try:
        ACTIONS[action](campaign=campaign, user=request.user)
    except lifecycle.CampaignStateError as exc:
        messages.error(request, str(exc))
    else:
        log.info("campaign control", extra={"campaign_id": campaign.pk, "action": action, "user": request.user.get_username()})
        messages.success(request, f"{campaign}: {control['label'].lower()} requested — now {campaign.get_status_display().lower()}.")
    return redirect("campaigns-dashboard")


@require_POST
@viewer_required
def campaign_create_today(request: HttpRequest) -> HttpResponse:
    """Create today's campaign as a draft (starting it is a separate, confirmed step)."""
    if not roles.can_control_campaigns(request.user):
        raise PermissionDenied("Only supervisors control campaigns.")
    campaign = lifecycle.campaign_create(date=selectors.today(), user=request.user)
    messages.success(request, f"{campaign} is ready as a draft.")
    return redirect("campaigns-dashboard")


# --- KPIs -----------------------------------------------------------------------------------


@require_GET
@viewer_required
def kpis_page(request: HttpRequest) -> HttpResponse:
    segment = request.GET.get("segment", "")
    phase = request.GET.get("phase", "")
    if phase and phase not in Phase.values:
        phase = ""
    money_by = request.GET.get("by", "segment")
    if money_by not in payment_kpis.DIMENSIONS:
        money_by = "segment"
    date = selectors.today()
    tables = [
        selectors.kpis_for_day(date=date, segment=segment, phase=phase),
        selectors.kpis_for_window(until=date, days=7, segment=segment, phase=phase),
        selectors.kpis_for_window(until=date, days=30, segment=segment, phase=phase),
    ]
    return render(
        request,
        "campaigns/kpis.html",
        {
            "today": date,
            "tables": tables,
            "trend": selectors.kpi_trend(until=date, days=30, segment=segment, phase=phase),
            "rate_labels": kpis.RATE_LABELS,
            "choices": selectors.kpi_filter_choices(),
            "phase_choices": Phase.choices,
            "segment": segment,
            "phase": phase,
            "money_by": money_by,
            "money": payment_kpis.payment_kpi_windows(date=date, by=money_by),
            "money_dimensions": payment_kpis.DIMENSIONS,
            "reviews": call_reviews.review_comparisons(limit=5),
        },
    )


@require_GET
@viewer_required
def payment_kpis_csv(request: HttpRequest) -> HttpResponse:
    """The money KPIs (day, 7 and 30 days) by one dimension, as CSV."""
    by = request.GET.get("by", "segment")
    if by not in payment_kpis.DIMENSIONS:
        by = "segment"
    date = selectors.today()
    # A few dozen rows: one response, not a stream.
    response = HttpResponse(
        "".join(spreadsheets.csv_lines(payment_kpis.payment_kpi_csv_rows(date=date, by=by))), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="payment-kpis-{by}-{date.isoformat()}.csv"'
    return response


# --- the client timeline --------------------------------------------------------------------


@require_GET
@viewer_required
def client_search(request: HttpRequest) -> HttpResponse:
    """The Clients page: every account, searched, filtered and paged; a lookup that names one
    client exactly (the header's box) opens its timeline."""
    filters = selectors.AccountFilters(
        query=request.GET.get("q", "").strip()[:100],
        status=request.GET.get("status", ""),
        segment=request.GET.get("segment", ""),
        owner=request.GET.get("owner", "")[:100],
    )
    narrowed = filters.status or filters.segment or filters.owner or "page" in request.GET
    # Clients known only from the ledger or a promise (no account) are found by exact id or phone.
    matches = selectors.clients_matching(query=filters.query) if filters.query else []
    if len(matches) == 1 and not narrowed:
        return redirect("campaigns-client-timeline", client_id=matches[0]["client_id"])
    page = Paginator(selectors.accounts_list(filters=filters), selectors.WORKLIST_PAGE_SIZE).get_page(request.GET.get("page"))
    listed = {account.client_id for account in page.object_list}
    return render(
        request,
        "campaigns/client_search.html",
        {
            "query": filters.query,
            "filters": filters,
            "page": page,
            "other_matches": [m for m in matches if m["client_id"] not in listed and not narrowed],
            "statuses": Account.Status.choices,
            "segments": Segment.objects.order_by("sort_order", "name").values_list("pk", "name"),
            "owners": selectors.account_owners(),
        },
    )


@require_GET
@viewer_required
def follow_up_queue(request: HttpRequest) -> HttpResponse:
    """The follow-up tasks to work, filtered by kind, owner and overdue; each links to its client."""
    if not roles.has(request.user, roles.VIEW_FOLLOW_UP_TASKS):
        raise PermissionDenied("Whoever may read follow-up tasks only.")
    filters = selectors.FollowUpFilters(
        kind=request.GET.get("kind", ""),
        owner=request.GET.get("owner", ""),
        overdue=request.GET.get("overdue") == "1",
        status=request.GET.get("status", ""),
    )
    now = clock.now()
    page = Paginator(selectors.follow_up_queue(filters=filters, now=now), selectors.WORKLIST_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "campaigns/follow_ups.html",
        {
            "filters": filters,
            "page": page,
            "now": now,
            "kinds": FollowUpTask.Kind.choices,
            "statuses": [("", "Open or in progress"), *FollowUpTask.Status.choices, ("all", "Any status")],
            "owners": selectors.follow_up_owners(),
            "time_zone": timezone.get_current_timezone_name(),
            "can_change": roles.has(request.user, roles.CHANGE_FOLLOW_UP_TASKS),
        },
    )


@require_GET
@viewer_required
def client_timeline(request: HttpRequest, client_id: str) -> HttpResponse:
    timeline = selectors.client_timeline(client_id=client_id)
    return render(
        request,
        "campaigns/client_timeline.html",
        {"timeline": timeline, "search_url": reverse("campaigns-client-search"), "why_url": reverse("admin:campaigns_gatedecision_why") + "?" + urlencode({"client_id": client_id})},
        status=200 if timeline.found else 404,
    )
