"""init-db, seed and ETL against real databases, on SQLite and PostgreSQL alike.

Expected values come from the generator's frames or from pandas over the raw source tables,
never from the project tables the code under test just wrote.
"""
from __future__ import annotations

import datetime as dt
import uuid

import pandas as pd
import pytest
import sqlalchemy as sa

import pipeline.seed as seed_module
from data_access.db import init_db
from data_access.dialect import project_table
from data_access.meta import data_version, set_meta
from data_access.schema import PROJECT_SCHEMA, SOURCE_TABLES, carts, metadata, users
from pipeline import etl
from pipeline.demo_data import DemoSpec, generate
from pipeline.seed import TargetNotEmpty, seed
from tests.conftest import END, TZ

SOURCE = [t.name for t in SOURCE_TABLES]
OWN = ["pulse_order_lines", "pulse_daily_sales", "pulse_meta", "pulse_quarantine"]


def _tables(engine) -> tuple[set[str], set[str]]:
    """(source tables, project tables) present, read from the database catalog."""
    insp = sa.inspect(engine)
    if engine.dialect.name == "postgresql":
        return set(insp.get_table_names()), set(insp.get_table_names(schema=PROJECT_SCHEMA))
    names = set(insp.get_table_names())
    return {n for n in names if not n.startswith("pulse_")}, {n for n in names if n.startswith("pulse_")}


def _counts(engine, tables) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {project_table(conn, t) if t.startswith('pulse_') else t}"))
                .scalar_one() for t in tables}


