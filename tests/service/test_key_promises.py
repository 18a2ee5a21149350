"""The two promises the retirement and rotation rules rest on, held by a real ``jwkit serve``.

* A next key signs only once every JWKS a verifier may still hold from before its publication
  has expired, to the sub-second (the chaos run found a key published at x.9 s signing at
  x+1.0 s with ``jwks_max_age`` 1).
* The latest ``exp`` a key may sign is in the database before the token leaves the process,
  so a replica killed with SIGKILL loses nothing the retirement rule needs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select

from jwkit.jose.b64 import b64url_decode
from jwkit.service.store.models import Key
from jwkit.verify.verifier import Verifier

from .conftest import AUTH, ServerProcess


def _api(server: ServerProcess, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{server.url}/api/v1{path}", json=body, headers=AUTH,
                         timeout=30)  # fmt: skip


def _token(server: ServerProcess, project: dict[str, Any], client: dict[str, Any]) -> str:
    r = httpx.post(f"{server.url}/p/{project['id']}/oauth2/token",
                   data={"grant_type": "client_credentials"},
                   auth=(client["client_id"], client["client_secret"]), timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _late_in_a_second(low: float = 0.45, high: float = 0.55) -> None:
    """Return when the wall clock's fraction of a second is in ``[low, high)``."""
    while not low <= time.time() % 1 < high:
        time.sleep(0.005)


def test_verifier_that_cached_the_jwks_just_before_publication_accepts_the_new_key(
    spawn: Any,
) -> None:
    """``jwks_max_age`` 1; a verifier that honours max-age (``min_ttl=0``) and will not refetch
    for an unknown kid (``cooldown``) fetches the JWKS at x.5 s; a next key is published in the
    same second; rotation is retried until the service allows it; the new key's first token
    must verify against what that verifier holds or fetches by then."""
    server = spawn()
    project = _api(server, "POST", "/projects", {"name": "subsec", "jwks_max_age": 1}).json()
    client = _api(server, "POST", f"/projects/{project['id']}/clients", {"name": "c"}).json()
    old = _token(server, project, client)

    def fresh_verifier() -> Verifier:
        return Verifier.from_jwks_url(
            project["jwks_uri"], allow_insecure_http=True, issuer=project["issuer"],
            audience=project["audience"], min_ttl=0, cooldown=3600, token_cache=False,
        )  # fmt: skip

    verifier = fresh_verifier()
    try:
        for _ in range(10):  # a loaded machine may need a few tries to stay within one second
            _late_in_a_second()
            fetched = time.time()
            assert verifier.verify(old)  # the JWKS fetch, cached for max-age=1
            published = _api(server, "POST", f"/projects/{project['id']}/keys", {"mode": "next"})
            assert published.status_code == 201
            same_second = int(time.time()) == int(fetched)
            if same_second:
                break
            verifier.close()
            verifier = fresh_verifier()
        print(f"JWKS fetched and next key published within one second: {same_second}")
        while True:
            r = _api(server, "POST", f"/projects/{project['id']}/keys/rotate")
            if r.status_code == 200:
                break
            assert r.status_code == 409 and r.json()["error"] == "rotation_too_early"
            time.sleep(0.02)
        rotated_after = time.time() - fetched
        assert r.json()["active"] == published.json()["kid"]
        new = _token(server, project, client)
        claims = verifier.verify(new)  # old code: KeyNotFound (the cached JWKS lacks the kid)
        assert claims.header["kid"] == published.json()["kid"]
        print(f"rotation allowed {rotated_after:.2f}s after the JWKS fetch (max-age 1)")
        assert rotated_after > 1
    finally:
        verifier.close()


def _exp(token: str) -> int:
    return int(json.loads(b64url_decode(token.split(".")[1]))["exp"])


def test_sigkill_loses_no_expiry_mark(spawn: Any, tmp_path: Path) -> None:
    """Tokens issued, then the replica is killed outright: the database already records an
    ``exp`` mark at or beyond every token its key signed (old code flushed marks once per
    sync interval, 60 s here, and lost them)."""
    server = spawn(JWKIT_SYNC_INTERVAL="60")
    project = _api(server, "POST", "/projects", {"name": "kill", "token_ttl": 600}).json()
    client = _api(server, "POST", f"/projects/{project['id']}/clients", {"name": "c"}).json()
    tokens = [_token(server, project, client) for _ in range(20)]
    assert server.proc is not None
    server.kill()
    kid = json.loads(b64url_decode(tokens[-1].split(".")[0]))["kid"]
    engine = create_engine(f"sqlite:///{tmp_path / '.jwkit' / 'jwkit.db'}")
    try:
        with engine.connect() as conn:
            mark = conn.execute(select(Key.max_exp).where(Key.kid == kid)).scalar_one()
    finally:
        engine.dispose()
    assert mark is not None and mark >= max(_exp(t) for t in tokens)


def test_token_endpoint_refuses_beyond_the_recorded_mark(
    client: Any, project: dict[str, Any], oauth_client: dict[str, Any], clock: Any, service: Any
) -> None:
    """No token leaves with an ``exp`` the database has not recorded: when the background
    could not renew the mark (here: no sync for longer than the headroom, as in a long
    database outage) the token endpoint answers 503 instead of signing; the next sync
    renews the mark and tokens flow again."""

    url = f"/p/{project['id']}/oauth2/token"
    form = {"grant_type": "client_credentials", "client_id": oauth_client["client_id"],
            "client_secret": oauth_client["client_secret"]}  # fmt: skip
    assert client.post(url, data=form).status_code == 200
    clock.advance(service.settings.exp_headroom // 2 - 5)  # still within the reservation
    assert client.post(url, data=form).status_code == 200
    clock.advance(service.settings.exp_headroom)
    refused = client.post(url, data=form)
    assert refused.status_code == 503 and refused.json()["error"] == "temporarily_unavailable"
    service.state.sync()
    r = client.post(url, data=form)
    assert r.status_code == 200
    view = service.state.projects[project["id"]]
    assert view.signer_key_id is not None
    with service.read() as s:
        mark = s.execute(select(Key.max_exp).where(Key.id == view.signer_key_id)).scalar_one()
    assert mark >= _exp(r.json()["access_token"])
