"""The quiet index (``ProjectViews.quiet_jwks`` / ``quiet_discovery``): the documents the wire
path answers without reading their view, with one ``cache-control`` per second.

A project is in it exactly while its answer's ``cache-control`` is the replica-wide one
(``test_documents.py`` holds the two values equal over every kind of schedule). Here: every
change of the cache keeps it (builds, rebuilds, evictions, deletions), time takes a project out
of it at the right second, and a real uvicorn running the wire path with an injected clock
answers a project whose key change comes near exactly as the ASGI path does, second by second.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwkit.service.http.app import create_app
from jwkit.service.http.metrics import WIRE
from jwkit.service.http.wire import FastDocumentProtocol
from jwkit.service.published import JSON, Document
from jwkit.service.runtime import Service
from jwkit.service.settings import Settings
from jwkit.service.state import QUIET_AGE, Freshness, ProjectView, ProjectViews
from tests.support.serve import serve_in_thread

from .conftest import AUTH, FakeClock, make_settings

NOW = 1_800_000_000


def _view(pid: str, next_change: int | None, freshness: Freshness, age: int = QUIET_AGE) -> Any:
    doc = Document(b'{"p":"%s"}' % pid.encode(), JSON)
    return ProjectView(
        id=pid, issuer="http://x/p/" + pid, audience="a", token_ttl=60, max_token_ttl=60,
        jwks_max_age=age, jwks=doc, discovery=doc, next_change=next_change,
        signer_key_id=None, freshness=freshness,
    )  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


def _views(built: dict[str, ProjectView], clock: Clock, capacity: int = 100) -> ProjectViews:
    views = ProjectViews(built.get, capacity, clock, Freshness(NOW))
    views.ids = set(built)
    return views


def test_builds_rebuilds_evictions_and_deletions_keep_the_index() -> None:
    clock = Clock()
    views = _views({}, clock, capacity=2)
    fresh = views._freshness
    assert fresh is not None
    a, b, c = (_view(p, None, fresh) for p in "abc")
    views.ids = {"a", "b", "c", "d"}
    views.fill([a, b])
    assert set(views.quiet_jwks) == set(views.quiet_discovery) == {"a", "b"}
    views.replace(None, (), [c])  # a third view evicts the least recently used
    assert set(views.quiet_jwks) == set(views.quiet_discovery) == {"b", "c"}
    soon = _view("c", NOW + QUIET_AGE - 1, fresh)  # rebuilt: a key change comes within max-age
    views.replace(None, (), [soon])
    assert set(views.quiet_jwks) == {"b"}
    views.replace(None, (), [_view("c", NOW + 10**6, fresh)])  # and rebuilt again, quiet
    assert views.quiet_discovery["c"].body == b'{"p":"c"}' and set(views.quiet_jwks) == {"b", "c"}
    views.replace(None, ["b"], [])  # deleted
    assert set(views.quiet_jwks) == set(views.quiet_discovery) == {"c"}
    views.replace({"d"}, (), [])  # gone from a full reload's id set
    assert views.quiet_jwks == views.quiet_discovery == {}
    # Not quiet, ever: another max-age, another replica's freshness, no clock.
    views.replace(None, (), [_view("d", None, fresh, age=QUIET_AGE + 1)])
    views.replace(None, (), [_view("e", None, Freshness(NOW))])
    assert views.quiet_jwks == {}
    clockless = ProjectViews(lambda pid: None, 10, None, fresh)
    clockless.ids = {"a"}
    clockless.fill([a])
    assert clockless.quiet_jwks == {} and clockless.peek("a") is a


def test_time_takes_a_project_out_at_its_second() -> None:
    clock = Clock()
    views = _views({}, clock)
    fresh = views._freshness
    assert fresh is not None
    change = NOW + QUIET_AGE + 3  # quiet up to NOW + 3 (max-age 300 ends at the change then)
    views.ids = {"a", "b", "late"}
    views.fill([_view("a", change, fresh), _view("b", None, fresh)])
    for now in range(NOW, NOW + 6):
        clock.now = now
        assert views.quiet_sweep(now)
        assert ("a" in views.quiet_jwks) is (now <= NOW + 3), now
        assert "b" in views.quiet_jwks  # nothing scheduled: quiet for good
    assert views.due_seen == 1  # a sweep costs what is due
    # A view built with its quiet time already past is not indexed at all.
    views.fill([_view("late", change, fresh)])
    assert "late" not in views.quiet_jwks and views.peek("late") is not None


def test_a_sweep_never_waits_for_a_change_in_progress() -> None:
    clock = Clock()
    views = _views({}, clock)
    fresh = views._freshness
    assert fresh is not None
    views.ids = {"a"}
    views.fill([_view("a", NOW + QUIET_AGE, fresh)])
    clock.now = NOW + 1
    with views._lock:  # a change holds the cache: the wire path answers from the views
        assert views.quiet_sweep(NOW + 1) is False
    assert "a" in views.quiet_jwks
    assert views.quiet_sweep(NOW + 1) is True and "a" not in views.quiet_jwks


def test_the_due_list_stays_bounded_under_rebuilds() -> None:
    clock = Clock()
    views = _views({}, clock)
    fresh = views._freshness
    assert fresh is not None
    views.ids = {"a", "b"}
    views.fill([_view("b", NOW + 10**6, fresh)])
    longest, compactions, n = 0, 0, 0
    while compactions < 2:  # stop right after a rebuild that compacted the list
        n += 1
        views.replace(None, (), [_view("a", NOW + 10**6 + n, fresh)])
        longest = max(longest, len(views._quiet_due))
        compactions += len(views._quiet_due) == 2
    assert longest <= 2 * len(views.cached()) + 1024 + 1 and n > 1000
    clock.now = NOW + 10**6 - QUIET_AGE + 1  # "b" is due; "a"'s latest view is not
    assert views.quiet_sweep(clock.now)
    assert set(views.quiet_jwks) == {"a"}
    clock.now = NOW + 10**6 + n - QUIET_AGE + 1  # and "a" leaves at its latest view's time
    assert views.quiet_sweep(clock.now - 1) and "a" in views.quiet_jwks
    assert views.quiet_sweep(clock.now) and views.quiet_jwks == {}


# -- the wire path, on a real uvicorn with an injected clock -------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The wire path on, whatever ``JWKIT_FAST_PATH`` the run has: it is what is tested."""
    return make_settings(tmp_path / "home", fast_path=True)


