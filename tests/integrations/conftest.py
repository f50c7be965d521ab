from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.test import override_settings

from integrations import http

# The warehouse tests run against both DB-API backends. PostgreSQL gets its own database so the
# sample tables never land in the application's test database.
WAREHOUSE_PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
WAREHOUSE_PG_URL = "postgres://postgres@127.0.0.1:5432/bd_integrations_warehouse"


def _postgres_warehouse_url() -> str | None:
    try:
        with psycopg.connect(WAREHOUSE_PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'bd_integrations_warehouse'").fetchone()
            if not exists:
                conn.execute("CREATE DATABASE bd_integrations_warehouse")
    except psycopg.OperationalError:
        return None
    return WAREHOUSE_PG_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """WAREHOUSE_URL pointing at a fresh SQLite file, then at a PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.sqlite3'}"
    else:
        pg = _postgres_warehouse_url()
        if pg is None:
            pytest.skip("PostgreSQL does not answer at 127.0.0.1:5432")
        url = pg
    with override_settings(WAREHOUSE_URL=url, DATABRICKS_SERVER_HOSTNAME="", DATABRICKS_HTTP_PATH="", DATABRICKS_TOKEN=""):
        yield url


@pytest.fixture
def table_name() -> str:
    """A table name no other test (or concurrent run) uses, three-part like the real history table."""
    return f"analytics.billing.t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _fresh_vendor_sessions() -> Iterator[None]:
    # Sessions pool connections per process; a test's server goes away with the test.
    yield
    http.reset_sessions()
