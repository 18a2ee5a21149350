"""Admin API additions used by the console: a token inspector and the audit log views.

* ``POST /api/v1/projects/{id}/tokens/inspect`` ``{"token": "..."}`` decodes a compact JWT and
  checks it against the project, step by step, the way a verifier would (RFC 7515 §5.2,
  RFC 7519 §7.2): the header and payload, the key named by ``kid`` and its lifecycle state,
  the signature with the algorithm bound to that key, then each claim on its own (``exp``,
  ``nbf``, ``iat``, ``iss``, ``aud``) with a verdict and the reason. A token that cannot be
  parsed is a result (``format.ok = false``), not an error: inspecting it is the point.
* ``GET /api/v1/audit/events`` lists the audit log newest first, filtered by project, action
  prefix, actor and kid.
* ``GET /api/v1/audit/verify`` recomputes the hash chain (what ``jwkit audit verify`` does).

Authenticated like every admin route (:class:`~jwkit.service.http.auth.AdminRoute`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import select

from jwkit.errors import JWKitError
from jwkit.jose import jws
from jwkit.jose.jwk import JWK
from jwkit.jose.jwt import ClaimsPolicy, parse_claims
from jwkit.service.domain import audit, keys, projects
from jwkit.service.domain.common import isoformat
from jwkit.service.domain.paging import Page, keyset_page
from jwkit.service.domain.projects import issuer_for
from jwkit.service.http.admin import ROUTER_OPTIONS
from jwkit.service.http.listing import Cursor, paged
from jwkit.service.runtime import Service
from jwkit.service.store.models import AuditEvent, Key
from jwkit.verify.diagnose import diagnose_token_text

__all__ = ["TokenInspect", "inspect_token", "router"]

router = APIRouter(**ROUTER_OPTIONS)
JSON = dict[str, Any]

_STATE_TEXT = {
    keys.NEXT: "published in the JWKS, not signing yet: verifiers accept its signatures",
    keys.ACTIVE: "the active signing key, published in the JWKS",
    keys.RETIRING: "retiring: still published, so tokens it signed keep verifying",
    keys.REVOKED: "revoked: no longer in the JWKS, verifiers reject its tokens",
}


class TokenInspect(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    token: Annotated[str, StringConstraints(min_length=1, max_length=64 * 1024)]


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _check(claim: str, ok: bool, reason: str, *, expected: Any = None, actual: Any = None) -> JSON:
    return {"claim": claim, "ok": ok, "reason": reason, "expected": expected, "actual": actual}


def _policy_check(
    claim: str,
    policy: ClaimsPolicy,
    claims: Mapping[str, Any],
    header: Mapping[str, Any],
    now: int,
    ok_reason: str,
    *,
    expected: Any = None,
) -> JSON:
    """Run ``policy`` on the single claim ``claim`` so each verdict stands on its own."""
    only = {claim: claims[claim]} if claim in claims else {}
    try:
        policy.validate(only, header, now)
    except JWKitError as exc:
        return _check(claim, False, exc.message, expected=expected, actual=claims.get(claim))
    return _check(claim, True, ok_reason, expected=expected, actual=claims.get(claim))


def _time_reason(name: str, value: Any, now: int) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return f"no {name} claim"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} is not a finite number"
    delta = int(value) - now
    when = "in the future" if delta > 0 else "in the past"
    return f"{name} is {abs(delta)} s {when}"


def claim_checks(
    claims: Mapping[str, Any], header: Mapping[str, Any], *, issuer: str, audience: str, now: int
) -> list[JSON]:
    """One verdict per claim, with the same rules as :class:`jwkit.Verifier` (no leeway)."""
    out = [
        _policy_check(
            "exp",
            ClaimsPolicy(require_exp=True),
            claims,
            header,
            now,
            "not expired: " + _time_reason("exp", claims.get("exp"), now),
        ),
    ]
    no_exp = ClaimsPolicy(require_exp=False)
    if "nbf" in claims:
        out.append(
            _policy_check(
                "nbf",
                no_exp,
                claims,
                header,
                now,
                "already valid: " + _time_reason("nbf", claims["nbf"], now),
            )
        )
    out.append(
        _policy_check(
            "iat",
            no_exp,
            claims,
            header,
            now,
            "issued in the past: " + _time_reason("iat", claims.get("iat"), now),
        )
        if "iat" in claims
        else _check("iat", True, "no iat claim (optional)")
    )
    out.append(
        _policy_check(
            "iss",
            ClaimsPolicy(issuer=issuer, require_exp=False),
            claims,
            header,
            now,
            "issued by this project",
            expected=issuer,
        )
    )
    out.append(
        _policy_check(
            "aud",
            ClaimsPolicy(audience=audience, require_exp=False),
            claims,
            header,
            now,
            "meant for this project's audience",
            expected=audience,
        )
    )
    return out


def _find_keys(rows: list[Key], kid: str | None, alg: str) -> list[Key]:
    if kid is not None:
        return [k for k in rows if k.kid == kid]
    return [k for k in rows if k.alg == alg and k.state in keys.PUBLISHED_STATES]


def _verify_with(parsed: jws.ParsedJWS, row: Key, svc: Service) -> tuple[bool, str]:
    try:
        jwk = JWK.from_dict(json.loads(row.public_jwk)) if row.public_jwk else None
        if jwk is None:  # symmetric (HS256): the secret never leaves the service
            jwk = keys.open_key(row, svc.vault)
        jws.check_header(parsed, {row.alg})
        jws.verify_signature(parsed, jwk)
    except JWKitError as exc:
        return False, exc.message
    return True, f"valid: signed with {row.alg} by this key"


#: Nesting shown by the inspector; deeper values are summarised (JSON output has limits too).
MAX_SHOWN_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def displayable(value: Any, depth: int = 0) -> Any:
    """``value`` made safe to send as JSON, whatever the token held: lone surrogates (which
    UTF-8 cannot encode) become U+FFFD, non-finite numbers (``1e999``) their name as a string,
    and anything nested deeper than :data:`MAX_SHOWN_DEPTH` a short note."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "inf", "-inf", "nan"
    if isinstance(value, dict | list):
        if depth >= MAX_SHOWN_DEPTH:
            return f"(nested deeper than {MAX_SHOWN_DEPTH} levels, not shown)"
        if isinstance(value, list):
            return [displayable(v, depth + 1) for v in value]
        return {displayable(k): displayable(v, depth + 1) for k, v in value.items()}
    return value


