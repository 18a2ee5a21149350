"""JSON Web Tokens: build and validate claims (RFC 7519 §4, §7.2; RFC 8725).

:func:`decode` is :func:`jwkit.jose.jws.verify` followed by :class:`ClaimsPolicy` checks:
``exp`` is required unless the caller opts out, time claims must be plain numbers in a sane
range, ``iss`` is compared exactly, ``aud`` may be a string or an array, and ``leeway``
applies to time claims only.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import UTC, datetime
from functools import lru_cache, partial
from types import MappingProxyType
from typing import Any

from ..errors import (
    ClaimError,
    ExpiredToken,
    InvalidAudience,
    InvalidIssuer,
    InvalidType,
    MissingClaim,
    NotYetValid,
)
from . import jws
from ._fast import parse_cached
from ._json import loads_object
from .algorithms import ALGORITHMS
from .b64 import b64url_decode, b64url_encode
from .jwk import JWK, JWKSet

__all__ = [
    "Claims",
    "ClaimsPolicy",
    "Encoder",
    "as_names",
    "decode",
    "decode_unverified",
    "encode",
    "parse_claims",
]

# Time claims outside [0, year 9999] are nonsense, whatever their type says.
_MAX_TIME = 253402300799  # an int: JSON times are ints, and int-to-int compares are cheapest
_EMPTY: Mapping[str, Any] = {}
_TEXT = (str, bytes)  # a tuple, not str | bytes: that union is rebuilt on every call


class Claims(Mapping[str, Any]):
    """The verified claims of a token: an immutable mapping with typed shortcuts."""

    __slots__ = ("_data", "_header")

    def __init__(self, payload: Mapping[str, Any], header: Mapping[str, Any] = _EMPTY) -> None:
        self._data = dict(payload)
        self._header = header

    def __getitem__(self, name: str) -> Any:
        return self._data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __repr__(self) -> str:
        return f"Claims({self._data!r})"

    @property
    def header(self) -> Mapping[str, Any]:
        """The token's protected header."""
        return self._header

    @property
    def sub(self) -> str | None:
        sub = self._data.get("sub")
        return sub if isinstance(sub, str) else None

    @property
    def issuer(self) -> str | None:
        iss = self._data.get("iss")
        return iss if isinstance(iss, str) else None

    @property
    def audience(self) -> tuple[str, ...]:
        aud = self._data.get("aud")
        if isinstance(aud, str):
            return (aud,)
        if isinstance(aud, list):
            return tuple(a for a in aud if isinstance(a, str))
        return ()

    @property
    def scopes(self) -> frozenset[str]:
        """Scopes from ``scope`` (space-separated, RFC 8693 §4.2) or ``scp`` (a list)."""
        scope = self._data.get("scope")
        if isinstance(scope, str):
            return frozenset(scope.split())
        scp = self._data.get("scp")
        if isinstance(scp, list):
            return frozenset(s for s in scp if isinstance(s, str))
        if isinstance(scp, str):
            return frozenset(scp.split())
        return frozenset()

    def _time(self, name: str) -> datetime | None:
        value = self._data.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if 0 <= value <= _MAX_TIME:
                return datetime.fromtimestamp(value, tz=UTC)
        return None

    @property
    def expires_at(self) -> datetime | None:
        return self._time("exp")

    @property
    def issued_at(self) -> datetime | None:
        return self._time("iat")

    @property
    def not_before(self) -> datetime | None:
        return self._time("nbf")

    def to_dict(self) -> dict[str, Any]:
        """A plain (deep) copy of the claims."""
        copied: dict[str, Any] = json.loads(json.dumps(self._data))
        return copied


def _number(claims: Mapping[str, Any], name: str) -> float:
    """The time claim ``name`` (present: callers test for ``None`` first) as a float, or the
    :class:`ClaimError` that it is not a NumericDate."""
    value = claims[name]
    # bool is an int subclass: compare types exactly so true/false never pass as times.
    # The range test is false for NaN too.
    if type(value) not in (int, float) or not (0 <= value <= _MAX_TIME):
        raise ClaimError(f'"{name}" must be a NumericDate', claim=name)
    return float(value)