@pytest.fixture
def wire_url(service: Service, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # uvicorn logs access (and so the wire path stays off) when its access logger has a
    # handler; pytest's log capture gives it some.
    monkeypatch.setattr(logging.getLogger("uvicorn.access"), "hasHandlers", lambda: False)
    app = create_app(service.settings, service=service, background=False)
    with serve_in_thread(app, http=FastDocumentProtocol, access_log=False) as url:
        yield url


def _max_age(response: httpx.Response) -> int:
    match = re.search(r"max-age=(\d+)", response.headers["cache-control"])
    assert match, response.headers
    return int(match.group(1))


def test_the_wire_answers_a_key_change_coming_near_as_the_views_do(
    service: Service, clock: FakeClock, wire_url: str
) -> None:
    with httpx.Client(base_url=wire_url, timeout=10) as http:
        r = http.post("/api/v1/projects", json={"name": "q", "rotation_days": 1}, headers=AUTH)
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        view = service.state.projects[pid]
        change = view.next_change
        assert change is not None and view.jwks_max_age == QUIET_AGE
        clock.now = change - QUIET_AGE - 2
        service.state.reload()  # the snapshot confirmed at this time
        assert pid in service.state.projects.quiet_jwks
        for offset in range(-2, 4):
            clock.now = change - QUIET_AGE + offset
            for doc in ("jwks.json", "openid-configuration"):
                path = f"/p/{pid}/.well-known/{doc}"
                before = WIRE.n
                fast = http.get(path)
                assert WIRE.n == before + 1, "the wire path answered"
                slow = http.get(path, headers={"If-None-Match": '"other"'})  # the ASGI path
                assert WIRE.n == before + 1
                assert fast.status_code == slow.status_code == 200
                assert fast.headers["cache-control"] == slow.headers["cache-control"], offset
                assert fast.content == slow.content
            quiet = pid in service.state.projects.quiet_jwks
            assert quiet is (offset <= 0), offset
            # Once the change is nearer than max-age, max-age ends at it.
            assert _max_age(fast) == QUIET_AGE - max(offset, 0)
