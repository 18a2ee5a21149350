"""The verifier: ``Verifier.verify(token) -> Claims`` (and ``await verify_async``).

One verification, in order (nothing is trusted before the signature is checked, and garbage
never reaches the network):

1. ``jwkit.jose._fast.parse_object``: size limit, three strict base64url segments, JSON
   header (RFC 7515 §7.1), the payload a JSON object without duplicate names (RFC 7519 §7.2);
2. :func:`jwkit.jose.jws.check_header`: ``alg`` known and in the allow-list, no unknown
   ``crit``, no ``b64: false`` (RFC 7515 §4.1.11, RFC 8725 §3.1);
3. the payload's still-unverified ``iss`` compared with the expected issuer, so a token from
   elsewhere never triggers a JWKS refetch;
4. the key: by ``kid`` from the key source, refetching at most once per cooldown when the
   ``kid`` is unknown; without ``kid`` only the single key that fits the ``alg``
   (RFC 7515 §4.1.4, RFC 7517 §4);
5. the signature, with the algorithm bound to that key (RFC 8725 §3.1);
6. :class:`~jwkit.jose.jwt.ClaimsPolicy`: ``exp``/``nbf``/``iat``/``max_age``/``leeway``,
   ``aud``, ``typ``, required claims (RFC 7519 §4.1, §7.2); ``iss`` was settled at step 3;
7. ``check_status``: the token's entry in its Status List Token (draft-ietf-oauth-status-list
   §8.3, :mod:`jwkit.verify.status`), only after every other check passed.

The verified-token cache (:mod:`jwkit.verify.cache`) short-cuts a token string seen before,
re-checking its time window and its status (step 7, from the cached list) on every hit.
"""

from __future__ import annotations

import concurrent.futures
import enum
import os
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any, NamedTuple, cast

from ..errors import (
    ClaimError,
    InvalidIssuer,
    InvalidSignature,
    KeyNotFound,
    MissingClaim,
)
from ..jose import jws
from ..jose._fast import checker_for, new_header_cache, parse_object
from ..jose.algorithms import ALGORITHMS, ASYMMETRIC_ALGORITHMS, Checker
from ..jose.jwk import JWK, JWKSet
from ..jose.jwt import Claims, ClaimsPolicy, as_names
from .cache import DEFAULT_CACHE_SIZE, CacheEntry, TokenCache, validity_window
from .events import EventListener, events_url
from .offload import Offloader, OffloadPool, offloader
from .providers import SAFE_ALGORITHMS, preset_takes_issuer, resolve
from .remote import REMOTE_OPTIONS, RemoteJWKSource
from .sources import FileKeySource, KeySource, SourceHealth, StaticKeySource, _caller_level
from .status import STATUS_OPTIONS, StatusChecker, build_checker

__all__ = ["VERIFIER_OPTIONS", "AudienceWarning", "Verifier", "check_azp"]


class _KeysMemo(NamedTuple):
    """What the hot path needs from one key set: see :meth:`Verifier._remember`."""

    keys: JWKSet | None
    #: the set's single kid-less key, which fits any kid
    single: JWK | None
    #: the set's keys by kid (empty when the set cannot verify)
    by_kid: Mapping[Any, JWK]


class _Route:
    """A header that passed the header checks, the key set, and the key and checker picked
    from that set (see :meth:`Verifier._route_for`). Holding the header and the set keeps
    them alive, so an identity test against them cannot be fooled by a new object at a reused
    address. (Slots, not a named tuple: the hot path reads a slot as fast as an index.)"""

    __slots__ = ("check", "header", "key", "keys", "offload")

    def __init__(
        self, header: Mapping[str, Any] | None, keys: JWKSet | None, key: JWK, alg: str
    ) -> None:
        self.header = header
        self.keys = keys
        self.key = key
        self.check: Checker = checker_for(key, alg) if alg else _refuse
        #: an asymmetric check, worth a thread hop in ``verify_async`` (an HMAC is not)
        self.offload = alg in ASYMMETRIC_ALGORITHMS


def _refuse(signing_input: bytes, signature: bytes) -> bool:
    return False


