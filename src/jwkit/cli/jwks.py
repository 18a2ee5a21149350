"""``jwkit jwks inspect URL|FILE``: audit a published JWK Set or an issuer.

Looks at the raw JSON (so nothing is hidden by an importer that drops members) and reports:
private members published (RFC 7517 §9.2, RFC 7518 §6), duplicate or missing ``kid``,
missing ``alg``/``use``, RSA moduli under 2048 bits (RFC 7518 §3.3), a ``crv`` that does
not fit the ``alg`` (RFC 7518 §3.4, RFC 8037 §3.1), keys that do not import, no
``Cache-Control`` on the response, and a discovery document that disagrees with its JWKS
(OpenID Connect Discovery 1.0 §3, §4.3).

Exit codes: 0 nothing found, 1 problems found, 3 the input could not be read or fetched.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import httpx

from ..errors import JWKError
from ..jose.b64 import b64url_decode
from ..jose.jwk import JWK
from ._output import EXIT_FAILED, EXIT_INPUT, print_json

__all__ = ["Finding", "audit_discovery", "audit_jwks", "jwks"]

_PRIVATE = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_ALG_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521", "ES256K": "secp256k1"}
_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Finding:
    """One problem: a stable ``code``, the key it concerns (``kid`` or ``#index``), a message."""

    code: str
    key: str | None
    message: str


def _label(index: int, entry: Any) -> str:
    kid = entry.get("kid") if isinstance(entry, dict) else None
    return kid if isinstance(kid, str) else f"#{index}"


def _rsa_bits(entry: dict[str, Any]) -> int | None:
    n = entry.get("n")
    if not isinstance(n, str):
        return None
    try:
        return int.from_bytes(b64url_decode(n, "n"), "big").bit_length()
    except Exception:
        return None


def audit_jwks(document: Any) -> list[Finding]:
    """Every problem in a JWKS document (already parsed JSON)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        return [Finding("not_a_jwks", None, 'not a JSON object with a "keys" array')]
    entries: list[Any] = document["keys"]
    found: list[Finding] = []
    if not entries:
        found.append(Finding("empty", None, "the set has no keys"))
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        label = _label(index, entry)
        if not isinstance(entry, dict):
            found.append(Finding("not_a_key", label, "entry is not a JSON object"))
            continue
        kty, alg, kid = entry.get("kty"), entry.get("alg"), entry.get("kid")
        leaked = [m for m in _PRIVATE if m in entry]
        if leaked:
            found.append(
                Finding("private_key", label, f"private members published: {', '.join(leaked)}")
            )
        if kid is None:
            found.append(Finding("missing_kid", label, 'no "kid": key selection is ambiguous'))
        elif isinstance(kid, str):
            if kid in seen:
                found.append(Finding("duplicate_kid", label, f"kid also used by #{seen[kid]}"))
            seen.setdefault(kid, index)
        if alg is None:
            found.append(Finding("missing_alg", label, 'no "alg": verifiers must guess'))
        if entry.get("use") is None and entry.get("key_ops") is None:
            found.append(Finding("missing_use", label, 'no "use" (expected "sig")'))
        if kty == "RSA":
            bits = _rsa_bits(entry)
            if bits is not None and bits < 2048:
                found.append(Finding("weak_rsa", label, f"RSA modulus of {bits} bits (< 2048)"))
        if isinstance(alg, str):
            crv = entry.get("crv")
            want = _ALG_CURVE.get(alg)
            if want is not None and (kty != "EC" or crv != want):
                found.append(Finding("alg_mismatch", label, f"{alg} needs an EC {want} key"))
            elif alg == "EdDSA" and (kty != "OKP" or crv not in ("Ed25519", "Ed448")):
                found.append(Finding("alg_mismatch", label, "EdDSA needs an OKP Ed25519 key"))
            elif alg[:2] in ("RS", "PS") and kty != "RSA":
                found.append(Finding("alg_mismatch", label, f"{alg} needs an RSA key"))
            elif alg.startswith("HS"):
                found.append(Finding("symmetric_alg", label, f"{alg} in a public key set"))
        try:
            JWK.from_dict(entry)
        except JWKError as exc:
            found.append(Finding("invalid_key", label, exc.message))
    return found


def audit_discovery(discovery: dict[str, Any], issuer: str | None, jwks: Any) -> list[Finding]:
    """Problems between an OpenID discovery document, the issuer asked for and its JWKS."""
    found: list[Finding] = []
    if issuer is not None and discovery.get("issuer") != issuer:
        found.append(
            Finding(
                "issuer_mismatch",
                None,
                f"discovery issuer {discovery.get('issuer')!r} is not {issuer!r}",
            )
        )
    advertised = discovery.get("id_token_signing_alg_values_supported")
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if isinstance(advertised, list) and isinstance(keys, list):
        key_algs = {k.get("alg") for k in keys if isinstance(k, dict)}
        kinds = {k.get("kty") for k in keys if isinstance(k, dict)}
        for alg in advertised:
            if not isinstance(alg, str) or alg == "none" or alg.startswith("HS"):
                continue
            if alg in key_algs:
                continue
            needed = "RSA" if alg[:2] in ("RS", "PS") else "EC" if alg[:2] == "ES" else "OKP"
            if None in key_algs and needed in kinds:
                continue
            found.append(
                Finding("discovery_mismatch", None, f"{alg} is advertised but no key fits it")
            )
    return found


class _FetchError(Exception):
    pass


def _fetch(client: httpx.Client, url: str) -> tuple[Any, httpx.Headers]:
    try:
        with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > _MAX_BYTES:
                    raise _FetchError(f"{url} sent more than 1 MiB")
            if response.status_code != 200:
                raise _FetchError(f"{url} answered HTTP {response.status_code}")
            headers = response.headers
    except httpx.HTTPError as exc:
        raise _FetchError(f"fetching {url} failed: {exc}") from None
    try:
        return json.loads(bytes(body)), headers
    except ValueError:
        raise _FetchError(f"{url} did not return JSON") from None


def _inspect_url(url: str, timeout: float, allow_http: bool) -> tuple[list[Finding], str]:
    found: list[Finding] = []
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        first_error: _FetchError | None = None
        document: Any = None
        headers = httpx.Headers()
        try:
            document, headers = _fetch(client, url)
        except _FetchError as exc:
            first_error = exc
        discovery: dict[str, Any] | None = None
        issuer: str | None = None
        if isinstance(document, dict) and "keys" in document:
            jwks_url = url
        else:
            if isinstance(document, dict) and "jwks_uri" in document:
                discovery = document
            else:
                issuer = url.rstrip("/")
                try:
                    discovery, _ = _fetch(client, issuer + "/.well-known/openid-configuration")
                except _FetchError:
                    raise first_error or _FetchError(f"{url} is not a JWKS") from None
            if not isinstance(discovery, dict) or not isinstance(discovery.get("jwks_uri"), str):
                raise _FetchError("no JWKS and no discovery document with a jwks_uri")
            jwks_url = discovery["jwks_uri"]
            document, headers = _fetch(client, jwks_url)
    if not jwks_url.startswith("https://") and not allow_http:
        found.append(Finding("insecure_url", None, f"{jwks_url} is not served over https"))
    if "cache-control" not in headers:
        found.append(Finding("no_cache_control", None, "the JWKS response has no Cache-Control"))
    found.extend(audit_jwks(document))
    if discovery is not None:
        found.extend(audit_discovery(discovery, issuer, document))
    return found, jwks_url


@click.group()
def jwks() -> None:
    """Inspect JSON Web Key Sets."""


@jwks.command("inspect")
@click.argument("target", metavar="URL|FILE")
@click.option("--timeout", default=5.0, show_default=True, help="Fetch timeout, seconds.")
@click.option("--allow-insecure-http", is_flag=True, help="Do not report http:// as a problem.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect(target: str, timeout: float, allow_insecure_http: bool, as_json: bool) -> None:
    """Audit a JWKS (a URL, an issuer, or a file) and exit 1 if anything is wrong."""
    try:
        if target.startswith(("https://", "http://")):
            findings, source = _inspect_url(target, timeout, allow_insecure_http)
        else:
            try:
                document = json.loads(Path(target).read_text("utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise _FetchError(f"cannot read {target}: {exc}") from None
            findings, source = audit_jwks(document), target
    except _FetchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    if as_json:
        listed = [asdict(f) for f in findings]
        print_json({"source": source, "ok": not findings, "findings": listed})
    elif not findings:
        click.echo(f"{source}: no problems found")
    else:
        for f in findings:
            where = f" [{f.key}]" if f.key else ""
            click.echo(f"{f.code}{where}: {f.message}")
    if findings:
        sys.exit(EXIT_FAILED)