def _indexed_columns(conn, table: str) -> list[tuple[str, ...]]:
    """Column lists of every index on `table` (primary keys included), from the catalog."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(sa.text(
            "SELECT i.indexrelid, a.attname FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public' "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos) "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
            "WHERE t.relname = :t ORDER BY i.indexrelid, k.pos"), {"t": table}).all()
        out: dict = {}
        for oid, col in rows:
            out.setdefault(oid, []).append(col)
        return [tuple(v) for v in out.values()]
    out = []
    for row in conn.exec_driver_sql(f'PRAGMA index_list("{table}")').all():
        cols = conn.exec_driver_sql(f'PRAGMA index_info("{row[1]}")').all()
        out.append(tuple(c[2] for c in sorted(cols)))
    return out


def _foreign_key_columns(conn, table: str) -> set[str]:
    if conn.dialect.name == "postgresql":
        return set(conn.execute(sa.text(
            "SELECT a.attname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(c.conkey) "
            "WHERE c.contype = 'f' AND t.relname = :t"), {"t": table}).scalars())
    return {r[3] for r in conn.exec_driver_sql(f'PRAGMA foreign_key_list("{table}")').all()}


def test_init_db_creates_every_table_and_is_idempotent(fresh_db, backend):
    engine = fresh_db(backend)
    created = init_db(engine)
    source, own = _tables(engine)
    assert set(SOURCE) <= source
    assert set(OWN) <= own
    expected_own = {t.name for t in metadata.sorted_tables if t.schema == PROJECT_SCHEMA}
    assert expected_own <= own
    assert set(SOURCE) | expected_own <= set(created)
    assert init_db(engine) == []
    assert _tables(engine) == (source, own)


def test_foreign_keys_and_hot_columns_are_indexed(fresh_db, backend):
    engine = fresh_db(backend)
    init_db(engine)
    with engine.connect() as conn:
        fk_total = 0
        for table in SOURCE:
            leading = {cols[0] for cols in _indexed_columns(conn, table)}
            fks = _foreign_key_columns(conn, table)
            fk_total += len(fks)
            assert fks <= leading, f"{table}: foreign keys without an index: {sorted(fks - leading)}"
        assert fk_total >= 14
        assert ("status", "created_at") in _indexed_columns(conn, "orders")
        assert ("updated_at",) in _indexed_columns(conn, "orders")
        assert ("created_at",) in _indexed_columns(conn, "groups")


CHANGE_SCANNED = ("orders", "groups_carts", "groups", "carts", "personal_cart_items")


def test_an_existing_database_gets_the_etl_change_indexes_and_keeps_its_rows(fresh_db, backend):
    """Every source table the ETL scans for changes has an updated_at index; a database made
    without some of them (an older version's, or ChipChip's own) gets them from init_db, with
    its rows and other tables as they were."""
    engine = fresh_db(backend)
    init_db(engine)
    dropped = ["ix_groups_updated_at", "ix_carts_updated_at", "ix_personal_cart_items_updated_at"]
    with engine.begin() as conn:
        user, t = str(uuid.uuid4()), dt.datetime(2026, 1, 1)
        conn.execute(sa.insert(users), [dict(id=user, name="Abebe", created_at=t, updated_at=t)])
        conn.execute(sa.insert(carts), [dict(id=str(uuid.uuid4()), user_id=user, status="OPEN", created_at=t,
                                             updated_at=t)])
        for name in dropped:
            conn.execute(sa.text(f"DROP INDEX {name}"))
    tables = _tables(engine)
    assert sorted(init_db(engine)) == sorted(dropped)
    with engine.connect() as conn:
        for table in CHANGE_SCANNED:
            assert ("updated_at",) in _indexed_columns(conn, table), table
        assert conn.execute(sa.text("SELECT COUNT(*) FROM carts")).scalar() == 1
    assert _tables(engine) == tables and init_db(engine) == []


@pytest.mark.postgres
def test_orders_is_partitioned_by_month_on_postgres(seeded):
    engine = seeded("postgres", 0.02, 1)
    with engine.connect() as conn:
        strategy = conn.execute(sa.text(
            "SELECT pt.partstrat FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid "
            "WHERE c.relname = 'orders'")).scalar()
        assert strategy == "r"
        parts = set(conn.execute(sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'orders'")).scalars())
        months = pd.to_datetime(pd.read_sql("SELECT created_at FROM orders", conn)["created_at"], utc=True)
        wanted = {f"orders_{m:%Y_%m}" for m in months.dt.tz_localize(None).dt.to_period("M").dt.start_time}
        assert wanted <= parts and "orders_default" in parts
        assert conn.execute(sa.text("SELECT COUNT(*) FROM orders_default")).scalar_one() == 0
        for name in sorted(wanted)[:3]:  # rows sit in the partition of their month
            first = dt.datetime.strptime(name[7:], "%Y_%m")
            bad = conn.execute(sa.text(
                f"SELECT COUNT(*) FROM {name} WHERE created_at < :lo OR created_at >= :lo + interval '1 month'"),
                {"lo": first.replace(tzinfo=dt.timezone.utc)}).scalar_one()
            assert bad == 0


def _expected_frames(scale: float, seed_: int) -> dict[str, pd.DataFrame]:
    return generate(DemoSpec(scale=scale, seed=seed_, months=12, end=END))


def test_seed_loads_what_the_generator_produced(seeded, backend):
    engine = seeded(backend, 0.02, 1)
    frames = _expected_frames(0.02, 1)
    assert _counts(engine, SOURCE) == {t: len(frames[t]) for t in SOURCE}
    with engine.connect() as conn:
        o = pd.read_sql("SELECT id, total_amount, discount, payment_method, created_at, deleted_at FROM orders", conn)
    want = frames["orders"]
    assert o["total_amount"].astype(float).sum() == pytest.approx(want["total_amount"].sum(), abs=0.01)
    for col in ("total_amount", "discount", "payment_method", "deleted_at"):
        assert o[col].isna().sum() == want[col].isna().sum(), col
    got_times = pd.to_datetime(o["created_at"], utc=True).dt.tz_localize(None).sort_values(ignore_index=True)
    assert (got_times == want["created_at"].sort_values(ignore_index=True)).all(), "timestamps shifted in load"


def _raw_completed_revenue(conn) -> pd.Series:
    """Per completed order id: total_amount (NULL = 0), from the raw source tables."""
    o = pd.read_sql("SELECT id, groups_carts_id, personal_cart_id, status, total_amount, deleted_at FROM orders", conn)
    gc = pd.read_sql("SELECT id, deleted_at FROM groups_carts", conn)
    carts = pd.read_sql("SELECT id, deleted_at FROM carts", conn)
    for df in (o, gc, carts):
        for c in ("id", "groups_carts_id", "personal_cart_id"):
            if c in df:
                df[c] = df[c].map(lambda v: None if v is None else str(v))
    live_gc = set(gc.loc[gc["deleted_at"].isna(), "id"])
    live_carts = set(carts.loc[carts["deleted_at"].isna(), "id"])
    ok = (o["status"] == "COMPLETED") & o["deleted_at"].isna() & (
        o["groups_carts_id"].isin(live_gc) | o["personal_cart_id"].isin(live_carts))
    done = o[ok]
    return pd.Series(done["total_amount"].astype(float).fillna(0).to_numpy(), index=done["id"]).sort_index()


def _lines(conn) -> pd.DataFrame:
    df = pd.read_sql(f"SELECT * FROM {project_table(conn, 'pulse_order_lines')}", conn)
    df["order_id"] = df["order_id"].astype(str)
    return df.sort_values(["order_id", "line_no"], ignore_index=True)


def test_etl_completed_revenue_matches_raw_tables(seeded, backend):
    engine = seeded(backend, 0.02, 1)
    with engine.connect() as conn:
        expected = _raw_completed_revenue(conn)
        lines = _lines(conn)
    done = lines[lines["status"] == "COMPLETED"]
    per_order = done.groupby("order_id")["revenue"].sum().astype(float).sort_index()
    assert list(per_order.index) == list(expected.index)
    n_lines = done.groupby("order_id").size().sort_index()
    assert ((per_order - expected).abs() <= 0.01 * n_lines).all()
    assert float(done["revenue"].astype(float).sum()) == pytest.approx(expected.sum(), abs=0.01 * len(done))
    # local day = calendar day in Addis Ababa (UTC+3), computed here with pandas
    local = pd.to_datetime(lines["created_at"], utc=True).dt.tz_convert(TZ).dt.date
    assert (pd.to_datetime(lines["local_day"]).dt.date == local).all()


@pytest.fixture
def small_seeded(fresh_db, backend):
    """A database of its own (tests below write to it), seeded at scale 0.01."""
    engine = fresh_db(backend)
    seed(engine, DemoSpec(scale=0.01, seed=3, months=12, end=END), TZ, show_progress=False)
    return engine


def _snapshot(engine) -> tuple:
    with engine.connect() as conn:
        lines = _lines(conn)
        rollup = pd.read_sql(f"SELECT * FROM {project_table(conn, 'pulse_daily_sales')} "
                             "ORDER BY local_day, product_id, deal_type, status", conn)
        return data_version(conn), lines, rollup


def test_etl_again_changes_nothing_and_replaying_a_window_is_idempotent(small_seeded):
    engine = small_seeded
    version, lines, rollup = _snapshot(engine)
    assert len(lines) > 1000 and version >= 1
    result = etl.run_once(engine, TZ)
    assert result.orders == 0
    v2, lines2, rollup2 = _snapshot(engine)
    assert v2 == version
    pd.testing.assert_frame_equal(lines2, lines)
    pd.testing.assert_frame_equal(rollup2, rollup)
    with engine.begin() as conn:  # as after a crash: the watermark is 60 days behind
        set_meta(conn, etl.WATERMARK_KEY, (END - dt.timedelta(days=60)).isoformat())
    assert etl.run_once(engine, TZ).orders > 100
    _, lines3, rollup3 = _snapshot(engine)
    pd.testing.assert_frame_equal(lines3, lines)
    pd.testing.assert_frame_equal(rollup3, rollup)


def test_seed_refuses_a_non_empty_database(small_seeded):
    engine = small_seeded
    before = _counts(engine, SOURCE + OWN), _snapshot(engine)[0]
    with pytest.raises(TargetNotEmpty, match="--force"):
        seed(engine, DemoSpec(scale=0.01, seed=99, months=12, end=END), TZ, show_progress=False)
    assert (_counts(engine, SOURCE + OWN), _snapshot(engine)[0]) == before


def test_a_failing_load_leaves_the_database_empty(fresh_db, backend, monkeypatch):
    real_generate = seed_module.generate

    def broken(spec, progress=lambda step, frac: None):
        frames = real_generate(spec, progress)
        orders = frames["orders"].copy()  # orders load last: every other table is in by then
        orders.loc[orders.index[-1], "status"] = None  # violates NOT NULL
        frames["orders"] = orders
        return frames

    monkeypatch.setattr(seed_module, "generate", broken)
    engine = fresh_db(backend)
    with pytest.raises(Exception, match="(?i)null"):
        seed(engine, DemoSpec(scale=0.01, seed=3, months=12, end=END), TZ, show_progress=False)
    assert set(_counts(engine, SOURCE + OWN).values()) == {0}
