"""Every metric against tests/reference.py (plain pandas over the raw tables), on generated data
at two seeds, SQLite and PostgreSQL, as of 'latest' and a mid-range time, for the manager and
for one vendor (as a scope and as a filter). Only float sums get a tolerance."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics.cohorts import cohort_retention
from analytics.growth import category_growth
from data_access import breakdowns, customers, groups, metrics
from data_access.filters import MANAGER, Filters, Scope, Window, resolve_as_of
from tests.conftest import TZ
from tests.reference import Reference

SEEDS = [1, 2]
AS_OFS = ["latest", "2026-08-16T13:37:00"]
VENDOR_MODES = ["all", "scope", "filter"]
# PostgreSQL stores an individual order's per-item revenue share as NUMERIC(14,2): sums of
# shares may differ from the exact totals by a few cents. Only money gets this tolerance.
MONEY = dict(rtol=1e-6, atol=0.05)
_refs: dict = {}


def close(a, b, what=""):
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        assert (a is None or a != a) and (b is None or b != b), f"{what}: {a!r} != {b!r}"
    elif isinstance(b, float) or isinstance(a, float):
        tol = dict(rel=1e-9, abs=1e-12) if "rate" in what else dict(rel=MONEY["rtol"], abs=MONEY["atol"])
        assert a == pytest.approx(b, **tol), what
    else:
        assert a == b, what


@pytest.fixture(params=[(b, s, a, v) for b in ("sqlite", "postgres") for s in SEEDS for a in AS_OFS
                        for v in VENDOR_MODES], ids=lambda p: "-".join(map(str, p)))
def case(request, seeded):
    backend, seed_, as_of_text, mode = request.param
    engine = seeded(backend, 0.02, seed_)
    if (backend, seed_) not in _refs:
        _refs[(backend, seed_)] = Reference(engine, TZ)
    ref = _refs[(backend, seed_)]
    conn = engine.connect()
    as_of = resolve_as_of(conn, as_of_text, TZ, now=dt.datetime(2030, 1, 1))
    busiest = ref.lines["vendor_id"].value_counts().sort_index().idxmax()
    vendor = None if mode == "all" else busiest
    filters = Filters.of(vendor) if mode == "filter" else Filters()
    scope = Scope(vendor) if mode == "scope" else MANAGER
    yield conn, ref, as_of, filters, scope, vendor
    conn.close()


def test_kpi_summary(case):
    conn, ref, as_of, filters, scope, vendor = case
    window = Window.last(as_of, 30)
    got = metrics.kpi_summary(conn, window, as_of, filters, scope)
    want = ref.kpis(window.start, window.end, as_of, vendor)
    assert set(got) == set(metrics.KPI_KEYS)
    for key in metrics.KPI_KEYS:
        close(got[key], want[key], key)
    assert got["completed_orders"] > 0 and got["group_success_rate"] is not None


def test_kpi_series_weekly(case):
    conn, ref, as_of, filters, scope, vendor = case
    window = Window(as_of - dt.timedelta(days=45), as_of + dt.timedelta(days=3))  # cut at as_of
    got = metrics.kpi_series(conn, window, as_of, "week", filters, scope)
    want = ref.kpi_series(window.start, window.end, as_of, "week", vendor)
    assert list(got["period_start"]) == list(want["period_start"])
    for (_, g), (_, w) in zip(got.iterrows(), want.iterrows()):
        for key in metrics.KPI_KEYS:
            close(g[key], w[key], f"{g['period_start']} {key}")


def test_group_status(case):
    conn, ref, as_of, filters, scope, vendor = case
    window = Window.last(as_of, 30)
    for hours in (2, 12):
        got = groups.group_status_counts(conn, as_of, hours, filters, scope, window=window)
        assert got == ref.status_counts(as_of, hours, window.start, window.end, vendor)
    near = groups.groups_nearing_expiry(conn, as_of, 12, filters, scope)
    want = ref.nearing(as_of, 12, vendor)
    assert list(near["group_id"]) == list(want["group_id"])
    assert list(near["members"]) == list(want["members"]) and list(near["goal"]) == list(want["goal"])
    assert (near["deadline"].reset_index(drop=True) == want["deadline"]).all()
    assert ((near["hours_left"] > 0) & (near["hours_left"] < 12)).all()
    states = groups.group_states(conn, window, as_of, filters, scope)
    ref_states = ref.group_states(as_of, vendor)
    ref_states = ref_states[ref_states["created_at"] >= window.start].sort_values(["created_at", "group_id"])
    assert list(states["group_id"]) == list(ref_states["group_id"])
    assert list(states["status"]) == list(ref_states["status"])
    assert list(states["members"]) == list(ref_states["members"])
    assert {"COMPLETED", "EXPIRED"} <= set(states["status"])
    series = groups.group_status_series(conn, Window.last(as_of, 60), as_of, "week", filters, scope)
    expected = ref.status_series(as_of - dt.timedelta(days=60), as_of, as_of, "week", vendor)
    pd.testing.assert_frame_equal(series, expected, check_dtype=False)


def test_top_users(case):
    conn, ref, as_of, filters, scope, vendor = case
    got = customers.top_users(conn, as_of, 10, filters, scope)
    want = ref.top_users(as_of, 10, vendor)
    assert len(got) == 10
    assert list(got["user_id"]) == list(want["user_id"])
    assert list(got["rank"]) == list(range(1, 11))
    np.testing.assert_allclose(got["revenue"], want["revenue"], **MONEY)
    for col in ("completed_orders", "groups_joined", "categories"):
        assert list(got[col]) == list(want[col]), col
    assert got["revenue"].is_monotonic_decreasing


def test_cohort_retention(case):
    conn, ref, as_of, filters, scope, vendor = case
    activity = customers.cohort_activity(conn, as_of, filters, scope)
    got = cohort_retention(activity, as_of, TZ)
    want = ref.retention(as_of, vendor)
    assert list(got.index) == list(want.index)
    np.testing.assert_allclose(got.to_numpy(dtype=float), want.to_numpy(dtype=float), rtol=1e-12, equal_nan=True)
    assert got.iloc[-1].isna().all()  # the current month has not ended


def test_user_rfm(case):
    conn, ref, as_of, filters, scope, vendor = case
    got = customers.user_rfm(conn, as_of, filters, scope).sort_values("user_id").reset_index(drop=True)
    want = ref.rfm(as_of, vendor)
    assert list(got["user_id"]) == list(want["user_id"])
    assert list(got["frequency"]) == list(want["frequency"])
    np.testing.assert_allclose(got["monetary"], want["monetary"], **MONEY)
    np.testing.assert_allclose(got["recency_days"], want["recency_days"], atol=1e-6)
    np.testing.assert_allclose(got["tenure_days"], want["tenure_days"], atol=1e-6)


@pytest.mark.parametrize("shape", ["whole_days", "times"])
def test_breakdowns(case, shape):
    conn, ref, as_of, filters, scope, vendor = case
    if shape == "whole_days":  # the daily rollup path
        last = (as_of + dt.timedelta(hours=3)).date() - dt.timedelta(days=1)
        window = Window.days(last - dt.timedelta(days=40), last, TZ)
    else:  # the order-lines path
        window = Window(as_of - dt.timedelta(days=41, hours=5), as_of)
    assert (breakdowns.whole_days(window, TZ) is not None) == (shape == "whole_days")
    vc = breakdowns.vendor_category_revenue(conn, window, filters, scope)
    want = ref.vendor_category(window.start, window.end, vendor)
    assert list(vc["vendor_id"]) == list(want["vendor_id"]) and list(vc["category"]) == list(want["category"])
    np.testing.assert_allclose(vc["revenue"], want["revenue"], **MONEY)
    daily = breakdowns.category_daily_revenue(conn, window, filters, scope)
    series = daily.set_index(["day", "category"])["revenue"]
    expected = ref.category_daily(window.start, window.end, vendor)
    np.testing.assert_allclose(series.reindex(expected.index), expected, **MONEY)
    assert series.drop(expected.index).abs().sum() == 0
    first, last = window.local_days(TZ)
    assert daily["day"].nunique() == (last - first).days + 1
    for by in ("category", "month"):
        got = breakdowns.group_vs_individual(conn, window, by, filters, scope)
        pd.testing.assert_frame_equal(got, ref.group_vs_individual(window.start, window.end, by, vendor),
                                      check_dtype=False)
    cat = breakdowns.category_revenue(conn, window, filters, scope).set_index("category")["revenue"]
    np.testing.assert_allclose(cat.sort_index(), ref.category_revenue(window.start, window.end, vendor), **MONEY)


@pytest.mark.parametrize("period,days", [("week", 7), ("month", 30)])
def test_category_growth(case, period, days):
    conn, ref, as_of, filters, scope, vendor = case
    cur, prev = breakdowns.category_growth_inputs(conn, as_of, period, filters, scope)
    got = category_growth(cur, prev).set_index("category")["growth"]
    want = ref.growth(as_of, days, vendor)
    assert set(got.index) == set(want)
    for name, value in want.items():
        close(got[name], value, name)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_per_user_month_tables_agree_with_the_raw_rows(seeded, backend):
    """Cohorts and RFM read the ETL's per-user-month tables unless a product or category filter
    needs the raw memberships and order lines: with every category selected, both must agree."""
    engine = seeded(backend, 0.02, 1)
    with engine.connect() as conn:
        every = Filters.of(category=[str(c) for c in conn.execute(sa.text("SELECT id FROM categories")).scalars()])
        for as_of_text in AS_OFS:
            as_of = resolve_as_of(conn, as_of_text, TZ, now=dt.datetime(2030, 1, 1))
            fast, raw = (customers.cohort_activity(conn, as_of, f) for f in (Filters(), every))
            assert fast["active_m1"].sum() > 0
            pd.testing.assert_frame_equal(fast, raw)
            fast, raw = (customers.user_rfm(conn, as_of, f).sort_values("user_id", ignore_index=True)
                         for f in (Filters(), every))
            assert len(fast) > 100
            pd.testing.assert_frame_equal(fast, raw, rtol=1e-9, atol=MONEY["atol"])
