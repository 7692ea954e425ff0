"""Tables of the real-time pipeline (group state, events, refunds, alerts) — see pipeline/."""
from __future__ import annotations
