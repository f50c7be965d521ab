"""SMS template validation and rendering in a restricted context."""

from __future__ import annotations

from typing import Any

from django.template import Context, Engine

ALLOWED_VARIABLES = (
    "client_name",
    "first_name",
    "amount_due",
    "days_past_due",
    "payment_link",
    "suspension_date",
    "cancellation_date",
    "company_name",
)

# No loaders, no context processors, no custom tags: a template can only read the variables above.
_ENGINE = Engine(debug=False, autoescape=False, libraries={}, builtins=["django.template.defaulttags", "django.template.defaultfilters"])


def validate_template(body: str, *, phase: str) -> list[str]:
    return []


def render_template(body: str, context: dict[str, Any]) -> str:
    return _ENGINE.from_string(body).render(Context({k: context.get(k, "") for k in ALLOWED_VARIABLES}))
