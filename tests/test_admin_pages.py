"""Every model registered in the admin — ours and any added later — has working pages.

For a superuser, each changelist, add page and change page answers 200 (an add page the admin
deliberately disables answers 403). Models without rows in a fresh database get one built from
their field definitions, so a newly registered model is covered without editing this file.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import uuid
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import IntegrityError, models, transaction
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
_counter = itertools.count(1)


def _value(field: models.Field, depth: int) -> Any:
    """A valid value for a required field without a default."""
    n = next(_counter)
    if field.choices:
        return field.choices[0][0]
    if isinstance(field, models.OneToOneField):
        return build_row(field.related_model, depth + 1)
    if isinstance(field, models.ForeignKey):
        # An existing row (say, a shipped cadence step) satisfies the target's own constraints.
        return field.related_model._default_manager.order_by("pk").first() or build_row(field.related_model, depth + 1)
    if isinstance(field, models.EmailField):
        return f"row{n}@example.com"
    if isinstance(field, models.URLField):
        return f"https://example.com/{n}"
    if isinstance(field, models.GenericIPAddressField):
        return "192.0.2.1"
    if isinstance(field, (models.CharField, models.TextField)):
        max_length = field.max_length or 20
        return f"r{n}"[:max_length]
    if isinstance(field, models.BooleanField):
        return False
    if isinstance(field, models.DecimalField):
        return decimal.Decimal("1")
    if isinstance(field, (models.IntegerField, models.FloatField)):
        return 1
    if isinstance(field, models.DateTimeField):
        return timezone.now()
    if isinstance(field, models.DateField):
        return dt.date(2026, 1, 5) + dt.timedelta(days=n)
    if isinstance(field, models.TimeField):
        return dt.time(12, 0)
    if isinstance(field, models.DurationField):
        return dt.timedelta(minutes=1)
    if isinstance(field, models.UUIDField):
        return uuid.uuid4()
    if isinstance(field, models.JSONField):
        return {}
    raise NotImplementedError(f"no sample value for {type(field).__name__} {field.name}")


def build_row(model: type[models.Model], depth: int = 0, *, fill_blank: bool = False) -> models.Model:
    if depth > 4:
        raise NotImplementedError(f"relation chain too deep at {model._meta.label}")
    if model is get_user_model():
        return model.objects.create_user(username=f"user{next(_counter)}")
    values: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if isinstance(field, models.AutoField) or field.has_default() or field.null:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            continue
        text = isinstance(field, (models.CharField, models.TextField))
        if field.blank and text and not field.primary_key and not fill_blank:
            continue
        values[field.name] = _value(field, depth)
    return model.objects.create(**values)


def row_for(model: type[models.Model], model_admin: admin.ModelAdmin, request: Any) -> tuple[models.Model | None, str]:
    """A row the admin shows, or why there is none."""
    queryset = model_admin.get_queryset(request)
    existing = queryset.order_by("pk").first()
    if existing is not None:
        return existing, ""
    try:
        try:
            with transaction.atomic():
                row = build_row(model)
        except IntegrityError:
            # A check constraint may want one of several optional fields (a client id or a phone).
            with transaction.atomic():
                row = build_row(model, fill_blank=True)
    except (IntegrityError, NotImplementedError, TypeError, ValueError) as exc:
        return None, f"no rows in a fresh database and none could be built from its fields ({exc})"
    # The stored primary key, not `.pk`: a proxy may redefine `pk` (DRF's TokenProxy uses the user's).
    shown = queryset.filter(pk=model._meta.pk.value_from_object(row)).first()
    if shown is None:
        return None, "no rows in a fresh database, and the row built from its fields is filtered out of its admin (a proxy)"
    return shown, ""


@pytest.fixture
def superuser_request(admin_user: Any) -> Any:
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    return request


@pytest.mark.django_db
@pytest.mark.parametrize("model, model_admin", REGISTERED, ids=[m._meta.label for m, _ in REGISTERED])
def test_admin_pages_answer_for_a_superuser(
    model: type[models.Model], model_admin: admin.ModelAdmin, admin_client: Client, superuser_request: Any
) -> None:
    info = (model._meta.app_label, model._meta.model_name)

    response = admin_client.get(reverse("admin:%s_%s_changelist" % info))
    assert response.status_code == 200, f"changelist: {response.status_code}"
    search = model_admin.get_search_fields(superuser_request)
    if search:
        response = admin_client.get(reverse("admin:%s_%s_changelist" % info), {"q": "zzz-nothing"})
        assert response.status_code == 200, "changelist search"

    response = admin_client.get(reverse("admin:%s_%s_add" % info))
    expected_add = 200 if model_admin.has_add_permission(superuser_request) else 403
    assert response.status_code == expected_add, f"add: {response.status_code}"

    row, reason = row_for(model, model_admin, superuser_request)
    if row is None:
        pytest.skip(f"change page of {model._meta.label} not checked: {reason}; its changelist and add page were")
    response = admin_client.get(reverse("admin:%s_%s_change" % info, args=[row.pk]))
    assert response.status_code == 200, f"change: {response.status_code}"


def test_every_cadences_model_is_registered() -> None:
    registered = {m._meta.label for m, _ in REGISTERED}
    cadence_models = {
        m._meta.label for m in apps.get_app_config("cadences").get_models() if not m._meta.model_name.startswith("historical")
    }
    assert cadence_models <= registered
