"""The SQL and parameters the adapter sends, per dialect (Databricks cannot run here)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from integrations.http import IntegrationError
from integrations.warehouse import client as warehouse


def _rows(n: int, columns: int = 5) -> list[dict[str, object]]:
    return [{"record_id": f"r{i}", **{f"c{j}": i * 100 + j for j in range(1, columns)}} for i in range(n)]


def test_databricks_merge_binds_at_most_255_parameters_per_statement() -> None:
    columns = ["record_id", "c1", "c2", "c3", "c4"]
    statements = warehouse.upsert_statements("databricks", "analytics.billing.dialer_call_history", _rows(120), key="record_id", columns=columns)
    # 255 // 5 = 51 rows per statement → 51 + 51 + 18.
    assert [s.rows for s in statements] == [51, 51, 18]
    assert all(s.param_count <= 255 for s in statements)
    assert sum(s.param_count for s in statements) == 120 * 5
    first = statements[0]
    assert first.sql.startswith("MERGE INTO `analytics`.`billing`.`dialer_call_history` AS t\n")
    assert "USING (SELECT * FROM VALUES (:p0, :p1, :p2, :p3, :p4), (:p5, :p6, :p7, :p8, :p9)," in first.sql
    assert "AS v(`record_id`, `c1`, `c2`, `c3`, `c4`)) AS s" in first.sql
    assert "ON t.`record_id` = s.`record_id`" in first.sql
    assert "WHEN MATCHED THEN UPDATE SET t.`c1` = s.`c1`, t.`c2` = s.`c2`, t.`c3` = s.`c3`, t.`c4` = s.`c4`" in first.sql
    assert first.sql.endswith(
        "WHEN NOT MATCHED THEN INSERT (`record_id`, `c1`, `c2`, `c3`, `c4`) VALUES (s.`record_id`, s.`c1`, s.`c2`, s.`c3`, s.`c4`)"
    )
    assert isinstance(first.params, dict)
    assert first.params["p0"] == "r0" and first.params["p4"] == 4 and first.params["p5"] == "r1"
    # Every marker in the text has a parameter and vice versa.
    for statement in statements:
        markers = re.findall(r":(p\d+)", statement.sql)
        assert sorted(markers) == sorted(statement.params)


def test_databricks_wide_rows_still_fit_the_limit() -> None:
    columns = ["record_id"] + [f"c{j}" for j in range(1, 31)]  # the history table has 31 columns
    statements = warehouse.upsert_statements("databricks", "t", _rows(100, columns=31), key="record_id", columns=columns)
    assert all(s.param_count <= 255 for s in statements)
    assert [s.rows for s in statements][:2] == [8, 8]  # 255 // 31


def test_too_many_columns_for_one_statement_is_refused() -> None:
    columns = ["record_id"] + [f"c{j}" for j in range(1, 300)]
    with pytest.raises(IntegrationError, match="exceed"):
        warehouse.upsert_statements("databricks", "t", _rows(1, columns=300), key="record_id", columns=columns)


def test_postgres_and_sqlite_use_on_conflict_with_positional_markers() -> None:
    columns = ["record_id", "c1"]
    pg = warehouse.upsert_statements("postgresql", "analytics.billing.h", _rows(3, columns=2), key="record_id", columns=columns)
    assert pg[0].sql == (
        'INSERT INTO "analytics_billing"."h" ("record_id", "c1") VALUES (%s, %s), (%s, %s), (%s, %s)\n'
        'ON CONFLICT ("record_id") DO UPDATE SET "c1" = excluded."c1"'
    )
    assert pg[0].params == ["r0", 1, "r1", 101, "r2", 201]
    lite = warehouse.upsert_statements("sqlite", "analytics.billing.h", _rows(3, columns=2), key="record_id", columns=columns)
    assert lite[0].sql.startswith('INSERT INTO "analytics_billing__h" ("record_id", "c1") VALUES (?, ?), (?, ?), (?, ?)')
    # SQLite statements stay under its historic 999-variable limit.
    many = warehouse.upsert_statements("sqlite", "h", _rows(1000, columns=2), key="record_id", columns=columns)
    assert max(s.param_count for s in many) <= 999


def test_key_only_table_does_nothing_on_conflict() -> None:
    statements = warehouse.upsert_statements("sqlite", "h", [{"record_id": "a"}], key="record_id", columns=["record_id"])
    assert statements[0].sql.endswith('ON CONFLICT ("record_id") DO NOTHING')
    merge = warehouse.upsert_statements("databricks", "h", [{"record_id": "a"}], key="record_id", columns=["record_id"])
    assert "WHEN MATCHED" not in merge[0].sql


def test_values_are_adapted_per_driver() -> None:
    row = {"record_id": "r", "amount": Decimal("1.10"), "at": dt.datetime(2026, 1, 2, 3, 4, 5), "ok": True, "extra": {"a": 1}}
    columns = list(row)
    lite = warehouse.upsert_statements("sqlite", "h", [row], key="record_id", columns=columns)[0]
    assert lite.params == ["r", "1.10", "2026-01-02T03:04:05", 1, '{"a": 1}']
    bricks = warehouse.upsert_statements("databricks", "h", [row], key="record_id", columns=columns)[0]
    assert isinstance(bricks.params, dict)
    assert bricks.params["p1"] == Decimal("1.10") and bricks.params["p3"] is True and bricks.params["p4"] == '{"a": 1}'


@pytest.mark.parametrize(
    "table",
    ["analytics.billing.h; DROP TABLE x", "a.b.c.d", "", "bad-name", 'quo"te'],
)
def test_table_names_that_are_not_plain_identifiers_are_refused(table: str) -> None:
    with pytest.raises(IntegrationError) as excinfo:
        warehouse.upsert_statements("postgresql", table, [{"k": 1}], key="k", columns=["k"])
    assert excinfo.value.permanent


def test_rows_without_a_key_are_refused() -> None:
    with pytest.raises(IntegrationError, match="key column"):
        warehouse.upsert_statements("sqlite", "h", [{"record_id": None}], key="record_id", columns=["record_id"])
    with pytest.raises(IntegrationError, match="key column"):
        warehouse.upsert_statements("sqlite", "h", [{"c": 1}], key="record_id", columns=["c"])


def test_create_table_maps_types_per_dialect() -> None:
    columns = {"record_id": "VARCHAR(120)", "amount": "DECIMAL(12,2)", "at": "TIMESTAMP", "n": "INTEGER", "d": "date"}
    bricks = warehouse.create_table_statements("databricks", "analytics.billing.h", columns, key="record_id")
    assert bricks == [
        "CREATE TABLE IF NOT EXISTS `analytics`.`billing`.`h` (\n  `record_id` STRING NOT NULL,\n  `amount` DECIMAL(12,2),\n"
        "  `at` TIMESTAMP,\n  `n` BIGINT,\n  `d` DATE\n) USING DELTA"
    ]
    pg = warehouse.create_table_statements("postgresql", "analytics.billing.h", columns, key="record_id")
    assert pg[0] == 'CREATE SCHEMA IF NOT EXISTS "analytics_billing"'
    assert '"record_id" TEXT NOT NULL PRIMARY KEY' in pg[1] and '"at" TIMESTAMPTZ' in pg[1]
    with pytest.raises(IntegrationError, match="not one of"):
        warehouse.create_table_statements("sqlite", "h", {"record_id": "blob"}, key="record_id")


def test_probe_wraps_the_query_without_fetching_rows() -> None:
    assert warehouse.probe_sql("SELECT 1 AS a;  ") == "SELECT * FROM (\nSELECT 1 AS a\n) AS bd_probe LIMIT 0"
    with pytest.raises(IntegrationError, match="empty"):
        warehouse.probe_sql("  ;")


def test_columns_are_added_one_statement_each_or_in_one_databricks_statement() -> None:
    added = {"transcript": "TEXT", "in_voicemail": "BOOLEAN"}
    assert warehouse.add_column_statements("databricks", "analytics.billing.h", added) == [
        "ALTER TABLE `analytics`.`billing`.`h` ADD COLUMNS (`transcript` STRING, `in_voicemail` BOOLEAN)"
    ]
    assert warehouse.add_column_statements("postgresql", "h", added) == [
        'ALTER TABLE "h" ADD COLUMN "transcript" TEXT',
        'ALTER TABLE "h" ADD COLUMN "in_voicemail" BOOLEAN',
    ]
    assert warehouse.add_column_statements("sqlite", "h", {}) == []
