"""Quoted table and column names for the few hot-path statements written as plain SQL."""

from __future__ import annotations

from typing import Any

from django.db import connection


def quoted_names(model: type[Any], *fields: str) -> list[str]:
    """The model's table, then each field's column, quoted for the current database."""
    return [connection.ops.quote_name(model._meta.db_table)] + [
        connection.ops.quote_name(model._meta.get_field(f).column) for f in fields
    ]
