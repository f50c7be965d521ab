"""The fault-injection suite (`make chaos`): on PostgreSQL, real HTTP to the simulators, real
processes where a case is about processes. Too long for the ordinary test run, so every case is
skipped unless CHAOS=1 (the `chaos` target sets it and points DATABASE_URL at PostgreSQL)."""

from __future__ import annotations

import os

import pytest
from django.conf import settings

from tests.campaigns.conftest import sample_warehouse  # noqa: F401 - fixture
from tests.campaigns.release_factories import sandbox  # noqa: F401 - fixture
from tests.campaigns.sms_factories import shipped_cadences  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    reason = ""
    if os.environ.get("CHAOS") != "1":
        reason = "fault-injection case: runs with `make chaos` (CHAOS=1)"
    elif settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        reason = "fault-injection case: needs DATABASE_URL pointing at PostgreSQL"
    if not reason:
        return
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.skip(reason=reason))
