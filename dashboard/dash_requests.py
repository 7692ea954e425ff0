"""Build `/_dash-update-component` request bodies from an app's callback map.

Used by the benchmark (server-side time of real callback requests through the Dash app) and by
tests that forge requests exactly as a browser would send them.
"""
from __future__ import annotations


def find_output_key(app, fragment: str) -> str:
    keys = [k for k in app.callback_map if fragment in k]
    if len(keys) != 1:
        raise KeyError(f"{len(keys)} callbacks match {fragment!r}")
    return keys[0]


def _outputs(key: str):
    if key.startswith("..") and key.endswith(".."):
        parts = key[2:-2].split("...")
        return [dict(zip(("id", "property"), p.rsplit(".", 1))) for p in parts]
    cid, prop = key.rsplit(".", 1)
    return {"id": cid, "property": prop}


def body_for_spec(key: str, spec: dict, values: dict, changed: list[str] | None = None) -> dict:
    """Request body for the callback with output key `key` and dependency spec `spec` (an entry of
    app.callback_map or of /_dash-dependencies: "inputs" and "state" lists of {id, property}).

    values: {"component-id.property": value} for its inputs and states (missing ones are None).
    """
    def items(deps):
        return [{"id": d["id"], "property": d["property"], "value": values.get(f"{d['id']}.{d['property']}")}
                for d in deps]

    inputs = items(spec["inputs"])
    return {"output": key, "outputs": _outputs(key), "inputs": inputs, "state": items(spec.get("state", [])),
            "changedPropIds": changed if changed is not None else [f"{i['id']}.{i['property']}" for i in inputs[:1]]}


def body(app, fragment: str, values: dict, changed: list[str] | None = None) -> dict:
    """Request body for the callback whose output key contains `fragment`."""
    key = find_output_key(app, fragment)
    return body_for_spec(key, app.callback_map[key], values, changed)


def post(client, app, fragment: str, values: dict, changed: list[str] | None = None):
    """POST through the Flask test client; returns the response."""
    return client.post("/_dash-update-component", json=body(app, fragment, values, changed))
