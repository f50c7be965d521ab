"""The unsubscribe link of every follow-up e-mail: `/email/unsubscribe/<token>/`."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.mail import followups


@csrf_exempt  # a mail client's one-click unsubscribe (RFC 8058) posts without any form token
@require_http_methods(["GET", "POST"])
@never_cache
def email_unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    client_id = followups.unsubscribe_client_id(token)
    if client_id is None:
        return render(
            request,
            "campaigns/email_unsubscribe.html",
            {"heading": "This link does not work", "message": "The unsubscribe link is damaged. Please use the link in the e-mail as it is."},
            status=404,
        )
    if request.method == "GET":
        # A link scanner following the link must not unsubscribe anyone: a person confirms.
        return render(
            request,
            "campaigns/email_unsubscribe.html",
            {"heading": "Unsubscribe from e-mails", "message": "You will get no more e-mails from us about your account.", "ask": True},
        )
    followups.email_unsubscribe(client_id=client_id, source="email-unsubscribe-link")
    return render(
        request,
        "campaigns/email_unsubscribe.html",
        {"heading": "You are unsubscribed", "message": "We will not e-mail you about your account any more."},
    )
