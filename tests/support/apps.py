"""Building test apps on seeded databases (no login unless asked), and copying a seeded SQLite
database for tests that change data."""
from __future__ import annotations

import sqlite3

from dashboard.app import create_app
from dashboard.settings import Settings


def app_for(engine, **overrides):
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(**{"database_url": url, "secret_key": "test-secret", "require_login": False,
                           "warm_cache": False, **overrides})  # warm-up has its own test
    return create_app(settings)


def copy_sqlite(engine, target_path) -> str:
    """A private copy of a seeded SQLite database (sqlite backup API, WAL-safe); returns its URL."""
    source_path = engine.url.database
    src, dst = sqlite3.connect(source_path), sqlite3.connect(str(target_path))
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return f"sqlite:///{target_path}"