# No header is None, so no token ever takes this route's key or checker.
_NO_ROUTE = _Route(None, None, cast(JWK, None), "")


class _Call:
    """One verification's mailbox between :meth:`Verifier._flow` and its driver."""

    __slots__ = ("answer", "claims")

    answer: Any  # the driver's answer to the need just yielded
    claims: Claims  # the result, set when the flow ends


class _Need:
    """What :meth:`Verifier._flow` needs from outside: ``verify`` calls :meth:`answer`,
    ``verify_async`` awaits :meth:`answer_async`."""

    __slots__ = ()

    def answer(self, verifier: Verifier) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    async def answer_async(self, verifier: Verifier) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class _Keys(_Need):
    """The source's current key set."""

    __slots__ = ()

    def answer(self, verifier: Verifier) -> JWKSet:
        return verifier.source.get_keys()

    async def answer_async(self, verifier: Verifier) -> JWKSet:
        return await verifier.source.get_keys_async()


class _Refresh(_Need):
    """A newer key set for an unknown ``kid`` (or ``None``: see KeySource)."""

    __slots__ = ("kid",)

    def __init__(self, kid: str) -> None:
        self.kid = kid

    def answer(self, verifier: Verifier) -> JWKSet | None:
        return verifier.source.refresh_for_kid(self.kid)

    async def answer_async(self, verifier: Verifier) -> JWKSet | None:
        return await verifier.source.refresh_for_kid_async(self.kid)


class _Status(_Need):
    """The token's status, from a status list that must be fetched first (raises)."""

    __slots__ = ("claims",)

    def __init__(self, claims: Mapping[str, Any]) -> None:
        self.claims = claims

    def answer(self, verifier: Verifier) -> None:
        assert verifier._status is not None
        verifier._status.check(self.claims)

    async def answer_async(self, verifier: Verifier) -> None:
        assert verifier._status is not None
        await verifier._status.check_async(self.claims)


class _Events(_Need):
    """The status event listener started: a thread for ``verify``, a task for ``verify_async``."""

    __slots__ = ()

    def answer(self, verifier: Verifier) -> None:
        assert verifier._events is not None
        verifier._events.start_thread()

    async def answer_async(self, verifier: Verifier) -> None:
        assert verifier._events is not None
        verifier._events.start_task()


class _Check(_Need):
    """The signature check, on the verifier's offload pool (only ``verify_async`` asks)."""

    __slots__ = ("check", "signature", "signing_input")

    def __init__(self, check: Checker, signing_input: bytes, signature: bytes) -> None:
        self.check = check
        self.signing_input = signing_input
        self.signature = signature

    def answer(self, verifier: Verifier) -> bool:
        return self.check(self.signing_input, self.signature)

    async def answer_async(self, verifier: Verifier) -> bool:
        offload = verifier._offload
        assert offload is not None
        pending = offload.try_run(self.check, self.signing_input, self.signature)
        if pending is None:  # every worker is busy: check here rather than queue
            return self.check(self.signing_input, self.signature)
        return await pending


_KEYS = _Keys()
_EVENTS = _Events()


class AudienceWarning(UserWarning):
    """A :class:`Verifier` was built without ``audience=``: it accepts a token meant for any
    API of the same issuer (RFC 8725 §3.9). Pass the ``aud`` your API expects, or
    ``audience=None`` to accept any audience on purpose."""


class _Unset(enum.Enum):
    UNSET = "unset"


_NO_AUDIENCE = (
    "this Verifier has no audience, so it accepts tokens the issuer made for any other API "
    "(RFC 8725 §3.9): pass audience='<the aud your API expects>', or audience=None to "
    "accept any audience on purpose"
)

#: How often (seconds) a run of cache hits asks the key source whether its keys changed.
POLL_INTERVAL = 1.0
#: Keyword options of :class:`Verifier` (``from_*`` constructors pass the rest on).
VERIFIER_OPTIONS = frozenset(
    {
        "issuer",
        "audience",
        "algorithms",
        "leeway",
        "required_claims",
        "typ",
        "max_age",
        "token_cache",
        "require_exp",
        "max_token_size",
        "azp",
        "clock",
        "check_status",
        "offload",
        *STATUS_OPTIONS,
    }
)


