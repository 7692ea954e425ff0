"""Progress of an incremental catch-up: it moves inside each batch (an ETL process's batches take
tens of seconds at scale 10), and a stop raised from it, as `etl --follow` raises on SIGTERM,
rolls that batch back whole."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from data_access.meta import get_meta, set_meta
from pipeline import etl
from tests.conftest import TZ
from tests.test_pipeline_etl import derived, watermark
from tests.test_pipeline_groups import seeded_fresh


class StopHere(Exception):
    pass


def rewind(engine, days: int) -> str:
    """Move the watermark back: the next run replays those days (and changes nothing)."""
    with engine.begin() as conn:
        wm = dt.datetime.fromisoformat(get_meta(conn, etl.WATERMARK_KEY))
        set_meta(conn, etl.WATERMARK_KEY, (wm - dt.timedelta(days=days)).isoformat())
    return watermark(engine)


def test_progress_moves_inside_each_batch_and_a_stop_there_loses_nothing(fresh_db, backend):
    engine = seeded_fresh(fresh_db, backend, 17)
    expected = derived(engine)

    rewound = rewind(engine, 30)
    seen = []  # (done, total, committed watermark at that moment)
    res = etl.run_once(engine, TZ, batch_rows=150, progress=lambda d, t: seen.append((d, t, watermark(engine))))
    assert res.batches >= 3
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][1] > 0
    # Each batch reports once before its commit (the watermark still the previous batch's) and once after.
    marks = [m for _, _, m in seen]
    assert len(seen) == 2 * res.batches
    assert marks[0::2] == [rewound] + marks[1:-1:2]
    assert all(mid != after for mid, after in zip(marks[0::2], marks[1::2]))

    before = rewind(engine, 30)

    def stop(done, total):
        raise StopHere

    with pytest.raises(StopHere):
        etl.run_once(engine, TZ, batch_rows=150, progress=stop)
    assert watermark(engine) == before
    for a, b in zip(derived(engine), expected):  # the batch's deleted lines came back with the rollback
        pd.testing.assert_frame_equal(a, b)
    etl.run_once(engine, TZ, batch_rows=150)
    for a, b in zip(derived(engine), expected):
        pd.testing.assert_frame_equal(a, b)
