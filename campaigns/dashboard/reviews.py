"""The review queue of the first calls after a cadence change: supervisors mark each call right or
wrong with a note; billing managers may read it."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from campaigns import roles
from campaigns.dashboard.views import viewer_required
from campaigns.metrics import reviews
from campaigns.models import CallReview, ReviewRound
from integrations import clock


@require_GET
@viewer_required
def review_rounds(request: HttpRequest) -> HttpResponse:
    reviews.call_reviews_sync()
    return render(request, "campaigns/call_reviews.html", {"comparisons": reviews.review_comparisons(limit=50), "round": None})


@require_GET
@viewer_required
def review_round(request: HttpRequest, pk: int) -> HttpResponse:
    reviews.call_reviews_sync()
    round_ = get_object_or_404(ReviewRound, pk=pk)
    shown = request.GET.get("show", "pending")
    calls = round_.reviews.select_related("attempt", "reviewed_by").order_by("attempt__placed_at")
    if shown in (CallReview.Verdict.PENDING, CallReview.Verdict.RIGHT, CallReview.Verdict.WRONG):
        calls = calls.filter(verdict=shown)
    return render(
        request,
        "campaigns/call_reviews.html",
        {
            "round": round_,
            "comparison": reviews.review_comparison(round_),
            "calls": calls,
            "shown": shown,
            "verdicts": CallReview.Verdict,
            "can_review": roles.can_control_campaigns(request.user),
        },
    )


@require_POST
@viewer_required
def review_mark(request: HttpRequest, pk: int, review_pk: int) -> HttpResponse:
    if not roles.can_control_campaigns(request.user):
        raise PermissionDenied("Supervisors only.")
    review = get_object_or_404(CallReview, pk=review_pk, round_id=pk)
    verdict = request.POST.get("verdict", "")
    if verdict not in (CallReview.Verdict.RIGHT, CallReview.Verdict.WRONG):
        messages.error(request, "Choose right or wrong.")
        return redirect("campaigns-review-round", pk=pk)
    CallReview.objects.filter(pk=review.pk).update(
        verdict=verdict, note=request.POST.get("note", "").strip()[:2000], reviewed_by=request.user, reviewed_at=clock.now()
    )
    messages.success(request, f"Call of {review.attempt.placed_at:%b %d %H:%M} marked {CallReview.Verdict(verdict).label.lower()}.")
    shown = request.POST.get("show", "pending")
    return redirect(reverse("campaigns-review-round", args=[pk]) + "?" + urlencode({"show": shown}))
