"""The keys timeline's layout: a retiring key's remaining time is drawn, and a far-off scheduled
rotation neither squeezes the picture nor leaves it."""

from __future__ import annotations

from datetime import UTC, datetime

from jwkit.service.http.console.timeline import LABEL, WIDTH, build_timeline


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_retiring_time_left_is_drawn_and_far_schedules_are_clamped() -> None:
    now = 1_800_000_000.0
    keys = [
        {"kid": "old", "state": "retiring", "created_at": _iso(now - 600),
         "published_at": _iso(now - 600), "activated_at": _iso(now - 600),
         "retired_at": _iso(now - 60), "retires_at": _iso(now + 900)},
        {"kid": "cur", "state": "active", "created_at": _iso(now - 600),
         "published_at": _iso(now - 600), "activated_at": _iso(now - 60),
         "retires_at": _iso(now + 30 * 86400)},
    ]  # fmt: skip
    timeline = build_timeline(keys, now)
    rows = {row.kid: row for row in timeline.rows}
    (left,) = [b for b in rows["old"].bars if b.planned and b.state == "retiring"]
    plot = WIDTH - LABEL - 10
    assert left.width > plot / 2  # the 15 minutes left fill most of the axis
    assert abs(left.x - timeline.now_x) < 1
    for row in timeline.rows:
        for bar in row.bars:
            assert LABEL <= bar.x and bar.x + bar.width <= WIDTH - 10 + 0.1, (row.kid, bar)
    (rotation,) = [b for b in rows["cur"].bars if b.planned]
    assert rotation.start.startswith(_iso(now + 30 * 86400)[:10])  # its real date, in the title
