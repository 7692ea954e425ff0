"""`python -m dashboard` as a user runs it: exit codes, one-line errors, progress on stderr."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
END = "2026-11-24T12:00:00"
SOURCE = {"users", "vendors", "categories", "product_names", "products", "single_deals", "group_deals",
          "groups", "groups_carts", "carts", "personal_cart_items", "orders"}


def cli(*args: str, db: Path, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("DEMO_SCALE", "DEMO_SEED")}
    full_env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite:///{db}", **(env or {}))
    return subprocess.run([sys.executable, "-m", "dashboard", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{res.stderr}"
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


def tables_in(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


@pytest.mark.parametrize("scale", ["0", "-1", "abc", "nan", "inf"])
def test_seed_rejects_a_bad_scale_in_one_line(tmp_path, scale):
    db = tmp_path / "demo.sqlite"
    res = cli("seed", "--scale", scale, "--end", END, db=db)
    assert_one_line_error(res, "--scale")
    assert not db.exists() or not (tables_in(db) & SOURCE) or count(db, "orders") == 0


def test_unknown_command_is_a_one_line_error(tmp_path):
    assert_one_line_error(cli("sede", db=tmp_path / "x.sqlite"), "sede")


def test_unreachable_database_is_a_one_line_error(tmp_path):
    url = "postgresql+psycopg2://nobody@127.0.0.1:1/x"
    for command in (["init-db"], ["seed", "--scale", "0.01"]):
        res = cli("--database-url", url, *command, db=tmp_path / "unused.sqlite", timeout=60)
        line = assert_one_line_error(res, "unreachable")
        assert line.startswith("error:")


def test_bad_setting_in_the_environment_is_a_one_line_error(tmp_path):
    res = cli("seed", db=tmp_path / "demo.sqlite", env={"DEMO_SCALE": "lots"})
    assert_one_line_error(res, "DEMO_SCALE")


def test_init_db_then_seed_then_seed_again(tmp_path):
    db = tmp_path / "demo.sqlite"
    res = cli("init-db", db=db)
    assert res.returncode == 0, res.stderr
    assert SOURCE <= tables_in(db)
    assert {"pulse_order_lines", "pulse_daily_sales", "pulse_meta"} <= tables_in(db)
    assert count(db, "orders") == 0
    again = cli("init-db", db=db)
    assert again.returncode == 0 and "none" in again.stdout

    res = cli("seed", "--scale", "0.01", "--seed", "5", "--end", END, db=db)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "seed scale=0.01" in res.stderr and "100.0%" in res.stderr, res.stderr  # progress on stderr
    orders = count(db, "orders")
    assert 0.7 * 0.01 * 380_000 <= orders <= 1.3 * 0.01 * 380_000
    assert f"{orders:,} orders" in res.stdout
    assert count(db, "pulse_order_lines") > 0.7 * orders

    res = cli("seed", "--scale", "0.01", "--seed", "6", "--end", END, db=db)
    assert_one_line_error(res, "--force")
    assert count(db, "orders") == orders

    res = cli("seed", "--if-empty", "--scale", "0.01", db=db)
    assert res.returncode == 0 and count(db, "orders") == orders
