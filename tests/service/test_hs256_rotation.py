"""HS256 end to end: the shared secret is shown once, and no key whose secret nobody was shown
ever signs (rotation and the scheduler promote only a pre-shared next secret)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from jwkit.cli import main
from jwkit.jose import jwt
from jwkit.jose.jwk import JWKSet
from jwkit.service.domain import keys
from jwkit.service.runtime import Service

from .conftest import ADMIN_TOKEN, AUTH, FakeClock, SyncClient

DAY = 86400


def _published(client: SyncClient, pid: str) -> dict[str, str]:
    listed = client.get(f"/api/v1/projects/{pid}/keys", headers=AUTH).json()["keys"]
    return {k["kid"]: k["state"] for k in listed if k["state"] != "revoked"}


def _verify(client: SyncClient, project: dict[str, Any], secrets: dict[str, Any], now: int) -> str:
    """Mint a token and verify it with the secrets a verifier was given; return its kid."""
    r = client.post(f"/api/v1/projects/{project['id']}/tokens", json={"sub": "u"}, headers=AUTH)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    jwt.decode(
        token,
        JWKSet.from_dict(secrets),
        algorithms=["HS256"],
        issuer=project["issuer"],
        audience=project["audience"],
        now=now,
    )
    return str(jwt.decode_unverified(token)[0]["kid"])


def _scheduler_pass(service: Service, pid: str, clock: FakeClock) -> list[str]:
    with service.write() as session:
        return keys.run_due_transitions(
            session, pid, service.vault, now=clock(), clock_skew=service.settings.clock_skew
        )


def test_rotation_promotes_only_a_pre_shared_next_secret(
    client: SyncClient, service: Service, clock: FakeClock
) -> None:
    created = client.post(
        "/api/v1/projects",
        headers=AUTH,
        json={
            "name": "hmac",
            "algorithm": "HS256",
            "jwks_max_age": 60,
            "rotation_days": 1,
        },
    ).json()
    pid = created["id"]
    verifier_keys = created["secret_jwks"]  # what the admin gave every verifier
    first = created["active_kid"]

    # The scheduler rotates to the next secret handed out at creation; tokens keep verifying.
    clock.advance(DAY + 1)
    assert _scheduler_pass(service, pid, clock) == [
        f"rotated to {next(k['kid'] for k in verifier_keys['keys'] if k['kid'] != first)}"
    ]
    second = _verify(client, created, verifier_keys, clock())
    assert second != first
    # ... and creates no next key behind the admin's back: nobody was shown its secret.
    assert "next" not in _published(client, pid).values()
    clock.advance(DAY + 1)
    assert _scheduler_pass(service, pid, clock) == [f"revoked {first}"]  # only the retired one
    assert _verify(client, created, verifier_keys, clock()) == second  # still the shared one

    # Graceful and emergency rotation without a pre-shared next secret: refused, plainly.
    for body in ({}, {"emergency": True}):
        r = client.post(f"/api/v1/projects/{pid}/keys/rotate", json=body, headers=AUTH)
        assert r.status_code == 409 and r.json()["error"] == "no_next_secret"
        assert "generate one" in r.json()["message"]
    r = client.post(
        f"/api/v1/projects/{pid}/keys/{second}/revoke", json={"emergency": True}, headers=AUTH
    )
    assert r.status_code == 409 and "mode=replace" in r.json()["message"]

    # The admin generates the next secret (shown once), distributes it; rotation promotes it.
    r = client.post(f"/api/v1/projects/{pid}/keys", json={"mode": "next"}, headers=AUTH)
    assert r.status_code == 201
    nxt = r.json()["secret_jwk"]
    assert nxt["kid"] == r.json()["kid"] and r.json()["state"] == "next"
    verifier_keys = {"keys": [*verifier_keys["keys"], nxt]}
    clock.advance(61 + 6)  # jwks_max_age, plus the promotion margin (1 s + 5 s)
    rotated = client.post(f"/api/v1/projects/{pid}/keys/rotate", json={}, headers=AUTH).json()
    assert rotated == {"active": nxt["kid"], "retiring": second, "next": None}
    assert _verify(client, created, verifier_keys, clock()) == nxt["kid"]
    assert nxt["k"] not in client.get(f"/api/v1/projects/{pid}/keys", headers=AUTH).text

    # Replacing a leaked secret at once hands out the new one and pre-publishes nothing.
    r = client.post(
        f"/api/v1/projects/{pid}/keys",
        headers=AUTH,
        json={"mode": "replace", "confirm_invalidate": True},
    )
    assert r.status_code == 201 and r.json()["secret_jwk"]["kid"] == r.json()["kid"]
    replaced = {"keys": [r.json()["secret_jwk"]]}
    assert _verify(client, created, replaced, clock()) == r.json()["kid"]
    assert "next" not in _published(client, pid).values()


def test_asymmetric_projects_still_pre_publish_the_next_key(
    client: SyncClient, service: Service, clock: FakeClock
) -> None:
    created = client.post(
        "/api/v1/projects", headers=AUTH, json={"name": "ec", "jwks_max_age": 0}
    ).json()
    rotated = client.post(
        f"/api/v1/projects/{created['id']}/keys/rotate", json={}, headers=AUTH
    ).json()
    assert rotated["next"] is not None
    assert list(_published(client, created["id"]).values()).count("next") == 1


def test_cli_shows_the_shared_secret_once_and_warns_without_a_next_one(spawn: Any) -> None:
    server = spawn()
    base = ["admin", "--url", server.url, "--token", ADMIN_TOKEN]
    runner = CliRunner()
    created = runner.invoke(
        main, [*base, "projects", "create", "hs", "--algorithm", "HS256", "--jwks-max-age", "0"]
    )
    assert created.exit_code == 0, created.output
    assert "Shared secret, shown once; store it now" in created.stderr
    assert "secret_jwks.json" in created.stderr
    assert "public key" not in created.output.lower()
    secrets = json.loads(created.stdout[created.stdout.index("{") :])
    assert [k["kty"] for k in secrets["keys"]] == ["oct", "oct"]
    pid = created.stdout.splitlines()[1].split()[0]  # the table's first data row
    assert pid.startswith("proj_")

    listed = runner.invoke(main, [*base, "keys", "list", pid])
    assert listed.exit_code == 0 and "warning" not in listed.stderr
    rotated = runner.invoke(main, [*base, "keys", "rotate", pid])
    assert rotated.exit_code == 0 and "keys generate" in rotated.stderr
    listed = runner.invoke(main, [*base, "keys", "list", pid])
    assert "no pre-shared next key" in listed.stderr
    for k in secrets["keys"]:
        assert k["k"] not in listed.output

    generated = runner.invoke(main, [*base, "keys", "generate", pid])
    assert generated.exit_code == 0, generated.output
    assert "shown once; store it now" in generated.stderr
    assert "secret_jwks.json" in generated.stderr
    nxt = json.loads(generated.stdout[generated.stdout.index("{") :])
    assert nxt["kty"] == "oct" and nxt["kid"] in generated.stdout.splitlines()[0]
    listed = runner.invoke(main, [*base, "keys", "list", pid])
    assert "warning" not in listed.stderr and nxt["k"] not in listed.output


@pytest.mark.parametrize("alg", ["ES256", "HS256"])
def test_pre_shared_is_the_hmac_family(alg: str, service: Service, clock: FakeClock) -> None:
    from jwkit.service.domain import projects

    with service.write() as session:
        project = projects.create_project(
            session, projects.ProjectSpec(name="p", algorithm=alg), now=clock(), actor="t"
        )
        assert keys.pre_shared(project) is (alg == "HS256")
