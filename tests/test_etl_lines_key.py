"""The order lines' key: a unique index (built after a rebuild's load) instead of the primary
key of older versions. An older database keeps working unchanged until its next rebuild, which
replaces the table; either way a line can exist only once."""
from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from data_access.meta import set_meta
from data_access.project_tables import order_lines
from pipeline import etl
from tests.conftest import TZ
from tests.test_pipeline_etl import derived
from tests.test_pipeline_groups import seeded_fresh


def line_key(engine) -> tuple[list[str], set[str]]:
    """(primary key columns, names of unique indexes) of the order lines table."""
    schema = order_lines.schema if engine.dialect.name == "postgresql" else None
    inspector = sa.inspect(engine)
    pk = inspector.get_pk_constraint(order_lines.name, schema=schema)["constrained_columns"]
    unique = {i["name"] for i in inspector.get_indexes(order_lines.name, schema=schema) if i["unique"]}
    return pk, unique


def make_it_an_older_database(engine) -> None:
    """The lines table as versions before this one made it: (order_id, line_no) primary key,
    the secondary indexes of that time, empty, with the ETL state forgotten."""
    old = sa.Table(order_lines.name, sa.MetaData(),
                   *[sa.Column(c.name, c.type, nullable=c.nullable) for c in order_lines.columns],
                   sa.PrimaryKeyConstraint("order_id", "line_no"), schema=order_lines.schema)
    with engine.begin() as conn:
        order_lines.drop(conn)
        old.create(conn)
        for index in order_lines.indexes:
            if not index.unique and index.name != "ix_pol_group":  # ix_pol_group came later
                sa.Index(index.name, *[old.c[c.name] for c in index.columns]).create(conn)
        set_meta(conn, etl.WATERMARK_KEY, None)
        set_meta(conn, etl.PER_ENTITY_KEY, None)


def duplicate_line_is_refused(engine) -> None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(order_lines).limit(1)).mappings().one()
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(sa.insert(order_lines), [dict(row)])
        conn.rollback()


def test_an_older_lines_table_keeps_working_and_the_rebuild_replaces_its_key(fresh_db, backend):
    engine = seeded_fresh(fresh_db, backend, 9)
    expected = derived(engine)
    assert line_key(engine) == ([], {"ux_pol_order_line"})
    duplicate_line_is_refused(engine)

    make_it_an_older_database(engine)
    assert etl.run_once(engine, TZ).orders > 1000  # backfill into the old table
    pk, unique = line_key(engine)
    assert pk and not unique, "the old primary key is the key: no second unique index on top"
    assert "ix_pol_group" in {i["name"] for i in sa.inspect(engine).get_indexes(
        order_lines.name, schema=order_lines.schema if backend == "postgres" else None)}
    for got, want in zip(derived(engine), expected):
        pd.testing.assert_frame_equal(got, want)

    etl.rebuild(engine, TZ)
    assert line_key(engine) == ([], {"ux_pol_order_line"})
    duplicate_line_is_refused(engine)
    for got, want in zip(derived(engine), expected):
        pd.testing.assert_frame_equal(got, want)