def as_names(value: str | Collection[str] | None, what: str) -> tuple[str, ...] | None:
    """One name or several -> a tuple of names (``None`` stays ``None``); rejects empties."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    out = tuple(value)
    if not out or not all(isinstance(v, str) for v in out):
        raise ValueError(f"{what} must be a string or a non-empty collection of strings")
    return out


def _normalize_typ(typ: str) -> str:
    # RFC 7515 §4.1.9: "application/" may be omitted, and media types are case-insensitive.
    typ = typ.lower()
    return typ[12:] if typ.startswith("application/") else typ


class ClaimsPolicy:
    """What a token's claims must satisfy. Built once, checked on every token (and on every
    verified-token cache hit, so that time claims are never skipped)."""

    __slots__ = (
        "_audience",
        "_issuer",
        "_plain",
        "_typ",
        "issuer",
        "leeway",
        "max_age",
        "require_exp",
        "required",
        "typ",
    )

    issuer: str | Collection[str] | None
    leeway: float
    required: tuple[str, ...]
    typ: str | None
    max_age: float | None
    require_exp: bool
    _issuer: tuple[str, ...] | None
    _audience: tuple[str, ...] | None
    _typ: str | None
    _plain: bool

    def __init__(
        self,
        issuer: str | Collection[str] | None = None,
        audience: str | Collection[str] | None = None,
        leeway: float = 0.0,
        required: Collection[str] = (),
        typ: str | None = None,
        max_age: float | None = None,
        require_exp: bool = True,
    ) -> None:
        if type(leeway) not in (int, float) or not (0 <= leeway < math.inf):
            raise ValueError("leeway must be a non-negative number of seconds")
        if max_age is not None and (
            type(max_age) not in (int, float) or not (0 <= max_age < math.inf)
        ):
            raise ValueError("max_age must be a non-negative number of seconds")
        if isinstance(required, str):
            raise TypeError('required must be a collection of claim names, e.g. ["sub"]')
        init = object.__setattr__  # see __setattr__
        init(self, "issuer", issuer)
        init(self, "_issuer", as_names(issuer, "issuer"))
        init(self, "_audience", as_names(audience, "audience"))
        init(self, "leeway", float(leeway))
        init(self, "required", tuple(required))
        init(self, "typ", typ)
        init(self, "_typ", _normalize_typ(typ) if typ is not None else None)
        init(self, "max_age", max_age)
        init(self, "require_exp", require_exp)
        # No rule beyond the time claims, issuer and audience: validate() has a fast path.
        init(self, "_plain", typ is None and not self.required and max_age is None)

    def __setattr__(self, name: str, value: object) -> None:
        # Immutable: a policy is shared (decode() reuses one per set of options), and
        # validate()'s fast path relies on what __init__ decided.
        raise AttributeError(f"a ClaimsPolicy is immutable; cannot set {name!r}")

    @property
    def audience(self) -> tuple[str, ...] | None:
        return self._audience

    def validate(self, claims: Mapping[str, Any], header: Mapping[str, Any], now: float) -> None:
        """Raise the first :class:`~jwkit.errors.ClaimError` (or ``InvalidType``) found."""
        # Hot path (every token, and every cache hit outside its window). The common case,
        # decided inline: a plain policy, integer exp and iat inside their window, no nbf.
        # Anything else (including every refusal) goes through _check_times, which also
        # words the error. bool is an int subclass: exact types keep true/false out.
        exp = claims.get("exp")
        iat = claims.get("iat")
        leeway = self.leeway
        if not (
            self._plain
            and type(exp) is int
            and type(iat) is int
            and 0 <= iat <= now + leeway
            and iat <= _MAX_TIME
            and 0 <= exp <= _MAX_TIME
            and now < exp + leeway
            and "nbf" not in claims
        ):
            self._check_times(claims, header, now)
        issuers = self._issuer
        if issuers is not None:
            iss = claims.get("iss")
            if iss is None:
                raise MissingClaim('token has no "iss" claim', claim="iss")
            if not isinstance(iss, str) or iss not in issuers:
                raise InvalidIssuer("token issuer is not accepted", claim="iss")
        audiences = self._audience
        if audiences is not None:
            aud = claims.get("aud")
            if type(aud) is str and aud in audiences:
                return
            if aud is None:
                raise MissingClaim('token has no "aud" claim', claim="aud")
            if isinstance(aud, str):
                ok = aud in audiences
            elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
                ok = any(a in audiences for a in aud)
            else:
                raise InvalidAudience('"aud" must be a string or an array of strings', claim="aud")
            if not ok:
                raise InvalidAudience("token is not meant for this audience", claim="aud")

    def _check_times(
        self, claims: Mapping[str, Any], header: Mapping[str, Any], now: float
    ) -> None:
        """``typ``, required claims, ``exp``/``nbf``/``iat``/``max_age``: the general case."""
        if self._typ is not None:
            typ = header.get("typ")
            if not isinstance(typ, str) or _normalize_typ(typ) != self._typ:
                raise InvalidType(f'token "typ" must be {self.typ!r}')
        if self.required:
            for name in self.required:
                if name not in claims:
                    raise MissingClaim(f'token has no "{name}" claim', claim=name)
        leeway = self.leeway
        exp = claims.get("exp")
        if exp is None:
            if self.require_exp:
                raise MissingClaim('token has no "exp" claim', claim="exp")
        else:
            # bool is an int subclass: exact types, so true/false never pass as times; the
            # range test is also false for NaN.
            if (type(exp) is not int and type(exp) is not float) or not 0 <= exp <= _MAX_TIME:
                _number(claims, "exp")  # raises the ClaimError
            if now >= exp + leeway:
                raise ExpiredToken("token has expired", claim="exp")
        nbf = claims.get("nbf")
        if nbf is not None:
            nbf = _number(claims, "nbf")
            if now + leeway < nbf:
                raise NotYetValid("token is not valid yet", claim="nbf")
        iat = claims.get("iat")
        if iat is not None:
            if (type(iat) is not int and type(iat) is not float) or not 0 <= iat <= _MAX_TIME:
                _number(claims, "iat")
            if iat > now + leeway:
                raise NotYetValid("token was issued in the future", claim="iat")
        if self.max_age is not None:
            if iat is None:
                raise MissingClaim('token has no "iat" claim', claim="iat")
            if now - iat > self.max_age + leeway:
                raise ExpiredToken("token is older than max_age", claim="iat")


# decode() is usually called with the same options for every token: reuse the policy
# when the options are hashable (strings and tuples).
_cached_policy: Callable[..., ClaimsPolicy] = lru_cache(maxsize=64, typed=True)(ClaimsPolicy)


def parse_claims(payload: bytes) -> dict[str, Any]:
    """Parse a JWT payload: a JSON object, UTF-8, no duplicate member names (RFC 7519 §7.2)."""
    return loads_object(payload, "payload")


def _now(now: float | datetime) -> float:
    if isinstance(now, datetime):
        return now.timestamp()
    if type(now) in (int, float):
        return float(now)
    raise TypeError("now must be a POSIX timestamp or a datetime")


def decode(
    token: str | bytes,
    key: JWK | JWKSet,
    *,
    algorithms: Collection[str],
    issuer: str | Collection[str] | None = None,
    audience: str | Collection[str] | None = None,
    leeway: float = 0,
    required: Collection[str] = (),
    typ: str | None = None,
    max_age: float | None = None,
    now: float | datetime | None = None,
    require_exp: bool = True,
    max_size: int = jws.DEFAULT_MAX_SIZE,
) -> Claims:
    """Verify a JWT's signature with ``key`` and validate its claims; return them."""
    # jws.verify's steps spelled out, with the cheap common-case tests inline and the step
    # functions called only to raise their precise errors: on the hot path every Python
    # call counts (they cost about twice as much right after OpenSSL's EC arithmetic has
    # flushed the CPU caches as they do in isolation).
    try:
        policy = _cached_policy(issuer, audience, leeway, required, typ, max_age, require_exp)
    except TypeError:  # unhashable options (lists): build a fresh policy
        policy = ClaimsPolicy(issuer, audience, leeway, required, typ, max_age, require_exp)
    if not algorithms or isinstance(algorithms, _TEXT):
        jws.check_algorithms(algorithms)
    # The key (or set) keeps the headers of the tokens decoded with it (jose._fast).
    headers = key._headers if isinstance(key, JWK | JWKSet) else None
    parsed = parse_cached(token, max_size, headers)
    header = parsed.header
    alg = header["alg"]
    if alg not in algorithms or alg not in ALGORITHMS or "crit" in header or "b64" in header:
        jws.check_header(parsed, algorithms)
    jws.verify_signature(parsed, jws.select_key(parsed, key))
    claims = loads_object(parsed.payload, "payload")
    policy.validate(claims, header, time.time() if now is None else _now(now))
    return Claims(claims, header)


