"""The client-facing payment pages: `/pay/<token>/` and where the provider sends them back."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from campaigns.models import Account
from campaigns.payments import checkout, links
from integrations import clock

log = logging.getLogger(__name__)

RETRY_SECONDS = 30


def _page(request: HttpRequest, *, status: int, heading: str, message: str, retry_seconds: int = 0) -> HttpResponse:
    response = render(
        request, "payments/pay_page.html", {"heading": heading, "message": message, "retry_seconds": retry_seconds}, status=status
    )
    if retry_seconds:
        response["Retry-After"] = str(retry_seconds)
    return response


@require_GET
@never_cache
def pay_link(request: HttpRequest, token: str) -> HttpResponse:
    now = clock.now()
    try:
        claim = links.payment_link_claim(token=token, now=now)
    except links.PaymentLinkError as exc:
        log.info("payment link refused", extra={"expired": exc.expired})
        if exc.expired:
            return _page(
                request, status=410, heading="This payment link has expired",
                message="Reply to our text or call us and we will send you a new one.",
            )  # fmt: skip
        return _page(request, status=404, heading="This payment link is not valid", message="Please check the link, or reply to our text for a new one.")
    try:
        opened = checkout.payment_link_open(claim=claim, now=now)
    except Account.DoesNotExist:
        return _page(request, status=404, heading="This payment link is not valid", message="Please reply to our text or call us.")
    except checkout.NothingDue:
        return _page(request, status=200, heading="Nothing to pay", message="There is no balance due on this account. Thank you!")
    except checkout.AmountUnknown:
        return _page(
            request, status=200, heading="We can't show your balance online",
            message="Please call us or reply to our text, and we will help you pay.",
        )  # fmt: skip
    except checkout.ProviderRefused:
        return _page(
            request, status=502, heading="This payment page can't be opened",
            message="Nothing was charged. We have been told and will fix it; please call us or reply to our text to pay.",
        )  # fmt: skip
    except checkout.ProviderUnavailable:
        return _page(
            request, status=503, heading="The payment page is not available right now",
            message="Nothing was charged. Please try again in a minute.", retry_seconds=RETRY_SECONDS,
        )  # fmt: skip
    return HttpResponseRedirect(opened.url)


@require_GET
def pay_thanks(request: HttpRequest) -> HttpResponse:
    return _page(request, status=200, heading="Thank you", message="Your payment is being confirmed. You will not be called about this balance again today.")


@require_GET
def pay_cancelled(request: HttpRequest) -> HttpResponse:
    return _page(request, status=200, heading="No payment was made", message="You can use the same link again whenever you are ready.")
