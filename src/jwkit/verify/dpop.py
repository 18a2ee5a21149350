"""DPoP (RFC 9449): sender-constrained access tokens at the resource server.

A DPoP-bound access token carries ``cnf.jkt``, the RFC 7638 thumbprint of the client's key
(RFC 9449 §6.1). With every request the client sends it as ``Authorization: DPoP <token>``
together with a fresh proof in a ``DPoP`` header: a JWT signed by that key, naming the request.
A thief who has the token but not the key cannot make the proof.

:class:`DPoPVerifier` wraps a :class:`~jwkit.Verifier` (which verifies the access token) and
checks the proof as RFC 9449 §4.3 and §7.1 list it:

1. exactly one ``DPoP`` header, a compact JWS of at most ``max_proof_size`` characters;
2. ``typ`` is ``dpop+jwt``; ``alg`` is an asymmetric algorithm in the allow-list (never
   ``none``, never HMAC);
3. ``jwk`` is a public key (no private members, not symmetric) that may verify that ``alg``
   (the algorithm stays bound to the key, even here), and the signature verifies with it. This
   is the one place a key from a header is used, and it only ever checks the proof itself;
4. ``htm`` is the request's method and ``htu`` its URL, both normalised (§4.3: no query or
   fragment; scheme and host compared case-insensitively, default ports dropped);
5. ``iat`` inside the window (``max_age`` back, ``leeway`` ahead, by the injected clock);
6. the server's nonce, when a :class:`NonceProvider` is configured (§8, §9);
7. ``ath`` is base64url(SHA-256(access token)) and the token's ``cnf.jkt`` is the key's
   thumbprint (§4.3, §6.1);
8. ``jti`` not seen before within the window: a bounded, per-verifier
   :class:`MemoryReplayCache`, or any :class:`ReplayCache` shared by several processes (§11.1).

A bound token presented as ``Authorization: Bearer`` is refused
(:class:`~jwkit.errors.DPoPRequired`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from ..errors import (
    DPoPKeyMismatch,
    DPoPProofReplayed,
    DPoPRequired,
    InvalidDPoPProof,
    InvalidToken,
    JWKError,
    JWKitError,
    MalformedToken,
    UseDPoPNonce,
)
from ..jose import jws
from ..jose.algorithms import ASYMMETRIC_ALGORITHMS
from ..jose.jwk import JWK
from ..jose.jwt import Claims, parse_claims

__all__ = [
    "DEFAULT_DPOP_ALGORITHMS",
    "DEFAULT_MAX_PROOF_SIZE",
    "DEFAULT_PROOF_LEEWAY",
    "DEFAULT_PROOF_MAX_AGE",
    "DEFAULT_REPLAY_CACHE_SIZE",
    "DPoPProof",
    "DPoPVerifier",
    "MemoryReplayCache",
    "NoCredentials",
    "NonceProvider",
    "ReplayCache",
    "RotatingNonces",
    "access_token_hash",
    "authorization_credentials",
    "bound_jkt",
    "normalize_htu",
    "refuse_bound_bearer",
]

#: The proof algorithms accepted by default: every asymmetric one jwkit implements.
DEFAULT_DPOP_ALGORITHMS: frozenset[str] = ASYMMETRIC_ALGORITHMS
#: A proof longer than this (characters) is refused before any decoding.
DEFAULT_MAX_PROOF_SIZE = 8 * 1024
#: How old (seconds) a proof's ``iat`` may be.
DEFAULT_PROOF_MAX_AGE = 60.0
#: How far (seconds) clocks may disagree: a proof may be this far in the future (and this
#: much older than ``max_age``).
DEFAULT_PROOF_LEEWAY = 5.0
#: Entries of the default in-memory ``jti`` cache.
DEFAULT_REPLAY_CACHE_SIZE = 100_000

_TYPES = frozenset({"dpop+jwt", "application/dpop+jwt"})
# RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2, §6.4.1: members that only a private or secret key has.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_JTI = 256
_MAX_KEYS = 1024  # imported proof keys remembered per verifier
_MAX_URLS = 1024  # normalised URLs remembered per verifier
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def access_token_hash(token: str) -> str:
    """``ath``: base64url of the SHA-256 of the access token's ASCII text (RFC 9449 §4.2)."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _percent(match: re.Match[str]) -> str:
    # RFC 3986 §6.2.2.1 and §6.2.2.2: upper-case hex, unreserved characters decoded.
    octet = int(match.group(1), 16)
    return chr(octet) if octet in _UNRESERVED else "%" + match.group(1).upper()