def check_azp(claims: Mapping[str, Any], allowed: tuple[str, ...] | None) -> None:
    """OpenID Connect Core 1.0 §3.1.3.7 (6): when ``azp`` is present it must be one of
    ``allowed``; when several audiences are present, ``azp`` must be present."""
    if allowed is None:
        return
    azp = claims.get("azp")
    if azp is None:
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1:
            raise MissingClaim('token has several audiences but no "azp"', claim="azp")
        return
    if not isinstance(azp, str) or azp not in allowed:
        raise ClaimError("token was issued to another party", claim="azp")


class Verifier:
    """Verify tokens from one issuer with keys from one key source.

    ``keys`` is a :class:`~jwkit.verify.sources.KeySource` (or a :class:`~jwkit.JWK` /
    :class:`~jwkit.JWKSet`, wrapped in a static source). ``algorithms`` is the allow-list;
    by default, for a remote source, the asymmetric algorithms, and for local keys, the
    algorithms those keys allow. ``token_cache`` is ``True`` (10 000 entries), ``False``, or
    an entry count; each verifier has its own cache. ``clock`` returns POSIX
    seconds (tests inject a frozen one). ``check_status`` (``True``: check tokens that carry
    a ``status`` claim; ``"required"``: refuse tokens without one; ``False``) and the
    ``status_*`` options are described in :mod:`jwkit.verify.status` and
    ``docs/revocation.md``.

    ``offload`` is where :meth:`verify_async` runs an asymmetric signature check (EC, RSA,
    EdDSA) so that the event loop meanwhile serves other requests on another core: ``True``
    (a pool shared by every verifier, one thread per CPU; see :mod:`jwkit.verify.offload`),
    an :class:`~jwkit.verify.offload.OffloadPool` or any
    :class:`concurrent.futures.Executor`, or ``False`` (on the loop). HMAC checks and token
    cache hits never leave the loop; :meth:`verify` never offloads.

    A verifier built by a ``from_*`` constructor owns its key source and closes it in
    :meth:`close` / :meth:`aclose`; a source passed in is left to its owner.
    """

    def __init__(
        self,
        keys: KeySource | JWK | JWKSet,
        *,
        issuer: str | Collection[str] | None = None,
        audience: str | Collection[str] | _Unset | None = _Unset.UNSET,
        algorithms: Collection[str] | None = None,
        leeway: float = 0,
        required_claims: Collection[str] = (),
        typ: str | None = None,
        max_age: float | None = None,
        token_cache: bool | int = True,
        require_exp: bool = True,
        max_token_size: int = jws.DEFAULT_MAX_SIZE,
        azp: str | Collection[str] | None = None,
        clock: Callable[[], float] = time.time,
        check_status: bool | str = True,
        offload: bool | OffloadPool | concurrent.futures.Executor = True,
        **status_options: Any,
    ) -> None:
        owns = False
        if isinstance(keys, JWK | JWKSet):
            keys, owns = StaticKeySource(keys), True
        if not isinstance(keys, KeySource):
            raise TypeError("keys must be a key source, a JWK or a JWKSet")
        self.source: KeySource = keys
        self._owns_source = owns
        self._issuers = as_names(issuer, "issuer")
        if audience is _Unset.UNSET:
            warnings.warn(_NO_AUDIENCE, AudienceWarning, stacklevel=_caller_level())
            audience = None
        # Everything but the issuer, which verify() checks itself at step 3 (before any key
        # is fetched); a cached token's issuer cannot have changed since.
        self._policy = ClaimsPolicy(
            None, audience, leeway, tuple(required_claims), typ, max_age, require_exp
        )
        self._azp = as_names(azp, "azp")
        self._algorithms = self._allow_list(algorithms)
        self.max_token_size = int(max_token_size)
        self._leeway = self._policy.leeway
        self._max_age = max_age
        self._clock = clock
        self._next_poll = 0.0
        self._keys_memo = _KeysMemo(None, None, {})
        self._route = _NO_ROUTE
        self._headers = new_header_cache()  # this verifier's decoded headers (jose._fast)
        # A cache belongs to exactly one verifier: its entries passed *this* policy.
        cache: TokenCache | None
        if token_cache is True:
            cache = TokenCache(DEFAULT_CACHE_SIZE)
        elif token_cache is False or token_cache == 0:
            cache = None
        elif isinstance(token_cache, int):
            cache = TokenCache(token_cache)
        else:
            raise TypeError("token_cache must be a bool or a number of entries")
        self.cache = cache
        if cache is not None:
            keys.subscribe(cache.drop_keys)
        self._status = build_checker(
            check_status,
            status_options,
            source=keys,
            algorithms=self._algorithms,
            issuers=self._issuers,
            leeway=self._leeway,
            clock=clock,
        )
        self._offload: Offloader | None = offloader(offload)
        self._events: EventListener | None = None
        if status_options.get("status_events"):
            self._events = _listener(self, status_options)

    def _allow_list(self, algorithms: Collection[str] | None) -> frozenset[str]:
        if algorithms is not None:
            if isinstance(algorithms, str | bytes):
                raise TypeError('algorithms must be a collection of names, e.g. ["ES256"]')
            allowed = frozenset(algorithms)
            if not allowed:
                raise ValueError("algorithms must not be empty")
            unknown = sorted(a for a in allowed if a not in ALGORITHMS)
            if unknown:
                raise ValueError(f"unsupported algorithms: {', '.join(map(str, unknown))}")
            return allowed
        if self.source.remote:
            return frozenset(SAFE_ALGORITHMS)
        derived = frozenset(a for k in self.source.get_keys() for a in k.verify_algorithms)
        if not derived:
            raise ValueError("the keys allow no verification algorithm; pass algorithms=")
        return derived

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_jwk(cls, jwk: JWK | Mapping[str, Any] | str, **options: Any) -> Verifier:
        """One key: a :class:`~jwkit.JWK`, a JWK as a mapping, or its JSON text."""
        if isinstance(jwk, str):
            jwk = JWK.from_json(jwk)
        elif not isinstance(jwk, JWK):
            jwk = JWK.from_dict(jwk)
        return cls._owning(StaticKeySource(jwk), options)

    @classmethod
    def from_jwks(cls, jwks: JWKSet | Mapping[str, Any] | str, **options: Any) -> Verifier:
        """A JWK Set: a :class:`~jwkit.JWKSet`, ``{"keys": [...]}``, or its JSON text."""
        if isinstance(jwks, str):
            jwks = JWKSet.from_json(jwks)
        elif not isinstance(jwks, JWKSet):
            jwks = JWKSet.from_dict(jwks)
        return cls._owning(StaticKeySource(jwks), options)

    @classmethod
    def from_jwk_file(cls, path: str | os.PathLike[str], **options: Any) -> Verifier:
        """A JWK, JWKS or PEM file (re-read when it changes; see FileKeySource)."""
        interval = options.pop("check_interval", 1.0)
        return cls._owning(FileKeySource(path, check_interval=interval), options)

    @classmethod
    def from_pem(
        cls, data: bytes | str, alg: str | None = None, *, kid: str | None = None, **options: Any
    ) -> Verifier:
        """A PEM public key or certificate (or a one-line base64 SPKI). Without ``kid`` the
        key has none, so it verifies tokens whatever ``kid`` they carry."""
        key = JWK.from_pem(data, alg).replace(kid=kid)
        return cls._owning(StaticKeySource(key), options)

    @classmethod
    def from_secret(
        cls, secret: bytes | str, alg: str = "HS256", *, kid: str | None = None, **options: Any
    ) -> Verifier:
        """A shared secret (HMAC). Only ``alg`` is allowed unless ``algorithms=`` says more."""
        raw = secret.encode("utf-8") if isinstance(secret, str) else secret
        options.setdefault("algorithms", (alg,))
        return cls._owning(StaticKeySource(JWK.from_secret(raw, alg, kid=kid)), options)

    @classmethod
    def from_jwks_url(cls, url: str, **options: Any) -> Verifier:
        """A remote JWKS. Remote options: ``timeout``, ``cooldown``, ``min_ttl``,
        ``max_ttl``, ``max_stale``, ``allow_insecure_http``, ``http_client``,
        ``async_http_client`` (and ``default_ttl``, ``max_bytes``, ``follow_redirects``,
        ``background_refresh``)."""
        remote, rest = _split(options)
        return cls._owning(RemoteJWKSource(url, **remote), rest)

    @classmethod
    def from_issuer(cls, issuer_url: str, **options: Any) -> Verifier:
        """OpenID discovery: keys from ``{issuer}/.well-known/openid-configuration``'s
        ``jwks_uri`` (its ``issuer`` must be identical); the expected issuer defaults to it."""
        remote, rest = _split(options)
        rest.setdefault("issuer", issuer_url)
        return cls._owning(RemoteJWKSource.from_issuer(issuer_url, **remote), rest)

    @classmethod
    def from_provider(cls, name: str, **params_and_options: Any) -> Verifier:
        """A preset of :mod:`jwkit.verify.providers` (``auth0``, ``okta``, ``cognito``, ...).

        Keyword arguments that are verifier or remote options are used as such; the rest are
        the provider's parameters. Preset issuer, audience and algorithms are defaults that
        explicit options override; ``issuer=None`` keeps the preset's issuer (a preset never
        verifies without an issuer check).
        """
        remote, rest = _split(params_and_options)
        if "issuer" in rest and rest["issuer"] is None:
            # An unset setting passed through must not switch the issuer check off: None
            # means "the preset's issuer", exactly as if it were not given.
            del rest["issuer"]
        options = {k: v for k, v in rest.items() if k in VERIFIER_OPTIONS}
        params = {k: v for k, v in rest.items() if k not in VERIFIER_OPTIONS}
        if "issuer" in options and preset_takes_issuer(name):
            params["issuer"] = options["issuer"]  # clerk, transcodes, oidc
        config = resolve(name, **params)
        if config.issuer_template is not None and "issuer" not in options:
            raise ValueError(
                f"{config.name} with this tenant accepts many issuers "
                f"({config.issuer_template}): use MultiVerifier with that template"
            )
        if config.issuer is not None:
            options.setdefault("issuer", config.issuer)
        if config.audience is not None:
            options.setdefault("audience", config.audience)
        if config.algorithms:
            options.setdefault("algorithms", config.algorithms)
        source: KeySource
        if config.keys is not None:
            source = StaticKeySource(config.keys)
        elif config.discovery:
            assert isinstance(config.issuer, str)
            source = RemoteJWKSource.from_issuer(config.issuer, **remote)
        else:
            assert config.jwks_url is not None
            source = RemoteJWKSource(config.jwks_url, **remote)
        return cls._owning(source, options)

    @classmethod
    def _owning(cls, source: KeySource, options: dict[str, Any]) -> Verifier:
        unknown = sorted(set(options) - VERIFIER_OPTIONS)
        if unknown:
            raise TypeError(f"unexpected options: {', '.join(unknown)}")
        verifier = cls(source, **options)
        verifier._owns_source = True
        return verifier

    # -- verification -------------------------------------------------------------------------
    def verify(self, token: str | bytes) -> Claims:
        """Verify ``token`` and return its claims, or raise an :class:`~jwkit.InvalidToken`
        (or :class:`~jwkit.KeySourceError` when no keys can be had)."""
        claims = self._cached(token)
        if claims is not None:
            return claims
        call = _Call()
        for need in self._flow(token, call, False):
            call.answer = self.source.get_keys() if need is _KEYS else need.answer(self)
        return call.claims

    async def verify_async(self, token: str | bytes) -> Claims:
        """Like :meth:`verify`; key fetching does not block the event loop, and with
        ``offload`` an asymmetric signature check runs on a worker thread meanwhile."""
        claims = self._cached(token)
        if claims is not None:
            return claims
        call = _Call()
        for need in self._flow(token, call, self._offload is not None):
            call.answer = await need.answer_async(self)
        return call.claims

    def _cached(self, token: str | bytes) -> Claims | None:
        """A cached token that needs nothing fetched: its claims; else ``None`` (then
        :meth:`_flow` decides, from the same entry)."""
        cache = self.cache
        if cache is None or type(token) is not str:
            return None
        entry = cache.get(token)
        if entry is None:
            return None
        now = self._clock()
        if now < self._next_poll and entry.not_before <= now < entry.not_after:
            claims = entry.claims
            status = self._status
            if status is None:
                return claims
            data = claims._data
            # A token without a status claim costs one lookup here.
            if ("status" not in data and not status.required) or status.quick(data, now):
                return claims
        return None

    def _flow(self, token: str | bytes, call: _Call, offload: bool) -> Iterator[_Need]:
        """The verification, written once for :meth:`verify` and :meth:`verify_async`.

        Whatever needs the key source, the status list or another thread is yielded as a
        :class:`_Need`; ``verify`` answers it by calling, ``verify_async`` by awaiting, into
        ``call.answer``. With ``offload``, an asymmetric signature check is such a need too.
        The claims end in ``call.claims``. (A plain ``for`` loop drives this generator: it
        costs about half of ``send()`` and a ``StopIteration`` per token.)"""
        cache = self.cache
        if cache is not None and type(token) is str:
            entry = cache.get(token)
            if entry is not None:
                now = self._clock()
                if now >= self._next_poll:
                    self._next_poll = now + POLL_INTERVAL
                    yield _KEYS  # a changed key set drops the entries of its departed keys
                    entry = cache.get(token)
                if entry is not None:
                    if entry.not_before <= now < entry.not_after:
                        claims = entry.claims
                    else:
                        claims = self._revalidate(token, entry, now)
                    status = self._status
                    if status is not None:
                        data = claims._data
                        if ("status" in data or status.required) and not status.quick(data, now):
                            yield _Status(data)
                    call.claims = claims
                    return
        events = self._events
        if events is not None and not events.running:
            yield _EVENTS
        parsed, payload = parse_object(token, self.max_token_size, self._headers)
        header, _, signature, signing_input = parsed
        route = self._route
        if header is not route.header:
            alg = header["alg"]
            # The allow-list holds only supported names; check_header words every refusal.
            if alg not in self._algorithms or "crit" in header or "b64" in header:
                jws.check_header(parsed, self._algorithms)
        issuers = self._issuers
        if issuers is not None:
            iss = payload.get("iss")
            if type(iss) is not str or iss not in issuers:
                _refuse_issuer(iss)
        yield _KEYS
        keys: JWKSet = call.answer
        if header is not route.header or keys is not route.keys:
            found = self._route_for(header, keys)
            if found is None:
                yield from self._select(parsed, keys, call)
                key = call.answer
                found = _Route(None, None, key, header["alg"])
            route = found
        if offload and route.offload:
            yield _Check(route.check, signing_input, signature)
            ok = call.answer
        else:
            ok = route.check(signing_input, signature)
        if not ok:
            raise InvalidSignature("signature verification failed")
        now = self._clock()
        self._policy.validate(payload, header, now)
        if self._azp is not None:
            check_azp(payload, self._azp)
        claims = Claims(payload, header)
        cache = self.cache
        if cache is not None and type(token) is str:
            start, end = validity_window(payload, leeway=self._leeway, max_age=self._max_age)
            cache.put(token, CacheEntry(claims, route.key, start, end))
            self._next_poll = now + POLL_INTERVAL  # the source was just consulted
        status = self._status
        if status is not None and not status.quick(payload, now):
            # After caching: a revoked token is re-checked on each hit.
            yield _Status(payload)
        call.claims = claims

    def _route_for(self, header: Mapping[str, Any], keys: JWKSet) -> _Route | None:
        """Step 4 the common way: the key (from the memo of ``keys``) and its checker for a
        token with ``header``, remembered as the route for the next token with the same
        header object; ``None`` when only :meth:`_select` can decide."""
        memo = self._keys_memo
        if memo.keys is not keys:
            memo = self._remember(keys)
        # The single kid-less key, else the key named by kid.
        key = memo.single or memo.by_kid.get(header.get("kid"))
        if key is None:
            return None
        route = _Route(header, keys, key, header["alg"])
        self._route = route  # one assignment: safe across threads
        return route

    def _select(self, parsed: jws.ParsedJWS, keys: JWKSet, call: _Call) -> Iterator[_Need]:
        """Step 4 the general way: :func:`jws.select_key`, refetching once for a new kid;
        the key ends in ``call.answer``."""
        try:
            call.answer = jws.select_key(parsed, _single(keys))
        except KeyNotFound:
            kid = parsed.kid
            if kid is None:
                raise
            yield _Refresh(kid)
            newer = call.answer
            if newer is None or newer is keys:
                raise
            call.answer = jws.select_key(parsed, newer)

    def _remember(self, keys: JWKSet) -> _KeysMemo:
        """What the hot path needs from ``keys``, kept until the source hands out another
        set (a source hands out the same immutable set until it changes): the single
        kid-less key (see :func:`_single`), and the keys by kid when the set can verify."""
        single = _single(keys)
        memo = _KeysMemo(
            keys,
            single if isinstance(single, JWK) else None,
            keys._by_kid if keys._problem is None else {},
        )
        self._keys_memo = memo  # one assignment: safe across threads
        return memo

    def _revalidate(self, token: str | bytes, entry: CacheEntry, now: float) -> Claims:
        """A hit outside its window: the policy decides (and usually raises)."""
        try:
            self._policy.validate(entry.claims, entry.claims.header, now)
        except ClaimError:
            if now >= entry.not_after:
                assert self.cache is not None
                self.cache.discard(token)
            raise
        return entry.claims

    # -- lifecycle ----------------------------------------------------------------------------
    def health(self) -> SourceHealth:
        """The key source's health (for readiness probes)."""
        return self.source.health()

    @property
    def issuer(self) -> str | tuple[str, ...] | None:
        issuers = self._issuers
        if issuers is None:
            return None
        return issuers[0] if len(issuers) == 1 else issuers

    @property
    def algorithms(self) -> frozenset[str]:
        """The ``alg`` values this verifier accepts (fixed at construction)."""
        return self._algorithms

    @property
    def status(self) -> StatusChecker | None:
        """The status list checker (``None`` with ``check_status=False``)."""
        return self._status

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
        if self._status is not None:
            self._status.close()
        if self._owns_source:
            self.source.close()

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.aclose()
        if self._status is not None:
            await self._status.aclose()
        if self._owns_source:
            await self.source.aclose()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Verifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<Verifier issuer={self.issuer!r} source={self.source!r}>"


