"""``jwkit jwks inspect URL|FILE``: audit whatever key material a person has.

A JWK Set, a single JWK (``public_key.json``), a PEM public key, private key or certificate, a
URL serving any of these, a discovery document, or an issuer (through discovery).

Looks at the raw JSON (so nothing is hidden by an importer that drops members) and reports:
private members published (RFC 7517 §9.2, RFC 7518 §6), duplicate or missing ``kid``,
missing ``alg``/``use``, RSA moduli under 2048 bits (RFC 7518 §3.3), a ``crv`` that does
not fit the ``alg`` (RFC 7518 §3.4, RFC 8037 §3.1), keys that do not import, no
``Cache-Control`` on the response, and a discovery document that disagrees with its JWKS
(OpenID Connect Discovery 1.0 §3, §4.3). A private key or a shared secret is named as such,
with the public part a verifier should get instead; a certificate outside its validity
period is reported (RFC 5280 §4.1.2.5).

Exit codes: 0 nothing found, 1 problems found, 3 the input could not be read or fetched.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx

from ..errors import JWKError
from ..jose.b64 import b64url_decode
from ..jose.jwk import JWK
from ._output import EXIT_FAILED, EXIT_INPUT, print_json

__all__ = [
    "Finding",
    "Inspection",
    "audit_discovery",
    "audit_jwks",
    "audit_pem",
    "describe_key",
    "inspect_document",
    "jwks",
]

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


# What a single key file may leave out: one key needs no kid to be found, and use is optional.
_SINGLE_KEY_IGNORES = frozenset({"missing_kid", "missing_use"})


@dataclass(frozen=True)
class Inspection:
    """What one input held: the problems, the keys seen (described, never their secrets) and,
    for a private key, the public part a verifier should get instead."""

    source: str
    kind: str
    findings: list[Finding]
    keys: list[dict[str, Any]]
    public_jwk: dict[str, Any] | None = None


def describe_key(key: JWK) -> dict[str, Any]:
    """Public facts about ``key``: type, curve or size, alg, kid, use (no key material)."""
    out: dict[str, Any] = {"kid": key.kid, "kty": key.kty}
    if key.crv is not None:
        out["crv"] = key.crv
    if key.kty == "RSA":
        out["bits"] = _rsa_bits(key.public().to_dict())
    out["alg"] = key.alg or (None if key.is_symmetric else key.default_alg)
    out["private"] = key.is_private
    return out


def _single_key(document: dict[str, Any], source: str) -> Inspection:
    found = [f for f in audit_jwks({"keys": [document]}) if f.code not in _SINGLE_KEY_IGNORES]
    keys: list[dict[str, Any]] = []
    public: dict[str, Any] | None = None
    try:
        key = JWK.from_dict(document)
    except JWKError:
        return Inspection(source, "jwk", found, keys)
    keys.append(describe_key(key))
    label = key.kid or "#0"
    if key.is_symmetric:
        found = [f for f in found if f.code not in ("private_key", "symmetric_alg")]
        found.append(
            Finding(
                "shared_secret",
                label,
                "a shared secret (kty oct): keep it secret; verifiers load it "
                "with Verifier.from_secret, it never goes in a JWKS",
            )
        )
    elif key.is_private:
        found = [f for f in found if f.code != "private_key"]
        found.append(_private_finding(label))
        public = key.public().to_dict()
    return Inspection(source, "jwk", found, keys, public)


def _private_finding(label: str) -> Finding:
    return Finding(
        "private_key",
        label,
        "this is a private key: verifiers need only its public part (below); "
        "keep the private key where tokens are signed",
    )


def audit_pem(text: str, source: str, now: datetime | None = None) -> Inspection:
    """A PEM public key, private key or certificate (or a one-line base64 SPKI)."""
    found: list[Finding] = []
    kind = "pem"
    if "-----BEGIN CERTIFICATE-----" in text:
        kind = "certificate"
        found.extend(_certificate_findings(text, now or datetime.now(UTC)))
    try:
        key = JWK.from_pem(text)
    except JWKError as exc:
        found.append(Finding("invalid_key", None, exc.message))
        return Inspection(source, kind, found, [])
    label = key.kid or "#0"
    public: dict[str, Any] | None = None
    if key.is_private:
        kind = "private_key"
        found.append(_private_finding(label))
        public = key.public().replace(alg=key.alg or key.default_alg, use="sig").to_dict()
    bits = _rsa_bits(key.public().to_dict()) if key.kty == "RSA" else None
    if bits is not None and bits < 2048:
        found.append(Finding("weak_rsa", label, f"RSA modulus of {bits} bits (< 2048)"))
    return Inspection(source, kind, found, [describe_key(key)], public)


def _certificate_findings(text: str, now: datetime) -> list[Finding]:
    from cryptography import x509

    start = text.index("-----BEGIN CERTIFICATE-----")
    try:
        cert = x509.load_pem_x509_certificate(text[start:].encode("ascii", "replace"))
    except ValueError as exc:
        return [Finding("invalid_certificate", None, f"not a readable certificate: {exc}")]
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    subject = cert.subject.rfc4514_string() or "(empty subject)"
    if now > not_after:
        return [
            Finding(
                "certificate_expired",
                subject,
                f"the certificate expired at {not_after.isoformat()}",
            )
        ]
    if now < not_before:
        return [
            Finding(
                "certificate_not_yet_valid",
                subject,
                f"the certificate is valid from {not_before.isoformat()}",
            )
        ]
    return []


def inspect_document(data: bytes, source: str) -> Inspection | None:
    """Whatever ``data`` holds, inspected; ``None`` when it is none of the known kinds."""
    text = data.decode("utf-8", "replace")
    stripped = text.strip()
    if "-----BEGIN" in stripped:
        return audit_pem(stripped, source)
    try:
        document = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    if isinstance(document, dict) and "keys" in document:
        return Inspection(source, "jwks", audit_jwks(document), _described(document))
    if isinstance(document, dict) and "kty" in document:
        return _single_key(document, source)
    if isinstance(document, dict):
        return None
    return Inspection(source, "jwks", audit_jwks(document), [])


def _described(document: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in document.get("keys") or []:
        try:
            out.append(describe_key(JWK.from_dict(entry)))
        except (JWKError, TypeError):
            continue
    return out


class _FetchError(Exception):
    pass


def _get(client: httpx.Client, url: str) -> tuple[bytes, httpx.Headers]:
    try:
        with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > _MAX_BYTES:
                    raise _FetchError(f"{url} sent more than 1 MiB")
            if response.status_code != 200:
                raise _FetchError(f"{url} answered HTTP {response.status_code}")
            return bytes(body), response.headers
    except httpx.HTTPError as exc:
        raise _FetchError(f"fetching {url} failed: {exc}") from None


def _fetch(client: httpx.Client, url: str) -> tuple[Any, httpx.Headers]:
    body, headers = _get(client, url)
    try:
        return json.loads(body), headers
    except ValueError:
        raise _FetchError(f"{url} did not return JSON") from None


def _discover(client: httpx.Client, issuer: str) -> Any:
    """The issuer's metadata: OpenID Connect Discovery 1.0 §4, else RFC 8414 §3.1 (the
    well-known segment before the issuer's path); ``None`` if neither answers."""
    parsed = httpx.URL(issuer)
    oauth = parsed.copy_with(
        path="/.well-known/oauth-authorization-server" + parsed.path.rstrip("/")
    )
    for candidate in (issuer + "/.well-known/openid-configuration", str(oauth)):
        try:
            return _fetch(client, candidate)[0]
        except _FetchError:
            continue
    return None


