"""Signing keys inside a PKCS#11 token (the ``pkcs11`` key backend) on a real SoftHSM2 token.

In-process services for what the token holds and refuses; real ``jwkit serve`` processes for
the token endpoint, rotation, replace-now, revocation, restarts, two replicas on one token,
start-up errors and a key deleted behind the service's back.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwkit.jose import jwt
from jwkit.jose.jwk import JWKSet
from jwkit.jose.statuslist import INVALID, VALID, StatusList
from jwkit.service.http.app import create_app
from jwkit.service.runtime import Service
from jwkit.verify.verifier import Verifier
from tests.support import softhsm
from tests.support.serve import wait_for
from tests.support.softhsm import SoftHSM

from .conftest import (
    ADMIN_PASSWORD,
    AUTH,
    FakeClock,
    ServerProcess,
    SyncClient,
    free_port,
    make_settings,
    server_env,
)

pytestmark = [pytest.mark.pkcs11, pytest.mark.timeout(300)]


@pytest.fixture(scope="session")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHSM:
    return softhsm.make_token(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture
def hsm_client(hsm: SoftHSM, tmp_path: Path) -> Iterator[tuple[Service, SyncClient]]:
    service = Service.open(make_settings(tmp_path / "home", **hsm.settings()), clock=FakeClock())
    client = SyncClient(create_app(service.settings, service=service, background=False))
    try:
        yield service, client
    finally:
        client.close()
        service.close()


def _created(client: SyncClient, **body: Any) -> dict[str, Any]:
    r = client.post("/api/v1/projects", json={"name": "hsm", **body}, headers=AUTH)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _keys(client: SyncClient, pid: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/projects/{pid}/keys", headers=AUTH)
    assert r.status_code == 200, r.text
    return list(r.json()["keys"])


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"])
def test_keys_are_made_inside_the_token_and_sign_tokens_that_verify(
    hsm: SoftHSM, hsm_client: tuple[Service, SyncClient], alg: str
) -> None:
    service, client = hsm_client
    project = _created(client, algorithm=alg)
    pid = project["id"]
    listed = _keys(client, pid)
    assert [k["backend"] for k in listed] == ["pkcs11", "pkcs11"]  # active and next
    held = hsm.private_keys(f"jwkit/{pid}/")
    assert set(held) == {f"jwkit/{pid}/{k['kid']}" for k in listed}
    for attrs in held.values():
        assert attrs == {
            "token": True,
            "sensitive": True,
            "extractable": False,
            "always_sensitive": True,
            "never_extractable": True,
            "local": True,  # generated inside the token
            "value_readable": False,
        }
    r = client.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "u1"}, headers=AUTH)
    assert r.status_code == 200, r.text
    jwks = JWKSet.from_json(client.get(f"/p/{pid}/.well-known/jwks.json").content)
    header, _claims = jwt.decode_unverified(r.json()["access_token"])
    assert header["alg"] == alg and header["kid"] == project["active_kid"]
    verified = jwt.decode(
        r.json()["access_token"], jwks, algorithms=[alg], issuer=project["issuer"],
        audience=project["audience"],
    )  # fmt: skip
    assert verified["sub"] == "u1"
    with sqlite3.connect(service.settings.home / "jwkit.db") as db:
        rows = db.execute(
            "SELECT backend, length(wrapped_dek), length(ciphertext), key_handle FROM keys "
            "WHERE project_id = ?",
            (pid,),
        ).fetchall()
    assert rows and all(r[:3] == ("pkcs11", 0, 0) and r[3].startswith("jwkit/") for r in rows)


def test_shared_secret_projects_are_refused_not_kept_in_software(
    hsm_client: tuple[Service, SyncClient],
) -> None:
    _, client = hsm_client
    r = client.post("/api/v1/projects", json={"name": "hs", "algorithm": "HS256"}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "unsupported_by_backend"
    assert client.get("/api/v1/projects", headers=AUTH).json()["projects"] == []


def test_an_impostor_key_under_the_label_is_caught_by_verification(
    hsm: SoftHSM, hsm_client: tuple[Service, SyncClient]
) -> None:
    """A key swapped in the token behind the service's back signs, but its signatures do
    not verify against the published key: 503, an audit event, never a token."""
    from pkcs11 import Attribute, KeyType, Mechanism
    from pkcs11.util.ec import encode_named_curve_parameters

    _service, client = hsm_client
    project = _created(client, algorithm="ES256")
    pid, kid = project["id"], project["active_kid"]
    label = f"jwkit/{pid}/{kid}"
    assert hsm.destroy(label) == 1
    with hsm.session() as session:
        params = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
            local=True,
        )  # fmt: skip
        params.generate_keypair(
            store=True, label=label, mechanism=Mechanism.EC_KEY_PAIR_GEN,
            public_template={Attribute.TOKEN: False},
        )  # fmt: skip
    answers = [
        client.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "u"}, headers=AUTH)
        for _ in range(3)
    ]
    # A session holding the old handle finds it gone; a fresh lookup finds the impostor,
    # whose signature does not verify.
    assert [a.status_code for a in answers] == [503] * 3
    assert answers[-1].json()["error"] == "signature_invalid"
    assert not any("access_token" in a.json() for a in answers)
    events = _audit_events(client, pid)
    reasons = {e["detail"]["reason"] for e in events if e["action"] == "key.unavailable"}
    assert "signature_invalid" in reasons


def _audit_events(client: SyncClient, pid: str) -> list[dict[str, Any]]:
    """The project's audit events, once the alarm (written aside) is in."""
    import time

    deadline = time.monotonic() + 10
    while True:
        r = client.get(f"/api/v1/audit/events?project_id={pid}", headers=AUTH)
        events = list(r.json()["events"])
        if any(e["detail"].get("reason") == "signature_invalid" for e in events):
            return events
        if time.monotonic() > deadline:
            return events
        time.sleep(0.05)  # the alarm thread commits on its own: poll the audit log


