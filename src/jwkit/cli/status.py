"""``jwkit status inspect URL|FILE``: decode and check a Status List Token.

What ``jwks inspect`` is for a key set, this is for a status list
(draft-ietf-oauth-status-list §5.1, §4): it shows the header, the claims, the list's
``bits``, its number of entries and how many entries hold each status, and reports what a
verifier would refuse: a ``typ`` other than ``statuslist+jwt``, a missing ``sub``/``iat``/
``exp``/``status_list``, a ``sub`` that is not the URL it was fetched from, an expired or
future list, a ``ttl`` that is not a positive number, a list that does not decode.

The signature is checked when keys can be found: ``--key FILE``, ``--jwks-url URL``, or
else the ``iss`` claim's OpenID discovery document (its ``jwks_uri``). Keys that cannot be
had are reported (``signature_not_checked``) without failing, unless they were asked for
with ``--jwks-url``.

Exit codes: 0 nothing found, 1 problems found, 3 the input (or the asked-for JWKS) could not
be read or fetched.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import click

from ..errors import InvalidToken, JWKError, JWKitError, KeySourceError
from ..jose import jws
from ..jose.jwk import JWK, JWKSet
from ..jose.jwt import parse_claims
from ..jose.statuslist import StatusList
from ..verify.fetch import JWKSFetcher
from ..verify.status import DEFAULT_STATUS_MAX_BYTES, STATUS_LIST_TYP, StatusListFetcher
from ._output import EXIT_FAILED, fail_input, load_key_file, print_json, read_file

__all__ = ["Finding", "count_statuses", "status"]

_NAMES = {0: "VALID", 1: "INVALID", 2: "SUSPENDED"}


@dataclass(frozen=True)
class Finding:
    """One problem: a stable ``code`` and a message."""

    code: str
    message: str


def count_statuses(lst: StatusList) -> dict[int, int]:
    """How many entries hold each status value (by byte value, not entry by entry)."""
    bits = lst.bits
    per_byte, mask = 8 // bits, (1 << bits) - 1
    counts: Counter[int] = Counter()
    for byte, times in Counter(lst.to_bytes()).items():
        for slot in range(per_byte):
            counts[(byte >> (slot * bits)) & mask] += times
    return dict(sorted(counts.items()))


def _label(value: int) -> str:
    return _NAMES.get(value, f"0x{value:02x}")


def _when(value: Any) -> str:
    if type(value) not in (int, float):
        return repr(value)
    try:
        stamp = datetime.fromtimestamp(value, tz=UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return repr(value)
    return f"{value} ({stamp})"


def _check_claims(
    header: dict[str, Any], claims: dict[str, Any], url: str | None, now: float
) -> list[Finding]:
    found: list[Finding] = []
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") != STATUS_LIST_TYP:
        found.append(Finding("invalid_type", f'header "typ" is {typ!r}, not "statuslist+jwt"'))
    for name in ("sub", "iat", "exp", "status_list"):
        if name not in claims:
            found.append(Finding("missing_claim", f'no "{name}" claim'))
    sub = claims.get("sub")
    if url is not None and sub is not None and sub != url:
        found.append(Finding("sub_mismatch", f'"sub" {sub!r} is not the URL fetched ({url})'))
    exp, iat, ttl = claims.get("exp"), claims.get("iat"), claims.get("ttl")
    if exp is not None and (type(exp) not in (int, float) or exp <= now):
        found.append(Finding("expired", f'the list expired ("exp" {_when(exp)})'))
    if iat is not None and (type(iat) not in (int, float) or iat > now + 60):
        found.append(Finding("not_yet_valid", f'"iat" {_when(iat)} is in the future'))
    if ttl is None:
        found.append(Finding("no_ttl", 'no "ttl": verifiers fall back to their own default'))
    elif type(ttl) not in (int, float) or not 0 < ttl < float("inf"):
        found.append(Finding("invalid_ttl", f'"ttl" {ttl!r} is not a positive number'))
    return found


def _keys(
    claims: dict[str, Any], key_file: str | None, jwks_url: str | None, timeout: float, http: bool
) -> tuple[JWK | JWKSet | None, str]:
    """The keys to check the signature with, and where they came from (or why none)."""
    if key_file is not None:
        return load_key_file(key_file), key_file
    iss = claims.get("iss")
    if jwks_url is None and not isinstance(iss, str):
        return None, 'no --key, no --jwks-url and no "iss" to discover keys from'
    try:
        fetcher = JWKSFetcher(
            jwks_url,
            issuer=None if jwks_url is not None else iss,
            timeout=timeout,
            max_bytes=1 << 20,
            allow_insecure_http=http,
            follow_redirects=False,
            http_client=None,
            async_http_client=None,
        )
        try:
            fetched = fetcher.fetch()
        finally:
            fetcher.close()
    except (KeySourceError, ValueError) as exc:
        message = exc.message if isinstance(exc, KeySourceError) else str(exc)
        if jwks_url is not None:
            fail_input(f"cannot get the JWKS: {message}")
        return None, f"keys not found from the issuer: {message}"
    assert fetched.keys is not None
    return JWKSet(fetched.keys), fetcher.source_name


def inspect_token(
    token: str,
    *,
    url: str | None,
    key_file: str | None = None,
    jwks_url: str | None = None,
    timeout: float = 5.0,
    allow_insecure_http: bool = False,
    indices: tuple[int, ...] = (),
    now: float | None = None,
) -> dict[str, Any]:
    """Everything ``status inspect`` reports, as a JSON-ready dict (``findings`` empty when
    nothing is wrong)."""
    now = time.time() if now is None else now
    report: dict[str, Any] = {"source": url or "file", "findings": []}
    findings: list[Finding] = []
    try:
        parsed = jws.parse(token, max_size=DEFAULT_STATUS_MAX_BYTES)
        header, claims = dict(parsed.header), parse_claims(parsed.payload)
    except InvalidToken as exc:
        report["findings"] = [asdict(Finding("not_a_jwt", exc.message))]
        report["ok"] = False
        return report
    report["header"], report["claims"] = (
        header,
        {k: v for k, v in claims.items() if k != "status_list"},
    )
    findings.extend(_check_claims(header, claims, url, now))
    try:
        lst = StatusList.decode(claims.get("status_list"))
    except InvalidToken as exc:
        findings.append(Finding("invalid_list", exc.message))
    else:
        counts = count_statuses(lst)
        report["list"] = {
            "bits": lst.bits,
            "entries": len(lst),
            "counts": {_label(v): n for v, n in counts.items()},
        }
        if indices:
            shown = {}
            for index in indices:
                shown[str(index)] = _label(lst[index]) if 0 <= index < len(lst) else None
            report["list"]["entries_asked"] = shown
    keys, origin = _keys(claims, key_file, jwks_url, timeout, allow_insecure_http)
    if keys is None:
        report["signature"] = {"checked": False, "why": origin}
        findings.append(Finding("signature_not_checked", origin))
    else:
        try:
            key = jws.select_key(parsed, keys)
            jws.verify_signature(parsed, key)
        except (JWKitError, JWKError) as exc:
            report["signature"] = {"checked": True, "valid": False, "keys": origin}
            findings.append(Finding(getattr(exc, "code", "invalid_signature"), exc.message))
        else:
            report["signature"] = {"checked": True, "valid": True, "kid": key.kid, "keys": origin}
    report["findings"] = [asdict(f) for f in findings]
    # Not finding keys to check with is reported, but is not by itself a problem.
    report["ok"] = all(f.code in ("signature_not_checked", "no_ttl") for f in findings)
    return report


def _fetch(url: str, timeout: float, allow_insecure_http: bool) -> str:
    try:
        fetcher = StatusListFetcher(
            url,
            timeout=timeout,
            max_bytes=DEFAULT_STATUS_MAX_BYTES,
            allow_insecure_http=allow_insecure_http,
            http_client=None,
            async_http_client=None,
        )
    except ValueError as exc:
        fail_input(str(exc))
    try:
        body = fetcher.get(None).body
    except KeySourceError as exc:
        fail_input(exc.message)
    finally:
        fetcher.close()
    assert body is not None
    try:
        return body.decode("ascii").strip()
    except UnicodeDecodeError:
        fail_input(f"{url} did not return a compact JWS")


@click.group()
def status() -> None:
    """Inspect Token Status Lists (revocation)."""


@status.command("inspect")
@click.argument("target", metavar="URL|FILE")
@click.option("--jwks-url", help="Check the signature with this JWKS (default: from iss).")
@click.option("--key", "key_file", type=click.Path(), help="Check the signature with this key.")
@click.option("--index", "indices", type=int, multiple=True, help="Show this entry (repeatable).")
@click.option("--timeout", default=5.0, show_default=True, help="Fetch timeout, seconds.")
@click.option("--allow-insecure-http", is_flag=True, help="Allow http:// URLs (tests).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect(
    target: str,
    jwks_url: str | None,
    key_file: str | None,
    indices: tuple[int, ...],
    timeout: float,
    allow_insecure_http: bool,
    as_json: bool,
) -> None:
    """Decode and check a Status List Token (a URL or a file); exit 1 if anything is wrong."""
    if target.startswith(("https://", "http://")):
        url: str | None = target
        token = _fetch(target, timeout, allow_insecure_http)
    else:
        url = None
        token = "".join(read_file(target).split())  # a compact JWS has no whitespace
    report = inspect_token(
        token,
        url=url,
        key_file=key_file,
        jwks_url=jwks_url,
        timeout=timeout,
        allow_insecure_http=allow_insecure_http,
        indices=indices,
    )
    if as_json:
        print_json(report)
    else:
        _print(report)
    if not report["ok"]:
        sys.exit(EXIT_FAILED)


def _print(report: dict[str, Any]) -> None:
    click.echo(f"source: {report['source']}")
    if "header" in report:
        header = ", ".join(f"{k}={v}" for k, v in report["header"].items())
        click.echo(f"header: {header}")
        for name, value in report["claims"].items():
            shown = _when(value) if name in ("iat", "exp", "nbf") else value
            click.echo(f"  {name}: {shown}")
    lst = report.get("list")
    if lst is not None:
        click.echo(f"list: {lst['bits']} bits per entry, {lst['entries']} entries")
        for name, count in lst["counts"].items():
            click.echo(f"  {name}: {count}")
        for index, value in lst.get("entries_asked", {}).items():
            click.echo(f"  [{index}]: {value if value is not None else 'out of range'}")
    sig = report.get("signature")
    if sig is not None:
        if not sig["checked"]:
            click.echo(f"signature: not checked ({sig['why']})")
        elif sig["valid"]:
            click.echo(f"signature: valid (kid {sig['kid']!r}, keys from {sig['keys']})")
        else:
            click.echo(f"signature: INVALID (keys from {sig['keys']})")
    for finding in report["findings"]:
        click.echo(f"{finding['code']}: {finding['message']}")
    if report["ok"]:
        click.echo("no problems found")
