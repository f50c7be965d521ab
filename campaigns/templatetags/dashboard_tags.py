"""Formatting for the dashboard pages: rates, amounts, vendor names, and the optional chart library."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.templatetags.static import static
from django.utils.html import format_html

from cadences.templating import format_money

register = template.Library()

# Fetched at setup (Makefile) into static/vendor/, never committed and never from a CDN.
CHART_LIBRARY = "vendor/chart.js/chart.umd.min.js"

VENDOR_NAMES = {"retell": "Retell", "heymarket": "HeyMarket", "dialflow": "Dialflow", "warehouse": "Warehouse"}


@register.filter
def percent(value: float | None, digits: int = 1) -> str:
    """0.1234 → "12.3 %"; None (no denominator) → "—"."""
    if value is None:
        return "—"
    return f"{value * 100:.{int(digits)}f} %"


@register.filter
def money(value: Decimal | int | str | None) -> str:
    if value is None or value == "":
        return "—"
    return format_money(Decimal(value))


# The timeline's badge for each kind of event, in words.
EVENT_KIND_LABELS = {
    "live_tool": "Grace's tool", "inbound_call": "inbound call", "suppression_lifted": "suppression", "gate": "not called",
    "ledger": "contact", "sms": "text",
}  # fmt: skip


@register.filter
def event_kind_label(kind: str) -> str:
    return EVENT_KIND_LABELS.get(kind, kind.replace("_", " "))


@register.filter
def per_dollar(value: float | Decimal | None) -> str:
    """What one dollar recovered cost: 0.0123 → "$0.0123" (to the hundredth of a cent); None → "—"."""
    if value is None or value == "":
        return "—"
    return f"${Decimal(str(value)):,.4f}"


@register.filter
def get_item(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key, "") if isinstance(mapping, dict) else ""


@register.filter
def vendor_names(vendors: list[str]) -> str:
    return ", ".join(VENDOR_NAMES.get(v, v) for v in vendors)


@register.filter
def seconds(duration_ms: int | None) -> str:
    if duration_ms is None:
        return "—"
    minutes, secs = divmod(round(duration_ms / 1000), 60)
    return f"{minutes}:{secs:02d}"


@register.filter
def analysis_words(value: Any) -> list[tuple[str, str]]:
    """A call's analysis fields as (label, value) pairs a person reads: 'Promise to pay date: 2025-06-13'."""
    if not isinstance(value, dict):
        return []

    def words(item: Any) -> str:
        if item is None or item == "":
            return "—"
        if isinstance(item, bool):
            return "yes" if item else "no"
        if isinstance(item, (list, tuple)):
            return ", ".join(words(part) for part in item) or "—"
        if isinstance(item, dict):
            return "; ".join(f"{str(k).replace('_', ' ')}: {words(v)}" for k, v in item.items())
        return str(item)

    return [(str(key).replace("_", " ").capitalize(), words(item)) for key, item in value.items()]


@register.simple_tag
def chart_library_script() -> str:
    """The chart library's <script> tag, or nothing when it was not fetched (pages keep their tables)."""
    if not (finders.find(CHART_LIBRARY) or staticfiles_storage.exists(CHART_LIBRARY)):
        return ""
    try:
        url = static(CHART_LIBRARY)
    except ValueError:  # missing from a collected manifest
        return ""
    return format_html('<script src="{}"></script>', url)