def _can_sign(hsm: SoftHSM, label: str, allowed: bool) -> None:
    """Let the key under ``label`` sign, or not (``CKA_SIGN``), as the token's officer can."""
    from pkcs11 import Attribute, ObjectClass

    with hsm.session() as session:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
        key[Attribute.SIGN] = allowed


def _published(
    client: SyncClient, project: dict[str, Any], uri: str, now: int
) -> tuple[str, StatusList]:
    """The list at ``uri`` as served: its signer's kid and its statuses (verified)."""
    r = client.get(uri.removeprefix("http://testserver"))
    assert r.status_code == 200, r.text
    jwks = JWKSet.from_json(client.get(f"/p/{project['id']}/.well-known/jwks.json").content)
    claims = jwt.decode(
        r.text, jwks, algorithms=["ES256"], typ="statuslist+jwt", issuer=project["issuer"],
        now=now,
    )  # fmt: skip
    header, _ = jwt.decode_unverified(r.text)
    return str(header["kid"]), StatusList.decode(claims["status_list"])


def test_a_list_stays_served_while_the_new_key_cannot_sign_and_its_changes_follow(
    hsm: SoftHSM, hsm_client: tuple[Service, SyncClient]
) -> None:
    """The active key changes to one the token will not sign with (yet): the status list
    keeps its version signed by the previous key (still published), a revocation made
    meanwhile waits, and both reach the list once the key signs again."""
    service, client = hsm_client
    clock = service.clock
    assert isinstance(clock, FakeClock)
    project = _created(client, algorithm="ES256", jwks_max_age=0)
    pid, old_kid = project["id"], project["active_kid"]
    (next_kid,) = [k["kid"] for k in _keys(client, pid) if k["kid"] != old_kid]
    r = client.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "u1"}, headers=AUTH)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    ref = jwt.decode_unverified(token)[1]["status"]["status_list"]
    kid, statuses = _published(client, project, ref["uri"], clock())
    assert (kid, statuses[ref["idx"]]) == (old_kid, VALID)

    told: list[str] = []  # what an /events stream is told: a list's statuses changed
    service.state.status.listeners.append(lambda _pid, uri: told.append(uri))
    _can_sign(hsm, f"jwkit/{pid}/{next_kid}", False)
    try:
        r = client.post(f"/api/v1/projects/{pid}/keys/rotate", headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["active"] == next_kid
        kid, statuses = _published(client, project, ref["uri"], clock())  # not a 404
        assert (kid, statuses[ref["idx"]]) == (old_kid, VALID)
        r = client.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "u2"}, headers=AUTH)
        assert r.status_code == 503, r.text

        r = client.post(f"/api/v1/projects/{pid}/revocations", json={"sub": "u1"}, headers=AUTH)
        assert r.status_code == 201, r.text
        clock.advance(2)
        service.state.sync()  # tried again, still refused: the signed version stays
        kid, statuses = _published(client, project, ref["uri"], clock())
        assert (kid, statuses[ref["idx"]]) == (old_kid, VALID)
        assert told == []  # not before the change is published
    finally:
        _can_sign(hsm, f"jwkit/{pid}/{next_kid}", True)

    clock.advance(2)
    service.state.sync()
    kid, statuses = _published(client, project, ref["uri"], clock())
    assert (kid, statuses[ref["idx"]]) == (next_kid, INVALID)
    assert told == [ref["uri"]]
    r = client.post(f"/api/v1/projects/{pid}/tokens", json={"sub": "u2"}, headers=AUTH)
    assert r.status_code == 200, r.text


