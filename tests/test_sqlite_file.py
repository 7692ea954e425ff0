"""The SQLite file's page size: new files get large pages, `compact` gives them to old files
without losing a row, and refuses while someone else has the file open."""
from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing

import sqlalchemy as sa

from data_access.db import init_db, make_engine
from data_access.sqlite_file import PAGE_SIZE
from pipeline.demo_data import DemoSpec
from pipeline.seed import seed
from tests.conftest import END, TZ
from tests.test_cli import assert_one_line_error, cli


def _pragma(db, name: str):
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def _fingerprint(db) -> dict[str, tuple[int, str]]:
    """(rows, digest of the sorted rows) of every table, read with the bare driver."""
    out = {}
    with closing(sqlite3.connect(db)) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            rows = sorted(repr(r) for r in conn.execute(f'SELECT * FROM "{name}"'))
            out[name] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return out


def _old_style_file(tmp_path):
    """A demo database as versions before large pages made it: 4 KiB pages, WAL."""
    db = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA page_size=4096")
        conn.execute("PRAGMA journal_mode=WAL")
    engine = make_engine(f"sqlite:///{db}")
    seed(engine, DemoSpec(scale=0.01, seed=3, months=4, end=END), TZ, show_progress=False)
    engine.dispose()
    assert _pragma(db, "page_size") == 4096
    return db


def test_a_new_sqlite_database_gets_large_pages(tmp_path):
    db = tmp_path / "new.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    init_db(engine)
    engine.dispose()
    assert _pragma(db, "page_size") == PAGE_SIZE
    assert _pragma(db, "journal_mode") == "wal"


def test_compact_gives_an_old_file_large_pages_and_keeps_every_row(tmp_path):
    db = _old_style_file(tmp_path)
    before = _fingerprint(db)
    assert before["orders"][0] > 0 and before["pulse_order_lines"][0] > 0
    res = cli("compact", db=db)
    assert res.returncode == 0, res.stderr
    assert "compact [" in res.stderr  # progress on stderr
    assert _pragma(db, "page_size") == PAGE_SIZE
    assert _pragma(db, "integrity_check") == "ok"
    assert _pragma(db, "journal_mode") == "wal"
    assert _fingerprint(db) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("old.sqlite")) in (
        ["old.sqlite"], ["old.sqlite", "old.sqlite-shm", "old.sqlite-wal"])
    engine = make_engine(f"sqlite:///{db}")  # and the app reads it as before
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM orders")).scalar_one() == before["orders"][0]
    engine.dispose()


def test_compact_refuses_while_the_file_is_open_elsewhere(tmp_path):
    db = _old_style_file(tmp_path)
    before = _fingerprint(db)
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:  # the dashboard, holding a pooled connection
        conn.execute(sa.text("SELECT COUNT(*) FROM orders")).scalar_one()
        res = cli("compact", db=db)
    engine.dispose()
    assert_one_line_error(res, "in use", "stop the dashboard")
    assert _pragma(db, "page_size") == 4096
    assert _fingerprint(db) == before
    assert not (tmp_path / "old.sqlite.compact").exists()
