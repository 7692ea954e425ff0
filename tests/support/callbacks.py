"""Calling an app's callbacks directly, as Dash would, with forged inputs."""
from __future__ import annotations

from dash import no_update


def callback(app, output_fragment: str):
    """The error-guarded callback function whose outputs mention output_fragment."""
    matches = [v["callback"] for k, v in app.callback_map.items() if output_fragment in k]
    assert len(matches) == 1, f"{len(matches)} callbacks match {output_fragment!r}"
    return matches[0].__wrapped__


def text_of(component) -> str:
    """All text inside a Dash component tree (or a figure's annotations)."""
    if component is None or component is no_update:
        return ""
    if isinstance(component, str):
        return component
    if hasattr(component, "to_plotly_json") and hasattr(component, "layout") and hasattr(component, "data"):
        return " ".join(a.text or "" for a in component.layout.annotations)
    if isinstance(component, dict) and "layout" in component:  # a figure as a dict
        return " ".join(a.get("text", "") for a in component["layout"].get("annotations", []))
    if isinstance(component, (list, tuple)):
        return " ".join(text_of(c) for c in component)
    return text_of(getattr(component, "children", None))
