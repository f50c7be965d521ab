"""The environment of a `manage.py` process running on its own databases in a test's tmp_path."""

from __future__ import annotations

import os
from pathlib import Path


def sandbox_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment without the test run's own settings, on fresh SQLite files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SANDBOX_", "PYTEST", "DJANGO_SETTINGS"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        WAREHOUSE_URL=f"sqlite:///{tmp_path / 'warehouse.sqlite3'}",
        RECONCILED_FILE_DIR=str(tmp_path / "reconciled"),
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env
