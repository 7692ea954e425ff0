"""The embedded SQLite file's page size, and rewriting an existing file to it.

Whole-history work (the ETL rebuild, a cold first page, freeing the old derived tables) reads
pages scattered over the file. On this class of VM the disk serves about a thousand random
reads a second whatever their size, so 64 KiB pages move sixteen times as much data per read
as SQLite's default 4 KiB. Measured on the scale-1 file, cold (README "Performance").
"""
from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

PAGE_SIZE = 65536


class DatabaseInUse(RuntimeError):
    """Another process has the file open; rewriting it now could lose that process's writes."""


def sqlite_path(url: str) -> Path | None:
    """The file behind a sqlite:/// URL (None for other databases and in-memory ones)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def page_size(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA page_size").fetchone()[0]


def url_page_size(url: str) -> int | None:
    """The page size of the SQLite file behind `url`, if there is one yet."""
    path = sqlite_path(url)
    return page_size(path) if path is not None and path.exists() else None


def _in_use(path: Path) -> DatabaseInUse:
    return DatabaseInUse(f"{path} is in use; stop the dashboard and the ETL, then run compact again")


def compact(path: Path, progress=lambda done, total: None) -> tuple[int, int]:
    """Rewrite the file defragmented with PAGE_SIZE pages; returns (old, new) page size.

    Refuses while another connection has the file open: leaving WAL mode needs the only
    connection, and an exclusive lock then keeps others out until the new file has replaced the
    old one (a reader keeping the old file open would otherwise pair it with the new WAL).
    """
    if not path.exists():
        raise FileNotFoundError(f"no such database file: {path}")
    target = path.with_name(path.name + ".compact")
    target.unlink(missing_ok=True)
    conn = sqlite3.connect(path, timeout=1, isolation_level=None)
    try:
        old = conn.execute("PRAGMA page_size").fetchone()[0]
        if conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0] != "delete":
            raise _in_use(path)
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")  # taken now, kept by locking_mode until the connection closes
        conn.execute("COMMIT")
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        total = path.stat().st_size
        done = threading.Event()
        watcher = threading.Thread(target=_watch, args=(target, total, done, progress), daemon=True)
        watcher.start()
        try:
            conn.execute("VACUUM INTO ?", (str(target),))
        finally:
            done.set()
            watcher.join()
        os.replace(target, path)
    except sqlite3.OperationalError as exc:
        target.unlink(missing_ok=True)
        if "locked" in str(exc):
            raise _in_use(path) from None
        raise
    finally:
        conn.close()
    with closing(sqlite3.connect(path)) as fresh:
        fresh.execute("PRAGMA journal_mode=WAL")
        size = path.stat().st_size
        progress(size, size)
        return old, fresh.execute("PRAGMA page_size").fetchone()[0]


def _watch(target: Path, total: int, done: threading.Event, progress) -> None:
    """Report the new file's size against the old one's while VACUUM INTO writes it."""
    while not done.wait(0.5):
        size = target.stat().st_size if target.exists() else 0
        progress(min(size, total), total)
