"""Foreign public keys: another issuer's keys published in a project's JWKS for a stated period.

Moving APIs from another issuer (Auth0, Keycloak, a hand-made key) to jwkit without breaking a
token: the project publishes the old issuer's public keys next to its own until ``until``, so
an API that switches its JWKS URL to jwkit keeps accepting the old issuer's unexpired tokens.

Rules:

* public members only: a JWK with private members (``d``, ``p``, ``q``, ``dp``, ``dq``,
  ``qi``, ``k``) or a secret (``oct``) key is refused, never stored;
* every key has a ``kid`` (verifiers select by it), distinct from every key of the project and
  from the other foreign keys; importing the same key again renews its period;
* the period ends at most :data:`MAX_PERIOD` from now; after ``until`` the key is out of the
  JWKS on every replica within one sync interval (:mod:`jwkit.service.state`), and the JWKS
  ``max-age`` never reaches past ``until``;
* a JWKS URL is fetched once, at import time (never a live proxy), through the verifier's
  bounded fetcher (:class:`jwkit.verify.fetch.JWKSFetcher`): https only unless the
  ``foreign_jwks_allow_http`` setting allows http, :data:`MAX_JWKS_BYTES`, a
  :data:`FETCH_TIMEOUT` deadline for the whole exchange, no redirects.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jwkit.errors import JWKError, KeySourceError
from jwkit.jose.jwk import JWK
from jwkit.service.domain import audit
from jwkit.service.domain.common import Conflict, InvalidInput, NotFound, isoformat
from jwkit.service.domain.keys import pre_shared
from jwkit.service.domain.projects import lock_project
from jwkit.service.store.models import ForeignPublicKey, Key

__all__ = [
    "FETCH_TIMEOUT",
    "MAX_JWKS_BYTES",
    "MAX_KEYS",
    "MAX_PERIOD",
    "add_foreign_keys",
    "fetch_jwks",
    "foreign_to_json",
    "list_foreign_keys",
    "published_foreign_keys",
    "read_jwks",
    "remove_foreign_key",
]

#: Longest publication period of a foreign key (a year and a day, for a yearly key).
MAX_PERIOD = 366 * 86400
#: Largest JWKS accepted, sent in the request or fetched.
MAX_JWKS_BYTES = 64 * 1024
#: Most foreign keys one project publishes at once.
MAX_KEYS = 20
#: Deadline of the whole fetch of a JWKS URL (seconds).
FETCH_TIMEOUT = 5.0
KID_MAX = 128
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k", "oth")


def _refuse(message: str, code: str, field: str = "jwks") -> InvalidInput:
    return InvalidInput(message, field=field, code=code)


def read_jwks(document: Any) -> tuple[list[JWK], list[str]]:
    """The public signature keys of a JWKS given in a request, and what was skipped (keys that
    cannot verify a signature, such as Keycloak's ``use: enc`` key), each as ``kid: reason``.

    Refuses (422) the whole set on private members, secret keys, invalid or weak keys,
    missing or repeated ``kid`` values, or more than :data:`MAX_KEYS` keys."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _refuse('a JWK Set must be a JSON object with a "keys" array', "invalid_jwks")
    try:
        size = len(json.dumps(document))
    except (TypeError, ValueError, RecursionError):
        raise _refuse("the JWK Set is not plain JSON", "invalid_jwks") from None
    if size > MAX_JWKS_BYTES:
        raise _refuse(f"the JWK Set is larger than {MAX_JWKS_BYTES} bytes", "jwks_too_large")
    entries = document["keys"]
    keys: list[JWK] = []
    skipped: list[str] = []
    for index, entry in enumerate(entries):
        where = f"key #{index}"
        if not isinstance(entry, dict):
            raise _refuse(f"{where} is not a JSON object", "invalid_jwks")
        kid = entry.get("kid")
        if isinstance(kid, str):
            where = f"key {kid[:KID_MAX]!r}"
        if entry.get("kty") == "oct" or any(m in entry for m in _PRIVATE_MEMBERS):
            raise _refuse(
                f"{where} holds private key material: publish only public keys (and treat "
                "that key as leaked)",
                "private_key_material",
            )
        try:
            key = JWK.from_dict(entry)
        except JWKError as exc:
            raise _refuse(f"{where} is refused: {exc.message}", "invalid_key") from None
        if not key.verify_algorithms:
            skipped.append(f"{key.kid or index}: cannot verify signatures (use/key_ops/alg)")
            continue
        keys.append(key)
    _check_kids(keys)
    return keys, skipped


def _check_kids(keys: list[JWK]) -> None:
    if not keys:
        raise _refuse("the JWK Set has no public signature key", "no_usable_key")
    if len(keys) > MAX_KEYS:
        raise _refuse(f"the JWK Set has more than {MAX_KEYS} signature keys", "too_many_keys")
    seen: set[str] = set()
    for key in keys:
        kid = key.kid
        if kid is None:
            raise _refuse(
                "every foreign key needs a kid (verifiers select keys by it)", "missing_kid"
            )
        if not 0 < len(kid) <= KID_MAX or not kid.isprintable():
            raise _refuse(f"kid must be 1 to {KID_MAX} printable characters", "invalid_key")
        if kid in seen:
            raise _refuse(f"two keys share the kid {kid!r}", "duplicate_kid")
        seen.add(kid)


def fetch_jwks(url: str, *, allow_http: bool) -> list[JWK]:
    """One bounded fetch of ``url`` (see the module docstring); 422 when it gives no usable
    JWKS. Entries that are not public signature keys are left out by the fetcher (and logged
    without key material)."""
    from jwkit.verify.fetch import JWKSFetcher

    try:
        fetcher = JWKSFetcher(
            url,
            issuer=None,
            timeout=FETCH_TIMEOUT,
            max_bytes=MAX_JWKS_BYTES,
            allow_insecure_http=allow_http,
            follow_redirects=False,
            http_client=None,
            async_http_client=None,
        )
    except ValueError as exc:
        message = str(exc)
        if url.startswith("http://"):
            message = (
                "the JWKS URL must use https (http is allowed only when the service runs with "
                "JWKIT_FOREIGN_JWKS_ALLOW_HTTP=true, for local tests)"
            )
        raise _refuse(message, "invalid_url", "url") from None
    try:
        fetched = fetcher.fetch()
    except KeySourceError as exc:
        message = exc.message.replace(
            "redirects are not followed unless follow_redirects=True",
            "redirects are not followed: give the final JWKS URL",
        )
        raise _refuse(message, "jwks_unusable", "url") from None
    finally:
        fetcher.close()
    keys = list(fetched.keys or [])
    _check_kids(keys)
    return keys


def _until(until: int, now: int) -> int:
    if until <= now:
        raise _refuse("until must be in the future", "invalid_input", "until")
    if until > now + MAX_PERIOD:
        raise _refuse(
            f"until may be at most {MAX_PERIOD // 86400} days from now "
            f"({isoformat(now + MAX_PERIOD)})",
            "invalid_input",
            "until",
        )
    return until


def add_foreign_keys(
    session: Session,
    project_id: str,
    keys: list[JWK],
    *,
    until: int,
    source: str,
    now: int,
    actor: str,
) -> list[ForeignPublicKey]:
    """Publish ``keys`` (public, with distinct kids) in the project's JWKS until ``until``.

    The same key imported again gets the new period; a kid taken by a key of the project or
    by a different foreign key is refused with 409 ``kid_conflict``."""
    project = lock_project(session, project_id)
    if pre_shared(project):
        raise Conflict(
            f"this {project.algorithm} project publishes no JWKS (its verifiers hold shared "
            "secrets): publish foreign keys from an RS*, PS*, ES* or EdDSA project",
            code="no_jwks",
        )
    _until(until, now)
    own = list(session.execute(select(Key).where(Key.project_id == project_id)).scalars())
    own_kids = {row.kid for row in own}
    own_prints = {
        JWK.from_json(row.public_jwk).thumbprint(): row.kid for row in own if row.public_jwk
    }
    existing = {
        row.kid: row
        for row in session.execute(
            select(ForeignPublicKey).where(ForeignPublicKey.project_id == project_id)
        ).scalars()
    }
    added: list[ForeignPublicKey] = []
    for key in keys:
        kid = key.kid
        assert kid is not None
        thumbprint = key.thumbprint()
        if kid in own_kids:
            raise Conflict(
                f"kid {kid!r} is already a key of this project: a foreign key must not share it",
                code="kid_conflict",
            )
        if thumbprint in own_prints:
            raise Conflict(
                f"foreign key {kid!r} is this project's own key {own_prints[thumbprint]!r}",
                code="key_exists",
            )
        public = json.dumps(key.public().to_dict(), sort_keys=True)
        row = existing.get(kid)
        if row is not None and row.thumbprint != thumbprint:
            raise Conflict(
                f"another foreign key already has kid {kid!r}: remove it first",
                code="kid_conflict",
            )
        if row is None:
            row = ForeignPublicKey(
                project_id=project_id,
                kid=kid,
                thumbprint=thumbprint,
                public_jwk=public,
                source=source,
                created_at=now,
                until=until,
            )
            session.add(row)
            existing[kid] = row
            action = "foreign_key.added"
        else:
            row.until, row.source, row.public_jwk = until, source, public
            action = "foreign_key.renewed"
        added.append(row)
        audit.record(
            session,
            now=now,
            actor=actor,
            action=action,
            project_id=project_id,
            kid=kid,
            detail={"thumbprint": thumbprint, "until": isoformat(until), "source": source},
        )
    session.flush()
    live = session.execute(
        select(func.count())
        .select_from(ForeignPublicKey)
        .where(ForeignPublicKey.project_id == project_id, ForeignPublicKey.until > now)
    ).scalar_one()
    if live > MAX_KEYS:
        raise _refuse(
            f"a project publishes at most {MAX_KEYS} foreign keys at once: remove some first",
            "too_many_keys",
        )
    return added


def list_foreign_keys(session: Session, project_id: str) -> list[ForeignPublicKey]:
    stmt = select(ForeignPublicKey).where(ForeignPublicKey.project_id == project_id)
    return list(
        session.execute(stmt.order_by(ForeignPublicKey.until, ForeignPublicKey.id)).scalars()
    )


def remove_foreign_key(
    session: Session, project_id: str, kid: str, *, now: int, actor: str
) -> None:
    """Take a foreign key out of the JWKS now (and out of the list)."""
    lock_project(session, project_id)
    row = session.execute(
        select(ForeignPublicKey).where(
            ForeignPublicKey.project_id == project_id, ForeignPublicKey.kid == kid
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no foreign key {kid!r} in this project")
    session.delete(row)
    audit.record(
        session,
        now=now,
        actor=actor,
        action="foreign_key.removed",
        project_id=project_id,
        kid=kid,
        detail={"thumbprint": row.thumbprint, "expired": row.until <= now},
    )


def published_foreign_keys(
    session: Session, now: int, projects: Collection[str] | None = None
) -> dict[str, list[ForeignPublicKey]]:
    """The foreign keys still in their period of ``projects`` (default: every project), by
    project id."""
    query = select(ForeignPublicKey).where(ForeignPublicKey.until > now)
    if projects is not None:
        query = query.where(ForeignPublicKey.project_id.in_(list(projects)))
    rows = session.execute(
        query.order_by(ForeignPublicKey.created_at, ForeignPublicKey.id)
    ).scalars()
    out: dict[str, list[ForeignPublicKey]] = {}
    for row in rows:
        out.setdefault(row.project_id, []).append(row)
    return out


def foreign_to_json(row: ForeignPublicKey, now: int) -> dict[str, Any]:
    return {
        "kid": row.kid,
        "thumbprint": row.thumbprint,
        "public_jwk": json.loads(row.public_jwk),
        "source": row.source,
        "created_at": isoformat(row.created_at),
        "until": isoformat(row.until),
        "published": row.until > now,
    }
