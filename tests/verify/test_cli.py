"""`jwkit token verify` and `jwkit jwks inspect`, against real files and the local server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from jwkit import JWK
from jwkit.cli import main
from jwkit.cli.jwks import audit_jwks
from tests.support.jwks_server import JWKSServer
from tests.verify.conftest import AUDIENCE, ISSUER, jwks_of, make_key, token_for


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def codes(result_stdout: str) -> list[str]:
    return [f["code"] for f in json.loads(result_stdout)["findings"]]


# -- token verify --------------------------------------------------------------------------------
def test_verify_with_key_file(runner: CliRunner, tmp_path: Path, es_key: JWK) -> None:
    path = tmp_path / "public_key.json"
    path.write_text(es_key.public().to_json())
    token = token_for(es_key)
    result = runner.invoke(
        main, ["token", "verify", token, "--key", str(path), "--audience", AUDIENCE,
               "--expect-issuer", ISSUER],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sub"] == "user-1"
    # from stdin
    result = runner.invoke(main, ["token", "verify", "-", "--key", str(path)], input=token)
    assert result.exit_code == 0
    # wrong audience -> exit 1 with the error code on stderr
    result = runner.invoke(
        main, ["token", "verify", token, "--key", str(path), "--audience", "other"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: invalid_audience:")
    assert result.stdout == ""


def test_verify_usage_errors(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["token", "verify", "x.y.z"])
    assert result.exit_code == 2
    result = runner.invoke(
        main, ["token", "verify", "x.y.z", "--key", "a", "--jwks-url", "https://x.example"]
    )
    assert result.exit_code == 2
    result = runner.invoke(main, ["token", "verify", "x.y.z", "--jwks-url", "http://x.example"])
    assert result.exit_code == 2 and "https" in result.output
    result = runner.invoke(main, ["token", "verify", "x.y.z", "--provider", "nope"])
    assert result.exit_code == 2
    result = runner.invoke(
        main, ["token", "verify", "x.y.z", "--provider", "auth0", "--param", "oops"]
    )
    assert result.exit_code == 2
    missing = tmp_path / "missing.json"
    result = runner.invoke(main, ["token", "verify", "x.y.z", "--key", str(missing)])
    assert result.exit_code == 3


def test_verify_with_jwks_url_issuer_and_provider(
    runner: CliRunner, jwks_server: JWKSServer, es_key: JWK
) -> None:
    jwks_server.serve_jwks(jwks_of(es_key))
    jwks_server.serve_discovery()
    token = token_for(es_key, {"iss": jwks_server.url})
    for args in (
        ["--jwks-url", jwks_server.jwks_url],
        ["--issuer", jwks_server.url],
        ["--provider", "oidc", "--param", f"issuer={jwks_server.url}"],
    ):
        result = runner.invoke(
            main, ["token", "verify", token, *args, "--allow-insecure-http", "--alg", "ES256"]
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["iss"] == jwks_server.url
    jwks_server.fail(500)
    result = runner.invoke(
        main, ["token", "verify", token, "--jwks-url", jwks_server.jwks_url + "?x",
               "--allow-insecure-http"],
    )  # fmt: skip
    assert result.exit_code == 1 and "jwks_unavailable" in result.stderr


# -- jwks inspect ---------------------------------------------------------------------------------
def test_inspect_clean_jwks_url(runner: CliRunner, jwks_server: JWKSServer) -> None:
    key = make_key("ES256", "k1")
    entry = {**key.public().to_dict(), "use": "sig", "alg": "ES256"}
    jwks_server.serve_jwks({"keys": [entry]})
    result = runner.invoke(
        main, ["jwks", "inspect", jwks_server.jwks_url, "--allow-insecure-http", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True
    result = runner.invoke(main, ["jwks", "inspect", jwks_server.jwks_url])
    assert result.exit_code == 1 and "insecure_url" in result.stdout


def test_inspect_finds_every_problem(runner: CliRunner, tmp_path: Path) -> None:
    small = JWK.generate("RS256", size=1024) if _small_rsa_ok() else None
    leaked = make_key("ES256", "leak").to_dict(private=True)
    p384 = make_key("ES384", "curve").public().to_dict()
    entries = [
        {**leaked, "use": "sig"},
        {**make_key("ES256", "dup").public().to_dict(), "use": "sig"},
        {**make_key("ES256", "dup").public().to_dict(), "use": "sig"},
        {k: v for k, v in make_key("ES256").public().to_dict().items() if k != "kid"},
        {**p384, "alg": "ES256", "use": "sig"},
        {k: v for k, v in make_key("ES256", "no-alg").public().to_dict().items() if k != "alg"},
        {
            "kty": "EC",
            "crv": "P-256",
            "x": "AA",
            "y": "AA",
            "kid": "bad",
            "alg": "ES256",
            "use": "sig",
        },
    ]
    if small is not None:
        entries.append({**small.public().to_dict(), "use": "sig", "kid": "small"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": entries}))
    result = runner.invoke(main, ["jwks", "inspect", str(path), "--json"])
    assert result.exit_code == 1
    found = codes(result.stdout)
    for code in (
        "private_key",
        "duplicate_kid",
        "missing_kid",
        "missing_alg",
        "alg_mismatch",
        "invalid_key",
    ):
        assert code in found, code
    if small is not None:
        assert "weak_rsa" in found
    human = runner.invoke(main, ["jwks", "inspect", str(path)])
    assert human.exit_code == 1 and "private_key [leak]" in human.stdout
    # the secret itself is never printed
    assert leaked["d"] not in human.stdout + result.stdout


def _small_rsa_ok() -> bool:
    try:
        JWK.generate("RS256", size=1024)
    except Exception:
        return False
    return True


def test_weak_rsa_from_raw_modulus() -> None:
    n = (1 << 1023) | 1
    raw = n.to_bytes(128, "big")
    import base64

    entry = {
        "kty": "RSA",
        "kid": "w",
        "alg": "RS256",
        "use": "sig",
        "n": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
        "e": "AQAB",
    }
    assert "weak_rsa" in [f.code for f in audit_jwks({"keys": [entry]})]
    assert [f.code for f in audit_jwks({"nope": 1})] == ["not_a_jwks"]


def test_inspect_issuer_with_discovery(runner: CliRunner, jwks_server: JWKSServer) -> None:
    key = make_key("RS256", "r1")
    jwks_server.serve_jwks(
        {"keys": [{**key.public().to_dict(), "use": "sig", "alg": "RS256"}]}, max_age=None
    )
    jwks_server.serve_discovery(issuer="https://someone.else")  # advertises RS256 and ES256
    result = runner.invoke(
        main, ["jwks", "inspect", jwks_server.url, "--allow-insecure-http", "--json"]
    )
    assert result.exit_code == 1
    found = codes(result.stdout)
    assert "issuer_mismatch" in found and "no_cache_control" in found
    assert "discovery_mismatch" in found  # ES256 advertised, only an RSA key


def test_inspect_unreadable_input(
    runner: CliRunner, tmp_path: Path, jwks_server: JWKSServer
) -> None:
    assert runner.invoke(main, ["jwks", "inspect", str(tmp_path / "none")]).exit_code == 3
    jwks_server.fail(500)
    result = runner.invoke(main, ["jwks", "inspect", jwks_server.jwks_url])
    assert result.exit_code == 3 and "HTTP 500" in result.stderr