def _inspect_url(url: str, timeout: float, allow_http: bool) -> Inspection:
    found: list[Finding] = []
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        first_error: _FetchError | None = None
        document: Any = None
        headers = httpx.Headers()
        try:
            raw, headers = _get(client, url)
        except _FetchError as exc:
            first_error = exc
        else:
            found_here = inspect_document(raw, url)
            if found_here is not None and found_here.kind != "jwks":
                return found_here  # a key or certificate served at a URL
            try:
                document = json.loads(raw)
            except (ValueError, RecursionError):
                document = None
        discovery: dict[str, Any] | None = None
        issuer: str | None = None
        if isinstance(document, dict) and "keys" in document:
            jwks_url = url
        else:
            if isinstance(document, dict) and "jwks_uri" in document:
                discovery = document
            else:
                issuer = url.rstrip("/")
                discovery = _discover(client, issuer)
                if discovery is None:
                    raise first_error or _FetchError(f"{url} is not a JWKS")
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
    described = _described(document) if isinstance(document, dict) else []
    return Inspection(jwks_url, "jwks", found, described)


@click.group()
def jwks() -> None:
    """Inspect JSON Web Key Sets."""


@jwks.command("inspect")
@click.argument("target", metavar="URL|ISSUER|FILE")
@click.option("--timeout", default=5.0, show_default=True, help="Fetch timeout, seconds.")
@click.option("--allow-insecure-http", is_flag=True, help="Do not report http:// as a problem.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect(target: str, timeout: float, allow_insecure_http: bool, as_json: bool) -> None:
    """Audit a JWKS, a JWK, a PEM key or certificate (a file or a URL) or an issuer; exit 1
    if anything is wrong."""
    try:
        if target.startswith(("https://", "http://")):
            result = _inspect_url(target, timeout, allow_insecure_http)
        else:
            try:
                data = Path(target).read_bytes()
            except OSError as exc:
                raise _FetchError(f"cannot read {target}: {exc.strerror or exc}") from None
            if len(data) > _MAX_BYTES:
                raise _FetchError(f"{target} is larger than 1 MiB")
            inspected = inspect_document(data, target)
            if inspected is None:
                raise _FetchError(
                    f"{target} holds no key: expected a JWKS, a JWK, a PEM key or certificate"
                )
            result = inspected
    except _FetchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    findings = result.findings
    if as_json:
        print_json(
            {
                "source": result.source,
                "kind": result.kind,
                "ok": not findings,
                "findings": [asdict(f) for f in findings],
                "keys": result.keys,
                "public_jwk": result.public_jwk,
            }
        )
    else:
        for key in result.keys:
            facts = ", ".join(
                k if v is True else f"{k} {v}" for k, v in key.items() if v not in (None, False)
            )
            click.echo(f"key: {facts}")
        if not findings:
            click.echo(f"{result.source}: no problems found")
        for f in findings:
            where = f" [{f.key}]" if f.key else ""
            click.echo(f"{f.code}{where}: {f.message}")
        if result.public_jwk is not None:
            click.echo("public part, for verifiers (public_key.json):")
            click.echo(json.dumps(result.public_jwk, indent=2))
    if findings:
        sys.exit(EXIT_FAILED)
