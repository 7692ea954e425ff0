"""`python -m dashboard bench` end to end on a tiny database of each backend: every item of the
report is measured (not just present), and its ETL replay leaves the derived tables as a rebuild
makes them. Speed itself is the bench's business, not a test's."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from data_access.db import make_engine
from pipeline import etl
from tests.conftest import TZ
from tests.test_pipeline_etl import ROOT, derived

PAGES = {"overview", "groups", "products", "customers", "forecast"}


def test_bench_measures_every_item_and_leaves_the_data_as_a_rebuild_would(fresh_db, backend, tmp_path):
    engine = fresh_db(backend)  # empty: the bench seeds it
    url = engine.url.render_as_string(hide_password=False)
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "dashboard", "bench", "--scale", "0.01", "--repeat", "2",
                           "--db", "postgres" if backend == "postgres" else "sqlite", "--bench-url", url,
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())

    assert {v["page"] for v in results["callbacks"].values()} >= PAGES - {"forecast"}
    assert all(v["p50_ms"] > 0 for v in results["callbacks"].values())
    assert set(results["pages"]) == PAGES and all(v["naive_ms"] > 0 for v in results["pages"].values())
    assert results["cold_page_ms"] > 0 and results["refresh_no_new_data"]["p50_ms"] > 0
    assert results["forecast"]["cached_ms"] > 0 and results["queries"]
    assert results["etl_rows_per_s"] > 0 and results["etl_lines_per_s"] > 0
    assert results["etl_incremental_orders"] > 0 and results["etl_incremental_orders_per_s"] > 0
    assert results["peak_rss_mb"] > 0
    assert "ETL incremental" in proc.stdout and "naive" in proc.stdout

    etl_only = subprocess.run([sys.executable, "-m", "dashboard", "bench", "--etl-only", "--bench-url", url],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert etl_only.returncode == 0, etl_only.stderr[-2000:]
    assert "ETL rebuild (orders/s)" in etl_only.stdout and "naive" not in etl_only.stdout

    engine = make_engine(url)
    after_bench = derived(engine)
    etl.rebuild(engine, TZ)
    for got, want in zip(after_bench, derived(engine)):
        pd.testing.assert_frame_equal(got, want)
