"""Shared fixtures: a real PostgreSQL server per session, seeded demo databases on both backends.

Seeded databases are session-scoped and read-only for tests; a test that writes makes its own
(`fresh_db`). TEST_DATABASE_URL (an admin URL of an existing server) replaces the throwaway one.
"""
from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest

from data_access.db import make_engine
from pipeline.demo_data import DemoSpec
from pipeline.seed import seed
from tests.support.pgserver import create_database, start_server

TZ = "Africa/Addis_Ababa"
END = dt.datetime(2026, 11, 24, 12, 0)  # fixed data end: tests are deterministic


@pytest.fixture(scope="session")
def pg_admin_url():
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    server = start_server()
    try:
        yield server.url
    finally:
        server.destroy()


def new_database(backend: str, tmp_root, pg_admin_url_factory) -> str:
    name = f"t_{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        return f"sqlite:///{tmp_root}/{name}.sqlite"
    return create_database(pg_admin_url_factory(), name)


@pytest.fixture(scope="session")
def seeded(request, tmp_path_factory):
    """seeded(backend, scale, seed) -> engine of a demo database, built once per session."""
    cache: dict = {}
    engines = []

    def get(backend: str = "sqlite", scale: float = 0.02, seed_: int = 1):
        key = (backend, scale, seed_)
        if key not in cache:
            url = new_database(backend, tmp_path_factory.mktemp("db"),
                               lambda: request.getfixturevalue("pg_admin_url"))
            engine = make_engine(url)
            seed(engine, DemoSpec(scale=scale, seed=seed_, months=12, end=END), TZ, show_progress=False)
            cache[key] = engine
            engines.append(engine)
        return cache[key]

    yield get
    for e in engines:
        e.dispose()


@pytest.fixture
def fresh_db(request, tmp_path):
    """fresh_db(backend) -> engine of an empty database of its own."""
    engines = []

    def get(backend: str = "sqlite"):
        url = new_database(backend, tmp_path, lambda: request.getfixturevalue("pg_admin_url"))
        engine = make_engine(url)
        engines.append(engine)
        return engine

    yield get
    for e in engines:
        e.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    return request.param
