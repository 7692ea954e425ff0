"""`python -m dashboard report ...` as a subprocess: JSON an analyst can parse (numbers are
numbers, NaN is null, ISO dates), CSV, tables, and exit code 2 with one line for bad input."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_access import metrics

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def db_url(request):
    seeded = request.getfixturevalue("seeded")
    engine = seeded("sqlite", 0.02, 1)
    with engine.connect() as conn:
        vendor = conn.exec_driver_sql("SELECT vendor_id FROM pulse_order_lines GROUP BY vendor_id "
                                      "ORDER BY COUNT(*) DESC, vendor_id LIMIT 1").scalar()
    return engine.url.render_as_string(hide_password=False), str(vendor)


def run(url: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dashboard", "--database-url", url, "report", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def report_json(url: str, *args: str, env: dict | None = None) -> dict:
    proc = run(url, *args, "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_kpis_json_numbers_are_numbers(db_url):
    url, _ = db_url
    doc = report_json(url, "kpis", "--as-of", "latest", "--days", "30")
    assert doc["report"] == "kpis" and doc["as_of"] == "2026-11-24T21:00:00Z"
    assert doc["params"]["window_start"] == "2026-10-25T21:00:00Z"
    assert set(doc["data"]) == set(metrics.KPI_KEYS)
    assert isinstance(doc["data"]["completed_orders"], int) and doc["data"]["completed_orders"] > 0
    for key in ("revenue", "aov", "group_success_rate", "participation_rate"):
        assert isinstance(doc["data"][key], float), key
    assert 0 <= doc["data"]["group_success_rate"] <= 1


def test_top_users_vendor_scope(db_url):
    url, vendor = db_url
    everyone = report_json(url, "top-users", "--as-of", "latest", "--n", "5")["data"]
    mine = report_json(url, "top-users", "--as-of", "latest", "--n", "5", "--vendor", vendor)
    assert [r["rank"] for r in everyone] == [1, 2, 3, 4, 5] and mine["vendor"] == vendor
    assert all(isinstance(r["revenue"], float) and isinstance(r["groups_joined"], int) for r in everyone)
    assert sum(r["revenue"] for r in mine["data"]) <= sum(r["revenue"] for r in everyone)


def test_cohorts_null_not_zero_and_growth_new(db_url):
    url, _ = db_url
    rows = report_json(url, "cohorts", "--as-of", "latest")["data"]
    assert rows[-1]["month_0"] is None  # the current month has not ended
    assert isinstance(rows[0]["month_1"], float) and rows[0]["cohort"] == "2025-11-01"
    growth = report_json(url, "category-growth", "--as-of", "latest", "--period", "month")["data"]
    assert all(g["growth"] is None or g["growth"] == "new" or isinstance(g["growth"], float) for g in growth)
    assert any(g["growth"] is None for g in growth)


def test_other_reports_json(db_url):
    url, _ = db_url
    hours = {"NEARING_EXPIRY_HOURS": "12"}
    status = report_json(url, "group-status", "--as-of", "2026-11-24T08:00:00", env=hours)["data"]
    assert set(status) == {"active", "nearing_expiry", "completed", "expired"} and status["active"] > 0
    nearing = report_json(url, "groups-nearing", "--as-of", "2026-11-24T08:00:00", env=hours)["data"]
    assert nearing and all(r["deadline"].endswith("Z") and 0 < r["hours_left"] < 12 for r in nearing)
    assert len(nearing) == status["nearing_expiry"] and isinstance(nearing[0]["members"], int)
    series = report_json(url, "kpi-series", "--as-of", "latest", "--freq", "week", "--days", "28")["data"]
    assert [r["period_start"] for r in series][:2] == ["2026-10-26", "2026-11-02"]
    for name in ("segments", "vendor-category", "group-vs-individual", "group-series"):
        assert isinstance(report_json(url, name, "--as-of", "latest")["data"], list), name


def test_csv_and_table(db_url):
    url, _ = db_url
    proc = run(url, "top-users", "--as-of", "latest", "--format", "csv", "--n", "3")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert proc.returncode == 0 and len(rows) == 3 and float(rows[0]["revenue"]) >= float(rows[1]["revenue"])
    proc = run(url, "kpis", "--as-of", "latest", "--start", "2026-11-01", "--end", "2026-11-07")
    assert proc.returncode == 0 and "revenue" in proc.stdout.splitlines()[1]


@pytest.mark.parametrize("args,message", [
    (["nope"], "unknown report 'nope': use one of kpis"),
    (["kpis", "--vendor", "00000000-0000-4000-8000-000000000000"], "unknown vendor id"),
    (["kpis", "--start", "2026-05-10", "--end", "2026-05-01"], "before start date"),
    (["kpis", "--as-of", "2099-01-01"], "in the future"),
    (["top-users", "--n", "0"], "must be > 0"),
    (["top-users", "--n", "-5"], "must be > 0"),
    (["kpis", "--as-of", "yesterday-ish"], "not an ISO date"),
])
def test_bad_input_exit_2_one_line(db_url, args, message):
    proc = run(db_url[0], *args)
    assert proc.returncode == 2
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