def _refuse_issuer(iss: object) -> None:
    if iss is None:
        raise MissingClaim('token has no "iss" claim', claim="iss")
    raise InvalidIssuer("token issuer is not accepted", claim="iss")


def _single(keys: JWKSet) -> JWK | JWKSet:
    """A set of one key without ``kid`` is that key: it fits a token with any ``kid``
    (RFC 7515 §4.1.4 makes ``kid`` a hint), as long as the algorithm fits."""
    if len(keys) == 1:
        only = keys.keys[0]
        if only.kid is None:
            return only
    return keys


def _split(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    remote = {k: v for k, v in options.items() if k in REMOTE_OPTIONS}
    rest = {k: v for k, v in options.items() if k not in REMOTE_OPTIONS}
    # Status lists come from the same kind of server as the keys: same transport settings.
    for name in ("allow_insecure_http", "http_client", "async_http_client"):
        if name in remote:
            rest.setdefault(f"status_{name}", remote[name])
    return remote, rest


def _listener(verifier: Verifier, options: Mapping[str, Any]) -> EventListener:
    """The push listener of ``status_events=True``: the issuer's ``/events`` stream."""
    issuers = verifier._issuers
    if issuers is None or len(issuers) != 1:
        raise ValueError("status_events=True needs exactly one issuer")
    return EventListener(
        events_url(issuers[0]),
        checker=verifier._status,
        source=verifier.source,
        allow_insecure_http=bool(options.get("status_allow_insecure_http", False)),
        http_client=options.get("status_http_client"),
        async_http_client=options.get("status_async_http_client"),
    )
