"""Admin API for moving onto jwkit: bring your own key, and publish another issuer's keys.

* ``POST /api/v1/projects/{id}/keys/import`` — a private key (PEM or JWK) becomes the next key
  (:mod:`jwkit.service.domain.imports`). The answer has public parts only.
* ``GET|POST /api/v1/projects/{id}/foreign-keys``, ``DELETE …/foreign-keys/{kid}`` — foreign
  public keys published until a stated end (:mod:`jwkit.service.domain.foreign`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from jwkit.service.domain import foreign, imports, keys, projects
from jwkit.service.domain.common import InvalidInput
from jwkit.service.http.admin import ROUTER_OPTIONS, actor_of, answer_405_with_allow, service_of
from jwkit.service.http.metrics import TRANSITIONS
from jwkit.service.http.schemas import ForeignKeysImport, KeyImport

__all__ = ["router"]

router = APIRouter(**ROUTER_OPTIONS)
JSON = dict[str, Any]
_service = service_of
_actor = actor_of


@router.post("/projects/{project_id}/keys/import", status_code=201)
def import_key(request: Request, project_id: str, body: KeyImport) -> JSON:
    """Import a private key (PEM or JWK) as the project's next key: sealed like a generated
    key, pre-published, promoted by the normal rotation. 422 for a weak, invalid, public-only
    or mismatched key; 409 when its kid or the key itself is already in the project."""
    svc = _service(request)
    key = imports.read_private_key(pem=body.pem, jwk=body.jwk, passphrase=body.passphrase)
    with svc.write() as session:
        row = imports.import_key(
            session,
            project_id,
            svc.vault,
            key,
            now=svc.clock(),
            actor=_actor(request),
            source="pem" if body.pem is not None else "jwk",
            kid=body.kid,
        )
        out = keys.key_to_json(row)
    TRANSITIONS.labels("import").inc()
    return out


def _until(text: str) -> int:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise InvalidInput(
            "until must be an RFC 3339 time with a time zone, e.g. 2027-01-31T00:00:00Z",
            field="until",
        )
    return int(when.timestamp())


@router.get("/projects/{project_id}/foreign-keys")
def list_foreign_keys(request: Request, project_id: str) -> JSON:
    """The foreign keys of the project, published or past their end."""
    svc = _service(request)
    now = svc.clock()
    with svc.read() as session:
        projects.get_project(session, project_id)
        rows = foreign.list_foreign_keys(session, project_id)
        return {"foreign_keys": [foreign.foreign_to_json(r, now) for r in rows]}


@router.post("/projects/{project_id}/foreign-keys", status_code=201)
def add_foreign_keys(request: Request, project_id: str, body: ForeignKeysImport) -> JSON:
    """Publish another issuer's public keys in this project's JWKS until ``until``: from
    ``jwks`` (a JWK Set) or ``url`` (fetched once, now). Private members, secret keys and
    kids taken by the project's own keys are refused."""
    svc = _service(request)
    until = _until(body.until)
    if (body.jwks is None) == (body.url is None):
        raise InvalidInput("give exactly one of jwks or url", field="jwks")
    skipped: list[str] = []
    if body.url is not None:
        url = body.url
        found = foreign.fetch_jwks(url, allow_http=svc.settings.foreign_jwks_allow_http)
        source = url
    else:
        found, skipped = foreign.read_jwks(body.jwks)
        source = "body"
    with svc.write() as session:
        now = svc.clock()
        rows = foreign.add_foreign_keys(
            session, project_id, found, until=until, source=source, now=now, actor=_actor(request)
        )
        out = [foreign.foreign_to_json(r, now) for r in rows]
    return {"foreign_keys": out, "skipped": skipped}


@router.delete("/projects/{project_id}/foreign-keys/{kid:path}", status_code=204)
def remove_foreign_key(request: Request, project_id: str, kid: str) -> Response:
    """Take a foreign key out of the JWKS now."""
    svc = _service(request)
    with svc.write() as session:
        foreign.remove_foreign_key(session, project_id, kid, now=svc.clock(), actor=_actor(request))
    return Response(status_code=204)


answer_405_with_allow(router)