def encode(claims: Mapping[str, Any], key: JWK, *, headers: Mapping[str, Any] | None = None) -> str:
    """Sign ``claims`` into a compact JWT. The header gets ``typ: "JWT"``, the key's ``alg``
    and ``kid``, unless ``headers`` overrides them."""
    return Encoder(key, headers=headers).encode(claims)


# Compact, ASCII-only JSON without NaN or Infinity: one encoder for every token.
_CLAIMS_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class Encoder:
    """:func:`encode` for many tokens signed by one key with one header.

    The header is built, checked and serialised once; each :meth:`encode` then serialises
    the claims and signs (the key service holds one per signing key). The tokens are byte
    for byte what :func:`encode` makes with the same key and ``headers``.

    ``sign`` is for a key whose private half is held elsewhere (an HSM): ``key`` is then its
    public JWK (``alg`` and ``kid`` come from it) and ``sign(signing_input)`` must return the
    JWS signature of that algorithm (RFC 7515 §5.1 step 5).
    """

    __slots__ = ("_prefix", "_sign")

    def __init__(
        self,
        key: JWK,
        *,
        headers: Mapping[str, Any] | None = None,
        sign: Callable[[bytes], bytes] | None = None,
    ) -> None:
        merged: dict[str, Any] = {"typ": "JWT"}
        if headers:
            merged.update(headers)
        header = jws.protected_header(key, merged, held_elsewhere=sign is not None)
        self._sign = sign or partial(key._sign, header["alg"])
        self._prefix = jws.encode_header(header) + "."

    @property
    def header(self) -> Mapping[str, Any]:
        """The protected header every token gets (decoded from its serialised form: an
        encoder keeps only that, as a service may hold one per project)."""
        return MappingProxyType(loads_object(b64url_decode(self._prefix[:-1]), "header"))

    def encode(self, claims: Mapping[str, Any]) -> str:
        """Sign ``claims`` (a mapping, JSON-serialisable, no NaN) into a compact JWT."""
        if not isinstance(claims, Mapping):
            raise TypeError("claims must be a mapping")
        payload = _CLAIMS_JSON.encode(dict(claims)).encode("ascii")
        signing_input = self._prefix + b64url_encode(payload)
        signature = self._sign(signing_input.encode("ascii"))
        return signing_input + "." + b64url_encode(signature)


def decode_unverified(token: str | bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims WITHOUT verifying anything: for display and routing only."""
    parsed = jws.parse(token)
    return dict(parsed.header), parse_claims(parsed.payload)
