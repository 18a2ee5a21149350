"""Cache-Control of the published documents lets a CDN serve stale copies, never one that
breaks a token or keeps a revocation hidden past what the status list promises.

JWKS and discovery: ``max-age + max(stale-while-revalidate, stale-if-error)`` ends before a key
missing from the copy may sign. The test plays the worst case against the real rotation rules:
another replica publishes a next key a second before this replica last heard from the database,
this replica serves its snapshot (without that key) after some lag, and at the last second any
cache may still use that copy, graceful rotation to the missing key must still be refused.

Status lists: no ``stale-while-revalidate`` (it would delay every revocation), and
``stale-if-error`` at most one ``ttl``, never past the list's ``exp``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from jwkit.jose import jwt
from jwkit.service.domain import keys
from jwkit.service.domain.common import Conflict
from jwkit.service.http import documents
from jwkit.service.runtime import Service

from .conftest import AUTH, FakeClock, SyncClient

_DIRECTIVE = re.compile(r"^([a-z-]+)(?:=(\d+))?$")


def cache_control(value: str) -> dict[str, int | None]:
    """``public, max-age=300, …`` as a dict; every directive well formed, none twice."""
    out: dict[str, int | None] = {}
    for part in value.split(", "):
        match = _DIRECTIVE.match(part)
        assert match, value
        assert match.group(1) not in out, value
        out[match.group(1)] = int(match.group(2)) if match.group(2) else None
    return out


def last_use(now: int, fields: dict[str, int | None]) -> int:
    """The last second a cache may hand out a copy received at ``now``."""
    fresh = fields["max-age"] or 0
    stale = max(fields.get("stale-while-revalidate") or 0, fields.get("stale-if-error") or 0)
    return now + fresh + stale


@pytest.mark.parametrize("lag", [0, 1, 2, 3, 4, 5, 6, 50, 299, 400])
@pytest.mark.parametrize(
    ("max_age", "rotation_due_in"), [(300, None), (300, 42), (42, None), (1, None)]
)
def test_no_copy_outlives_the_time_a_key_missing_from_it_may_sign(
    client: SyncClient,
    service: Service,
    clock: FakeClock,
    max_age: int,
    rotation_due_in: int | None,
    lag: int,
) -> None:
    body: dict[str, Any] = {"name": "cdn", "jwks_max_age": max_age}
    if rotation_due_in is not None:
        body["rotation_days"] = 1
    pid = client.post("/api/v1/projects", json=body, headers=AUTH).json()["id"]
    if rotation_due_in is not None:  # the schedule caps max-age; stale windows take the rest
        clock.advance(86400 - rotation_due_in)
    service.state.sync()
    confirmed = clock()
    with service.db.session() as s, s.begin():  # another replica, unheard of here
        kid = keys.add_next_key(s, pid, service.vault, now=confirmed - 1, actor="replica-2").kid
    clock.advance(lag)
    r = client.get(f"/p/{pid}/.well-known/jwks.json")
    assert kid not in {k["kid"] for k in r.json()["keys"]}
    fields = cache_control(r.headers["cache-control"])
    assert fields.get("stale-while-revalidate") == fields.get("stale-if-error")
    assert (fields.get("stale-if-error") or 0) <= max_age
    d = client.get(f"/p/{pid}/.well-known/openid-configuration")
    assert d.headers["cache-control"] == r.headers["cache-control"]
    if lag >= max_age + keys.SYNC_MARGIN:
        # Out of touch longer than a copy may live: nothing may be cached, nothing served stale
        # (the replica's own answer lacks the key, whatever the caches do).
        assert fields == {"public": None, "max-age": 0}
        return
    with service.db.session() as s, s.begin(), pytest.raises(Conflict) as refused:
        keys.rotate(s, pid, service.vault, now=last_use(clock(), fields), actor="replica-2")
    assert refused.value.code == "rotation_too_early"


def test_steady_state_and_schedule_values(
    client: SyncClient, service: Service, clock: FakeClock
) -> None:
    """The numbers an operator sees: a replica in sync leaves 2 s of stale window at the
    default max-age (the rotation rules leave SYNC_MARGIN - 1 s, less a sync interval); one
    that falls behind loses the windows, then max-age (test_public.py has a scheduled key
    change shortening max-age, the windows taking what is left)."""
    pid = client.post("/api/v1/projects", json={"name": "s"}, headers=AUTH).json()["id"]
    r = client.get(f"/p/{pid}/.well-known/jwks.json")
    assert cache_control(r.headers["cache-control"]) == {
        "public": None,
        "max-age": 300,
        "stale-while-revalidate": 2,
        "stale-if-error": 2,
    }
    clock.advance(3)  # the replica falls behind: the windows shrink first, then max-age
    assert (
        "stale-if-error=1" in client.get(f"/p/{pid}/.well-known/jwks.json").headers["cache-control"]
    )
    clock.advance(1)
    assert "stale" not in client.get(f"/p/{pid}/.well-known/jwks.json").headers["cache-control"]
    clock.advance(100)
    fields = cache_control(client.get(f"/p/{pid}/.well-known/jwks.json").headers["cache-control"])
    assert fields == {"public": None, "max-age": 300 + keys.SYNC_MARGIN - 1 - 104}


def test_nothing_cached_nothing_stale(client: SyncClient) -> None:
    """``jwks_max_age`` 0: a next key may sign as soon as it is published."""
    pid = client.post(
        "/api/v1/projects", json={"name": "z", "jwks_max_age": 0}, headers=AUTH
    ).json()["id"]
    r = client.get(f"/p/{pid}/.well-known/jwks.json")
    assert r.headers["cache-control"] == "public, max-age=0"


def test_status_list_may_be_stale_only_on_error_and_never_past_exp(
    client: SyncClient, service: Service, clock: FakeClock, project: dict[str, Any]
) -> None:
    r = client.post(f"/api/v1/projects/{project['id']}/tokens", json={"sub": "alice"}, headers=AUTH)
    token = r.json()["access_token"]
    uri = jwt.decode_unverified(token)[1]["status"]["status_list"]["uri"]
    lst = client.get(uri.removeprefix("http://testserver"))
    assert lst.status_code == 200, lst.text
    claims = jwt.decode_unverified(lst.text)[1]
    fields = cache_control(lst.headers["cache-control"])
    assert "stale-while-revalidate" not in fields
    assert fields["max-age"] == claims["ttl"] == fields["stale-if-error"]
    assert last_use(clock(), fields) <= claims["exp"]
    # Near its exp (a list not re-signed in time): max-age and the stale window end with it.
    doc = service.state.status.document(project["id"], 1)
    assert doc is not None
    for left in (claims["ttl"] + 5, claims["ttl"], 30, 1, 0, -10):
        life = documents.status_list_lifetime(dataclasses.replace(doc, exp=clock() + left), clock())
        assert life.stale_while_revalidate == 0
        assert life.max_age + life.stale_if_error <= max(0, left)
        assert life.stale_if_error <= claims["ttl"]