def normalize_htu(url: str) -> str:
    """The URL a proof's ``htu`` is compared as (RFC 9449 §4.3, RFC 3986 §6.2.2, §6.2.3).

    Query and fragment dropped; scheme and host lower-cased; the scheme's default port
    dropped; an empty path becomes ``/``; percent-encodings upper-cased, unreserved ones
    decoded. Raises ``ValueError`` for anything that is not an absolute ``http(s)`` URL
    without user information.
    """
    if not isinstance(url, str) or not url.isascii() or any(c in url for c in " \t\r\n\\"):
        raise ValueError("not an absolute http(s) URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or "@" in parts.netloc:
        raise ValueError("not an absolute http(s) URL without user information")
    host = parts.hostname
    port = parts.port  # ValueError for a port out of range
    if not host:
        raise ValueError("the URL has no host")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = _PERCENT.sub(_percent, parts.path) or "/"
    return f"{scheme}://{netloc}{path}"


def authorization_credentials(header: str | None) -> tuple[str, str] | None:
    """``("bearer" | "dpop", token)`` from an ``Authorization`` value, else ``None`` (no
    credentials, or another scheme). Raises :class:`~jwkit.errors.MalformedToken` when more
    than one token68 follows the scheme (RFC 7235 §2.1)."""
    if not header:
        return None
    value = header.strip(" \t")
    scheme, _, rest = value.partition(" ")
    if "\t" in scheme:
        scheme, _, more = scheme.partition("\t")
        rest = more + " " + rest
    scheme = scheme.lower()
    if scheme not in ("bearer", "dpop"):
        return None
    token = rest.strip(" \t")
    if not token:
        return None
    if " " in token or "\t" in token or "," in token:
        raise MalformedToken("the Authorization header holds more than one credential")
    return scheme, token


def bound_jkt(claims: Mapping[str, Any]) -> str | None:
    """The token's ``cnf.jkt`` (RFC 9449 §6.1), ``None`` when it is not DPoP-bound.
    A ``cnf.jkt`` that is not a non-empty string makes the token invalid."""
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    if not isinstance(cnf, Mapping):
        raise InvalidToken('the token\'s "cnf" claim is not an object')
    jkt = cnf.get("jkt")
    if jkt is None:
        return None
    if not isinstance(jkt, str) or not jkt:
        raise InvalidToken('the token\'s "cnf.jkt" is not a thumbprint')
    return jkt


def refuse_bound_bearer(claims: Mapping[str, Any]) -> None:
    """Raise :class:`~jwkit.errors.DPoPRequired` if a token presented as a bearer token is
    DPoP-bound: without its proof it is worth nothing (RFC 9449 §7.2)."""
    if "cnf" in claims and bound_jkt(claims) is not None:
        raise DPoPRequired("this token is DPoP-bound: send it with Authorization: DPoP and a proof")


@runtime_checkable
class ReplayCache(Protocol):
    """Remembers proof ``jti``\\ s until they expire. Share one between processes (Redis'
    ``SET key 1 NX EXAT expires_at``, a database unique key, ...) so that a proof used at one
    replica is refused at the others; a cache may also offer ``async def add_async``."""

    def add(self, key: str, expires_at: float) -> bool:
        """Record ``key`` until ``expires_at`` (POSIX seconds). ``False`` if it is already
        recorded and not yet expired: the proof is a replay."""
        ...


class MemoryReplayCache:
    """The default :class:`ReplayCache`: in this process, at most ``max_entries`` entries.

    Expired entries are dropped as new ones come. When the cache is full of live entries the
    oldest is dropped: a proof can then be replayed once if it is still inside its ``iat``
    window, which takes more than ``max_entries`` proofs per window (size the cache for your
    rate: rate x (max_age + 2 leeway)). Thread-safe.
    """

    def __init__(
        self,
        max_entries: int = DEFAULT_REPLAY_CACHE_SIZE,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError("max_entries must be a positive int")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str, expires_at: float) -> bool:
        now = self._clock()
        with self._lock:
            entries = self._entries
            seen = entries.get(key)
            if seen is not None and seen > now:
                return False
            # Insertion order is nearly expiry order (every entry lives for the same window
            # after its iat), so expired entries are found at the front.
            while entries:
                oldest_key, oldest = next(iter(entries.items()))
                if oldest > now and len(entries) < self.max_entries:
                    break
                del entries[oldest_key]
            entries[key] = expires_at
            entries.move_to_end(key)
            return True

    def __len__(self) -> int:
        return len(self._entries)


@runtime_checkable
class NonceProvider(Protocol):
    """Server nonces for DPoP proofs (RFC 9449 §8, §9)."""

    def current(self) -> str:
        """The nonce to send in a ``DPoP-Nonce`` header now."""
        ...

    def accepts(self, nonce: str) -> bool:
        """Whether a proof carrying ``nonce`` is fresh enough."""
        ...


class RotatingNonces:
    """Stateless nonces: the time slot of ``period`` seconds and an HMAC-SHA-256 of it under
    ``secret``. The current and the previous slot's nonces are accepted. Processes that share
    ``secret`` (32 random bytes by default, per instance) accept each other's nonces."""

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        period: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if secret is None:
            secret = secrets.token_bytes(32)
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ValueError("secret must be at least 16 bytes")
        if period <= 0:
            raise ValueError("period must be positive")
        self._secret = secret
        self.period = float(period)
        self._clock = clock

    def _nonce(self, slot: int) -> str:
        raw = slot.to_bytes(8, "big")
        mac = hmac.new(self._secret, raw, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(raw + mac).rstrip(b"=").decode("ascii")

    def current(self) -> str:
        return self._nonce(int(self._clock() // self.period))

    def accepts(self, nonce: str) -> bool:
        slot = int(self._clock() // self.period)
        return any(hmac.compare_digest(nonce, self._nonce(s)) for s in (slot, slot - 1))


@dataclass(frozen=True)
class DPoPProof:
    """A verified proof: its key, that key's RFC 7638 thumbprint, its ``alg`` and claims."""

    jwk: JWK
    jkt: str
    alg: str
    claims: Mapping[str, Any]

    @property
    def jti(self) -> str:
        jti: str = self.claims["jti"]
        return jti


class _TokenVerifier(Protocol):
    def verify(self, token: str) -> Claims: ...

    async def verify_async(self, token: str) -> Claims: ...


def _names(algorithms: Collection[str]) -> frozenset[str]:
    if isinstance(algorithms, str | bytes):
        raise TypeError('algorithms must be a collection of names, e.g. ["ES256"]')
    names = frozenset(algorithms)
    if not names:
        raise ValueError("algorithms must not be empty")
    unsafe = names - ASYMMETRIC_ALGORITHMS
    if unsafe:
        raise ValueError(f"DPoP proofs need asymmetric algorithms, not {sorted(unsafe)}")
    return names


def _single(proofs: str | Iterable[str] | None) -> str:
    """The one ``DPoP`` header value (RFC 9449 §4.3 check 1)."""
    if proofs is None:
        raise InvalidDPoPProof("the request has no DPoP proof")
    if isinstance(proofs, str):
        values = [proofs]
    else:
        values = list(proofs)
    if not values or not values[0]:
        raise InvalidDPoPProof("the request has no DPoP proof")
    if len(values) > 1 or "," in values[0]:
        raise InvalidDPoPProof("the request has more than one DPoP proof")
    return values[0].strip(" \t")


class DPoPVerifier:
    """Verify DPoP-bound access tokens and their proofs (RFC 9449).

    ``verifier`` verifies the access token (a :class:`~jwkit.Verifier`, or anything with
    ``verify``/``verify_async``); it may be ``None`` when only :meth:`verify_proof` is used
    (an authorization server's token endpoint). ``algorithms`` is the allow-list for proofs
    (asymmetric only). ``max_age``/``leeway`` bound a proof's ``iat`` by ``clock``.
    ``replay_cache`` defaults to a :class:`MemoryReplayCache` of this verifier;
    ``nonces`` (a :class:`NonceProvider`) makes server nonces required. ``require_dpop``
    refuses plain bearer tokens altogether; otherwise unbound bearer tokens are accepted and
    bound ones refused. ``base_url`` (``"https://api.example.com"``) replaces the scheme and
    host of the request URL when computing ``htu``: set it behind a proxy that does not pass
    the public scheme and host on.
    """

    def __init__(
        self,
        verifier: _TokenVerifier | None = None,
        *,
        algorithms: Collection[str] = DEFAULT_DPOP_ALGORITHMS,
        max_age: float = DEFAULT_PROOF_MAX_AGE,
        leeway: float = DEFAULT_PROOF_LEEWAY,
        clock: Callable[[], float] = time.time,
        replay_cache: ReplayCache | None = None,
        nonces: NonceProvider | None = None,
        require_dpop: bool = False,
        max_proof_size: int = DEFAULT_MAX_PROOF_SIZE,
        base_url: str | None = None,
    ) -> None:
        if verifier is not None and not callable(getattr(verifier, "verify", None)):
            raise TypeError("verifier must have a verify(token) method, such as jwkit.Verifier")
        if max_age <= 0 or leeway < 0:
            raise ValueError("max_age must be positive and leeway not negative")
        if replay_cache is not None and not isinstance(replay_cache, ReplayCache):
            raise TypeError("replay_cache must have an add(key, expires_at) method")
        if nonces is not None and not isinstance(nonces, NonceProvider):
            raise TypeError("nonces must have current() and accepts(nonce) methods")
        self.verifier = verifier
        self.algorithms = _names(algorithms)
        self.max_age = float(max_age)
        self.leeway = float(leeway)
        self._clock = clock
        self.replay_cache: ReplayCache = (
            MemoryReplayCache(clock=clock) if replay_cache is None else replay_cache
        )
        self._add_async = getattr(self.replay_cache, "add_async", None)
        self.nonces = nonces
        self.require_dpop = bool(require_dpop)
        self.max_proof_size = int(max_proof_size)
        self._base = None
        if base_url is not None:
            base = normalize_htu(base_url)
            self._base = base[:-1] if base.endswith("/") else base
        # Both keyed by text the client sent, bounded, and only ever holding results that
        # text determines: a proof header segment -> its checked key and thumbprint; a URL ->
        # its normalised form ("" when it is not a URL).
        self._keys: OrderedDict[str, tuple[JWK, str]] = OrderedDict()
        self._keys_lock = threading.Lock()
        self._urls: dict[str, str] = {}

    # -- the proof ------------------------------------------------------------------------

    def _normal(self, url: str) -> str:
        """:func:`normalize_htu`, remembered; ``""`` for what is not an http(s) URL."""
        found = self._urls.get(url)
        if found is None:
            try:
                found = normalize_htu(url)
            except ValueError:
                found = ""
            if len(self._urls) >= _MAX_URLS:
                self._urls.clear()
            self._urls[url] = found
        return found

    def request_htu(self, url: str) -> str:
        """The normalised ``htu`` of a request to ``url`` as this server sees it (with
        ``base_url`` in place of its scheme and host, if set)."""
        htu = self._normal(url)
        if not htu:
            raise ValueError("not an absolute http(s) URL")
        if self._base is not None:
            path = htu[htu.index("/", htu.index("//") + 2) :]
            htu = self._base + path
        return htu

    def _key(self, header: Mapping[str, Any], segment: str) -> tuple[JWK, str]:
        """The proof's ``jwk`` header as a public key and its thumbprint, imported once per
        header ``segment`` (the same base64url text is the same header, so the same key)."""
        with self._keys_lock:
            found = self._keys.get(segment)
            if found is not None:
                self._keys.move_to_end(segment)
                return found
        data = header.get("jwk")
        if not isinstance(data, Mapping):
            raise InvalidDPoPProof('the proof has no "jwk" header')
        if _PRIVATE_MEMBERS.intersection(data):
            raise InvalidDPoPProof("the proof's jwk holds private key material")
        if data.get("kty") == "oct":
            raise InvalidDPoPProof("the proof's jwk is a symmetric key")
        try:
            key = JWK.from_dict(data)
        except JWKError as exc:
            raise InvalidDPoPProof(f"the proof's jwk is not a usable key: {exc.message}") from None
        if key.is_private or key.is_symmetric:  # pragma: no cover - refused above
            raise InvalidDPoPProof("the proof's jwk is not a public key")
        found = (key, key.thumbprint())
        with self._keys_lock:
            self._keys[segment] = found
            if len(self._keys) > _MAX_KEYS:
                self._keys.popitem(last=False)
        return found

    def _check_proof(
        self,
        proof: str,
        method: str,
        htu: str,
        access_token: str | None,
        jkt: str | None,
    ) -> tuple[DPoPProof, str, float]:
        """Every check but the replay cache: the proof, its replay key and its expiry."""
        if not isinstance(proof, str):
            raise InvalidDPoPProof("the DPoP proof must be text")
        try:
            parsed = jws.parse(proof, max_size=self.max_proof_size)
            header = parsed.header
            typ = header.get("typ")
            if not isinstance(typ, str) or typ.lower() not in _TYPES:
                raise InvalidDPoPProof('the proof\'s "typ" is not "dpop+jwt"')
            jws.check_header(parsed, self.algorithms)
            claims = parse_claims(parsed.payload)
        except InvalidDPoPProof:
            raise
        except InvalidToken as exc:
            raise InvalidDPoPProof(f"proof: {exc.message}") from None
        alg = parsed.alg
        key, thumbprint = self._key(header, proof.partition(".")[0])
        if not key.can_verify(alg):
            raise InvalidDPoPProof(f"the proof's jwk may not verify {alg}")
        try:
            jws.verify_signature(parsed, key)
        except InvalidToken:
            raise InvalidDPoPProof("the proof's signature is not valid") from None
        # Claims, RFC 9449 §4.2.
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI:
            raise InvalidDPoPProof('the proof\'s "jti" is missing or not a short string')
        if claims.get("htm") != method:
            raise InvalidDPoPProof('the proof\'s "htm" is not the request method')
        proof_htu = claims.get("htu")
        if not isinstance(proof_htu, str) or self._normal(proof_htu) != htu:
            raise InvalidDPoPProof('the proof\'s "htu" is not the request URL')
        iat = claims.get("iat")
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            raise InvalidDPoPProof('the proof has no numeric "iat"')
        now = self._clock()
        if iat > now + self.leeway or iat < now - self.max_age - self.leeway:
            raise InvalidDPoPProof("the proof is too old or from the future")
        if self.nonces is not None:
            nonce = claims.get("nonce")
            if not isinstance(nonce, str) or not self.nonces.accepts(nonce):
                raise UseDPoPNonce(
                    "the proof must carry the server's current nonce", nonce=self.nonces.current()
                )
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str) or not hmac.compare_digest(
                ath, access_token_hash(access_token)
            ):
                raise DPoPKeyMismatch('the proof\'s "ath" is not the hash of the access token')
        if jkt is not None and not hmac.compare_digest(jkt, thumbprint):
            raise DPoPKeyMismatch("the access token is bound to another key")
        verified = DPoPProof(key, thumbprint, alg, Claims(claims, header))
        # A jti is scoped by the key that signed it: only that key's holder could burn it.
        return verified, f"{thumbprint} {jti}", iat + self.max_age + 2 * self.leeway

    def verify_proof(
        self,
        proof: str,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        jkt: str | None = None,
    ) -> DPoPProof:
        """Verify one proof for a request ``method url`` (RFC 9449 §4.3) and record its
        ``jti``. With ``access_token``, its ``ath`` must match; with ``jkt``, its key's
        thumbprint. Raises :class:`~jwkit.errors.InvalidDPoPProof` (or a subclass)."""
        htu = self._htu(url)
        verified, key, expires = self._check_proof(proof, method, htu, access_token, jkt)
        if not self.replay_cache.add(key, expires):
            raise DPoPProofReplayed("this DPoP proof was already used")
        return verified

    async def verify_proof_async(
        self,
        proof: str,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        jkt: str | None = None,
    ) -> DPoPProof:
        """:meth:`verify_proof`, awaiting the replay cache's ``add_async`` if it has one."""
        htu = self._htu(url)
        verified, key, expires = self._check_proof(proof, method, htu, access_token, jkt)
        if self._add_async is not None:
            fresh = bool(await self._add_async(key, expires))
        else:
            fresh = self.replay_cache.add(key, expires)
        if not fresh:
            raise DPoPProofReplayed("this DPoP proof was already used")
        return verified

    def _htu(self, url: str) -> str:
        try:
            return self.request_htu(url)
        except ValueError:
            # The server's own view of the request: a setup problem, never the client's.
            raise ValueError(f"cannot compute htu from the request URL {url[:100]!r}") from None

    # -- the request ----------------------------------------------------------------------

    def _bearer(self, claims: Claims) -> Claims:
        refuse_bound_bearer(claims)
        return claims

    def _require_verifier(self) -> _TokenVerifier:
        if self.verifier is None:
            raise TypeError("this DPoPVerifier has no access-token verifier")
        return self.verifier

    def verify_request(
        self,
        authorization: str | None,
        proofs: str | Iterable[str] | None,
        *,
        method: str,
        url: str,
    ) -> Claims:
        """Verify a request's ``Authorization`` header and its ``DPoP`` header value(s);
        return the access token's claims.

        ``Authorization: DPoP <token>`` needs exactly one valid proof for this ``method`` and
        ``url`` bound to the token; ``Authorization: Bearer <token>`` is accepted only when
        the token is not DPoP-bound and ``require_dpop`` is off. No credentials raise
        :class:`NoCredentials`.
        """
        verifier = self._require_verifier()
        scheme, token = self._credentials(authorization)
        if scheme == "bearer":
            return self._bearer(verifier.verify(token))
        proof = _single(proofs)
        claims = verifier.verify(token)
        self.verify_proof(proof, method=method, url=url, access_token=token, jkt=_jkt_of(claims))
        return claims

    async def verify_request_async(
        self,
        authorization: str | None,
        proofs: str | Iterable[str] | None,
        *,
        method: str,
        url: str,
    ) -> Claims:
        """:meth:`verify_request` with the verifier's ``verify_async``."""
        verifier = self._require_verifier()
        scheme, token = self._credentials(authorization)
        if scheme == "bearer":
            return self._bearer(await verifier.verify_async(token))
        proof = _single(proofs)
        claims = await verifier.verify_async(token)
        await self.verify_proof_async(
            proof, method=method, url=url, access_token=token, jkt=_jkt_of(claims)
        )
        return claims

    def _credentials(self, authorization: str | None) -> tuple[str, str]:
        found = authorization_credentials(authorization)
        if found is None:
            raise NoCredentials
        if found[0] == "bearer" and self.require_dpop:
            raise DPoPRequired("this resource accepts DPoP-bound tokens only")
        return found

    # A DPoPVerifier is also a bearer-token verifier (jwkit.integrations' TokenVerifier):
    # unbound tokens pass, bound ones are refused.

    def verify(self, token: str) -> Claims:
        """Verify ``token`` presented as a bearer token (refused if DPoP-bound)."""
        if self.require_dpop:
            raise DPoPRequired("this resource accepts DPoP-bound tokens only")
        return self._bearer(self._require_verifier().verify(token))

    async def verify_async(self, token: str) -> Claims:
        """:meth:`verify` with the verifier's ``verify_async``."""
        if self.require_dpop:
            raise DPoPRequired("this resource accepts DPoP-bound tokens only")
        return self._bearer(await self._require_verifier().verify_async(token))

    def challenge_algs(self) -> str:
        """The ``algs`` parameter of a ``WWW-Authenticate: DPoP`` challenge (RFC 9449 §7.1)."""
        return " ".join(sorted(self.algorithms))

    def __repr__(self) -> str:
        return f"DPoPVerifier({self.verifier!r}, algorithms={sorted(self.algorithms)})"


class NoCredentials(JWKitError):
    """The request carries no ``Authorization: Bearer`` or ``DPoP`` credentials."""

    code = "no_token"


def _jkt_of(claims: Mapping[str, Any]) -> str:
    jkt = bound_jkt(claims)
    if jkt is None:
        raise InvalidToken("the access token is not DPoP-bound (it has no cnf.jkt)")
    return jkt
