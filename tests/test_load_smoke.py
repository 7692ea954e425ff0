"""A short, bounded run of scripts/loadtest.py: gunicorn with 2 workers and a throwaway Redis as
the shared cache, 10 logged-in sessions driving filter callbacks for 10 s, zero errors.

The full run (50 sessions, 60 s, a scale-1 database) is `python scripts/loadtest.py`.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from dashboard.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (Debian package redis-server)")
def test_ten_sessions_for_ten_seconds_without_errors(seeded):
    url = seeded("sqlite", 0.02, 1).url.render_as_string(hide_password=False)  # copied by the script
    result = subprocess.run(
        [sys.executable, "scripts/loadtest.py", "--duration", "10", "--sessions", "10", "--database-url", url, "--json"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240)
    assert result.stdout.strip(), result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    details = json.dumps({k: summary.get(k) for k in ("error_samples", "server_log_tail")}, indent=1)
    assert summary["errors"] == 0, details
    assert summary["stuck_sessions"] == 0 and summary["worker_timeouts"] == 0, details
    assert result.returncode == 0
    latency = summary["latency_ms"]
    for kind in ("filters", "overview", "compare", "products", "login"):
        assert latency.get(kind, {}).get("n", 0) > 0, f"no {kind} requests were made"
    assert summary["requests"] >= 40
    assert len(summary["worker_peak_rss_mb"]) >= 2  # both workers were sampled
