"""A private key handed to a verifier: a loud PrivateKeyWarning, and only the public part
is kept (issue 13, item 6)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from jwkit import JWK, JWKSet, Verifier
from jwkit.cli import main
from jwkit.verify import PrivateKeyWarning, StaticKeySource
from tests.verify.conftest import AUDIENCE, make_key, token_for


def _file(tmp_path: Path, text: str | bytes, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


BUILDERS: dict[str, Callable[[JWK, Path], Verifier]] = {
    "from_jwk(JWK)": lambda k, _: Verifier.from_jwk(k, audience=AUDIENCE),
    "from_jwk(dict)": lambda k, _: Verifier.from_jwk(k.to_dict(private=True), audience=AUDIENCE),
    "from_jwk(json)": lambda k, _: Verifier.from_jwk(k.to_json(private=True), audience=AUDIENCE),
    "from_jwks": lambda k, _: Verifier.from_jwks(
        {"keys": [k.to_dict(private=True)]}, audience=AUDIENCE
    ),
    "from_pem": lambda k, _: Verifier.from_pem(k.to_pem(private=True), audience=AUDIENCE),
    "from_jwk_file(json)": lambda k, d: Verifier.from_jwk_file(
        _file(d, k.to_json(private=True), "private.jwk.json"), audience=AUDIENCE
    ),
    "from_jwk_file(pem)": lambda k, d: Verifier.from_jwk_file(
        _file(d, k.to_pem(private=True), "private.pem"), audience=AUDIENCE
    ),
    "Verifier(JWKSet)": lambda k, _: Verifier(JWKSet([k]), audience=AUDIENCE),
}


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_a_private_key_warns_and_only_its_public_part_is_kept(
    build: Callable[[JWK, Path], Verifier], tmp_path: Path
) -> None:
    key = make_key("ES256")  # kid: its RFC 7638 thumbprint, as a PEM file's key gets
    with pytest.warns(PrivateKeyWarning, match="private key .*public key") as caught:
        verifier = build(key, tmp_path)
    assert caught[0].filename == __file__  # points at the caller, not at jwkit
    with verifier:
        assert all(not k.is_private for k in verifier.source.get_keys())
        assert verifier.verify(token_for(key))["sub"] == "user-1"


@pytest.mark.parametrize(
    "build",
    [
        lambda k: Verifier.from_jwk(k.public(), audience=AUDIENCE),
        lambda k: Verifier.from_pem(k.public().to_pem(), audience=AUDIENCE),
        lambda k: Verifier.from_secret(b"s" * 32, audience=AUDIENCE),
        lambda k: Verifier.from_jwk(
            JWK.from_secret(b"s" * 32).to_dict(private=True), audience=AUDIENCE
        ),
    ],
    ids=["public jwk", "public pem", "secret", "oct jwk"],
)
def test_public_keys_and_shared_secrets_do_not_warn(build: Callable[[JWK], Any]) -> None:
    build(make_key("ES256")).close()  # filterwarnings = error: any warning fails


def test_replace_with_a_private_key_warns() -> None:
    source = StaticKeySource(make_key().public())
    with pytest.warns(PrivateKeyWarning):
        source.replace(make_key())
    assert not source.get_keys().keys[0].is_private


def test_cli_verify_with_a_private_key_says_so(tmp_path: Path) -> None:
    key = make_key("ES256", kid="k1")
    path = _file(tmp_path, key.to_json(private=True), "private.jwk.json")
    result = CliRunner().invoke(
        main, ["token", "verify", token_for(key), "--key", str(path), "--audience", AUDIENCE]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sub"] == "user-1"
    assert result.stderr.startswith("warning: ")
    assert "private key" in result.stderr and "public_key.json" in result.stderr
