"""Reading rendered Plotly figures from the page (what the user actually sees)."""
from __future__ import annotations


def traces(dash_duo, graph_id: str) -> list[dict]:
    """[{name, type, points}] of the rendered figure in #graph_id (after Plotly decoded it)."""
    return dash_duo.driver.execute_script(f"""
        const gd = document.querySelector('#{graph_id} .js-plotly-plot');
        if (!gd || !gd._fullData) return null;
        return gd._fullData.map(t => ({{name: t.name, type: t.type,
            points: (t.x && t.x.length) || (t.z && t.z.length) || 0}}));""")


def wait_for_traces(dash_duo, graph_id: str, predicate, timeout: float = 30) -> list[dict]:
    """Wait until the figure's traces satisfy predicate(traces); returns them."""
    import time
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = traces(dash_duo, graph_id)
        if last is not None and predicate(last):
            return last
        time.sleep(0.25)
    raise AssertionError(f"#{graph_id} traces never satisfied the condition; last seen: {last}")


def wait_until(condition, timeout: float = 10, what: str = "condition"):
    """Poll condition() until truthy; returns its value."""
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