# -- real servers ------------------------------------------------------------------------------


def _api(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    r = httpx.request(method, f"{server.url}/api/v1{path}", json=body, headers=AUTH, timeout=60)
    assert r.is_success, r.text
    return r.json() if r.content else None


def _token(server: ServerProcess, project: dict[str, Any], cl: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/p/{project['id']}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(cl["client_id"], cl["client_secret"]),
        timeout=60,
    )


def _verified_kid(server: ServerProcess, project: dict[str, Any], cl: dict[str, Any]) -> str:
    r = _token(server, project, cl)
    assert r.status_code == 200, r.text
    verifier = Verifier.from_jwks_url(
        f"{server.url}/p/{project['id']}/.well-known/jwks.json",
        allow_insecure_http=True,
        issuer=project["issuer"],
        audience=project["audience"],
        token_cache=False,
    )
    try:
        claims = verifier.verify(r.json()["access_token"])
    finally:
        verifier.close()
    assert claims["client_id"] == cl["client_id"]
    return str(claims.header["kid"])


def _spawn(
    home: Path, hsm: SoftHSM, started: list[ServerProcess], port: int = 0, **extra: str
) -> ServerProcess:
    env = server_env(home, **hsm.env(JWKIT_SCHEDULER_INTERVAL="0", **extra))
    if "JWKIT_PKCS11_PIN_FILE" in extra:
        del env["JWKIT_PKCS11_PIN"]
    server = ServerProcess(home, env, port=port)
    started.append(server)
    return server.start()


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


def test_token_endpoint_rotation_replace_revoke_and_restart(
    hsm: SoftHSM, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    server = _spawn(tmp_path, hsm, servers)
    found: dict[str, str] = {}
    for alg in ("ES256", "RS256"):
        project = _api(
            server, "POST", "/projects", {"name": alg, "algorithm": alg, "jwks_max_age": 0}
        )
        pid = project["id"]
        cl = _api(server, "POST", f"/projects/{pid}/clients", {"name": "svc"})
        assert _verified_kid(server, project, cl) == project["active_kid"]

        rotated = _api(server, "POST", f"/projects/{pid}/keys/rotate")
        assert _verified_kid(server, project, cl) == rotated["active"]
        _api(
            server,
            "POST",
            f"/projects/{pid}/keys/{rotated['retiring']}/revoke",
            {"emergency": True},
        )
        assert f"jwkit/{pid}/{rotated['retiring']}" not in hsm.private_keys(f"jwkit/{pid}/")

        replaced = _api(
            server, "POST", f"/projects/{pid}/keys", {"mode": "replace", "confirm_invalidate": True}
        )
        assert replaced["backend"] == "pkcs11"
        assert _verified_kid(server, project, cl) == replaced["kid"]
        held = hsm.private_keys(f"jwkit/{pid}/")
        assert f"jwkit/{pid}/{rotated['active']}" not in held  # replaced: destroyed at once
        live = {k["kid"] for k in _api(server, "GET", f"/projects/{pid}/keys")["keys"]
                if k["state"] != "revoked"}  # fmt: skip
        assert set(held) == {f"jwkit/{pid}/{kid}" for kid in live}
        destroyed = _api(server, "GET", f"/audit/events?project_id={pid}&action=key.destroyed")
        assert {e["kid"] for e in destroyed["events"]} == {rotated["retiring"], rotated["active"]}
        found[pid] = replaced["kid"]
        found[pid + ":client"] = cl["client_id"] + " " + cl["client_secret"]

    server.stop()  # a restart: the keys are found again by their labels
    server = _spawn(tmp_path, hsm, servers)
    for pid, kid in [(p, k) for p, k in found.items() if ":" not in p]:
        project = _api(server, "GET", f"/projects/{pid}")
        client_id, secret = found[pid + ":client"].split(" ")
        assert (
            _verified_kid(server, project, {"client_id": client_id, "client_secret": secret}) == kid
        )

    # The console's key page says where each key lives.
    with httpx.Client(base_url=server.url, timeout=60) as console:
        form = console.get("/console/login").text
        csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        r = console.post(
            "/console/login",
            data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf},
        )
        assert r.status_code == 303, r.text
        page = console.get(f"/console/projects/{next(iter(found))}/keys").text
    assert 'data-backend="pkcs11">in a PKCS#11 token (HSM)' in page
    assert "in this database" not in page
    assert page.count("· HSM</span>") >= 2

    # No private key material in the database or the logs in this mode.
    server.stop()
    db = (tmp_path / ".jwkit" / "jwkit.db").read_bytes()
    logs = server.log()
    with sqlite3.connect(tmp_path / ".jwkit" / "jwkit.db") as conn:
        sealed = conn.execute(
            "SELECT count(*) FROM keys WHERE backend != 'pkcs11' OR length(wrapped_dek) > 0 "
            "OR length(ciphertext) > 0"
        ).fetchone()[0]
    assert sealed == 0
    for text in (db, logs.encode()):
        assert b"PRIVATE KEY" not in text
        assert b'"d":' not in text and b'"p":' not in text


def test_two_replicas_share_one_token_and_see_a_deleted_key(
    hsm: SoftHSM, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    port = free_port()  # one issuer (replica a's address) for both replicas
    issuer = {"JWKIT_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    a = _spawn(tmp_path, hsm, servers, port, **issuer)
    pin = tmp_path / "pin"
    pin.write_text(hsm.pin + "\n")
    pin.chmod(0o600)
    # same SQLite database, same token; the PIN from a file this time
    b = _spawn(tmp_path, hsm, servers, **issuer, JWKIT_PKCS11_PIN_FILE=str(pin))
    project = _api(a, "POST", "/projects", {"name": "two", "jwks_max_age": 0})
    pid = project["id"]
    cl = _api(a, "POST", f"/projects/{pid}/clients", {"name": "svc"})
    assert _verified_kid(a, project, cl) == project["active_kid"]
    assert wait_for(lambda: _token(b, project, cl).status_code == 200)
    assert _verified_kid(b, project, cl) == project["active_kid"]

    rotated = _api(b, "POST", f"/projects/{pid}/keys/rotate")
    assert wait_for(lambda: _verified_kid(a, project, cl) == rotated["active"])

    # Behind the service's back: the active key leaves the token.
    assert hsm.destroy(f"jwkit/{pid}/{rotated['active']}") == 1
    r = _token(a, project, cl)
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "temporarily_unavailable"
    assert "key custody alarm" in a.log()
    events = wait_for(
        lambda: _api(a, "GET", f"/audit/events?project_id={pid}&action=key.unavailable")["events"]
    )
    assert events[0]["kid"] == rotated["active"]
    assert events[0]["detail"]["reason"] == "signing_key_missing"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"JWKIT_PKCS11_MODULE": "/nonexistent/libpkcs11.so"}, "PKCS#11 module not found"),
        ({"JWKIT_PKCS11_PIN": "0000"}, "refused the PIN"),
        ({"JWKIT_PKCS11_TOKEN_LABEL": "no-such-token"}, "no PKCS#11 token labelled"),
        ({"JWKIT_PKCS11_PIN": ""}, "needs JWKIT_PKCS11_PIN"),
    ],
)
def test_start_up_refuses_a_broken_backend_without_falling_back(
    hsm: SoftHSM, tmp_path: Path, change: dict[str, str], message: str
) -> None:
    env = server_env(tmp_path, **hsm.env(**change))
    if change.get("JWKIT_PKCS11_PIN") == "":
        del env["JWKIT_PKCS11_PIN"]
    done = subprocess.run(
        [sys.executable, "-m", "jwkit.cli", "serve", "--port", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert not (tmp_path / ".jwkit" / "jwkit.db").exists() or "project" not in done.stdout
