"""``jwkit demo``: generate a key, sign a token, verify it, print both."""

from __future__ import annotations

import json
import time

import click

from ..jose import jwt
from ..jose.jwk import JWK


@click.command()
@click.option("--alg", default="ES256", show_default=True, help="Signing algorithm.")
def demo(alg: str) -> None:
    """A thirty-second tour: a fresh key signs a token and its public half verifies it."""
    key = JWK.generate(alg)
    now = int(time.time())
    issuer = "https://demo.jwkit.local"
    claims = {
        "iss": issuer,
        "sub": "user-42",
        "aud": "demo-api",
        "iat": now,
        "exp": now + 900,
        "scope": "read:items",
    }
    token_text = jwt.encode(claims, key)
    public = key if key.is_symmetric else key.public()
    verified = jwt.decode(token_text, public, algorithms=[alg], issuer=issuer, audience="demo-api")
    if not key.is_symmetric:
        click.echo("public key (JWK):")
        click.echo(json.dumps(public.to_dict(), indent=2))
    click.echo("\ntoken:")
    click.echo(token_text)
    click.echo("\nverified claims:")
    click.echo(json.dumps(dict(verified), indent=2))
