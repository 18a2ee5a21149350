"""``jwkit token verify``: verify a token with a key file, a JWKS URL, an issuer or a preset.

Exit codes: 0 and the claims as JSON on stdout; 1 and ``error: <code>: <message>`` on stderr
when the token does not verify (or no keys could be obtained); 2 for a usage error; 3 when
an input (the key file) cannot be read.
"""

from __future__ import annotations

import warnings
from typing import Any

import click

from ..errors import JWKitError
from ..verify.fetch import InsecureURLError
from ..verify.sources import PrivateKeyWarning
from ..verify.verifier import AudienceWarning, Verifier
from ._output import fail_input, print_json, read_text_arg, token_error
from .token import token


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not k=v", param_hint="--param")
        out[name.strip().replace("-", "_")] = value
    return out


@token.command("verify")
@click.argument("token_arg", metavar="TOKEN|-")
@click.option("--key", "key_path", default=None, help="A JWK, JWKS or PEM file.")
@click.option("--jwks-url", default=None, help="A JWKS URL.")
@click.option("--issuer", "issuer_url", default=None, help="An issuer (OpenID discovery).")
@click.option("--provider", default=None, help="A preset: auth0, okta, cognito, clerk, ...")
@click.option("--param", "params", multiple=True, help="Preset parameter k=v (repeatable).")
@click.option("--audience", multiple=True, help="Accepted audience (repeatable).")
@click.option("--expect-issuer", default=None, help="Expected iss (defaults per source).")
@click.option("--alg", "algs", multiple=True, help="Allowed algorithm (repeatable).")
@click.option("--leeway", default=0.0, show_default=True, help="Clock skew, seconds.")
@click.option("--timeout", default=5.0, show_default=True, help="Fetch timeout, seconds.")
@click.option("--allow-insecure-http", is_flag=True, help="Allow http:// URLs (testing).")
def verify(
    token_arg: str,
    key_path: str | None,
    jwks_url: str | None,
    issuer_url: str | None,
    provider: str | None,
    params: tuple[str, ...],
    audience: tuple[str, ...],
    expect_issuer: str | None,
    algs: tuple[str, ...],
    leeway: float,
    timeout: float,
    allow_insecure_http: bool,
) -> None:
    """Verify TOKEN (or a token on standard input) and print its claims as JSON."""
    chosen = [o for o in (key_path, jwks_url, issuer_url, provider) if o is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --key, --jwks-url, --issuer or --provider")
    if params and provider is None:
        raise click.UsageError("--param needs --provider")
    text = read_text_arg(token_arg)
    options: dict[str, Any] = {"leeway": leeway, "token_cache": False}
    if audience:
        options["audience"] = audience[0] if len(audience) == 1 else list(audience)

    if expect_issuer is not None:
        options["issuer"] = expect_issuer
    if algs:
        options["algorithms"] = list(algs)
    remote = {"timeout": timeout, "allow_insecure_http": allow_insecure_http}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PrivateKeyWarning)
            warnings.simplefilter("always", AudienceWarning)
            verifier = _build(key_path, jwks_url, issuer_url, provider, params, options, remote)
    except InsecureURLError as exc:
        raise click.UsageError(exc.advice("pass --allow-insecure-http")) from None
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
    for warning in caught:
        if issubclass(warning.category, AudienceWarning):
            click.echo(
                "note: no --audience given, so a token for any audience is accepted", err=True
            )
        else:
            click.secho(f"warning: {warning.message}", fg="yellow", err=True)
    try:
        with verifier:
            claims = verifier.verify(text)
    except JWKitError as exc:
        token_error(exc, text)
    print_json(claims.to_dict())


def _build(
    key_path: str | None,
    jwks_url: str | None,
    issuer_url: str | None,
    provider: str | None,
    params: tuple[str, ...],
    options: dict[str, Any],
    remote: dict[str, Any],
) -> Verifier:
    if key_path is not None:
        try:
            return Verifier.from_jwk_file(key_path, **options)
        except (OSError, JWKitError) as exc:
            fail_input(f"{key_path} holds no usable key: {exc}")
    if jwks_url is not None:
        return Verifier.from_jwks_url(jwks_url, **options, **remote)
    if issuer_url is not None:
        return Verifier.from_issuer(issuer_url, **options, **remote)
    assert provider is not None
    try:
        return Verifier.from_provider(provider, **_params(params), **options, **remote)
    except (OSError, JWKitError) as exc:
        fail_input(str(exc))
