"""``jwkit status inspect``: the draft's own example token, and lists served by a real local
issuer (signature checked with its JWKS, found by discovery or given)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jwkit import JWK
from jwkit.cli import main
from jwkit.cli.status import count_statuses
from jwkit.jose import jwt
from jwkit.jose.statuslist import INVALID, SUSPENDED, StatusList
from tests.support.status_server import PREFIX, StatusServer

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "status-list"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def key() -> JWK:
    return JWK.generate("ES256").replace(kid="k1")


@pytest.fixture
def server(key: JWK) -> Iterator[StatusServer]:
    with StatusServer() as srv:
        srv.serve_jwks({"keys": [key.public().to_dict()]})
        discovery = {"issuer": srv.issuer, "jwks_uri": srv.jwks_url}
        srv.serve(
            PREFIX + "/.well-known/openid-configuration", json.dumps(discovery), "application/json"
        )
        yield srv


def list_token(key: JWK, server: StatusServer, **extra: Any) -> str:
    lst = StatusList(1000, 2)
    lst[1], lst[2], lst[999] = INVALID, SUSPENDED, INVALID
    now = int(time.time())
    claims = {
        "iss": server.issuer,
        "sub": server.list_url(1),
        "iat": now,
        "exp": now + 600,
        "ttl": 60,
        "status_list": lst.encode(),
        **extra,
    }
    return jwt.encode(claims, key, headers={"typ": "statuslist+jwt"})


def test_the_drafts_example_token(runner):
    result = runner.invoke(
        main,
        ["status", "inspect", str(VECTORS / "status_list_jwt_raw.md"), "--json",
         "--key", str(VECTORS / "example_key_public.json"), "--index", "0", "--index", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["header"]["typ"] == "statuslist+jwt"
    assert report["claims"]["sub"] == "https://example.com/statuslists/1"
    # §4.1's 1-bit example: bytes b9 a3 = 1001 1101 1100 0101 from the low bit.
    assert report["list"] == {
        "bits": 1,
        "entries": 16,
        "counts": {"VALID": 7, "INVALID": 9},
        "entries_asked": {"0": "INVALID", "1": "VALID"},
    }
    assert report["signature"] == {
        "checked": True,
        "valid": True,
        "kid": "12",
        "keys": str(VECTORS / "example_key_public.json"),
    }


def test_a_served_list_checked_with_keys_from_discovery(runner, server, key):
    server.serve_list(list_token(key, server))
    result = runner.invoke(main, ["status", "inspect", server.list_url(1), "--allow-insecure-http"])
    assert result.exit_code == 0, result.output
    assert "2 bits per entry, 1000 entries" in result.output
    assert "VALID: 997" in result.output
    assert "INVALID: 2" in result.output
    assert "SUSPENDED: 1" in result.output
    assert "signature: valid (kid 'k1'" in result.output
    assert server.count(PREFIX + "/.well-known/openid-configuration") == 1


def test_problems_exit_1(runner, server, key):
    other = JWK.generate("ES256").replace(kid="k1")
    server.serve_list(
        list_token(other, server, sub=server.list_url(2), exp=int(time.time()) - 5, ttl=0)
    )
    result = runner.invoke(
        main,
        ["status", "inspect", server.list_url(1), "--allow-insecure-http", "--json",
         "--jwks-url", server.jwks_url],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    codes = {f["code"] for f in json.loads(result.stdout)["findings"]}
    assert codes == {"sub_mismatch", "expired", "invalid_ttl", "invalid_signature"}


def test_unreadable_inputs_exit_3(runner, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = f"http://127.0.0.1:{port}/p/x/statuslists/1"
    result = runner.invoke(main, ["status", "inspect", dead, "--allow-insecure-http"])
    assert result.exit_code == 3
    result = runner.invoke(main, ["status", "inspect", "http://example.com/list"])
    assert result.exit_code == 3  # plain http refused without the flag
    assert "https" in result.output
    result = runner.invoke(main, ["status", "inspect", str(tmp_path / "missing.jwt")])
    assert result.exit_code == 3
    garbage = tmp_path / "garbage.jwt"
    garbage.write_text("not a token")
    result = runner.invoke(main, ["status", "inspect", str(garbage)])
    assert result.exit_code == 1
    assert "not_a_jwt" in result.output


def test_count_statuses_matches_entry_by_entry():
    for bits in (1, 2, 4, 8):
        lst = StatusList(333, bits)
        for index in range(0, 333, 7):
            lst[index] = index % (1 << bits)
        expected: dict[int, int] = {}
        for index in range(len(lst)):
            expected[lst[index]] = expected.get(lst[index], 0) + 1
        assert count_statuses(lst) == dict(sorted(expected.items()))
