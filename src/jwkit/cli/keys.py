"""``jwkit keys``: local key files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..errors import JWKError
from ..jose.algorithms import ALGORITHMS
from ..jose.jwk import JWK
from ._output import fail_input, print_json


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file with mode 0600 from the start (never world-readable, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


@click.group()
def keys() -> None:
    """Generate and manage signing keys."""


@keys.command("generate")
@click.option(
    "--alg",
    default="ES256",
    show_default=True,
    type=click.Choice(sorted(ALGORITHMS)),
    help="Signing algorithm the key is for.",
)
@click.option("--kid", default=None, help="Key ID (default: the RFC 7638 thumbprint).")
@click.option(
    "--out",
    "out_dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the key files.",
)
@click.option("--size", type=int, default=None, help="RSA modulus size in bits (>= 2048).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def generate(alg: str, kid: str | None, out_dir: Path, size: int | None, as_json: bool) -> None:
    """Write private.jwk.json and private.pem (mode 0600) and public_key.json."""
    try:
        key = JWK.generate(alg, kid=kid, size=size)
    except (ValueError, JWKError) as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {"private_jwk": out_dir / "private.jwk.json"}
        write_private(files["private_jwk"], key.to_json(private=True).encode() + b"\n")
        if not key.is_symmetric:
            files["private_pem"] = out_dir / "private.pem"
            write_private(files["private_pem"], key.to_pem(private=True))
            files["public_jwk"] = out_dir / "public_key.json"
            files["public_jwk"].write_text(json.dumps(key.public().to_dict(), indent=2) + "\n")
    except OSError as exc:
        fail_input(f"cannot write key files: {exc}")
    if as_json:
        print_json({"kid": key.kid, "alg": key.alg, "files": {k: str(v) for k, v in files.items()}})
    else:
        click.echo(key.kid)
        for path in files.values():
            click.echo(f"  wrote {path}", err=True)
