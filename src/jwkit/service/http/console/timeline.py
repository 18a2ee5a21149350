"""The keys timeline: each key's states over time, as rectangles for an inline SVG.

Input is the admin API's key list (ISO 8601 times); output is plain numbers for the template,
so the picture is drawn server-side without any script.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["Bar", "Row", "Timeline", "build_timeline"]

WIDTH = 1000
LABEL = 170
ROW_HEIGHT = 30
TOP = 28


@dataclass(frozen=True, slots=True)
class Bar:
    state: str
    x: float
    width: float
    start: str
    end: str
    planned: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    kid: str
    label: str
    y: float
    bars: list[Bar]


@dataclass(frozen=True, slots=True)
class Timeline:
    rows: list[Row]
    width: int
    height: int
    label_width: int
    now_x: float
    ticks: list[tuple[float, str, str]]


def _ts(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _tick(ts: float, span: float) -> str:
    """An axis label as precise as the span needs."""
    fmt = "%H:%M:%S" if span < 3600 else "%d %b %H:%M" if span < 7 * 86400 else "%Y-%m-%d"
    return datetime.fromtimestamp(ts, tz=UTC).strftime(fmt) + " UTC"


def _segments(key: dict[str, Any], now: float) -> list[tuple[str, float, float, bool]]:
    created = _ts(key.get("created_at")) or now
    published = _ts(key.get("published_at"))
    activated = _ts(key.get("activated_at"))
    retired = _ts(key.get("retired_at"))
    revoked = _ts(key.get("revoked_at"))
    end_all = revoked if revoked is not None else now
    out: list[tuple[str, float, float, bool]] = []
    if published is not None:
        out.append(("next", published, activated if activated is not None else end_all, False))
    if activated is not None:
        out.append(("active", activated, retired if retired is not None else end_all, False))
    if retired is not None:
        out.append(("retiring", retired, end_all, False))
    if revoked is not None:
        out.append(("revoked", revoked, revoked, False))
    if not out:
        out.append((str(key.get("state", "next")), created, end_all, False))
    # The schedule the service announces: where this key goes next, drawn dashed.
    activates, retires = _ts(key.get("activates_at")), _ts(key.get("retires_at"))
    state = key.get("state")
    if state == "next" and activates is not None and activates > now:
        out.append(("active", activates, activates, True))
    if state == "retiring" and retires is not None and retires > now:
        out.append(("retiring", now, retires, True))  # the time left until it may leave the JWKS
    if state in ("active", "retiring") and retires is not None and retires > now:
        out.append(("retiring" if state == "active" else "revoked", retires, retires, True))
    return [(s, a, max(a, b), p) for s, a, b, p in out]


def build_timeline(key_list: list[dict[str, Any]], now: float) -> Timeline:
    """Lay out one row per key (newest on top) on a shared time axis ending after ``now``.

    The axis covers what happened and the retiring keys' remaining time; a scheduled change
    further away (a rotation in 90 days) is drawn at the right edge, its date in its title,
    so it does not squeeze the rest into a sliver."""
    rows_data = [(k, _segments(k, now)) for k in reversed(key_list)]
    starts = [a for _, segs in rows_data for _, a, _, _ in segs] or [now - 3600]
    ends = [b for _, segs in rows_data for _, a, b, p in segs if not p or b > a]
    ends.append(now)
    lo, hi = min(starts), max(ends)
    span = max(hi - lo, 60.0)
    lo -= span * 0.02
    hi += span * 0.08
    plot = WIDTH - LABEL - 10

    def x(ts: float) -> float:
        return round(LABEL + (min(ts, hi) - lo) / (hi - lo) * plot, 1)

    rows = []
    for i, (key, segs) in enumerate(rows_data):
        bars = []
        for state, a, b, planned in segs:
            width = max(x(b) - x(a), 4.0)
            left = min(x(a), WIDTH - 10 - width)  # a marker clamped to the right edge stays in
            bars.append(Bar(state, left, round(width, 1), _iso(a), _iso(b), planned))
        kid = str(key.get("kid", ""))
        label = kid if len(kid) <= 18 else kid[:8] + "…" + kid[-8:]
        rows.append(Row(kid, label, TOP + i * ROW_HEIGHT, bars))
    ticks = []
    for f in (0.06, 0.5, 0.94):
        ts = lo + (hi - lo) * f
        iso = datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ticks.append((x(ts), _tick(ts, hi - lo), iso))
    height = TOP + max(len(rows), 1) * ROW_HEIGHT + 10
    return Timeline(rows, WIDTH, height, LABEL, x(now), ticks)
