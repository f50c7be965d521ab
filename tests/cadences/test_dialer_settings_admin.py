"""Dialer settings: one row, never deleted, and a queue query checked against the warehouse."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from cadences.models import DEFAULT_QUEUE_SQL, DialerSettings
from tests.cadences.admin_forms import change_form_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Path]:
    """A real SQLite warehouse with the table the default queue query reads."""
    path = tmp_path / "warehouse.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE billing_queue (client_id TEXT, name TEXT, phone TEXT, segment TEXT, days_past_due INTEGER, "
            "ring_group TEXT, amount_due NUMERIC, timezone TEXT, state TEXT, postal_code TEXT, payment_link TEXT, "
            "email TEXT, balance_resolved INTEGER)"
        )
    with override_settings(
        WAREHOUSE_URL=f"sqlite:///{path}", DATABRICKS_SERVER_HOSTNAME="", DATABRICKS_HTTP_PATH="", DATABRICKS_TOKEN=""
    ):
        yield path


def change_url() -> str:
    return reverse("admin:cadences_dialersettings_change", args=[DialerSettings.load().pk])


def save(client: Client, **changes: object) -> object:
    data = change_form_data(client, change_url())
    data.update(changes)
    return client.post(change_url(), data)


def queue_sql_errors(response: object) -> list[str]:
    return list(response.context["adminform"].form.errors.get("queue_sql", []))  # type: ignore[attr-defined]


def test_there_is_one_row_that_cannot_be_added_to_or_deleted(admin_client: Client) -> None:
    assert admin_client.get(reverse("admin:cadences_dialersettings_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:cadences_dialersettings_add")).status_code == 403
    delete_url = reverse("admin:cadences_dialersettings_delete", args=[DialerSettings.load().pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert DialerSettings.objects.count() == 1


def test_a_query_returning_every_required_column_is_saved(admin_client: Client, warehouse: Path) -> None:
    sql = "SELECT client_id, name, phone, segment, days_past_due, ring_group FROM billing_queue WHERE days_past_due > 5"
    response = save(admin_client, queue_sql=sql)
    assert response.status_code == 302
    assert DialerSettings.load().queue_sql == sql


def test_a_query_missing_required_columns_is_refused_naming_them(admin_client: Client, warehouse: Path) -> None:
    response = save(admin_client, queue_sql="SELECT client_id, name, phone FROM billing_queue")
    assert response.status_code == 200
    assert queue_sql_errors(response) == [
        "The query must return client_id, name, phone, segment, days_past_due, ring_group; "
        "missing: segment, days_past_due, ring_group."
    ]
    assert DialerSettings.load().queue_sql == DEFAULT_QUEUE_SQL


def test_a_query_the_warehouse_refuses_shows_the_warehouses_message(admin_client: Client, warehouse: Path) -> None:
    response = save(admin_client, queue_sql="SELECT client_id FROM no_such_table")
    assert response.status_code == 200
    (error,) = queue_sql_errors(response)
    assert error.startswith("The warehouse refused this query:") and "no such table: no_such_table" in error
    assert DialerSettings.load().queue_sql == DEFAULT_QUEUE_SQL


def test_other_settings_save_while_the_warehouse_is_unreachable(admin_client: Client, tmp_path: Path) -> None:
    with override_settings(WAREHOUSE_URL=f"sqlite:///{tmp_path / 'missing.sqlite3'}"):
        response = save(admin_client, batch_size=25)
        assert response.status_code == 302
        assert DialerSettings.load().batch_size == 25
        # ...but a changed query cannot be checked, so it is refused.
        response = save(admin_client, queue_sql="SELECT 1")
        assert response.status_code == 200
        assert queue_sql_errors(response)[0].startswith("The warehouse refused this query:")


def test_a_calling_window_outside_legal_hours_is_refused(admin_client: Client) -> None:
    response = save(admin_client, calling_window_start="07:00")
    assert response.status_code == 200
    assert "The calling window must lie inside 08:00–21:00 local time." in response.content.decode()


def test_the_daily_start_is_set_on_the_settings_page_in_words(admin_client: Client) -> None:
    page = admin_client.get(change_url()).content.decode()
    assert "Daily start (portal time zone)" in page and "start each business day" in page.lower()
    assert all(f'value="{n}"' in page for n in range(7)) and "Saturday" in page
    response = save(admin_client, auto_start="on", auto_start_at="06:45", business_days=["0", "2", "4"], holiday_calendar="US-NY", closed_dates="2026-12-24\n2026-12-31  # year end")
    assert response.status_code == 302, response.context["adminform"].form.errors  # type: ignore[attr-defined]
    saved = DialerSettings.load()
    assert (saved.auto_start, saved.auto_start_at.strftime("%H:%M"), saved.business_days) == (True, "06:45", "0,2,4")
    # The inbound agents and the promise horizon are on the page too.
    assert "inbound_agent_dispute" in page and "promise_horizon_days" in page


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"business_days": []}, "business_days", "This field is required."),
        ({"holiday_calendar": "XX"}, "holiday_calendar", "is not a holiday calendar"),
        ({"closed_dates": "24/12/2026"}, "closed_dates", "Line 1: '24/12/2026' is not a date (write it as YYYY-MM-DD)."),
    ],
)
def test_a_calendar_it_cannot_read_is_refused_saying_why(admin_client: Client, changes: dict[str, object], field: str, message: str) -> None:
    response = save(admin_client, **changes)
    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors.get(field, []))  # type: ignore[attr-defined]
    assert message in errors


def test_the_windows_on_the_clients_clock_carry_no_portal_time_zone_warning(admin_client: Client) -> None:
    # The admin's time widget (class vTimeField) warns how far the browser is from the portal's
    # time zone; on a window kept on each client's own clock that warning is about the wrong clock.
    page = admin_client.get(change_url()).content.decode()
    for name in ("calling_window_start", "calling_window_end", "sms_window_start", "sms_window_end"):
        field = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
        assert field is not None, name
        assert 'type="time"' in field.group(0) and "vTimeField" not in field.group(0), field.group(0)
    end_of_day = re.search(r'<input[^>]*name="end_of_day"[^>]*>', page)
    assert end_of_day is not None and "vTimeField" in end_of_day.group(0)
    local, portal = page.index("Windows (client&#x27;s local time)"), page.index("End of day (portal time zone)")
    assert local < page.index('name="sms_window_end"') < portal < page.index('name="end_of_day"')
    assert "SMS window start" in page and "Sms window" not in page


def test_a_window_typed_in_the_time_field_is_saved(admin_client: Client, warehouse: Path) -> None:
    response = save(admin_client, calling_window_start="09:30", sms_window_end="12:45")
    assert response.status_code == 302, response.context["errors"] if response.context else response  # type: ignore[attr-defined]
    row = DialerSettings.load()
    assert (row.calling_window_start.strftime("%H:%M"), row.sms_window_end.strftime("%H:%M")) == ("09:30", "12:45")
