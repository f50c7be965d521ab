from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import include, path
from django.views import defaults

from access.forms import ThrottledAdminAuthenticationForm


def home(request: HttpRequest) -> HttpResponse:
    return redirect("/dashboard/" if request.user.is_authenticated else "/admin/login/?next=/dashboard/")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The API's 404 is JSON like the rest of its answers (an id that no route matches, such as
    `/api/campaigns/0.5/`, never reaches DRF); every other page keeps Django's."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


handler404 = not_found

admin.site.site_header = "Billing Dialer"
admin.site.site_title = "Billing Dialer"
admin.site.index_title = "Operations"
# The admin sign-in (which the dashboard uses too) refuses password guessing.
admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("", include("campaigns.urls")),
]
# The vendor simulators exist only where SANDBOX_ENABLED is on (default: DEBUG): in production
# there is nothing under /sandbox/ to reach, whatever keys the source holds.
if settings.SANDBOX_ENABLED:
    urlpatterns.insert(2, path("sandbox/", include("integrations.sandbox.urls")))
