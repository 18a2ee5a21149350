"""Several issuers behind one entry point: :class:`MultiVerifier`.

A token is routed by its (still unverified) ``iss`` to the :class:`Verifier` of that issuer,
which then verifies it completely; a token whose ``iss`` matches no route is rejected
before any key is looked up. Routes are exact issuers or templates such as Entra's
``https://login.microsoftonline.com/{tenantid}/v2.0``, where each ``{name}`` matches one
URL-safe path segment. For a template route the issuer check is the template itself, and a
``tid`` claim, when present, must equal a ``{tenantid}``/``{tid}`` segment (Microsoft
identity platform guidance for multi-tenant apps).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from ..errors import ClaimError, InvalidIssuer, MissingClaim
from ..jose import jws
from ..jose.jwt import Claims, parse_claims
from .verifier import Verifier, check_azp

__all__ = ["MultiVerifier", "compile_template"]

_SEGMENT = "[A-Za-z0-9._~-]+"


def compile_template(template: str) -> re.Pattern[str]:
    """``https://x/{tenantid}/v2.0`` -> a full-match pattern with one group per name."""
    parts = re.split(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", template)
    pattern = ""
    for index, part in enumerate(parts):
        pattern += re.escape(part) if index % 2 == 0 else f"(?P<{part}>{_SEGMENT})"
    return re.compile(pattern)


class MultiVerifier:
    """Route each token to the verifier of its issuer.

    ``verifiers`` is a mapping from issuer (or issuer template) to :class:`Verifier`, or an
    iterable of verifiers that each have an ``issuer``. ``azp`` (the client ids allowed as
    authorized party of ID tokens) is checked after verification.
    """

    def __init__(
        self,
        verifiers: Mapping[str, Verifier] | Iterable[Verifier],
        *,
        azp: str | Collection[str] | None = None,
        max_token_size: int = jws.DEFAULT_MAX_SIZE,
    ) -> None:
        self._exact: dict[str, Verifier] = {}
        self._templates: list[tuple[re.Pattern[str], Verifier]] = []
        if isinstance(verifiers, Mapping):
            items = list(verifiers.items())
        else:
            items = []
            for verifier in verifiers:
                issuer = verifier.issuer
                if issuer is None:
                    raise ValueError("a verifier without issuer needs an explicit route")
                for iss in (issuer,) if isinstance(issuer, str) else issuer:
                    items.append((iss, verifier))
        if not items:
            raise ValueError("MultiVerifier needs at least one verifier")
        for route, verifier in items:
            if not isinstance(verifier, Verifier):
                raise TypeError("routes must map to Verifier objects")
            if "{" in route:
                self._templates.append((compile_template(route), verifier))
            else:
                self._exact[route] = verifier
        self._verifiers = list(dict.fromkeys(v for _, v in items))
        self._pinned: list[Verifier] = [v for v in self._verifiers if v.issuer is not None]
        self._azp = None if azp is None else ((azp,) if isinstance(azp, str) else tuple(azp))
        self.max_token_size = max_token_size

    @property
    def verifiers(self) -> list[Verifier]:
        return list(self._verifiers)

    def _route(self, token: str | bytes) -> tuple[Verifier, re.Match[str] | None]:
        parsed = jws.parse(token, max_size=self.max_token_size)
        iss = parse_claims(parsed.payload).get("iss")
        if iss is None:
            raise MissingClaim('token has no "iss" claim', claim="iss")
        if not isinstance(iss, str):
            raise InvalidIssuer("token issuer is not accepted", claim="iss")
        verifier = self._exact.get(iss)
        if verifier is not None:
            return verifier, None
        for pattern, candidate in self._templates:
            match = pattern.fullmatch(iss)
            if match is not None:
                return candidate, match
        raise InvalidIssuer("no verifier for this issuer", claim="iss")

    def _check(self, claims: Claims, match: re.Match[str] | None) -> Claims:
        if match is not None:
            again = match.re.fullmatch(claims.issuer or "")
            if again is None:  # pragma: no cover - same token, same iss
                raise InvalidIssuer("token issuer is not accepted", claim="iss")
            groups = again.groupdict()
            tenant = groups.get("tenantid", groups.get("tid"))
            tid = claims.get("tid")
            if tenant is not None and tid is not None and tid != tenant:
                raise ClaimError('"tid" does not match the issuer', claim="tid")
        check_azp(claims, self._azp)
        return claims

    def _cached(self, token: str | bytes) -> Verifier | None:
        """A verifier that has ``token`` cached and whose own policy pins the issuer (so its
        entries cannot belong to another route)."""
        for verifier in self._pinned:
            cache = verifier.cache
            if cache is not None and token in cache:
                return verifier
        return None

    def verify(self, token: str | bytes) -> Claims:
        """Verify ``token`` with the verifier of its issuer."""
        hit = self._cached(token)
        if hit is not None:
            claims = hit.verify(token)
            check_azp(claims, self._azp)
            return claims
        verifier, match = self._route(token)
        return self._check(verifier.verify(token), match)

    async def verify_async(self, token: str | bytes) -> Claims:
        hit = self._cached(token)
        if hit is not None:
            claims = await hit.verify_async(token)
            check_azp(claims, self._azp)
            return claims
        verifier, match = self._route(token)
        return self._check(await verifier.verify_async(token), match)

    def health(self) -> dict[str, Any]:
        """Each route's source health, keyed by issuer or template."""
        out: dict[str, Any] = {iss: v.health() for iss, v in self._exact.items()}
        for pattern, verifier in self._templates:
            out[pattern.pattern] = verifier.health()
        return out

    def close(self) -> None:
        for verifier in self._verifiers:
            verifier.close()

    async def aclose(self) -> None:
        for verifier in self._verifiers:
            await verifier.aclose()

    def __enter__(self) -> MultiVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> MultiVerifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
