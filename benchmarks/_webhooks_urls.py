"""The project's URLs plus `/bench/noop/`: the same middleware stack, no work — the baseline."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing_dialer.urls import urlpatterns as project_urlpatterns


@csrf_exempt
@require_POST
def noop(request: HttpRequest) -> HttpResponse:
    request.body  # read the body, as the webhook does
    return HttpResponse(status=204)


urlpatterns = [path("bench/noop/", noop, name="bench-noop"), *project_urlpatterns]
