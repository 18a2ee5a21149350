"""``jwkit token``: sign and inspect tokens locally."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from ..errors import JWKitError
from ..jose import jwt
from ..jose.jwk import JWK
from ._output import (
    fail_input,
    load_key_file,
    parse_duration,
    print_json,
    read_text_arg,
    token_error,
)


@click.group()
def token() -> None:
    """Sign, decode and verify JSON Web Tokens."""


@token.command("sign")
@click.option("--key", "key_path", required=True, help="Private key: JWK JSON or PEM file.")
@click.option("--claims", "claims_json", default=None, help="Extra claims as a JSON object.")
@click.option("--sub", default=None, help="Subject.")
@click.option("--iss", default=None, help="Issuer.")
@click.option("--aud", multiple=True, help="Audience (repeat for several).")
@click.option("--ttl", default="15m", show_default=True, help="Lifetime: 90s, 15m, 2h, 1d.")
@click.option("--alg", default=None, help="Algorithm, if the key does not name one.")
@click.option("--json", "as_json", is_flag=True, help="Print token, header and claims as JSON.")
def sign(
    key_path: str,
    claims_json: str | None,
    sub: str | None,
    iss: str | None,
    aud: tuple[str, ...],
    ttl: str,
    alg: str | None,
    as_json: bool,
) -> None:
    """Print a signed JWT."""
    key = load_key_file(key_path)
    if not isinstance(key, JWK) or not key.is_private:
        fail_input(f"{key_path} must hold one private key")
    claims: dict[str, Any] = {}
    if claims_json:
        try:
            extra = json.loads(claims_json)
        except ValueError:
            raise click.BadParameter("--claims must be a JSON object") from None
        if not isinstance(extra, dict):
            raise click.BadParameter("--claims must be a JSON object")
        claims.update(extra)
    now = int(time.time())
    claims.setdefault("iat", now)
    claims.setdefault("exp", now + parse_duration(ttl))
    for name, value in (("sub", sub), ("iss", iss)):
        if value is not None:
            claims[name] = value
    if aud:
        claims["aud"] = aud[0] if len(aud) == 1 else list(aud)
    headers = {"alg": alg} if alg else None
    try:
        token_text = jwt.encode(claims, key, headers=headers)
    except (JWKitError, ValueError) as exc:
        fail_input(str(exc))
    if as_json:
        header, payload = jwt.decode_unverified(token_text)
        print_json({"token": token_text, "header": header, "claims": payload})
    else:
        click.echo(token_text)


@token.command("decode")
@click.argument("token_arg", metavar="TOKEN|-")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def decode(token_arg: str, as_json: bool) -> None:
    """Show a token's header and claims WITHOUT verifying it."""
    text = read_text_arg(token_arg)
    try:
        header, claims = jwt.decode_unverified(text)
    except JWKitError as exc:
        token_error(exc, text)
    if as_json:
        print_json({"verified": False, "header": header, "claims": claims})
        return
    click.secho("UNVERIFIED: the signature was not checked.", fg="yellow", err=True)
    click.echo("header:")
    click.echo(json.dumps(header, indent=2))
    click.echo("claims:")
    click.echo(json.dumps(claims, indent=2))