def inspect_token(token: str, *, project: JSON, rows: list[Key], svc: Service) -> JSON:
    """The whole inspection, as the JSON the console renders (see :func:`displayable`)."""
    return dict(displayable(_inspect(token, project=project, rows=rows, svc=svc)))


def _inspect(token: str, *, project: JSON, rows: list[Key], svc: Service) -> JSON:
    result: JSON = {
        "format": {"ok": True, "reason": "a compact JWS with a JSON header"},
        "header": None,
        "payload": None,
        "kid": None,
        "alg": None,
        "key": None,
        "signature": {"ok": False, "reason": "not checked"},
        "checks": [],
        "valid": False,
        "checked_at": isoformat(svc.clock()),
    }
    try:
        parsed = jws.parse(token.strip())
        result["header"] = dict(parsed.header)
        result["kid"], result["alg"] = parsed.kid, parsed.alg
        claims = parse_claims(parsed.payload)
        result["payload"] = claims
    except JWKitError as exc:
        result["format"] = {"ok": False, "reason": diagnose_token_text(token) or exc.message}
        result["signature"] = {"ok": False, "reason": "the token could not be decoded"}
        return result
    candidates = _find_keys(rows, parsed.kid, parsed.alg)
    chosen: Key | None = None
    if not candidates:
        why = (
            f"no key with kid {parsed.kid!r} in this project"
            if parsed.kid is not None
            else "the token has no kid and no published key of this project fits its alg"
        )
        result["signature"] = {"ok": False, "reason": why}
    else:
        reason = ""
        for row in candidates:
            ok, reason = _verify_with(parsed, row, svc)
            if ok:
                chosen = row
                break
        if chosen is None:
            result["signature"] = {"ok": False, "reason": reason}
            chosen = candidates[0]
        else:
            result["signature"] = {"ok": True, "reason": reason}
        result["key"] = {
            "kid": chosen.kid,
            "alg": chosen.alg,
            "state": chosen.state,
            "created_at": isoformat(chosen.created_at),
            "published": chosen.state in keys.PUBLISHED_STATES,
            "explanation": _STATE_TEXT.get(chosen.state, chosen.state),
        }
    now = svc.clock()
    result["checks"] = claim_checks(
        claims, parsed.header, issuer=project["issuer"], audience=project["audience"], now=now
    )
    published = result["key"] is not None and result["key"]["published"]
    result["valid"] = bool(
        result["signature"]["ok"] and published and all(c["ok"] for c in result["checks"])
    )
    return result


@router.post("/projects/{project_id}/tokens/inspect")
def inspect_endpoint(request: Request, project_id: str, body: TokenInspect) -> JSON:
    """Decode a JWT and check it against this project; nothing is trusted or stored."""
    svc = _service(request)
    with svc.read() as session:
        project = projects.get_project(session, project_id)
        info = projects.project_to_json(project, svc.settings.public_url)
        info["issuer"] = issuer_for(svc.settings.public_url, project.id)
        rows = keys.list_keys(session, project_id)
        return inspect_token(body.token, project=info, rows=rows, svc=svc)


Filter = Annotated[str | None, Query(max_length=200)]


@router.get("/audit/events")
def audit_events(
    request: Request,
    response: Response,
    project_id: Filter = None,
    action: Filter = None,
    actor: Filter = None,
    kid: Filter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    cursor: Cursor = None,
) -> JSON:
    """Audit events, newest first; ``action`` matches a prefix (``key.`` = every key event).
    ``next_cursor`` names the next (older) page: pass it as ``cursor``, with the same filters
    (``before``, a sequence number, still works)."""
    svc = _service(request)
    stmt = select(AuditEvent)
    if project_id:
        stmt = stmt.where(AuditEvent.project_id == project_id)
    if action:
        stmt = stmt.where(AuditEvent.action.startswith(action, autoescape=True))
    if actor:
        stmt = stmt.where(AuditEvent.actor == actor)
    if kid:
        stmt = stmt.where(AuditEvent.kid == kid)
    if before is not None:
        stmt = stmt.where(AuditEvent.seq < before)
    with svc.read() as session:
        page: Page[AuditEvent] = keyset_page(
            session, stmt, "audit", [AuditEvent.seq], limit=limit, cursor=cursor, descending=True
        )
        return {
            "events": [audit.event_to_json(e) for e in page.rows],
            "next_cursor": paged(request, response, page.next_cursor),
        }


@router.get("/audit/verify")
def audit_verify(request: Request) -> JSON:
    """Recompute every link of the audit hash chain; name the first broken entry."""
    svc = _service(request)
    with svc.read() as session:
        report = audit.verify_chain(session)
    return {
        "ok": report.ok,
        "count": report.count,
        "first_bad_seq": report.first_bad_seq,
        "reason": report.reason,
        "checked_at": isoformat(svc.clock()),
    }
