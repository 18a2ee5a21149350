"""Bring your own key: a private key made elsewhere becomes a project's next key.

Keys come from the real ``openssl`` binary (``genrsa 4096``, ``ecparam -genkey``), from an
encrypted PKCS#8 file and from a private JWK. An imported key is published as ``next``,
rotated in by the normal rules and signs tokens a jwkit :class:`~jwkit.Verifier` accepts; weak,
mismatched and public-only keys are refused with a typed 422; the private material is in no
answer, no log line and no database column in the clear.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from jwkit.jose.jwk import JWK, JWKSet
from jwkit.service.runtime import Service
from jwkit.verify.verifier import Verifier
from tests.support.byok import HAS_OPENSSL, openssl_ec, openssl_rsa, pem_body_lines

from .conftest import ADMIN_TOKEN, AUTH, FakeClock, ServerProcess, SyncClient


def _project(client: SyncClient, algorithm: str = "ES256", **extra: Any) -> dict[str, Any]:
    body = {"name": "byok", "algorithm": algorithm, "token_status": False, **extra}
    r = client.post("/api/v1/projects", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _import(client: SyncClient, pid: str, **body: Any) -> httpx.Response:
    return client.post(f"/api/v1/projects/{pid}/keys/import", json=body, headers=AUTH)


def _jwks(client: SyncClient, pid: str) -> dict[str, Any]:
    r = client.get(f"/p/{pid}/.well-known/jwks.json")
    assert r.status_code == 200
    return dict(r.json())


def _no_private(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text


# -- the happy paths, in process ---------------------------------------------------------------


def _encrypted_pkcs8(tmp_path: Path) -> tuple[str, str]:
    pem = openssl_ec(tmp_path / "plain.pem")
    key = serialization.load_pem_private_key(pem.encode(), None)
    out = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"open sesame"),
    )
    return out.decode(), "open sesame"


@pytest.mark.parametrize(
    ("name", "algorithm"),
    [
        ("ec-p256-openssl", "ES256"),
        ("rsa-pkcs1-traditional", "PS256"),
        ("ec-encrypted-pkcs8", "ES256"),
        ("jwk-ed25519", "EdDSA"),
        ("jwk-p384", "ES384"),
    ],
)
def test_import_becomes_the_next_key(
    client: SyncClient, service: Service, tmp_path: Path, name: str, algorithm: str
) -> None:
    project = _project(client, algorithm)
    pid = project["id"]
    secrets: list[str] = []
    body: dict[str, Any]
    if name == "ec-p256-openssl":
        pem = openssl_ec(tmp_path / "ec.pem")
        body, secrets = {"pem": pem}, pem_body_lines(pem)
    elif name == "rsa-pkcs1-traditional":
        pem = openssl_rsa(tmp_path / "rsa.pem", 2048, traditional=True)
        assert "BEGIN RSA PRIVATE KEY" in pem
        body, secrets = {"pem": pem}, pem_body_lines(pem)
    elif name == "ec-encrypted-pkcs8":
        pem, passphrase = _encrypted_pkcs8(tmp_path)
        body, secrets = {"pem": pem, "passphrase": passphrase}, [*pem_body_lines(pem), passphrase]
    else:
        jwk = JWK.generate(algorithm, kid=f"mine-{name}").to_dict(private=True)
        body, secrets = {"jwk": jwk}, [jwk["d"]]
    before = {k["kid"] for k in _jwks(client, pid)["keys"]}
    r = _import(client, pid, **body)
    assert r.status_code == 201, r.text
    _no_private(r.text, secrets)
    out = r.json()
    assert out["state"] == "next" and out["alg"] == algorithm
    assert "d" not in out["public_jwk"]
    kid = out["kid"]
    if name.startswith("jwk"):
        assert kid == f"mine-{name}"  # the JWK's kid is kept
    else:
        assert kid == JWK.from_dict(out["public_jwk"]).thumbprint()
    published = _jwks(client, pid)
    assert kid in {k["kid"] for k in published["keys"]}
    _no_private(json.dumps(published), secrets)
    # the generated next key it superseded is gone (it never signed)
    keys = client.get(f"/api/v1/projects/{pid}/keys", headers=AUTH).json()["keys"]
    states = {k["kid"]: k["state"] for k in keys}
    assert [k for k in before if states[k] == "next"] == []
    assert sum(1 for s in states.values() if s == "next") == 1
    events = client.get(f"/api/v1/projects/{pid}/events", headers=AUTH).json()["events"]
    imported = [e for e in events if e["action"] == "key.imported"]
    assert len(imported) == 1 and imported[0]["kid"] == kid
    _no_private(json.dumps(events), secrets)


def test_imported_key_rotates_in_and_signs(
    client: SyncClient, service: Service, clock: FakeClock
) -> None:
    project = _project(client, "ES256")
    pid = project["id"]
    mine = JWK.generate("ES256", kid="hand-made-1")
    r = _import(client, pid, jwk=mine.to_dict(private=True))
    assert r.status_code == 201, r.text
    # not yet: every verifier's cached JWKS must hold it first (normal rule)
    early = client.post(f"/api/v1/projects/{pid}/keys/rotate", headers=AUTH)
    assert early.status_code == 409 and early.json()["error"] == "rotation_too_early"
    clock.advance(project["jwks_max_age"] + 10)
    rotated = client.post(f"/api/v1/projects/{pid}/keys/rotate", headers=AUTH)
    assert rotated.status_code == 200 and rotated.json()["active"] == "hand-made-1"
    cred = client.post(f"/api/v1/projects/{pid}/clients", json={"name": "c"}, headers=AUTH).json()
    t = client.post(
        f"/p/{pid}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(cred["client_id"], cred["client_secret"]),
    )
    assert t.status_code == 200, t.text
    token = t.json()["access_token"]
    verifier = Verifier(
        JWKSet.from_dict(_jwks(client, pid)),
        issuer=project["issuer"],
        audience=project["audience"],
        clock=clock,
    )
    claims = verifier.verify(token)
    assert claims.header["kid"] == "hand-made-1"
    # and it verifies with the public half of the key the user holds
    assert Verifier(
        mine.public(), issuer=project["issuer"], audience=project["audience"], clock=clock
    ).verify(token)


# -- refusals ------------------------------------------------------------------------------------


def _refusals(tmp_path: Path) -> list[tuple[str, str, dict[str, Any], int, str]]:
    weak = openssl_rsa(tmp_path / "weak.pem", 1024)
    p384 = openssl_ec(tmp_path / "p384.pem", "secp384r1")
    ec = openssl_ec(tmp_path / "ec.pem")
    public_pem = (
        serialization.load_pem_private_key(ec.encode(), None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    encrypted, _ = _encrypted_pkcs8(tmp_path)
    es384 = JWK.generate("ES384").to_dict(private=True)
    wrong_alg = JWK.generate("ES256").replace(alg="ES256").to_dict(private=True)
    wrong_alg["alg"] = "ES384"
    return [
        ("rsa-1024", "RS256", {"pem": weak}, 422, "weak_key"),
        ("p384-into-es256", "ES256", {"pem": p384}, 422, "alg_mismatch"),
        ("ec-into-rs256", "RS256", {"pem": ec}, 422, "alg_mismatch"),
        ("jwk-es384-into-es256", "ES256", {"jwk": es384}, 422, "alg_mismatch"),
        ("jwk-alg-mismatch", "ES256", {"jwk": wrong_alg}, 422, "alg_mismatch"),
        ("public-pem", "ES256", {"pem": public_pem}, 422, "public_key_only"),
        (
            "public-jwk",
            "ES256",
            {"jwk": JWK.generate("ES256").public().to_dict()},
            422,
            "public_key_only",
        ),
        ("encrypted-no-passphrase", "ES256", {"pem": encrypted}, 422, "passphrase_required"),
        (
            "wrong-passphrase",
            "ES256",
            {"pem": encrypted, "passphrase": "nope"},
            422,
            "wrong_passphrase",
        ),
        (
            "garbage",
            "ES256",
            {"pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"},
            422,
            "invalid_key",
        ),
        ("oct-jwk", "ES256", {"jwk": {"kty": "oct", "k": "A" * 43}}, 422, "invalid_key"),
        ("into-hs256", "HS256", {"pem": ec}, 422, "alg_mismatch"),
        ("both", "ES256", {"pem": ec, "jwk": es384}, 422, "invalid_input"),
        ("oversized", "ES256", {"pem": ec + "\n" + "A" * 17000}, 422, "validation_error"),
        ("not-a-dict", "ES256", {"jwk": "x"}, 422, "validation_error"),
    ]


def test_weak_invalid_and_mismatched_keys_are_refused(
    client: SyncClient, service: Service, tmp_path: Path
) -> None:
    pids: dict[str, str] = {}
    for name, algorithm, body, status, code in _refusals(tmp_path):
        pid = pids.get(algorithm) or _project(client, algorithm)["id"]
        pids[algorithm] = pid
        before = client.get(f"/api/v1/projects/{pid}/keys", headers=AUTH).json()
        r = _import(client, pid, **body)
        assert (r.status_code, r.json()["error"]) == (status, code), (name, r.text)
        assert r.json()["message"], name
        secrets = [*pem_body_lines(body.get("pem") or ""), str(body.get("passphrase", "@@@"))]
        _no_private(r.text, [s for s in secrets if s != "@@@"])
        jwk = body.get("jwk")
        if isinstance(jwk, dict) and "d" in jwk:
            _no_private(r.text, [jwk["d"]])
        after = client.get(f"/api/v1/projects/{pid}/keys", headers=AUTH).json()
        assert after == before, name  # nothing changed


def test_kid_and_key_collisions_are_refused(client: SyncClient, service: Service) -> None:
    pid = _project(client, "ES256")["id"]
    mine = JWK.generate("ES256", kid="k1")
    assert _import(client, pid, jwk=mine.to_dict(private=True)).status_code == 201
    again = _import(client, pid, jwk=mine.replace(kid="k2").to_dict(private=True))
    assert (again.status_code, again.json()["error"]) == (409, "key_exists")
    other = JWK.generate("ES256", kid="k1")
    taken = _import(client, pid, jwk=other.to_dict(private=True))
    assert (taken.status_code, taken.json()["error"]) == (409, "kid_conflict")
    active = next(
        k["kid"]
        for k in client.get(f"/api/v1/projects/{pid}/keys", headers=AUTH).json()["keys"]
        if k["state"] == "active"
    )
    with_kid = _import(client, pid, jwk=other.to_dict(private=True), kid=active)
    assert (with_kid.status_code, with_kid.json()["error"]) == (409, "kid_conflict")
    bad_kid = _import(client, pid, jwk=other.to_dict(private=True), kid="has space")
    assert bad_kid.status_code == 422


# -- a real server, a real openssl RSA 4096 key, the CLI -----------------------------------------


def _cli(
    server: ServerProcess, *args: str, stdin: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {"JWKIT_ADMIN_URL": server.url, "JWKIT_ADMIN_TOKEN": ADMIN_TOKEN, "PATH": "/usr/bin:/bin"}
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "jwkit.cli", "admin", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(not HAS_OPENSSL, reason="needs the openssl binary")
def test_openssl_rsa_4096_through_the_cli_on_a_real_server(spawn: Any, tmp_path: Path) -> None:
    server = spawn()
    with server.api() as api:
        project = api.post(
            "/api/v1/projects",
            json={"name": "rsa", "algorithm": "RS256", "jwks_max_age": 0, "token_status": False},
        ).json()
        pid = project["id"]
        pem_path = tmp_path / "rsa4096.pem"
        pem = openssl_rsa(pem_path, 4096)
        secrets = pem_body_lines(pem)
        done = _cli(server, "keys", "import", pid, str(pem_path))
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("next key ")
        _no_private(done.stdout + done.stderr, secrets)
        kid = done.stdout.split()[2]
        # the same PEM from standard input: already there
        again = _cli(server, "keys", "import", pid, "-", stdin=pem)
        assert again.returncode == 1 and "key_exists" in again.stderr
        _no_private(again.stdout + again.stderr, secrets)
        jwks = httpx.get(f"{server.url}/p/{pid}/.well-known/jwks.json").json()
        entry = next(k for k in jwks["keys"] if k["kid"] == kid)
        assert JWK.from_dict(entry).public().to_dict()["n"] == entry["n"]
        assert len(JWK.from_dict(entry).to_pem().splitlines()) > 10  # a 4096-bit modulus
        rotated = api.post(f"/api/v1/projects/{pid}/keys/rotate").json()
        assert rotated["active"] == kid
        client = api.post(f"/api/v1/projects/{pid}/clients", json={"name": "c"}).json()
        t = httpx.post(
            f"{server.url}/p/{pid}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
        )
        assert t.status_code == 200, t.text
        with Verifier.from_jwks_url(
            project["jwks_uri"],
            allow_insecure_http=True,
            issuer=project["issuer"],
            audience=project["audience"],
        ) as v:
            assert v.verify(t.json()["access_token"]).header["kid"] == kid
        # nothing private in any answer, the log, or the database in the clear
        answers = [
            api.get(f"/api/v1/projects/{pid}/keys").text,
            api.get(f"/api/v1/projects/{pid}").text,
            api.get(f"/api/v1/projects/{pid}/events").text,
        ]
        server.stop()
        db = sqlite3.connect(tmp_path / ".jwkit" / "jwkit.db")
        try:
            dump = "\n".join(db.iterdump())
        finally:
            db.close()
        der = serialization.load_pem_private_key(pem.encode(), None).private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        assert der.hex() not in dump.lower()
        private_d = JWK.from_pem(pem).to_dict(private=True)["d"]
        _no_private("\n".join([*answers, server.log(), dump]), [private_d])
        _no_private("\n".join([*answers, server.log(), dump]), secrets)


def test_cli_reads_an_encrypted_pem_passphrase_from_the_environment(
    spawn: Any, tmp_path: Path
) -> None:
    server = spawn()
    with server.api() as api:
        pid = api.post("/api/v1/projects", json={"name": "enc", "algorithm": "ES256"}).json()["id"]
    path = tmp_path / "enc.pem"
    pem, passphrase = _encrypted_pkcs8(tmp_path)
    path.write_text(pem)
    refused = _cli(server, "keys", "import", pid, str(path))
    assert refused.returncode == 1
    assert "passphrase_required" in refused.stderr and "JWKIT_KEY_PASSPHRASE" in refused.stderr
    done = _cli(server, "keys", "import", pid, str(path), JWKIT_KEY_PASSPHRASE=passphrase)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("next key ")
    output = refused.stdout + refused.stderr + done.stdout + done.stderr + server.log()
    _no_private(output, [*pem_body_lines(pem), passphrase])
